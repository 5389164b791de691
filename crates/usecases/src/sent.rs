//! [`SentMessage`]: where a send landed, as the send use case answers it and its errors
//! report what was posted before a failure.

use connector_domain::{ChannelId, MessageId};

/// Where a message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The channel (the connector's default channel).
    pub channel: ChannelId,
    /// The message's `ts`: its ID in the channel, and the thread to reply to.
    pub ts: String,
    /// The `ts` of the thread replies that carried text beyond Slack's limit, in order.
    pub continuation_ts: Vec<String>,
    /// Slack's IDs of the uploaded files, in order.
    pub file_ids: Vec<String>,
    /// For a scheduled message (`post_at`): Slack's ID of it, to cancel it; `ts` is then
    /// empty (the message has none until it is posted).
    pub scheduled_message_id: Option<String>,
    /// The outbox's record of it (`GetMessage`), for a send with a request ID that posted.
    pub message_id: Option<MessageId>,
}
