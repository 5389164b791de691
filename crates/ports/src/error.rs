//! The one error type of the use cases, mapped once at each edge (gRPC status, CLI exit).

use std::fmt;
use std::time::Duration;

use connector_domain::ValidationError;

use crate::repository::RepositoryError;
use crate::secrets::SecretStoreError;

/// An outside system the core depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// Slack's Web API.
    Slack,
    /// The secret store (AWS Secrets Manager).
    SecretStore,
    /// The metadata database.
    Database,
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Slack => "Slack",
            Self::SecretStore => "the secret store",
            Self::Database => "the database",
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
    /// Slack kept rate-limiting after the retry budget.
    #[error("Slack is rate-limiting this connector; retry later")]
    RateLimited {
        /// Slack's last `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// A bug or a broken invariant. Edges log it and answer with an opaque message.
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl From<RepositoryError> for ConnectorError {
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
