//! [`SenderConfig`]: the core settings the sender needs ([`CoreSettings`]: stores, Slack,
//! sending), read from the same places as the server's (the same `CONNECTOR__…` variables,
//! the same file layout, the same defaults), with a builder for programs that configure the
//! sender in code. Nothing of the server's own (listeners, authentication, telemetry).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use connector_app::{ConfigError, CoreConfig, CoreSettings, Sources};
use secrecy::{ExposeSecret as _, SecretString};

use crate::Error;

/// How the sender reaches the connector stores and Slack: the core [`CoreSettings`].
///
/// Read it from the environment ([`SenderConfig::from_env`], the same `CONNECTOR__…`
/// variables as `connector-server`) or from a TOML file laid out like the server's
/// ([`SenderConfig::from_file`]), or build it in code: [`SenderConfig::new`] (a database URL)
/// or [`SenderConfig::embedded`] (an embedded server's data directory), then the `with_…`
/// methods. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    settings: CoreSettings,
}

impl SenderConfig {
    /// A configuration for the database at `database_url` (`postgres://…` or `sqlite://…`),
    /// every other value at its default (real AWS through the standard credential chain, real
    /// Slack).
    pub fn new(database_url: impl Into<String>) -> Self {
        let mut settings = CoreSettings::default();
        settings.database.url = Some(SecretString::from(database_url.into()));
        Self { settings }
    }

    /// A configuration for a server in embedded mode whose data directory is `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            settings: CoreSettings {
                data_dir: Some(data_dir.into()),
                ..CoreSettings::default()
            },
        }
    }

    /// The settings, as the sender will use them.
    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    /// The settings parsed: what [`Sender::connect`](crate::Sender::connect) uses, or the
    /// first bad value, named.
    pub fn parse(&self) -> Result<CoreConfig, Error> {
        CoreConfig::parse(self.settings.clone()).map_err(config_error)
    }

    /// Changes any setting the `with_…` methods do not cover.
    pub fn with_settings(mut self, change: impl FnOnce(&mut CoreSettings)) -> Self {
        change(&mut self.settings);
        self
    }

    /// Uses a Secrets Manager endpoint such as LocalStack's.
    pub fn with_aws_endpoint(self, url: impl Into<String>) -> Self {
        self.with_settings(|s| s.aws.endpoint_url = Some(url.into()))
    }

    /// Uses static AWS credentials.
    pub fn with_aws_credentials(
        self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.with_settings(|s| {
            s.aws.access_key_id = Some(access_key_id.into());
            s.aws.secret_access_key = Some(SecretString::from(secret_access_key.into()));
        })
    }

    /// Uses another secret name prefix (it must match the server's).
    pub fn with_secret_prefix(self, prefix: impl Into<String>) -> Self {
        self.with_settings(|s| s.secrets.prefix = prefix.into())
    }

    /// Uses another Slack Web API base URL.
    pub fn with_slack_api_base_url(self, url: impl Into<String>) -> Self {
        self.with_settings(|s| s.slack.api_base_url = url.into())
    }

    /// Sets the token cache TTL (zero turns caching off).
    pub fn with_token_cache_ttl(self, ttl: Duration) -> Self {
        self.with_settings(|s| s.sender.token_cache_ttl_secs = ttl.as_secs())
    }

    /// Keeps at most `max` database connections open.
    pub fn with_max_connections(self, max: u32) -> Self {
        self.with_settings(|s| s.database.max_connections = max)
    }

    /// Only sends through connectors of `tenant_id`.
    pub fn with_tenant(self, tenant_id: impl Into<String>) -> Self {
        self.with_settings(|s| s.sender.tenant_id = Some(tenant_id.into()))
    }

    /// Refreshes rotating tokens that are due with the Slack app's client ID and secret.
    pub fn with_slack_app(
        self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.with_settings(|s| {
            s.slack.client_id = Some(client_id.into());
            s.slack.client_secret = Some(SecretString::from(client_secret.into()));
        })
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
        let settings = Sources::read_from(file, env)
            .and_then(|sources| sources.settings::<CoreSettings>())
            .map_err(config_error)?;
        let config = Self { settings };
        config.parse()?;
        Ok(config)
    }

    /// Every setting, secrets included, as one value two configurations can be compared by
    /// whole (never shown: it is a secret).
    pub(crate) fn identity(&self) -> SecretString {
        let s = &self.settings;
        // Every field but the secrets, which `Debug` redacts, then the secrets themselves.
        let mut whole = format!("{s:?}");
        for secret in [
            &s.database.url,
            &s.aws.secret_access_key,
            &s.secrets.local_key,
            &s.slack.client_secret,
        ] {
            whole.push('\0');
            if let Some(v) = secret {
                whole.push_str(v.expose_secret());
            }
        }
        SecretString::from(whole)
    }

    /// A hash of [`SenderConfig::identity`], to find candidates quickly; equal configurations
    /// are then confirmed by comparing identities whole.
    #[cfg(test)]
    pub(crate) fn fingerprint(&self) -> u64 {
        fingerprint_of(&self.identity())
    }
}

/// The hash of an identity from [`SenderConfig::identity`].
pub(crate) fn fingerprint_of(identity: &SecretString) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    identity.expose_secret().hash(&mut h);
    h.finish()
}

/// A configuration error as the sender reports it: the key, and what is wrong.
pub(crate) fn config_error(e: ConfigError) -> Error {
    match e {
        ConfigError::Invalid { key, reason } => Error::Config {
            key,
            reason: format!("{reason} (set by {})", connector_app::config::env_name(key)),
        },
        ConfigError::Load(e) => Error::Config {
            key: "configuration",
            reason: e.to_string(),
        },
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
        let s = c.settings();
        assert_eq!(s.aws.region, "eu-west-1");
        assert_eq!(s.aws.endpoint_url.as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(s.secrets.prefix, "team/");
        let parsed = c.parse().unwrap();
        assert_eq!(parsed.slack.deadline, Duration::from_secs(7));
        assert_eq!(parsed.token_cache_ttl, Duration::ZERO);
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
            c.settings().database.url.as_ref().unwrap().expose_secret(),
            "postgres://file/db"
        );
        assert_eq!(c.settings().secrets.prefix, "env/");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn without_a_database_url_the_sender_follows_the_embedded_server() {
        let c = SenderConfig::load(None, env(&[("CONNECTOR__DATA_DIR", "/srv/sc")])).unwrap();
        assert!(c.settings().database.url.is_none());
        let connector_app::config::Metadata::Sqlite { path } = c.parse().unwrap().storage.metadata
        else {
            panic!("not embedded")
        };
        assert_eq!(path, PathBuf::from("/srv/sc/connectors.sqlite3"));
    }

    #[test]
    fn the_builder_and_the_environment_share_the_servers_defaults() {
        let built = SenderConfig::new("postgres://h/db");
        let read = SenderConfig::load(
            None,
            env(&[("CONNECTOR__DATABASE__URL", "postgres://h/db")]),
        )
        .unwrap();
        assert_eq!(built.fingerprint(), read.fingerprint());
        assert_eq!(built.settings().database.max_connections, 16);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = SenderConfig::load(None, env(&[("CONNECTOR__SENDER__TENANT_ID", "a b")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sender.tenant_id"), "{err}");
        assert!(err.contains("CONNECTOR__SENDER__TENANT_ID"), "{err}");
    }

    #[test]
    fn identities_compare_configurations_whole() {
        let a = SenderConfig::new("postgres://a/db").with_slack_app("1.2", "s1");
        assert_eq!(
            a.identity().expose_secret(),
            a.clone().identity().expose_secret()
        );
        assert_ne!(
            a.identity().expose_secret(),
            a.clone()
                .with_slack_app("1.2", "s2")
                .identity()
                .expose_secret()
        );
        assert!(!format!("{a:?}").contains("s1"));
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
        assert_ne!(
            a.fingerprint(),
            a.clone().with_slack_app("1.2", "s1").fingerprint()
        );
        assert_ne!(
            a.clone().with_slack_app("1.2", "s1").fingerprint(),
            a.clone().with_slack_app("1.2", "s2").fingerprint()
        );
    }
}
