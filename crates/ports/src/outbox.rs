//! The port for queued delivery: the [`Outbox`] every replica's delivery workers claim from,
//! in order per channel, paced by rate budgets all replicas share.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_domain::{
    ChannelId, ConnectorId, Delivery, MessageId, MessageStatus, Pace, TenantId,
};

use crate::repository::RepositoryError;

/// A message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboundMessage {
    /// Its ID.
    pub id: MessageId,
    /// The connector's tenant.
    pub tenant_id: TenantId,
    /// The connector it goes through.
    pub connector_id: ConnectorId,
    /// The connector's workspace (the pace's scope).
    pub team_id: String,
    /// The channel it goes to.
    pub channel_id: ChannelId,
    /// The caller's idempotency key, if any.
    pub request_id: Option<String>,
    /// What makes the message what it is, to refuse a key reused for another one.
    pub fingerprint: String,
    /// The message to post, as the use case serialises it.
    pub body_json: String,
    /// Not posted before this.
    pub not_before: DateTime<Utc>,
    /// Given up after this.
    pub deadline: DateTime<Utc>,
}

/// A recorded message, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRecord {
    /// Its ID.
    pub id: MessageId,
    /// The connector's tenant.
    pub tenant_id: TenantId,
    /// The connector.
    pub connector_id: ConnectorId,
    /// The workspace.
    pub team_id: String,
    /// The channel.
    pub channel_id: ChannelId,
    /// The caller's idempotency key.
    pub request_id: Option<String>,
    /// Queued (worked by the delivery workers), or the record of an immediate send.
    pub delivery: Delivery,
    /// See [`NewOutboundMessage::fingerprint`].
    pub fingerprint: String,
    /// See [`NewOutboundMessage::body_json`].
    pub body_json: String,
    /// Where it stands.
    pub status: MessageStatus,
    /// Posting attempts made.
    pub attempts: u32,
    /// Why the last one did not post it.
    pub last_error: Option<String>,
    /// Slack's `ts`, once sent.
    pub ts: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it is due (next).
    pub next_attempt_at: DateTime<Utc>,
    /// When it is given up.
    pub deadline: DateTime<Utc>,
    /// When it reached a final status.
    pub finished_at: Option<DateTime<Utc>>,
    /// When its last posting attempt began (its claim).
    pub attempted_at: Option<DateTime<Utc>>,
    /// Set when an earlier attempt may have posted it (Slack's answer was lost, or its
    /// replica stopped mid-post): when the first such attempt began. Before it is posted
    /// again, the channel's history since then is searched for it. Such a message is never
    /// cancelled, and ends `Unknown` where another would fail.
    pub unconfirmed_since: Option<DateTime<Utc>>,
}

/// What an immediate send with a request ID did, recorded so that `GetMessage` answers for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImmediateRecord {
    /// The message as sent (its `body_json` is not kept: nothing will post it again).
    pub message: NewOutboundMessage,
    /// `Sent`, `Failed` or `Unknown`.
    pub status: MessageStatus,
    /// Slack's `ts`, when something was posted.
    pub ts: Option<String>,
    /// Why it did not post (all of) it.
    pub last_error: Option<String>,
}

/// What queueing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored now.
    New(OutboundRecord),
    /// The connector already has a message with this `request_id`: that one.
    Existing(OutboundRecord),
}

/// What became of a claimed message's attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Posted.
    Sent {
        /// Slack's `ts`.
        ts: String,
    },
    /// Not posted, worth trying again at `retry_at`.
    Retry {
        /// Why not.
        error: String,
        /// When next.
        retry_at: DateTime<Utc>,
    },
    /// Not posted, for good.
    Failed {
        /// Why not.
        error: String,
    },
    /// Slack may have posted it; never tried again.
    Unknown {
        /// What was lost.
        error: String,
    },
    /// Slack may have posted it: queued again with [`OutboundRecord::unconfirmed_since`], due at
    /// `check_at`, when the channel's history will say whether it landed (`Unknown` if it
    /// cannot say before the deadline).
    Unconfirmed {
        /// What was lost.
        error: String,
        /// When to look.
        check_at: DateTime<Utc>,
    },
}

/// A budget's scope: where a 429 applies, where queued traffic is paced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PauseScope {
    /// One channel of a workspace.
    Channel {
        /// The workspace.
        team_id: String,
        /// The channel.
        channel_id: ChannelId,
    },
    /// A whole workspace.
    Workspace {
        /// The workspace.
        team_id: String,
    },
}

/// What a cancel found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// Cancelled now (or already): the message as it stands.
    Done(OutboundRecord),
    /// Being posted or finished: left as it is.
    TooLate(OutboundRecord),
    /// No such message of the tenant.
    NotFound,
}

/// Which messages a list wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// Only this connector's.
    pub connector_id: Option<ConnectorId>,
    /// Only in these statuses (empty: any).
    pub statuses: Vec<MessageStatus>,
}

/// Queued messages, shared by every replica.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Stores `message` as queued, unless the connector already has one with its request ID
    /// (that one is returned).
    async fn enqueue(&self, message: &NewOutboundMessage) -> Result<Enqueued, RepositoryError>;

    /// Records what an immediate send did (final at once, never claimed). It replaces an
    /// earlier immediate record of the connector's `request_id` (a send that posted nothing
    /// and was tried again), never a queued message's.
    async fn record_immediate(&self, record: &ImmediateRecord) -> Result<(), RepositoryError>;

    /// The connector's message with `request_id`, queued or immediate.
    async fn find_by_request(
        &self,
        connector: ConnectorId,
        request_id: &str,
    ) -> Result<Option<OutboundRecord>, RepositoryError>;

    /// Claims at most `limit` messages to post now, for `owner`, until `lease` passes: each the
    /// oldest open message of its channel, due, in a channel and workspace not paused, and
    /// within both budgets of `pace` (which the claim spends). Claimed messages are `Sending`,
    /// their attempt counted. Another replica claiming at the same time gets other channels.
    async fn claim(
        &self,
        owner: &str,
        pace: &Pace,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<OutboundRecord>, RepositoryError>;

    /// How long until a budget of `pace` that refuses posts now (spent or paused) admits one
    /// again, counting its workspace's budget: the earliest such moment, by the store's clock;
    /// `None` when no budget refuses. What a worker that found nothing to claim waits for
    /// (a message due later, or posted elsewhere, is found by its poll and its bell).
    async fn next_admission(&self, pace: &Pace) -> Result<Option<Duration>, RepositoryError>;

    /// Records what the attempt on claimed message `id` did; `false` when `owner` no longer
    /// holds it (its lease passed and another replica took it over).
    async fn finish(
        &self,
        id: MessageId,
        owner: &str,
        outcome: &AttemptOutcome,
    ) -> Result<bool, RepositoryError>;

    /// Spends one post of `pace` in the budgets of `team_id`'s `channel` now, for a post made
    /// outside the outbox (an immediate send): `None` when spent, `Some(wait)` when neither
    /// budget was touched because a post is not allowed for `wait` yet.
    async fn spend(
        &self,
        team_id: &str,
        channel: &ChannelId,
        pace: &Pace,
    ) -> Result<Option<Duration>, RepositoryError>;

    /// Pauses `scope` on every replica for `for_`, as Slack's `Retry-After` asked. Slack does
    /// not say which of its limits a 429 concerns: a channel's 429 while another channel of
    /// the same workspace is paused is taken as the workspace's limit, and pauses the whole
    /// workspace too. Returns the widest scope paused.
    async fn pause(
        &self,
        scope: &PauseScope,
        for_: Duration,
    ) -> Result<PauseScope, RepositoryError>;

    /// The budgets in use: spent within the last `within` (not yet back to a full burst, or
    /// only just) or paused now. Immediate sends to these channels and workspaces spend from
    /// the same budgets as the queued ones ([`Outbox::spend`]).
    async fn busy_scopes(&self, within: Duration) -> Result<Vec<PauseScope>, RepositoryError>;

    /// Messages whose `Sending` lease passed (their replica stopped mid-post): queued again,
    /// due now, with `error` and [`OutboundRecord::unconfirmed_since`] (the post may have landed),
    /// and returned.
    async fn take_over_expired(
        &self,
        error: &str,
        limit: u32,
    ) -> Result<Vec<OutboundRecord>, RepositoryError>;

    /// Fails every queued message of `connector` with `error` (it was deleted or revoked);
    /// returns them. One that may have been posted already ([`OutboundRecord::unconfirmed_since`])
    /// becomes `Unknown` instead.
    async fn fail_connector(
        &self,
        connector: ConnectorId,
        error: &str,
    ) -> Result<Vec<OutboundRecord>, RepositoryError>;

    /// Fails queued messages past their deadline with their last error (`Unknown` for one that
    /// may have been posted already); returns them.
    async fn expire(&self, limit: u32) -> Result<Vec<OutboundRecord>, RepositoryError>;

    /// The tenant's message `id`.
    async fn get(
        &self,
        tenant: &TenantId,
        id: MessageId,
    ) -> Result<Option<OutboundRecord>, RepositoryError>;

    /// The tenant's messages as `filter` asks, newest first, before `(created_at, id)` when
    /// given.
    async fn list(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
        before: Option<(DateTime<Utc>, MessageId)>,
        limit: u32,
    ) -> Result<Vec<OutboundRecord>, RepositoryError>;

    /// Cancels the tenant's message `id` if it is queued, not being posted, and not perhaps
    /// posted already ([`OutboundRecord::unconfirmed_since`]).
    async fn cancel(&self, tenant: &TenantId, id: MessageId) -> Result<Cancelled, RepositoryError>;

    /// How many messages are in each status (for the gauge).
    async fn count_by_status(&self) -> Result<Vec<(MessageStatus, u64)>, RepositoryError>;

    /// Deletes messages finished before `before`; returns how many.
    async fn purge_finished(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError>;
}
