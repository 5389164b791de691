//! The port for connector secrets (bot tokens).

use async_trait::async_trait;
use connector_domain::{BotToken, ConnectorId, SecretName, TenantId};

/// What one connector's secret holds. Adapters store it as a JSON object with at least
/// `bot_token`.
#[derive(Debug, Clone)]
pub struct ConnectorSecret {
    /// The Slack bot token.
    pub bot_token: BotToken,
}

/// Non-secret labels stored beside a secret (as AWS tags), for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretLabels {
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The connector the secret belongs to.
    pub connector_id: ConnectorId,
}

/// What can go wrong in a secret store. Messages never contain secret values.
#[derive(Debug, thiserror::Error)]
pub enum SecretStoreError {
    /// No secret has this name.
    #[error("the secret does not exist")]
    NotFound,
    /// The store could not be reached or timed out.
    #[error("the secret store is unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// A store of secrets, one per connector, addressed by [`SecretName`].
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Writes the secret under `name`, creating it or replacing its value.
    async fn put(
        &self,
        name: &SecretName,
        secret: &ConnectorSecret,
        labels: &SecretLabels,
    ) -> Result<(), SecretStoreError>;

    /// Reads the secret stored under `name`.
    async fn get(&self, name: &SecretName) -> Result<ConnectorSecret, SecretStoreError>;

    /// Deletes the secret at once, with no recovery window, so the name is free again.
    /// Deleting a secret that does not exist succeeds.
    async fn delete(&self, name: &SecretName) -> Result<(), SecretStoreError>;
}
