//! The port for connector secrets (bot tokens).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_domain::{BotToken, ConnectorId, SecretName, SecretPrefix, TenantId};
use secrecy::{ExposeSecret as _, SecretString};

/// What one connector's secret holds. Adapters store it as a JSON object with `bot_token`,
/// and `refresh_token` and `expires_at` (Unix seconds) when the Slack app rotates tokens.
#[derive(Debug, Clone)]
pub struct ConnectorSecret {
    /// The Slack bot token.
    pub bot_token: BotToken,
    /// With Slack token rotation on: how to renew `bot_token`, and when it expires.
    pub rotation: Option<TokenRotation>,
}

/// A rotating token's refresh token and the expiry of the current access token.
#[derive(Debug, Clone)]
pub struct TokenRotation {
    /// The refresh token (`grant_type=refresh_token`).
    pub refresh_token: SecretString,
    /// When the bot token stops working.
    pub expires_at: DateTime<Utc>,
}

impl ConnectorSecret {
    /// A secret holding a non-rotating bot token.
    pub fn new(bot_token: BotToken) -> Self {
        Self {
            bot_token,
            rotation: None,
        }
    }

    /// The stored form every secret store uses:
    /// `{"bot_token": …, "refresh_token": …, "expires_at": UNIX_SECONDS}` (the last two only
    /// with rotation).
    pub fn to_json(&self) -> String {
        let value = StoredValue {
            bot_token: self.bot_token.expose().to_owned(),
            refresh_token: self
                .rotation
                .as_ref()
                .map(|r| r.refresh_token.expose_secret().to_owned()),
            expires_at: self.rotation.as_ref().map(|r| r.expires_at.timestamp()),
        };
        serde_json::to_string(&value).unwrap_or_default()
    }

    /// Parses [`ConnectorSecret::to_json`]'s form; `None` if it is not that. Never echoes the
    /// input.
    pub fn from_json(raw: &[u8]) -> Option<Self> {
        let value: StoredValue = serde_json::from_slice(raw).ok()?;
        let rotation = match (value.refresh_token, value.expires_at) {
            (Some(refresh), Some(at)) => Some(TokenRotation {
                refresh_token: SecretString::from(refresh),
                expires_at: DateTime::from_timestamp(at, 0)?,
            }),
            _ => None,
        };
        Some(Self {
            bot_token: BotToken::from_stored(SecretString::from(value.bot_token)),
            rotation,
        })
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredValue {
    bot_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_form_round_trips_with_and_without_rotation() {
        let plain = ConnectorSecret::new(BotToken::parse("t", "xoxb-1111-2222-plainjson").unwrap());
        assert_eq!(
            plain.to_json(),
            r#"{"bot_token":"xoxb-1111-2222-plainjson"}"#
        );
        let back = ConnectorSecret::from_json(plain.to_json().as_bytes()).unwrap();
        assert_eq!(back.bot_token.expose(), "xoxb-1111-2222-plainjson");
        assert!(back.rotation.is_none());

        let rotating = ConnectorSecret {
            bot_token: BotToken::parse("t", "xoxe.xoxb-1-rotatingtoken").unwrap(),
            rotation: Some(TokenRotation {
                refresh_token: SecretString::from("xoxe-1-refresh".to_owned()),
                expires_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            }),
        };
        let back = ConnectorSecret::from_json(rotating.to_json().as_bytes()).unwrap();
        let r = back.rotation.unwrap();
        assert_eq!(r.refresh_token.expose_secret(), "xoxe-1-refresh");
        assert_eq!(r.expires_at.timestamp(), 1_800_000_000);
        assert!(ConnectorSecret::from_json(b"{\"token\":1}").is_none());
    }
}

/// Non-secret labels stored beside a secret (as AWS tags), for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretLabels {
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The connector the secret belongs to.
    pub connector_id: ConnectorId,
}

/// A secret version staged and neither promoted nor discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedVersion {
    /// The connector's tenant.
    pub tenant_id: TenantId,
    /// The connector whose secret it is a version of.
    pub connector_id: ConnectorId,
    /// The version's ID, as [`SecretStore::stage`] answered it.
    pub version: String,
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

    /// Deletes the secret at once, with no recovery window, so the name is free again; staged
    /// versions go with it. Deleting a secret that does not exist succeeds.
    async fn delete(&self, name: &SecretName) -> Result<(), SecretStoreError>;

    /// Writes `secret` as a new version of the existing secret `name` without making it
    /// current: [`SecretStore::get`] still returns the old value until
    /// [`SecretStore::promote`]. Returns the version's ID. [`SecretStoreError::NotFound`] when
    /// there is no secret `name`.
    async fn stage(
        &self,
        name: &SecretName,
        secret: &ConnectorSecret,
    ) -> Result<String, SecretStoreError>;

    /// Makes staged `version` of `name` the current value, atomically (a reader sees the old
    /// value or the new one, never neither). `true` when it was promoted now; `false` when
    /// there is no such staged version (already promoted, or gone with the secret).
    async fn promote(&self, name: &SecretName, version: &str) -> Result<bool, SecretStoreError>;

    /// Removes staged `version` of `name`, never promoted (the update that staged it failed),
    /// so its token is not kept: `true` when it was removed now; `false` when there is no such
    /// staged version (promoted, already removed, or gone with the secret). The current
    /// version is never removed. The service discards only versions no row records, and
    /// promotes only versions a row records; a store that cannot delete one version (Secrets
    /// Manager) drops its staging label, so it is listed as staged no more and expires.
    async fn discard(&self, name: &SecretName, version: &str) -> Result<bool, SecretStoreError>;

    /// Up to `limit` versions staged before `staged_before` and still neither promoted nor
    /// discarded, of the secrets named under `prefix` (other names are not this service's).
    async fn staged_versions(
        &self,
        prefix: &SecretPrefix,
        staged_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StagedVersion>, SecretStoreError>;
}
