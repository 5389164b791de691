//! The one SQL body of the store ports, for PostgreSQL and SQLite alike.
//!
//! `adapters-postgres` and `adapters-sqlite` differ in how they connect, migrate and claim
//! (pools, migrations, `FOR UPDATE SKIP LOCKED`, the change feed); every query of the ports
//! is the same diesel code, written here once:
//! - [`schema`]: one diesel view of the tables both migrations create, whose columns that
//!   each backend stores differently have the SQL types of [`types`] ([`types::Id`],
//!   [`types::Moment`], and [`types::DbNow`]: the database's clock on PostgreSQL);
//! - [`SqlPool`]: the bounded pool, the query timeout, and idempotent reads run once more on
//!   a fresh connection when the first one broke;
//! - [`errors::map_err`]: a diesel error in the port's terms, for both backends;
//! - one module per port (the table's rows in the domain's terms, and a macro that implements
//!   the port for a backend's repository type: [`connector_repository!`],
//!   [`oauth_state_store!`], [`api_key_store!`], [`sent_message_store!`],
//!   [`slack_event_store!`]; [`sql_stores!`] invokes them all). Queries run on a concrete
//!   connection type, so the body is instantiated per backend rather than made generic.
//!
//! The features `postgres` and `sqlite` bring each backend's column mapping.
//!
//! # Must never
//! Let a diesel type escape through a port, store a token, or hold a query only one backend
//! runs (that belongs to the backend's crate).

pub mod api_keys;
pub mod connectors;
pub mod errors;
pub mod event_log;
pub mod oauth_states;
pub mod outbox;
mod pool;
pub mod prepared;
pub mod schema;
pub mod sent_messages;
pub mod slack_events;
pub mod types;

pub use pool::SqlPool;

/// What the macro bodies name, in one glob import, so a backend crate needs no dependency of
/// its own for them.
#[doc(hidden)]
pub mod __private {
    pub use crate::errors::map_err;
    pub use crate::prepared::{prepared, prepared_with_lists};
    pub use crate::types::{DbClock, DbId, DbNow, DbTime, coalesce};
    pub use ::async_trait::{self, async_trait};
    pub use ::chrono::{self, DateTime, Utc};
    pub use ::diesel::{self, IntoSql as _, prelude::*, sql_types::Bool};
    pub use ::diesel_async::{self, RunQueryDsl};
    pub use ::tracing;
    pub use connector_domain as domain;
    pub use connector_ports as ports;
    pub use std::time::Duration;
}

/// Runs `$body` (a block) with a connection of `$pool` bound to `$conn`, bounded by the query
/// timeout; the port bodies' one way to the database.
#[doc(hidden)]
#[macro_export]
macro_rules! with_conn {
    ($pool:expr, $conn:ident, $body:block) => {
        $pool
            .timed(async {
                let mut $conn = $pool.conn().await?;
                $body
            })
            .await
    };
}

/// Runs `$statement` (an insert, update or delete) on a connection of `$pool`, bounded by the
/// query timeout: how many rows it touched.
#[doc(hidden)]
#[macro_export]
macro_rules! execute {
    ($pool:expr, $statement:expr) => {
        $crate::with_conn!($pool, conn, {
            $crate::__private::diesel_async::RunQueryDsl::execute($statement, &mut conn)
                .await
                .map(|n| n as u64)
                .map_err($crate::errors::map_err)
        })
    };
}

/// Runs `$query` (a select, or a write `RETURNING` rows) on a connection of `$pool`, bounded
/// by the query timeout: every row it yields.
#[doc(hidden)]
#[macro_export]
macro_rules! load {
    ($pool:expr, $query:expr) => {
        $crate::with_conn!($pool, conn, {
            $crate::__private::diesel_async::RunQueryDsl::load($query, &mut conn)
                .await
                .map_err($crate::errors::map_err)
        })
    };
}

/// Like [`load!`], for a query that yields at most one row: that row, if any.
#[doc(hidden)]
#[macro_export]
macro_rules! first {
    ($pool:expr, $query:expr) => {
        $crate::with_conn!($pool, conn, {
            $crate::__private::diesel::OptionalExtension::optional(
                $crate::__private::diesel_async::RunQueryDsl::get_result($query, &mut conn).await,
            )
            .map_err($crate::errors::map_err)
        })
    };
}

/// Runs `$read` (a block of diesel calls on `$conn` that yields a `QueryResult`) on a
/// connection of `$pool`, bounded by the query timeout: an idempotent read, so it runs once
/// more on a fresh connection when the first attempt's connection broke (a restarted server,
/// a terminated backend).
#[doc(hidden)]
#[macro_export]
macro_rules! read_retrying {
    ($pool:expr, $conn:ident, $read:block) => {
        $pool
            .timed(async {
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let mut $conn = $pool.conn().await?;
                    match $read {
                        Ok(rows) => break Ok(rows),
                        Err(e) if attempt == 1 && $crate::errors::is_connection_error(&e) => {
                            $crate::__private::tracing::warn!(
                                error = %e,
                                "a database connection broke; retrying the read on a fresh one"
                            );
                            drop($conn);
                        }
                        Err(e) => break Err($crate::errors::map_err(e)),
                    }
                }
            })
            .await
    };
}

/// Implements every store port of the repository (`ConnectorRepository`, `OAuthStateStore`,
/// `ApiKeyStore`, `SentMessageStore`, `SlackEventStore`) for `$repo`, whose field `$pool` is a
/// [`SqlPool`] of the backend's connections, `$conn`; see [`connector_repository!`] for the one method
/// `$repo` provides itself.
#[macro_export]
macro_rules! sql_stores {
    ($repo:ident . $pool:ident : $conn:ty) => {
        $crate::connector_repository!($repo.$pool: $conn);
        $crate::oauth_state_store!($repo.$pool);
        $crate::api_key_store!($repo.$pool);
        $crate::sent_message_store!($repo.$pool);
        $crate::slack_event_store!($repo.$pool);
        $crate::event_log!($repo.$pool);
        $crate::outbox!($repo.$pool: $conn);
    };
}
