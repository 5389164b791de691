//! The connector use cases, written against the ports and nothing else.
//!
//! - [`connectors`]: [`ConnectorService`], create, get, list and delete, with the lifecycle
//!   that keeps the database and the secret store consistent.
//! - [`send`]: [`MessageSender`], sending through a connector with a TTL [`TokenCache`], used
//!   by the `SendMessage` RPC and the `sender` library alike.
//! - [`refresh`]: [`TokenRefresher`], refreshing rotating tokens one replica at a time.
//! - [`install`]: [`OAuthInstaller`], Slack's OAuth v2 install flow.
//! - [`api_keys`]: [`ApiKeys`], static API keys stored as hashes, and who they stand for.
//! - [`authenticate`]: [`Authenticator`], the caller a bearer credential stands for.
//! - [`reconcile`]: [`Reconciler`], one pass that finishes work a crash left behind.
//! - [`events`]: [`SlackEvents`], what Slack's own events (an uninstall, channel changes) do
//!   to connectors; [`inbound`]: [`InboundEvents`], every event stored in the tenant's log and
//!   read back by cursor.
//! - [`coherence`]: [`ConnectorCache`] and [`Coherence`], connector rows and tokens cached
//!   until any replica changes them (fed by the store's change feed and [`NotingChanges`]).
//! - [`error`]: the use-case errors ([`ConnectorError`], [`SendError`], [`InstallError`]) and
//!   the one place each port error becomes one of them.
//!
//! Every use case holds the same [`Ports`]. Imports run one way: `domain` → `ports` → here.
//!
//! # Must never
//! Do I/O of its own, depend on an async runtime, or know of tonic, diesel, AWS or reqwest
//! (waiting is injected as [`Sleep`], time as [`Clock`]). Never log a token or put one in an
//! error.

use std::sync::Arc;

use connector_domain::{Connector, SecretName, SecretPrefix};
use connector_ports::{Connectors, SecretLabels, SecretStore, SlackApi};

pub mod api_keys;
pub mod authenticate;
mod bots;
mod channels;
pub mod coherence;
pub mod connectors;
pub mod error;
pub mod events;
pub mod inbound;
pub mod install;
pub mod readiness;
pub mod reconcile;
pub mod refresh;
pub mod runtime;
pub mod send;
mod sent;
#[cfg(test)]
mod testing;

pub use api_keys::{ApiKeys, CreatedKey, KeyRejected, NewApiKey};
pub use authenticate::{AuthFailure, Authenticator, CredentialPolicy, Credentials};
pub use coherence::{Coherence, ConnectorCache, Forget, NotingChanges};
pub use connector_ports::{MessageFilter, OutboundRecord};
pub use connectors::{
    ChannelLimits, ConnectorPage, ConnectorService, CreateConnector, UPDATABLE_FIELDS,
    UpdateConnector, UpdateFields,
};
pub use error::{ConnectorError, Dependency, InstallError, SendError};
pub use events::{EventOutcome, SlackEvents};
pub use inbound::{EventBells, EventPage, EventQuery, InboundEvents};
pub use install::{OAuthConfig, OAuthInstaller};
pub use readiness::{Readiness, ReadinessCheck};
pub use reconcile::{ReconcileReport, ReconcileSettings, Reconciler};
pub use refresh::{AppCredentials, RefreshReport, RefreshSettings, TokenRefresher};
pub use runtime::{Clock, Sleep, Spawn, SystemClock};
pub use send::{
    DUPLICATE_WAIT, DeliverySettings, DeliveryWorker, EDIT_WINDOW, IDEMPOTENCY_WINDOW, MessagePage,
    MessageSender, TokenCache,
};
pub use sent::SentMessage;

/// The ports every use case works over, and how connector secrets are named. Cheap to clone.
#[derive(Clone)]
pub struct Ports {
    /// Connector metadata, by role.
    pub connectors: Connectors,
    /// Connector secrets (bot tokens).
    pub secrets: Arc<dyn SecretStore>,
    /// Slack's Web API.
    pub slack: Arc<dyn SlackApi>,
    /// The prefix of every connector's secret name.
    pub secret_prefix: SecretPrefix,
    /// What time it is.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports")
            .field("secret_prefix", &self.secret_prefix)
            .finish_non_exhaustive()
    }
}

impl Ports {
    /// The name of `connector`'s secret.
    pub fn secret_name(&self, connector: &Connector) -> SecretName {
        self.secret_prefix
            .secret_name(&connector.tenant_id, connector.id)
    }

    /// The labels stored beside `connector`'s secret.
    pub fn secret_labels(connector: &Connector) -> SecretLabels {
        SecretLabels {
            tenant_id: connector.tenant_id.clone(),
            connector_id: connector.id,
        }
    }
}

/// `bytes` as lowercase hex (the form every stored hash takes).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
