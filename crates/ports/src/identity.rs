//! The port for verifying bearer tokens an identity provider issued (JWTs, in practice).

use async_trait::async_trait;
use connector_domain::Principal;
use secrecy::SecretString;

/// Why a token did not yield a caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is refused; the reason says which check failed and never contains the token.
    #[error("{0}")]
    Rejected(String),
    /// The provider's keys cannot be had right now; retrying later may succeed.
    #[error("{0}")]
    Unavailable(String),
}

/// Verifies bearer tokens and says whom they stand for.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    /// The caller `token` stands for.
    async fn verify(&self, token: &SecretString) -> Result<Principal, TokenError>;
}
