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
pub mod oauth_states;
mod pool;
pub mod schema;
pub mod sent_messages;
pub mod slack_events;
pub mod types;

pub use pool::SqlPool;

/// What the macros name, so a backend crate needs no dependency of its own for them.
#[doc(hidden)]
pub mod __private {
    pub use async_trait;
    pub use chrono;
    pub use connector_domain as domain;
    pub use connector_ports as ports;
    pub use diesel;
    pub use diesel_async;
    pub use std::time::Duration;
    pub use tracing;
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
    };
}
