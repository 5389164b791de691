//! [`Prepared`]: a statement of one fixed shape, prepared once per connection and reused.
//!
//! diesel caches a prepared statement only for queries it can prove have one SQL text per
//! Rust type: every `UPDATE` (a changeset of `Option`s may drop columns), every raw
//! `sql_query`, every `ON CONFLICT DO UPDATE` and every `IN` list is sent unnamed instead, so
//! PostgreSQL parses, analyses and plans it on each call. On the delivery path that was most
//! of the database's work: the outcome of each post (an `UPDATE` by primary key) was planned
//! 22,865 times in 22,865 calls in a 30-second drain (`pg_stat_statements`), while the
//! `INSERT` beside it, cached, was planned 11 times.
//!
//! Wrapping a statement in [`prepared`] keys the connection's statement cache by the
//! statement's SQL text (and its bind types) instead of its Rust type, so a statement is
//! prepared once per distinct text, which is correct whatever diesel could prove. The one
//! condition is the caller's: its text must come from a bounded set (no `IN` list whose length
//! follows the data on a backend that spells it out, no SQL built from values), or the cache
//! grows with each new text.
//!
//! [`prepared_with_lists`] is for statements whose `IN` lists are the only thing keeping
//! diesel from caching them: PostgreSQL binds such a list as one array (`= ANY($1)`, one text
//! whatever its length), so there it is prepared like [`prepared`]; SQLite spells the list out
//! (one text per length), so there it is left to diesel.

use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};

/// `Q`, cached by its SQL text (where its `IN` lists allow): see the [module](self).
#[derive(Debug, Clone, Copy)]
pub struct Prepared<Q> {
    statement: Q,
    /// Its text is fixed but for its `IN` lists: cached only where a list is one array.
    with_lists: bool,
}

/// Marks `statement` for the connection's statement cache, keyed by its SQL text. Its text
/// must come from a bounded set (see the [module](self)).
pub fn prepared<Q>(statement: Q) -> Prepared<Q> {
    Prepared {
        statement,
        with_lists: false,
    }
}

/// Marks `statement`, whose text is fixed but for its `IN` lists, for the connection's
/// statement cache on backends that bind a list as one array (see [`ListsAsArrays`]).
pub fn prepared_with_lists<Q>(statement: Q) -> Prepared<Q> {
    Prepared {
        statement,
        with_lists: true,
    }
}

/// How a backend writes an `IN` list: as one array parameter, so that the statement's text
/// does not follow the list's length, or not.
pub trait ListsAsArrays {
    /// Whether a list is one array parameter (`= ANY($1)`).
    const LISTS_AS_ARRAYS: bool;
}

#[cfg(feature = "postgres")]
impl ListsAsArrays for diesel::pg::Pg {
    const LISTS_AS_ARRAYS: bool = true;
}

#[cfg(feature = "sqlite")]
impl ListsAsArrays for diesel::sqlite::Sqlite {
    // `IN (?, ?, ?)`: one text per length.
    const LISTS_AS_ARRAYS: bool = false;
}

impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    // Not keyed by type: the cache falls back to the SQL text and bind types.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

impl<DB: Backend + ListsAsArrays, Q: QueryFragment<DB>> QueryFragment<DB> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.statement.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, backend: &DB) -> QueryResult<bool> {
        if !self.with_lists || DB::LISTS_AS_ARRAYS {
            Ok(true)
        } else {
            self.statement.is_safe_to_cache_prepared(backend)
        }
    }
}
