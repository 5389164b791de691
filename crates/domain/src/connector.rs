//! The connector entity and its lifecycle.

use chrono::{DateTime, Utc};

use crate::channel::ChannelName;
use crate::ids::{ChannelId, ConnectorId, ConnectorName, RequestId, TenantId, WorkspaceId};

/// A named, tenant-owned link to one Slack workspace. Its bot token lives in the secret store
/// and is deliberately not part of this type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connector {
    /// Server-assigned ID.
    pub id: ConnectorId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// Unique per tenant.
    pub name: ConnectorName,
    /// The Slack team the token belongs to.
    pub workspace_id: WorkspaceId,
    /// The default channel's ID.
    pub default_channel_id: ChannelId,
    /// The default channel's name, without `#`.
    pub default_channel_name: ChannelName,
    /// Where the connector is in its lifecycle.
    pub state: ConnectorState,
    /// Whether its token works, or a person must reinstall the Slack app.
    pub auth_status: AuthStatus,
    /// Whether the default channel can be posted to: `false` once Slack said it was archived
    /// or deleted, or the bot was removed from it, until it is back or the connector is
    /// pointed elsewhere.
    pub default_channel_available: bool,
    /// When the connector was created.
    pub created_at: DateTime<Utc>,
    /// When the connector was last changed (a state change counts).
    pub updated_at: DateTime<Utc>,
    /// Moves by one with every UpdateConnector: the source of [`Connector::etag`].
    pub generation: i64,
    /// The `request_id` of the last UpdateConnector applied, so a retried update is answered
    /// with its result instead of being refused as stale.
    pub last_update_request_id: Option<RequestId>,
    /// Whose bot the token is, as Slack said when the token was given; `None` for connectors
    /// made before it was recorded, until it is learned again.
    pub bot: Option<BotIdentity>,
}

/// Whose bot a connector's token is: the Slack app and the bot user it acts as. Workspace
/// events (an uninstall, revoked tokens, channel changes) are acted on only for connectors
/// whose app sent them, and a `tokens_revoked` only for the bot users it names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BotIdentity {
    /// The bot's user ID (`U…`), from `auth.test`.
    pub bot_user_id: String,
    /// The Slack app's ID (`A…`), from `oauth.v2.access` or `bots.info`; `None` when Slack
    /// would not say (the token lacks `users:read`): such a connector is left alone by every
    /// workspace event, since it cannot be shown to belong to the app that sent it.
    pub app_id: Option<String>,
}

impl BotIdentity {
    /// Whether events of app `app_id` concern this bot.
    pub fn is_of_app(&self, app_id: &str) -> bool {
        self.app_id.as_deref() == Some(app_id)
    }
}

impl Connector {
    /// What a client sees of whether the connector can send, the most pressing first.
    pub fn status(&self) -> ConnectorStatus {
        match self.auth_status {
            AuthStatus::Revoked => ConnectorStatus::Revoked,
            AuthStatus::NeedsReauthorization => ConnectorStatus::NeedsReauthorization,
            AuthStatus::Ok if !self.default_channel_available => {
                ConnectorStatus::DefaultChannelUnavailable
            }
            AuthStatus::Ok => ConnectorStatus::Active,
        }
    }

    /// The opaque version tag a client sends back with an update to make it conditional on
    /// nothing having changed since it read the connector (`g` and the generation).
    pub fn etag(&self) -> String {
        format!("g{}", self.generation)
    }
}

/// Where a connector is in its lifecycle.
///
/// Creation writes the row as [`ConnectorState::Creating`] *before* the secret, and flips it to
/// [`ConnectorState::Active`] after; deletion flips it to [`ConnectorState::Deleting`] before
/// removing the secret, and removes the row last. A row that stays `Creating` or `Deleting`
/// past a grace period is finished by the reconciler. Only `Active` connectors are visible to
/// clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectorState {
    /// The row exists; the secret may or may not have been written yet.
    Creating,
    /// Row and secret both exist; the connector is usable.
    Active,
    /// Deletion has begun: the secret may or may not be gone; the row goes last.
    Deleting,
}

impl ConnectorState {
    /// The stable string stored in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Active => "active",
            Self::Deleting => "deleting",
        }
    }

    /// Parses a stored string.
    pub fn from_stored(value: &str) -> Option<Self> {
        match value {
            "creating" => Some(Self::Creating),
            "active" => Some(Self::Active),
            "deleting" => Some(Self::Deleting),
            _ => None,
        }
    }
}

/// Whether a connector's Slack token can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthStatus {
    /// The token works (or has not been found not to).
    Ok,
    /// Refreshing the rotating token failed: reinstall the Slack app (a new OAuth install or
    /// a new connector).
    NeedsReauthorization,
    /// Slack said the app was uninstalled from the workspace or its tokens revoked: the token
    /// is gone; a new one (UpdateConnector) brings the connector back.
    Revoked,
}

/// Whether a connector can send, as clients filter and see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectorStatus {
    /// It can send.
    Active,
    /// Refreshing its rotating token failed.
    NeedsReauthorization,
    /// The app was uninstalled or its tokens revoked.
    Revoked,
    /// Its default channel was archived or deleted, or the bot removed from it.
    DefaultChannelUnavailable,
}

impl AuthStatus {
    /// The stable string stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NeedsReauthorization => "needs_reauthorization",
            Self::Revoked => "revoked",
        }
    }

    /// Parses a stored string.
    pub fn from_stored(value: &str) -> Option<Self> {
        match value {
            "ok" => Some(Self::Ok),
            "needs_reauthorization" => Some(Self::NeedsReauthorization),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_stored_form() {
        for s in [
            ConnectorState::Creating,
            ConnectorState::Active,
            ConnectorState::Deleting,
        ] {
            assert_eq!(ConnectorState::from_stored(s.as_str()), Some(s));
        }
        assert_eq!(ConnectorState::from_stored("gone"), None);
    }
}
