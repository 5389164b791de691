//! Sending messages through a connector: the use case behind the `SendMessage` RPC and the
//! `sender` library.
//!
//! Every send reads the connector's row (one primary-key lookup), so a deleted connector stops
//! sending at once even while its token is cached. Tokens are cached per connector for a TTL;
//! a token Slack rejects is dropped from the cache, read again from the secret store, and the
//! send is retried once if the stored token changed. Text longer than Slack's 40,000-character
//! limit is split: the first part is the message, the rest are replies in its thread (or in
//! the thread the message itself replies to).
//!
//! A message with a `request_id` is sent at most once per connector and key within
//! [`IDEMPOTENCY_WINDOW`]: the key is claimed in the database before Slack is called and
//! finished with Slack's answer. A repeat gets the first result; a repeat while the first is
//! running waits for it (up to [`DUPLICATE_WAIT`]) or is told it is in progress; a repeat of a
//! send whose outcome is unknown (Slack's answer lost, a replica killed mid-send) is never
//! posted blindly: the first post carries its message ID in Slack's metadata, and the repeat
//! looks for it in the channel's history (`landing`), answering the message found or posting
//! it once when it is absent, refused when the history cannot be read. A claim whose send
//! certainly posted nothing is released, so a retry may post.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connector_domain::message::MAX_TEXT_CHARS;
use connector_domain::{
    AuthStatus, BotToken, ChannelId, ChannelName, ChannelRef, Connector, ConnectorId, Message,
    MessageId, SendLimits, TenantId, split_text,
};
use connector_ports::{
    OutgoingMessage, PostedRecord, SendKey, SendOutcome, SendRecord, SentMessageStore, SlackError,
};
use sha2::{Digest as _, Sha256};
use tracing::Instrument as _;

use crate::Ports;
use crate::coherence::{Coherence, Forget};
use crate::connectors::ChannelLimits;
use crate::error::SendError;
use crate::refresh::TokenRefresher;
use crate::runtime::{Clock, Sleep, Spawn};
use crate::sent::SentMessage;

/// How long a `request_id` keeps a send from being repeated.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a posted message can be changed (UpdateMessage, DeleteMessage) through the service:
/// the record that it is this connector's is kept this long.
pub const EDIT_WINDOW: Duration = Duration::from_secs(90 * 24 * 60 * 60);

/// How long a repeat waits for the first send with its key to finish.
pub const DUPLICATE_WAIT: Duration = Duration::from_secs(5);

/// How many times the outcome of a send is written while the database is unavailable, and
/// the first pause between tries (doubled each time: 0.2 + 0.4 + 0.8 + 1.6 s in all).
const RECORD_ATTEMPTS: u32 = 5;
const RECORD_RETRY_FIRST_WAIT: Duration = Duration::from_millis(200);

/// How often a waiting repeat looks at the first send's record.
const DUPLICATE_POLL: Duration = Duration::from_millis(50);

/// A send claimed longer ago than this and still unfinished belongs to a replica that stopped
/// mid-send: its outcome is unknown. (A send's Slack calls are bounded by the Slack deadline,
/// 30 s by default, per call.)
pub const IN_FLIGHT_ABANDONED_AFTER: Duration = Duration::from_secs(5 * 60);

/// `d` as a chrono duration (saturating: a configured duration too long for chrono is
/// forever).
fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Bot tokens by connector, each kept for a TTL, and dropped when the connector changes on any
/// replica (see [`Coherence`]).
pub struct TokenCache {
    ttl: Duration,
    clock: Arc<dyn Clock>,
    coherence: Arc<Coherence>,
    entries: Mutex<HashMap<ConnectorId, (BotToken, Instant)>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("ttl", &self.ttl)
            .field("entries", &self.len())
            .finish()
    }
}

impl TokenCache {
    /// More entries than this and expired ones are swept; if none were, the cache is emptied.
    pub const MAX_ENTRIES: usize = 10_000;

    /// A cache keeping tokens for `ttl` (zero turns caching off), coherent within this
    /// process only.
    pub fn new(ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            ttl,
            clock,
            coherence: Coherence::local(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The same cache, following `coherence`: it holds nothing while `coherence` is not live,
    /// and forgets a connector's token when it changes. (Registered by [`MessageSender::new`].)
    pub fn with_coherence(mut self, coherence: Arc<Coherence>) -> Self {
        self.coherence = coherence;
        self
    }

    /// The epoch to note before reading a token from the store, for
    /// [`TokenCache::insert_read_at`].
    pub fn epoch(&self) -> u64 {
        self.coherence.epoch()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectorId, (BotToken, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached token of `id`, unless missing or expired.
    pub fn get(&self, id: ConnectorId) -> Option<BotToken> {
        if !self.coherence.is_live() {
            return None;
        }
        let now = self.clock.now();
        let mut entries = self.lock();
        match entries.get(&id) {
            Some((token, expires)) if *expires > now => Some(token.clone()),
            Some(_) => {
                entries.remove(&id);
                None
            }
            None => None,
        }
    }

    /// Caches `token` for `id`.
    pub fn insert(&self, id: ConnectorId, token: BotToken) {
        self.insert_at_most(id, token, self.ttl);
    }

    /// Caches `token` for `id` for the TTL or `limit`, whichever is shorter (a rotating token
    /// must not be served past the moment it is due for refresh).
    pub fn insert_at_most(&self, id: ConnectorId, token: BotToken, limit: Duration) {
        self.insert_read_at(id, token, limit, self.epoch());
    }

    /// Like [`TokenCache::insert_at_most`] for a token read from the store when the epoch was
    /// `epoch`: not kept if the connector (or any) changed since.
    pub fn insert_read_at(&self, id: ConnectorId, token: BotToken, limit: Duration, epoch: u64) {
        let ttl = self.ttl.min(limit);
        if ttl.is_zero() {
            return;
        }
        let now = self.clock.now();
        let mut entries = self.lock();
        // Under the lock forgetting takes: a change after this check forgets what is kept.
        if !self.coherence.may_keep(epoch) {
            return;
        }
        if entries.len() >= Self::MAX_ENTRIES {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= Self::MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(id, (token, now + ttl));
    }

    /// Forgets the token of `id`.
    pub fn invalidate(&self, id: ConnectorId) {
        self.lock().remove(&id);
    }

    /// How many tokens are cached (expired ones included until next touched).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Forget for TokenCache {
    fn forget(&self, id: ConnectorId) {
        self.invalidate(id);
    }
    fn forget_all(&self) {
        self.lock().clear();
    }
}

/// How a scheduled send's ID is kept in the idempotency record's `ts`.
const SCHEDULED_PREFIX: &str = "scheduled:";

impl SentMessage {
    /// The `ts` an idempotency record keeps for this send.
    fn stored_ts(&self) -> String {
        match &self.scheduled_message_id {
            Some(id) => format!("{SCHEDULED_PREFIX}{id}"),
            None => self.ts.clone(),
        }
    }

    /// The send a record's channel and `ts` describe.
    fn from_stored(channel: ChannelId, ts: String) -> Self {
        let (ts, scheduled_message_id) = match ts.strip_prefix(SCHEDULED_PREFIX) {
            Some(id) => (String::new(), Some(id.to_owned())),
            None => (ts, None),
        };
        Self {
            channel,
            ts,
            continuation_ts: Vec::new(),
            file_ids: Vec::new(),
            scheduled_message_id,
            message_id: None,
        }
    }
}

/// Sends in flight per connector, each connector allowed at most `limit`.
#[derive(Debug)]
struct InFlight {
    limit: usize,
    counts: Mutex<HashMap<ConnectorId, usize>>,
}

/// One send's place among its connector's in-flight sends, given back when dropped (also
/// when the request is cancelled).
struct Slot<'a> {
    owner: &'a InFlight,
    id: ConnectorId,
}

impl InFlight {
    fn take(&self, id: ConnectorId) -> Option<Slot<'_>> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(id).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Slot { owner: self, id })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.id);
            }
        }
    }
}

/// Sends messages through connectors.
#[derive(Clone)]
pub struct MessageSender {
    ports: Ports,
    tokens: Arc<TokenCache>,
    refresher: TokenRefresher,
    limits: SendLimits,
    in_flight: Arc<InFlight>,
    sends: Arc<dyn SentMessageStore>,
    posted: posted::PostedLog,
    sleep: Sleep,
    spawn: Spawn,
    channels: Arc<ChannelIds>,
    send_deadline: Duration,
    queue: Option<queued::Queue>,
}

/// Channel IDs found by name for sends that name another channel, per connector, for
/// [`CHANNEL_ID_TTL`] (a renamed channel is looked up again after that, or at once when Slack
/// says the ID is gone).
#[derive(Default)]
struct ChannelIds {
    max_pages: usize,
    deadline: Duration,
    found: Mutex<HashMap<(ConnectorId, ChannelName), (ChannelId, Instant)>>,
}

/// How long a channel ID found by name is used without asking Slack again.
pub const CHANNEL_ID_TTL: Duration = Duration::from_secs(5 * 60);

impl ChannelIds {
    const MAX_ENTRIES: usize = 10_000;

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(ConnectorId, ChannelName), (ChannelId, Instant)>> {
        self.found.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: ConnectorId, name: &ChannelName) -> Option<ChannelId> {
        match self.lock().get(&(id, name.clone())) {
            Some((channel, at)) if at.elapsed() < CHANNEL_ID_TTL => Some(channel.clone()),
            _ => None,
        }
    }

    fn keep(&self, id: ConnectorId, name: &ChannelName, channel: &ChannelId) {
        let mut found = self.lock();
        if found.len() >= Self::MAX_ENTRIES {
            found.retain(|_, (_, at)| at.elapsed() < CHANNEL_ID_TTL);
            if found.len() >= Self::MAX_ENTRIES {
                found.clear();
            }
        }
        found.insert((id, name.clone()), (channel.clone(), Instant::now()));
    }

    fn forget(&self, id: ConnectorId, name: &ChannelName) {
        self.lock().remove(&(id, name.clone()));
    }
}

impl std::fmt::Debug for MessageSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageSender")
            .field("ports", &self.ports)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

/// A delivery that failed, and whether anything had landed before.
struct Failed {
    error: SlackError,
    sent: Option<SentMessage>,
}

/// What a failed Slack call says about the token it used.
pub(crate) trait Rejection {
    /// Slack rejected the token (it is dropped from the cache).
    fn rejects_token(&self) -> bool;
    /// ...and nothing landed, so the call may be made again with the stored token.
    fn may_retry(&self) -> bool;
}

impl Rejection for SlackError {
    fn rejects_token(&self) -> bool {
        matches!(self, SlackError::InvalidAuth { .. })
    }
    fn may_retry(&self) -> bool {
        self.rejects_token()
    }
}

impl Rejection for Failed {
    fn rejects_token(&self) -> bool {
        self.error.rejects_token()
    }
    fn may_retry(&self) -> bool {
        self.rejects_token() && self.sent.is_none()
    }
}

impl MessageSender {
    /// Wires the use case to its ports; `refresher` keeps rotating tokens fresh, `sends`
    /// records idempotent sends, `sleep` paces a repeat waiting for the first, `spawn` runs
    /// a send with a request ID on a task of its own.
    pub fn new(
        ports: Ports,
        tokens: TokenCache,
        refresher: TokenRefresher,
        sends: Arc<dyn SentMessageStore>,
        sleep: Sleep,
        spawn: Spawn,
    ) -> Self {
        let tokens = Arc::new(tokens);
        let forget: std::sync::Weak<dyn Forget> =
            Arc::downgrade(&tokens) as std::sync::Weak<dyn Forget>;
        tokens.coherence.register(forget);
        let defaults = ChannelLimits::default();
        let posted = posted::PostedLog::new(sends.clone(), spawn.clone(), ports.clock.clone());
        Self {
            ports,
            sends,
            posted,
            sleep,
            spawn,
            limits: SendLimits::default(),
            in_flight: Arc::new(InFlight {
                limit: Self::DEFAULT_IN_FLIGHT_PER_CONNECTOR,
                counts: Mutex::new(HashMap::new()),
            }),
            tokens,
            refresher,
            channels: Arc::new(ChannelIds {
                max_pages: defaults.max_pages,
                deadline: defaults.deadline,
                ..ChannelIds::default()
            }),
            send_deadline: Self::DEFAULT_SEND_DEADLINE,
            queue: None,
        }
    }

    /// The same sender finding a channel a send names within `limits` (pages read, time
    /// taken), as create does for a connector's default channel.
    pub fn with_channel_limits(mut self, limits: ChannelLimits) -> Self {
        self.channels = Arc::new(ChannelIds {
            max_pages: limits.max_pages.max(1),
            deadline: limits.deadline,
            ..ChannelIds::default()
        });
        self
    }

    /// How long a send with a request ID posts, unless told otherwise.
    pub const DEFAULT_SEND_DEADLINE: Duration = Duration::from_secs(120);

    /// The same sender giving a send with a request ID (which runs on a task of its own, past
    /// its caller's deadline) at most `deadline` to post; then its outcome is recorded as
    /// unknown, so the task, its connector slot and its claim never linger.
    pub fn with_send_deadline(mut self, deadline: Duration) -> Self {
        self.send_deadline = deadline;
        self
    }

    /// Sends in flight per connector unless told otherwise.
    pub const DEFAULT_IN_FLIGHT_PER_CONNECTOR: usize = 64;

    /// The same sender bounded by `limits` and by `max_in_flight_per_connector` concurrent
    /// sends per connector (more are refused at once, not queued).
    pub fn with_limits(mut self, limits: SendLimits, max_in_flight_per_connector: usize) -> Self {
        self.limits = limits;
        self.in_flight = Arc::new(InFlight {
            limit: max_in_flight_per_connector.max(1),
            counts: Mutex::new(HashMap::new()),
        });
        self
    }

    /// Waits (at most 5 s) until the records of every message posted so far are written:
    /// for a process about to end, whose queued records would otherwise be lost.
    pub async fn flush_posted(&self) {
        self.posted
            .flushed(&self.sleep, Duration::from_secs(5))
            .await;
    }

    /// The token cache.
    pub fn token_cache(&self) -> &TokenCache {
        &self.tokens
    }

    /// Posts `message` to the default channel of connector `id`. With `tenant`, a connector of
    /// another tenant is [`SendError::ConnectorNotFound`].
    ///
    /// A send with a request ID runs to its end on a task of its own even when the caller
    /// stops waiting (a client's deadline, a dropped future): its outcome is then recorded,
    /// and a retry with the same request ID gets it instead of finding a claim nobody will
    /// ever finish. One without records nothing, so it runs in the caller's future (a task
    /// and a cross-thread wake-up less per send); dropping it cancels it.
    #[tracing::instrument(name = "usecase messages.send", skip_all)]
    pub async fn send(
        &self,
        tenant: Option<&TenantId>,
        id: ConnectorId,
        message: &Message,
    ) -> Result<SentMessage, SendError> {
        if message.request_id.is_none() {
            return self.send_here(tenant, id, message).await;
        }
        self.send_keyed(tenant, id, message.clone()).await
    }

    /// Like [`MessageSender::send`], for a caller that owns `message`: a send with a request
    /// ID moves it to its task instead of copying it (attachments included).
    #[tracing::instrument(name = "usecase messages.send", skip_all)]
    pub async fn send_owned(
        &self,
        tenant: Option<&TenantId>,
        id: ConnectorId,
        message: Message,
    ) -> Result<SentMessage, SendError> {
        if message.request_id.is_none() {
            return self.send_here(tenant, id, &message).await;
        }
        self.send_keyed(tenant, id, message).await
    }

    /// A send with a request ID, on a task of its own, awaited.
    async fn send_keyed(
        &self,
        tenant: Option<&TenantId>,
        id: ConnectorId,
        message: Message,
    ) -> Result<SentMessage, SendError> {
        let (answer, answered) = futures::channel::oneshot::channel();
        let (this, tenant) = (self.clone(), tenant.cloned());
        (self.spawn)(Box::pin(
            async move {
                let _ = answer.send(this.send_here(tenant.as_ref(), id, &message).await);
            }
            .in_current_span(),
        ));
        answered.await.map_err(|_| {
            SendError::Internal(anyhow::anyhow!(
                "the send's task ended without an answer (it panicked)"
            ))
        })?
    }

    async fn send_here(
        &self,
        tenant: Option<&TenantId>,
        id: ConnectorId,
        message: &Message,
    ) -> Result<SentMessage, SendError> {
        message.validate()?;
        message.check_limits(&self.limits)?;
        message.check_schedule(self.ports.clock.utc())?;
        // Ownership first: another tenant's calls must not take this connector's slots.
        let connector = self.usable_connector(tenant, id).await?;
        let _slot = self
            .in_flight
            .take(id)
            .ok_or_else(|| SendError::TooManyInFlight {
                id: id.to_string(),
                limit: self.in_flight.limit,
            })?;
        if message.channel.is_none() && !connector.default_channel_available {
            return Err(SendError::DefaultChannelUnavailable {
                id: id.to_string(),
                channel: connector.default_channel_id.to_string(),
            });
        }

        let Some(request_id) = &message.request_id else {
            return self.post(&connector, message, None).await;
        };
        let key = SendKey {
            tenant_id: connector.tenant_id.clone(),
            connector_id: id,
            request_id: request_id.clone(),
        };
        let fingerprint = fingerprint(message);
        if let Some(answer) = self
            .queued_earlier(&connector, request_id, &fingerprint)
            .await?
        {
            return answer;
        }
        let now = self.ports.clock.utc();
        let expired_before =
            now - chrono::Duration::from_std(IDEMPOTENCY_WINDOW).unwrap_or_default();
        // The ID its post carries in Slack's metadata (and its record in the outbox), so that a
        // repeat after a lost answer can look for it in the channel's history. A scheduled
        // message is Slack's to post later: nothing to look for now.
        let message_id = message.post_at.is_none().then(MessageId::new_v7);
        if let Some(first) = self
            .sends
            .claim_send(&key, &fingerprint, message_id, now, expired_before)
            .await?
        {
            let repeat = self
                .repeat(&connector, &key, message, &fingerprint, first)
                .await?;
            return Ok(self.with_record_id(&connector, request_id, repeat).await);
        }
        self.post_claimed(&connector, &key, message, &fingerprint, now, message_id)
            .await
    }

    /// Posts `message`, whose `key` this call claimed at `claimed_at`, marked with
    /// `message_id`; records what happened.
    async fn post_claimed(
        &self,
        connector: &Connector,
        key: &SendKey,
        message: &Message,
        fingerprint: &str,
        claimed_at: chrono::DateTime<chrono::Utc>,
        message_id: Option<MessageId>,
    ) -> Result<SentMessage, SendError> {
        let id = connector.id;
        let mut result = self
            .post_within_deadline(connector, message, message_id)
            .await;
        // Recorded before the claim is finished, so a repeat that sees the outcome finds it.
        if let Some(message_id) = self
            .record_immediate(
                connector,
                message,
                fingerprint,
                claimed_at,
                message_id,
                &result,
            )
            .await
            && let Ok(sent) = &mut result
        {
            sent.message_id = Some(message_id);
        }
        let outcome = match &result {
            Ok(sent) => Some(SendOutcome::Sent {
                channel: sent.channel.clone(),
                ts: sent.stored_ts(),
            }),
            Err(SendError::PartiallySent { sent, .. }) => Some(SendOutcome::PartiallySent {
                channel: sent.channel.clone(),
                ts: sent.ts.clone(),
            }),
            Err(SendError::OutcomeUnknown { .. }) => Some(SendOutcome::Unknown),
            // Refused before anything was posted: a retry may post.
            Err(_) => None,
        };
        if let Err(e) = self.record(key, outcome.as_ref()).await {
            // The claim stays in flight: a repeat waits for it, and once it counts as
            // abandoned (IN_FLIGHT_ABANDONED_AFTER) settles it from the channel's history,
            // never posting twice. The caller still gets what Slack said.
            tracing::warn!(connector_id = %id, error = %e,
                "could not record the outcome of an idempotent send; repeats of its request_id will be refused");
        }
        result
    }

    /// Records what became of a claimed send (`None`: nothing was posted, so the claim is
    /// released), trying again while the database is briefly unavailable (a restart, a
    /// failover): both writes are idempotent, and a claim left in flight blocks the key.
    async fn record(
        &self,
        key: &SendKey,
        outcome: Option<&SendOutcome>,
    ) -> Result<(), connector_ports::RepositoryError> {
        let mut wait = RECORD_RETRY_FIRST_WAIT;
        let mut attempt = 1;
        loop {
            let result = match outcome {
                Some(outcome) => self.sends.finish_send(key, outcome).await,
                None => self.sends.release_send(key).await,
            };
            match result {
                Err(connector_ports::RepositoryError::Unavailable(_))
                    if attempt < RECORD_ATTEMPTS =>
                {
                    (self.sleep)(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Answers a repeat of an idempotent send from the first one's record, waiting a little
    /// while the first is still running; a first whose answer was lost is looked for in the
    /// channel's history ([`MessageSender::settle_earlier`]).
    async fn repeat(
        &self,
        connector: &Connector,
        key: &SendKey,
        message: &Message,
        fingerprint: &str,
        mut first: SendRecord,
    ) -> Result<SentMessage, SendError> {
        let request_id = key.request_id.as_str().to_owned();
        if first.fingerprint != fingerprint {
            return Err(SendError::RequestIdReused { request_id });
        }
        let waiting_since = Instant::now();
        loop {
            match first.outcome {
                SendOutcome::Sent { channel, ts } => {
                    return Ok(SentMessage::from_stored(channel, ts));
                }
                SendOutcome::PartiallySent { channel, ts } => {
                    return Err(SendError::EarlierPartiallySent {
                        request_id,
                        channel: channel.to_string(),
                        ts,
                    });
                }
                SendOutcome::Unknown => {
                    return self
                        .settle_earlier(connector, key, message, fingerprint, first)
                        .await;
                }
                SendOutcome::InFlight => {
                    let age = (self.ports.clock.utc() - first.created_at)
                        .to_std()
                        .unwrap_or_default();
                    if age >= IN_FLIGHT_ABANDONED_AFTER {
                        return self
                            .settle_earlier(connector, key, message, fingerprint, first)
                            .await;
                    }
                    if waiting_since.elapsed() >= DUPLICATE_WAIT {
                        return Err(SendError::SendInProgress { request_id });
                    }
                }
            }
            (self.sleep)(DUPLICATE_POLL).await;
            first = match self.sends.find_send(key).await? {
                Some(record) => record,
                // Released: the first send posted nothing. Not retried here, so the caller
                // sees one answer per call; its next retry claims the key.
                None => return Err(SendError::SendInProgress { request_id }),
            };
        }
    }

    /// The tenant's (or, without a tenant, any) active connector `id`, if its token can be
    /// used: a connector needing re-authorisation or revoked is refused without calling Slack.
    async fn usable_connector(
        &self,
        tenant: Option<&TenantId>,
        id: ConnectorId,
    ) -> Result<Connector, SendError> {
        let connector = match tenant {
            Some(tenant) => self.ports.connectors.queries.get_active(tenant, id).await?,
            None => self.ports.connectors.queries.find_active(id).await?,
        }
        .ok_or_else(|| SendError::ConnectorNotFound { id: id.to_string() })?;
        match connector.auth_status {
            AuthStatus::Ok => Ok(connector),
            AuthStatus::NeedsReauthorization => {
                Err(SendError::NeedsReauthorization { id: id.to_string() })
            }
            AuthStatus::Revoked => Err(SendError::ConnectorRevoked { id: id.to_string() }),
        }
    }

    /// Where `message` goes: the default channel, the ID it names, or the channel it names
    /// (found with `token`, remembered for [`CHANNEL_ID_TTL`]).
    async fn target_channel(
        &self,
        connector: &Connector,
        token: &BotToken,
        message: &Message,
    ) -> Result<ChannelId, SendError> {
        let name = match &message.channel {
            None => return Ok(connector.default_channel_id.clone()),
            Some(ChannelRef::Id(id)) => return Ok(id.clone()),
            Some(ChannelRef::Name(name)) => name,
        };
        if let Some(id) = self.channels.get(connector.id, name) {
            return Ok(id);
        }
        let shown = format!("#{name}");
        let wanted = ChannelRef::Name(name.clone());
        let finding = crate::channels::find(
            self.ports.slack.as_ref(),
            token,
            &wanted,
            self.channels.max_pages,
        );
        let found =
            match crate::runtime::within(&self.sleep, self.channels.deadline, finding).await {
                Some(found) => found,
                None => {
                    return Err(SendError::Unavailable {
                        dependency: crate::error::Dependency::Slack,
                        detail: format!(
                            "finding channel {shown} took longer than {} s",
                            self.channels.deadline.as_secs()
                        ),
                    });
                }
            }
            .map_err(|miss| match miss {
                crate::channels::Lookup::Slack(e) => {
                    SendError::from_slack(e, &ChannelId::new(&shown))
                }
                crate::channels::Lookup::Archived => SendError::ChannelArchived {
                    channel: shown.clone(),
                },
                crate::channels::Lookup::Missing | crate::channels::Lookup::BeyondPages { .. } => {
                    SendError::ChannelNotFound {
                        channel: shown.clone(),
                    }
                }
            })?;
        self.channels.keep(connector.id, name, &found.id);
        Ok(found.id)
    }

    /// Schedules `message` in `channel` for `at` (`chat.scheduleMessage`).
    async fn schedule(
        &self,
        connector: &Connector,
        channel: &ChannelId,
        message: &Message,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<SentMessage, SendError> {
        let outgoing = OutgoingMessage {
            channel: channel.clone(),
            text: message.text.clone(),
            thread_ts: message.thread_ts.clone(),
            reply_broadcast: message.reply_broadcast,
            blocks_json: message.blocks_json.clone(),
            unfurl_links: message.unfurl_links,
            unfurl_media: message.unfurl_media,
            metadata: None,
        };
        let slack = self.ports.slack.clone();
        let scheduled = self
            .with_token(connector, None, |token| {
                let (slack, outgoing) = (slack.clone(), &outgoing);
                async move {
                    slack
                        .schedule_message(&token, outgoing, at.timestamp())
                        .await
                }
            })
            .await?
            .map_err(|e| match e {
                SlackError::Api { code } if code == "time_in_past" || code == "time_too_far" => {
                    connector_domain::ValidationError::new(
                        "post_at",
                        format!("Slack refused the time ({code})"),
                    )
                    .into()
                }
                other => SendError::from_slack(other, channel),
            })?;
        Ok(SentMessage {
            channel: scheduled.channel,
            ts: String::new(),
            continuation_ts: Vec::new(),
            file_ids: Vec::new(),
            scheduled_message_id: Some(scheduled.scheduled_message_id),
            message_id: None,
        })
    }

    /// The connector's cached token, or its stored one; and whether it came from the cache.
    async fn token(&self, connector: &Connector) -> Result<(BotToken, bool), SendError> {
        match self.tokens.get(connector.id) {
            Some(token) => Ok((token, true)),
            None => Ok((self.fetch_token(connector).await?, false)),
        }
    }

    /// Calls Slack with the connector's token (`first`, or the cached or stored one), once
    /// more with the stored token when Slack rejects a cached one that has since changed. The
    /// outer error is the secret store's, the inner one the call's.
    pub(crate) async fn with_token<T, E, F, Fut>(
        &self,
        connector: &Connector,
        first: Option<(BotToken, bool)>,
        call: F,
    ) -> Result<Result<T, E>, SendError>
    where
        E: Rejection,
        F: Fn(BotToken) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let id = connector.id;
        let (token, cached) = match first {
            Some(first) => first,
            None => self.token(connector).await?,
        };
        let answer = call(token.clone()).await;
        let Some(may_retry) = answer
            .as_ref()
            .err()
            .filter(|e| e.rejects_token())
            .map(Rejection::may_retry)
        else {
            return Ok(answer);
        };
        self.tokens.invalidate(id);
        if !cached || !may_retry {
            return Ok(answer);
        }
        // The cached token may be stale (the secret was updated): try the stored one.
        let fresh = self.fetch_token(connector).await?;
        if fresh.expose() == token.expose() {
            self.tokens.invalidate(id);
            return Ok(answer);
        }
        let again = call(fresh).await;
        if again.as_ref().err().is_some_and(Rejection::rejects_token) {
            self.tokens.invalidate(id);
        }
        Ok(again)
    }

    /// Deletes the records of idempotent sends older than [`IDEMPOTENCY_WINDOW`], of posted
    /// messages older than [`EDIT_WINDOW`], and queued messages finished longer ago than the
    /// delivery retention; returns how many.
    #[tracing::instrument(name = "usecase messages.purge_expired", skip_all)]
    pub async fn purge_expired(&self) -> Result<u64, SendError> {
        let now = self.ports.clock.utc();
        let before = now - chrono::Duration::from_std(IDEMPOTENCY_WINDOW).unwrap_or_default();
        let sends = self.sends.purge_sends(before).await?;
        let posted = self
            .sends
            .purge_posted(now - chrono::Duration::from_std(EDIT_WINDOW).unwrap_or_default())
            .await?;
        let finished = match &self.queue {
            Some(q) => {
                q.outbox
                    .purge_finished(
                        now - chrono::Duration::from_std(q.settings.retention).unwrap_or_default(),
                    )
                    .await?
            }
            None => 0,
        };
        Ok(sends + posted + finished)
    }

    /// Posts `message` through `connector` with its cached (or stored) token, retrying once
    /// with the stored token when Slack rejects a cached one.
    /// [`MessageSender::post`], given at most the send deadline: past it, what was posted is
    /// unknown (a part, a file, or all of it may have landed), and it is said so.
    async fn post_within_deadline(
        &self,
        connector: &Connector,
        message: &Message,
        message_id: Option<MessageId>,
    ) -> Result<SentMessage, SendError> {
        match crate::runtime::within(
            &self.sleep,
            self.send_deadline,
            self.post(connector, message, message_id),
        )
        .await
        {
            Some(posted) => posted,
            None => {
                metrics::counter!("connector_send_deadline_exceeded_total").increment(1);
                Err(SendError::OutcomeUnknown {
                    detail: format!(
                        "the send did not finish within {} s (CONNECTOR__SENDER__SEND_DEADLINE_SECS)",
                        self.send_deadline.as_secs()
                    ),
                })
            }
        }
    }

    /// Posts `message` through `connector` (its first message marked with `message_id` in
    /// Slack's metadata), or schedules it.
    async fn post(
        &self,
        connector: &Connector,
        message: &Message,
        message_id: Option<MessageId>,
    ) -> Result<SentMessage, SendError> {
        let (token, cached) = self.token(connector).await?;
        let channel = &self.target_channel(connector, &token, message).await?;
        let result = match message.post_at {
            Some(at) => self.schedule(connector, channel, message, at).await,
            None => {
                self.pace_immediate(connector, channel, message).await?;
                self.with_token(connector, Some((token, cached)), |token| async move {
                    self.deliver(&token, channel, message, message_id).await
                })
                .await?
                .map_err(|f| {
                    if let (SlackError::ChannelNotFound, Some(ChannelRef::Name(name))) =
                        (&f.error, &message.channel)
                    {
                        // Remembered by name, gone since: found again next time.
                        self.channels.forget(connector.id, name);
                    }
                    failure(f, channel)
                })
            }
        };
        if let Err(SendError::RateLimited { retry_after }) = &result {
            self.pause_after_429(connector, channel, *retry_after).await;
        }
        match &result {
            Ok(sent) => self.remember_posted(connector, sent).await,
            Err(SendError::PartiallySent { sent, .. }) => {
                self.remember_posted(connector, sent).await;
            }
            Err(_) => {}
        }
        result
    }

    /// Records what `connector` posted (every part, or the scheduled message), so that only it
    /// may change it later: queued for the [`posted::PostedLog`], off the send's path. The post
    /// already happened: a failure to record is logged, never turned into a failed send (a
    /// retry would post twice); that message then cannot be changed through the service.
    async fn remember_posted(&self, connector: &Connector, sent: &SentMessage) {
        let record = |ts: &str| PostedRecord {
            tenant_id: connector.tenant_id.clone(),
            connector_id: connector.id,
            channel: sent.channel.clone(),
            ts: ts.to_owned(),
        };
        let posted: Vec<PostedRecord> = std::iter::once(sent.ts.as_str())
            .chain(sent.continuation_ts.iter().map(String::as_str))
            .chain(sent.scheduled_message_id.as_deref())
            .filter(|ts| !ts.is_empty())
            .map(record)
            .collect();
        self.posted.record(posted);
    }

    async fn fetch_token(&self, connector: &Connector) -> Result<BotToken, SendError> {
        let epoch = self.tokens.epoch();
        let secret = self
            .ports
            .secrets
            .get(&self.ports.secret_name(connector))
            .await
            .map_err(|e| SendError::from_store(e, connector.id))?;
        let secret = self.refresher.ensure_fresh(connector, secret).await?;
        let limit = match &secret.rotation {
            // Cache a rotating token only until it is due for refresh.
            Some(r) => {
                let due = r.expires_at
                    - chrono::Duration::from_std(self.refresher.settings().margin)
                        .unwrap_or_default();
                (due - self.ports.clock.utc())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
            }
            None => Duration::MAX,
        };
        self.tokens
            .insert_read_at(connector.id, secret.bot_token.clone(), limit, epoch);
        Ok(secret.bot_token)
    }

    async fn deliver(
        &self,
        token: &BotToken,
        channel: &ChannelId,
        message: &Message,
        message_id: Option<MessageId>,
    ) -> Result<SentMessage, Failed> {
        let parts = if message.blocks_json.is_some() {
            vec![message.text.as_str()]
        } else {
            split_text(&message.text, MAX_TEXT_CHARS)
        };
        let first = self
            .ports
            .slack
            .post_message(
                token,
                &OutgoingMessage {
                    channel: channel.clone(),
                    text: parts[0].to_owned(),
                    thread_ts: message.thread_ts.clone(),
                    reply_broadcast: message.reply_broadcast,
                    blocks_json: message.blocks_json.clone(),
                    unfurl_links: message.unfurl_links,
                    unfurl_media: message.unfurl_media,
                    metadata: message_id.map(landing::landing_metadata),
                },
            )
            .await
            .map_err(|error| Failed { error, sent: None })?;
        let mut sent = SentMessage {
            channel: first.channel,
            ts: first.ts,
            continuation_ts: Vec::new(),
            file_ids: Vec::new(),
            scheduled_message_id: None,
            message_id: None,
        };
        let thread = message.thread_ts.clone().unwrap_or_else(|| sent.ts.clone());
        for part in &parts[1..] {
            match self
                .ports
                .slack
                .post_message(
                    token,
                    &OutgoingMessage {
                        channel: channel.clone(),
                        text: (*part).to_owned(),
                        thread_ts: Some(thread.clone()),
                        reply_broadcast: false,
                        blocks_json: None,
                        unfurl_links: message.unfurl_links,
                        unfurl_media: message.unfurl_media,
                        metadata: None,
                    },
                )
                .await
            {
                Ok(posted) => sent.continuation_ts.push(posted.ts),
                Err(error) => {
                    return Err(Failed {
                        error,
                        sent: Some(sent),
                    });
                }
            }
        }
        for file in &message.files {
            match self
                .ports
                .slack
                .upload_file(token, channel, message.thread_ts.clone(), file)
                .await
            {
                Ok(uploaded) => sent.file_ids.push(uploaded.id),
                Err(error) => {
                    return Err(Failed {
                        error,
                        sent: Some(sent),
                    });
                }
            }
        }
        Ok(sent)
    }
}

/// How many `chat.postMessage` calls `message` makes (long text is split into replies).
pub(crate) fn posts_of(message: &Message) -> usize {
    if message.blocks_json.is_some() {
        1
    } else {
        split_text(&message.text, MAX_TEXT_CHARS).len()
    }
}

/// Hex SHA-256 of everything that makes `message` what it is (not its key): a key reused for
/// another message is refused.
fn fingerprint(message: &Message) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(message.text.as_bytes());
    field(message.thread_ts.as_deref().unwrap_or("").as_bytes());
    field(&[
        u8::from(message.reply_broadcast),
        u8::from(message.blocks_json.is_some()),
    ]);
    field(message.blocks_json.as_deref().unwrap_or("").as_bytes());
    let channel = match &message.channel {
        None => String::new(),
        Some(ChannelRef::Id(id)) => id.to_string(),
        Some(ChannelRef::Name(name)) => format!("#{name}"),
    };
    field(channel.as_bytes());
    let unfurl = |u: Option<bool>| u.map_or(2, u8::from);
    field(&[unfurl(message.unfurl_links), unfurl(message.unfurl_media)]);
    for file in &message.files {
        field(file.filename.as_bytes());
        field(file.title.as_deref().unwrap_or("").as_bytes());
        field(&Sha256::digest(&file.content));
    }
    crate::hex(&h.finalize())
}

fn failure(f: Failed, channel: &ChannelId) -> SendError {
    let error = SendError::from_slack(f.error, channel);
    match f.sent {
        None => error,
        Some(sent) => SendError::PartiallySent {
            sent: Box::new(sent),
            error: Box::new(error),
        },
    }
}

mod edits;
mod landing;
mod posted;
mod queued;

pub use queued::{DeliverySettings, DeliveryWorker, MESSAGE_STATUS_EVENT, MessagePage};

#[cfg(test)]
pub(crate) mod tests;
