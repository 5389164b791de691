//! Proof of landing: every post that may need it (each queued post, each keyed immediate
//! send's first message) carries its message ID in Slack's message metadata, so that when
//! Slack's answer is lost the channel's history can tell whether it was posted. For an
//! immediate send, a repeat of its `request_id` settles it: the message found is the answer;
//! a history searched without finding it lets the repeat post it, once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use connector_domain::{ChannelId, Connector, Message, MessageId};
use connector_ports::{
    PostLookup, PostMetadata, PostedMessage, SendKey, SendOutcome, SendRecord, SlackError,
};

use super::{MessageSender, to_chrono};
use crate::error::SendError;
use crate::sent::SentMessage;

/// The metadata `event_type` of every post marked with its message ID.
pub(super) const LANDING_EVENT_TYPE: &str = "slack_connector_message";
/// The payload field of [`LANDING_EVENT_TYPE`] that holds the message ID.
pub(super) const LANDING_KEY: &str = "message_id";
/// How long after a lost answer the channel's history is searched: long enough for a request
/// still on its way to have reached Slack or been dropped.
pub(super) const LANDING_CHECK_AFTER: Duration = Duration::from_secs(10);
/// How far before the doubtful attempt the search starts (clocks of this host and Slack's).
pub(super) const LANDING_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The metadata that marks a post as message `id`.
pub(super) fn landing_metadata(id: MessageId) -> PostMetadata {
    PostMetadata {
        event_type: LANDING_EVENT_TYPE.into(),
        payload: vec![(LANDING_KEY.into(), id.to_string())],
    }
}

impl MessageSender {
    /// Searches `channel` (or the thread of `thread_ts`) through `connector` for the post
    /// marked as message `id`, made no earlier than `since`: where it landed, or `None` when
    /// every message since then was searched and none is it.
    pub(super) async fn find_marked_post(
        &self,
        connector: &Connector,
        channel: &ChannelId,
        thread_ts: Option<String>,
        since: DateTime<Utc>,
        id: MessageId,
    ) -> Result<Result<Option<PostedMessage>, SlackError>, SendError> {
        let lookup = PostLookup {
            channel: channel.clone(),
            thread_ts,
            oldest: since - to_chrono(LANDING_CLOCK_SKEW),
            event_type: LANDING_EVENT_TYPE.into(),
            key: LANDING_KEY.into(),
            value: id.to_string(),
        };
        let slack = self.ports.slack.clone();
        self.with_token(connector, None, |token| {
            let (slack, lookup) = (slack.clone(), &lookup);
            async move { slack.find_post(&token, lookup).await }
        })
        .await
    }

    /// A repeat of a send whose answer was lost (`first` is `Unknown`, or in flight on a
    /// replica that stopped): the channel's history says whether it landed. Landed: that
    /// message is the answer (and recorded as the send's). Absent: this repeat claims the key
    /// again and posts it, once. Too soon to tell: `EarlierOutcomeUnsettled`, with when to
    /// retry. Cannot be told (no ID, no `channels:history`): `EarlierOutcomeUnknown`.
    pub(super) async fn settle_earlier(
        &self,
        connector: &Connector,
        key: &SendKey,
        message: &Message,
        fingerprint: &str,
        first: SendRecord,
    ) -> Result<SentMessage, SendError> {
        let request_id = key.request_id.as_str().to_owned();
        let unknown = || SendError::EarlierOutcomeUnknown {
            request_id: request_id.clone(),
        };
        let Some(id) = first.message_id else {
            return Err(unknown());
        };
        let now = self.ports.clock.utc();
        // A request still on its way may land yet.
        let searchable_from = match first.outcome {
            SendOutcome::InFlight => first.created_at,
            _ => first.updated_at + to_chrono(LANDING_CHECK_AFTER),
        };
        if now < searchable_from {
            return Err(SendError::EarlierOutcomeUnsettled {
                request_id,
                retry_after: (searchable_from - now)
                    .to_std()
                    .unwrap_or_default()
                    .max(Duration::from_secs(1)),
            });
        }
        let (token, _) = self.token(connector).await?;
        let channel = self.target_channel(connector, &token, message).await?;
        let found = self
            .find_marked_post(
                connector,
                &channel,
                message.thread_ts.clone(),
                first.created_at,
                id,
            )
            .await;
        let (result, answer) = match found {
            Ok(Ok(Some(posted))) => {
                tracing::info!(connector_id = %connector.id, message_id = %id, ts = %posted.ts,
                    "an immediate send whose answer was lost had landed; its repeat answers it");
                let sent = SentMessage {
                    message_id: Some(id),
                    ..SentMessage::from_stored(posted.channel.clone(), posted.ts.clone())
                };
                let outcome = SendOutcome::Sent {
                    channel: posted.channel,
                    ts: posted.ts,
                };
                self.remember_posted(connector, &sent).await;
                self.record_immediate(
                    connector,
                    message,
                    fingerprint,
                    first.created_at,
                    Some(id),
                    &Ok(sent.clone()),
                )
                .await;
                if let Err(e) = self.record(key, Some(&outcome)).await {
                    tracing::warn!(connector_id = %connector.id, error = %e,
                        "could not record that a send whose answer was lost had landed");
                }
                ("landed", Ok(sent))
            }
            Ok(Ok(None)) => {
                if !self.sends.retake_send(key, &first, now).await? {
                    // Another repeat found it absent first and is posting it.
                    return Err(SendError::SendInProgress { request_id });
                }
                tracing::info!(connector_id = %connector.id, message_id = %id,
                    "an immediate send whose answer was lost had not landed; its repeat posts it");
                (
                    "absent",
                    self.post_claimed(connector, key, message, fingerprint, now, Some(id))
                        .await,
                )
            }
            // Worth looking again shortly.
            Ok(Err(SlackError::RateLimited { retry_after })) => (
                "undecided",
                Err(SendError::EarlierOutcomeUnsettled {
                    request_id,
                    retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
                }),
            ),
            Ok(Err(SlackError::Unavailable(_) | SlackError::OutcomeUnknown(_))) => (
                "undecided",
                Err(SendError::EarlierOutcomeUnsettled {
                    request_id,
                    retry_after: Duration::from_secs(5),
                }),
            ),
            // The history cannot be read (no `channels:history` scope, say): it never will be.
            Ok(Err(e)) => {
                tracing::info!(connector_id = %connector.id, message_id = %id, error = %e,
                    "whether an immediate send whose answer was lost landed cannot be checked");
                ("unreadable", Err(unknown()))
            }
            Err(e) => ("undecided", Err(e)),
        };
        metrics::counter!("connector_send_landing_checks_total", "result" => result).increment(1);
        answer
    }
}
