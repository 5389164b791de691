//! [`Services`]: every use case, wired to the adapters a [`CoreConfig`] names. The server and
//! the `sender` library both start here.

use std::sync::Arc;

use connector_adapters_slack::HttpSlackApi;
use connector_usecases::coherence;
use connector_usecases::{
    ApiKeys, Coherence, ConnectorService, InboundEvents, MessageSender, OAuthInstaller, Ports,
    ReadinessCheck, Reconciler, RefreshSettings, SlackEvents, Sleep, Spawn, SystemClock,
    TokenCache, TokenRefresher,
};

use connector_instrumentation::Observed;

use crate::config::{CoreConfig, invalid};
use crate::error::AppError;
use crate::metrics::MetricsProbe;
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
    /// Every Slack event, in the tenants' logs.
    pub inbound: InboundEvents,
    /// Static API keys (the server authenticates callers with them).
    pub api_keys: ApiKeys,
    /// Whether the database and the secret store answer.
    pub readiness: ReadinessCheck,
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
    /// Opens the stores `config` names (applying migrations when told to) and wires the use
    /// cases; the configuration was checked whole when it was parsed.
    pub async fn open(config: &CoreConfig, migrations: Migrate) -> Result<Self, AppError> {
        let slack = HttpSlackApi::new(config.slack.clone())
            .map_err(|e| invalid("slack.api_base_url", e.to_string()))?;
        let storage = storage::open(&config.storage, &config.repository, migrations).await?;
        let api_keys = ApiKeys::new(storage.api_keys, Arc::new(SystemClock));
        let metrics = MetricsProbe::new(storage.pool_status, storage.connectors.queries.clone());
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
        let connectors = if config.connector_cache_ttl.is_zero() {
            storage.connectors
        } else {
            coherence::cached(
                storage.connectors,
                coherence.clone(),
                config.connector_cache_ttl,
                Arc::new(SystemClock),
            )
        };
        let event_notices = storage.event_notices.clone();
        let ports = Ports {
            connectors,
            secrets: storage.secrets,
            slack: Arc::new(Observed::new(slack)),
            secret_prefix: config.secret_prefix.clone(),
            clock: Arc::new(SystemClock),
        };
        let refresher = TokenRefresher::new(
            ports.clone(),
            config.app.clone(),
            RefreshSettings::default(),
            tokio_sleep(),
            tokio_spawn(),
        );
        let mut connectors = ConnectorService::new(ports.clone())
            .with_channel_limits(config.channel_limits, tokio_sleep());
        if let Some(quota) = config.max_connectors_per_tenant {
            connectors = connectors.with_connector_quota(quota);
        }
        let mut installer =
            OAuthInstaller::new(storage.states, connectors.clone(), config.oauth.clone());
        if let Some(quota) = config.max_pending_installs_per_tenant {
            installer = installer.with_pending_quota(quota);
        }
        let inbound = InboundEvents::new(
            ports.clone(),
            storage.log,
            config.event_retention,
            tokio_sleep(),
            tokio_spawn(),
        )
        .with_stream_limit(config.max_event_streams_per_tenant);
        // Streams wake when any replica appends to their tenant's log.
        if let Some(feed) = &event_notices {
            feed.watch(inbound.bells());
        }
        Ok(Self {
            sender: MessageSender::new(
                ports.clone(),
                TokenCache::new(config.token_cache_ttl, Arc::new(SystemClock))
                    .with_coherence(coherence),
                refresher.clone(),
                storage.sends,
                tokio_sleep(),
                tokio_spawn(),
            )
            .with_limits(config.send_limits, config.max_in_flight_per_connector)
            .with_channel_limits(config.channel_limits)
            .with_send_deadline(config.send_deadline)
            .with_outbox(storage.outbox.clone(), config.delivery.clone())
            .with_status_events(inbound.clone()),
            installer,
            readiness: ReadinessCheck::new(ports.clone()),
            events: SlackEvents::new(ports.clone(), storage.events),
            inbound,
            reconciler: Reconciler::new(ports, config.jobs.reconcile),
            api_keys,
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

fn tokio_spawn() -> Spawn {
    Arc::new(|work| {
        tokio::spawn(work);
    })
}
