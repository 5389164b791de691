//! The port for idempotent sends: one record per connector and `request_id`, claimed before
//! Slack is called and finished with what happened, so a repeated send never posts twice.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_domain::{ChannelId, ConnectorId, MessageId, RequestId, TenantId};

use crate::repository::RepositoryError;

/// Which send a record is about. A connector belongs to one tenant, so the connector and the
/// caller's key identify it; the tenant is kept for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendKey {
    /// The connector's tenant.
    pub tenant_id: TenantId,
    /// The connector sent through.
    pub connector_id: ConnectorId,
    /// The caller's idempotency key.
    pub request_id: RequestId,
}

/// What is known of a claimed send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Claimed; Slack's answer has not been recorded yet (the send is running, or the replica
    /// running it died).
    InFlight,
    /// Posted: where and as which message.
    Sent {
        /// The channel.
        channel: ChannelId,
        /// The message's `ts`.
        ts: String,
    },
    /// The first part was posted, a later part or file was not.
    PartiallySent {
        /// The channel.
        channel: ChannelId,
        /// The first message's `ts`.
        ts: String,
    },
    /// The request reached Slack but no answer came back: it may have been posted.
    Unknown,
}

/// A claimed send as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRecord {
    /// What happened.
    pub outcome: SendOutcome,
    /// Hex SHA-256 of the message the key was first used for.
    pub fingerprint: String,
    /// When the key was claimed (its send began).
    pub created_at: DateTime<Utc>,
    /// When its outcome was last recorded (the claim's time while in flight).
    pub updated_at: DateTime<Utc>,
    /// The ID its post carries in Slack's message metadata, so the channel's history can tell
    /// whether a send with a lost answer landed; `None` for a send that carries none.
    pub message_id: Option<MessageId>,
}

/// A message (or a scheduled message) a connector posted, kept so that only its tenant's
/// connector may later change it: UpdateMessage, DeleteMessage and CancelScheduledMessage act
/// only on what was recorded here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedRecord {
    /// The connector's tenant.
    pub tenant_id: TenantId,
    /// The connector that posted it.
    pub connector_id: ConnectorId,
    /// The channel it is in.
    pub channel: ChannelId,
    /// Its `ts`, or for a scheduled message Slack's scheduled message ID (`Q…`).
    pub ts: String,
}

/// Storage of idempotent sends, in the same database as the connectors (so every replica and
/// every restart sees them).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SentMessageStore: Send + Sync {
    /// Claims `key` for the message whose hash is `fingerprint` (its post marked with
    /// `message_id`), in flight since `now`: returns `None` when this call claimed it, or the
    /// record already there. A record created before `expired_before` no longer counts and is
    /// replaced.
    async fn claim_send(
        &self,
        key: &SendKey,
        fingerprint: &str,
        message_id: Option<MessageId>,
        now: DateTime<Utc>,
        expired_before: DateTime<Utc>,
    ) -> Result<Option<SendRecord>, RepositoryError>;

    /// Claims `key` again, in flight since `now`, for a send the channel's history showed did
    /// not land: only while its record is still `seen` (same outcome, claimed at the same
    /// time), so of two repeats that found it absent one posts. True when this call took it.
    async fn retake_send(
        &self,
        key: &SendKey,
        seen: &SendRecord,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;

    /// Records what became of a claimed send (never [`SendOutcome::InFlight`]).
    async fn finish_send(
        &self,
        key: &SendKey,
        outcome: &SendOutcome,
    ) -> Result<(), RepositoryError>;

    /// Forgets a claim whose send certainly posted nothing, so a retry may post.
    async fn release_send(&self, key: &SendKey) -> Result<(), RepositoryError>;

    /// The record of `key`, if any.
    async fn find_send(&self, key: &SendKey) -> Result<Option<SendRecord>, RepositoryError>;

    /// Deletes records created before `before`; returns how many.
    async fn purge_sends(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError>;

    /// Records what a connector posted at `at` (a record already there is kept).
    async fn record_posted(
        &self,
        posted: &[PostedRecord],
        at: DateTime<Utc>,
    ) -> Result<(), RepositoryError>;

    /// Whether connector `connector` posted (or scheduled) message `ts` in `channel`.
    async fn was_posted(
        &self,
        connector: ConnectorId,
        channel: &ChannelId,
        ts: &str,
    ) -> Result<bool, RepositoryError>;

    /// Forgets a posted message (it was deleted, or its schedule cancelled).
    async fn forget_posted(
        &self,
        connector: ConnectorId,
        channel: &ChannelId,
        ts: &str,
    ) -> Result<(), RepositoryError>;

    /// Forgets messages posted before `before` (they can no longer be changed through the
    /// service); returns how many.
    async fn purge_posted(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError>;
}

impl SendOutcome {
    /// The stored form: the `outcome` column, and the channel and `ts` columns.
    pub fn to_columns(&self) -> (&'static str, Option<&str>, Option<&str>) {
        match self {
            Self::InFlight => ("in_flight", None, None),
            Self::Sent { channel, ts } => ("sent", Some(channel.as_str()), Some(ts)),
            Self::PartiallySent { channel, ts } => {
                ("partially_sent", Some(channel.as_str()), Some(ts))
            }
            Self::Unknown => ("unknown", None, None),
        }
    }

    /// Reads the stored form back; `None` for a value no migration writes.
    pub fn from_columns(
        outcome: &str,
        channel: Option<String>,
        ts: Option<String>,
    ) -> Option<Self> {
        match (outcome, channel, ts) {
            ("in_flight", ..) => Some(Self::InFlight),
            ("unknown", ..) => Some(Self::Unknown),
            ("sent", Some(channel), Some(ts)) => Some(Self::Sent {
                channel: ChannelId::new(channel),
                ts,
            }),
            ("partially_sent", Some(channel), Some(ts)) => Some(Self::PartiallySent {
                channel: ChannelId::new(channel),
                ts,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_survives_its_stored_form() {
        for outcome in [
            SendOutcome::InFlight,
            SendOutcome::Unknown,
            SendOutcome::Sent {
                channel: ChannelId::new("C1"),
                ts: "1.2".into(),
            },
            SendOutcome::PartiallySent {
                channel: ChannelId::new("C1"),
                ts: "1.3".into(),
            },
        ] {
            let (o, c, t) = outcome.to_columns();
            let back = SendOutcome::from_columns(o, c.map(str::to_owned), t.map(str::to_owned));
            assert_eq!(back, Some(outcome));
        }
        assert_eq!(SendOutcome::from_columns("sent", None, None), None);
        assert_eq!(SendOutcome::from_columns("other", None, None), None);
    }
}
