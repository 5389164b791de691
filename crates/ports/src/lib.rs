//! The ports of the connector core: the async traits the use cases need from the outside
//! world, the data they exchange, and the errors adapters translate into.
//!
//! - [`repository`]: connector metadata, by role ([`ConnectorLifecycle`], [`ConnectorQueries`],
//!   [`WorkspaceConnectors`], [`RefreshLeases`], [`ConnectorReconciliation`]; [`Connectors`]
//!   holds one of each, [`ConnectorRepository`] is all of them).
//! - [`secrets`]: [`SecretStore`] and [`ConnectorSecret`] (with the one JSON form every store
//!   keeps).
//! - [`slack`]: [`SlackApi`], Slack's Web API, with the OAuth grant types.
//! - [`api_keys`]: [`ApiKeyStore`], static API keys stored as hashes.
//! - [`identity`]: [`TokenVerifier`], bearer tokens of an identity provider.
//! - [`oauth_states`]: [`OAuthStateStore`], pending installs keyed by the hash of their state.
//! - [`sent_messages`]: [`SentMessageStore`], idempotent sends keyed by connector and
//!   `request_id`.
//! - [`outbox`]: [`Outbox`], queued messages claimed by every replica in order per channel,
//!   paced by shared rate budgets.
//! - [`changes`]: [`ConnectorChanges`], a feed of connector changes on any replica, so caches
//!   can drop what is stale.
//!
//! Adapters in other crates implement the traits; the use cases (`connector-usecases`) only
//! ever see them, held as `Arc<dyn Trait>`. With the `mocks` feature every port gets a mockall
//! mock (`MockConnectorQueries`, …, and `MockConnectors` with every role); only dev-dependencies enable it.
//!
//! # Must never
//! Hold use cases, do I/O of its own, depend on an async runtime, or know of tonic, diesel,
//! AWS or reqwest. Never put a token in an error.

pub mod api_keys;
pub mod changes;
pub mod event_log;
pub mod identity;
pub mod oauth_states;
pub mod outbox;
pub mod repository;
pub mod secrets;
pub mod sent_messages;
pub mod slack;
pub mod slack_events;

pub use api_keys::{ApiKeyRecord, ApiKeyStore};
pub use changes::{ChangeSink, ConnectorChanges};
pub use event_log::{
    CursorBounds, EventFilter, EventLog, EventNotices, EventSink, InboundEvent, NewInboundEvent,
};
pub use identity::{TokenError, TokenVerifier};
pub use oauth_states::{OAuthStateStore, PendingInstall};
pub use outbox::{
    AttemptOutcome, Cancelled, Enqueued, ImmediateRecord, MessageFilter, NewOutboundMessage,
    OutboundRecord, Outbox, PauseScope,
};
pub use repository::{
    ConnectorLifecycle, ConnectorQueries, ConnectorReconciliation, ConnectorRepository,
    ConnectorUpdate, Connectors, NewConnector, PendingPromotion, PoolStatus, RefreshLeases,
    RefreshOutcome, RepositoryError, RepositorySettings, StatusCount, StatusFilter,
    WorkspaceConnectors,
};
pub use secrets::{
    ConnectorSecret, SecretLabels, SecretStore, SecretStoreError, StagedVersion, TokenRotation,
};
pub use sent_messages::{PostedRecord, SendKey, SendOutcome, SendRecord, SentMessageStore};
pub use slack::{
    AuthIdentity, ChannelInfo, ChannelPage, OAuthGrant, OAuthGrantRequest, OutgoingMessage,
    PostLookup, PostMetadata, PostedMessage, ScheduledMessage, SlackApi, SlackError, UploadedFile,
};
pub use slack_events::{EventDetail, SlackEvent, SlackEventKind, SlackEventStore};

#[cfg(feature = "mocks")]
pub use api_keys::MockApiKeyStore;
#[cfg(feature = "mocks")]
pub use event_log::MockEventLog;
#[cfg(feature = "mocks")]
pub use identity::MockTokenVerifier;
#[cfg(feature = "mocks")]
pub use oauth_states::MockOAuthStateStore;
#[cfg(feature = "mocks")]
pub use outbox::MockOutbox;
#[cfg(feature = "mocks")]
pub use repository::{
    MockConnectorLifecycle, MockConnectorQueries, MockConnectorReconciliation, MockConnectors,
    MockRefreshLeases, MockWorkspaceConnectors,
};
#[cfg(feature = "mocks")]
pub use secrets::MockSecretStore;
#[cfg(feature = "mocks")]
pub use sent_messages::MockSentMessageStore;
#[cfg(feature = "mocks")]
pub use slack::MockSlackApi;
#[cfg(feature = "mocks")]
pub use slack_events::MockSlackEventStore;

/// The connector store's role traits at once, to call them on an adapter that implements them
/// all: `use connector_ports::roles::*;`.
pub mod roles {
    pub use crate::repository::{
        ConnectorLifecycle, ConnectorQueries, ConnectorReconciliation, RefreshLeases,
        WorkspaceConnectors,
    };
}
