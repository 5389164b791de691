//! The port for Slack's Web API.

use std::time::Duration;

use async_trait::async_trait;
use connector_domain::{
    BotToken, ChannelId, ChannelName, FileAttachment, MessageEdit, WorkspaceId,
};
use secrecy::SecretString;

/// Who a token belongs to, from `auth.test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthIdentity {
    /// The Slack team (workspace) ID.
    pub team_id: WorkspaceId,
    /// The team's display name.
    pub team_name: String,
    /// The bot's user ID.
    pub user_id: String,
    /// The bot's ID (`B…`), for `bots.info`.
    pub bot_id: Option<String>,
    /// The Slack app's ID, when `auth.test` said it (its published schema does not promise
    /// it; `bots.info` does).
    pub app_id: Option<String>,
}

/// One conversation as Slack describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Its ID.
    pub id: ChannelId,
    /// Its name, without `#`.
    pub name: ChannelName,
    /// Archived channels cannot receive messages.
    pub is_archived: bool,
    /// Whether the bot is a member.
    pub is_member: bool,
    /// Private channel (or group).
    pub is_private: bool,
}

/// One page of `conversations.list`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChannelPage {
    /// The channels on this page.
    pub channels: Vec<ChannelInfo>,
    /// The cursor of the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A message to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Where to post.
    pub channel: ChannelId,
    /// The text (mrkdwn).
    pub text: String,
    /// Reply in this thread.
    pub thread_ts: Option<String>,
    /// With `thread_ts`: also show the reply in the channel.
    pub reply_broadcast: bool,
    /// Block Kit blocks as a JSON array, already validated as JSON.
    pub blocks_json: Option<String>,
    /// `unfurl_links`, when set.
    pub unfurl_links: Option<bool>,
    /// `unfurl_media`, when set.
    pub unfurl_media: Option<bool>,
    /// Message metadata Slack keeps with the post (and shows in the channel's history).
    pub metadata: Option<PostMetadata>,
}

/// Slack's message `metadata`: an event type and a flat payload of string fields. The outbox
/// marks each queued post with its message ID, to find out later whether a post whose answer
/// was lost landed ([`SlackApi::find_post`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostMetadata {
    /// `event_type` (lowercase letters, digits and underscores).
    pub event_type: String,
    /// `event_payload`, as string fields.
    pub payload: Vec<(String, String)>,
}

/// What [`SlackApi::find_post`] looks for: a message this app posted in `channel` (in the
/// thread of `thread_ts`, for a reply) at or after `oldest`, whose metadata is of
/// `event_type` and has payload field `key` equal to `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostLookup {
    /// The channel.
    pub channel: ChannelId,
    /// The thread a reply was posted in (`conversations.replies`), or `None` for the channel
    /// (`conversations.history`).
    pub thread_ts: Option<String>,
    /// Messages older than this are not searched.
    pub oldest: chrono::DateTime<chrono::Utc>,
    /// The metadata's `event_type`.
    pub event_type: String,
    /// The payload field to match.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// Where a posted message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedMessage {
    /// The channel.
    pub channel: ChannelId,
    /// The message timestamp (its ID within the channel).
    pub ts: String,
}

/// A message Slack will post later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledMessage {
    /// The channel.
    pub channel: ChannelId,
    /// Slack's ID of the scheduled message (`Q…`), to cancel it.
    pub scheduled_message_id: String,
    /// When it will be posted, Unix seconds.
    pub post_at: i64,
}

/// A file Slack accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedFile {
    /// Slack's file ID (`F…`).
    pub id: String,
}

/// What `oauth.v2.access` granted.
#[derive(Debug, Clone)]
pub struct OAuthGrant {
    /// The bot token.
    pub access_token: BotToken,
    /// The workspace it was installed in.
    pub team_id: WorkspaceId,
    /// With token rotation on: the refresh token.
    pub refresh_token: Option<SecretString>,
    /// With token rotation on: seconds until `access_token` expires.
    pub expires_in: Option<u64>,
    /// The Slack app the token belongs to.
    pub app_id: Option<String>,
    /// The bot user the token acts as.
    pub bot_user_id: Option<String>,
}

/// Which grant to ask `oauth.v2.access` for. `Debug` shows neither the code nor the token.
#[derive(Clone)]
pub enum OAuthGrantRequest {
    /// Exchange an authorization code.
    Code {
        /// The code from the callback.
        code: String,
        /// The redirect URL the code was issued for.
        redirect_uri: String,
    },
    /// Refresh a rotating token.
    Refresh {
        /// The refresh token.
        refresh_token: SecretString,
    },
}

impl std::fmt::Debug for OAuthGrantRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code { redirect_uri, .. } => f
                .debug_struct("Code")
                .field("code", &"[REDACTED]")
                .field("redirect_uri", redirect_uri)
                .finish(),
            Self::Refresh { .. } => f
                .debug_struct("Refresh")
                .field("refresh_token", &"[REDACTED]")
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_requests_do_not_show_their_code() {
        let shown = format!(
            "{:?}",
            OAuthGrantRequest::Code {
                code: "1234.5678.secretcode".into(),
                redirect_uri: "https://x/cb".into(),
            }
        );
        assert!(!shown.contains("secretcode"), "{shown}");
        assert!(shown.contains("https://x/cb"));
    }
}

/// Slack's answers, in terms the use cases act on. Never carries the token.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    /// The token was rejected: `invalid_auth`, `not_authed`, `token_revoked`,
    /// `token_expired`, `account_inactive`, …; `code` is Slack's error string.
    #[error("Slack rejected the token ({code})")]
    InvalidAuth {
        /// Slack's error string.
        code: String,
    },
    /// The token lacks an OAuth scope the call needs.
    #[error("the token lacks the OAuth scope {needed:?} that this call needs")]
    MissingScope {
        /// The scope Slack named, when it did.
        needed: String,
    },
    /// `channel_not_found`.
    #[error("the channel does not exist or the bot cannot see it")]
    ChannelNotFound,
    /// `not_in_channel`.
    #[error("the bot is not a member of the channel")]
    NotInChannel,
    /// `is_archived`.
    #[error("the channel is archived")]
    IsArchived,
    /// Still rate-limited after the retry budget.
    #[error("Slack is rate-limiting this token")]
    RateLimited {
        /// Slack's last `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// Slack could not be reached, timed out, or kept failing with 5xx.
    #[error("Slack is unavailable: {0}")]
    Unavailable(String),
    /// A call that must not be repeated (a post) reached Slack, but its answer did not come
    /// back (timed out, connection lost): Slack may have acted on it.
    #[error("Slack's answer was lost ({0}); the call may have taken effect")]
    OutcomeUnknown(String),
    /// Any other Slack error string (`invalid_blocks`, `msg_too_long`, …).
    #[error("Slack answered {code}")]
    Api {
        /// Slack's error string.
        code: String,
    },
    /// A malformed answer, or a bug.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// The Slack Web API methods the core uses.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SlackApi: Send + Sync {
    /// `auth.test`: validates the token and says whose it is.
    async fn auth_test(&self, token: &BotToken) -> Result<AuthIdentity, SlackError>;

    /// `bots.info`: the ID of the Slack app bot `bot_id` belongs to (needs `users:read`).
    async fn bot_app_id(&self, token: &BotToken, bot_id: &str) -> Result<String, SlackError>;

    /// One page of `conversations.list` (public and private channels, archived ones
    /// excluded). `cursor` is `None` for the first page.
    async fn list_channels(
        &self,
        token: &BotToken,
        cursor: Option<String>,
    ) -> Result<ChannelPage, SlackError>;

    /// `conversations.info` for one channel.
    async fn channel_info(
        &self,
        token: &BotToken,
        channel: &ChannelId,
    ) -> Result<ChannelInfo, SlackError>;

    /// `chat.postMessage`.
    async fn post_message(
        &self,
        token: &BotToken,
        message: &OutgoingMessage,
    ) -> Result<PostedMessage, SlackError>;

    /// `chat.postMessage`, one attempt: a 429 is [`SlackError::RateLimited`] with Slack's
    /// `Retry-After` at once, a 5xx or a refused connection [`SlackError::Unavailable`], for
    /// a caller that paces and retries itself (the outbox).
    async fn post_message_once(
        &self,
        token: &BotToken,
        message: &OutgoingMessage,
    ) -> Result<PostedMessage, SlackError> {
        self.post_message(token, message).await
    }

    /// Whether a post `lookup` describes is in the channel's history (or its thread's):
    /// `Some` with where it landed, `None` when every message since `lookup.oldest` was
    /// searched and none matched. Reading history needs `channels:history` (or
    /// `groups:history`): without it, [`SlackError::MissingScope`]. A history too long to
    /// search within a bounded number of pages is [`SlackError::Api`] `history_too_long`.
    async fn find_post(
        &self,
        token: &BotToken,
        lookup: &PostLookup,
    ) -> Result<Option<PostedMessage>, SlackError>;

    /// `chat.scheduleMessage`: posts `message` at `post_at` (Unix seconds).
    async fn schedule_message(
        &self,
        token: &BotToken,
        message: &OutgoingMessage,
        post_at: i64,
    ) -> Result<ScheduledMessage, SlackError>;

    /// `chat.deleteScheduledMessage`: cancels a scheduled message.
    async fn delete_scheduled_message(
        &self,
        token: &BotToken,
        channel: &ChannelId,
        scheduled_message_id: &str,
    ) -> Result<(), SlackError>;

    /// `chat.update`: replaces a posted message's text (and blocks).
    async fn update_message(
        &self,
        token: &BotToken,
        edit: &MessageEdit,
    ) -> Result<PostedMessage, SlackError>;

    /// `chat.delete`: removes a posted message.
    async fn delete_message(
        &self,
        token: &BotToken,
        channel: &ChannelId,
        ts: &str,
    ) -> Result<(), SlackError>;

    /// `oauth.v2.access`: exchanges an authorization code, or refreshes a rotating token,
    /// authenticating as the Slack app (HTTP Basic with its client ID and secret).
    async fn oauth_access(
        &self,
        client_id: &str,
        client_secret: &SecretString,
        grant: &OAuthGrantRequest,
    ) -> Result<OAuthGrant, SlackError>;

    /// Uploads a file and shares it in `channel` (in the thread of `thread_ts`, if given):
    /// `files.getUploadURLExternal`, the upload itself, then `files.completeUploadExternal`.
    async fn upload_file(
        &self,
        token: &BotToken,
        channel: &ChannelId,
        thread_ts: Option<String>,
        file: &FileAttachment,
    ) -> Result<UploadedFile, SlackError>;
}
