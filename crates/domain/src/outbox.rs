//! Queued delivery: a [`MessageId`], a queued message's [`MessageStatus`], the [`Delivery`]
//! mode a send asks for, and the [`Pace`] Slack's limits allow.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ValidationError;

/// How a send is delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Delivery {
    /// Posted while the caller waits.
    #[default]
    Immediate,
    /// Stored in the outbox and posted by the delivery workers, paced and retried.
    Queued,
}

impl Delivery {
    /// The stored (and metric label) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Immediate => "immediate",
            Self::Queued => "queued",
        }
    }

    /// The mode stored as `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Immediate, Self::Queued]
            .into_iter()
            .find(|d| d.as_str() == name)
    }
}

/// A recorded message's ID: a UUID (v7, so IDs sort by creation), canonical lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(uuid::Uuid);

impl MessageId {
    /// A fresh, time-ordered (v7) ID.
    pub fn new_v7() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// Wraps an existing UUID (as stored).
    pub fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id)
    }

    /// The UUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }

    /// Validates `value` as the request field `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, ValidationError> {
        crate::ConnectorId::parse(field, value).map(|id| Self(id.as_uuid()))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Where a recorded message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageStatus {
    /// Waiting in the outbox: for its turn, its channel's pace, or its next attempt.
    Queued,
    /// A worker is posting it now.
    Sending,
    /// Posted.
    Sent,
    /// Not posted, for good.
    Failed,
    /// The post reached Slack and its answer was lost: never posted again.
    Unknown,
    /// Cancelled before it was posted.
    Cancelled,
}

impl MessageStatus {
    /// Every status.
    pub const ALL: [MessageStatus; 6] = [
        Self::Queued,
        Self::Sending,
        Self::Sent,
        Self::Failed,
        Self::Unknown,
        Self::Cancelled,
    ];

    /// The stored (and metric label) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status stored as `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether nothing more happens to a message in this status.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Sending)
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rate: on average one post per `interval`, with bursts of up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// The time one post costs.
    pub interval: Duration,
    /// How many posts may go at once after a quiet spell (at least 1).
    pub burst: u32,
}

impl Rate {
    /// `per_second` posts a second with bursts of `burst`; `None` unless both are positive
    /// and finite.
    pub fn per_second(per_second: f64, burst: u32) -> Option<Self> {
        if !(per_second.is_finite() && per_second > 0.0) || burst == 0 {
            return None;
        }
        Some(Self {
            interval: Duration::from_secs_f64(1.0 / per_second),
            burst,
        })
    }

    /// How far ahead of now the budget's theoretical arrival time may run while a post is
    /// still allowed (GCRA's tolerance): `burst - 1` intervals.
    pub fn tolerance(&self) -> Duration {
        self.interval * self.burst.saturating_sub(1)
    }

    /// GCRA: whether a post is allowed `now` by a budget whose theoretical arrival time is
    /// `tat`, paused until `paused_until`. `Ok(new_tat)` spends one post; `Err(at)` says when
    /// the next post is allowed.
    pub fn admit(
        &self,
        tat: DateTime<Utc>,
        paused_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, DateTime<Utc>> {
        if let Some(until) = paused_until.filter(|u| *u > now) {
            return Err(until);
        }
        let tat = tat.max(now);
        let tolerance = chrono::Duration::from_std(self.tolerance()).unwrap_or_default();
        if tat - now > tolerance {
            return Err(tat - tolerance);
        }
        Ok(tat + chrono::Duration::from_std(self.interval).unwrap_or_default())
    }
}

/// What Slack's limits allow, as configured: per channel and per workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Per (workspace, channel).
    pub channel: Rate,
    /// Per workspace, all channels together.
    pub workspace: Rate,
}

impl Default for Pace {
    /// Slack's published guidance: one message a second per channel (bursts of 3), and a
    /// workspace-wide 300 a minute (bursts of 10).
    fn default() -> Self {
        Self {
            channel: Rate {
                interval: Duration::from_secs(1),
                burst: 3,
            },
            workspace: Rate {
                interval: Duration::from_millis(200),
                burst: 10,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_only_queued_and_sending_are_open() {
        for s in MessageStatus::ALL {
            assert_eq!(MessageStatus::from_name(s.as_str()), Some(s));
        }
        assert_eq!(MessageStatus::from_name("posted"), None);
        assert!(!MessageStatus::Queued.is_final());
        assert!(!MessageStatus::Sending.is_final());
        assert!(MessageStatus::Sent.is_final() && MessageStatus::Cancelled.is_final());
    }

    #[test]
    fn a_rate_needs_a_positive_pace_and_burst() {
        let r = Rate::per_second(20.0, 5).unwrap();
        assert_eq!(r.interval, Duration::from_millis(50));
        assert_eq!(r.tolerance(), Duration::from_millis(200));
        assert!(Rate::per_second(0.0, 3).is_none());
        assert!(Rate::per_second(f64::NAN, 3).is_none());
        assert!(Rate::per_second(1.0, 0).is_none());
    }

    #[test]
    fn gcra_allows_the_burst_then_one_per_interval_and_honours_a_pause() {
        let rate = Rate::per_second(1.0, 3).unwrap();
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let mut tat = t0;
        for _ in 0..3 {
            tat = rate.admit(tat, None, t0).unwrap();
        }
        // The burst is spent: the next is allowed one interval on.
        let at = rate.admit(tat, None, t0).unwrap_err();
        assert_eq!(at, t0 + chrono::Duration::seconds(1));
        tat = rate.admit(tat, None, at).unwrap();
        assert!(rate.admit(tat, None, at).is_err());
        // After a quiet spell the burst is back, never more.
        let later = t0 + chrono::Duration::seconds(60);
        let mut tat2 = tat;
        for _ in 0..3 {
            tat2 = rate.admit(tat2, None, later).unwrap();
        }
        assert!(rate.admit(tat2, None, later).is_err());
        // A pause refuses until it ends.
        let until = later + chrono::Duration::seconds(30);
        assert_eq!(rate.admit(t0, Some(until), later), Err(until));
        assert!(rate.admit(t0, Some(until), until).is_ok());
    }

    #[test]
    fn message_ids_parse_like_connector_ids() {
        let id = MessageId::new_v7();
        assert_eq!(MessageId::parse("message_id", &id.to_string()).unwrap(), id);
        assert_eq!(
            MessageId::parse("message_id", "nope").unwrap_err().field,
            "message_id"
        );
    }
}
