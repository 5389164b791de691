//! The errors of the use cases, in terms callers act on, and the one place each port error
//! becomes one of them. Edges map these once more: to a gRPC status (`grpc-api`), an HTTP
//! page (the OAuth callback) or an exit code (`connector-send`).

use std::fmt;
use std::time::Duration;

use connector_domain::{ChannelId, ConnectorId, ValidationError};
use connector_ports::{RepositoryError, SecretStoreError, SlackError};

use crate::sent::SentMessage;

/// An outside system the core depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// Slack's Web API.
    Slack,
    /// The secret store (AWS Secrets Manager).
    SecretStore,
    /// The metadata database.
    Database,
    /// The identity provider that issues callers' tokens (its JWKS).
    IdentityProvider,
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Slack => "Slack",
            Self::SecretStore => "the secret store",
            Self::Database => "the database",
            Self::IdentityProvider => "the identity provider",
        })
    }
}

/// Why a use case failed, in terms a caller can act on. Messages name the field or the cause
/// and never contain a token.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// A request field is missing, too long or malformed.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Slack rejected the bot token given in the request.
    #[error("slack_bot_token: Slack rejected the token ({code})")]
    TokenRejected {
        /// Slack's error string, e.g. `invalid_auth`.
        code: String,
    },
    /// The request is well-formed but the world is not in a state that allows it (the channel
    /// does not exist or is archived, the bot lacks a scope, …).
    #[error("{}{reason}", field.map(|f| format!("{f}: ")).unwrap_or_default())]
    FailedPrecondition {
        /// The request field the problem is about, if any.
        field: Option<&'static str>,
        /// What is wrong and what would fix it.
        reason: String,
    },
    /// No such connector for this tenant.
    #[error("connector {id} not found")]
    NotFound {
        /// The ID that was asked for.
        id: String,
    },
    /// No such recorded message for this tenant.
    #[error("message {id} not found")]
    MessageNotFound {
        /// The ID that was asked for.
        id: String,
    },
    /// The tenant already has a connector with this name.
    #[error("name: a connector named {name:?} already exists for this tenant")]
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// A concurrent operation on the same connector or request is under way; retry.
    #[error("{reason}")]
    Aborted {
        /// What is under way.
        reason: String,
    },
    /// A dependency could not be reached or timed out; retrying later may succeed.
    #[error("{dependency} is unavailable: {detail}")]
    Unavailable {
        /// Which one.
        dependency: Dependency,
        /// What happened, without secrets.
        detail: String,
    },
    /// A replacement token is recorded but the secret store did not make it current yet; the
    /// old token keeps working until it does (the reconciler finishes it).
    #[error(
        "the update is recorded, and the new token takes effect once the secret store answers \
         again (the reconciler finishes it); the old token keeps working until then"
    )]
    TokenNotYetCurrent,
    /// Slack kept rate-limiting after the retry budget.
    #[error("Slack is rate-limiting this connector; retry later")]
    RateLimited {
        /// Slack's last `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// A position (a cursor) the service can no longer serve from: what followed it was
    /// purged.
    #[error("{field}: {reason}")]
    OutOfRange {
        /// The request field.
        field: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The tenant reached one of its quotas.
    #[error("{subject}: {description}")]
    QuotaExceeded {
        /// What is counted, e.g. `connectors`.
        subject: &'static str,
        /// The limit and what to do about it.
        description: String,
    },
    /// A bug or a broken invariant. Edges log it and answer with an opaque message.
    #[error(transparent)]
    Internal(anyhow::Error),
}

/// A repository failure is the database being unavailable, or a bug: the same for every
/// use-case error.
macro_rules! from_repository_error {
    ($($error:ty),*) => {$(
        impl From<RepositoryError> for $error {
            fn from(e: RepositoryError) -> Self {
                match e {
                    RepositoryError::Unavailable(detail) => Self::Unavailable {
                        dependency: Dependency::Database,
                        detail,
                    },
                    other => Self::Internal(anyhow::Error::new(other)),
                }
            }
        }
    )*};
}

from_repository_error!(ConnectorError, SendError);

impl From<SecretStoreError> for ConnectorError {
    fn from(e: SecretStoreError) -> Self {
        match e {
            SecretStoreError::Unavailable(detail) => Self::Unavailable {
                dependency: Dependency::SecretStore,
                detail,
            },
            other => Self::Internal(anyhow::Error::new(other)),
        }
    }
}

impl ConnectorError {
    /// A Slack failure while creating a connector; `field` is the request field it is about
    /// (the token's problems are always about `slack_bot_token`).
    pub fn from_slack(field: &'static str, e: SlackError) -> Self {
        match e {
            SlackError::InvalidAuth { code } => Self::TokenRejected { code },
            SlackError::MissingScope { needed } => Self::FailedPrecondition {
                field: Some("slack_bot_token"),
                reason: format!(
                    "the bot token lacks the OAuth scope {needed:?}; add it to the Slack app and reinstall"
                ),
            },
            SlackError::ChannelNotFound => Self::FailedPrecondition {
                field: Some(field),
                reason: "the channel does not exist or the bot cannot see it".into(),
            },
            SlackError::IsArchived => Self::FailedPrecondition {
                field: Some(field),
                reason: "the channel is archived".into(),
            },
            SlackError::NotInChannel => Self::FailedPrecondition {
                field: Some(field),
                reason: "the bot is not a member of the channel; invite it".into(),
            },
            SlackError::RateLimited { retry_after } => Self::RateLimited { retry_after },
            SlackError::Unavailable(detail) | SlackError::OutcomeUnknown(detail) => {
                Self::Unavailable {
                    dependency: Dependency::Slack,
                    detail,
                }
            }
            SlackError::Api { code } => Self::FailedPrecondition {
                field: None,
                reason: format!("Slack refused the request ({code})"),
            },
            SlackError::Unknown(e) => Self::Internal(e),
        }
    }
}

/// Why a send failed, in terms a caller can act on. Never carries a token.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The message (or the connector ID) is malformed; the field is named.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// No active connector has this ID (for this tenant): never created, or deleted.
    #[error("connector {id} not found")]
    ConnectorNotFound {
        /// The ID asked for.
        id: String,
    },
    /// The connector exists but its secret does not (it is being deleted).
    #[error("connector {id} has no stored token; it is probably being deleted")]
    SecretMissing {
        /// The connector.
        id: String,
    },
    /// Slack rejects the stored token (`token_revoked`, `invalid_auth`, …): reinstall the app
    /// or recreate the connector.
    #[error("Slack rejects the connector's stored token ({code})")]
    TokenRevoked {
        /// Slack's error string.
        code: String,
    },
    /// The token lacks a scope the send needs (`chat:write`, `files:write`).
    #[error("the connector's token lacks the OAuth scope {needed:?}")]
    MissingScope {
        /// The scope Slack named.
        needed: String,
    },
    /// Refreshing the connector's rotating token failed: reinstall the Slack app (a new OAuth
    /// install, or a new connector).
    #[error(
        "connector {id} needs re-authorisation: refreshing its Slack token failed; reinstall the Slack app"
    )]
    NeedsReauthorization {
        /// The connector.
        id: String,
    },
    /// Slack said the app was uninstalled from the connector's workspace, or its tokens
    /// revoked: its token is gone. Nothing is sent to Slack.
    #[error(
        "connector {id} is revoked: the Slack app was uninstalled from its workspace or its tokens revoked; reinstall the app and give the connector the new token (UpdateConnector)"
    )]
    ConnectorRevoked {
        /// The connector.
        id: String,
    },
    /// Slack said the default channel was archived or deleted, or the bot removed from it.
    /// Nothing is sent to Slack.
    #[error(
        "the default channel {channel} of connector {id} is unavailable (archived, deleted, or the bot was removed); unarchive it, invite the bot again, or point the connector at another channel (UpdateConnector)"
    )]
    DefaultChannelUnavailable {
        /// The connector.
        id: String,
        /// Its default channel.
        channel: String,
    },
    /// The message to change is not there (deleted, or never in that channel).
    #[error("no message {ts} in channel {channel}")]
    MessageNotFound {
        /// The channel.
        channel: String,
        /// The message's `ts`.
        ts: String,
    },
    /// Slack will not change this message (not the bot's, or too old to edit).
    #[error("Slack will not change this message ({code})")]
    MessageNotEditable {
        /// Slack's error string.
        code: String,
    },
    /// The bot is not a member of the default channel: invite it.
    #[error("the bot is not a member of channel {channel}; invite it")]
    NotInChannel {
        /// The channel.
        channel: String,
    },
    /// The default channel is archived.
    #[error("channel {channel} is archived")]
    ChannelArchived {
        /// The channel.
        channel: String,
    },
    /// The default channel no longer exists (or the bot cannot see it).
    #[error("channel {channel} does not exist or the bot cannot see it")]
    ChannelNotFound {
        /// The channel.
        channel: String,
    },
    /// Slack kept rate-limiting after the retry budget.
    #[error("Slack is rate-limiting this connector; retry later")]
    RateLimited {
        /// Slack's last `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Queued deliveries are using the channel's (or its workspace's) share of Slack's rate
    /// limit, and an immediate post would exceed it.
    #[error(
        "channel {channel} is at Slack's post rate with queued messages; retry in {} ms or send with DELIVERY_QUEUED",
        retry_after.as_millis()
    )]
    ChannelPaced {
        /// The channel.
        channel: String,
        /// When a post is allowed again.
        retry_after: Duration,
    },
    /// The connector already has as many sends in flight as it may; retry shortly.
    #[error("connector {id} already has {limit} sends in flight; retry shortly")]
    TooManyInFlight {
        /// The connector.
        id: String,
        /// Its limit.
        limit: usize,
    },
    /// Any other Slack error string (`invalid_blocks`, `msg_too_long`, …).
    #[error("Slack refused the message ({code})")]
    Slack {
        /// Slack's error string.
        code: String,
    },
    /// A dependency could not be reached or timed out.
    #[error("{dependency} is unavailable: {detail}")]
    Unavailable {
        /// Which one.
        dependency: Dependency,
        /// What happened.
        detail: String,
    },
    /// Slack's answer to the post was lost (timed out after the request was sent): the
    /// message may have been posted.
    #[error(
        "Slack's answer was lost ({detail}); the message may have been posted: check the channel before sending it again"
    )]
    OutcomeUnknown {
        /// What happened.
        detail: String,
    },
    /// A send with this `request_id` is still running (or its replica stopped moments ago);
    /// retry shortly for its result.
    #[error(
        "a send with request_id {request_id:?} is still in progress; retry shortly for its result"
    )]
    SendInProgress {
        /// The key.
        request_id: String,
    },
    /// An earlier send with this `request_id` may have been posted (Slack's answer was lost,
    /// or its replica stopped mid-send); it is not posted again.
    #[error(
        "an earlier send with request_id {request_id:?} may have been posted (its outcome is unknown), so it is not posted again; check the channel, and use a new request_id to post it"
    )]
    EarlierOutcomeUnknown {
        /// The key.
        request_id: String,
    },
    /// An earlier send with this `request_id` may have been posted (Slack's answer was lost);
    /// the channel's history can tell whether it landed after `retry_after`: the repeat is
    /// answered then (with that message, or by posting it once).
    #[error(
        "an earlier send with request_id {request_id:?} may have been posted (Slack's answer was lost); whether it landed can be checked in the channel's history in {} s: retry then with the same request_id (it is never posted twice)",
        retry_after.as_secs().max(1)
    )]
    EarlierOutcomeUnsettled {
        /// The key.
        request_id: String,
        /// When the history can tell.
        retry_after: std::time::Duration,
    },
    /// This `request_id` was used for a queued message that has not been posted (or never
    /// will be): an immediate send with it is not posted.
    #[error(
        "request_id {request_id:?} was used for queued message {message_id}, which is {status}; follow it with GetMessage, or use a new request_id"
    )]
    QueuedEarlier {
        /// The key.
        request_id: String,
        /// The queued message.
        message_id: String,
        /// Where it stands (upper case, as the API names it).
        status: String,
    },
    /// An earlier send with this `request_id` delivered only its first part; it is not
    /// posted again.
    #[error(
        "an earlier send with request_id {request_id:?} delivered only part of the message (first message ts {ts} in {channel}), so it is not posted again; use a new request_id to post it"
    )]
    EarlierPartiallySent {
        /// The key.
        request_id: String,
        /// Where the first part landed.
        channel: String,
        /// The first part's `ts`.
        ts: String,
    },
    /// This `request_id` was already used for a different message through this connector.
    #[error(
        "request_id: {request_id:?} was already used for a different message through this connector within the last 24 hours"
    )]
    RequestIdReused {
        /// The key.
        request_id: String,
    },
    /// Part of the message was delivered before `error`: `sent` says what landed.
    #[error("only part of the message was delivered: {error}")]
    PartiallySent {
        /// What landed.
        sent: Box<SentMessage>,
        /// Why the rest did not.
        error: Box<SendError>,
    },
    /// A bug or a broken invariant.
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl SendError {
    /// A secret-store failure while reading the token of connector `id`.
    pub fn from_store(e: SecretStoreError, id: ConnectorId) -> Self {
        match e {
            SecretStoreError::NotFound => Self::SecretMissing { id: id.to_string() },
            SecretStoreError::Unavailable(detail) => Self::Unavailable {
                dependency: Dependency::SecretStore,
                detail,
            },
            SecretStoreError::Unknown(e) => Self::Internal(e),
        }
    }

    /// A Slack failure while posting to `channel`.
    pub fn from_slack(e: SlackError, channel: &ChannelId) -> Self {
        let channel = channel.to_string();
        match e {
            SlackError::InvalidAuth { code } => Self::TokenRevoked { code },
            SlackError::MissingScope { needed } => Self::MissingScope { needed },
            SlackError::ChannelNotFound => Self::ChannelNotFound { channel },
            SlackError::NotInChannel => Self::NotInChannel { channel },
            SlackError::IsArchived => Self::ChannelArchived { channel },
            SlackError::RateLimited { retry_after } => Self::RateLimited { retry_after },
            SlackError::Unavailable(detail) => Self::Unavailable {
                dependency: Dependency::Slack,
                detail,
            },
            SlackError::OutcomeUnknown(detail) => Self::OutcomeUnknown { detail },
            SlackError::Api { code } => Self::Slack { code },
            SlackError::Unknown(e) => Self::Internal(e),
        }
    }
}

/// Why an install did not complete; each has its own page.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The state was never issued, was already used, or was tampered with.
    #[error(
        "this install link is not valid, was already used, or was started in another browser; ask for a new one"
    )]
    UnknownState,
    /// The state is older than its time to live.
    #[error("this install link has expired; ask for a new one")]
    ExpiredState,
    /// The install was started in another browser, or its link was opened in none: a
    /// forwarded or leaked link cannot complete an install.
    #[error(
        "this install link is not valid in this browser (it was started in another browser, or already used); start it again from your own"
    )]
    OtherBrowser,
    /// Slack installed the app in another workspace than the one pinned.
    #[error("the app was installed in another workspace than {expected}; install it in {expected}")]
    WrongWorkspace {
        /// The pinned workspace.
        expected: String,
    },
    /// The user declined the install on Slack's page.
    #[error("the installation was cancelled on Slack's page")]
    Denied,
    /// The callback had neither a code nor an error.
    #[error("Slack's redirect carried no authorization code")]
    MissingCode,
    /// Exchanging the code failed.
    #[error("Slack did not accept the authorization code: {0}")]
    Exchange(SlackError),
    /// The connector could not be created (channel missing, name taken, …).
    #[error(transparent)]
    Create(ConnectorError),
    /// The state store failed.
    #[error(transparent)]
    Store(ConnectorError),
}

impl InstallError {
    /// The word an install that ended this way is counted under (a bounded metric label).
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::UnknownState => "unknown_state",
            Self::ExpiredState => "expired_state",
            Self::OtherBrowser => "other_browser",
            Self::WrongWorkspace { .. } => "wrong_workspace",
            Self::Denied => "denied",
            Self::MissingCode => "missing_code",
            Self::Exchange(_) => "exchange_failed",
            Self::Create(_) => "create_failed",
            Self::Store(_) => "store_failed",
        }
    }
}

/// A short random ID tying a client-facing message to the log line with the details.
pub fn incident_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

/// Logs a bug as one readable line (the cause chain, no Debug forms) under `incident`; its
/// backtrace, when one was captured, only at debug level.
pub fn log_internal(incident: &str, what: &str, e: &anyhow::Error) {
    tracing::error!(%incident, error = %cause_line(e), "{what}");
    if tracing::enabled!(tracing::Level::DEBUG) {
        tracing::debug!(%incident, backtrace = %e.backtrace(), "{what}: backtrace");
    }
}

/// `e` and its causes, outermost first, on one line (anyhow's alternate form has no Debug
/// forms and no backtrace).
fn cause_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_is_logged_as_its_cause_chain_on_one_line() {
        let e = anyhow::anyhow!("connection reset by peer").context("reading the connector row");
        let line = cause_line(&e);
        assert_eq!(line, "reading the connector row: connection reset by peer");
        assert!(!line.contains('\n'));
    }
}
