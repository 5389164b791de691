//! Typed configuration, one for the server and the sender: built-in defaults (one table,
//! [`DEFAULTS`]), then an optional file, then `CONNECTOR__…` environment variables (`__`
//! separates sections: `CONNECTOR__GRPC__LISTEN_ADDR` is `grpc.listen_addr`). One
//! [`Settings::validate`] checks every value before anything connects.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use connector_adapters_aws::{AwsSettings, StaticCredentials};
use connector_adapters_jwt::JwtSettings;
use connector_adapters_slack::SlackSettings;
use connector_domain::{Scopes, SecretPrefix, SendLimits, TenantId};
use connector_ports::RepositorySettings;
use connector_usecases::{AppCredentials, ChannelLimits, OAuthConfig, ReconcileSettings};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

/// Everything the server and the sender can be told.
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
    /// Sending messages (`SendMessage` and the `sender` library).
    pub sender: SenderSection,
    /// The periodic pass finishing interrupted creates and deletes.
    pub reconciler: ReconcilerSection,
    /// The periodic refresh of rotating tokens that are due.
    pub token_refresh: TokenRefreshSection,
    /// The periodic purge of expired OAuth install states.
    pub oauth_state_purge: OAuthStatePurgeSection,
    /// Readiness: the background check of the database and the secret store.
    pub readiness: ReadinessSection,
    /// Who may call.
    #[serde(default)]
    pub auth: AuthSection,
    /// Per-tenant quotas.
    pub quotas: QuotasSection,
    /// Logging.
    pub log: LogSection,
    /// OpenTelemetry traces (off unless an endpoint is set).
    pub otel: OtelSection,
    /// The connector cache of the send and get paths.
    pub cache: CacheSection,
}

/// `cache.*`
#[derive(Debug, Clone, Deserialize)]
pub struct CacheSection {
    /// `CONNECTOR__CACHE__CONNECTOR_TTL_MS`: how long a connector's row (and the validity of
    /// its cached token) is trusted without news from the change feed; 0 turns the row cache
    /// off. With PostgreSQL any replica's change reaches every cache at once (`LISTEN/NOTIFY`)
    /// and this is only a safety net; with SQLite it bounds what another process's change
    /// takes to be seen (default 5000).
    pub connector_ttl_ms: u64,
}

impl Settings {
    /// The connector cache's TTL (zero: off).
    pub fn connector_cache_ttl(&self) -> Duration {
        Duration::from_millis(self.cache.connector_ttl_ms)
    }
}

/// `auth.*`
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthSection {
    /// `CONNECTOR__AUTH__MODE`: `jwt`, `api_key`, `jwt_or_api_key` or `none`. Unset means
    /// `none` on a loopback address only.
    pub mode: Option<String>,
    /// `CONNECTOR__AUTH__JWKS_URL`: the identity provider's JWKS (for `jwt` modes).
    pub jwks_url: Option<String>,
    /// `CONNECTOR__AUTH__ISSUER`: the `iss` tokens must carry.
    pub issuer: Option<String>,
    /// `CONNECTOR__AUTH__AUDIENCE`: an `aud` tokens must carry.
    pub audience: Option<String>,
    /// `CONNECTOR__AUTH__TENANT_CLAIM`: the claim naming the caller's tenant (default
    /// `tenant_id`; Clerk users set `org_id`); `*` grants every tenant.
    pub tenant_claim: String,
    /// `CONNECTOR__AUTH__SCOPE_CLAIM`: the claim holding the caller's scopes (default `scope`).
    pub scope_claim: String,
    /// `CONNECTOR__AUTH__LEEWAY_SECS`: tolerated clock skew for `exp`/`nbf` (default 30).
    pub leeway_secs: u64,
    /// `CONNECTOR__AUTH__JWKS_REFRESH_SECS`: the key set is refetched when older (default 300).
    pub jwks_refresh_secs: u64,
    /// `CONNECTOR__AUTH__JWKS_MIN_REFETCH_SECS`: the least time between two fetches, however
    /// many unknown `kid`s arrive (default 10).
    pub jwks_min_refetch_secs: u64,
    /// `CONNECTOR__AUTH__MTLS_TENANT_URI`: with `mtls`, the URI SAN pattern naming a client's
    /// tenant, with one `{tenant}` placeholder (`spiffe://mesh.example/tenant/{tenant}`).
    pub mtls_tenant_uri: Option<String>,
    /// `CONNECTOR__AUTH__MTLS_SCOPES`: with `mtls`, the scopes certificate holders get
    /// (default all three).
    pub mtls_scopes: String,
}

/// `quotas.*`
#[derive(Debug, Clone, Deserialize)]
pub struct QuotasSection {
    /// `CONNECTOR__QUOTAS__MAX_CONNECTORS_PER_TENANT` (default 1000; 0: no quota).
    pub max_connectors_per_tenant: u64,
    /// `CONNECTOR__QUOTAS__MAX_PENDING_INSTALLS_PER_TENANT`: install links waiting at once
    /// (default 100; 0: no quota).
    pub max_pending_installs_per_tenant: u64,
    /// `CONNECTOR__QUOTAS__REQUESTS_PER_SECOND_PER_TENANT`: gRPC requests a second per tenant
    /// and replica, on average (default 100; 0: no limit).
    pub requests_per_second_per_tenant: u32,
    /// `CONNECTOR__QUOTAS__REQUEST_BURST_PER_TENANT`: the burst allowed above it (default 200).
    pub request_burst_per_tenant: u32,
}

/// The gRPC listener's TLS files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
    /// CA certificates client certificates must chain to (mutual TLS), PEM.
    pub client_ca: Option<PathBuf>,
    /// How often the files are checked for changes.
    pub reload_every: Duration,
}

/// How callers of the gRPC API prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Nobody is asked: every request names its tenant. Only on loopback unless set
    /// explicitly.
    None,
    /// Static API keys (`connector-server api-key create`).
    ApiKey,
    /// JWTs of an identity provider, verified against its JWKS.
    Jwt,
    /// Either a JWT or an API key.
    JwtOrApiKey,
    /// Client certificates (mutual TLS), the tenant from a URI SAN.
    Mtls,
}

/// `grpc.*`
#[derive(Debug, Clone, Deserialize)]
pub struct GrpcSettings {
    /// `CONNECTOR__GRPC__LISTEN_ADDR`, default `127.0.0.1:50051`. Any other than a loopback
    /// address needs `auth.mode` set.
    pub listen_addr: SocketAddr,
    /// `CONNECTOR__GRPC__REFLECTION`: serve gRPC server reflection (default true).
    pub reflection: bool,
    /// `CONNECTOR__GRPC__HEALTH`: serve `grpc.health.v1.Health` (default true).
    pub health: bool,
    /// `CONNECTOR__GRPC__TLS_CERT_FILE`: the server's certificate chain (PEM); with the key,
    /// the listener speaks TLS only.
    pub tls_cert_file: Option<PathBuf>,
    /// `CONNECTOR__GRPC__TLS_KEY_FILE`: the server's private key (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// `CONNECTOR__GRPC__TLS_CLIENT_CA_FILE`: CA certificates (PEM) client certificates must
    /// chain to; set, every client must present one (mutual TLS).
    pub tls_client_ca_file: Option<PathBuf>,
    /// `CONNECTOR__GRPC__TLS_RELOAD_SECS`: how often the files are checked for changes and
    /// reloaded without a restart (default 10).
    pub tls_reload_secs: u64,
    /// `CONNECTOR__GRPC__REQUEST_TIMEOUT_SECS`: a call is cancelled after this (default 60).
    pub request_timeout_secs: u64,
    /// `CONNECTOR__GRPC__MAX_CONCURRENT_STREAMS`: concurrent calls per HTTP/2 connection
    /// (default 100).
    pub max_concurrent_streams: u32,
    /// `CONNECTOR__GRPC__MAX_CONCURRENT_REQUESTS`: calls served at once over all connections;
    /// more wait their turn (default 1024).
    pub max_concurrent_requests: usize,
    /// `CONNECTOR__GRPC__MAX_MESSAGE_BYTES`: a request message at most (default 1048576),
    /// SendMessage's attachments not counted.
    pub max_message_bytes: usize,
    /// `CONNECTOR__GRPC__MAX_ATTACHMENT_BYTES`: a SendMessage's attachments together at most
    /// (default 10485760; 0 refuses attachments over gRPC).
    pub max_attachment_bytes: usize,
    /// How long in-flight calls may drain after SIGINT/SIGTERM, in seconds (default 10).
    pub shutdown_grace_secs: u64,
}

/// `http.*`
#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    /// `CONNECTOR__HTTP__LISTEN_ADDR`, default `127.0.0.1:8080`.
    pub listen_addr: SocketAddr,
    /// `CONNECTOR__HTTP__HEADER_READ_TIMEOUT_SECS`: a client must send its request headers
    /// within this (default 10; slow-loris clients are dropped).
    pub header_read_timeout_secs: u64,
    /// `CONNECTOR__HTTP__MAX_CONNECTIONS`: open connections at most (default 256).
    pub max_connections: usize,
    /// `CONNECTOR__HTTP__MAX_BODY_BYTES`: request bodies at most (default 16384).
    pub max_body_bytes: usize,
}

/// `database.*`
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `CONNECTOR__DATABASE__URL`: `postgres://…`, `sqlite://PATH`, or unset for the
    /// embedded mode. May contain a password, so it is a secret.
    pub url: Option<SecretString>,
    /// `CONNECTOR__DATABASE__MAX_CONNECTIONS`: most pooled connections (default 16).
    pub max_connections: u32,
    /// `CONNECTOR__DATABASE__CONNECT_TIMEOUT_SECS`: how long to wait for a pooled (or new)
    /// connection, and SQLite's busy timeout (default 5).
    pub connect_timeout_secs: u64,
    /// `CONNECTOR__DATABASE__QUERY_TIMEOUT_SECS`: upper bound of one repository call
    /// (default 10).
    pub query_timeout_secs: u64,
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
    /// `CONNECTOR__SLACK__REQUEST_TIMEOUT_SECS`: upper bound of one HTTP attempt (default 10).
    pub request_timeout_secs: u64,
    /// `CONNECTOR__SLACK__CHANNEL_PAGES_MAX`: `conversations.list` pages read at most to find
    /// a channel by name (default 100, up to 100,000 channels).
    pub channel_pages_max: usize,
    /// `CONNECTOR__SLACK__CHANNEL_RESOLVE_DEADLINE_SECS`: the whole search's deadline
    /// (default 60).
    pub channel_resolve_deadline_secs: u64,
    /// `CONNECTOR__SLACK__CLIENT_ID` (OAuth).
    pub client_id: Option<String>,
    /// `CONNECTOR__SLACK__CLIENT_SECRET` (OAuth).
    pub client_secret: Option<SecretString>,
    /// `CONNECTOR__SLACK__SIGNING_SECRET`: the app's signing secret, which turns on
    /// `POST /slack/events` (Slack's Events API) and verifies every delivery.
    pub signing_secret: Option<SecretString>,
    /// `CONNECTOR__SLACK__REDIRECT_URL` (OAuth): the public URL of `/slack/oauth/callback`.
    pub redirect_url: Option<String>,
    /// `CONNECTOR__SLACK__INSTALL_URL`: the public URL of `/slack/install`, where installs
    /// start in the user's browser; default: the redirect URL's origin + `/slack/install`.
    pub install_url: Option<String>,
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
    /// `CONNECTOR__SENDER__TENANT_ID`: the `sender` library sends only through this tenant's
    /// connectors (others are not found); unset, any tenant's. The server ignores it.
    pub tenant_id: Option<String>,
    /// `CONNECTOR__SENDER__MAX_TEXT_PARTS`: a message's text becomes at most this many Slack
    /// messages of 40,000 characters (default 10).
    pub max_text_parts: usize,
    /// `CONNECTOR__SENDER__MAX_BLOCKS_BYTES`: `blocks_json` at most (default 65536).
    pub max_blocks_bytes: usize,
    /// `CONNECTOR__SENDER__MAX_IN_FLIGHT_PER_CONNECTOR`: concurrent sends per connector; more
    /// are refused with RESOURCE_EXHAUSTED (default 64).
    pub max_in_flight_per_connector: usize,
}

/// `reconciler.*`
#[derive(Debug, Clone, Deserialize)]
pub struct ReconcilerSection {
    /// Seconds between passes finishing interrupted creates and deletes (default 30; 0 turns
    /// them off).
    pub interval_secs: u64,
    /// Seconds after which an unfinished create or delete is finished (default 120). Must
    /// exceed the longest a create can take.
    pub stale_after_secs: u64,
    /// Rows per pass (default 100).
    pub batch: u32,
}

/// `token_refresh.*`
#[derive(Debug, Clone, Deserialize)]
pub struct TokenRefreshSection {
    /// Seconds between passes refreshing rotating tokens that are due (default 30; 0 turns
    /// them off: tokens are then refreshed only on the send path).
    pub interval_secs: u64,
    /// Connectors per pass (default 100).
    pub batch: u32,
}

/// `oauth_state_purge.*`
#[derive(Debug, Clone, Deserialize)]
pub struct OAuthStatePurgeSection {
    /// Seconds between purges of expired install states (default 30; 0 turns them off).
    pub interval_secs: u64,
}

/// `readiness.*`
#[derive(Debug, Clone, Deserialize)]
pub struct ReadinessSection {
    /// Seconds between background checks of the database and the secret store (default 5);
    /// a failed check marks the replica not ready (gRPC health NOT_SERVING, `/readyz` 503)
    /// until one succeeds.
    pub check_interval_secs: u64,
}

/// `log.*`
#[derive(Debug, Clone, Deserialize)]
pub struct LogSection {
    /// `text` (default) or `json`.
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info,connector=debug`; `RUST_LOG` wins when set.
    pub filter: String,
}

/// `otel.*`: traces exported over OTLP/gRPC.
#[derive(Debug, Clone, Deserialize)]
pub struct OtelSection {
    /// `CONNECTOR__OTEL__ENDPOINT`: the OTLP/gRPC collector, e.g. `http://otel-collector:4317`.
    /// Unset (the default): no traces are exported.
    pub endpoint: Option<String>,
    /// `CONNECTOR__OTEL__SERVICE_NAME`: the `service.name` resource (default `connector-server`).
    pub service_name: String,
    /// `CONNECTOR__OTEL__SAMPLE_RATIO`: the share of new traces kept, 0.0–1.0 (default 1.0); a
    /// caller's sampling decision in `traceparent` is followed.
    pub sample_ratio: f64,
}

impl Settings {
    /// The OTLP endpoint, when traces are on; checked to be an `http(s)://` URL.
    pub fn otel_endpoint(&self) -> Result<Option<&str>, SettingsError> {
        let Some(url) = self.otel.endpoint.as_deref().map(str::trim) else {
            return Ok(None);
        };
        if url.is_empty() {
            return Ok(None);
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "otel.endpoint",
                "CONNECTOR__OTEL__ENDPOINT",
                "must be an http:// or https:// URL of an OTLP/gRPC collector",
            ));
        }
        if !(0.0..=1.0).contains(&self.otel.sample_ratio) {
            return Err(invalid(
                "otel.sample_ratio",
                "CONNECTOR__OTEL__SAMPLE_RATIO",
                "must be between 0.0 and 1.0",
            ));
        }
        Ok(Some(url))
    }
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

/// Every default, in one place: the server and the sender read the same table.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("grpc.listen_addr", "127.0.0.1:50051"),
    ("grpc.reflection", "true"),
    ("grpc.health", "true"),
    ("grpc.shutdown_grace_secs", "10"),
    ("http.listen_addr", "127.0.0.1:8080"),
    ("http.header_read_timeout_secs", "10"),
    ("http.max_connections", "256"),
    ("http.max_body_bytes", "16384"),
    ("grpc.request_timeout_secs", "60"),
    ("grpc.max_concurrent_streams", "100"),
    ("grpc.max_concurrent_requests", "1024"),
    ("grpc.max_message_bytes", "1048576"),
    ("grpc.max_attachment_bytes", "10485760"),
    ("quotas.max_connectors_per_tenant", "1000"),
    ("quotas.max_pending_installs_per_tenant", "100"),
    ("quotas.requests_per_second_per_tenant", "100"),
    ("quotas.request_burst_per_tenant", "200"),
    ("sender.max_text_parts", "10"),
    ("sender.max_blocks_bytes", "65536"),
    ("sender.max_in_flight_per_connector", "64"),
    ("slack.channel_pages_max", "100"),
    ("slack.channel_resolve_deadline_secs", "60"),
    ("auth.tenant_claim", "tenant_id"),
    ("auth.scope_claim", "scope"),
    ("auth.leeway_secs", "30"),
    ("auth.jwks_refresh_secs", "300"),
    ("auth.jwks_min_refetch_secs", "10"),
    (
        "auth.mtls_scopes",
        "connectors:read connectors:write messages:send",
    ),
    ("grpc.tls_reload_secs", "10"),
    ("database.max_connections", "16"),
    ("database.connect_timeout_secs", "5"),
    ("database.query_timeout_secs", "10"),
    ("aws.region", "us-east-1"),
    ("secrets.prefix", "slack-connector/"),
    ("slack.api_base_url", "https://slack.com/api/"),
    ("slack.deadline_secs", "30"),
    ("slack.request_timeout_secs", "10"),
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
    ("token_refresh.interval_secs", "30"),
    ("token_refresh.batch", "100"),
    ("oauth_state_purge.interval_secs", "30"),
    ("readiness.check_interval_secs", "5"),
    ("log.format", "text"),
    ("log.filter", "info"),
    ("cache.connector_ttl_ms", "5000"),
    ("otel.service_name", "connector-server"),
    ("otel.sample_ratio", "1.0"),
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
        let mut settings: Self = builder.build()?.try_deserialize()?;
        settings.normalize();
        settings.validate()?;
        Ok(settings)
    }

    /// The defaults alone, whatever the environment says.
    pub fn defaults() -> Self {
        Self::load_from(None, Some(HashMap::new()))
            .unwrap_or_else(|e| unreachable!("the built-in defaults are valid: {e}"))
    }

    /// An empty value means unset, as an unset variable would.
    fn normalize(&mut self) {
        fn blank_to_none<T: AsRef<str>>(v: &mut Option<T>) {
            if v.as_ref().is_some_and(|s| s.as_ref().trim().is_empty()) {
                *v = None;
            }
        }
        fn blank_secret_to_none(v: &mut Option<SecretString>) {
            if v.as_ref()
                .is_some_and(|s| s.expose_secret().trim().is_empty())
            {
                *v = None;
            }
        }
        blank_secret_to_none(&mut self.database.url);
        blank_to_none(&mut self.aws.endpoint_url);
        blank_to_none(&mut self.aws.access_key_id);
        blank_secret_to_none(&mut self.aws.secret_access_key);
        blank_to_none(&mut self.secrets.backend);
        blank_secret_to_none(&mut self.secrets.local_key);
        blank_to_none(&mut self.slack.client_id);
        blank_secret_to_none(&mut self.slack.client_secret);
        blank_secret_to_none(&mut self.slack.signing_secret);
        blank_to_none(&mut self.slack.redirect_url);
        blank_to_none(&mut self.slack.install_url);
        blank_to_none(&mut self.sender.tenant_id);
        blank_to_none(&mut self.auth.mode);
        blank_to_none(&mut self.auth.jwks_url);
        blank_to_none(&mut self.auth.issuer);
        blank_to_none(&mut self.auth.audience);
        blank_to_none(&mut self.auth.mtls_tenant_uri);
        for path in [
            &mut self.grpc.tls_cert_file,
            &mut self.grpc.tls_key_file,
            &mut self.grpc.tls_client_ca_file,
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                *path = None;
            }
        }
    }

    /// Checks every value, naming the first bad one. [`Settings::load`] calls it; call it
    /// again after changing fields in code.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.secret_prefix()?;
        self.metadata()?;
        if self.local_secrets()? {
            self.key_source()?;
        }
        self.aws()?;
        self.oauth()?;
        self.sender_tenant()?;
        self.jwt()?;
        self.tls()?;
        self.mtls()?;
        self.otel_endpoint()?;
        if self.reconciler.batch == 0 {
            return Err(invalid(
                "reconciler.batch",
                "CONNECTOR__RECONCILER__BATCH",
                "must be at least 1",
            ));
        }
        if self.token_refresh.batch == 0 {
            return Err(invalid(
                "token_refresh.batch",
                "CONNECTOR__TOKEN_REFRESH__BATCH",
                "must be at least 1",
            ));
        }
        if self.readiness.check_interval_secs == 0 {
            return Err(invalid(
                "readiness.check_interval_secs",
                "CONNECTOR__READINESS__CHECK_INTERVAL_SECS",
                "must be at least 1",
            ));
        }
        for (value, key, env) in [
            (
                self.sender.max_text_parts,
                "sender.max_text_parts",
                "CONNECTOR__SENDER__MAX_TEXT_PARTS",
            ),
            (
                self.sender.max_in_flight_per_connector,
                "sender.max_in_flight_per_connector",
                "CONNECTOR__SENDER__MAX_IN_FLIGHT_PER_CONNECTOR",
            ),
            (
                self.slack.channel_pages_max,
                "slack.channel_pages_max",
                "CONNECTOR__SLACK__CHANNEL_PAGES_MAX",
            ),
            (
                self.grpc.max_concurrent_requests,
                "grpc.max_concurrent_requests",
                "CONNECTOR__GRPC__MAX_CONCURRENT_REQUESTS",
            ),
            (
                self.grpc.max_message_bytes,
                "grpc.max_message_bytes",
                "CONNECTOR__GRPC__MAX_MESSAGE_BYTES",
            ),
            (
                self.http.max_connections,
                "http.max_connections",
                "CONNECTOR__HTTP__MAX_CONNECTIONS",
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, env, "must be at least 1"));
            }
        }
        if self.grpc.max_concurrent_streams == 0 || self.grpc.request_timeout_secs == 0 {
            return Err(invalid(
                "grpc.max_concurrent_streams / grpc.request_timeout_secs",
                "CONNECTOR__GRPC__MAX_CONCURRENT_STREAMS / CONNECTOR__GRPC__REQUEST_TIMEOUT_SECS",
                "must be at least 1",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(invalid(
                "database.max_connections",
                "CONNECTOR__DATABASE__MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// How callers authenticate. Unset means none, which is refused on any but a loopback
    /// gRPC address: a multi-tenant service must not be open to whoever reaches it.
    pub fn auth_mode(&self) -> Result<AuthMode, SettingsError> {
        match self.auth.mode.as_deref() {
            Some("api_key") => Ok(AuthMode::ApiKey),
            Some("jwt") => Ok(AuthMode::Jwt),
            Some("jwt_or_api_key") => Ok(AuthMode::JwtOrApiKey),
            Some("none") => Ok(AuthMode::None),
            Some("mtls") => Ok(AuthMode::Mtls),
            Some(other) => Err(invalid(
                "auth.mode",
                "CONNECTOR__AUTH__MODE",
                format!(
                    "must be `jwt`, `api_key`, `jwt_or_api_key`, `mtls` or `none`, not {other:?}"
                ),
            )),
            None if self.grpc.listen_addr.ip().is_loopback() => Ok(AuthMode::None),
            None => Err(invalid(
                "grpc.listen_addr",
                "CONNECTOR__GRPC__LISTEN_ADDR",
                format!(
                    "{} is not a loopback address and no authentication is configured: set \
                     CONNECTOR__AUTH__MODE=api_key (see `connector-server api-key create`), \
                     or CONNECTOR__AUTH__MODE=none to serve every caller as any tenant",
                    self.grpc.listen_addr
                ),
            )),
        }
    }

    /// How JWTs are verified, for the `jwt` modes (`None` otherwise); the issuer's settings
    /// must then all be there.
    pub fn jwt(&self) -> Result<Option<JwtSettings>, SettingsError> {
        if !matches!(self.auth_mode()?, AuthMode::Jwt | AuthMode::JwtOrApiKey) {
            return Ok(None);
        }
        let a = &self.auth;
        let required = |v: &Option<String>, key, env| {
            v.clone().ok_or_else(|| {
                invalid(
                    key,
                    env,
                    "is required with CONNECTOR__AUTH__MODE=jwt or jwt_or_api_key",
                )
            })
        };
        let jwks_url = required(&a.jwks_url, "auth.jwks_url", "CONNECTOR__AUTH__JWKS_URL")?;
        if !(jwks_url.starts_with("https://") || jwks_url.starts_with("http://")) {
            return Err(invalid(
                "auth.jwks_url",
                "CONNECTOR__AUTH__JWKS_URL",
                "must be an http(s) URL",
            ));
        }
        let issuer = required(&a.issuer, "auth.issuer", "CONNECTOR__AUTH__ISSUER")?;
        let audience = required(&a.audience, "auth.audience", "CONNECTOR__AUTH__AUDIENCE")?;
        for (value, key, env) in [
            (
                &a.tenant_claim,
                "auth.tenant_claim",
                "CONNECTOR__AUTH__TENANT_CLAIM",
            ),
            (
                &a.scope_claim,
                "auth.scope_claim",
                "CONNECTOR__AUTH__SCOPE_CLAIM",
            ),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(key, env, "must name a claim"));
            }
        }
        Ok(Some(JwtSettings {
            tenant_claim: a.tenant_claim.clone(),
            scope_claim: a.scope_claim.clone(),
            leeway: Duration::from_secs(a.leeway_secs),
            refresh_every: Duration::from_secs(a.jwks_refresh_secs.max(1)),
            min_refetch_interval: Duration::from_secs(a.jwks_min_refetch_secs),
            ..JwtSettings::new(jwks_url, issuer, audience)
        }))
    }

    /// The gRPC listener's TLS files: `None` for plain text.
    pub fn tls(&self) -> Result<Option<TlsFiles>, SettingsError> {
        let g = &self.grpc;
        match (&g.tls_cert_file, &g.tls_key_file) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: g.tls_client_ca_file.clone(),
                reload_every: Duration::from_secs(g.tls_reload_secs.max(1)),
            })),
            (None, None) if g.tls_client_ca_file.is_some() => Err(invalid(
                "grpc.tls_client_ca_file",
                "CONNECTOR__GRPC__TLS_CLIENT_CA_FILE",
                "mutual TLS needs the server's own certificate too: set \
                 CONNECTOR__GRPC__TLS_CERT_FILE and CONNECTOR__GRPC__TLS_KEY_FILE",
            )),
            (None, None) => Ok(None),
            (Some(_), None) => Err(invalid(
                "grpc.tls_key_file",
                "CONNECTOR__GRPC__TLS_KEY_FILE",
                "TLS needs the certificate and the key together",
            )),
            (None, Some(_)) => Err(invalid(
                "grpc.tls_cert_file",
                "CONNECTOR__GRPC__TLS_CERT_FILE",
                "TLS needs the certificate and the key together",
            )),
        }
    }

    /// With `auth.mode = mtls`: the URI pattern naming a client's tenant and the scopes
    /// certificate holders get; `None` in the other modes.
    pub fn mtls(&self) -> Result<Option<(String, Scopes)>, SettingsError> {
        if self.auth_mode()? != AuthMode::Mtls {
            return Ok(None);
        }
        if self.tls()?.and_then(|t| t.client_ca).is_none() {
            return Err(invalid(
                "grpc.tls_client_ca_file",
                "CONNECTOR__GRPC__TLS_CLIENT_CA_FILE",
                "CONNECTOR__AUTH__MODE=mtls needs TLS with a client CA: set \
                 CONNECTOR__GRPC__TLS_CERT_FILE, CONNECTOR__GRPC__TLS_KEY_FILE and \
                 CONNECTOR__GRPC__TLS_CLIENT_CA_FILE",
            ));
        }
        let pattern = self
            .auth
            .mtls_tenant_uri
            .clone()
            .filter(|p| p.matches("{tenant}").count() == 1)
            .ok_or_else(|| {
                invalid(
                    "auth.mtls_tenant_uri",
                    "CONNECTOR__AUTH__MTLS_TENANT_URI",
                    "is required with CONNECTOR__AUTH__MODE=mtls: a URI with one {tenant} \
                     placeholder, e.g. spiffe://mesh.example/tenant/{tenant}",
                )
            })?;
        let scopes =
            Scopes::parse_names("auth.mtls_scopes", self.auth.mtls_scopes.split_whitespace())
                .map_err(|e| {
                    invalid("auth.mtls_scopes", "CONNECTOR__AUTH__MTLS_SCOPES", e.reason)
                })?;
        Ok(Some((pattern, scopes)))
    }

    /// The prefix of every connector's secret name.
    pub fn secret_prefix(&self) -> Result<SecretPrefix, SettingsError> {
        SecretPrefix::parse("secrets.prefix", &self.secrets.prefix)
            .map_err(|e| invalid("secrets.prefix", "CONNECTOR__SECRETS__PREFIX", e.reason))
    }

    /// The tenant the `sender` library is bound to, if any.
    pub fn sender_tenant(&self) -> Result<Option<TenantId>, SettingsError> {
        self.sender
            .tenant_id
            .as_deref()
            .map(|t| TenantId::parse("sender.tenant_id", t))
            .transpose()
            .map_err(|e| invalid("sender.tenant_id", "CONNECTOR__SENDER__TENANT_ID", e.reason))
    }

    /// The Secrets Manager client's settings.
    pub fn aws(&self) -> Result<AwsSettings, SettingsError> {
        let credentials = match (&self.aws.access_key_id, &self.aws.secret_access_key) {
            (Some(id), Some(key)) => Some(StaticCredentials {
                access_key_id: id.clone(),
                secret_access_key: key.clone(),
            }),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "aws.access_key_id",
                    "CONNECTOR__AWS__ACCESS_KEY_ID",
                    "set both CONNECTOR__AWS__ACCESS_KEY_ID and CONNECTOR__AWS__SECRET_ACCESS_KEY, \
                     or neither to use the standard AWS credential chain",
                ));
            }
        };
        Ok(AwsSettings {
            region: self.aws.region.clone(),
            endpoint_url: self.aws.endpoint_url.clone(),
            credentials,
            ..AwsSettings::default()
        })
    }

    /// The Slack client's settings.
    pub fn slack_client(&self) -> SlackSettings {
        SlackSettings {
            api_base_url: self.slack.api_base_url.clone(),
            deadline: Duration::from_secs(self.slack.deadline_secs),
            request_timeout: Duration::from_secs(self.slack.request_timeout_secs),
            ..SlackSettings::default()
        }
    }

    /// The repository adapters' pool and timeouts (both backends take the same).
    pub fn repository(&self) -> RepositorySettings {
        RepositorySettings {
            max_connections: self.database.max_connections.max(1),
            connect_timeout: Duration::from_secs(self.database.connect_timeout_secs),
            query_timeout: Duration::from_secs(self.database.query_timeout_secs),
        }
    }

    /// The Slack app's OAuth install settings: `None` without a redirect URL (the client ID and
    /// secret alone only let rotating tokens be refreshed); an error naming what is missing
    /// when the redirect URL comes without the client ID and secret, or when only one of
    /// those two is set.
    pub fn oauth(&self) -> Result<Option<OAuthConfig>, SettingsError> {
        let s = &self.slack;
        match (&s.client_id, &s.client_secret, &s.redirect_url) {
            (None, None, None) | (Some(_), Some(_), None) => Ok(None),
            (Some(client_id), Some(client_secret), Some(redirect_url)) => {
                if !(redirect_url.starts_with("https://") || redirect_url.starts_with("http://")) {
                    return Err(invalid(
                        "slack.redirect_url",
                        "CONNECTOR__SLACK__REDIRECT_URL",
                        "must be the public http(s) URL of /slack/oauth/callback",
                    ));
                }
                let start_url = match &s.install_url {
                    Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                        url.clone()
                    }
                    Some(_) => {
                        return Err(invalid(
                            "slack.install_url",
                            "CONNECTOR__SLACK__INSTALL_URL",
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
                Ok(Some(OAuthConfig {
                    start_url,
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
                } else {
                    ("slack.client_secret", "CONNECTOR__SLACK__CLIENT_SECRET")
                };
                Err(invalid(
                    key,
                    env,
                    "the Slack app needs the client ID and the client secret together \
                     (and the redirect URL too for OAuth installs)",
                ))
            }
        }
    }

    /// The Slack app's credentials, which refreshing rotating tokens needs: the client ID and
    /// secret when both are set.
    pub fn app_credentials(&self) -> Option<AppCredentials> {
        match (&self.slack.client_id, &self.slack.client_secret) {
            (Some(client_id), Some(client_secret)) => Some(AppCredentials {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
            }),
            _ => None,
        }
    }

    /// The Slack app's signing secret, when Slack's events are received.
    pub fn signing_secret(&self) -> Option<&SecretString> {
        self.slack.signing_secret.as_ref()
    }

    /// Which rows a reconcile pass takes.
    pub fn reconcile(&self) -> ReconcileSettings {
        ReconcileSettings {
            stale_after: Duration::from_secs(self.reconciler.stale_after_secs),
            batch: self.reconciler.batch,
        }
    }

    /// What one send may ask of Slack.
    pub fn send_limits(&self) -> SendLimits {
        SendLimits {
            max_text_parts: self.sender.max_text_parts,
            max_blocks_bytes: self.sender.max_blocks_bytes,
        }
    }

    /// How much work resolving a channel name may take.
    pub fn channel_limits(&self) -> ChannelLimits {
        ChannelLimits {
            max_pages: self.slack.channel_pages_max,
            deadline: Duration::from_secs(self.slack.channel_resolve_deadline_secs.max(1)),
        }
    }

    /// The token cache's time to live.
    pub fn token_cache_ttl(&self) -> Duration {
        Duration::from_secs(self.sender.token_cache_ttl_secs)
    }

    /// The embedded mode's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }

    /// The grace period for draining calls at shutdown.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.grpc.shutdown_grace_secs)
    }
}

pub(crate) fn invalid(
    key: &'static str,
    env: &'static str,
    reason: impl Into<String>,
) -> SettingsError {
    SettingsError::Invalid {
        key,
        env,
        reason: reason.into(),
    }
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
    fn traces_are_off_unless_an_endpoint_is_set_and_bad_values_name_their_variable() {
        let off = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(off.otel_endpoint().unwrap(), None);
        assert_eq!(off.otel.service_name, "connector-server");
        let on = Settings::load_from(
            None,
            env(&[("CONNECTOR__OTEL__ENDPOINT", "http://collector:4317")]),
        )
        .unwrap();
        assert_eq!(on.otel_endpoint().unwrap(), Some("http://collector:4317"));
        for (key, value) in [
            ("CONNECTOR__OTEL__ENDPOINT", "collector:4317"),
            ("CONNECTOR__OTEL__SAMPLE_RATIO", "1.5"),
        ] {
            let mut pairs = vec![(key, value)];
            if key != "CONNECTOR__OTEL__ENDPOINT" {
                pairs.push(("CONNECTOR__OTEL__ENDPOINT", "http://collector:4317"));
            }
            let err = Settings::load_from(None, env(&pairs))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.grpc.listen_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(s.http.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.auth_mode().unwrap(), AuthMode::None);
        assert!(s.grpc.reflection && s.grpc.health);
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
                ("CONNECTOR__SLACK__CLIENT_ID", "1.2"),
                ("CONNECTOR__SLACK__CLIENT_SECRET", "s3cr3t"),
                ("CONNECTOR__LOG__FORMAT", "json"),
            ]),
        )
        .unwrap();
        assert_eq!(s.grpc.listen_addr.port(), 6000);
        assert_eq!(s.metadata().unwrap(), crate::storage::Metadata::Postgres);
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

        // Checked at load, before anything connects.
        let err = Settings::load_from(None, env(&[("CONNECTOR__DATABASE__URL", "mysql://x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CONNECTOR__DATABASE__URL"), "{err}");
    }

    #[test]
    fn without_a_database_url_the_server_is_embedded() {
        let s = Settings::load_from(None, env(&[("CONNECTOR__DATA_DIR", "/srv/sc")])).unwrap();
        assert_eq!(
            s.metadata().unwrap(),
            crate::storage::Metadata::Sqlite("/srv/sc/connectors.sqlite3".into())
        );
        assert!(s.local_secrets().unwrap());
        assert_eq!(s.secrets_dir(), PathBuf::from("/srv/sc/secrets"));
    }

    #[test]
    fn oauth_settings_come_all_together_or_not_at_all() {
        let none = Settings::load_from(None, env(&[])).unwrap();
        assert!(none.oauth().unwrap().is_none());
        let err = Settings::load_from(None, env(&[("CONNECTOR__SLACK__CLIENT_ID", "1.2")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CONNECTOR__SLACK__CLIENT_SECRET"), "{err}");
        let err = Settings::load_from(
            None,
            env(&[(
                "CONNECTOR__SLACK__REDIRECT_URL",
                "https://x.example/slack/oauth/callback",
            )]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("CONNECTOR__SLACK__CLIENT_ID"), "{err}");
        // The ID and secret alone: rotating tokens can be refreshed, installs are off.
        let refresh_only = Settings::load_from(
            None,
            env(&[
                ("CONNECTOR__SLACK__CLIENT_ID", "1.2"),
                ("CONNECTOR__SLACK__CLIENT_SECRET", "s"),
            ]),
        )
        .unwrap();
        assert!(refresh_only.oauth().unwrap().is_none());
        assert_eq!(refresh_only.app_credentials().unwrap().client_id, "1.2");
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

    #[test]
    fn each_periodic_job_has_its_own_switch() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.reconciler.interval_secs, 30);
        assert_eq!(s.token_refresh.interval_secs, 30);
        assert_eq!(s.oauth_state_purge.interval_secs, 30);
        let s = Settings::load_from(
            None,
            env(&[
                ("CONNECTOR__RECONCILER__INTERVAL_SECS", "0"),
                ("CONNECTOR__TOKEN_REFRESH__INTERVAL_SECS", "5"),
                ("CONNECTOR__OAUTH_STATE_PURGE__INTERVAL_SECS", "600"),
            ]),
        )
        .unwrap();
        assert_eq!(s.reconciler.interval_secs, 0);
        assert_eq!(s.token_refresh.interval_secs, 5);
        assert_eq!(s.oauth_state_purge.interval_secs, 600);
        let err = Settings::load_from(None, env(&[("CONNECTOR__TOKEN_REFRESH__BATCH", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CONNECTOR__TOKEN_REFRESH__BATCH"), "{err}");
        let err = Settings::load_from(
            None,
            env(&[("CONNECTOR__READINESS__CHECK_INTERVAL_SECS", "0")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("CONNECTOR__READINESS__CHECK_INTERVAL_SECS"),
            "{err}"
        );
    }

    #[test]
    fn empty_values_mean_unset_and_both_backends_get_the_same_pool_settings() {
        let s = Settings::load_from(
            None,
            env(&[
                ("CONNECTOR__DATABASE__URL", ""),
                ("CONNECTOR__SECRETS__BACKEND", ""),
                ("CONNECTOR__DATABASE__QUERY_TIMEOUT_SECS", "3"),
            ]),
        )
        .unwrap();
        assert!(s.database.url.is_none());
        assert!(s.secrets.backend.is_none());
        let r = s.repository();
        assert_eq!(r.max_connections, 16);
        assert_eq!(r.connect_timeout, Duration::from_secs(5));
        assert_eq!(r.query_timeout, Duration::from_secs(3));
    }

    #[test]
    fn without_authentication_only_loopback_is_served() {
        let err = Settings::load_from(
            None,
            env(&[("CONNECTOR__GRPC__LISTEN_ADDR", "0.0.0.0:50051")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("CONNECTOR__GRPC__LISTEN_ADDR"), "{err}");
        assert!(err.contains("CONNECTOR__AUTH__MODE"), "{err}");
        for mode in ["api_key", "none"] {
            let s = Settings::load_from(
                None,
                env(&[
                    ("CONNECTOR__GRPC__LISTEN_ADDR", "0.0.0.0:50051"),
                    ("CONNECTOR__AUTH__MODE", mode),
                ]),
            )
            .unwrap();
            assert!(s.auth_mode().is_ok());
        }
        let s = Settings::load_from(None, env(&[("CONNECTOR__GRPC__LISTEN_ADDR", "[::1]:7000")]))
            .unwrap();
        assert_eq!(s.auth_mode().unwrap(), AuthMode::None);
        let err = Settings::load_from(None, env(&[("CONNECTOR__AUTH__MODE", "basic")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CONNECTOR__AUTH__MODE"), "{err}");
    }

    #[test]
    fn jwt_modes_need_the_issuer_settings_and_name_the_missing_one() {
        let err = Settings::load_from(None, env(&[("CONNECTOR__AUTH__MODE", "jwt")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CONNECTOR__AUTH__JWKS_URL"), "{err}");
        let err = Settings::load_from(
            None,
            env(&[
                ("CONNECTOR__AUTH__MODE", "jwt_or_api_key"),
                (
                    "CONNECTOR__AUTH__JWKS_URL",
                    "https://idp.example/.well-known/jwks.json",
                ),
                ("CONNECTOR__AUTH__ISSUER", "https://idp.example/"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("CONNECTOR__AUTH__AUDIENCE"), "{err}");
        let s = Settings::load_from(
            None,
            env(&[
                ("CONNECTOR__AUTH__MODE", "jwt"),
                (
                    "CONNECTOR__AUTH__JWKS_URL",
                    "https://idp.example/.well-known/jwks.json",
                ),
                ("CONNECTOR__AUTH__ISSUER", "https://idp.example/"),
                ("CONNECTOR__AUTH__AUDIENCE", "connector-api"),
                ("CONNECTOR__AUTH__TENANT_CLAIM", "org_id"),
            ]),
        )
        .unwrap();
        let jwt = s.jwt().unwrap().unwrap();
        assert_eq!(jwt.tenant_claim, "org_id");
        assert_eq!(jwt.scope_claim, "scope");
        assert_eq!(jwt.leeway, Duration::from_secs(30));
        assert_eq!(jwt.min_refetch_interval, Duration::from_secs(10));
    }

    #[test]
    fn tls_files_come_together_and_mtls_needs_a_client_ca_and_a_tenant_pattern() {
        let err = Settings::load_from(None, env(&[("CONNECTOR__GRPC__TLS_CERT_FILE", "/c.pem")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CONNECTOR__GRPC__TLS_KEY_FILE"), "{err}");
        let err = Settings::load_from(None, env(&[("CONNECTOR__AUTH__MODE", "mtls")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CONNECTOR__GRPC__TLS_CLIENT_CA_FILE"), "{err}");
        let tls = [
            ("CONNECTOR__AUTH__MODE", "mtls"),
            ("CONNECTOR__GRPC__TLS_CERT_FILE", "/c.pem"),
            ("CONNECTOR__GRPC__TLS_KEY_FILE", "/k.pem"),
            ("CONNECTOR__GRPC__TLS_CLIENT_CA_FILE", "/ca.pem"),
        ];
        let err = Settings::load_from(None, env(&tls))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CONNECTOR__AUTH__MTLS_TENANT_URI"), "{err}");
        let mut with_pattern = tls.to_vec();
        with_pattern.push(("CONNECTOR__AUTH__MTLS_TENANT_URI", "spiffe://m/t/{tenant}"));
        let s = Settings::load_from(None, env(&with_pattern)).unwrap();
        let (pattern, scopes) = s.mtls().unwrap().unwrap();
        assert_eq!(pattern, "spiffe://m/t/{tenant}");
        assert_eq!(scopes, Scopes::all());
        assert_eq!(
            s.tls().unwrap().unwrap().client_ca,
            Some(PathBuf::from("/ca.pem"))
        );
    }
}
