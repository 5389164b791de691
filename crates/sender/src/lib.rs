//! Send a message through a connector from any Rust program.
//!
//! ```no_run
//! use connector_sender::{send_message, SenderConfig};
//!
//! # async fn demo() -> Result<(), connector_sender::Error> {
//! let config = SenderConfig::from_env()?; // CONNECTOR__DATABASE__URL, CONNECTOR__AWS__…, …
//! let sent = send_message(&config, "0192f5e4-8f4c-7a8e-9c3d-5b2a1e0f9d7c", "deploy finished").await?;
//! println!("{} {}", sent.channel, sent.ts);
//! # Ok(()) }
//! ```
//!
//! Programs that send many messages hold a [`Sender`] instead:
//!
//! ```no_run
//! use connector_sender::{Message, Sender, SenderConfig};
//!
//! # async fn demo(id: &str) -> Result<(), connector_sender::Error> {
//! let sender = Sender::connect(&SenderConfig::from_env()?).await?;
//! let first = sender.send(id, "build 1234 failed").await?;
//! sender
//!     .send_with(id, Message::from("log attached").in_thread(first.ts.clone()))
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! A send that may be retried (a job that can be rerun, a caller with a timeout) carries a
//! request ID, so it posts at most once per connector and ID within 24 hours, whichever
//! process or server sends it:
//!
//! ```no_run
//! use connector_sender::{Message, RequestId, SendError, Sender, SenderConfig};
//!
//! # async fn demo(id: &str) -> Result<(), connector_sender::Error> {
//! # let sender = Sender::connect(&SenderConfig::from_env()?).await?;
//! let key = RequestId::parse("request_id", "deploy-1234-started").map_err(SendError::from)?;
//! sender
//!     .send_with(id, Message::from("deploy 1234 started").with_request_id(key))
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # What a send does
//! It works with either storage mode of the server (the same `CONNECTOR__…` rules: a
//! `postgres://` URL means PostgreSQL and Secrets Manager, no URL means the embedded SQLite
//! file and local encrypted secrets under `CONNECTOR__DATA_DIR`). It reads the connector's row
//! (one primary-key lookup, so a deleted
//! connector stops sending at once), takes the bot token from a per-connector cache or from
//! Secrets Manager, and calls `chat.postMessage` on the connector's default channel. Slack's
//! 429 `Retry-After` is waited out and transient failures are retried with backoff, all within
//! `CONNECTOR__SLACK__DEADLINE_SECS` (30 s). Text longer than Slack's 40,000 characters is split: the
//! rest follows as replies in the message's thread. Files go through
//! `files.getUploadURLExternal`, the upload, and `files.completeUploadExternal`.
//!
//! # The cost of [`send_message`]
//! The first call with a given configuration (per tokio runtime) builds a [`Sender`]: it opens
//! a PostgreSQL connection, sets up the AWS and HTTP clients, reads the token from Secrets
//! Manager. Later calls with an identical configuration on the same runtime reuse that
//! `Sender` (its pool, its clients, its token cache), so calling `send_message` in a loop is
//! not a trap. Senders are never shared across runtimes, whose connections would die with
//! them. `docs/performance.md` has measured figures.
//!
//! # Must never
//! Print, log or return a token; send through a connector that no longer exists.

mod config;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use secrecy::{ExposeSecret as _, SecretString};

use connector_app::{AppError, Migrate, Services};
use connector_domain::{ConnectorId, TenantId};
use connector_usecases::{Dependency, MessageSender};

pub use config::SenderConfig;
pub use connector_domain::{
    ChannelId, ChannelRef, FileAttachment, Message, MessageEdit, RequestId,
};
pub use connector_usecases::{SendError, SentMessage};

/// Why sending failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is incomplete or invalid; `key` names the setting.
    #[error("configuration: {key}: {reason}")]
    Config {
        /// The setting, e.g. `database.url (CONNECTOR__DATABASE__URL)`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The send itself failed; match on [`SendError`] to act on it.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// A connection to the connector stores and Slack, reusable for many sends; cheap to clone
/// (clones share the pool, the clients and the token cache).
#[derive(Debug, Clone)]
pub struct Sender {
    inner: MessageSender,
    tenant: Option<TenantId>,
}

impl Sender {
    /// Checks the configuration, connects to the database (checking one connection) and
    /// prepares the secret store and Slack clients: the server's own wiring, without its
    /// migrations (the server owns the schema).
    pub async fn connect(config: &SenderConfig) -> Result<Self, Error> {
        let core = config.parse()?;
        let tenant = core.sender_tenant.clone();
        let services = Services::open(&core, Migrate::Skip)
            .await
            .map_err(|e| match e {
                AppError::Config(e) => config::config_error(e),
                AppError::Open(detail) => Error::Send(SendError::Unavailable {
                    dependency: Dependency::Database,
                    detail,
                }),
            })?;
        Ok(Self {
            inner: services.sender,
            tenant,
        })
    }

    /// Posts `text` to the default channel of connector `connector_id`.
    pub async fn send(
        &self,
        connector_id: &str,
        text: impl Into<String>,
    ) -> Result<SentMessage, Error> {
        self.send_with(connector_id, Message::from(text.into()))
            .await
    }

    /// Posts `message` (thread reply, broadcast, Block Kit blocks, files) to the default
    /// channel of connector `connector_id` (or the channel it names). A send with a request ID
    /// runs to its end on the runtime even if this future is dropped, so it is always
    /// recorded; one without runs in this future (dropping it cancels it, which records
    /// nothing, and saves a task and a wake-up on every send).
    pub async fn send_with(
        &self,
        connector_id: &str,
        message: Message,
    ) -> Result<SentMessage, Error> {
        let id = ConnectorId::parse("connector_id", connector_id).map_err(SendError::from)?;
        let sent = self
            .inner
            .send_owned(self.tenant.as_ref(), id, message)
            .await;
        // A library send answers once its message is recorded as this connector's, so that
        // the program may end (or another process change it) right after.
        self.inner.flush_posted().await;
        sent.map_err(Error::from)
    }

    /// Replaces the text (and blocks) of a message connector `connector_id` posted: the
    /// "deploy started… deploy finished" pattern. `edit` names the message by the channel and
    /// `ts` a send answered.
    pub async fn update(
        &self,
        connector_id: &str,
        edit: MessageEdit,
    ) -> Result<SentMessage, Error> {
        let id = ConnectorId::parse("connector_id", connector_id).map_err(SendError::from)?;
        self.inner
            .update_message(self.tenant.as_ref(), id, &edit)
            .await
            .map_err(Error::from)
    }

    /// Cancels a message connector `connector_id` scheduled ([`Message::post_at`]), by its
    /// channel and Slack's scheduled message ID.
    pub async fn cancel_scheduled(
        &self,
        connector_id: &str,
        channel_id: &str,
        scheduled_message_id: &str,
    ) -> Result<(), Error> {
        let id = ConnectorId::parse("connector_id", connector_id).map_err(SendError::from)?;
        self.inner
            .cancel_scheduled(
                self.tenant.as_ref(),
                id,
                &ChannelId::new(channel_id),
                scheduled_message_id,
            )
            .await
            .map_err(Error::from)
    }

    /// Deletes a message connector `connector_id` posted, by its channel and `ts`.
    pub async fn delete(
        &self,
        connector_id: &str,
        channel_id: &str,
        ts: &str,
    ) -> Result<(), Error> {
        let id = ConnectorId::parse("connector_id", connector_id).map_err(SendError::from)?;
        self.inner
            .delete_message(self.tenant.as_ref(), id, &ChannelId::new(channel_id), ts)
            .await
            .map_err(Error::from)
    }
}

/// Most cached senders kept; past it the cache starts over (entries of runtimes that have
/// ended are never used again, so this also bounds what they hold).
const MAX_CACHED_SENDERS: usize = 32;

/// Senders by runtime and configuration hash; each bucket holds the configurations whole, so
/// a hash collision can never hand out a sender of another configuration.
type Cache = HashMap<(tokio::runtime::Id, u64), Vec<(SecretString, Sender)>>;

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn cached(key: &(tokio::runtime::Id, u64), identity: &SecretString) -> Option<Sender> {
    cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(key)?
        .iter()
        .find(|(id, _)| id.expose_secret() == identity.expose_secret())
        .map(|(_, sender)| sender.clone())
}

/// Sends `message` through connector `connector_id`, configured by `config`.
///
/// The first call for a configuration on a tokio runtime connects (see the crate docs for the
/// cost); later identical calls on that runtime reuse the connection. Must be called from
/// within a tokio runtime.
pub async fn send_message(
    config: &SenderConfig,
    connector_id: &str,
    message: impl Into<Message>,
) -> Result<SentMessage, Error> {
    let identity = config.identity();
    // Formatted once a call: the identity both finds the bucket and confirms the entry.
    let key = (
        tokio::runtime::Handle::current().id(),
        config::fingerprint_of(&identity),
    );
    let sender = match cached(&key, &identity) {
        Some(sender) => sender,
        None => {
            let sender = Sender::connect(config).await?;
            let mut senders = cache().lock().unwrap_or_else(|p| p.into_inner());
            if senders.values().map(Vec::len).sum::<usize>() >= MAX_CACHED_SENDERS {
                senders.clear();
            }
            let bucket = senders.entry(key).or_default();
            match bucket
                .iter()
                .find(|(id, _)| id.expose_secret() == identity.expose_secret())
            {
                // Another task connected meanwhile: use its sender.
                Some((_, existing)) => existing.clone(),
                None => {
                    bucket.push((identity, sender.clone()));
                    sender
                }
            }
        }
    };
    sender.send_with(connector_id, message.into()).await
}

/// Forgets every cached [`Sender`] of [`send_message`], so the next call connects anew (for
/// benchmarks and tests of the cold path).
#[doc(hidden)]
pub fn clear_send_message_cache() {
    cache().lock().unwrap_or_else(|p| p.into_inner()).clear();
}

/// How many [`Sender`]s [`send_message`] holds.
#[doc(hidden)]
pub fn cached_sender_count() -> usize {
    cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .map(Vec::len)
        .sum()
}
