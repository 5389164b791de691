//! Applying the migrations of `migrations/sqlite`, creating the file when needed.

use std::path::Path;

use diesel::Connection as _;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};

use crate::SqliteSetupError;
use crate::repository::pragmas;

/// The migrations of `migrations/sqlite`, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Creates the file (and its directory) if needed, readable by this user only (0600 and
/// 0700: it holds every tenant's connectors), and applies pending migrations; returns the
/// versions applied.
pub async fn run_migrations(path: &Path) -> Result<Vec<String>, SqliteSetupError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let open_err = |e: std::io::Error| SqliteSetupError::Open(e.to_string());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_dir(dir).map_err(open_err)?;
        }
        private_file(&path).map_err(open_err)?;
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

/// Creates `dir` (and its parents) when missing, the new ones 0700; an existing one is left as
/// it is (the operator's).
fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the database file empty and 0600 when missing, so SQLite (and its `-wal` and `-shm`
/// files, which take the database's mode) never makes it readable by others.
fn private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}
