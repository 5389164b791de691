//! The port that remembers which of Slack's event deliveries were handled: Slack retries a
//! delivery it did not see acknowledged in time, and an event is acted on once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_domain::{ChannelId, ChannelName, WorkspaceId};

use crate::repository::RepositoryError;

/// One event Slack delivered, in the terms the connectors act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackEvent {
    /// Slack's `event_id`: the same for every retry of a delivery.
    pub event_id: String,
    /// The workspace it happened in.
    pub team_id: WorkspaceId,
    /// The Slack app it was sent for (`api_app_id`): only connectors whose bot belongs to it
    /// are acted on.
    pub api_app_id: String,
    /// What happened.
    pub kind: SlackEventKind,
    /// Where and who, and what Slack sent, for the inbound event log.
    pub detail: EventDetail,
}

/// What an event says about where it happened and who did it, and the event object Slack
/// sent: what the inbound event log keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventDetail {
    /// Slack's type (`message`, `app_mention`, `reaction_added`, …).
    pub event_type: String,
    /// The channel, when the event names one (a reaction's: its item's).
    pub channel_id: Option<String>,
    /// The user who did it, when the event names one.
    pub user_id: Option<String>,
    /// The bot that did it, when a bot did (`bot_id`).
    pub bot_id: Option<String>,
    /// The message's `ts` (a reaction's: its item's).
    pub ts: Option<String>,
    /// The thread's `ts`.
    pub thread_ts: Option<String>,
    /// The text, where the event has one.
    pub text: Option<String>,
    /// The `event` object, as JSON.
    pub payload_json: String,
}

/// What a Slack event says about a workspace's connectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackEventKind {
    /// `app_uninstalled`: every token of the app in the workspace is gone.
    AppUninstalled,
    /// `tokens_revoked` naming bot users: the tokens of those bots are gone.
    TokensRevoked {
        /// The bot users whose tokens were revoked.
        bot_user_ids: Vec<String>,
    },
    /// `channel_rename`.
    ChannelRenamed {
        /// The channel.
        channel: ChannelId,
        /// Its new name.
        name: ChannelName,
    },
    /// `channel_archive`, `group_archive`, `channel_deleted`, `group_deleted`, or the bot
    /// removed (`group_left`, `channel_left`, `member_left_channel` of the bot).
    ChannelUnavailable {
        /// The channel.
        channel: ChannelId,
    },
    /// `channel_unarchive`, `group_unarchive`, or the bot back in (`member_joined_channel` of
    /// the bot).
    ChannelAvailable {
        /// The channel.
        channel: ChannelId,
    },
    /// Anything else (acknowledged and ignored), by its type.
    Ignored(String),
}

/// Slack event IDs seen, for a day.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SlackEventStore: Send + Sync {
    /// Records `event_id` as received at `at`: `true` the first time, `false` when it was
    /// already recorded (a retry, on any replica). Atomic across replicas.
    async fn record_event(
        &self,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;

    /// Forgets `event_id` (its handling failed: a retry from Slack must be handled again).
    async fn forget_event(&self, event_id: &str) -> Result<(), RepositoryError>;

    /// Forgets events received before `before`; returns how many.
    async fn purge_events(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError>;
}
