//! The port for the inbound event log: what people do in Slack (messages, mentions, reactions,
//! button clicks, slash commands), stored once per connector it belongs to, with a cursor that
//! increases per tenant, so a platform reads it in order and resumes where it stopped.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_domain::{ConnectorId, TenantId};

use crate::repository::RepositoryError;

/// An event about to be appended for one connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInboundEvent {
    /// The connector's tenant.
    pub tenant_id: TenantId,
    /// The connector it belongs to.
    pub connector_id: ConnectorId,
    /// Slack's type: `message`, `app_mention`, `block_actions`, `slash_command`, ….
    pub event_type: String,
    /// Slack's `event_id` (or the envelope's, for interactions and commands): the same for
    /// every redelivery, so each is stored once per connector.
    pub event_id: String,
    /// The workspace.
    pub team_id: String,
    /// Where it happened, when it says.
    pub channel_id: Option<String>,
    /// Who did it, when it says.
    pub user_id: Option<String>,
    /// The message's `ts`, when it is about one.
    pub ts: Option<String>,
    /// The thread's `ts`, when in one.
    pub thread_ts: Option<String>,
    /// The text, where the event has one.
    pub text: Option<String>,
    /// Whether the connector's own bot did it (its messages are left out unless asked for).
    pub from_own_bot: bool,
    /// What Slack sent, as JSON.
    pub payload_json: String,
    /// When the service accepted it.
    pub received_at: DateTime<Utc>,
}

/// An event as stored: with its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundEvent {
    /// Increases by one with every event of the tenant, in the order they were stored.
    pub cursor: i64,
    /// What was stored.
    pub event: NewInboundEvent,
}

/// Which of a tenant's events to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only these connectors' (empty: every connector of the tenant).
    pub connector_ids: Vec<ConnectorId>,
    /// Only these types (empty: every type).
    pub types: Vec<String>,
    /// Also the connectors' own bots' messages.
    pub include_own: bool,
}

/// Where a tenant's log stands: what a cursor given back to resume can be checked against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CursorBounds {
    /// The cursor of the oldest event kept (`None`: none kept).
    pub oldest_kept: Option<i64>,
    /// The cursor of the newest event ever stored (0 before the first).
    pub last: i64,
}

impl CursorBounds {
    /// Whether resuming after `cursor` would miss events that were purged.
    pub fn lost_after(&self, cursor: i64) -> bool {
        match self.oldest_kept {
            Some(oldest) => cursor + 1 < oldest,
            None => cursor < self.last,
        }
    }
}

/// The inbound event log, in the same database as the connectors (every replica reads and
/// appends to one log).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends `events`, each with the next cursor of its tenant (cursors of one tenant are
    /// taken in commit order, so a reader that saw cursor N never later finds a smaller one);
    /// an event already stored for its connector (a redelivery) is skipped. Returns what was
    /// appended.
    async fn append_events(
        &self,
        events: &[NewInboundEvent],
    ) -> Result<Vec<InboundEvent>, RepositoryError>;

    /// Up to `limit` of `tenant`'s events after `after` (`None`: from the oldest kept) that
    /// pass `filter`, oldest first.
    async fn list_events(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InboundEvent>, RepositoryError>;

    /// Where `tenant`'s log stands.
    async fn cursor_bounds(&self, tenant: &TenantId) -> Result<CursorBounds, RepositoryError>;

    /// Deletes events received before `before`; returns how many.
    async fn purge_events_before(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError>;
}

/// Receives word that tenants' event logs grew. Called from a feed's own task: implementations
/// must return quickly and never block.
pub trait EventSink: Send + Sync {
    /// `tenant`'s log has new events (stored by any process sharing the database).
    fn appended(&self, tenant: &str);
    /// The feed stopped listening: appends may go unannounced until it is restored.
    fn lost(&self);
    /// The feed listens again (also its first start); what was appended meanwhile is not
    /// announced.
    fn restored(&self);
}

/// A feed of appends to the event log made by any process sharing the database.
pub trait EventNotices: Send + Sync {
    /// Starts announcing appends to `sink` and returns at once; the feed reconnects by itself
    /// after a failure, telling `sink` when it is lost and restored. Must be called within an
    /// async runtime.
    fn watch(&self, sink: std::sync::Arc<dyn EventSink>);
}
