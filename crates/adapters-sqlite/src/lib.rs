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

use std::path::PathBuf;

pub use migrate::{MIGRATIONS, run_migrations};
pub use repository::SqliteConnectorRepository;

/// Errors of setting the adapter up.
#[derive(Debug, thiserror::Error)]
pub enum SqliteSetupError {
    /// The URL is not a `sqlite://` path.
    #[error("database.url: {0}")]
    Url(String),
    /// The file could not be opened or created.
    #[error("cannot open the SQLite database: {0}")]
    Open(String),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(String),
}

/// The file path of a `sqlite://PATH` URL (`sqlite:///abs/path` or `sqlite://relative/path`).
pub fn path_from_url(url: &str) -> Result<PathBuf, SqliteSetupError> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| SqliteSetupError::Url(format!("{url:?} is not a sqlite:// URL")))?;
    if path.is_empty() {
        return Err(SqliteSetupError::Url(
            "the sqlite:// URL names no file".into(),
        ));
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_file() {
        assert_eq!(
            path_from_url("sqlite:///var/lib/sc/db.sqlite3").unwrap(),
            PathBuf::from("/var/lib/sc/db.sqlite3")
        );
        assert_eq!(
            path_from_url("sqlite://data/db.sqlite3").unwrap(),
            PathBuf::from("data/db.sqlite3")
        );
        assert!(path_from_url("sqlite://").is_err());
        assert!(path_from_url("postgres://x").is_err());
    }
}
