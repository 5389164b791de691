//! [`SenderConfig`]: everything the sender needs, built in code, from the environment or from
//! a file.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::Error;

/// How the sender reaches PostgreSQL, Secrets Manager and Slack.
///
/// Build it in code ([`SenderConfig::new`] plus the `with_…` methods, or a struct literal with
/// `..SenderConfig::new(url)`), from the environment ([`SenderConfig::from_env`], the same
/// `CONNECTOR__…` variables as `connector-server`), or from a TOML file
/// ([`SenderConfig::from_file`], laid out like the server's). `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// The connectors database (`CONNECTOR__DATABASE__URL`): `postgres://…`, `sqlite://PATH`,
    /// or `None` for the embedded mode's default file under `data_dir`; may hold a password.
    pub database_url: Option<SecretString>,
    /// The embedded mode's data directory (`CONNECTOR__DATA_DIR`), as the server's.
    pub data_dir: PathBuf,
    /// `aws` or `local` (`CONNECTOR__SECRETS__BACKEND`); `None` follows the database.
    pub secrets_backend: Option<String>,
    /// The local store's key, base64 (`CONNECTOR__SECRETS__LOCAL_KEY`).
    pub local_key: Option<SecretString>,
    /// The local store's key file (`CONNECTOR__SECRETS__LOCAL_KEY_FILE`).
    pub local_key_file: Option<PathBuf>,
    /// The local store's directory (`CONNECTOR__SECRETS__LOCAL_DIR`).
    pub local_secrets_dir: Option<PathBuf>,
    /// Pooled database connections at most (`CONNECTOR__DATABASE__MAX_CONNECTIONS`, default 4).
    pub max_connections: u32,
    /// AWS region (`CONNECTOR__AWS__REGION`, default `us-east-1`).
    pub aws_region: String,
    /// Secrets Manager endpoint override, e.g. LocalStack (`CONNECTOR__AWS__ENDPOINT_URL`).
    pub aws_endpoint_url: Option<String>,
    /// Static AWS credentials (`CONNECTOR__AWS__ACCESS_KEY_ID`); without them the standard
    /// AWS chain applies.
    pub aws_access_key_id: Option<String>,
    /// (`CONNECTOR__AWS__SECRET_ACCESS_KEY`).
    pub aws_secret_access_key: Option<SecretString>,
    /// Secret name prefix, as the server's (`CONNECTOR__SECRETS__PREFIX`, default
    /// `slack-connector/`).
    pub secret_prefix: String,
    /// Slack Web API base (`CONNECTOR__SLACK__API_BASE_URL`, default `https://slack.com/api/`).
    pub slack_api_base_url: String,
    /// Upper bound of one Slack call, retries and `Retry-After` waits included
    /// (`CONNECTOR__SLACK__DEADLINE_SECS`, default 30 s).
    pub slack_deadline: Duration,
    /// Upper bound of one HTTP attempt to Slack (default 10 s).
    pub slack_request_timeout: Duration,
    /// How long a connector's token is reused before it is read again
    /// (`CONNECTOR__SENDER__TOKEN_CACHE_TTL_SECS`, default 300 s; zero turns caching off).
    pub token_cache_ttl: Duration,
    /// The Slack app's client ID (`CONNECTOR__SLACK__CLIENT_ID`): with the secret, lets the
    /// sender refresh rotating tokens that are due.
    pub slack_client_id: Option<String>,
    /// (`CONNECTOR__SLACK__CLIENT_SECRET`).
    pub slack_client_secret: Option<SecretString>,
    /// Only send through this tenant's connectors (`CONNECTOR__SENDER__TENANT_ID`); others are
    /// not found. `None`: any tenant's.
    pub tenant_id: Option<String>,
}

impl SenderConfig {
    /// A configuration for the database at `database_url`, with every other value at its
    /// default (real AWS through the standard credential chain, real Slack).
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: Some(SecretString::from(database_url.into())),
            ..Self::embedded(connector_storage::default_data_dir())
        }
    }

    /// A configuration for a server in embedded mode whose data directory is `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            database_url: None,
            data_dir: data_dir.into(),
            secrets_backend: None,
            local_key: None,
            local_key_file: None,
            local_secrets_dir: None,
            max_connections: 4,
            aws_region: "us-east-1".into(),
            aws_endpoint_url: None,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            secret_prefix: "slack-connector/".into(),
            slack_api_base_url: "https://slack.com/api/".into(),
            slack_deadline: Duration::from_secs(30),
            slack_request_timeout: Duration::from_secs(10),
            token_cache_ttl: Duration::from_secs(300),
            slack_client_id: None,
            slack_client_secret: None,
            tenant_id: None,
        }
    }

    /// Uses a Secrets Manager endpoint such as LocalStack's.
    pub fn with_aws_endpoint(mut self, url: impl Into<String>) -> Self {
        self.aws_endpoint_url = Some(url.into());
        self
    }

    /// Uses static AWS credentials.
    pub fn with_aws_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.aws_access_key_id = Some(access_key_id.into());
        self.aws_secret_access_key = Some(SecretString::from(secret_access_key.into()));
        self
    }

    /// Uses another secret name prefix (it must match the server's).
    pub fn with_secret_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.secret_prefix = prefix.into();
        self
    }

    /// Uses another Slack Web API base URL.
    pub fn with_slack_api_base_url(mut self, url: impl Into<String>) -> Self {
        self.slack_api_base_url = url.into();
        self
    }

    /// Sets the token cache TTL (zero turns caching off).
    pub fn with_token_cache_ttl(mut self, ttl: Duration) -> Self {
        self.token_cache_ttl = ttl;
        self
    }

    /// Only sends through connectors of `tenant_id`.
    pub fn with_tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// Reads the `CONNECTOR__…` environment variables (the server's names).
    pub fn from_env() -> Result<Self, Error> {
        Self::load(None, None)
    }

    /// Reads a TOML file laid out like the server's (`[database] url = …`), then the
    /// environment, which wins.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::load(Some(path.as_ref()), None)
    }

    /// Like [`SenderConfig::from_file`] / [`SenderConfig::from_env`], reading `env` instead of
    /// the process environment.
    pub fn load(file: Option<&Path>, env: Option<HashMap<String, String>>) -> Result<Self, Error> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("CONNECTOR")
                .prefix_separator("__")
                .separator("__")
                .source(env),
        );
        let raw: Raw = builder
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| Error::Config {
                key: "configuration",
                reason: e.to_string(),
            })?;
        let mut c = Self::embedded(
            raw.data_dir
                .clone()
                .unwrap_or_else(connector_storage::default_data_dir),
        );
        c.database_url = raw.database.url.filter(|u| !u.expose_secret().is_empty());
        c.secrets_backend = raw.secrets.backend.filter(|v| !v.is_empty());
        c.local_key = raw.secrets.local_key;
        c.local_key_file = raw.secrets.local_key_file;
        c.local_secrets_dir = raw.secrets.local_dir;
        if let Some(v) = raw.database.max_connections {
            c.max_connections = v;
        }
        if let Some(v) = raw.aws.region {
            c.aws_region = v;
        }
        c.aws_endpoint_url = raw.aws.endpoint_url.filter(|v| !v.is_empty());
        c.aws_access_key_id = raw.aws.access_key_id;
        c.aws_secret_access_key = raw.aws.secret_access_key;
        if let Some(v) = raw.secrets.prefix {
            c.secret_prefix = v;
        }
        if let Some(v) = raw.slack.api_base_url {
            c.slack_api_base_url = v;
        }
        c.slack_client_id = raw.slack.client_id.filter(|v| !v.is_empty());
        c.slack_client_secret = raw.slack.client_secret;
        if let Some(v) = raw.slack.deadline_secs {
            c.slack_deadline = Duration::from_secs(v);
        }
        if let Some(v) = raw.sender.token_cache_ttl_secs {
            c.token_cache_ttl = Duration::from_secs(v);
        }
        c.tenant_id = raw.sender.tenant_id.filter(|v| !v.is_empty());
        Ok(c)
    }

    /// A fingerprint of every field, secrets included (hashed, never shown), so that the
    /// static [`send_message`](crate::send_message) reuses a [`Sender`](crate::Sender) only
    /// for an identical configuration.
    pub(crate) fn fingerprint(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.database_url
            .as_ref()
            .map(|u| u.expose_secret().to_owned())
            .hash(&mut h);
        self.data_dir.hash(&mut h);
        self.secrets_backend.hash(&mut h);
        self.local_key
            .as_ref()
            .map(|k| k.expose_secret().to_owned())
            .hash(&mut h);
        self.local_key_file.hash(&mut h);
        self.local_secrets_dir.hash(&mut h);
        self.max_connections.hash(&mut h);
        self.aws_region.hash(&mut h);
        self.aws_endpoint_url.hash(&mut h);
        self.aws_access_key_id.hash(&mut h);
        self.aws_secret_access_key
            .as_ref()
            .map(|s| s.expose_secret().to_owned())
            .hash(&mut h);
        self.secret_prefix.hash(&mut h);
        self.slack_api_base_url.hash(&mut h);
        self.slack_deadline.hash(&mut h);
        self.slack_request_timeout.hash(&mut h);
        self.token_cache_ttl.hash(&mut h);
        self.tenant_id.hash(&mut h);
        self.slack_client_id.hash(&mut h);
        self.slack_client_secret
            .as_ref()
            .map(|s| s.expose_secret().to_owned())
            .hash(&mut h);
        h.finish()
    }
}

/// The server's configuration layout, the parts the sender reads.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Raw {
    data_dir: Option<PathBuf>,
    database: RawDatabase,
    aws: RawAws,
    secrets: RawSecrets,
    slack: RawSlack,
    sender: RawSender,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawDatabase {
    url: Option<SecretString>,
    max_connections: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawAws {
    region: Option<String>,
    endpoint_url: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<SecretString>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSecrets {
    prefix: Option<String>,
    backend: Option<String>,
    local_key: Option<SecretString>,
    local_key_file: Option<PathBuf>,
    local_dir: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSlack {
    api_base_url: Option<String>,
    deadline_secs: Option<u64>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSender {
    token_cache_ttl_secs: Option<u64>,
    tenant_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn reads_the_servers_variable_names() {
        let c = SenderConfig::load(
            None,
            env(&[
                ("CONNECTOR__DATABASE__URL", "postgres://u:hunter2@h/db"),
                ("CONNECTOR__AWS__REGION", "eu-west-1"),
                ("CONNECTOR__AWS__ENDPOINT_URL", "http://127.0.0.1:4566"),
                ("CONNECTOR__AWS__ACCESS_KEY_ID", "AKIATEST"),
                ("CONNECTOR__AWS__SECRET_ACCESS_KEY", "very-secret-key"),
                ("CONNECTOR__SECRETS__PREFIX", "team/"),
                ("CONNECTOR__SLACK__API_BASE_URL", "http://127.0.0.1:1/api/"),
                ("CONNECTOR__SLACK__DEADLINE_SECS", "7"),
                ("CONNECTOR__SENDER__TOKEN_CACHE_TTL_SECS", "0"),
            ]),
        )
        .unwrap();
        assert_eq!(c.aws_region, "eu-west-1");
        assert_eq!(c.aws_endpoint_url.as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(c.secret_prefix, "team/");
        assert_eq!(c.slack_deadline, Duration::from_secs(7));
        assert_eq!(c.token_cache_ttl, Duration::ZERO);
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("very-secret-key"), "{shown}");
    }

    #[test]
    fn a_file_then_the_environment() {
        let dir = std::env::temp_dir().join(format!("sender-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sender.toml");
        std::fs::write(
            &path,
            "[database]\nurl = \"postgres://file/db\"\n[secrets]\nprefix = \"from-file/\"\n",
        )
        .unwrap();
        let c = SenderConfig::load(Some(&path), env(&[("CONNECTOR__SECRETS__PREFIX", "env/")]))
            .unwrap();
        assert_eq!(
            c.database_url.as_ref().unwrap().expose_secret(),
            "postgres://file/db"
        );
        assert_eq!(c.secret_prefix, "env/");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn without_a_database_url_the_sender_follows_the_embedded_server() {
        let c = SenderConfig::load(None, env(&[("CONNECTOR__DATA_DIR", "/srv/sc")])).unwrap();
        assert!(c.database_url.is_none());
        assert_eq!(c.data_dir, PathBuf::from("/srv/sc"));
    }

    #[test]
    fn fingerprints_tell_configurations_apart() {
        let a = SenderConfig::new("postgres://a/db");
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
        assert_ne!(
            a.fingerprint(),
            a.clone().with_secret_prefix("x/").fingerprint()
        );
        assert_ne!(
            a.fingerprint(),
            SenderConfig::new("postgres://b/db").fingerprint()
        );
    }
}
