//! PostgreSQL implementation of the [`ConnectorRepository`] port, on diesel and diesel-async
//! (pure-Rust tokio-postgres underneath, no libpq), with a bb8 connection pool and the
//! migrations of `migrations/postgres/` embedded in the binary.
//!
//! # Layout
//! - [`repository`]: [`PgConnectorRepository`]: the pool, and the store ports from the shared
//!   SQL body (`connector-adapters-sql`), with PostgreSQL's claim of unfinished rows.
//! - [`migrate`]: [`run_migrations`], serialised across replicas by an advisory lock.
//! - [`changes`]: [`PgChangeFeed`], connector changes of every replica through
//!   `LISTEN/NOTIFY`.
//!
//! # Must never
//! Let a diesel, bb8 or tokio-postgres type escape through the port, store a token, or log one.
//! Every query a client can reach is filtered by tenant.

pub mod changes;
pub mod migrate;
pub mod repository;

pub use changes::{PgChangeFeed, PgEventFeed};
pub use migrate::run_migrations;
pub use repository::PgConnectorRepository;

/// Errors of setting the adapter up (connecting, migrating).
#[derive(Debug, thiserror::Error)]
pub enum PgSetupError {
    /// The database could not be reached.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(String),
}
