//! SQLite implementation of the [`ConnectorRepository`] port, for the embedded mode: one file,
//! no server. diesel's `SqliteConnection` runs behind diesel-async's `SyncConnectionWrapper`
//! (blocking calls on tokio's blocking pool) in a bb8 pool; SQLite itself is compiled in.
//!
//! The semantics are PostgreSQL's (the same conformance suite runs against both): names unique
//! per tenant, request IDs unique per tenant, the `creating` → `active` → `deleting` lifecycle,
//! and atomic claims of stale rows (SQLite serialises writers, and the claim is one
//! `UPDATE … RETURNING` statement). Connections use WAL and a busy timeout, so several
//! processes may share the file.
//!
//! # Layout
//! - [`repository`]: [`SqliteConnectorRepository`]: the file's pool, and the store ports from
//!   the shared SQL body (`connector-adapters-sql`), with SQLite's claim of unfinished rows.
//! - [`migrate`]: [`run_migrations`], creating the file when needed.
//!
//! # Must never
//! Let a diesel type escape through the port, store a token, or log one.

pub mod migrate;
pub mod repository;

pub use migrate::{MIGRATIONS, run_migrations};
pub use repository::SqliteConnectorRepository;

/// Errors of setting the adapter up.
#[derive(Debug, thiserror::Error)]
pub enum SqliteSetupError {
    /// The file could not be opened or created.
    #[error("cannot open the SQLite database: {0}")]
    Open(String),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(String),
}
