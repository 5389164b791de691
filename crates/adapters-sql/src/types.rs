//! The column types that differ between the backends, written once.
//!
//! The schema names two SQL types of its own, [`Id`] and [`Moment`]; each backend maps them to
//! what it stores: PostgreSQL to `uuid` and `timestamptz`, SQLite to canonical UUID text and
//! microseconds since the Unix epoch. Rust code binds and reads them as [`DbId`] and
//! [`DbTime`], and asks for the current time with [`DbNow`]: the database's clock on
//! PostgreSQL (one clock for every replica), the process's on SQLite (one file, one host).
//! [`DbClock`] is the same clock read when a statement runs (not at the transaction's start).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use diesel::deserialize::FromSqlRow;
use diesel::expression::AsExpression;
use diesel::expression::{
    AppearsOnTable, Expression, SelectableExpression, ValidGrouping, is_aggregate,
};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Nullable, SingleValue, SqlType};

/// A UUID column: `uuid` on PostgreSQL, canonical (lower-case, hyphenated) text on SQLite,
/// whose byte order is the UUID's, so both sort alike.
#[derive(Debug, Clone, Copy, Default, QueryId, SqlType)]
#[diesel(postgres_type(oid = 2950, array_oid = 2951))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Id;

/// An instant: `timestamptz` on PostgreSQL, microseconds since the Unix epoch on SQLite.
#[derive(Debug, Clone, Copy, Default, QueryId, SqlType)]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
#[diesel(sqlite_type(name = "Long"))]
pub struct Moment;

/// A value of an [`Id`] column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, AsExpression, FromSqlRow)]
#[diesel(sql_type = Id)]
pub struct DbId(pub uuid::Uuid);

/// A value of a [`Moment`] column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, AsExpression, FromSqlRow)]
#[diesel(sql_type = Moment)]
pub struct DbTime(pub DateTime<Utc>);

impl From<connector_domain::ConnectorId> for DbId {
    fn from(id: connector_domain::ConnectorId) -> Self {
        Self(id.as_uuid())
    }
}

impl From<connector_domain::ApiKeyId> for DbId {
    fn from(id: connector_domain::ApiKeyId) -> Self {
        Self(id.as_uuid())
    }
}

/// The database's "now", moved by an offset: `now() + make_interval(secs => $n)` on
/// PostgreSQL, the process's clock plus the offset (bound) on SQLite. One SQL shape whatever
/// the offset, so a statement using it is prepared once per connection.
#[derive(Debug, Clone, Copy, QueryId)]
pub struct DbNow {
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    offset_secs: f64,
    local: DbTime,
}

impl DbNow {
    /// Now.
    pub fn now() -> Self {
        Self::shifted(0.0)
    }

    /// `d` from now.
    pub fn plus(d: Duration) -> Self {
        Self::shifted(d.as_secs_f64())
    }

    /// `d` ago.
    pub fn minus(d: Duration) -> Self {
        Self::shifted(-d.as_secs_f64())
    }

    /// The process's clock, shifted (saturating at chrono's range): what SQLite binds.
    pub fn local(self) -> DbTime {
        self.local
    }

    fn shifted(offset_secs: f64) -> Self {
        let offset = chrono::Duration::microseconds((offset_secs * 1e6) as i64);
        let local = Utc::now()
            .checked_add_signed(offset)
            .unwrap_or(if offset_secs < 0.0 {
                DateTime::<Utc>::MIN_UTC
            } else {
                DateTime::<Utc>::MAX_UTC
            });
        Self {
            offset_secs,
            local: DbTime(local),
        }
    }
}

/// The database's wall clock at the moment the statement reads it: `clock_timestamp()` on
/// PostgreSQL (not the transaction's start, as `now()` is), the process's clock on SQLite. For
/// a decision that must not be stale by the time a transaction waited on a lock.
#[derive(Debug, Clone, Copy, QueryId)]
pub struct DbClock {
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    local: DbTime,
}

impl DbClock {
    /// The clock, read when the statement runs.
    pub fn read() -> Self {
        Self {
            local: DbTime(Utc::now()),
        }
    }
}

impl Expression for DbClock {
    type SqlType = Moment;
}

impl<QS> AppearsOnTable<QS> for DbClock {}

impl<QS> SelectableExpression<QS> for DbClock {}

impl<GB> ValidGrouping<GB> for DbClock {
    type IsAggregate = is_aggregate::Never;
}

impl Expression for DbNow {
    type SqlType = Moment;
}

impl<QS> AppearsOnTable<QS> for DbNow {}

impl<QS> SelectableExpression<QS> for DbNow {}

impl<GB> ValidGrouping<GB> for DbNow {
    type IsAggregate = is_aggregate::Never;
}

diesel::define_sql_function! {
    /// SQL's `coalesce` of two nullable values of one type.
    fn coalesce<T: SqlType + SingleValue>(x: Nullable<T>, y: Nullable<T>) -> Nullable<T>;
}

#[cfg(feature = "postgres")]
mod pg {
    use diesel::deserialize::{self, FromSql};
    use diesel::pg::{Pg, PgValue};
    use diesel::serialize::{self, Output, ToSql};
    use diesel::sql_types::{Double, Timestamptz, Uuid};

    use super::*;

    impl ToSql<Id, Pg> for DbId {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
            <uuid::Uuid as ToSql<Uuid, Pg>>::to_sql(&self.0, out)
        }
    }

    impl FromSql<Id, Pg> for DbId {
        fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
            <uuid::Uuid as FromSql<Uuid, Pg>>::from_sql(bytes).map(Self)
        }
    }

    impl ToSql<Moment, Pg> for DbTime {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
            <DateTime<Utc> as ToSql<Timestamptz, Pg>>::to_sql(&self.0, out)
        }
    }

    impl FromSql<Moment, Pg> for DbTime {
        fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
            <DateTime<Utc> as FromSql<Timestamptz, Pg>>::from_sql(bytes).map(Self)
        }
    }

    impl QueryFragment<Pg> for DbClock {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql("clock_timestamp()");
            Ok(())
        }
    }

    impl QueryFragment<Pg> for DbNow {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql("(now() + make_interval(secs => ");
            out.push_bind_param::<Double, f64>(&self.offset_secs)?;
            out.push_sql("))");
            Ok(())
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use diesel::deserialize::{self, FromSql};
    use diesel::serialize::{self, IsNull, Output, ToSql};
    use diesel::sql_types::{BigInt, Text};
    use diesel::sqlite::{Sqlite, SqliteValue};

    use super::*;

    impl ToSql<Id, Sqlite> for DbId {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
            out.set_value(self.0.to_string());
            Ok(IsNull::No)
        }
    }

    impl FromSql<Id, Sqlite> for DbId {
        fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
            let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
            uuid::Uuid::parse_str(&text)
                .map(Self)
                .map_err(|_| format!("{text:?} is not a UUID").into())
        }
    }

    impl ToSql<Moment, Sqlite> for DbTime {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
            out.set_value(self.0.timestamp_micros());
            Ok(IsNull::No)
        }
    }

    impl FromSql<Moment, Sqlite> for DbTime {
        fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
            let micros = <i64 as FromSql<BigInt, Sqlite>>::from_sql(value)?;
            DateTime::from_timestamp_micros(micros)
                .map(Self)
                .ok_or_else(|| format!("timestamp {micros} out of range").into())
        }
    }

    impl QueryFragment<Sqlite> for DbClock {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
            out.push_bind_param::<Moment, DbTime>(&self.local)?;
            Ok(())
        }
    }

    impl QueryFragment<Sqlite> for DbNow {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
            out.push_bind_param::<Moment, DbTime>(&self.local)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_moves_by_its_offset_and_saturates() {
        let before = Utc::now();
        let later = DbNow::plus(Duration::from_secs(60));
        assert_eq!(later.offset_secs, 60.0);
        assert!(later.local.0 >= before + chrono::Duration::seconds(60));
        let earlier = DbNow::minus(Duration::from_secs(60));
        assert!(earlier.local.0 <= Utc::now() - chrono::Duration::seconds(60));
        assert_eq!(
            DbNow::minus(Duration::from_secs(u64::MAX / 4)).local.0,
            DateTime::<Utc>::MIN_UTC
        );
    }
}
