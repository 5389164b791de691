//! Configuration, parsed once: [`Sources`] reads the file and the `CONNECTOR__…` variables,
//! each edge deserializes the sections it owns ([`CoreSettings`] here; the server's listeners,
//! authentication and telemetry are the server's), and [`CoreConfig::parse`] turns the core
//! settings into typed values whose shape rules out what validation would otherwise refuse
//! later: one [`Metadata`] store, one [`SecretsStore`], OAuth whole or absent. Every error
//! names the key and its variable.

pub mod raw;
pub mod sources;

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use connector_adapters_slack::SlackSettings;
use connector_domain::{Pace, Rate, SecretPrefix, SendLimits, TenantId};
use connector_ports::RepositorySettings;
use connector_usecases::{
    AppCredentials, ChannelLimits, DeliverySettings, OAuthConfig, ReconcileSettings,
};
use secrecy::{ExposeSecret as _, SecretString};

pub use raw::CoreSettings;
pub use sources::{ConfigError, Sources, env_name, invalid};

/// The core configuration, typed: what the stores, Slack and the use cases need, for the
/// server and the `sender` library alike.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Where metadata and secrets live.
    pub storage: StorageConfig,
    /// The database pool's bounds (both backends take the same).
    pub repository: RepositorySettings,
    /// The prefix of every connector's secret name.
    pub secret_prefix: SecretPrefix,
    /// The Slack Web API client.
    pub slack: SlackSettings,
    /// The Slack app's client ID and secret, which refreshing rotating tokens needs.
    pub app: Option<AppCredentials>,
    /// OAuth installs: the app's credentials and its redirect URL, whole, or off.
    pub oauth: Option<OAuthConfig>,
    /// How much work finding a channel by name may take.
    pub channel_limits: ChannelLimits,
    /// What one send may ask of Slack.
    pub send_limits: SendLimits,
    /// Concurrent sends per connector.
    pub max_in_flight_per_connector: usize,
    /// How long a send with a request ID may post before its outcome is recorded as unknown.
    pub send_deadline: Duration,
    /// How long a token is reused (zero: no token cache).
    pub token_cache_ttl: Duration,
    /// How long a row is trusted without news from the change feed (zero: no row cache).
    pub connector_cache_ttl: Duration,
    /// How long inbound events are kept.
    pub event_retention: Duration,
    /// StreamEvents streams per tenant and replica at most.
    pub max_event_streams_per_tenant: Option<usize>,
    /// Queued delivery: pace, deadline, concurrency, retention.
    pub delivery: DeliverySettings,
    /// The tenant the `sender` library is bound to, if any (the server ignores it).
    pub sender_tenant: Option<TenantId>,
    /// Connectors per tenant at most.
    pub max_connectors_per_tenant: Option<u64>,
    /// Install links waiting per tenant at most.
    pub max_pending_installs_per_tenant: Option<u64>,
    /// The periodic passes.
    pub jobs: JobsConfig,
    /// Between background checks of the database and the secret store.
    pub readiness_interval: Duration,
}

/// Where the metadata and the secrets live.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// The metadata database.
    pub metadata: Metadata,
    /// The secret store.
    pub secrets: SecretsStore,
}

/// The metadata database.
#[derive(Debug, Clone)]
pub enum Metadata {
    /// A PostgreSQL server (`postgres://…`; the URL may hold a password).
    Postgres {
        /// The connection URL.
        url: SecretString,
    },
    /// An SQLite file (`sqlite://PATH`, or `DATA_DIR/connectors.sqlite3` when unset).
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
}

/// The secret store.
#[derive(Debug, Clone)]
pub enum SecretsStore {
    /// AWS Secrets Manager.
    Aws(AwsConfig),
    /// The local encrypted store.
    Local {
        /// Its directory.
        dir: PathBuf,
        /// Its key.
        key: LocalKey,
    },
}

/// How Secrets Manager is reached.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// The region.
    pub region: String,
    /// An endpoint override (LocalStack).
    pub endpoint_url: Option<String>,
    /// Static credentials (access key ID, secret); `None`: the standard AWS chain.
    pub credentials: Option<(String, SecretString)>,
}

/// The local store's key.
#[derive(Debug, Clone)]
pub enum LocalKey {
    /// One key, base64 of 32 bytes (checked).
    Inline(SecretString),
    /// A keyring file, created on first use.
    File(PathBuf),
}

/// The periodic passes; a zero interval turns one off.
#[derive(Debug, Clone, Copy)]
pub struct JobsConfig {
    /// Between reconcile passes.
    pub reconcile_every: Duration,
    /// Which rows a reconcile pass takes.
    pub reconcile: ReconcileSettings,
    /// Between purges of expired install links and old records.
    pub purge_every: Duration,
    /// Between token refresh passes.
    pub refresh_every: Duration,
    /// Connectors a refresh pass.
    pub refresh_batch: u32,
}

impl CoreConfig {
    /// Reads and parses the core settings of `sources`.
    pub fn from_sources(sources: &Sources) -> Result<Self, ConfigError> {
        Self::parse(sources.settings()?)
    }

    /// Every core setting at its default (the embedded mode, real Slack).
    pub fn defaults() -> Self {
        Self::parse(CoreSettings::default())
            .unwrap_or_else(|e| unreachable!("the built-in defaults are valid: {e}"))
    }

    /// Turns `s` into typed values, naming the first bad one.
    pub fn parse(s: CoreSettings) -> Result<Self, ConfigError> {
        let storage = StorageConfig::parse(&s)?;
        let secret_prefix = SecretPrefix::parse("secrets.prefix", &s.secrets.prefix)
            .map_err(|e| invalid("secrets.prefix", e.reason))?;
        let sender_tenant = s
            .sender
            .tenant_id
            .as_deref()
            .map(|t| TenantId::parse("sender.tenant_id", t))
            .transpose()
            .map_err(|e| invalid("sender.tenant_id", e.reason))?;
        let (app, oauth) = parse_slack_app(&s.slack)?;
        for (value, key) in [
            (s.reconciler.batch as usize, "reconciler.batch"),
            (s.token_refresh.batch as usize, "token_refresh.batch"),
            (
                s.readiness.check_interval_secs as usize,
                "readiness.check_interval_secs",
            ),
            (s.sender.max_text_parts, "sender.max_text_parts"),
            (
                s.sender.max_in_flight_per_connector,
                "sender.max_in_flight_per_connector",
            ),
            (s.slack.channel_pages_max, "slack.channel_pages_max"),
            (
                s.database.max_connections as usize,
                "database.max_connections",
            ),
        ] {
            at_least_one(value, key)?;
        }
        let secs = Duration::from_secs;
        Ok(Self {
            storage,
            repository: RepositorySettings {
                max_connections: s.database.max_connections,
                connect_timeout: secs(s.database.connect_timeout_secs),
                query_timeout: secs(s.database.query_timeout_secs),
            },
            secret_prefix,
            slack: SlackSettings {
                api_base_url: s.slack.api_base_url.clone(),
                deadline: secs(s.slack.deadline_secs),
                request_timeout: secs(s.slack.request_timeout_secs),
                ..SlackSettings::default()
            },
            app,
            oauth,
            channel_limits: ChannelLimits {
                max_pages: s.slack.channel_pages_max,
                deadline: secs(s.slack.channel_resolve_deadline_secs.max(1)),
            },
            send_limits: SendLimits {
                max_text_parts: s.sender.max_text_parts,
                max_blocks_bytes: s.sender.max_blocks_bytes,
            },
            max_in_flight_per_connector: s.sender.max_in_flight_per_connector,
            send_deadline: secs(s.sender.send_deadline_secs.max(1)),
            token_cache_ttl: secs(s.sender.token_cache_ttl_secs),
            connector_cache_ttl: Duration::from_millis(s.cache.connector_ttl_ms),
            event_retention: secs(s.events.retention_hours.max(1) * 3600),
            max_event_streams_per_tenant: Some(s.events.max_streams_per_tenant).filter(|n| *n > 0),
            delivery: delivery(&s.delivery)?,
            sender_tenant,
            max_connectors_per_tenant: Some(s.quotas.max_connectors_per_tenant).filter(|n| *n > 0),
            max_pending_installs_per_tenant: Some(s.quotas.max_pending_installs_per_tenant)
                .filter(|n| *n > 0),
            jobs: JobsConfig {
                reconcile_every: secs(s.reconciler.interval_secs),
                reconcile: ReconcileSettings {
                    stale_after: secs(s.reconciler.stale_after_secs),
                    batch: s.reconciler.batch,
                },
                purge_every: secs(s.oauth_state_purge.interval_secs),
                refresh_every: secs(s.token_refresh.interval_secs),
                refresh_batch: s.token_refresh.batch,
            },
            readiness_interval: secs(s.readiness.check_interval_secs),
        })
    }
}

/// The share of a configured rate the outbox paces at: network jitter between two posts then
/// never spends Slack's last token (Slack's bucket fills a little between posts), at 3% of the
/// throughput.
const PACE_HEADROOM: f64 = 0.97;

/// The burst the outbox spends of a configured one: one post of Slack's burst stays in reserve
/// (a burst of 1 stays 1), so two posts that reach Slack closer together than they left never
/// find its bucket empty.
fn spendable(burst: u32) -> u32 {
    burst.saturating_sub(1).max(1).min(burst)
}

/// Queued delivery's settings, each checked and named by its key.
fn delivery(d: &raw::Delivery) -> Result<DeliverySettings, ConfigError> {
    let channel = Rate::per_second(d.channel_rate * PACE_HEADROOM, spendable(d.channel_burst))
        .ok_or_else(|| {
            invalid(
                if d.channel_burst == 0 {
                    "delivery.channel_burst"
                } else {
                    "delivery.channel_rate"
                },
                "must be a positive number (posts a second; the burst at least 1)",
            )
        })?;
    let workspace = Rate::per_second(
        d.workspace_rate_per_minute / 60.0 * PACE_HEADROOM,
        spendable(d.workspace_burst),
    )
    .ok_or_else(|| {
        invalid(
            if d.workspace_burst == 0 {
                "delivery.workspace_burst"
            } else {
                "delivery.workspace_rate_per_minute"
            },
            "must be a positive number (posts a minute; the burst at least 1)",
        )
    })?;
    if d.deadline_seconds == 0 {
        return Err(invalid("delivery.deadline_seconds", "must be at least 1"));
    }
    at_least_one(d.max_in_flight, "delivery.max_in_flight")?;
    Ok(DeliverySettings {
        pace: Pace { channel, workspace },
        deadline: Duration::from_secs(d.deadline_seconds),
        max_in_flight: d.max_in_flight,
        retention: Duration::from_secs(d.retention_hours.max(1) * 3600),
        ..DeliverySettings::default()
    })
}

fn at_least_one(value: usize, key: &'static str) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(key, "must be at least 1"));
    }
    Ok(())
}

impl StorageConfig {
    fn parse(s: &CoreSettings) -> Result<Self, ConfigError> {
        let data_dir = s.data_dir.clone().unwrap_or_else(default_data_dir);
        let metadata = match s.database.url.as_ref().map(|u| u.expose_secret().trim()) {
            None => Metadata::Sqlite {
                path: data_dir.join("connectors.sqlite3"),
            },
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Metadata::Postgres {
                    url: SecretString::from(u.to_owned()),
                }
            }
            Some(u) if u.starts_with("sqlite:") => Metadata::Sqlite {
                path: sqlite_path(u)?,
            },
            Some(_) => {
                return Err(invalid(
                    "database.url",
                    "must be a postgres:// or sqlite:// URL, or unset for the embedded mode",
                ));
            }
        };
        let local = match s.secrets.backend.as_deref() {
            Some("aws") => false,
            Some("local") => true,
            Some(other) => {
                return Err(invalid(
                    "secrets.backend",
                    format!("must be `aws` or `local`, not {other:?}"),
                ));
            }
            None => matches!(metadata, Metadata::Sqlite { .. }),
        };
        let secrets = if local {
            let key = match &s.secrets.local_key {
                Some(k) => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(k.expose_secret().trim())
                        .ok()
                        .filter(|key| key.len() == 32);
                    if decoded.is_none() {
                        return Err(invalid(
                            "secrets.local_key",
                            "must be the base64 of 32 bytes (e.g. `openssl rand -base64 32`)",
                        ));
                    }
                    LocalKey::Inline(SecretString::from(k.expose_secret().trim().to_owned()))
                }
                None => LocalKey::File(
                    s.secrets
                        .local_key_file
                        .clone()
                        .unwrap_or_else(|| data_dir.join("secrets.key")),
                ),
            };
            SecretsStore::Local {
                dir: s
                    .secrets
                    .local_dir
                    .clone()
                    .unwrap_or_else(|| data_dir.join("secrets")),
                key,
            }
        } else {
            let credentials = match (&s.aws.access_key_id, &s.aws.secret_access_key) {
                (Some(id), Some(key)) => Some((id.clone(), key.clone())),
                (None, None) => None,
                _ => {
                    return Err(invalid(
                        "aws.access_key_id",
                        "set both CONNECTOR__AWS__ACCESS_KEY_ID and \
                         CONNECTOR__AWS__SECRET_ACCESS_KEY, or neither to use the standard AWS \
                         credential chain",
                    ));
                }
            };
            SecretsStore::Aws(AwsConfig {
                region: s.aws.region.clone(),
                endpoint_url: s.aws.endpoint_url.clone(),
                credentials,
            })
        };
        Ok(Self { metadata, secrets })
    }
}

/// The file path of a `sqlite://PATH` URL (`sqlite:///abs/path` or `sqlite://relative/path`).
fn sqlite_path(url: &str) -> Result<PathBuf, ConfigError> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() {
        return Err(invalid("database.url", "the sqlite:// URL names no file"));
    }
    Ok(PathBuf::from(path))
}

/// The Slack app: the client ID and secret together (refreshing rotating tokens), and with the
/// redirect URL, OAuth installs.
fn parse_slack_app(
    s: &raw::Slack,
) -> Result<(Option<AppCredentials>, Option<OAuthConfig>), ConfigError> {
    let (client_id, client_secret) = match (&s.client_id, &s.client_secret) {
        (Some(id), Some(secret)) => (id.clone(), secret.clone()),
        (None, None) if s.redirect_url.is_none() => return Ok((None, None)),
        (None, _) => {
            return Err(invalid(
                "slack.client_id",
                "the Slack app needs the client ID and the client secret together \
                 (and the redirect URL too for OAuth installs)",
            ));
        }
        (Some(_), None) => {
            return Err(invalid(
                "slack.client_secret",
                "the Slack app needs the client ID and the client secret together \
                 (and the redirect URL too for OAuth installs)",
            ));
        }
    };
    let app = AppCredentials {
        client_id: client_id.clone(),
        client_secret: client_secret.clone(),
    };
    let Some(redirect_url) = &s.redirect_url else {
        return Ok((Some(app), None));
    };
    let is_http = |u: &str| u.starts_with("https://") || u.starts_with("http://");
    if !is_http(redirect_url) {
        return Err(invalid(
            "slack.redirect_url",
            "must be the public http(s) URL of /slack/oauth/callback",
        ));
    }
    let start_url = match &s.install_url {
        Some(url) if is_http(url) => url.clone(),
        Some(_) => {
            return Err(invalid(
                "slack.install_url",
                "must be the public http(s) URL of /slack/install",
            ));
        }
        None => {
            // The origin: scheme://host[:port] of the redirect URL.
            let after_scheme = redirect_url.find("://").map_or(0, |i| i + 3);
            let origin_end = redirect_url[after_scheme..]
                .find('/')
                .map_or(redirect_url.len(), |i| i + after_scheme);
            format!("{}/slack/install", &redirect_url[..origin_end])
        }
    };
    let oauth = OAuthConfig {
        start_url,
        client_id,
        client_secret,
        redirect_url: redirect_url.clone(),
        authorize_url: s.authorize_url.clone(),
        scopes: s.scopes.clone(),
        user_scopes: s.user_scopes.clone(),
        state_ttl: Duration::from_secs(s.oauth_state_ttl_secs.max(1)),
    };
    Ok((Some(app), Some(oauth)))
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<CoreConfig, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CoreConfig::from_sources(&Sources::read_from(None, Some(env))?)
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        load(pairs).unwrap_err().to_string()
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = load(&[]).unwrap();
        assert!(matches!(c.storage.metadata, Metadata::Sqlite { .. }));
        assert!(matches!(c.storage.secrets, SecretsStore::Local { .. }));
        assert_eq!(c.secret_prefix.as_str(), "slack-connector/");
        assert_eq!(c.slack.api_base_url, "https://slack.com/api/");
        assert_eq!(c.slack.deadline, Duration::from_secs(30));
        assert!(c.app.is_none() && c.oauth.is_none());
        assert_eq!(c.repository.max_connections, 16);
        assert_eq!(c.repository.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.token_cache_ttl, Duration::from_secs(300));
        assert_eq!(c.event_retention, Duration::from_secs(168 * 3600));
        assert_eq!(c.connector_cache_ttl, Duration::from_millis(5000));
        assert_eq!(c.max_connectors_per_tenant, Some(1000));
        assert_eq!(c.jobs.reconcile_every, Duration::from_secs(30));
        assert_eq!(c.jobs.reconcile.stale_after, Duration::from_secs(120));
        assert_eq!(c.readiness_interval, Duration::from_secs(5));
    }

    #[test]
    fn delivery_paces_default_to_slacks_and_refuse_what_cannot_pace() {
        let c = load(&[]).unwrap();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        // Paced at 97% of the configured rate.
        assert!((ms(c.delivery.pace.channel.interval) - 1000.0 / 0.97).abs() < 0.01);
        assert_eq!(
            c.delivery.pace.channel.burst, 2,
            "one of Slack's burst in reserve"
        );
        assert!((ms(c.delivery.pace.workspace.interval) - 200.0 / 0.97).abs() < 0.01);
        assert_eq!(c.delivery.deadline, Duration::from_secs(1800));
        let c = load(&[
            ("CONNECTOR__DELIVERY__CHANNEL_RATE", "20"),
            ("CONNECTOR__DELIVERY__CHANNEL_BURST", "5"),
            ("CONNECTOR__DELIVERY__WORKSPACE_RATE_PER_MINUTE", "6000"),
        ])
        .unwrap();
        assert!((ms(c.delivery.pace.channel.interval) - 50.0 / 0.97).abs() < 0.01);
        assert!((ms(c.delivery.pace.workspace.interval) - 10.0 / 0.97).abs() < 0.01);
        for (key, value, named) in [
            (
                "CONNECTOR__DELIVERY__CHANNEL_RATE",
                "0",
                "delivery.channel_rate",
            ),
            (
                "CONNECTOR__DELIVERY__CHANNEL_BURST",
                "0",
                "delivery.channel_burst",
            ),
            (
                "CONNECTOR__DELIVERY__WORKSPACE_RATE_PER_MINUTE",
                "-1",
                "delivery.workspace_rate_per_minute",
            ),
            (
                "CONNECTOR__DELIVERY__DEADLINE_SECONDS",
                "0",
                "delivery.deadline_seconds",
            ),
            (
                "CONNECTOR__DELIVERY__MAX_IN_FLIGHT",
                "0",
                "delivery.max_in_flight",
            ),
        ] {
            assert_eq!(
                load(&[(key, value)]).unwrap_err().key(),
                Some(named),
                "{key}"
            );
        }
    }

    #[test]
    fn the_database_url_picks_the_stores() {
        let c = load(&[("CONNECTOR__DATA_DIR", "/srv/sc")]).unwrap();
        let Metadata::Sqlite { path } = &c.storage.metadata else {
            panic!("{:?}", c.storage.metadata)
        };
        assert_eq!(path, Path::new("/srv/sc/connectors.sqlite3"));
        let SecretsStore::Local { dir, key } = &c.storage.secrets else {
            panic!("{:?}", c.storage.secrets)
        };
        assert_eq!(dir, Path::new("/srv/sc/secrets"));
        assert!(matches!(key, LocalKey::File(p) if p == Path::new("/srv/sc/secrets.key")));

        let c = load(&[
            ("CONNECTOR__DATABASE__URL", "postgres://u:pw@h/db"),
            ("CONNECTOR__AWS__ENDPOINT_URL", "http://127.0.0.1:4566"),
        ])
        .unwrap();
        assert!(matches!(c.storage.metadata, Metadata::Postgres { .. }));
        let SecretsStore::Aws(aws) = &c.storage.secrets else {
            panic!("{:?}", c.storage.secrets)
        };
        assert_eq!(aws.endpoint_url.as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(aws.region, "us-east-1");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("pw@"),
            "database password in Debug: {shown}"
        );

        let c = load(&[("CONNECTOR__DATABASE__URL", "sqlite:///tmp/x.db")]).unwrap();
        assert!(
            matches!(&c.storage.metadata, Metadata::Sqlite { path } if path == Path::new("/tmp/x.db"))
        );
        let c = load(&[
            ("CONNECTOR__DATABASE__URL", "postgres://h/db"),
            ("CONNECTOR__SECRETS__BACKEND", "local"),
        ])
        .unwrap();
        assert!(matches!(c.storage.secrets, SecretsStore::Local { .. }));
        let c = load(&[("CONNECTOR__SECRETS__BACKEND", "aws")]).unwrap();
        assert!(matches!(c.storage.secrets, SecretsStore::Aws(_)));
    }

    #[test]
    fn sqlite_urls_name_a_file() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/sc/db.sqlite3").unwrap(),
            PathBuf::from("/var/lib/sc/db.sqlite3")
        );
        assert_eq!(
            sqlite_path("sqlite://data/db.sqlite3").unwrap(),
            PathBuf::from("data/db.sqlite3")
        );
        assert_eq!(
            sqlite_path("sqlite://").unwrap_err().key(),
            Some("database.url")
        );
    }

    #[test]
    fn empty_values_mean_unset() {
        let c = load(&[
            ("CONNECTOR__DATABASE__URL", ""),
            ("CONNECTOR__SECRETS__BACKEND", " "),
            ("CONNECTOR__DATABASE__QUERY_TIMEOUT_SECS", "3"),
        ])
        .unwrap();
        assert!(matches!(c.storage.metadata, Metadata::Sqlite { .. }));
        assert_eq!(c.repository.query_timeout, Duration::from_secs(3));
    }

    #[test]
    fn bad_values_name_their_key_and_variable() {
        for (pairs, key, env) in [
            (
                vec![("CONNECTOR__DATABASE__URL", "mysql://x")],
                "database.url",
                "CONNECTOR__DATABASE__URL",
            ),
            (
                vec![("CONNECTOR__DATABASE__URL", "sqlite://")],
                "database.url",
                "CONNECTOR__DATABASE__URL",
            ),
            (
                vec![("CONNECTOR__SECRETS__BACKEND", "vault")],
                "secrets.backend",
                "CONNECTOR__SECRETS__BACKEND",
            ),
            (
                vec![("CONNECTOR__SECRETS__PREFIX", "a b")],
                "secrets.prefix",
                "CONNECTOR__SECRETS__PREFIX",
            ),
            (
                vec![("CONNECTOR__SECRETS__LOCAL_KEY", "c2hvcnQ=")],
                "secrets.local_key",
                "CONNECTOR__SECRETS__LOCAL_KEY",
            ),
            (
                vec![
                    ("CONNECTOR__DATABASE__URL", "postgres://h/db"),
                    ("CONNECTOR__AWS__ACCESS_KEY_ID", "AKIA"),
                ],
                "aws.access_key_id",
                "CONNECTOR__AWS__ACCESS_KEY_ID",
            ),
            (
                vec![("CONNECTOR__SENDER__TENANT_ID", "a b")],
                "sender.tenant_id",
                "CONNECTOR__SENDER__TENANT_ID",
            ),
            (
                vec![("CONNECTOR__TOKEN_REFRESH__BATCH", "0")],
                "token_refresh.batch",
                "CONNECTOR__TOKEN_REFRESH__BATCH",
            ),
            (
                vec![("CONNECTOR__READINESS__CHECK_INTERVAL_SECS", "0")],
                "readiness.check_interval_secs",
                "CONNECTOR__READINESS__CHECK_INTERVAL_SECS",
            ),
            (
                vec![("CONNECTOR__DATABASE__MAX_CONNECTIONS", "0")],
                "database.max_connections",
                "CONNECTOR__DATABASE__MAX_CONNECTIONS",
            ),
        ] {
            let e = load(&pairs).unwrap_err();
            assert_eq!(e.key(), Some(key), "{e}");
            assert!(e.to_string().contains(env), "{e}");
        }
        // A value of the wrong type names its key too.
        assert!(
            err(&[("CONNECTOR__DATABASE__MAX_CONNECTIONS", "many")]).contains("max_connections")
        );
    }

    #[test]
    fn oauth_settings_come_all_together_or_not_at_all() {
        assert!(
            err(&[("CONNECTOR__SLACK__CLIENT_ID", "1.2")])
                .contains("CONNECTOR__SLACK__CLIENT_SECRET")
        );
        assert!(
            err(&[(
                "CONNECTOR__SLACK__REDIRECT_URL",
                "https://x.example/slack/oauth/callback",
            )])
            .contains("CONNECTOR__SLACK__CLIENT_ID")
        );
        // The ID and secret alone: rotating tokens can be refreshed, installs are off.
        let refresh_only = load(&[
            ("CONNECTOR__SLACK__CLIENT_ID", "1.2"),
            ("CONNECTOR__SLACK__CLIENT_SECRET", "s3cr3t"),
        ])
        .unwrap();
        assert!(refresh_only.oauth.is_none());
        assert_eq!(refresh_only.app.as_ref().unwrap().client_id, "1.2");
        assert!(!format!("{refresh_only:?}").contains("s3cr3t"));
        let full = load(&[
            ("CONNECTOR__SLACK__CLIENT_ID", "1.2"),
            ("CONNECTOR__SLACK__CLIENT_SECRET", "s"),
            (
                "CONNECTOR__SLACK__REDIRECT_URL",
                "https://x.example:8443/slack/oauth/callback",
            ),
        ])
        .unwrap();
        let c = full.oauth.unwrap();
        assert_eq!(c.authorize_url, "https://slack.com/oauth/v2/authorize");
        assert_eq!(c.start_url, "https://x.example:8443/slack/install");
        assert_eq!(c.state_ttl, Duration::from_secs(600));
    }

    #[test]
    fn each_periodic_job_has_its_own_switch() {
        let c = load(&[
            ("CONNECTOR__RECONCILER__INTERVAL_SECS", "0"),
            ("CONNECTOR__TOKEN_REFRESH__INTERVAL_SECS", "5"),
            ("CONNECTOR__OAUTH_STATE_PURGE__INTERVAL_SECS", "600"),
        ])
        .unwrap();
        assert_eq!(c.jobs.reconcile_every, Duration::ZERO);
        assert_eq!(c.jobs.refresh_every, Duration::from_secs(5));
        assert_eq!(c.jobs.purge_every, Duration::from_secs(600));
    }

    #[test]
    fn the_built_in_defaults_are_the_parsed_empty_sources() {
        let a = format!("{:?}", CoreConfig::defaults());
        let b = format!("{:?}", load(&[]).unwrap());
        assert_eq!(a, b);
    }
}
