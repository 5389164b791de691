//! The port for static API keys: stored only as the hash of their secret.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_domain::{ApiKeyId, Scopes, TenantGrant};

use crate::repository::RepositoryError;

/// A stored API key. The key itself is never stored: only the SHA-256 of its secret part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The key's ID, the part of the key before its secret.
    pub id: ApiKeyId,
    /// SHA-256 of the key's secret part, lowercase hex.
    pub secret_hash: String,
    /// The tenants the key acts for.
    pub tenants: TenantGrant,
    /// What the key may do.
    pub scopes: Scopes,
    /// A label for operators (`ci-deploys`, …).
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Storage of API keys, in the same database as the connectors.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores a new key.
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), RepositoryError>;

    /// The key with this ID, revoked or not.
    async fn find_api_key(&self, id: ApiKeyId) -> Result<Option<ApiKeyRecord>, RepositoryError>;

    /// Every key, oldest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, RepositoryError>;

    /// Revokes the key at `at`; `false` when there is no such key or it was already revoked.
    async fn revoke_api_key(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;

    /// Replaces the scopes of key `id` with `scopes`; `false` when there is no such key or it
    /// is revoked.
    async fn set_api_key_scopes(
        &self,
        id: ApiKeyId,
        scopes: Scopes,
    ) -> Result<bool, RepositoryError>;
}

/// The columns every store keeps for a key, and back: one mapping for every backend.
impl ApiKeyRecord {
    /// The `tenant_id` column: the tenant, or `None` for a key granted every tenant.
    pub fn tenant_column(&self) -> Option<&str> {
        match &self.tenants {
            TenantGrant::One(t) => Some(t.as_str()),
            TenantGrant::All => None,
        }
    }

    /// The `scopes` column: space-separated names.
    pub fn scopes_column(&self) -> String {
        self.scopes.to_string()
    }

    /// A record from its stored columns; a corrupt value is an error, never a panic.
    pub fn from_columns(
        id: ApiKeyId,
        secret_hash: String,
        tenant_id: Option<&str>,
        scopes: &str,
        name: String,
        created_at: DateTime<Utc>,
        revoked_at: Option<DateTime<Utc>>,
    ) -> Result<Self, RepositoryError> {
        let corrupt =
            |e: connector_domain::ValidationError| anyhow::anyhow!("corrupt API key {id}: {e}");
        let tenants = match tenant_id {
            Some(t) => TenantGrant::One(
                connector_domain::TenantId::parse("tenant_id", t).map_err(corrupt)?,
            ),
            None => TenantGrant::All,
        };
        Ok(Self {
            id,
            secret_hash,
            tenants,
            scopes: Scopes::parse_names("scopes", scopes.split_whitespace()).map_err(corrupt)?,
            name,
            created_at,
            revoked_at,
        })
    }
}
