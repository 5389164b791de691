//! [`ServerConfig`]: the server's configuration, parsed once. The core (stores, Slack, use
//! cases) is `connector-app`'s [`CoreConfig`]; the server owns its listeners, who may call
//! ([`Auth`]), the request rate per tenant, Slack's signing secret, logs and traces. Both are
//! read from the same [`Sources`] (a TOML file, then `CONNECTOR__…` variables), and every
//! error names the key and its variable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use connector_adapters_jwt::JwtSettings;
use connector_app::config::sources::blank;
use connector_app::config::{ConfigError, CoreConfig, Sources, invalid};
use connector_domain::Scopes;
use connector_slack_inbound::SocketModeSettings;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

/// The whole server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Stores, Slack and the use cases.
    pub core: CoreConfig,
    /// The gRPC listener.
    pub grpc: GrpcConfig,
    /// The public HTTP listener (Slack's events, the OAuth install pages).
    pub http: HttpConfig,
    /// The admin HTTP listener (probes, metrics).
    pub admin: AdminConfig,
    /// Who may call.
    pub auth: Auth,
    /// gRPC requests a second per tenant and replica, and the burst above it; `None`: no
    /// limit.
    pub rate_per_tenant: Option<(u32, u32)>,
    /// gRPC requests a second per client address and replica, and the burst above it, checked
    /// before authentication; `None`: no limit.
    pub rate_per_client: Option<(u32, u32)>,
    /// The Slack app's signing secret: turns on `POST /slack/events`.
    pub signing_secret: Option<SecretString>,
    /// Slack's Socket Mode (an app-level token set): connections to Slack that bring events,
    /// interactions and commands without a public URL.
    pub socket_mode: Option<SocketModeSettings>,
    /// Log lines.
    pub log: LogConfig,
    /// Traces exported over OTLP/gRPC; `None`: off.
    pub otel: Option<OtelConfig>,
}

/// The gRPC listener.
#[derive(Debug, Clone)]
pub struct GrpcConfig {
    /// Where it listens.
    pub listen_addr: SocketAddr,
    /// Serve server reflection.
    pub reflection: bool,
    /// Serve `grpc.health.v1.Health`.
    pub health: bool,
    /// TLS (and mutual TLS with a client CA); `None`: plain text.
    pub tls: Option<TlsFiles>,
    /// A call is cancelled after this.
    pub request_timeout: Duration,
    /// Concurrent calls per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// Open connections at most; more are closed as they are accepted.
    pub max_connections: usize,
    /// Calls served at once over all connections.
    pub max_concurrent_requests: usize,
    /// A request message at most, SendMessage's attachments not counted.
    pub max_message_bytes: usize,
    /// A SendMessage's attachments together at most.
    pub max_attachment_bytes: usize,
    /// A SendMessage's attachments at most.
    pub max_attachments: usize,
    /// The bytes of every request body being read, together, at most.
    pub request_bytes_budget: usize,
    /// How long in-flight calls may drain after SIGINT/SIGTERM.
    pub shutdown_grace: Duration,
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

/// The public HTTP listener: what Slack and browsers must reach.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where it listens.
    pub listen_addr: SocketAddr,
    /// Request headers must arrive within this.
    pub header_read_timeout: Duration,
    /// A request body must arrive within this.
    pub body_read_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections at most from one client address.
    pub max_connections_per_client: usize,
    /// Request bodies at most.
    pub max_body_bytes: usize,
}

/// The admin HTTP listener: `/healthz`, `/readyz` and `/metrics`, for the kubelet and
/// Prometheus only.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Where it listens (loopback unless set).
    pub listen_addr: SocketAddr,
    /// How often the gauges that need the database (connectors by status) are refreshed.
    pub gauge_refresh: Duration,
}

/// How callers of the gRPC API prove who they are; each mode carries what it needs.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Nobody is asked: every request names its tenant (loopback only unless set).
    Off,
    /// Static API keys (`connector-server api-key create`).
    ApiKeys,
    /// JWTs of an identity provider, verified against its JWKS.
    Jwt(JwtSettings),
    /// Either a JWT or an API key.
    JwtOrApiKeys(JwtSettings),
    /// Client certificates (mutual TLS): a URI SAN matching the pattern names the tenant.
    Mtls {
        /// A URI with one `{tenant}` placeholder.
        tenant_uri: String,
        /// What certificate holders may do.
        scopes: Scopes,
    },
}

impl Auth {
    /// The mode's name, as `CONNECTOR__AUTH__MODE` says it.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::Off => "none",
            Self::ApiKeys => "api_key",
            Self::Jwt(_) => "jwt",
            Self::JwtOrApiKeys(_) => "jwt_or_api_key",
            Self::Mtls { .. } => "mtls",
        }
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

/// Log lines.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `log.format`: `text` or `json`.
    pub format: LogFormat,
    /// `log.filter`: an `EnvFilter` directive such as `info,connector=debug`; `RUST_LOG` wins.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

/// Traces exported over OTLP/gRPC.
#[derive(Debug, Clone)]
pub struct OtelConfig {
    /// The collector, an `http(s)://` URL.
    pub endpoint: String,
    /// The `service.name` resource.
    pub service_name: String,
    /// The share of new traces kept, 0.0–1.0.
    pub sample_ratio: f64,
}

/// The server's own settings, as the sources say them (serde defaults are the defaults).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ServerSettings {
    grpc: RawGrpc,
    http: RawHttp,
    admin: RawAdmin,
    auth: RawAuth,
    quotas: RawQuotas,
    slack: RawSlack,
    log: LogConfig,
    otel: RawOtel,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawGrpc {
    listen_addr: SocketAddr,
    reflection: bool,
    health: bool,
    #[serde(deserialize_with = "blank::path")]
    tls_cert_file: Option<PathBuf>,
    #[serde(deserialize_with = "blank::path")]
    tls_key_file: Option<PathBuf>,
    #[serde(deserialize_with = "blank::path")]
    tls_client_ca_file: Option<PathBuf>,
    tls_reload_secs: u64,
    request_timeout_secs: u64,
    max_concurrent_streams: u32,
    max_connections: usize,
    max_concurrent_requests: usize,
    max_message_bytes: usize,
    max_attachment_bytes: usize,
    max_attachments: usize,
    request_bytes_budget: usize,
    shutdown_grace_secs: u64,
}

impl Default for RawGrpc {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            reflection: true,
            health: true,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_reload_secs: 10,
            request_timeout_secs: 60,
            max_concurrent_streams: 100,
            max_connections: 1024,
            max_concurrent_requests: 1024,
            max_message_bytes: 1024 * 1024,
            max_attachment_bytes: 10 * 1024 * 1024,
            max_attachments: 10,
            request_bytes_budget: 64 * 1024 * 1024,
            shutdown_grace_secs: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawHttp {
    listen_addr: SocketAddr,
    header_read_timeout_secs: u64,
    body_read_timeout_secs: u64,
    max_connections: usize,
    max_connections_per_client: usize,
    max_body_bytes: usize,
}

impl Default for RawHttp {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 10,
            max_connections: 256,
            max_connections_per_client: 32,
            max_body_bytes: 16384,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawAdmin {
    listen_addr: SocketAddr,
    gauge_refresh_secs: u64,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 9090)),
            gauge_refresh_secs: 15,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawAuth {
    #[serde(deserialize_with = "blank::string")]
    mode: Option<String>,
    #[serde(deserialize_with = "blank::string")]
    jwks_url: Option<String>,
    #[serde(deserialize_with = "blank::string")]
    issuer: Option<String>,
    #[serde(deserialize_with = "blank::string")]
    audience: Option<String>,
    tenant_claim: String,
    #[serde(deserialize_with = "blank::string")]
    platform_claim: Option<String>,
    scope_claim: String,
    leeway_secs: u64,
    jwks_refresh_secs: u64,
    jwks_min_refetch_secs: u64,
    jwks_max_age_secs: u64,
    #[serde(deserialize_with = "blank::string")]
    mtls_tenant_uri: Option<String>,
    mtls_scopes: String,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self {
            mode: None,
            jwks_url: None,
            issuer: None,
            audience: None,
            tenant_claim: "tenant_id".into(),
            platform_claim: None,
            scope_claim: "scope".into(),
            leeway_secs: 30,
            jwks_refresh_secs: 300,
            jwks_min_refetch_secs: 10,
            jwks_max_age_secs: 3600,
            mtls_tenant_uri: None,
            mtls_scopes: "connectors:read connectors:write messages:send".into(),
        }
    }
}

/// The request-rate quotas (the use cases' quotas are the core's).
#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawQuotas {
    requests_per_second_per_tenant: u32,
    request_burst_per_tenant: u32,
    requests_per_second_per_client: u32,
    request_burst_per_client: u32,
}

impl Default for RawQuotas {
    fn default() -> Self {
        Self {
            requests_per_second_per_tenant: 100,
            request_burst_per_tenant: 200,
            requests_per_second_per_client: 0,
            request_burst_per_client: 0,
        }
    }
}

/// The part of `slack.*` the inbound edges own.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawSlack {
    #[serde(deserialize_with = "blank::secret")]
    signing_secret: Option<SecretString>,
    /// The app-level token (`xapp-…`) that turns Socket Mode on.
    #[serde(deserialize_with = "blank::secret")]
    app_token: Option<SecretString>,
    /// Socket Mode connections per replica.
    socket_connections: usize,
}

impl Default for RawSlack {
    fn default() -> Self {
        Self {
            signing_secret: None,
            app_token: None,
            socket_connections: 2,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawOtel {
    #[serde(deserialize_with = "blank::string")]
    endpoint: Option<String>,
    service_name: String,
    sample_ratio: f64,
}

impl Default for RawOtel {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: "connector-server".into(),
            sample_ratio: 1.0,
        }
    }
}

impl ServerConfig {
    /// Reads `file` (when given) and the process environment, and parses everything.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_sources(&Sources::read(file)?)
    }

    /// Like [`ServerConfig::load`], reading `env` instead of the process environment.
    pub fn load_from(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Self, ConfigError> {
        Self::from_sources(&Sources::read_from(file, env)?)
    }

    /// Parses the core and the server's sections of `sources`.
    pub fn from_sources(sources: &Sources) -> Result<Self, ConfigError> {
        let core = CoreConfig::from_sources(sources)?;
        let s: ServerSettings = sources.settings()?;
        let tls = parse_tls(&s.grpc)?;
        let auth = parse_auth(&s.auth, &s.grpc, tls.as_ref())?;
        let g = &s.grpc;
        for (value, key) in [
            (g.max_concurrent_requests, "grpc.max_concurrent_requests"),
            (g.max_connections, "grpc.max_connections"),
            (g.max_message_bytes, "grpc.max_message_bytes"),
            (
                g.max_concurrent_streams as usize,
                "grpc.max_concurrent_streams",
            ),
            (g.request_timeout_secs as usize, "grpc.request_timeout_secs"),
            (s.http.max_connections, "http.max_connections"),
            (
                s.http.max_connections_per_client,
                "http.max_connections_per_client",
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if g.request_bytes_budget < g.max_message_bytes.saturating_add(g.max_attachment_bytes) {
            return Err(invalid(
                "grpc.request_bytes_budget",
                "must hold at least one SendMessage of the largest size (grpc.max_message_bytes + grpc.max_attachment_bytes)",
            ));
        }
        let socket_mode = match &s.slack.app_token {
            None => None,
            Some(token) if !token.expose_secret().trim().starts_with("xapp-") => {
                return Err(invalid(
                    "slack.app_token",
                    "must be an app-level token (xapp-…, with the connections:write scope), not a bot or user token",
                ));
            }
            Some(_) if !(1..=10).contains(&s.slack.socket_connections) => {
                return Err(invalid(
                    "slack.socket_connections",
                    "must be between 1 and 10 (Slack allows an app 10 connections)",
                ));
            }
            Some(token) => Some(SocketModeSettings {
                api_base_url: core.slack.api_base_url.clone(),
                app_token: SecretString::from(token.expose_secret().trim().to_owned()),
                connections: s.slack.socket_connections,
            }),
        };
        let otel = match &s.otel.endpoint {
            None => None,
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                return Err(invalid(
                    "otel.endpoint",
                    "must be an http:// or https:// URL of an OTLP/gRPC collector",
                ));
            }
            Some(_) if !(0.0..=1.0).contains(&s.otel.sample_ratio) => {
                return Err(invalid("otel.sample_ratio", "must be between 0.0 and 1.0"));
            }
            Some(url) => Some(OtelConfig {
                endpoint: url.trim().to_owned(),
                service_name: s.otel.service_name.clone(),
                sample_ratio: s.otel.sample_ratio,
            }),
        };
        let secs = Duration::from_secs;
        Ok(Self {
            core,
            grpc: GrpcConfig {
                listen_addr: g.listen_addr,
                reflection: g.reflection,
                health: g.health,
                tls,
                request_timeout: secs(g.request_timeout_secs),
                max_concurrent_streams: g.max_concurrent_streams,
                max_connections: g.max_connections,
                max_concurrent_requests: g.max_concurrent_requests,
                max_message_bytes: g.max_message_bytes,
                max_attachment_bytes: g.max_attachment_bytes,
                max_attachments: g.max_attachments,
                request_bytes_budget: g.request_bytes_budget,
                shutdown_grace: secs(g.shutdown_grace_secs),
            },
            http: HttpConfig {
                listen_addr: s.http.listen_addr,
                header_read_timeout: secs(s.http.header_read_timeout_secs.max(1)),
                body_read_timeout: secs(s.http.body_read_timeout_secs.max(1)),
                max_connections: s.http.max_connections,
                max_connections_per_client: s.http.max_connections_per_client,
                max_body_bytes: s.http.max_body_bytes,
            },
            admin: AdminConfig {
                listen_addr: s.admin.listen_addr,
                gauge_refresh: secs(s.admin.gauge_refresh_secs.max(1)),
            },
            auth,
            rate_per_tenant: (s.quotas.requests_per_second_per_tenant > 0).then_some((
                s.quotas.requests_per_second_per_tenant,
                s.quotas.request_burst_per_tenant,
            )),
            rate_per_client: (s.quotas.requests_per_second_per_client > 0).then(|| {
                let rate = s.quotas.requests_per_second_per_client;
                let burst = match s.quotas.request_burst_per_client {
                    0 => rate.saturating_mul(2),
                    burst => burst,
                };
                (rate, burst)
            }),
            signing_secret: s.slack.signing_secret,
            socket_mode,
            log: s.log,
            otel,
        })
    }
}

fn parse_tls(g: &RawGrpc) -> Result<Option<TlsFiles>, ConfigError> {
    match (&g.tls_cert_file, &g.tls_key_file) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: g.tls_client_ca_file.clone(),
            reload_every: Duration::from_secs(g.tls_reload_secs.max(1)),
        })),
        (None, None) if g.tls_client_ca_file.is_some() => Err(invalid(
            "grpc.tls_client_ca_file",
            "mutual TLS needs the server's own certificate too: set \
             CONNECTOR__GRPC__TLS_CERT_FILE and CONNECTOR__GRPC__TLS_KEY_FILE",
        )),
        (None, None) => Ok(None),
        (Some(_), None) => Err(invalid(
            "grpc.tls_key_file",
            "TLS needs the certificate and the key together",
        )),
        (None, Some(_)) => Err(invalid(
            "grpc.tls_cert_file",
            "TLS needs the certificate and the key together",
        )),
    }
}

/// Who may call. Unset means nobody is asked, which is refused on any but a loopback gRPC
/// address: a multi-tenant service must not be open to whoever reaches it.
fn parse_auth(a: &RawAuth, g: &RawGrpc, tls: Option<&TlsFiles>) -> Result<Auth, ConfigError> {
    match a.mode.as_deref() {
        Some("none") => Ok(Auth::Off),
        Some("api_key") => Ok(Auth::ApiKeys),
        Some("jwt") => Ok(Auth::Jwt(parse_jwt(a)?)),
        Some("jwt_or_api_key") => Ok(Auth::JwtOrApiKeys(parse_jwt(a)?)),
        Some("mtls") => {
            if tls.and_then(|t| t.client_ca.as_ref()).is_none() {
                return Err(invalid(
                    "grpc.tls_client_ca_file",
                    "CONNECTOR__AUTH__MODE=mtls needs TLS with a client CA: set \
                     CONNECTOR__GRPC__TLS_CERT_FILE, CONNECTOR__GRPC__TLS_KEY_FILE and \
                     CONNECTOR__GRPC__TLS_CLIENT_CA_FILE",
                ));
            }
            let tenant_uri = a
                .mtls_tenant_uri
                .clone()
                .filter(|p| p.matches("{tenant}").count() == 1)
                .ok_or_else(|| {
                    invalid(
                        "auth.mtls_tenant_uri",
                        "is required with CONNECTOR__AUTH__MODE=mtls: a URI with one {tenant} \
                         placeholder, e.g. spiffe://mesh.example/tenant/{tenant}",
                    )
                })?;
            let scopes = Scopes::parse_names("auth.mtls_scopes", a.mtls_scopes.split_whitespace())
                .map_err(|e| invalid("auth.mtls_scopes", e.reason))?;
            Ok(Auth::Mtls { tenant_uri, scopes })
        }
        Some(other) => Err(invalid(
            "auth.mode",
            format!("must be `jwt`, `api_key`, `jwt_or_api_key`, `mtls` or `none`, not {other:?}"),
        )),
        None if g.listen_addr.ip().is_loopback() => Ok(Auth::Off),
        None => Err(invalid(
            "grpc.listen_addr",
            format!(
                "{} is not a loopback address and no authentication is configured: set \
                 CONNECTOR__AUTH__MODE=api_key (see `connector-server api-key create`), or \
                 CONNECTOR__AUTH__MODE=none to serve every caller as any tenant",
                g.listen_addr
            ),
        )),
    }
}

/// Whether `url` is plain HTTP to this host (`127.0.0.0/8`, `[::1]`, `localhost`).
fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The identity provider's settings, all required in the `jwt` modes.
fn parse_jwt(a: &RawAuth) -> Result<JwtSettings, ConfigError> {
    let required = |v: &Option<String>, key| {
        v.clone().ok_or_else(|| {
            invalid(
                key,
                "is required with CONNECTOR__AUTH__MODE=jwt or jwt_or_api_key",
            )
        })
    };
    let jwks_url = required(&a.jwks_url, "auth.jwks_url")?;
    if !(jwks_url.starts_with("https://") || is_loopback_http(&jwks_url)) {
        return Err(invalid(
            "auth.jwks_url",
            "must be an https:// URL (plain http:// only on a loopback host): the keys decide who may call",
        ));
    }
    let issuer = required(&a.issuer, "auth.issuer")?;
    let audience = required(&a.audience, "auth.audience")?;
    for (value, key) in [
        (&a.tenant_claim, "auth.tenant_claim"),
        (&a.scope_claim, "auth.scope_claim"),
    ] {
        if value.trim().is_empty() {
            return Err(invalid(key, "must name a claim"));
        }
    }
    Ok(JwtSettings {
        tenant_claim: a.tenant_claim.clone(),
        platform_claim: a.platform_claim.clone(),
        scope_claim: a.scope_claim.clone(),
        leeway: Duration::from_secs(a.leeway_secs),
        refresh_every: Duration::from_secs(a.jwks_refresh_secs.max(1)),
        min_refetch_interval: Duration::from_secs(a.jwks_min_refetch_secs),
        keys_max_age: Duration::from_secs(a.jwks_max_age_secs.max(1)),
        ..JwtSettings::new(jwks_url, issuer, audience)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<ServerConfig, ConfigError> {
        ServerConfig::load_from(
            None,
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        )
    }

    /// The variable the error names, asserted by the key it carries.
    fn refused(pairs: &[(&str, &str)], key: &str) -> String {
        let e = load(pairs).unwrap_err();
        assert_eq!(e.key(), Some(key), "{e}");
        e.to_string()
    }

    #[test]
    fn a_jwks_url_is_https_unless_it_is_on_this_host() {
        for ok in [
            "https://idp.example.com/.well-known/jwks.json",
            "http://127.0.0.1:8443/jwks",
            "http://localhost/jwks",
            "http://[::1]:9000/jwks",
        ] {
            assert!(ok.starts_with("https://") || is_loopback_http(ok), "{ok}");
        }
        for refused in [
            "http://idp.example.com/jwks",
            "http://127.0.0.1.evil.example/jwks",
            "http://10.0.0.1/jwks",
            "ftp://localhost/jwks",
        ] {
            assert!(!is_loopback_http(refused), "{refused}");
        }
        let err = load(&[
            ("CONNECTOR__AUTH__MODE", "jwt"),
            ("CONNECTOR__AUTH__JWKS_URL", "http://idp.example.com/jwks"),
            ("CONNECTOR__AUTH__ISSUER", "https://idp.example.com/"),
            ("CONNECTOR__AUTH__AUDIENCE", "connector"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("CONNECTOR__AUTH__JWKS_URL") && err.contains("https://"),
            "{err}"
        );
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = load(&[]).unwrap();
        assert_eq!(c.grpc.listen_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(c.http.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.admin.listen_addr.to_string(), "127.0.0.1:9090");
        assert_eq!(c.http.max_connections_per_client, 32);
        let moved = load(&[("CONNECTOR__ADMIN__LISTEN_ADDR", "127.0.0.1:0")]).unwrap();
        assert_eq!(moved.admin.listen_addr.port(), 0);
        assert!(matches!(c.auth, Auth::Off));
        assert!(c.grpc.reflection && c.grpc.health);
        assert!(c.grpc.tls.is_none());
        assert_eq!(c.grpc.max_message_bytes, 1_048_576);
        assert_eq!(c.grpc.shutdown_grace, Duration::from_secs(10));
        assert_eq!(c.rate_per_tenant, Some((100, 200)));
        assert_eq!(c.log.format, LogFormat::Text);
        assert!(c.otel.is_none());
    }

    #[test]
    fn a_file_sits_between_defaults_and_environment() {
        let dir = std::env::temp_dir().join(format!("sc-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("connector.toml");
        std::fs::write(
            &path,
            "[grpc]\nlisten_addr = \"127.0.0.1:7000\"\n[secrets]\nprefix = \"from-file/\"\n",
        )
        .unwrap();
        let c = ServerConfig::load_from(
            Some(&path),
            Some(HashMap::from([(
                "CONNECTOR__SECRETS__PREFIX".to_owned(),
                "from-env/".to_owned(),
            )])),
        )
        .unwrap();
        assert_eq!(c.grpc.listen_addr.port(), 7000);
        assert_eq!(c.core.secret_prefix.as_str(), "from-env/");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn environment_variables_override_defaults_and_secrets_stay_hidden() {
        let c = load(&[
            ("CONNECTOR__GRPC__LISTEN_ADDR", "127.0.0.1:6000"),
            ("CONNECTOR__SLACK__SIGNING_SECRET", "sign-me"),
            ("CONNECTOR__LOG__FORMAT", "json"),
            ("CONNECTOR__QUOTAS__REQUESTS_PER_SECOND_PER_TENANT", "0"),
        ])
        .unwrap();
        assert_eq!(c.grpc.listen_addr.port(), 6000);
        assert_eq!(c.log.format, LogFormat::Json);
        assert!(c.signing_secret.is_some());
        assert_eq!(c.rate_per_tenant, None);
        assert!(!format!("{c:?}").contains("sign-me"));
        let err = load(&[("CONNECTOR__GRPC__LISTEN_ADDR", "nope")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("grpc.listen_addr"), "{err}");
    }

    #[test]
    fn socket_mode_is_on_with_an_app_token_and_refuses_other_tokens_and_counts() {
        assert!(load(&[]).unwrap().socket_mode.is_none());
        let c = load(&[("CONNECTOR__SLACK__APP_TOKEN", "xapp-1-A1-2-sekrit")]).unwrap();
        let socket = c.socket_mode.as_ref().unwrap();
        assert_eq!(socket.connections, 2);
        assert_eq!(socket.api_base_url, "https://slack.com/api/");
        assert!(!format!("{c:?}").contains("sekrit"));
        refused(
            &[("CONNECTOR__SLACK__APP_TOKEN", "xoxb-1-bot-token")],
            "slack.app_token",
        );
        for n in ["0", "11"] {
            refused(
                &[
                    ("CONNECTOR__SLACK__APP_TOKEN", "xapp-1-A1-2-sekrit"),
                    ("CONNECTOR__SLACK__SOCKET_CONNECTIONS", n),
                ],
                "slack.socket_connections",
            );
        }
    }

    #[test]
    fn traces_are_off_unless_an_endpoint_is_set_and_bad_values_name_their_variable() {
        let on = load(&[("CONNECTOR__OTEL__ENDPOINT", "http://collector:4317")]).unwrap();
        let otel = on.otel.unwrap();
        assert_eq!(otel.endpoint, "http://collector:4317");
        assert_eq!(otel.service_name, "connector-server");
        refused(
            &[("CONNECTOR__OTEL__ENDPOINT", "collector:4317")],
            "otel.endpoint",
        );
        let err = refused(
            &[
                ("CONNECTOR__OTEL__ENDPOINT", "http://collector:4317"),
                ("CONNECTOR__OTEL__SAMPLE_RATIO", "1.5"),
            ],
            "otel.sample_ratio",
        );
        assert!(err.contains("CONNECTOR__OTEL__SAMPLE_RATIO"), "{err}");
    }

    #[test]
    fn without_authentication_only_loopback_is_served() {
        let err = refused(
            &[("CONNECTOR__GRPC__LISTEN_ADDR", "0.0.0.0:50051")],
            "grpc.listen_addr",
        );
        assert!(err.contains("CONNECTOR__AUTH__MODE"), "{err}");
        let open = load(&[
            ("CONNECTOR__GRPC__LISTEN_ADDR", "0.0.0.0:50051"),
            ("CONNECTOR__AUTH__MODE", "none"),
        ])
        .unwrap();
        assert!(matches!(open.auth, Auth::Off));
        let keys = load(&[
            ("CONNECTOR__GRPC__LISTEN_ADDR", "0.0.0.0:50051"),
            ("CONNECTOR__AUTH__MODE", "api_key"),
        ])
        .unwrap();
        assert!(matches!(keys.auth, Auth::ApiKeys));
        let v6 = load(&[("CONNECTOR__GRPC__LISTEN_ADDR", "[::1]:7000")]).unwrap();
        assert!(matches!(v6.auth, Auth::Off));
        refused(&[("CONNECTOR__AUTH__MODE", "basic")], "auth.mode");
    }

    #[test]
    fn jwt_modes_carry_the_issuer_settings_and_name_the_missing_one() {
        refused(&[("CONNECTOR__AUTH__MODE", "jwt")], "auth.jwks_url");
        refused(
            &[
                ("CONNECTOR__AUTH__MODE", "jwt_or_api_key"),
                (
                    "CONNECTOR__AUTH__JWKS_URL",
                    "https://idp.example/.well-known/jwks.json",
                ),
                ("CONNECTOR__AUTH__ISSUER", "https://idp.example/"),
            ],
            "auth.audience",
        );
        let c = load(&[
            ("CONNECTOR__AUTH__MODE", "jwt"),
            (
                "CONNECTOR__AUTH__JWKS_URL",
                "https://idp.example/.well-known/jwks.json",
            ),
            ("CONNECTOR__AUTH__ISSUER", "https://idp.example/"),
            ("CONNECTOR__AUTH__AUDIENCE", "connector-api"),
            ("CONNECTOR__AUTH__TENANT_CLAIM", "org_id"),
        ])
        .unwrap();
        let Auth::Jwt(jwt) = c.auth else {
            panic!("{:?}", c.auth)
        };
        assert_eq!(jwt.tenant_claim, "org_id");
        assert_eq!(jwt.scope_claim, "scope");
        assert_eq!(jwt.leeway, Duration::from_secs(30));
        assert_eq!(jwt.min_refetch_interval, Duration::from_secs(10));
    }

    #[test]
    fn tls_files_come_together_and_mtls_needs_a_client_ca_and_a_tenant_pattern() {
        refused(
            &[("CONNECTOR__GRPC__TLS_CERT_FILE", "/c.pem")],
            "grpc.tls_key_file",
        );
        refused(
            &[("CONNECTOR__GRPC__TLS_CLIENT_CA_FILE", "/ca.pem")],
            "grpc.tls_client_ca_file",
        );
        refused(
            &[("CONNECTOR__AUTH__MODE", "mtls")],
            "grpc.tls_client_ca_file",
        );
        let tls = [
            ("CONNECTOR__AUTH__MODE", "mtls"),
            ("CONNECTOR__GRPC__TLS_CERT_FILE", "/c.pem"),
            ("CONNECTOR__GRPC__TLS_KEY_FILE", "/k.pem"),
            ("CONNECTOR__GRPC__TLS_CLIENT_CA_FILE", "/ca.pem"),
        ];
        refused(&tls, "auth.mtls_tenant_uri");
        let mut with_pattern = tls.to_vec();
        with_pattern.push(("CONNECTOR__AUTH__MTLS_TENANT_URI", "spiffe://m/t/{tenant}"));
        let c = load(&with_pattern).unwrap();
        let Auth::Mtls { tenant_uri, scopes } = &c.auth else {
            panic!("{:?}", c.auth)
        };
        assert_eq!(tenant_uri, "spiffe://m/t/{tenant}");
        // Changing messages is granted explicitly (CONNECTOR__AUTH__MTLS_SCOPES), never by default.
        assert_eq!(
            *scopes,
            Scopes::parse_names(
                "s",
                ["connectors:read", "connectors:write", "messages:send"]
            )
            .unwrap()
        );
        assert!(!scopes.contains(connector_domain::Scope::MessagesManage));
        assert_eq!(
            c.grpc.tls.unwrap().client_ca,
            Some(PathBuf::from("/ca.pem"))
        );
    }

    #[test]
    fn zero_limits_are_refused_by_name() {
        for (var, key) in [
            (
                "CONNECTOR__GRPC__MAX_CONCURRENT_REQUESTS",
                "grpc.max_concurrent_requests",
            ),
            (
                "CONNECTOR__GRPC__MAX_MESSAGE_BYTES",
                "grpc.max_message_bytes",
            ),
            (
                "CONNECTOR__GRPC__MAX_CONCURRENT_STREAMS",
                "grpc.max_concurrent_streams",
            ),
            ("CONNECTOR__HTTP__MAX_CONNECTIONS", "http.max_connections"),
        ] {
            refused(&[(var, "0")], key);
        }
    }
}
