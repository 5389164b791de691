//! [`Services`]: every use case, wired to the adapters the [`Settings`] name. The server and
//! the `sender` library both start here.

use std::sync::Arc;

use connector_adapters_jwt::JwtVerifier;
use connector_adapters_slack::HttpSlackApi;
use connector_ports::ConnectorRepository;
use connector_usecases::{
    ApiKeys, Authenticator, Coherence, ConnectorCache, ConnectorService, CredentialPolicy,
    MessageSender, OAuthInstaller, Ports, ReadinessCheck, Reconciler, RefreshSettings, SlackEvents,
    Sleep, SystemClock, TokenCache, TokenRefresher,
};

use connector_instrumentation::Observed;

use crate::error::AppError;
use crate::metrics::MetricsProbe;
use crate::settings::{AuthMode, Settings, invalid};
use crate::storage::{self, Migrate};

/// The use cases over one set of opened stores and one Slack client; cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// Create, get, list and delete.
    pub connectors: ConnectorService,
    /// Sending messages, with the token cache.
    pub sender: MessageSender,
    /// The OAuth install flow (refuses with a clear error when the app is not configured).
    pub installer: OAuthInstaller,
    /// Refreshing rotating tokens.
    pub refresher: TokenRefresher,
    /// Finishing interrupted creates, deletes and token replacements.
    pub reconciler: Reconciler,
    /// Acting on Slack's events (uninstalls, revoked tokens, channel changes).
    pub events: SlackEvents,
    /// Static API keys.
    pub api_keys: ApiKeys,
    /// Whether the database and the secret store answer.
    pub readiness: ReadinessCheck,
    /// Who callers are, under the configured `auth.mode`.
    pub authenticator: Authenticator,
    /// Where the stores are, secret-free, for the start-up log.
    pub storage: String,
    /// The pool and connector gauges, read when metrics are scraped.
    pub metrics: MetricsProbe,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

impl Services {
    /// Checks every setting first (nothing connects before), then opens the stores
    /// (applying migrations when told to) and wires the use cases.
    pub async fn open(settings: &Settings, migrations: Migrate) -> Result<Self, AppError> {
        settings.validate()?;
        let secret_prefix = settings.secret_prefix()?;
        let oauth = settings.oauth()?;
        let slack = HttpSlackApi::new(settings.slack_client()).map_err(|e| {
            invalid(
                "slack.api_base_url",
                "CONNECTOR__SLACK__API_BASE_URL",
                e.to_string(),
            )
        })?;

        let jwt = match settings.jwt()? {
            Some(jwt) => Some(Arc::new(JwtVerifier::new(jwt).map_err(|e| {
                invalid("auth.jwks_url", "CONNECTOR__AUTH__JWKS_URL", e.to_string())
            })?)),
            None => None,
        };

        let storage = storage::open(settings, migrations).await?;
        let api_keys = ApiKeys::new(storage.api_keys);
        // Fail closed: a mode whose settings are missing never falls back to no authentication.
        let policy = match (settings.auth_mode()?, jwt, settings.mtls()?) {
            (AuthMode::None, ..) => CredentialPolicy::Off,
            (AuthMode::ApiKey, ..) => CredentialPolicy::ApiKeys(api_keys.clone()),
            (AuthMode::Jwt, Some(jwt), _) => CredentialPolicy::Tokens(jwt),
            (AuthMode::JwtOrApiKey, Some(jwt), _) => {
                CredentialPolicy::TokensOrApiKeys(jwt, api_keys.clone())
            }
            (AuthMode::Mtls, _, Some((tenant_uri, scopes))) => {
                CredentialPolicy::ClientCertificates { tenant_uri, scopes }
            }
            (mode, ..) => {
                return Err(invalid(
                    "auth.mode",
                    "CONNECTOR__AUTH__MODE",
                    format!("{mode:?} is missing its settings"),
                )
                .into());
            }
        };
        let metrics = MetricsProbe::new(storage.pool_status, storage.repo.clone());
        // Rows and tokens cached until any replica changes them: with a change feed, not
        // before it listens and never while it is lost.
        let coherence = match &storage.changes {
            Some(_) => Coherence::awaiting_feed(),
            None => Coherence::local(),
        };
        if let Some(feed) = &storage.changes {
            feed.watch(coherence.clone());
            // The feed connects like the pool did: caching starts with the first call. A feed
            // that cannot listen yet leaves the caches bypassed until it can.
            let deadline = tokio::time::Instant::now() + FEED_START_WAIT;
            while !coherence.is_live() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            if !coherence.is_live() {
                tracing::warn!(
                    "the connector change feed is not listening yet: caches stay off until it is"
                );
            }
        }
        let repo: Arc<dyn ConnectorRepository> = if settings.connector_cache_ttl().is_zero() {
            storage.repo
        } else {
            ConnectorCache::new(
                storage.repo,
                coherence.clone(),
                settings.connector_cache_ttl(),
                Arc::new(SystemClock),
            )
        };
        let ports = Ports {
            repo,
            secrets: storage.secrets,
            slack: Arc::new(Observed::new(slack)),
            secret_prefix,
        };
        let refresher = TokenRefresher::new(
            ports.clone(),
            settings.app_credentials(),
            RefreshSettings::default(),
            tokio_sleep(),
            Arc::new(|work| {
                tokio::spawn(work);
            }),
        );
        let mut connectors = ConnectorService::new(ports.clone())
            .with_channel_limits(settings.channel_limits(), tokio_sleep());
        if settings.quotas.max_connectors_per_tenant > 0 {
            connectors = connectors.with_connector_quota(settings.quotas.max_connectors_per_tenant);
        }
        let mut installer = OAuthInstaller::new(storage.states, connectors.clone(), oauth);
        if settings.quotas.max_pending_installs_per_tenant > 0 {
            installer =
                installer.with_pending_quota(settings.quotas.max_pending_installs_per_tenant);
        }
        Ok(Self {
            sender: MessageSender::new(
                ports.clone(),
                TokenCache::new(settings.token_cache_ttl(), Arc::new(SystemClock))
                    .with_coherence(coherence),
                refresher.clone(),
                storage.sends,
                tokio_sleep(),
            )
            .with_limits(
                settings.send_limits(),
                settings.sender.max_in_flight_per_connector,
            ),
            installer,
            readiness: ReadinessCheck::new(ports.clone()),
            events: SlackEvents::new(ports.clone(), storage.events),
            reconciler: Reconciler::new(ports, settings.reconcile()),
            api_keys,
            authenticator: Authenticator::new(policy),
            refresher,
            connectors,
            storage: storage.description,
            metrics,
        })
    }
}

/// How long opening the services waits for the change feed to listen.
const FEED_START_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

fn tokio_sleep() -> Sleep {
    Arc::new(|d| Box::pin(tokio::time::sleep(d)))
}
