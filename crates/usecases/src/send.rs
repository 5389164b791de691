//! Sending messages through a connector: the use case behind the `SendMessage` RPC and the
//! `sender` library.
//!
//! Every send reads the connector's row (one primary-key lookup), so a deleted connector stops
//! sending at once even while its token is cached. Tokens are cached per connector for a TTL;
//! a token Slack rejects is dropped from the cache, read again from the secret store, and the
//! send is retried once if the stored token changed. Text longer than Slack's 40,000-character
//! limit is split: the first part is the message, the rest are replies in its thread (or in
//! the thread the message itself replies to).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connector_domain::message::MAX_TEXT_CHARS;
use connector_domain::{
    AuthStatus, BotToken, ChannelId, Connector, ConnectorId, Message, SendLimits, TenantId,
    split_text,
};
use connector_ports::{OutgoingMessage, SlackError};

use crate::Ports;
use crate::error::SendError;
use crate::refresh::TokenRefresher;

/// A source of monotonic time, so cache expiry can be tested.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Instant;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Bot tokens by connector, each kept for a TTL.
pub struct TokenCache {
    ttl: Duration,
    clock: Arc<dyn Clock>,
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

    /// A cache keeping tokens for `ttl` (zero turns caching off).
    pub fn new(ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            ttl,
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectorId, (BotToken, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached token of `id`, unless missing or expired.
    pub fn get(&self, id: ConnectorId) -> Option<BotToken> {
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
        let ttl = self.ttl.min(limit);
        if ttl.is_zero() {
            return;
        }
        let now = self.clock.now();
        let mut entries = self.lock();
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

impl MessageSender {
    /// Wires the use case to its ports; `refresher` keeps rotating tokens fresh.
    pub fn new(ports: Ports, tokens: TokenCache, refresher: TokenRefresher) -> Self {
        Self {
            ports,
            limits: SendLimits::default(),
            in_flight: Arc::new(InFlight {
                limit: Self::DEFAULT_IN_FLIGHT_PER_CONNECTOR,
                counts: Mutex::new(HashMap::new()),
            }),
            tokens: Arc::new(tokens),
            refresher,
        }
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

    /// The token cache.
    pub fn token_cache(&self) -> &TokenCache {
        &self.tokens
    }

    /// Posts `message` to the default channel of connector `id`. With `tenant`, a connector of
    /// another tenant is [`SendError::ConnectorNotFound`].
    pub async fn send(
        &self,
        tenant: Option<&TenantId>,
        id: ConnectorId,
        message: &Message,
    ) -> Result<SentMessage, SendError> {
        message.validate()?;
        message.check_limits(&self.limits)?;
        let _slot = self
            .in_flight
            .take(id)
            .ok_or_else(|| SendError::TooManyInFlight {
                id: id.to_string(),
                limit: self.in_flight.limit,
            })?;
        let connector = match tenant {
            Some(tenant) => self.ports.repo.get_active(tenant, id).await?,
            None => self.ports.repo.find_active(id).await?,
        }
        .ok_or_else(|| SendError::ConnectorNotFound { id: id.to_string() })?;
        if connector.auth_status == AuthStatus::NeedsReauthorization {
            return Err(SendError::NeedsReauthorization { id: id.to_string() });
        }

        let (token, cached) = match self.tokens.get(id) {
            Some(token) => (token, true),
            None => (self.fetch_token(&connector).await?, false),
        };
        let channel = &connector.default_channel_id;
        match self.deliver(&token, channel, message).await {
            Ok(sent) => Ok(sent),
            Err(Failed {
                error: SlackError::InvalidAuth { code },
                sent: None,
            }) => {
                self.tokens.invalidate(id);
                if !cached {
                    return Err(SendError::TokenRevoked { code });
                }
                // The cached token may be stale (the secret was updated): try the stored one.
                let fresh = self.fetch_token(&connector).await?;
                if fresh.expose() == token.expose() {
                    self.tokens.invalidate(id);
                    return Err(SendError::TokenRevoked { code });
                }
                self.deliver(&fresh, channel, message).await.map_err(|f| {
                    if matches!(f.error, SlackError::InvalidAuth { .. }) {
                        self.tokens.invalidate(id);
                    }
                    failure(f, channel)
                })
            }
            Err(f) => {
                if matches!(f.error, SlackError::InvalidAuth { .. }) {
                    self.tokens.invalidate(id);
                }
                Err(failure(f, channel))
            }
        }
    }

    async fn fetch_token(&self, connector: &Connector) -> Result<BotToken, SendError> {
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
                (due - chrono::Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
            }
            None => Duration::MAX,
        };
        self.tokens
            .insert_at_most(connector.id, secret.bot_token.clone(), limit);
        Ok(secret.bot_token)
    }

    async fn deliver(
        &self,
        token: &BotToken,
        channel: &ChannelId,
        message: &Message,
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
                },
            )
            .await
            .map_err(|error| Failed { error, sent: None })?;
        let mut sent = SentMessage {
            channel: first.channel,
            ts: first.ts,
            continuation_ts: Vec::new(),
            file_ids: Vec::new(),
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

fn failure(f: Failed, channel: &ChannelId) -> SendError {
    let error = SendError::from_slack(f.error, channel);
    match f.sent {
        None => error,
        Some(sent) => SendError::PartiallySent {
            sent,
            error: Box::new(error),
        },
    }
}

#[cfg(test)]
pub(crate) mod tests;
