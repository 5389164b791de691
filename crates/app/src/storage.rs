//! Opens the connector stores the [`Settings`] name, so the server and the sender agree on
//! what a database URL means:
//!
//! | `database_url` | metadata | secrets (unless `secrets_backend` says otherwise) |
//! |---|---|---|
//! | `postgres://…` | PostgreSQL | AWS Secrets Manager |
//! | `sqlite://PATH` | SQLite file at PATH | local encrypted store |
//! | none | SQLite file `DATA_DIR/connectors.sqlite3` | local encrypted store in `DATA_DIR/secrets`, key in `DATA_DIR/secrets.key` |

use std::path::{Path, PathBuf};
use std::sync::Arc;

use connector_adapters_aws::AwsSecretStore;
use connector_adapters_local_secrets::{KeySource, LocalSecretStore};
use connector_adapters_postgres::PgConnectorRepository;
use connector_adapters_sqlite::SqliteConnectorRepository;
use connector_instrumentation::Observed;
use connector_ports::{
    ApiKeyStore, ConnectorChanges, ConnectorRepository, OAuthStateStore, PoolStatus, SecretStore,
    SentMessageStore, SlackEventStore,
};
use secrecy::ExposeSecret as _;

use crate::error::AppError;
use crate::settings::{Settings, SettingsError, invalid};

pub use connector_adapters_local_secrets::{RotationReport, rotate_key};

/// Where the metadata lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metadata {
    /// A PostgreSQL server.
    Postgres,
    /// An SQLite file.
    Sqlite(PathBuf),
}

const URL_KEY: &str = "database.url";
const URL_ENV: &str = "CONNECTOR__DATABASE__URL";

impl Settings {
    /// Which metadata store the URL names.
    pub fn metadata(&self) -> Result<Metadata, SettingsError> {
        match self.database.url.as_ref().map(|u| u.expose_secret().trim()) {
            None => Ok(Metadata::Sqlite(self.data_dir().join("connectors.sqlite3"))),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Ok(Metadata::Postgres)
            }
            Some(u) if u.starts_with("sqlite:") => connector_adapters_sqlite::path_from_url(u)
                .map(Metadata::Sqlite)
                .map_err(|e| invalid(URL_KEY, URL_ENV, e.to_string())),
            Some(_) => Err(invalid(
                URL_KEY,
                URL_ENV,
                "must be a postgres:// or sqlite:// URL, or unset for the embedded mode",
            )),
        }
    }

    /// Whether secrets go to the local store (else Secrets Manager).
    pub fn local_secrets(&self) -> Result<bool, SettingsError> {
        match self.secrets.backend.as_deref() {
            Some("aws") => Ok(false),
            Some("local") => Ok(true),
            Some(other) => Err(invalid(
                "secrets.backend",
                "CONNECTOR__SECRETS__BACKEND",
                format!("must be `aws` or `local`, not {other:?}"),
            )),
            None => Ok(matches!(self.metadata()?, Metadata::Sqlite(_))),
        }
    }

    /// The local store's directory.
    pub fn secrets_dir(&self) -> PathBuf {
        self.secrets
            .local_dir
            .clone()
            .unwrap_or_else(|| self.data_dir().join("secrets"))
    }

    /// Where the local store's key comes from.
    pub fn key_source(&self) -> Result<KeySource, SettingsError> {
        match &self.secrets.local_key {
            Some(k) => KeySource::from_base64(k.expose_secret()).map_err(|e| {
                invalid(
                    "secrets.local_key",
                    "CONNECTOR__SECRETS__LOCAL_KEY",
                    e.to_string(),
                )
            }),
            None => Ok(KeySource::File(
                self.secrets
                    .local_key_file
                    .clone()
                    .unwrap_or_else(|| self.data_dir().join("secrets.key")),
            )),
        }
    }

    fn url(&self) -> Result<&str, SettingsError> {
        self.database
            .url
            .as_ref()
            .map(|u| u.expose_secret().trim())
            .ok_or_else(|| invalid(URL_KEY, URL_ENV, "not set"))
    }
}

/// Applies pending migrations to the database `settings` name; returns the versions applied.
pub async fn migrate(settings: &Settings) -> Result<Vec<String>, AppError> {
    match settings.metadata()? {
        Metadata::Postgres => connector_adapters_postgres::run_migrations(settings.url()?)
            .await
            .map_err(|e| AppError::Open(e.to_string())),
        Metadata::Sqlite(path) => connector_adapters_sqlite::run_migrations(&path)
            .await
            .map_err(|e| AppError::Open(e.to_string())),
    }
}

/// Opens the local secret store (for `rotate-key`).
pub fn open_local_secrets(settings: &Settings) -> Result<LocalSecretStore, AppError> {
    LocalSecretStore::open(settings.secrets_dir(), settings.key_source()?)
        .map_err(|e| AppError::Open(e.to_string()))
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
    /// Connector metadata.
    pub repo: Arc<dyn ConnectorRepository>,
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
    /// The database connection pool's state, for metrics.
    pub pool_status: Arc<dyn Fn() -> PoolStatus + Send + Sync>,
    /// Connector changes made by other processes, where the database announces them
    /// (PostgreSQL); `None` for an SQLite file.
    pub changes: Option<Arc<dyn ConnectorChanges>>,
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
    repo: Arc<dyn ConnectorRepository>,
    states: Arc<dyn OAuthStateStore>,
    api_keys: Arc<dyn ApiKeyStore>,
    sends: Arc<dyn SentMessageStore>,
    events: Arc<dyn SlackEventStore>,
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
            + 'static,
    {
        let db = Arc::new(Observed::new(db));
        let pooled = db.clone();
        Self {
            repo: db.clone(),
            states: db.clone(),
            api_keys: db.clone(),
            sends: db.clone(),
            events: db,
            pool_status: Arc::new(move || pool_status(pooled.inner())),
            description,
        }
    }
}

/// Opens the stores `settings` name, applying pending migrations first when told to.
pub async fn open(settings: &Settings, migrations: Migrate) -> Result<Storage, AppError> {
    let migrate_first = migrations == Migrate::Apply;
    if migrate_first {
        let applied = migrate(settings).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "database migrations applied");
        }
    }
    let changes: Option<Arc<dyn ConnectorChanges>> = match settings.metadata()? {
        Metadata::Postgres => Some(Arc::new(connector_adapters_postgres::PgChangeFeed::new(
            settings.url()?,
        ))),
        Metadata::Sqlite(_) => None,
    };
    let database = match settings.metadata()? {
        Metadata::Postgres => Database::of(
            PgConnectorRepository::connect(settings.url()?, &settings.repository())
                .await
                .map_err(|e| AppError::Open(e.to_string()))?,
            PgConnectorRepository::pool_status,
            "metadata in PostgreSQL".to_owned(),
        ),
        Metadata::Sqlite(path) if !migrate_first && !path.exists() => {
            return Err(AppError::Settings(invalid(
                "database.url / data_dir",
                "CONNECTOR__DATABASE__URL / CONNECTOR__DATA_DIR",
                format!(
                    "no embedded database at {}: start connector-server with this data directory first, or set CONNECTOR__DATABASE__URL to the server's database",
                    display(&path)
                ),
            )));
        }
        Metadata::Sqlite(path) => Database::of(
            SqliteConnectorRepository::open(&path, &settings.repository())
                .await
                .map_err(|e| AppError::Open(e.to_string()))?,
            SqliteConnectorRepository::pool_status,
            format!("metadata in SQLite file {}", display(&path)),
        ),
    };
    let (secrets, where_secrets): (Arc<dyn SecretStore>, String) = if settings.local_secrets()? {
        let store = open_local_secrets(settings)?;
        let key = match settings.key_source()? {
            KeySource::Inline(_) => "key from CONNECTOR__SECRETS__LOCAL_KEY".to_owned(),
            KeySource::File(p) => format!("key file {}", display(&p)),
        };
        let text = format!("secrets encrypted in {} ({key})", display(store.dir()));
        (Arc::new(Observed::new(store)), text)
    } else {
        (
            Arc::new(Observed::new(AwsSecretStore::new(&settings.aws()?).await)),
            format!(
                "secrets in AWS Secrets Manager ({})",
                settings
                    .aws
                    .endpoint_url
                    .as_deref()
                    .unwrap_or(&settings.aws.region)
            ),
        )
    };
    Ok(Storage {
        repo: database.repo,
        secrets,
        states: database.states,
        api_keys: database.api_keys,
        sends: database.sends,
        events: database.events,
        pool_status: database.pool_status,
        changes,
        description: format!("{}; {where_secrets}", database.description),
    })
}

fn display(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: Option<&str>, backend: Option<&str>) -> Settings {
        let mut s = Settings::defaults();
        s.database.url = url.map(|u| secrecy::SecretString::from(u.to_owned()));
        s.data_dir = Some(PathBuf::from("/var/lib/sc"));
        s.secrets.backend = backend.map(str::to_owned);
        s
    }

    #[test]
    fn the_database_url_picks_the_stores() {
        let s = settings(None, None);
        assert_eq!(
            s.metadata().unwrap(),
            Metadata::Sqlite("/var/lib/sc/connectors.sqlite3".into())
        );
        assert!(s.local_secrets().unwrap());
        assert_eq!(s.secrets_dir(), PathBuf::from("/var/lib/sc/secrets"));

        let s = settings(Some("postgres://u:pw@h/db"), None);
        assert_eq!(s.metadata().unwrap(), Metadata::Postgres);
        assert!(!s.local_secrets().unwrap());

        let s = settings(Some("sqlite:///tmp/x.db"), None);
        assert_eq!(s.metadata().unwrap(), Metadata::Sqlite("/tmp/x.db".into()));
        assert!(s.local_secrets().unwrap());

        assert!(
            settings(Some("postgres://h/db"), Some("local"))
                .local_secrets()
                .unwrap()
        );
        assert!(!settings(None, Some("aws")).local_secrets().unwrap());
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = settings(Some("mysql://x"), None)
            .metadata()
            .unwrap_err()
            .to_string();
        assert!(err.contains("CONNECTOR__DATABASE__URL"), "{err}");
        let err = settings(None, Some("vault"))
            .local_secrets()
            .unwrap_err()
            .to_string();
        assert!(err.contains("CONNECTOR__SECRETS__BACKEND"), "{err}");
    }
}
