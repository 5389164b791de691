//! [`CoreSettings`]: what the server and the sender can be told about the stores, Slack and
//! the use cases, as the sources say it. Every default is a serde default here, in one place;
//! [`CoreConfig::parse`](super::CoreConfig::parse) turns these into typed values once.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

use super::sources::blank;

/// The core settings (top-level `data_dir` and the sections below); the server's own
/// sections (`grpc`, `http`, `auth`, `log`, `otel`) are the server's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CoreSettings {
    /// `data_dir`: the embedded mode's directory (default `$XDG_DATA_HOME/slack-connector`,
    /// else `~/.local/share/slack-connector`).
    #[serde(deserialize_with = "blank::path")]
    pub data_dir: Option<PathBuf>,
    /// `database.*`
    pub database: Database,
    /// `aws.*`
    pub aws: Aws,
    /// `secrets.*`
    pub secrets: Secrets,
    /// `slack.*`
    pub slack: Slack,
    /// `sender.*`
    pub sender: Sender,
    /// `cache.*`
    pub cache: Cache,
    /// `events.*`
    pub events: Events,
    /// `delivery.*` (queued delivery)
    pub delivery: Delivery,
    /// `reconciler.*`
    pub reconciler: Reconciler,
    /// `token_refresh.*`
    pub token_refresh: TokenRefresh,
    /// `oauth_state_purge.*`
    pub oauth_state_purge: OAuthStatePurge,
    /// `readiness.*`
    pub readiness: Readiness,
    /// `quotas.*` (the per-tenant quotas the use cases hold)
    pub quotas: Quotas,
}

/// `database.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Database {
    /// `url`: `postgres://…`, `sqlite://PATH`, or unset for the embedded mode; a secret (it
    /// may hold a password).
    #[serde(deserialize_with = "blank::secret")]
    pub url: Option<SecretString>,
    /// `max_connections`: most pooled connections.
    pub max_connections: u32,
    /// `connect_timeout_secs`: the wait for a pooled connection, and SQLite's busy timeout.
    pub connect_timeout_secs: u64,
    /// `query_timeout_secs`: the bound of one repository call.
    pub query_timeout_secs: u64,
}

impl Default for Database {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 16,
            connect_timeout_secs: 5,
            query_timeout_secs: 10,
        }
    }
}

/// `aws.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Aws {
    /// `region`.
    pub region: String,
    /// `endpoint_url`: a Secrets Manager endpoint override (LocalStack).
    #[serde(deserialize_with = "blank::string")]
    pub endpoint_url: Option<String>,
    /// `access_key_id`: static credentials, with `secret_access_key`; otherwise the
    /// standard AWS chain.
    #[serde(deserialize_with = "blank::string")]
    pub access_key_id: Option<String>,
    /// `secret_access_key`.
    #[serde(deserialize_with = "blank::secret")]
    pub secret_access_key: Option<SecretString>,
}

impl Default for Aws {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            endpoint_url: None,
            access_key_id: None,
            secret_access_key: None,
        }
    }
}

/// `secrets.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Secrets {
    /// `prefix`: of every connector's secret name.
    pub prefix: String,
    /// `backend`: `aws` or `local`; by default it follows the database.
    #[serde(deserialize_with = "blank::string")]
    pub backend: Option<String>,
    /// `local_key`: the local store's key, base64 of 32 bytes; without it a key file.
    #[serde(deserialize_with = "blank::secret")]
    pub local_key: Option<SecretString>,
    /// `local_key_file`: default `DATA_DIR/secrets.key`.
    #[serde(deserialize_with = "blank::path")]
    pub local_key_file: Option<PathBuf>,
    /// `local_dir`: default `DATA_DIR/secrets`.
    #[serde(deserialize_with = "blank::path")]
    pub local_dir: Option<PathBuf>,
}

impl Default for Secrets {
    fn default() -> Self {
        Self {
            prefix: "slack-connector/".into(),
            backend: None,
            local_key: None,
            local_key_file: None,
            local_dir: None,
        }
    }
}

/// `slack.*`: the Web API client and the Slack app.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Slack {
    /// `api_base_url`.
    pub api_base_url: String,
    /// `deadline_secs`: one Slack call, retries included.
    pub deadline_secs: u64,
    /// `request_timeout_secs`: one HTTP attempt.
    pub request_timeout_secs: u64,
    /// `channel_pages_max`: `conversations.list` pages read at most to find a channel.
    pub channel_pages_max: usize,
    /// `channel_resolve_deadline_secs`: the whole search's deadline.
    pub channel_resolve_deadline_secs: u64,
    /// `client_id` (the Slack app).
    #[serde(deserialize_with = "blank::string")]
    pub client_id: Option<String>,
    /// `client_secret` (the Slack app).
    #[serde(deserialize_with = "blank::secret")]
    pub client_secret: Option<SecretString>,
    /// `redirect_url`: the public URL of `/slack/oauth/callback`; turns OAuth installs on.
    #[serde(deserialize_with = "blank::string")]
    pub redirect_url: Option<String>,
    /// `install_url`: the public URL of `/slack/install`; default the redirect URL's origin
    /// + `/slack/install`.
    #[serde(deserialize_with = "blank::string")]
    pub install_url: Option<String>,
    /// `authorize_url`: Slack's authorize page.
    pub authorize_url: String,
    /// `scopes`: bot scopes an install asks for.
    pub scopes: String,
    /// `user_scopes`: user scopes an install asks for.
    pub user_scopes: String,
    /// `oauth_state_ttl_secs`: how long an install URL works.
    pub oauth_state_ttl_secs: u64,
}

impl Default for Slack {
    fn default() -> Self {
        Self {
            api_base_url: "https://slack.com/api/".into(),
            deadline_secs: 30,
            request_timeout_secs: 10,
            channel_pages_max: 100,
            channel_resolve_deadline_secs: 60,
            client_id: None,
            client_secret: None,
            redirect_url: None,
            install_url: None,
            authorize_url: "https://slack.com/oauth/v2/authorize".into(),
            scopes: "channels:read,groups:read,chat:write,files:write".into(),
            user_scopes: String::new(),
            oauth_state_ttl_secs: 600,
        }
    }
}

/// `sender.*`: sending (`SendMessage` and the `sender` library).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Sender {
    /// `token_cache_ttl_secs`: how long a token is reused before it is read again (0: off).
    pub token_cache_ttl_secs: u64,
    /// `tenant_id`: the `sender` library sends only through this tenant's connectors.
    #[serde(deserialize_with = "blank::string")]
    pub tenant_id: Option<String>,
    /// `max_text_parts`: Slack messages one text becomes at most.
    pub max_text_parts: usize,
    /// `max_blocks_bytes`: `blocks_json` at most.
    pub max_blocks_bytes: usize,
    /// `max_in_flight_per_connector`: concurrent sends per connector.
    pub max_in_flight_per_connector: usize,
    /// `send_deadline_secs`: how long a send with a `request_id` (on a task of its own) may
    /// post before its outcome is recorded as unknown.
    pub send_deadline_secs: u64,
}

impl Default for Sender {
    fn default() -> Self {
        Self {
            token_cache_ttl_secs: 300,
            tenant_id: None,
            max_text_parts: 10,
            max_blocks_bytes: 65536,
            max_in_flight_per_connector: 64,
            send_deadline_secs: 120,
        }
    }
}

/// `events.*`: the inbound event log.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Events {
    /// `retention_hours`: how long events are kept (at least 1).
    pub retention_hours: u64,
    /// `max_streams_per_tenant`: StreamEvents streams one tenant may hold open on a replica
    /// (0: no limit).
    pub max_streams_per_tenant: usize,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            retention_hours: 168,
            max_streams_per_tenant: 16,
        }
    }
}

/// `delivery.*`: queued delivery (the outbox), paced to Slack's limits across replicas.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Delivery {
    /// `channel_rate`: posts a second per (workspace, channel).
    pub channel_rate: f64,
    /// `channel_burst`: posts at once per channel after a quiet spell.
    pub channel_burst: u32,
    /// `workspace_rate_per_minute`: posts a minute per workspace, all channels together.
    pub workspace_rate_per_minute: f64,
    /// `workspace_burst`: posts at once per workspace after a quiet spell.
    pub workspace_burst: u32,
    /// `deadline_seconds`: how long after it was queued a message is still tried.
    pub deadline_seconds: u64,
    /// `max_in_flight`: posts one replica makes at once.
    pub max_in_flight: usize,
    /// `retention_hours`: how long finished messages stay readable.
    pub retention_hours: u64,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            channel_rate: 1.0,
            channel_burst: 3,
            workspace_rate_per_minute: 300.0,
            workspace_burst: 10,
            deadline_seconds: 1800,
            max_in_flight: 64,
            retention_hours: 168,
        }
    }
}

/// `cache.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Cache {
    /// `connector_ttl_ms`: how long a row is trusted without news from the change feed (0: no
    /// row cache).
    pub connector_ttl_ms: u64,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            connector_ttl_ms: 5000,
        }
    }
}

/// `reconciler.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Reconciler {
    /// `interval_secs`: between passes (0: off).
    pub interval_secs: u64,
    /// `stale_after_secs`: age at which an unfinished create or delete is finished.
    pub stale_after_secs: u64,
    /// `batch`: rows a pass.
    pub batch: u32,
}

impl Default for Reconciler {
    fn default() -> Self {
        Self {
            interval_secs: 30,
            stale_after_secs: 120,
            batch: 100,
        }
    }
}

/// `token_refresh.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TokenRefresh {
    /// `interval_secs`: between passes (0: off; sends still refresh what they need).
    pub interval_secs: u64,
    /// `batch`: connectors a pass.
    pub batch: u32,
}

impl Default for TokenRefresh {
    fn default() -> Self {
        Self {
            interval_secs: 30,
            batch: 100,
        }
    }
}

/// `oauth_state_purge.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct OAuthStatePurge {
    /// `interval_secs`: between purges of expired install links and old records (0: off).
    pub interval_secs: u64,
}

impl Default for OAuthStatePurge {
    fn default() -> Self {
        Self { interval_secs: 30 }
    }
}

/// `readiness.*`
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Readiness {
    /// `check_interval_secs`: between background checks of the database and secret store.
    pub check_interval_secs: u64,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            check_interval_secs: 5,
        }
    }
}

/// `quotas.*` the use cases hold (the request rate is the server's).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Quotas {
    /// `max_connectors_per_tenant` (0: none).
    pub max_connectors_per_tenant: u64,
    /// `max_pending_installs_per_tenant` (0: none).
    pub max_pending_installs_per_tenant: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_connectors_per_tenant: 1000,
            max_pending_installs_per_tenant: 100,
        }
    }
}
