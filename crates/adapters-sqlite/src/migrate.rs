//! Applying the migrations of `migrations/sqlite`, creating the file when needed.

use std::path::Path;

use diesel::Connection as _;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};

use crate::SqliteSetupError;
use crate::repository::pragmas;

/// The migrations of `migrations/sqlite`, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Creates the file (and its directory) if needed and applies pending migrations; returns the
/// versions applied.
pub async fn run_migrations(path: &Path) -> Result<Vec<String>, SqliteSetupError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| SqliteSetupError::Open(e.to_string()))?;
        }
        let mut conn = SqliteConnection::establish(&path.to_string_lossy())
            .map_err(|e| SqliteSetupError::Open(e.to_string()))?;
        diesel::connection::SimpleConnection::batch_execute(
            &mut conn,
            &pragmas(connector_ports::RepositorySettings::default().connect_timeout),
        )
        .map_err(|e| SqliteSetupError::Open(e.to_string()))?;
        conn.run_pending_migrations(MIGRATIONS)
            .map(|v| v.iter().map(|v| v.to_string()).collect())
            .map_err(|e| SqliteSetupError::Migrate(e.to_string()))
    })
    .await
    .map_err(|e| SqliteSetupError::Migrate(format!("migration task failed: {e}")))?
}
