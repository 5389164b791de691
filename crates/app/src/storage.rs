//! Opens the connector stores a [`StorageConfig`] names, so the server and the sender agree
//! on what a database URL means (the configuration decides, [`crate::config`]):
//!
//! | `database_url` | metadata | secrets (unless `secrets_backend` says otherwise) |
//! |---|---|---|
//! | `postgres://…` | PostgreSQL | AWS Secrets Manager |
//! | `sqlite://PATH` | SQLite file at PATH | local encrypted store |
//! | none | SQLite file `DATA_DIR/connectors.sqlite3` | local encrypted store in `DATA_DIR/secrets`, key in `DATA_DIR/secrets.key` |
//!
//! PostgreSQL and Secrets Manager come with the cargo feature `postgres`, SQLite and the local
//! store with `embedded` (both on by default); a configuration naming a store the build left
//! out is refused by name.

use std::path::Path;
use std::sync::Arc;

use connector_instrumentation::Observed;
use connector_ports::{
    ApiKeyStore, ConnectorChanges, ConnectorRepository, Connectors, EventLog, EventNotices,
    OAuthStateStore, Outbox, PoolStatus, RepositorySettings, SecretStore, SentMessageStore,
    SlackEventStore,
};
#[cfg(feature = "postgres")]
use secrecy::ExposeSecret as _;

use crate::config::{Metadata, SecretsStore, StorageConfig, invalid};
use crate::error::AppError;

#[cfg(feature = "embedded")]
pub use embedded::{RotationReport, open_local_secrets, rotate_key};

/// The store a configuration names but this build left out (its cargo feature is off).
#[allow(dead_code)]
fn not_built(key: &'static str, what: &str, feature: &str) -> AppError {
    AppError::Config(invalid(
        key,
        format!("this build has no {what}: it needs the cargo feature `{feature}`"),
    ))
}

/// Applies pending migrations to the metadata database; returns the versions applied.
pub async fn migrate(metadata: &Metadata) -> Result<Vec<String>, AppError> {
    match metadata {
        #[cfg(feature = "postgres")]
        Metadata::Postgres { url } => {
            connector_adapters_postgres::run_migrations(url.expose_secret())
                .await
                .map_err(|e| AppError::Open(e.to_string()))
        }
        #[cfg(feature = "embedded")]
        Metadata::Sqlite { path } => connector_adapters_sqlite::run_migrations(path)
            .await
            .map_err(|e| AppError::Open(e.to_string())),
        #[allow(unreachable_patterns)]
        other => Err(missing_metadata(other)),
    }
}

#[allow(dead_code)]
fn missing_metadata(metadata: &Metadata) -> AppError {
    match metadata {
        Metadata::Postgres { .. } => not_built("database.url", "PostgreSQL support", "postgres"),
        Metadata::Sqlite { .. } => not_built("database.url", "embedded SQLite support", "embedded"),
    }
}

#[cfg(feature = "embedded")]
mod embedded {
    use std::path::Path;

    use connector_adapters_local_secrets::{KeySource, LocalSecretStore};

    pub use connector_adapters_local_secrets::{RotationReport, rotate_key};

    use crate::config::LocalKey;
    use crate::error::AppError;

    /// Opens the local secret store in `dir` with `key` (for `rotate-key`).
    pub fn open_local_secrets(dir: &Path, key: &LocalKey) -> Result<LocalSecretStore, AppError> {
        let source = match key {
            LocalKey::Inline(k) => KeySource::Inline(k.clone()),
            LocalKey::File(path) => KeySource::File(path.clone()),
        };
        LocalSecretStore::open(dir.to_owned(), source).map_err(|e| AppError::Open(e.to_string()))
    }
}

#[cfg(feature = "postgres")]
fn aws_settings(aws: &crate::config::AwsConfig) -> connector_adapters_aws::AwsSettings {
    connector_adapters_aws::AwsSettings {
        region: aws.region.clone(),
        endpoint_url: aws.endpoint_url.clone(),
        credentials: aws.credentials.as_ref().map(|(id, secret)| {
            connector_adapters_aws::StaticCredentials {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
            }
        }),
        ..connector_adapters_aws::AwsSettings::default()
    }
}

/// Whether [`open`] applies pending migrations first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrate {
    /// Apply them (the server; an embedded database file is created when missing).
    Apply,
    /// Leave the schema alone (the sender: the server owns it).
    Skip,
}

/// The opened stores.
#[derive(Clone)]
pub struct Storage {
    /// Connector metadata, by role.
    pub connectors: Connectors,
    /// Connector secrets.
    pub secrets: Arc<dyn SecretStore>,
    /// Pending OAuth installs (in the same database as the metadata).
    pub states: Arc<dyn OAuthStateStore>,
    /// API keys (in the same database as the metadata).
    pub api_keys: Arc<dyn ApiKeyStore>,
    /// Idempotent sends (in the same database as the metadata).
    pub sends: Arc<dyn SentMessageStore>,
    /// Slack events handled (in the same database as the metadata).
    pub events: Arc<dyn SlackEventStore>,
    /// The inbound event log (in the same database as the metadata).
    pub log: Arc<dyn EventLog>,
    /// The outbox of queued messages (in the same database).
    pub outbox: Arc<dyn Outbox>,
    /// The database connection pool's state, for metrics.
    pub pool_status: Arc<dyn Fn() -> PoolStatus + Send + Sync>,
    /// Connector changes made by other processes, where the database announces them
    /// (PostgreSQL); `None` for an SQLite file.
    pub changes: Option<Arc<dyn ConnectorChanges>>,
    /// Appends to the inbound event log made by other processes, where the database announces
    /// them (PostgreSQL); `None` for an SQLite file (one process appends and streams).
    pub event_notices: Option<Arc<dyn EventNotices>>,
    /// A one-line, secret-free description for the start-up log.
    pub description: String,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

/// The ports one database serves.
struct Database {
    connectors: Connectors,
    states: Arc<dyn OAuthStateStore>,
    api_keys: Arc<dyn ApiKeyStore>,
    sends: Arc<dyn SentMessageStore>,
    events: Arc<dyn SlackEventStore>,
    log: Arc<dyn EventLog>,
    outbox: Arc<dyn Outbox>,
    pool_status: Arc<dyn Fn() -> PoolStatus + Send + Sync>,
    description: String,
}

impl Database {
    /// Every port of `db`, each call observed (counted, timed, traced); `pool_status` reads
    /// its pool.
    fn of<D>(db: D, pool_status: fn(&D) -> PoolStatus, description: String) -> Self
    where
        D: ConnectorRepository
            + OAuthStateStore
            + ApiKeyStore
            + SentMessageStore
            + SlackEventStore
            + EventLog
            + Outbox
            + 'static,
    {
        let db = Arc::new(Observed::new(db));
        let pooled = db.clone();
        Self {
            connectors: Connectors::new(db.clone()),
            states: db.clone(),
            api_keys: db.clone(),
            sends: db.clone(),
            events: db.clone(),
            log: db.clone(),
            outbox: db,
            pool_status: Arc::new(move || pool_status(pooled.inner())),
            description,
        }
    }
}

/// Opens the stores `storage` names, pooled as `pool` says, applying pending migrations
/// first when told to.
pub async fn open(
    storage: &StorageConfig,
    pool: &RepositorySettings,
    migrations: Migrate,
) -> Result<Storage, AppError> {
    let migrate_first = migrations == Migrate::Apply;
    if migrate_first {
        let applied = migrate(&storage.metadata).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "database migrations applied");
        }
    }
    type Feeds = Option<(Arc<dyn ConnectorChanges>, Arc<dyn EventNotices>)>;
    let (database, feeds): (Database, Feeds) = match &storage.metadata {
        #[cfg(feature = "postgres")]
        Metadata::Postgres { url } => {
            use connector_adapters_postgres::PgConnectorRepository;
            (
                Database::of(
                    PgConnectorRepository::connect(url.expose_secret(), pool)
                        .await
                        .map_err(|e| AppError::Open(e.to_string()))?,
                    PgConnectorRepository::pool_status,
                    "metadata in PostgreSQL".to_owned(),
                ),
                Some((
                    Arc::new(connector_adapters_postgres::PgChangeFeed::new(
                        url.expose_secret(),
                    )),
                    Arc::new(connector_adapters_postgres::PgEventFeed::new(
                        url.expose_secret(),
                    )),
                )),
            )
        }
        Metadata::Sqlite { path } if !migrate_first && !path.exists() => {
            return Err(AppError::Config(invalid(
                "database.url",
                format!(
                    "no embedded database at {}: start connector-server with this data \
                         directory (CONNECTOR__DATA_DIR) first, or set CONNECTOR__DATABASE__URL \
                         to the server's database",
                    display(path)
                ),
            )));
        }
        #[cfg(feature = "embedded")]
        Metadata::Sqlite { path } => {
            use connector_adapters_sqlite::SqliteConnectorRepository;
            (
                Database::of(
                    SqliteConnectorRepository::open(path, pool)
                        .await
                        .map_err(|e| AppError::Open(e.to_string()))?,
                    SqliteConnectorRepository::pool_status,
                    format!("metadata in SQLite file {}", display(path)),
                ),
                None,
            )
        }
        #[allow(unreachable_patterns)]
        other => return Err(missing_metadata(other)),
    };
    let (secrets, where_secrets): (Arc<dyn SecretStore>, String) = match &storage.secrets {
        #[cfg(feature = "embedded")]
        SecretsStore::Local { dir, key } => {
            use crate::config::LocalKey;
            let store = open_local_secrets(dir, key)?;
            let key = match key {
                LocalKey::Inline(_) => "key from CONNECTOR__SECRETS__LOCAL_KEY".to_owned(),
                LocalKey::File(p) => format!("key file {}", display(p)),
            };
            let text = format!("secrets encrypted in {} ({key})", display(store.dir()));
            (Arc::new(Observed::new(store)), text)
        }
        #[cfg(feature = "postgres")]
        SecretsStore::Aws(aws) => (
            Arc::new(Observed::new(
                connector_adapters_aws::AwsSecretStore::new(&aws_settings(aws)).await,
            )),
            format!(
                "secrets in AWS Secrets Manager ({})",
                aws.endpoint_url.as_deref().unwrap_or(&aws.region)
            ),
        ),
        #[allow(unreachable_patterns)]
        SecretsStore::Aws(_) => {
            return Err(not_built(
                "secrets.backend",
                "AWS Secrets Manager support",
                "postgres",
            ));
        }
        #[allow(unreachable_patterns)]
        SecretsStore::Local { .. } => {
            return Err(not_built(
                "secrets.backend",
                "local secret store support",
                "embedded",
            ));
        }
    };
    Ok(Storage {
        connectors: database.connectors,
        secrets,
        states: database.states,
        api_keys: database.api_keys,
        sends: database.sends,
        events: database.events,
        log: database.log,
        outbox: database.outbox,
        pool_status: database.pool_status,
        changes: feeds.as_ref().map(|(changes, _)| changes.clone()),
        event_notices: feeds.map(|(_, events)| events),
        description: format!("{}; {where_secrets}", database.description),
    })
}

fn display(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}
