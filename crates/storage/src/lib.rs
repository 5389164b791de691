//! Opens the connector stores a configuration names, so the server and the sender agree on
//! what a database URL means:
//!
//! | `database_url` | metadata | secrets (unless `secrets_backend` says otherwise) |
//! |---|---|---|
//! | `postgres://…` | PostgreSQL | AWS Secrets Manager |
//! | `sqlite://PATH` | SQLite file at PATH | local encrypted store |
//! | none | SQLite file `DATA_DIR/connectors.sqlite3` | local encrypted store in `DATA_DIR/secrets`, key in `DATA_DIR/secrets.key` |
//!
//! # Must never
//! Hold business rules; print a database password or a key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use connector_adapters_aws::{AwsSecretStore, AwsSettings};
use connector_adapters_local_secrets::{KeySource, LocalSecretStore};
use connector_adapters_postgres::{PgConnectorRepository, PgSettings};
use connector_adapters_sqlite::SqliteConnectorRepository;
use connector_ports::{ConnectorRepository, OAuthStateStore, SecretStore};
use secrecy::{ExposeSecret as _, SecretString};

pub use connector_adapters_local_secrets::{RotationReport, rotate_key};

/// What the stores are, as configured.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// `postgres://…`, `sqlite://PATH`, or `None` for the embedded default.
    pub database_url: Option<SecretString>,
    /// Where the embedded mode keeps its files.
    pub data_dir: PathBuf,
    /// Most pooled database connections.
    pub max_connections: u32,
    /// `aws` or `local`; `None` follows the database.
    pub secrets_backend: Option<String>,
    /// Secrets Manager settings, for the `aws` backend.
    pub aws: AwsSettings,
    /// The local store's key as base64 (`CONNECTOR__SECRETS__LOCAL_KEY`); wins over the file.
    pub local_key: Option<SecretString>,
    /// The local store's key file; default `DATA_DIR/secrets.key`.
    pub local_key_file: Option<PathBuf>,
    /// The local store's directory; default `DATA_DIR/secrets`.
    pub local_secrets_dir: Option<PathBuf>,
}

/// Where the metadata lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metadata {
    /// A PostgreSQL server.
    Postgres,
    /// An SQLite file.
    Sqlite(PathBuf),
}

/// A configuration error or a store that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A setting is invalid; `key` names it.
    #[error("{key}: {reason}")]
    Invalid {
        /// The setting and its environment variable.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A store could not be opened or migrated.
    #[error("{0}")]
    Open(String),
}

fn invalid(key: &'static str, reason: impl Into<String>) -> StorageError {
    StorageError::Invalid {
        key,
        reason: reason.into(),
    }
}

const URL_KEY: &str = "database.url (CONNECTOR__DATABASE__URL)";
const BACKEND_KEY: &str = "secrets.backend (CONNECTOR__SECRETS__BACKEND)";

impl StorageSettings {
    /// Which metadata store the URL names.
    pub fn metadata(&self) -> Result<Metadata, StorageError> {
        let url = self
            .database_url
            .as_ref()
            .map(|u| u.expose_secret().trim())
            .filter(|u| !u.is_empty());
        match url {
            None => Ok(Metadata::Sqlite(self.data_dir.join("connectors.sqlite3"))),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Ok(Metadata::Postgres)
            }
            Some(u) if u.starts_with("sqlite:") => connector_adapters_sqlite::path_from_url(u)
                .map(Metadata::Sqlite)
                .map_err(|e| invalid(URL_KEY, e.to_string())),
            Some(_) => Err(invalid(
                URL_KEY,
                "must be a postgres:// or sqlite:// URL, or unset for the embedded mode",
            )),
        }
    }

    /// Whether secrets go to the local store (else Secrets Manager).
    pub fn local_secrets(&self) -> Result<bool, StorageError> {
        match self.secrets_backend.as_deref() {
            Some("aws") => Ok(false),
            Some("local") => Ok(true),
            Some(other) => Err(invalid(
                BACKEND_KEY,
                format!("must be `aws` or `local`, not {other:?}"),
            )),
            None => Ok(matches!(self.metadata()?, Metadata::Sqlite(_))),
        }
    }

    /// The local store's directory.
    pub fn secrets_dir(&self) -> PathBuf {
        self.local_secrets_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secrets"))
    }

    /// Where the local store's key comes from.
    pub fn key_source(&self) -> Result<KeySource, StorageError> {
        match &self.local_key {
            Some(k) if !k.expose_secret().is_empty() => KeySource::from_base64(k.expose_secret())
                .map_err(|e| StorageError::Open(e.to_string())),
            _ => Ok(KeySource::File(
                self.local_key_file
                    .clone()
                    .unwrap_or_else(|| self.data_dir.join("secrets.key")),
            )),
        }
    }

    /// Applies pending migrations; returns the versions applied.
    pub async fn migrate(&self) -> Result<Vec<String>, StorageError> {
        match self.metadata()? {
            Metadata::Postgres => connector_adapters_postgres::run_migrations(self.url()?)
                .await
                .map_err(|e| StorageError::Open(e.to_string())),
            Metadata::Sqlite(path) => connector_adapters_sqlite::run_migrations(&path)
                .await
                .map_err(|e| StorageError::Open(e.to_string())),
        }
    }

    fn url(&self) -> Result<&str, StorageError> {
        self.database_url
            .as_ref()
            .map(|u| u.expose_secret().trim())
            .ok_or_else(|| invalid(URL_KEY, "not set"))
    }

    /// Opens the local secret store (for `rotate-key`).
    pub fn open_local_secrets(&self) -> Result<LocalSecretStore, StorageError> {
        LocalSecretStore::open(self.secrets_dir(), self.key_source()?)
            .map_err(|e| StorageError::Open(e.to_string()))
    }
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
    /// A one-line, secret-free description for the start-up log.
    pub description: String,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

/// Opens the stores `settings` name; with `migrate`, applies pending migrations first.
pub async fn open(settings: &StorageSettings, migrate: bool) -> Result<Storage, StorageError> {
    if migrate {
        let applied = settings.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "database migrations applied");
        }
    }
    let (repo, states, metadata): (
        Arc<dyn ConnectorRepository>,
        Arc<dyn OAuthStateStore>,
        String,
    ) = match settings.metadata()? {
        Metadata::Postgres => {
            let pg = Arc::new(
                PgConnectorRepository::connect(
                    settings.url()?,
                    &PgSettings {
                        max_connections: settings.max_connections.max(1),
                        ..PgSettings::default()
                    },
                )
                .await
                .map_err(|e| StorageError::Open(e.to_string()))?,
            );
            (pg.clone(), pg, "metadata in PostgreSQL".to_owned())
        }
        Metadata::Sqlite(path) if !migrate && !path.exists() => {
            return Err(invalid(
                "database.url (CONNECTOR__DATABASE__URL) / data_dir (CONNECTOR__DATA_DIR)",
                format!(
                    "no embedded database at {}: start connector-server with this data directory first, or set CONNECTOR__DATABASE__URL to the server's database",
                    display(&path)
                ),
            ));
        }
        Metadata::Sqlite(path) => {
            let sqlite = Arc::new(
                SqliteConnectorRepository::open(&path, settings.max_connections)
                    .await
                    .map_err(|e| StorageError::Open(e.to_string()))?,
            );
            (
                sqlite.clone(),
                sqlite,
                format!("metadata in SQLite file {}", display(&path)),
            )
        }
    };
    let (secrets, where_secrets): (Arc<dyn SecretStore>, String) = if settings.local_secrets()? {
        let store = settings.open_local_secrets()?;
        let key = match settings.key_source()? {
            KeySource::Inline(_) => "key from CONNECTOR__SECRETS__LOCAL_KEY".to_owned(),
            KeySource::File(p) => format!("key file {}", display(&p)),
        };
        let text = format!("secrets encrypted in {} ({key})", display(store.dir()));
        (Arc::new(store), text)
    } else {
        (
            Arc::new(AwsSecretStore::new(&settings.aws).await),
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
        repo,
        secrets,
        states,
        description: format!("{metadata}; {where_secrets}"),
    })
}

/// The embedded mode's default data directory: `$XDG_DATA_HOME/slack-connector`, else
/// `~/.local/share/slack-connector`, else `./slack-connector-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("slack-connector");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/slack-connector");
    }
    PathBuf::from("slack-connector-data")
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

    fn settings(url: Option<&str>, backend: Option<&str>) -> StorageSettings {
        StorageSettings {
            database_url: url.map(|u| SecretString::from(u.to_owned())),
            data_dir: PathBuf::from("/var/lib/sc"),
            max_connections: 4,
            secrets_backend: backend.map(str::to_owned),
            aws: AwsSettings::default(),
            local_key: None,
            local_key_file: None,
            local_secrets_dir: None,
        }
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
