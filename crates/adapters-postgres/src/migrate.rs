//! Embedded migrations, applied at start-up and by `connector-server migrate`.

use diesel::RunQueryDsl as _;
use diesel::connection::SimpleConnection as _;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};

use crate::PgSetupError;

/// The migrations of `migrations/postgres`, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// An arbitrary, fixed key for `pg_advisory_lock`, so that replicas starting together apply
/// migrations one at a time.
const MIGRATION_LOCK_KEY: i64 = 0x5c_0c_0e_c7_00_00_00_01;

/// Applies every pending migration to the database at `url`; returns the versions applied.
pub async fn run_migrations(url: &str) -> Result<Vec<String>, PgSetupError> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        use diesel::Connection as _;
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url)
            .map_err(|e| PgSetupError::Connect(e.to_string()))?;
        diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
            .execute(&mut conn)
            .map_err(|e| PgSetupError::Migrate(e.to_string()))?;
        let result = conn
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(|v| v.to_string()).collect())
            .map_err(|e| PgSetupError::Migrate(e.to_string()));
        let _ = conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"));
        result
    })
    .await
    .map_err(|e| PgSetupError::Migrate(format!("migration task failed: {e}")))?
}
