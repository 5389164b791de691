//! The port for pending OAuth installs: single-use states, stored by their hash.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_domain::{ConnectorName, TenantId, WorkspaceId};

use crate::repository::RepositoryError;

/// A connector waiting for its install to complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingInstall {
    /// The tenant that asked for the URL.
    pub tenant_id: TenantId,
    /// The connector to create.
    pub name: ConnectorName,
    /// Its default channel, as the caller gave it.
    pub default_channel: String,
    /// When the state stops being accepted.
    pub expires_at: DateTime<Utc>,
    /// The workspace the install must land in, when the caller pinned one.
    pub team_id: Option<WorkspaceId>,
    /// Hex SHA-256 of the nonce held by the browser that opened the link; `None` until one
    /// did.
    pub browser_hash: Option<String>,
}

/// Storage of pending installs, keyed by the SHA-256 (hex) of their state.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait OAuthStateStore: Send + Sync {
    /// Records a pending install.
    async fn save_state(
        &self,
        state_hash: &str,
        pending: &PendingInstall,
    ) -> Result<(), RepositoryError>;

    /// Removes and returns the pending install of `state_hash` (expired or not) if it is bound
    /// to the browser whose nonce hashes to `browser_hash`, atomically; `None` when there is
    /// none (never issued, already taken) or it is not that browser's, which leaves it as it
    /// is: a stranger or a link unfurler cannot burn the link.
    async fn take_state(
        &self,
        state_hash: &str,
        browser_hash: &str,
    ) -> Result<Option<PendingInstall>, RepositoryError>;

    /// Binds the unexpired, not yet bound pending install of `state_hash` to the browser
    /// holding the nonce whose hash is `browser_hash`, atomically: the first browser to open
    /// the link wins. Returns the install when bound, `None` otherwise.
    async fn bind_browser(
        &self,
        state_hash: &str,
        browser_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingInstall>, RepositoryError>;

    /// How many of the tenant's pending installs are still valid at `now`.
    async fn count_states(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<u64, RepositoryError>;

    /// Deletes pending installs that expired before `before`; returns how many.
    async fn purge_states(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError>;
}
