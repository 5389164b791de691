//! Queued delivery (`DELIVERY_QUEUED`): a send validated at once and stored in the outbox,
//! then posted by the [`DeliveryWorker`] of any replica, in order per channel, paced by the
//! budgets every replica shares, retried on 429s, 5xx and refused connections until its
//! deadline, and never posted twice: each post carries its message ID in Slack's message
//! metadata, and a post whose answer was lost (or whose replica stopped mid-post) is looked for
//! in the channel's history before it is posted again; `UNKNOWN` when that cannot be told.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use connector_domain::message::MAX_TEXT_CHARS;
use connector_domain::{
    AuthStatus, ChannelId, Connector, ConnectorId, Delivery, Message, MessageId, MessageStatus,
    Pace, TenantId, ValidationError,
};
use connector_ports::{
    AttemptOutcome, Cancelled, Enqueued, ImmediateRecord, MessageFilter, NewOutboundMessage,
    OutboundRecord, Outbox, OutgoingMessage, PauseScope, SlackError,
};
use serde::{Deserialize, Serialize};

use super::landing::{LANDING_CHECK_AFTER, landing_metadata};
use super::{MessageSender, to_chrono};
use crate::error::{ConnectorError, SendError};
use crate::inbound::Bell;
use crate::sent::SentMessage;

/// How queued delivery runs, unless configured otherwise.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// What Slack's limits allow (`CONNECTOR__DELIVERY__CHANNEL_RATE`, `CHANNEL_BURST`,
    /// `WORKSPACE_RATE_PER_MINUTE`).
    pub pace: Pace,
    /// How long after it was queued a message is still tried
    /// (`CONNECTOR__DELIVERY__DEADLINE_SECONDS`).
    pub deadline: Duration,
    /// How long a worker holds a message it is posting; past it, another replica takes the
    /// message over and checks whether it landed.
    pub lease: Duration,
    /// Posts one replica has in flight at most.
    pub max_in_flight: usize,
    /// How long a finished message stays readable with `GetMessage`.
    pub retention: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            pace: Pace::default(),
            deadline: Duration::from_secs(1800),
            lease: Duration::from_secs(30),
            max_in_flight: 64,
            retention: Duration::from_secs(7 * 24 * 60 * 60),
        }
    }
}

/// What a queued post carries (stored as JSON in the outbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Body {
    text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    thread_ts: Option<String>,
    #[serde(default)]
    reply_broadcast: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    blocks_json: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unfurl_links: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unfurl_media: Option<bool>,
}

/// The outbox and how it is worked, as a [`MessageSender`] holds them.
#[derive(Clone)]
pub(crate) struct Queue {
    pub(crate) outbox: Arc<dyn Outbox>,
    pub(crate) settings: DeliverySettings,
    /// Rung when a message is queued here, so this replica's worker looks at once.
    pub(crate) bell: Arc<Bell>,
    /// Where status changes go as `connector.message_status` events (the tenants' event
    /// logs), when wired.
    pub(crate) feed: Option<crate::inbound::InboundEvents>,
    /// The budgets queued traffic is using, as this replica last read them.
    pub(crate) busy: Arc<BusyScopes>,
}

/// The channels and workspaces whose budgets queued traffic is using (spent within
/// [`BUSY_WITHIN`], or paused), read by every replica's worker each sweep and marked at once
/// when it claims: an immediate send to one of them spends from the same budget.
#[derive(Debug, Default)]
pub(crate) struct BusyScopes {
    scopes: std::sync::RwLock<HashSet<PauseScope>>,
}

/// How long after its last queued post a budget still counts as in use.
const BUSY_WITHIN: Duration = Duration::from_secs(2);

impl BusyScopes {
    fn replace(&self, scopes: Vec<PauseScope>) {
        *self.scopes.write().unwrap_or_else(|p| p.into_inner()) = scopes.into_iter().collect();
    }

    fn mark(&self, records: &[OutboundRecord]) {
        let mut scopes = self.scopes.write().unwrap_or_else(|p| p.into_inner());
        for r in records {
            scopes.insert(PauseScope::Workspace {
                team_id: r.team_id.clone(),
            });
            scopes.insert(PauseScope::Channel {
                team_id: r.team_id.clone(),
                channel_id: r.channel_id.clone(),
            });
        }
    }

    /// Whether a post to `channel` of `team_id` draws on a budget in use.
    fn touches(&self, team_id: &str, channel: &ChannelId) -> bool {
        let scopes = self.scopes.read().unwrap_or_else(|p| p.into_inner());
        if scopes.is_empty() {
            return false;
        }
        scopes.contains(&PauseScope::Workspace {
            team_id: team_id.to_owned(),
        }) || scopes.contains(&PauseScope::Channel {
            team_id: team_id.to_owned(),
            channel_id: channel.clone(),
        })
    }
}

/// The longest an immediate send waits for a shared budget before it is refused.
pub(crate) const IMMEDIATE_PACE_WAIT: Duration = Duration::from_secs(2);

/// The event type of a queued message's status change on the tenant's event stream.
pub const MESSAGE_STATUS_EVENT: &str = "connector.message_status";

impl Queue {
    /// Tells the tenants' event streams what became of `records`, in this process's order,
    /// without waiting for the commit unless the log is behind (best effort: the outbox is
    /// the record; a lost event is logged, never a failed delivery).
    async fn announce(&self, records: &[OutboundRecord], now: DateTime<Utc>) {
        let Some(feed) = &self.feed else {
            return;
        };
        feed.append_soon(records.iter().map(|r| status_event(r, now)).collect())
            .await;
    }
}

/// `record`'s status as an event of its tenant's log.
fn status_event(r: &OutboundRecord, now: DateTime<Utc>) -> connector_ports::NewInboundEvent {
    let payload = serde_json::json!({
        "message_id": r.id.to_string(),
        "status": r.status.as_str(),
        "channel_id": r.channel_id.as_str(),
        "attempts": r.attempts,
        "last_error": r.last_error,
        "ts": r.ts,
        "request_id": r.request_id,
    });
    connector_ports::NewInboundEvent {
        tenant_id: r.tenant_id.clone(),
        connector_id: r.connector_id,
        event_type: MESSAGE_STATUS_EVENT.into(),
        // One per status and attempt: a status told twice is stored once.
        event_id: format!("msg:{}:{}:{}", r.id, r.status.as_str(), r.attempts),
        team_id: r.team_id.clone(),
        channel_id: Some(r.channel_id.to_string()),
        user_id: None,
        ts: r.ts.clone(),
        thread_ts: None,
        text: None,
        from_own_bot: false,
        payload_json: payload.to_string(),
        received_at: DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now),
    }
}

/// One page of a tenant's recorded messages.
#[derive(Debug, Clone)]
pub struct MessagePage {
    /// Newest first.
    pub messages: Vec<OutboundRecord>,
    /// For the next page; empty on the last.
    pub next_page_token: String,
}

impl MessageSender {
    /// The same sender with queued delivery over `outbox`.
    pub fn with_outbox(mut self, outbox: Arc<dyn Outbox>, settings: DeliverySettings) -> Self {
        self.queue = Some(Queue {
            outbox,
            settings,
            bell: Arc::new(Bell::default()),
            feed: None,
            busy: Arc::default(),
        });
        self
    }

    /// Spends the posts `message` makes to `channel` from the budgets queued traffic shares, when it is
    /// using them (otherwise nothing: an immediate send to a quiet channel costs no database
    /// write). Waits up to [`IMMEDIATE_PACE_WAIT`] for the budget; longer, and the send is
    /// refused with when to retry. The database being unavailable never stops a send.
    pub(super) async fn pace_immediate(
        &self,
        connector: &Connector,
        channel: &ChannelId,
        message: &Message,
    ) -> Result<(), SendError> {
        let Some(queue) = &self.queue else {
            return Ok(());
        };
        let team_id = connector.workspace_id.to_string();
        if !queue.busy.touches(&team_id, channel) {
            return Ok(());
        }
        let (mut waited, mut left) = (Duration::ZERO, super::posts_of(message));
        while left > 0 {
            match queue
                .outbox
                .spend(&team_id, channel, &queue.settings.pace)
                .await
            {
                Ok(None) => left -= 1,
                Ok(Some(wait)) if waited + wait <= IMMEDIATE_PACE_WAIT => {
                    (self.sleep)(wait).await;
                    waited += wait;
                }
                Ok(Some(wait)) => {
                    metrics::counter!("connector_immediate_sends_paced_total", "outcome" => "refused")
                        .increment(1);
                    return Err(SendError::ChannelPaced {
                        channel: channel.to_string(),
                        retry_after: wait,
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not spend from a shared delivery budget; sending anyway");
                    return Ok(());
                }
            }
        }
        let outcome = if waited.is_zero() { "spent" } else { "waited" };
        metrics::counter!("connector_immediate_sends_paced_total", "outcome" => outcome)
            .increment(1);
        Ok(())
    }

    /// Answers an immediate send whose `request_id` a queued message already has: from it
    /// when it was posted, refused otherwise (never posted by both modes). `None` when no
    /// queued message has it.
    pub(super) async fn queued_earlier(
        &self,
        connector: &Connector,
        request_id: &connector_domain::RequestId,
        fingerprint: &str,
    ) -> Result<Option<Result<SentMessage, SendError>>, SendError> {
        let Some(queue) = &self.queue else {
            return Ok(None);
        };
        let Some(earlier) = queue
            .outbox
            .find_by_request(connector.id, request_id.as_str())
            .await?
            .filter(|r| r.delivery == Delivery::Queued)
        else {
            return Ok(None);
        };
        let request_id = request_id.as_str().to_owned();
        Ok(Some(if earlier.fingerprint != fingerprint {
            Err(SendError::RequestIdReused { request_id })
        } else {
            match (earlier.status, earlier.ts) {
                (MessageStatus::Sent, Some(ts)) => Ok(SentMessage {
                    channel: earlier.channel_id,
                    ts,
                    continuation_ts: Vec::new(),
                    file_ids: Vec::new(),
                    scheduled_message_id: None,
                    message_id: Some(earlier.id),
                }),
                (status, _) => Err(SendError::QueuedEarlier {
                    request_id,
                    message_id: earlier.id.to_string(),
                    status: status.as_str().to_uppercase(),
                }),
            }
        }))
    }

    /// `sent`, the answer to a repeated immediate send, with the ID of its record.
    pub(super) async fn with_record_id(
        &self,
        connector: &Connector,
        request_id: &connector_domain::RequestId,
        mut sent: SentMessage,
    ) -> SentMessage {
        if let (Some(queue), None) = (&self.queue, &sent.scheduled_message_id) {
            match queue
                .outbox
                .find_by_request(connector.id, request_id.as_str())
                .await
            {
                Ok(Some(r)) if r.status == MessageStatus::Sent => sent.message_id = Some(r.id),
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "could not read an immediate send's record"),
            }
        }
        sent
    }

    /// Records in the outbox what an immediate send with a request ID did (claimed at
    /// `claimed_at`), so GetMessage and ListMessages answer for it; its ID when recorded. A
    /// scheduled send is Slack's to post, not recorded. Best effort: the send happened, and a
    /// record that could not be written is logged, never a failed send.
    pub(super) async fn record_immediate(
        &self,
        connector: &Connector,
        message: &Message,
        fingerprint: &str,
        claimed_at: DateTime<Utc>,
        message_id: Option<MessageId>,
        result: &Result<SentMessage, SendError>,
    ) -> Option<MessageId> {
        let queue = self.queue.as_ref()?;
        if message.post_at.is_some() {
            return None;
        }
        let (status, channel, ts, last_error) = match result {
            Ok(sent) => (
                MessageStatus::Sent,
                sent.channel.clone(),
                Some(sent.ts.clone()),
                None,
            ),
            Err(SendError::PartiallySent { sent, error }) => (
                MessageStatus::Failed,
                sent.channel.clone(),
                Some(sent.ts.clone()),
                Some(format!("partially_sent: {}", send_error_code(error))),
            ),
            Err(e @ SendError::OutcomeUnknown { .. }) => (
                MessageStatus::Unknown,
                self.channel_of(connector, message),
                None,
                Some(send_error_code(e)),
            ),
            Err(e) => (
                MessageStatus::Failed,
                self.channel_of(connector, message),
                None,
                Some(send_error_code(e)),
            ),
        };
        let id = message_id.unwrap_or_else(MessageId::new_v7);
        let record = ImmediateRecord {
            message: NewOutboundMessage {
                id,
                tenant_id: connector.tenant_id.clone(),
                connector_id: connector.id,
                team_id: connector.workspace_id.to_string(),
                channel_id: channel,
                request_id: message.request_id.as_ref().map(|r| r.as_str().to_owned()),
                fingerprint: fingerprint.to_owned(),
                body_json: String::new(),
                not_before: claimed_at,
                deadline: claimed_at,
            },
            status,
            ts,
            last_error,
        };
        match queue.outbox.record_immediate(&record).await {
            Ok(()) => Some(id),
            Err(e) => {
                tracing::warn!(connector_id = %connector.id, error = %e,
                    "could not record an immediate send in the outbox; GetMessage will not find it");
                None
            }
        }
    }

    /// Where an immediate send that failed was going, as far as known without Slack.
    fn channel_of(&self, connector: &Connector, message: &Message) -> ChannelId {
        match &message.channel {
            None => connector.default_channel_id.clone(),
            Some(connector_domain::ChannelRef::Id(c)) => c.clone(),
            Some(connector_domain::ChannelRef::Name(name)) => self
                .channels
                .get(connector.id, name)
                .unwrap_or_else(|| ChannelId::new(format!("#{name}"))),
        }
    }

    /// Slack answered an immediate send to `channel` with a 429: queued deliveries to it
    /// hold off too, on every replica.
    pub(super) async fn pause_after_429(
        &self,
        connector: &Connector,
        channel: &ChannelId,
        retry_after: Option<Duration>,
    ) {
        let Some(queue) = &self.queue else {
            return;
        };
        let scope = PauseScope::Channel {
            team_id: connector.workspace_id.to_string(),
            channel_id: channel.clone(),
        };
        let wait = retry_after.unwrap_or(Duration::from_secs(1));
        match queue.outbox.pause(&scope, wait).await {
            Ok(paused) => throttled(&paused),
            Err(e) => {
                tracing::warn!(error = %e, "could not record Slack's pause for queued deliveries");
            }
        }
    }

    /// The same sender telling every status change of a queued message to its tenant's event
    /// log (`connector.message_status` events on StreamEvents and ListEvents).
    pub fn with_status_events(mut self, feed: crate::inbound::InboundEvents) -> Self {
        if let Some(queue) = &mut self.queue {
            queue.feed = Some(feed);
        }
        self
    }

    fn queue(&self) -> Result<&Queue, ConnectorError> {
        self.queue
            .as_ref()
            .ok_or_else(|| ConnectorError::FailedPrecondition {
                field: Some("delivery"),
                reason: "queued delivery is not configured on this server".into(),
            })
    }

    /// Validates `message` for connector `id` of `tenant` and stores it in the outbox: the
    /// record as queued (or, for a repeated `request_id`, as it stands).
    #[tracing::instrument(name = "usecase messages.enqueue", skip_all)]
    pub async fn enqueue(
        &self,
        tenant: Option<&TenantId>,
        id: ConnectorId,
        message: &Message,
    ) -> Result<OutboundRecord, SendError> {
        let queue = self
            .queue
            .as_ref()
            .ok_or_else(|| {
                ValidationError::new(
                    "delivery",
                    "queued delivery is not configured on this server",
                )
            })?
            .clone();
        message.validate()?;
        message.check_limits(&self.limits)?;
        let now = self.ports.clock.utc();
        message.check_schedule(now)?;
        if !message.files.is_empty() {
            return Err(ValidationError::new(
                "attachments",
                "cannot be queued (DELIVERY_QUEUED posts one message); send files with DELIVERY_IMMEDIATE",
            )
            .into());
        }
        if message.blocks_json.is_none() && message.text.chars().count() > MAX_TEXT_CHARS {
            return Err(ValidationError::new(
                "text",
                format!(
                    "must be at most {MAX_TEXT_CHARS} characters with DELIVERY_QUEUED (one message)"
                ),
            )
            .into());
        }
        let connector = self.usable_connector(tenant, id).await?;
        if message.channel.is_none() && !connector.default_channel_available {
            return Err(SendError::DefaultChannelUnavailable {
                id: id.to_string(),
                channel: connector.default_channel_id.to_string(),
            });
        }
        let channel = match &message.channel {
            None => connector.default_channel_id.clone(),
            Some(connector_domain::ChannelRef::Id(c)) => c.clone(),
            Some(connector_domain::ChannelRef::Name(_)) => {
                let (token, _) = self.token(&connector).await?;
                self.target_channel(&connector, &token, message).await?
            }
        };
        let body = Body {
            text: message.text.clone(),
            thread_ts: message.thread_ts.clone(),
            reply_broadcast: message.reply_broadcast,
            blocks_json: message.blocks_json.clone(),
            unfurl_links: message.unfurl_links,
            unfurl_media: message.unfurl_media,
        };
        let body_json = serde_json::to_string(&body)
            .map_err(|e| SendError::Internal(anyhow::anyhow!("encoding a queued message: {e}")))?;
        let fingerprint = super::fingerprint(message);
        let queued_at = now;
        let new = NewOutboundMessage {
            id: MessageId::new_v7(),
            tenant_id: connector.tenant_id.clone(),
            connector_id: id,
            team_id: connector.workspace_id.to_string(),
            channel_id: channel,
            request_id: message.request_id.as_ref().map(|r| r.as_str().to_owned()),
            fingerprint: fingerprint.clone(),
            body_json,
            not_before: message.post_at.unwrap_or(queued_at),
            deadline: message.post_at.unwrap_or(queued_at) + to_chrono(queue.settings.deadline),
        };
        match queue.outbox.enqueue(&new).await? {
            Enqueued::New(record) => {
                metrics::counter!("connector_outbox_enqueued_total").increment(1);
                // Told before this replica's worker is woken, so its `sending` comes after.
                queue.announce(std::slice::from_ref(&record), now).await;
                // A message scheduled for later is found by the worker's poll when it is due:
                // waking it now would only cost a claim that finds nothing (a claim per
                // enqueue while a storm of scheduled messages is accepted).
                if record.next_attempt_at <= now {
                    queue.bell.ring();
                }
                Ok(record)
            }
            Enqueued::Existing(record) if record.fingerprint == fingerprint => Ok(record),
            Enqueued::Existing(record) => Err(SendError::RequestIdReused {
                request_id: record.request_id.unwrap_or_default(),
            }),
        }
    }

    /// The tenant's recorded message `id`.
    pub async fn get_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
    ) -> Result<OutboundRecord, ConnectorError> {
        self.queue()?
            .outbox
            .get(tenant, id)
            .await?
            .ok_or_else(|| ConnectorError::MessageNotFound { id: id.to_string() })
    }

    /// The recorded message a send with `request_id` through the tenant's connector `id`
    /// left (queued, or immediate and finished), if any: how a failed immediate send's
    /// answer names its record.
    pub async fn message_for_request(
        &self,
        tenant: &TenantId,
        id: ConnectorId,
        request_id: &str,
    ) -> Result<Option<OutboundRecord>, ConnectorError> {
        let Some(queue) = &self.queue else {
            return Ok(None);
        };
        Ok(queue
            .outbox
            .find_by_request(id, request_id)
            .await?
            .filter(|r| &r.tenant_id == tenant))
    }

    /// A page of the tenant's recorded messages, newest first.
    pub async fn list_messages(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
        page_size: u32,
        page_token: &str,
    ) -> Result<MessagePage, ConnectorError> {
        let before = decode_page_token(page_token, tenant)?;
        let page_size = page_size.clamp(1, 100);
        let mut messages = self
            .queue()?
            .outbox
            .list(tenant, filter, before, page_size + 1)
            .await?;
        let next_page_token = if messages.len() > page_size as usize {
            messages.truncate(page_size as usize);
            messages
                .last()
                .map(|m| encode_page_token(tenant, m.created_at, m.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(MessagePage {
            messages,
            next_page_token,
        })
    }

    /// Cancels the tenant's queued message `id` unless it is being posted or finished.
    pub async fn cancel_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
    ) -> Result<OutboundRecord, ConnectorError> {
        match self.queue()?.outbox.cancel(tenant, id).await? {
            Cancelled::Done(record) => {
                metrics::counter!("connector_outbox_cancelled_total").increment(1);
                let queue = self.queue()?;
                queue
                    .announce(std::slice::from_ref(&record), self.ports.clock.utc())
                    .await;
                Ok(record)
            }
            Cancelled::TooLate(record) if record.unconfirmed_since.is_some() => {
                Err(ConnectorError::FailedPrecondition {
                    field: Some("message_id"),
                    reason: format!(
                        "message {id} may already have been posted (Slack's answer to an earlier attempt was lost; its landing is being checked) and can no longer be cancelled"
                    ),
                })
            }
            Cancelled::TooLate(record) => Err(ConnectorError::FailedPrecondition {
                field: Some("message_id"),
                reason: format!(
                    "message {id} is {} and can no longer be cancelled",
                    record.status.as_str().to_uppercase()
                ),
            }),
            Cancelled::NotFound => Err(ConnectorError::MessageNotFound { id: id.to_string() }),
        }
    }

    /// The worker that posts what this sender queues; run it with [`DeliveryWorker::run`].
    /// `None` without queued delivery.
    pub fn delivery_worker(&self, owner: String) -> Option<DeliveryWorker> {
        let queue = self.queue.clone()?;
        Some(DeliveryWorker {
            sender: self.clone(),
            queue,
            owner,
            in_flight: Arc::new(AtomicUsize::new(0)),
        })
    }
}

const PAGE_TOKEN_VERSION: &str = "m1";

fn encode_page_token(tenant: &TenantId, at: DateTime<Utc>, id: MessageId) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{PAGE_TOKEN_VERSION}|{tenant}|{}|{id}",
        at.timestamp_micros()
    ))
}

fn decode_page_token(
    token: &str,
    tenant: &TenantId,
) -> Result<Option<(DateTime<Utc>, MessageId)>, ValidationError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        ValidationError::new(
            "page_token",
            "is not a page token returned by ListMessages for this tenant",
        )
    };
    if token.len() > 512 {
        return Err(invalid());
    }
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let parts: Vec<&str> = raw.splitn(4, '|').collect();
    let [version, t, micros, id] = parts.as_slice() else {
        return Err(invalid());
    };
    if *version != PAGE_TOKEN_VERSION || *t != tenant.as_str() {
        return Err(invalid());
    }
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(invalid)?;
    let id = MessageId::parse("page_token", id).map_err(|_| invalid())?;
    Ok(Some((at, id)))
}

/// Posts queued messages on one replica: claims what is due and within budget, posts each on
/// a task of its own, records the outcome, and looks again when a post finishes, a message is
/// queued here, a spent budget admits a post again (as the outbox tells), or a short poll
/// passes (another replica's messages, a message coming due).
pub struct DeliveryWorker {
    sender: MessageSender,
    queue: Queue,
    owner: String,
    in_flight: Arc<AtomicUsize>,
}

impl std::fmt::Debug for DeliveryWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryWorker")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// The shortest and longest pause between looks when nothing could be claimed.
const POLL_MIN: Duration = Duration::from_millis(10);
const POLL_MAX: Duration = Duration::from_millis(250);
/// How long a stopping worker waits for its status changes to reach the event log.
const FLUSH_WAIT: Duration = Duration::from_secs(10);
/// The shortest wait for a budget to admit a post (the store's clock and this one differ by
/// the time the answer took).
const ADMISSION_MIN: Duration = Duration::from_millis(1);

/// How often leases and deadlines are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How often the outbox is counted by status (the `connector_outbox_messages` gauge).
const COUNT_EVERY: Duration = Duration::from_secs(10);

/// Messages one sweep ends at most.
const SWEEP_LIMIT: u32 = 500;

/// Retry backoff: the first wait, and the longest.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// What an expired lease's message is marked with.
const LEASE_LOST: &str = "replica_stopped_mid_post: the replica posting it stopped before Slack answered; it may have been posted, so the channel's history is checked before it is posted again";

impl DeliveryWorker {
    /// Runs until `stop` resolves; then waits (at most the lease) for the posts in flight.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut poll = POLL_MIN;
        let mut last_sweep: Option<std::time::Instant> = None;
        let mut last_count: Option<std::time::Instant> = None;
        tracing::info!(owner = %self.owner, "delivery worker started");
        loop {
            if last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
                self.sweep().await;
                last_sweep = Some(std::time::Instant::now());
            }
            if last_count.is_none_or(|t| t.elapsed() >= COUNT_EVERY) {
                self.count().await;
                last_count = Some(std::time::Instant::now());
            }
            let seen = self.queue.bell.times();
            let free = self
                .queue
                .settings
                .max_in_flight
                .saturating_sub(self.in_flight.load(Ordering::Acquire));
            let mut claimed = 0;
            let mut admitted_in = None;
            if free > 0 {
                match self
                    .queue
                    .outbox
                    .claim(
                        &self.owner,
                        &self.queue.settings.pace,
                        self.queue.settings.lease,
                        u32::try_from(free.min(100)).unwrap_or(100),
                    )
                    .await
                {
                    Ok(messages) if messages.is_empty() => {
                        // Nothing within budget: look again when a spent budget admits a post,
                        // not only after a backoff that may be far longer.
                        admitted_in = self.next_admission().await;
                    }
                    Ok(messages) => {
                        claimed = messages.len();
                        self.queue.busy.mark(&messages);
                        self.queue
                            .announce(&messages, self.sender.ports.clock.utc())
                            .await;
                        for m in messages {
                            self.start(m);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not claim queued messages; retrying");
                    }
                }
            }
            poll = if claimed > 0 {
                POLL_MIN
            } else {
                (poll * 2).min(POLL_MAX)
            };
            let wait = admitted_in.map_or(poll, |d: Duration| d.clamp(ADMISSION_MIN, poll));
            let rung = std::pin::pin!(self.queue.bell.rings_after(seen));
            let woken = futures::future::select(rung, (self.sender.sleep)(wait));
            if let futures::future::Either::Left(_) =
                futures::future::select(stop.as_mut(), woken).await
            {
                break;
            }
        }
        // Posts in flight finish (each bounded by Slack's deadline) before the worker ends.
        let waited = std::time::Instant::now();
        while self.in_flight.load(Ordering::Acquire) > 0
            && waited.elapsed() < self.queue.settings.lease
        {
            (self.sender.sleep)(Duration::from_millis(20)).await;
        }
        // The status changes still in line for the event log are written before the stop.
        if let Some(feed) = &self.queue.feed
            && crate::runtime::within(&self.sender.sleep, FLUSH_WAIT, feed.flush())
                .await
                .is_none()
        {
            tracing::warn!(owner = %self.owner, "the event log was not written within {FLUSH_WAIT:?} of the stop; some status changes may be missing from it");
        }
        tracing::info!(owner = %self.owner, "delivery worker stopped");
    }

    /// How long until a spent budget admits a post again, if one is spent (a failed read is
    /// no hint: the poll's backoff stands).
    async fn next_admission(&self) -> Option<Duration> {
        match self
            .queue
            .outbox
            .next_admission(&self.queue.settings.pace)
            .await
        {
            Ok(wait) => wait,
            Err(e) => {
                tracing::debug!(error = %e, "could not read when the budgets admit posts again");
                None
            }
        }
    }

    /// Sets the `connector_outbox_messages{status}` gauge (every status, zero included).
    async fn count(&self) {
        match self.queue.outbox.count_by_status().await {
            Ok(counts) => {
                for status in MessageStatus::ALL {
                    let n = counts
                        .iter()
                        .find(|(s, _)| *s == status)
                        .map_or(0, |(_, n)| *n);
                    metrics::gauge!("connector_outbox_messages", "status" => status.as_str())
                        .set(n as f64);
                }
            }
            Err(e) => tracing::debug!(error = %e, "could not count the outbox"),
        }
    }

    /// Ends what nobody will finish: leases that passed (their replica stopped mid-post) and
    /// messages past their deadline; and reads which budgets queued traffic is using.
    async fn sweep(&self) {
        match self.queue.outbox.busy_scopes(BUSY_WITHIN).await {
            Ok(scopes) => self.queue.busy.replace(scopes),
            Err(e) => tracing::debug!(error = %e, "could not read the budgets in use"),
        }
        match self
            .queue
            .outbox
            .take_over_expired(LEASE_LOST, SWEEP_LIMIT)
            .await
        {
            Ok(lost) => {
                for m in &lost {
                    tracing::warn!(message_id = %m.id, connector_id = %m.connector_id,
                        "a queued message's replica stopped mid-post; checking whether it landed before posting it again");
                }
                self.queue
                    .announce(&lost, self.sender.ports.clock.utc())
                    .await;
            }
            Err(e) => tracing::warn!(error = %e, "could not take over expired leases"),
        }
        match self.queue.outbox.expire(SWEEP_LIMIT).await {
            Ok(expired) => {
                for m in &expired {
                    observe_final(m.status, m.created_at, self.sender.ports.clock.utc());
                }
                self.queue
                    .announce(&expired, self.sender.ports.clock.utc())
                    .await;
            }
            Err(e) => tracing::warn!(error = %e, "could not expire queued messages"),
        }
    }

    fn start(&self, message: OutboundRecord) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let (sender, queue, owner, in_flight) = (
            self.sender.clone(),
            self.queue.clone(),
            self.owner.clone(),
            self.in_flight.clone(),
        );
        (self.sender.spawn)(Box::pin(async move {
            let outcome = attempt(&sender, &queue, &message).await;
            let label = match &outcome {
                AttemptOutcome::Sent { .. } => "sent",
                AttemptOutcome::Retry { .. } => "retry",
                AttemptOutcome::Failed { .. } => "failed",
                AttemptOutcome::Unknown { .. } => "unknown",
                AttemptOutcome::Unconfirmed { .. } => "unconfirmed",
            };
            metrics::counter!("connector_delivery_attempts_total", "outcome" => label).increment(1);
            match queue.outbox.finish(message.id, &owner, &outcome).await {
                Ok(true) => {
                    let now = sender.ports.clock.utc();
                    let mut after = message.clone();
                    after.unconfirmed_since = None;
                    match &outcome {
                        AttemptOutcome::Sent { ts } => {
                            after.status = MessageStatus::Sent;
                            after.ts = Some(ts.clone());
                        }
                        AttemptOutcome::Failed { error } => {
                            after.status = MessageStatus::Failed;
                            after.last_error = Some(error.clone());
                        }
                        AttemptOutcome::Unknown { error } => {
                            after.status = MessageStatus::Unknown;
                            after.last_error = Some(error.clone());
                        }
                        AttemptOutcome::Retry { error, retry_at } => {
                            after.status = MessageStatus::Queued;
                            after.last_error = Some(error.clone());
                            after.next_attempt_at = *retry_at;
                        }
                        AttemptOutcome::Unconfirmed { error, check_at } => {
                            after.status = MessageStatus::Queued;
                            after.last_error = Some(error.clone());
                            after.next_attempt_at = *check_at;
                            after.unconfirmed_since =
                                message.unconfirmed_since.or(message.attempted_at);
                        }
                    }
                    if after.status.is_final() {
                        observe_final(after.status, message.created_at, now);
                    }
                    queue.announce(std::slice::from_ref(&after), now).await;
                }
                Ok(false) => tracing::warn!(message_id = %message.id,
                    "a queued message's lease passed before its outcome was recorded; another replica marked it"),
                Err(e) => tracing::warn!(message_id = %message.id, error = %e,
                    "could not record a queued message's outcome; its lease will pass and it will be marked UNKNOWN"),
            }
            in_flight.fetch_sub(1, Ordering::AcqRel);
            queue.bell.ring();
        }));
    }
}

/// Records a message that reached a final status.
fn observe_final(status: MessageStatus, created_at: DateTime<Utc>, now: DateTime<Utc>) {
    metrics::counter!("connector_outbox_finished_total", "status" => status.as_str()).increment(1);
    if status == MessageStatus::Sent {
        metrics::histogram!("connector_delivery_queue_to_sent_seconds").record(
            (now - created_at)
                .to_std()
                .unwrap_or_default()
                .as_secs_f64(),
        );
    }
}

/// What the channel's history said of a post that may have landed.
enum Landing {
    /// It did: there.
    Landed(connector_ports::PostedMessage),
    /// Every message since the doubtful attempt was searched: it did not.
    Absent,
    /// It could not be told now; what to do instead.
    Undecided(AttemptOutcome),
}

/// One attempt to post `message`: what became of it. A message that may have been posted
/// already keeps that doubt until the channel's history settles it: whatever the attempt
/// did before, a retry is a later landing check, a failure `Unknown`.
async fn attempt(
    sender: &MessageSender,
    queue: &Queue,
    message: &OutboundRecord,
) -> AttemptOutcome {
    let mut doubt = message.unconfirmed_since.is_some();
    let outcome = attempt_settling(sender, queue, message, &mut doubt).await;
    if !doubt {
        return outcome;
    }
    match outcome {
        AttemptOutcome::Retry { error, retry_at } => AttemptOutcome::Unconfirmed {
            error,
            check_at: retry_at,
        },
        AttemptOutcome::Failed { error } => AttemptOutcome::Unknown {
            error: format!("{error}; an earlier attempt may have posted it"),
        },
        other => other,
    }
}

/// A post whose answer was lost: searched for in the channel's history a little later, unless
/// that is past the deadline.
fn unconfirmed(message: &OutboundRecord, now: DateTime<Utc>, error: String) -> AttemptOutcome {
    let check_at = now + to_chrono(LANDING_CHECK_AFTER);
    if check_at > message.deadline {
        AttemptOutcome::Unknown { error }
    } else {
        AttemptOutcome::Unconfirmed { error, check_at }
    }
}

/// Searches the channel's history (or the thread's) for `message`, posted with its ID in its
/// metadata since `since`.
async fn check_landing(
    sender: &MessageSender,
    connector: &Connector,
    message: &OutboundRecord,
    thread_ts: Option<String>,
    since: DateTime<Utc>,
) -> Landing {
    let now = sender.ports.clock.utc();
    let found = sender
        .find_marked_post(connector, &message.channel_id, thread_ts, since, message.id)
        .await;
    let earlier = message.last_error.as_deref().unwrap_or("slack_answer_lost");
    let (result, landing) = match found {
        Ok(Ok(Some(posted))) => ("landed", Landing::Landed(posted)),
        Ok(Ok(None)) => ("absent", Landing::Absent),
        // Worth looking again later.
        Ok(Err(SlackError::RateLimited { retry_after })) => (
            "undecided",
            Landing::Undecided(retry_at(
                message,
                now + to_chrono(retry_after.unwrap_or(Duration::from_secs(1))),
                earlier.to_owned(),
            )),
        ),
        Ok(Err(SlackError::Unavailable(_) | SlackError::OutcomeUnknown(_))) | Err(_) => (
            "undecided",
            Landing::Undecided(retry(message, now, earlier.to_owned())),
        ),
        // The history cannot be read (no `channels:history` scope, say): it never will be.
        Ok(Err(e)) => (
            "undecided",
            Landing::Undecided(AttemptOutcome::Unknown {
                error: format!(
                    "{earlier}; whether it landed could not be checked: {}",
                    slack_code(&e)
                ),
            }),
        ),
    };
    metrics::counter!("connector_delivery_landing_checks_total", "result" => result).increment(1);
    landing
}

/// [`attempt`], clearing `doubt` once the channel's history says an earlier attempt did not
/// post the message.
async fn attempt_settling(
    sender: &MessageSender,
    queue: &Queue,
    message: &OutboundRecord,
    doubt: &mut bool,
) -> AttemptOutcome {
    let now = sender.ports.clock.utc();
    let connector = match sender
        .ports
        .connectors
        .queries
        .find_active(message.connector_id)
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => return connector_gone(queue, message, "connector_deleted").await,
        // A fixed text: `last_error` reaches the tenant (GetMessage); the detail (a host, a
        // driver's words) goes to the log only.
        Err(e) => {
            tracing::warn!(message_id = %message.id, error = %e,
                "could not read a queued message's connector; retrying");
            return retry(message, now, "database_unavailable".into());
        }
    };
    match connector.auth_status {
        AuthStatus::Ok => {}
        AuthStatus::Revoked => return connector_gone(queue, message, "connector_revoked").await,
        // Someone may re-authorise it before the deadline.
        AuthStatus::NeedsReauthorization => {
            return retry(message, now, "connector_needs_reauthorization".into());
        }
    }
    let body: Body = match serde_json::from_str(&message.body_json) {
        Ok(b) => b,
        Err(e) => {
            return AttemptOutcome::Failed {
                error: format!("internal_error: unreadable queued message ({e})"),
            };
        }
    };
    let outgoing = OutgoingMessage {
        channel: message.channel_id.clone(),
        text: body.text,
        thread_ts: body.thread_ts,
        reply_broadcast: body.reply_broadcast,
        blocks_json: body.blocks_json,
        unfurl_links: body.unfurl_links,
        unfurl_media: body.unfurl_media,
        metadata: Some(landing_metadata(message.id)),
    };
    if let Some(since) = message.unconfirmed_since {
        match check_landing(
            sender,
            &connector,
            message,
            outgoing.thread_ts.clone(),
            since,
        )
        .await
        {
            Landing::Landed(posted) => {
                tracing::info!(message_id = %message.id, ts = %posted.ts,
                    "a queued message whose answer was lost had landed; marked SENT");
                sender
                    .remember_posted(&connector, &posted_record(&posted))
                    .await;
                return AttemptOutcome::Sent { ts: posted.ts };
            }
            Landing::Absent => *doubt = false,
            Landing::Undecided(outcome) => return outcome,
        }
    }
    let slack = sender.ports.slack.clone();
    let posted = sender
        .with_token(&connector, None, |token| {
            let (slack, outgoing) = (slack.clone(), &outgoing);
            async move { slack.post_message_once(&token, outgoing).await }
        })
        .await;
    let answer = match posted {
        Ok(answer) => answer,
        // The token could not be read: nothing was posted. A delete marks the connector
        // before it removes the secret, so one deleted since the read above is no longer
        // active: its messages fail with that reason, as when the delete came first.
        Err(SendError::SecretMissing { .. }) => {
            if let Ok(None) = sender
                .ports
                .connectors
                .queries
                .find_active(message.connector_id)
                .await
            {
                return connector_gone(queue, message, "connector_deleted").await;
            }
            return AttemptOutcome::Failed {
                error: "secret_missing".into(),
            };
        }
        Err(e) => {
            tracing::warn!(message_id = %message.id, error = %e,
                "could not read a queued message's token; retrying");
            return retry(message, now, "token_unavailable".into());
        }
    };
    match answer {
        Ok(posted) => {
            sender
                .remember_posted(&connector, &posted_record(&posted))
                .await;
            AttemptOutcome::Sent { ts: posted.ts }
        }
        Err(SlackError::RateLimited { retry_after }) => {
            let wait = retry_after.unwrap_or(Duration::from_secs(1));
            let scope = PauseScope::Channel {
                team_id: message.team_id.clone(),
                channel_id: message.channel_id.clone(),
            };
            match queue.outbox.pause(&scope, wait).await {
                Ok(paused) => throttled(&paused),
                Err(e) => {
                    metrics::counter!("connector_delivery_throttled_total", "scope" => "channel")
                        .increment(1);
                    tracing::warn!(error = %e, "could not record Slack's pause for other replicas");
                }
            }
            retry_at(message, now + to_chrono(wait), "ratelimited".into())
        }
        Err(SlackError::Unavailable(detail)) => {
            tracing::debug!(message_id = %message.id, %detail, "Slack unavailable; will retry");
            retry(message, now, "slack_unavailable".into())
        }
        Err(SlackError::OutcomeUnknown(detail)) => {
            unconfirmed(message, now, format!("slack_answer_lost: {detail}"))
        }
        Err(SlackError::Unknown(e)) => {
            unconfirmed(message, now, format!("slack_answer_unreadable: {e}"))
        }
        Err(e) => AttemptOutcome::Failed {
            error: slack_code(&e),
        },
    }
}

/// Counts a 429 by the scope it paused (`connector_delivery_throttled_total`).
fn throttled(paused: &PauseScope) {
    let scope = match paused {
        PauseScope::Channel { .. } => "channel",
        PauseScope::Workspace { team_id } => {
            tracing::info!(%team_id, "429s in two channels of a workspace at once: the whole workspace is paused");
            "workspace"
        }
    };
    metrics::counter!("connector_delivery_throttled_total", "scope" => scope).increment(1);
}

/// What the sent-message store keeps of a queued post that landed.
fn posted_record(posted: &connector_ports::PostedMessage) -> SentMessage {
    SentMessage {
        channel: posted.channel.clone(),
        ts: posted.ts.clone(),
        continuation_ts: Vec::new(),
        file_ids: Vec::new(),
        scheduled_message_id: None,
        message_id: None,
    }
}

/// The connector of `message` is gone: it and every other message queued through it fail
/// with `error` at once (not each in its turn).
async fn connector_gone(queue: &Queue, message: &OutboundRecord, error: &str) -> AttemptOutcome {
    match queue
        .outbox
        .fail_connector(message.connector_id, error)
        .await
    {
        Ok(failed) => {
            for m in &failed {
                observe_final(m.status, m.created_at, m.created_at);
            }
            queue.announce(&failed, Utc::now()).await;
        }
        Err(e) => tracing::warn!(error = %e, "could not fail a gone connector's queued messages"),
    }
    AttemptOutcome::Failed {
        error: error.into(),
    }
}

/// What an immediate send's record says went wrong: Slack's error code where there is one.
fn send_error_code(e: &SendError) -> String {
    match e {
        SendError::Slack { code } => code.clone(),
        SendError::NotInChannel { .. } => "not_in_channel".into(),
        SendError::ChannelArchived { .. } => "is_archived".into(),
        SendError::ChannelNotFound { .. } => "channel_not_found".into(),
        SendError::RateLimited { .. } => "ratelimited".into(),
        SendError::ChannelPaced { .. } => {
            "paced: the channel's budget was spent by queued messages".into()
        }
        SendError::TokenRevoked { code } => code.clone(),
        SendError::MissingScope { .. } => "missing_scope".into(),
        SendError::SecretMissing { .. } => "secret_missing".into(),
        SendError::OutcomeUnknown { .. } => "slack_answer_lost".into(),
        SendError::PartiallySent { error, .. } => send_error_code(error),
        other => other.to_string(),
    }
}

/// Slack's error code for a permanent failure.
fn slack_code(e: &SlackError) -> String {
    match e {
        SlackError::InvalidAuth { code } | SlackError::Api { code } => code.clone(),
        SlackError::MissingScope { needed } if needed.is_empty() => "missing_scope".into(),
        SlackError::MissingScope { needed } => format!("missing_scope: {needed}"),
        SlackError::ChannelNotFound => "channel_not_found".into(),
        SlackError::NotInChannel => "not_in_channel".into(),
        SlackError::IsArchived => "is_archived".into(),
        SlackError::RateLimited { .. } => "ratelimited".into(),
        SlackError::Unavailable(_) => "slack_unavailable".into(),
        SlackError::OutcomeUnknown(_) => "slack_answer_lost".into(),
        SlackError::Unknown(_) => "internal_error".into(),
    }
}

/// Tried again after a backoff that grows with the attempts made (full jitter), unless that is
/// past the deadline: then failed with `error`.
fn retry(message: &OutboundRecord, now: DateTime<Utc>, error: String) -> AttemptOutcome {
    let exp = RETRY_FIRST
        .saturating_mul(1 << message.attempts.saturating_sub(1).min(16))
        .min(RETRY_MAX);
    let jittered = exp.mul_f64(0.5 + rand::random::<f64>() * 0.5);
    retry_at(message, now + to_chrono(jittered), error)
}

fn retry_at(message: &OutboundRecord, at: DateTime<Utc>, error: String) -> AttemptOutcome {
    if at > message.deadline {
        AttemptOutcome::Failed { error }
    } else {
        AttemptOutcome::Retry {
            error,
            retry_at: at,
        }
    }
}

#[cfg(test)]
mod tests {
    use connector_domain::ChannelId;

    use super::*;

    fn tenant(s: &str) -> TenantId {
        TenantId::parse("tenant_id", s).unwrap()
    }

    #[test]
    fn page_tokens_round_trip_for_their_tenant_only() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = MessageId::new_v7();
        let token = encode_page_token(&tenant("acme"), at, id);
        assert_eq!(
            decode_page_token(&token, &tenant("acme")).unwrap(),
            Some((at, id))
        );
        assert_eq!(
            decode_page_token(&token, &tenant("globex"))
                .unwrap_err()
                .field,
            "page_token"
        );
        assert!(decode_page_token("garbage!", &tenant("acme")).is_err());
        assert_eq!(decode_page_token("", &tenant("acme")).unwrap(), None);
    }

    fn record(attempts: u32, deadline_in: i64) -> OutboundRecord {
        let now = Utc::now();
        OutboundRecord {
            id: MessageId::new_v7(),
            tenant_id: tenant("acme"),
            connector_id: ConnectorId::new_v7(),
            team_id: "T1".into(),
            channel_id: ChannelId::new("C1"),
            request_id: None,
            fingerprint: String::new(),
            body_json: String::new(),
            status: MessageStatus::Sending,
            attempts,
            last_error: None,
            ts: None,
            created_at: now,
            next_attempt_at: now,
            deadline: now + chrono::Duration::seconds(deadline_in),
            finished_at: None,
            delivery: Delivery::Queued,
            attempted_at: Some(now),
            unconfirmed_since: None,
        }
    }

    /// A sender whose connector reads as active `active_reads` times, then as gone, and whose
    /// secret store has no token; its outbox expects `fail_connector` `fails` times.
    fn without_secret(active_reads: usize, fails: usize) -> (MessageSender, Queue, ConnectorId) {
        use connector_ports::{MockConnectors, MockOutbox, MockSecretStore, MockSlackApi};

        let row =
            crate::testing::connector("acme", "prod", connector_domain::ConnectorState::Active);
        let id = row.id;
        let mut repo = MockConnectors::default();
        let reads = AtomicUsize::new(0);
        repo.queries.expect_find_active().returning(move |_| {
            let n = reads.fetch_add(1, Ordering::SeqCst);
            Ok((n < active_reads).then(|| row.clone()))
        });
        let mut secrets = MockSecretStore::new();
        secrets
            .expect_get()
            .returning(|_| Err(connector_ports::SecretStoreError::NotFound));
        let mut slack = MockSlackApi::new();
        slack.expect_post_message_once().never();
        let mut outbox = MockOutbox::new();
        outbox
            .expect_fail_connector()
            .withf(move |c, error| *c == id && error == "connector_deleted")
            .times(fails)
            .returning(|_, _| Ok(Vec::new()));
        let tokens = crate::send::TokenCache::new(
            Duration::from_secs(300),
            Arc::new(crate::runtime::SystemClock),
        );
        let sender = crate::send::tests::sender(repo, secrets, slack, tokens)
            .with_outbox(Arc::new(outbox), DeliverySettings::default());
        let queue = sender.queue.clone().unwrap();
        (sender, queue, id)
    }

    fn queued_through(id: ConnectorId) -> OutboundRecord {
        let mut m = record(1, 3600);
        m.connector_id = id;
        m.body_json = serde_json::to_string(&Body {
            text: "deploy finished".into(),
            thread_ts: None,
            reply_broadcast: false,
            blocks_json: None,
            unfurl_links: None,
            unfurl_media: None,
        })
        .unwrap();
        m
    }

    #[tokio::test]
    async fn a_connector_deleted_while_its_token_is_read_fails_its_messages_as_deleted() {
        // Active when the attempt reads it; its secret gone by the time the token is read
        // (a delete marks the connector, then removes the secret).
        let (sender, queue, id) = without_secret(1, 1);
        let outcome = attempt(&sender, &queue, &queued_through(id)).await;
        assert_eq!(
            outcome,
            AttemptOutcome::Failed {
                error: "connector_deleted".into()
            }
        );
    }

    #[tokio::test]
    async fn an_active_connector_without_its_secret_fails_as_secret_missing() {
        let (sender, queue, id) = without_secret(usize::MAX, 0);
        let outcome = attempt(&sender, &queue, &queued_through(id)).await;
        assert_eq!(
            outcome,
            AttemptOutcome::Failed {
                error: "secret_missing".into()
            }
        );
    }

    /// The waits a delivery worker over `outbox` asks for between its first `looks` empty
    /// claims (its sleeps end at once).
    async fn waits_between_empty_claims(
        admission: Option<Duration>,
        looks: usize,
    ) -> Vec<Duration> {
        use connector_ports::{MockConnectors, MockOutbox, MockSecretStore, MockSlackApi};
        use std::sync::Mutex;

        let mut outbox = MockOutbox::new();
        outbox.expect_busy_scopes().returning(|_| Ok(Vec::new()));
        outbox
            .expect_take_over_expired()
            .returning(|_, _| Ok(Vec::new()));
        outbox.expect_expire().returning(|_| Ok(Vec::new()));
        outbox.expect_count_by_status().returning(|| Ok(Vec::new()));
        outbox.expect_claim().returning(|_, _, _, _| Ok(Vec::new()));
        outbox
            .expect_next_admission()
            .returning(move |_| Ok(admission));
        let waits = Arc::new(Mutex::new(Vec::new()));
        let recorded = waits.clone();
        let sleep: crate::runtime::Sleep = Arc::new(move |d| {
            recorded.lock().unwrap().push(d);
            Box::pin(tokio::task::yield_now())
        });
        let worker = crate::send::tests::sender_sleeping(
            MockConnectors::default(),
            MockSecretStore::new(),
            MockSlackApi::new(),
            crate::send::TokenCache::new(
                Duration::from_secs(300),
                Arc::new(crate::runtime::SystemClock),
            ),
            Arc::new(crate::testing::MemorySends::default()),
            sleep,
        )
        .with_outbox(Arc::new(outbox), DeliverySettings::default())
        .delivery_worker("replica-a".into())
        .unwrap();
        let seen = waits.clone();
        worker
            .run(async move {
                while seen.lock().unwrap().len() < looks {
                    tokio::task::yield_now().await;
                }
            })
            .await;
        let mut waits = waits.lock().unwrap().clone();
        waits.truncate(looks);
        waits
    }

    #[tokio::test]
    async fn a_worker_that_finds_nothing_looks_again_when_a_budget_admits_a_post() {
        let ms = Duration::from_millis;
        // No budget refuses (nothing due, say): the poll backs off.
        assert_eq!(
            waits_between_empty_claims(None, 3).await,
            [ms(20), ms(40), ms(80)]
        );
        // A spent budget admits a post in 7 ms: the worker looks then, not after its backoff.
        assert_eq!(
            waits_between_empty_claims(Some(ms(7)), 3).await,
            [ms(7), ms(7), ms(7)]
        );
        // Later than the backoff: the backoff (a message may come due meanwhile).
        assert_eq!(
            waits_between_empty_claims(Some(ms(500)), 3).await,
            [ms(20), ms(40), ms(80)]
        );
        // Now (the two clocks differ by a round trip): at least a millisecond.
        assert_eq!(
            waits_between_empty_claims(Some(Duration::ZERO), 2).await,
            [ms(1), ms(1)]
        );
    }

    #[test]
    fn retries_back_off_with_jitter_and_stop_at_the_deadline() {
        let now = Utc::now();
        for attempts in 1..=10 {
            match retry(&record(attempts, 3600), now, "slack_unavailable".into()) {
                AttemptOutcome::Retry { retry_at, .. } => {
                    let wait = (retry_at - now).to_std().unwrap();
                    let cap = RETRY_FIRST
                        .saturating_mul(1 << (attempts - 1))
                        .min(RETRY_MAX);
                    assert!(wait <= cap && wait >= cap / 2, "{attempts}: {wait:?}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            retry(&record(3, 1), now, "slack_unavailable".into()),
            AttemptOutcome::Failed {
                error: "slack_unavailable".into()
            },
            "a retry past the deadline is the end"
        );
    }
}
