//! UpdateConnector: rename, another default channel, a replacement bot token.
//!
//! # A token replacement never leaves a connector without a working token
//! 1. the new token is checked with Slack (`auth.test`) and must belong to the connector's
//!    workspace;
//! 2. it is written as a new, *staged* version of the connector's secret: readers still get
//!    the old token;
//! 3. the row is updated (conditional on the generation read in step 0), recording the staged
//!    version as pending: this is the commit point;
//! 4. the secret store makes the staged version current (one atomic step);
//! 5. the row forgets the pending version (which also tells every replica's caches again).
//!
//! Stopped after 2, the old token stays current and the staged version is never used. Stopped
//! after 3, the old token keeps working until the [`Reconciler`](crate::Reconciler) promotes
//! the recorded version (both tokens belong to the same workspace). Nothing in between leaves
//! no token.

use connector_domain::{
    AuthStatus, BotToken, ChannelRef, Connector, ConnectorId, ConnectorName, RequestId, SecretName,
    TenantId, ValidationError,
};
use connector_ports::{ConnectorSecret, ConnectorUpdate, RepositoryError};

use super::{ConnectorService, not_found};
use crate::Ports;
use crate::error::ConnectorError;

/// The fields an update mask may name.
pub const UPDATABLE_FIELDS: [&str; 3] = ["name", "default_channel", "slack_bot_token"];

/// A validated UpdateConnector request: the fields to change, and its conditions.
#[derive(Debug, Clone)]
pub struct UpdateConnector {
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The connector.
    pub id: ConnectorId,
    /// A new name.
    pub name: Option<ConnectorName>,
    /// A new default channel, by name or ID.
    pub default_channel: Option<ChannelRef>,
    /// A replacement bot token (same workspace).
    pub bot_token: Option<BotToken>,
    /// Apply only if the connector's etag is still this.
    pub etag: Option<String>,
    /// The caller's idempotency key: a retry of an applied update returns the connector.
    pub request_id: Option<RequestId>,
}

/// The raw request fields of an UpdateConnector.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpdateFields<'a> {
    /// `tenant_id`.
    pub tenant_id: &'a str,
    /// `id`.
    pub id: &'a str,
    /// `update_mask.paths`.
    pub update_mask: &'a [String],
    /// `name`.
    pub name: &'a str,
    /// `default_channel`.
    pub default_channel: &'a str,
    /// `slack_bot_token`.
    pub slack_bot_token: &'a str,
    /// `etag`.
    pub etag: &'a str,
    /// `request_id`.
    pub request_id: &'a str,
}

impl UpdateConnector {
    /// Validates the raw request, naming the first bad field. An empty mask means every field
    /// given a value (AIP-134); `*` means all of them; a field in the mask must be valid, and
    /// at least one field must be named.
    pub fn parse(raw: UpdateFields<'_>) -> Result<Self, ValidationError> {
        let tenant_id = TenantId::parse("tenant_id", raw.tenant_id)?;
        let id = ConnectorId::parse("id", raw.id)?;
        let mut named = [false; 3];
        if raw.update_mask.is_empty() {
            named = [
                !raw.name.is_empty(),
                !raw.default_channel.is_empty(),
                !raw.slack_bot_token.is_empty(),
            ];
        }
        for path in raw.update_mask {
            if path == "*" {
                named = [true; 3];
                continue;
            }
            let Some(i) = UPDATABLE_FIELDS.iter().position(|f| f == path) else {
                return Err(ValidationError::new(
                    "update_mask",
                    format!(
                        "{path:?} cannot be updated; the mask may name {}",
                        UPDATABLE_FIELDS.join(", ")
                    ),
                ));
            };
            named[i] = true;
        }
        if !named.contains(&true) {
            return Err(ValidationError::new(
                "update_mask",
                format!(
                    "names nothing to update; give one or more of {}",
                    UPDATABLE_FIELDS.join(", ")
                ),
            ));
        }
        Ok(Self {
            tenant_id,
            id,
            name: named[0]
                .then(|| ConnectorName::parse("name", raw.name))
                .transpose()?,
            default_channel: named[1]
                .then(|| ChannelRef::parse("default_channel", raw.default_channel))
                .transpose()?,
            bot_token: named[2]
                .then(|| BotToken::parse("slack_bot_token", raw.slack_bot_token))
                .transpose()?,
            etag: (!raw.etag.is_empty()).then(|| raw.etag.to_owned()),
            request_id: RequestId::parse_optional("request_id", raw.request_id)?,
        })
    }
}

impl ConnectorService {
    /// Updates the tenant's connector: see the module documentation for the order of a token
    /// replacement. A stale `etag`, or an update that raced another, is `Aborted`; a retry of
    /// an applied update (same `request_id`) returns the connector as it is.
    #[tracing::instrument(name = "usecase connectors.update", skip_all)]
    pub async fn update(&self, cmd: UpdateConnector) -> Result<Connector, ConnectorError> {
        let current = self
            .ports
            .connectors
            .queries
            .get_active(&cmd.tenant_id, cmd.id)
            .await?
            .ok_or_else(|| not_found(cmd.id))?;
        if cmd.request_id.is_some() && current.last_update_request_id == cmd.request_id {
            return Ok(current);
        }
        if let Some(etag) = &cmd.etag
            && *etag != current.etag()
        {
            return Err(stale(etag, &current));
        }

        let mut bot = None;
        if let Some(token) = &cmd.bot_token {
            let identity = self
                .ports
                .slack
                .auth_test(token)
                .await
                .map_err(|e| ConnectorError::from_slack("slack_bot_token", e))?;
            if identity.team_id != current.workspace_id {
                return Err(ConnectorError::FailedPrecondition {
                    field: Some("slack_bot_token"),
                    reason: format!(
                        "the token belongs to workspace {}, the connector to {}; create a new connector for another workspace",
                        identity.team_id, current.workspace_id
                    ),
                });
            }
            bot = Some(
                crate::bots::identify(&self.ports, token, &identity, None)
                    .await
                    .map_err(|e| ConnectorError::from_slack("slack_bot_token", e))?,
            );
        }
        let secret_name = self.ports.secret_name(&current);
        if current.auth_status == AuthStatus::Revoked
            && cmd.default_channel.is_some()
            && cmd.bot_token.is_none()
        {
            return Err(ConnectorError::FailedPrecondition {
                field: Some("slack_bot_token"),
                reason: "the connector is revoked (the Slack app was uninstalled or its tokens \
                         revoked): a new default channel needs a new token in the same update"
                    .into(),
            });
        }
        let default_channel = match &cmd.default_channel {
            None => None,
            Some(channel) => {
                let token = match &cmd.bot_token {
                    Some(new) => new.clone(),
                    None => self.ports.secrets.get(&secret_name).await?.bot_token,
                };
                let info = self.resolve_channel_in_time(&token, channel).await?;
                Some((info.id, info.name))
            }
        };
        // A revoked connector's secret was deleted: the new token is written outright (the row
        // still says revoked until it is updated, so nothing sends with it before).
        let staged_secret_version = match &cmd.bot_token {
            None => None,
            Some(token) if current.auth_status == AuthStatus::Revoked => {
                self.ports
                    .secrets
                    .put(
                        &secret_name,
                        &ConnectorSecret::new(token.clone()),
                        &Ports::secret_labels(&current),
                    )
                    .await?;
                None
            }
            Some(token) => Some(
                self.ports
                    .secrets
                    .stage(&secret_name, &ConnectorSecret::new(token.clone()))
                    .await?,
            ),
        };

        let update = ConnectorUpdate {
            name: cmd.name.clone(),
            default_channel,
            staged_secret_version: staged_secret_version.clone(),
            token_replaced: cmd.bot_token.is_some(),
            bot,
            request_id: cmd.request_id.clone(),
        };
        let updated = match self
            .ports
            .connectors
            .lifecycle
            .update_active(&cmd.tenant_id, cmd.id, current.generation, &update)
            .await
        {
            Ok(Some(updated)) => updated,
            Ok(None) => {
                // Deleted, or another update came first: the staged token will never be
                // promoted.
                self.discard_staged(&secret_name, staged_secret_version.as_deref())
                    .await;
                return match self
                    .ports
                    .connectors
                    .queries
                    .get_active(&cmd.tenant_id, cmd.id)
                    .await?
                {
                    None => Err(not_found(cmd.id)),
                    Some(now) => Err(ConnectorError::Aborted {
                        reason: format!(
                            "the connector changed while this update ran (etag now {}); read it again and retry",
                            now.etag()
                        ),
                    }),
                };
            }
            Err(RepositoryError::DuplicateName) => {
                self.discard_staged(&secret_name, staged_secret_version.as_deref())
                    .await;
                return Err(ConnectorError::AlreadyExists {
                    name: cmd.name.map(|n| n.to_string()).unwrap_or_default(),
                });
            }
            Err(e) => return Err(e.into()),
        };

        if let Some(version) = staged_secret_version {
            if let Err(e) = self.ports.secrets.promote(&secret_name, &version).await {
                tracing::warn!(connector_id = %cmd.id, error = %e,
                    "a replacement token is recorded but not yet current; the reconciler will finish it");
                return Err(ConnectorError::TokenNotYetCurrent);
            }
            if let Err(e) = self
                .ports
                .connectors
                .reconciliation
                .clear_pending_promotion(cmd.id, &version)
                .await
            {
                tracing::warn!(connector_id = %cmd.id, error = %e,
                    "could not clear a finished promotion; the reconciler will");
            }
        }
        Ok(updated)
    }
}

impl ConnectorService {
    /// Removes a token version an update staged and then did not record (the row was not
    /// changed, certainly): it would never be promoted, and a token is not kept for nothing.
    /// An update whose outcome is unknown (the database's answer was lost) keeps it: the row
    /// may name it, and the reconciler promotes it then. Best effort: a version left behind
    /// is never read.
    async fn discard_staged(&self, name: &SecretName, version: Option<&str>) {
        let Some(version) = version else { return };
        if let Err(e) = self.ports.secrets.discard(name, version).await {
            tracing::warn!(secret = %name, error = %e,
                "could not remove the token version a failed update staged");
        }
    }
}

fn stale(etag: &str, current: &Connector) -> ConnectorError {
    ConnectorError::Aborted {
        reason: format!(
            "etag {etag:?} is stale: the connector changed since it was read (etag now {}); read it again and retry",
            current.etag()
        ),
    }
}

#[cfg(test)]
mod tests;
