//! Typed configuration: built-in defaults, then an optional file, then `CONNECTOR__…`
//! environment variables (`__` separates sections: `CONNECTOR__GRPC__LISTEN_ADDR` is
//! `grpc.listen_addr`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use connector_adapters_aws::{AwsSettings, StaticCredentials};
use connector_storage::StorageSettings;
use secrecy::SecretString;
use serde::Deserialize;

/// Everything the server can be told.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// `CONNECTOR__DATA_DIR`: where the embedded mode keeps its files (default
    /// `$XDG_DATA_HOME/slack-connector`, else `~/.local/share/slack-connector`).
    pub data_dir: Option<PathBuf>,
    /// The gRPC listener.
    pub grpc: GrpcSettings,
    /// The HTTP listener (OAuth redirect and metrics; not served by this release).
    pub http: HttpSettings,
    /// The metadata database.
    pub database: DatabaseSettings,
    /// AWS (Secrets Manager).
    pub aws: AwsSection,
    /// Secret naming and backend.
    pub secrets: SecretsSection,
    /// Slack's Web API and the Slack app.
    pub slack: SlackSection,
    /// Sending messages (`SendMessage`).
    pub sender: SenderSection,
    /// The background reconciler.
    pub reconciler: ReconcilerSection,
    /// Logging.
    pub log: LogSection,
}

/// `grpc.*`
#[derive(Debug, Clone, Deserialize)]
pub struct GrpcSettings {
    /// `CONNECTOR__GRPC__LISTEN_ADDR`, default `0.0.0.0:50051`.
    pub listen_addr: SocketAddr,
    /// How long in-flight calls may drain after SIGINT/SIGTERM, in seconds (default 10).
    pub shutdown_grace_secs: u64,
}

/// `http.*`
#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    /// `CONNECTOR__HTTP__LISTEN_ADDR`, default `0.0.0.0:8080`.
    pub listen_addr: SocketAddr,
}

/// `database.*`
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `CONNECTOR__DATABASE__URL`: `postgres://…`, `sqlite://PATH`, or unset for the
    /// embedded mode. May contain a password, so it is a secret.
    pub url: Option<SecretString>,
    /// Most pooled connections (default 16).
    pub max_connections: u32,
}

/// `aws.*`
#[derive(Debug, Clone, Deserialize)]
pub struct AwsSection {
    /// `CONNECTOR__AWS__REGION`, default `us-east-1`.
    pub region: String,
    /// `CONNECTOR__AWS__ENDPOINT_URL`: a Secrets Manager endpoint override (LocalStack).
    pub endpoint_url: Option<String>,
    /// `CONNECTOR__AWS__ACCESS_KEY_ID`: static credentials, used only together with
    /// `secret_access_key`; otherwise the standard AWS chain applies.
    pub access_key_id: Option<String>,
    /// `CONNECTOR__AWS__SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<SecretString>,
}

/// `secrets.*`
#[derive(Debug, Clone, Deserialize)]
pub struct SecretsSection {
    /// `CONNECTOR__SECRETS__PREFIX`, default `slack-connector/`.
    pub prefix: String,
    /// `CONNECTOR__SECRETS__BACKEND`: `aws` or `local`; by default it follows the database.
    pub backend: Option<String>,
    /// `CONNECTOR__SECRETS__LOCAL_KEY`: the local store's key, base64 of 32 bytes; without it
    /// a key file is used (and created on first start).
    pub local_key: Option<SecretString>,
    /// `CONNECTOR__SECRETS__LOCAL_KEY_FILE`: default `DATA_DIR/secrets.key`.
    pub local_key_file: Option<PathBuf>,
    /// `CONNECTOR__SECRETS__LOCAL_DIR`: the local store's directory, default
    /// `DATA_DIR/secrets`.
    pub local_dir: Option<PathBuf>,
}

/// `slack.*`
#[derive(Debug, Clone, Deserialize)]
pub struct SlackSection {
    /// `CONNECTOR__SLACK__API_BASE_URL`, default `https://slack.com/api/`.
    pub api_base_url: String,
    /// Upper bound of one Slack call, retries included, in seconds (default 30).
    pub deadline_secs: u64,
    /// `CONNECTOR__SLACK__CLIENT_ID` (OAuth).
    pub client_id: Option<String>,
    /// `CONNECTOR__SLACK__CLIENT_SECRET` (OAuth).
    pub client_secret: Option<SecretString>,
    /// `CONNECTOR__SLACK__REDIRECT_URL` (OAuth).
    pub redirect_url: Option<String>,
    /// `CONNECTOR__SLACK__AUTHORIZE_URL`, default `https://slack.com/oauth/v2/authorize`.
    pub authorize_url: String,
    /// `CONNECTOR__SLACK__SCOPES`: bot scopes an install asks for.
    pub scopes: String,
    /// `CONNECTOR__SLACK__USER_SCOPES`: user scopes an install asks for (default none).
    pub user_scopes: String,
    /// `CONNECTOR__SLACK__OAUTH_STATE_TTL_SECS`: how long an install URL works (default 600).
    pub oauth_state_ttl_secs: u64,
}

/// `sender.*`
#[derive(Debug, Clone, Deserialize)]
pub struct SenderSection {
    /// `CONNECTOR__SENDER__TOKEN_CACHE_TTL_SECS`: how long a connector's token is reused before
    /// it is read again from the secret store (default 300; 0 turns the cache off). A deleted
    /// connector stops sending at once regardless: its row is checked on every send.
    pub token_cache_ttl_secs: u64,
}

/// `reconciler.*`
#[derive(Debug, Clone, Deserialize)]
pub struct ReconcilerSection {
    /// Seconds between passes (default 30; 0 turns the reconciler off).
    pub interval_secs: u64,
    /// Seconds after which an unfinished create or delete is finished (default 120). Must
    /// exceed the longest a create can take.
    pub stale_after_secs: u64,
    /// Rows per pass (default 100).
    pub batch: u32,
}

/// `log.*`
#[derive(Debug, Clone, Deserialize)]
pub struct LogSection {
    /// `text` (default) or `json`.
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info,connector=debug`; `RUST_LOG` wins when set.
    pub filter: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// A configuration error, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The sources could not be read or merged, or a value has the wrong type.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is present but unusable.
    #[error("configuration: {key} ({env}): {reason}")]
    Invalid {
        /// The dotted key, e.g. `database.url`.
        key: &'static str,
        /// The environment variable that sets it.
        env: &'static str,
        /// What is wrong.
        reason: String,
    },
}

const DEFAULTS: &[(&str, &str)] = &[
    ("grpc.listen_addr", "0.0.0.0:50051"),
    ("grpc.shutdown_grace_secs", "10"),
    ("http.listen_addr", "0.0.0.0:8080"),
    ("database.max_connections", "16"),
    ("aws.region", "us-east-1"),
    ("secrets.prefix", "slack-connector/"),
    ("slack.api_base_url", "https://slack.com/api/"),
    ("slack.deadline_secs", "30"),
    (
        "slack.scopes",
        "channels:read,groups:read,chat:write,files:write",
    ),
    ("slack.user_scopes", ""),
    ("slack.oauth_state_ttl_secs", "600"),
    (
        "slack.authorize_url",
        "https://slack.com/oauth/v2/authorize",
    ),
    ("sender.token_cache_ttl_secs", "300"),
    ("reconciler.interval_secs", "30"),
    ("reconciler.stale_after_secs", "120"),
    ("reconciler.batch", "100"),
    ("log.format", "text"),
    ("log.filter", "info"),
];

impl Settings {
    /// Loads the configuration from the defaults, `file` and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_from(file, None)
    }

    /// Like [`Settings::load`], reading `env` instead of the process environment (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder();
        for (key, value) in DEFAULTS {
            builder = builder.set_default(*key, *value)?;
        }
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("CONNECTOR")
                .prefix_separator("__")
                .separator("__")
                .source(env),
        );
        let settings: Self = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        connector_domain::SecretPrefix::parse("secrets.prefix", &self.secrets.prefix).map_err(
            |e| SettingsError::Invalid {
                key: "secrets.prefix",
                env: "CONNECTOR__SECRETS__PREFIX",
                reason: e.reason,
            },
        )?;
        if let Some(backend) = &self.secrets.backend
            && !matches!(backend.as_str(), "aws" | "local")
        {
            return Err(SettingsError::Invalid {
                key: "secrets.backend",
                env: "CONNECTOR__SECRETS__BACKEND",
                reason: format!("must be `aws` or `local`, not {backend:?}"),
            });
        }
        if self.aws.access_key_id.is_some() != self.aws.secret_access_key.is_some() {
            return Err(SettingsError::Invalid {
                key: "aws.access_key_id",
                env: "CONNECTOR__AWS__ACCESS_KEY_ID",
                reason:
                    "set both CONNECTOR__AWS__ACCESS_KEY_ID and CONNECTOR__AWS__SECRET_ACCESS_KEY, \
                         or neither to use the standard AWS credential chain"
                        .into(),
            });
        }
        if self.reconciler.batch == 0 {
            return Err(SettingsError::Invalid {
                key: "reconciler.batch",
                env: "CONNECTOR__RECONCILER__BATCH",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// Where the stores are, for `connector-storage`.
    pub fn storage(&self) -> StorageSettings {
        StorageSettings {
            database_url: self.database.url.clone(),
            data_dir: self
                .data_dir
                .clone()
                .unwrap_or_else(connector_storage::default_data_dir),
            max_connections: self.database.max_connections,
            secrets_backend: self.secrets.backend.clone(),
            aws: AwsSettings {
                region: self.aws.region.clone(),
                endpoint_url: self.aws.endpoint_url.clone(),
                credentials: match (&self.aws.access_key_id, &self.aws.secret_access_key) {
                    (Some(id), Some(key)) => Some(StaticCredentials {
                        access_key_id: id.clone(),
                        secret_access_key: key.clone(),
                    }),
                    _ => None,
                },
                ..AwsSettings::default()
            },
            local_key: self.secrets.local_key.clone(),
            local_key_file: self.secrets.local_key_file.clone(),
            local_secrets_dir: self.secrets.local_dir.clone(),
        }
    }

    /// The Slack app's OAuth settings: `None` when none of client ID, client secret and
    /// redirect URL is set; an error naming what is missing when only some are.
    pub fn oauth(&self) -> Result<Option<connector_usecases::OAuthConfig>, SettingsError> {
        let s = &self.slack;
        match (&s.client_id, &s.client_secret, &s.redirect_url) {
            (None, None, None) => Ok(None),
            (Some(client_id), Some(client_secret), Some(redirect_url)) => {
                if !(redirect_url.starts_with("https://") || redirect_url.starts_with("http://")) {
                    return Err(SettingsError::Invalid {
                        key: "slack.redirect_url",
                        env: "CONNECTOR__SLACK__REDIRECT_URL",
                        reason: "must be the public http(s) URL of /slack/oauth/callback".into(),
                    });
                }
                Ok(Some(connector_usecases::OAuthConfig {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    redirect_url: redirect_url.clone(),
                    authorize_url: s.authorize_url.clone(),
                    scopes: s.scopes.clone(),
                    user_scopes: s.user_scopes.clone(),
                    state_ttl: Duration::from_secs(s.oauth_state_ttl_secs.max(1)),
                }))
            }
            _ => {
                let (key, env) = if s.client_id.is_none() {
                    ("slack.client_id", "CONNECTOR__SLACK__CLIENT_ID")
                } else if s.client_secret.is_none() {
                    ("slack.client_secret", "CONNECTOR__SLACK__CLIENT_SECRET")
                } else {
                    ("slack.redirect_url", "CONNECTOR__SLACK__REDIRECT_URL")
                };
                Err(SettingsError::Invalid {
                    key,
                    env,
                    reason: "the Slack OAuth flow needs the client ID, the client secret and the redirect URL together".into(),
                })
            }
        }
    }

    /// The grace period for draining calls at shutdown.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.grpc.shutdown_grace_secs)
    }
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
    fn defaults_match_the_contract() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.grpc.listen_addr.to_string(), "0.0.0.0:50051");
        assert_eq!(s.http.listen_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(s.aws.region, "us-east-1");
        assert_eq!(s.aws.endpoint_url, None);
        assert_eq!(s.secrets.prefix, "slack-connector/");
        assert_eq!(s.slack.api_base_url, "https://slack.com/api/");
        assert_eq!(
            s.slack.authorize_url,
            "https://slack.com/oauth/v2/authorize"
        );
        assert_eq!(s.log.format, LogFormat::Text);
    }

    #[test]
    fn environment_variables_override_defaults() {
        let s = Settings::load_from(
            None,
            env(&[
                ("CONNECTOR__GRPC__LISTEN_ADDR", "127.0.0.1:6000"),
                ("CONNECTOR__DATABASE__URL", "postgres://u:pw@h/db"),
                ("CONNECTOR__AWS__ENDPOINT_URL", "http://127.0.0.1:4566"),
                ("CONNECTOR__SECRETS__PREFIX", "team-a/"),
                ("CONNECTOR__SLACK__API_BASE_URL", "http://127.0.0.1:9/api/"),
                ("CONNECTOR__SLACK__CLIENT_SECRET", "s3cr3t"),
                ("CONNECTOR__LOG__FORMAT", "json"),
            ]),
        )
        .unwrap();
        assert_eq!(s.grpc.listen_addr.port(), 6000);
        assert_eq!(
            s.storage().metadata().unwrap(),
            connector_storage::Metadata::Postgres
        );
        assert_eq!(s.aws.endpoint_url.as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(s.secrets.prefix, "team-a/");
        assert_eq!(s.log.format, LogFormat::Json);
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("pw@"),
            "database password in Debug: {shown}"
        );
        assert!(!shown.contains("s3cr3t"), "client secret in Debug: {shown}");
    }

    #[test]
    fn a_file_sits_between_defaults_and_environment() {
        let dir = std::env::temp_dir().join(format!("sc-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("connector.toml");
        std::fs::write(
            &path,
            "[grpc]\nlisten_addr = \"127.0.0.1:7000\"\n[secrets]\nprefix = \"from-file/\"\n",
        )
        .unwrap();
        let s = Settings::load_from(
            Some(&path),
            env(&[("CONNECTOR__SECRETS__PREFIX", "from-env/")]),
        )
        .unwrap();
        assert_eq!(s.grpc.listen_addr.port(), 7000);
        assert_eq!(s.secrets.prefix, "from-env/");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn errors_name_the_key() {
        let err = Settings::load_from(None, env(&[("CONNECTOR__GRPC__LISTEN_ADDR", "nope")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("grpc.listen_addr"), "{err}");

        let err = Settings::load_from(None, env(&[("CONNECTOR__SECRETS__PREFIX", "a b")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CONNECTOR__SECRETS__PREFIX"), "{err}");

        let s =
            Settings::load_from(None, env(&[("CONNECTOR__DATABASE__URL", "mysql://x")])).unwrap();
        let err = s.storage().metadata().unwrap_err().to_string();
        assert!(err.contains("CONNECTOR__DATABASE__URL"), "{err}");
    }

    #[test]
    fn without_a_database_url_the_server_is_embedded() {
        let s = Settings::load_from(None, env(&[("CONNECTOR__DATA_DIR", "/srv/sc")])).unwrap();
        let storage = s.storage();
        assert_eq!(
            storage.metadata().unwrap(),
            connector_storage::Metadata::Sqlite("/srv/sc/connectors.sqlite3".into())
        );
        assert!(storage.local_secrets().unwrap());
        assert_eq!(storage.secrets_dir(), PathBuf::from("/srv/sc/secrets"));
    }

    #[test]
    fn oauth_settings_come_all_together_or_not_at_all() {
        let none = Settings::load_from(None, env(&[])).unwrap();
        assert!(none.oauth().unwrap().is_none());
        let partial =
            Settings::load_from(None, env(&[("CONNECTOR__SLACK__CLIENT_ID", "1.2")])).unwrap();
        let err = partial.oauth().unwrap_err().to_string();
        assert!(err.contains("CONNECTOR__SLACK__CLIENT_SECRET"), "{err}");
        let full = Settings::load_from(
            None,
            env(&[
                ("CONNECTOR__SLACK__CLIENT_ID", "1.2"),
                ("CONNECTOR__SLACK__CLIENT_SECRET", "s"),
                (
                    "CONNECTOR__SLACK__REDIRECT_URL",
                    "https://x.example/slack/oauth/callback",
                ),
            ]),
        )
        .unwrap();
        let c = full.oauth().unwrap().unwrap();
        assert_eq!(c.authorize_url, "https://slack.com/oauth/v2/authorize");
        assert_eq!(c.state_ttl, Duration::from_secs(600));
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let err = Settings::load_from(Some(Path::new("/nonexistent/connector.toml")), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("connector.toml"), "{err}");
    }
}
