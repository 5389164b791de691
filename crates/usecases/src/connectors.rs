//! The connector use cases: create, get, list and delete.
//!
//! # Consistency between the two stores
//! The database row is the source of truth for whether a secret should exist:
//! - create writes the row as `creating`, then the secret, then flips the row to `active`;
//!   any failure after the row exists undoes the work (secret first, row last);
//! - delete flips the row to `deleting`, deletes the secret, then removes the row.
//!
//! So a secret never exists without a row, and a row that a crash left `creating` or
//! `deleting` is finished by the [`Reconciler`](crate::Reconciler) after a grace period.

use std::time::Duration;

use connector_domain::{
    BotToken, ChannelRef, Connector, ConnectorId, ConnectorName, ConnectorState, ConnectorStatus,
    PageSize, PageToken, RequestId, TenantId, ValidationError,
};

use connector_ports::{ChannelInfo, ConnectorSecret, NewConnector, RepositoryError, TokenRotation};

use crate::Ports;
use crate::channels::Lookup;
use crate::error::{ConnectorError, Dependency};
use crate::runtime::Sleep;

/// How much work resolving a channel name may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelLimits {
    /// `conversations.list` pages read at most (up to 1000 channels a page).
    pub max_pages: usize,
    /// The whole resolution's deadline, every page and retry included.
    pub deadline: Duration,
}

impl Default for ChannelLimits {
    fn default() -> Self {
        Self {
            max_pages: 100,
            deadline: Duration::from_secs(60),
        }
    }
}

/// A validated CreateConnector request.
#[derive(Debug, Clone)]
pub struct CreateConnector {
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The connector's name.
    pub name: ConnectorName,
    /// The bot token to validate and store.
    pub bot_token: BotToken,
    /// The default channel, by name or ID.
    pub default_channel: ChannelRef,
    /// The caller's idempotency key.
    pub request_id: Option<RequestId>,
    /// With Slack token rotation on (OAuth installs): the refresh token and expiry to keep.
    pub rotation: Option<TokenRotation>,
    /// The Slack app the token belongs to, when the caller knows it (an OAuth install:
    /// `oauth.v2.access` says); otherwise Slack is asked.
    pub app_id: Option<String>,
}

impl CreateConnector {
    /// Validates the raw request fields, naming the first bad one. Fields are checked in the
    /// order of the request message.
    pub fn parse(
        tenant_id: &str,
        name: &str,
        slack_bot_token: &str,
        default_channel: &str,
        request_id: &str,
    ) -> Result<Self, ValidationError> {
        Ok(Self {
            tenant_id: TenantId::parse("tenant_id", tenant_id)?,
            name: ConnectorName::parse("name", name)?,
            bot_token: BotToken::parse("slack_bot_token", slack_bot_token)?,
            default_channel: ChannelRef::parse("default_channel", default_channel)?,
            request_id: RequestId::parse_optional("request_id", request_id)?,
            rotation: None,
            app_id: None,
        })
    }
}

/// One page of connectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorPage {
    /// The connectors, in creation order.
    pub connectors: Vec<Connector>,
    /// Where the next page starts, if there is one.
    pub next: Option<PageToken>,
}

/// The connector use cases over their ports.
#[derive(Clone)]
pub struct ConnectorService {
    ports: Ports,
    channel_limits: ChannelLimits,
    sleep: Option<Sleep>,
    max_connectors_per_tenant: Option<u64>,
}

impl ConnectorService {
    /// Wires the use cases to their ports (channel resolution bounded by page count only).
    pub fn new(ports: Ports) -> Self {
        Self {
            ports,
            channel_limits: ChannelLimits::default(),
            sleep: None,
            max_connectors_per_tenant: None,
        }
    }

    /// The same service allowing each tenant at most `max` connectors (each is a secret in
    /// the store: Secrets Manager bills per secret and has a regional quota).
    pub fn with_connector_quota(mut self, max: u64) -> Self {
        self.max_connectors_per_tenant = Some(max);
        self
    }

    /// The same service with channel resolution bounded by `limits`, its deadline measured
    /// with `sleep`.
    pub fn with_channel_limits(mut self, limits: ChannelLimits, sleep: Sleep) -> Self {
        self.channel_limits = limits;
        self.sleep = Some(sleep);
        self
    }

    /// The ports this service works over.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// Creates a connector: validates the token with Slack, resolves the default channel,
    /// then writes the row and the secret (see the module docs for the order).
    ///
    /// With a `request_id`, a repeated call returns what the first call created.
    #[tracing::instrument(name = "usecase connectors.create", skip_all)]
    pub async fn create(&self, cmd: CreateConnector) -> Result<Connector, ConnectorError> {
        if let Some(request_id) = &cmd.request_id
            && let Some(existing) = self
                .ports
                .connectors
                .lifecycle
                .find_by_request_id(&cmd.tenant_id, request_id)
                .await?
        {
            return replay(existing, &cmd);
        }

        if let Some(max) = self.max_connectors_per_tenant
            && self
                .ports
                .connectors
                .lifecycle
                .count_connectors(&cmd.tenant_id)
                .await?
                >= max
        {
            return Err(ConnectorError::QuotaExceeded {
                subject: "connectors",
                description: format!(
                    "tenant {} has its {max} connectors already; delete one first",
                    cmd.tenant_id
                ),
            });
        }

        let identity = self
            .ports
            .slack
            .auth_test(&cmd.bot_token)
            .await
            .map_err(|e| ConnectorError::from_slack("slack_bot_token", e))?;
        let bot = crate::bots::identify(&self.ports, &cmd.bot_token, &identity, cmd.app_id.clone())
            .await
            .map_err(|e| ConnectorError::from_slack("slack_bot_token", e))?;
        let channel = self
            .resolve_channel_in_time(&cmd.bot_token, &cmd.default_channel)
            .await?;

        let new = NewConnector {
            id: ConnectorId::new_v7(),
            tenant_id: cmd.tenant_id.clone(),
            name: cmd.name.clone(),
            workspace_id: identity.team_id,
            default_channel_id: channel.id,
            default_channel_name: channel.name,
            request_id: cmd.request_id.clone(),
            token_expires_at: cmd.rotation.as_ref().map(|r| r.expires_at),
            bot: Some(bot),
        };
        let row = match self.ports.connectors.lifecycle.insert_creating(&new).await {
            Ok(row) => row,
            Err(RepositoryError::DuplicateName) => {
                return Err(ConnectorError::AlreadyExists {
                    name: cmd.name.to_string(),
                });
            }
            Err(RepositoryError::DuplicateRequestId) => {
                // A concurrent call with the same request_id won the race.
                let request_id = cmd
                    .request_id
                    .as_ref()
                    .ok_or_else(|| anyhow_internal("duplicate request_id without a request_id"))?;
                return match self
                    .ports
                    .connectors
                    .lifecycle
                    .find_by_request_id(&cmd.tenant_id, request_id)
                    .await?
                {
                    Some(existing) => replay(existing, &cmd),
                    None => Err(in_progress()),
                };
            }
            Err(e) => return Err(e.into()),
        };

        let secret_name = self.ports.secret_name(&row);
        let secret = ConnectorSecret {
            bot_token: cmd.bot_token.clone(),
            rotation: cmd.rotation.clone(),
        };
        let labels = Ports::secret_labels(&row);
        if let Err(e) = self.ports.secrets.put(&secret_name, &secret, &labels).await {
            self.undo_create(&row).await;
            return Err(e.into());
        }
        match self.ports.connectors.lifecycle.mark_active(row.id).await {
            Ok(Some(active)) => Ok(active),
            Ok(None) => {
                self.undo_create(&row).await;
                Err(ConnectorError::Aborted {
                    reason: "the create took too long and was rolled back by the reconciler; retry"
                        .into(),
                })
            }
            // The activation's answer was lost: it may have committed (a connection cut after
            // the commit). Undoing now could delete the secret of an active connector, so the
            // row is read back; unless it is active, both stay for the reconciler, which
            // finishes a `creating` row (secret first) once it is stale.
            Err(e) => match self.ports.connectors.queries.find_active(row.id).await {
                Ok(Some(active)) => Ok(active),
                _ => Err(e.into()),
            },
        }
    }

    /// Best-effort compensation of a failed create: the secret goes first, the row last, so
    /// that a failure here leaves a row for the reconciler to finish rather than an orphaned
    /// secret.
    async fn undo_create(&self, row: &Connector) {
        let name = self.ports.secret_name(row);
        if let Err(e) = self.ports.secrets.delete(&name).await {
            tracing::warn!(connector_id = %row.id, error = %e,
                "could not remove the secret of a failed create; the reconciler will");
            return;
        }
        if let Err(e) = self
            .ports
            .connectors
            .lifecycle
            .remove_creating(row.id)
            .await
        {
            tracing::warn!(connector_id = %row.id, error = %e,
                "could not remove the row of a failed create; the reconciler will");
        }
    }

    async fn resolve_channel_in_time(
        &self,
        token: &BotToken,
        channel: &ChannelRef,
    ) -> Result<ChannelInfo, ConnectorError> {
        let Some(sleep) = &self.sleep else {
            return self.resolve_channel(token, channel).await;
        };
        let deadline = self.channel_limits.deadline;
        match crate::runtime::within(sleep, deadline, self.resolve_channel(token, channel)).await {
            Some(resolved) => resolved,
            None => Err(ConnectorError::Unavailable {
                dependency: Dependency::Slack,
                detail: format!(
                    "resolving the default channel took longer than {} s",
                    deadline.as_secs()
                ),
            }),
        }
    }

    async fn resolve_channel(
        &self,
        token: &BotToken,
        channel: &ChannelRef,
    ) -> Result<ChannelInfo, ConnectorError> {
        let max_pages = self.channel_limits.max_pages;
        crate::channels::find(self.ports.slack.as_ref(), token, channel, max_pages)
            .await
            .map_err(|miss| match miss {
                Lookup::Slack(e) => ConnectorError::from_slack("default_channel", e),
                Lookup::Missing => channel_missing(channel),
                Lookup::BeyondPages { max_pages } => ConnectorError::FailedPrecondition {
                    field: Some("default_channel"),
                    reason: format!(
                        "channel {channel} is not among the first {max_pages} pages of channels the bot can see; give its ID (C…) instead of its name"
                    ),
                },
                Lookup::Archived => ConnectorError::FailedPrecondition {
                    field: Some("default_channel"),
                    reason: format!("channel {channel} is archived"),
                },
            })
    }

    /// The tenant's connector `id`.
    #[tracing::instrument(name = "usecase connectors.get", skip_all)]
    pub async fn get(
        &self,
        tenant: &TenantId,
        id: ConnectorId,
    ) -> Result<Connector, ConnectorError> {
        self.ports
            .connectors
            .queries
            .get_active(tenant, id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// One page of the tenant's connectors, oldest first; with `status`, only those in it.
    #[tracing::instrument(name = "usecase connectors.list", skip_all)]
    pub async fn list(
        &self,
        tenant: &TenantId,
        page_size: i32,
        page_token: &str,
        status: Option<ConnectorStatus>,
    ) -> Result<ConnectorPage, ConnectorError> {
        let size = PageSize::parse("page_size", page_size)?.get();
        let after = PageToken::decode("page_token", page_token, tenant)?.map(|t| t.after);
        let mut connectors = self
            .ports
            .connectors
            .queries
            .list_active(tenant, after, size + 1, status)
            .await?;
        let next = if connectors.len() > size as usize {
            connectors.truncate(size as usize);
            connectors.last().map(|c| PageToken { after: c.id })
        } else {
            None
        };
        Ok(ConnectorPage { connectors, next })
    }

    /// Deletes the tenant's connector `id`: its row and, at once, its secret.
    ///
    /// A delete interrupted after it began is resumed by calling it again (or finished by the
    /// reconciler); once finished, the connector is NOT_FOUND.
    #[tracing::instrument(name = "usecase connectors.delete", skip_all)]
    pub async fn delete(&self, tenant: &TenantId, id: ConnectorId) -> Result<(), ConnectorError> {
        let row = self
            .ports
            .connectors
            .lifecycle
            .mark_deleting(tenant, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let name = self.ports.secret_name(&row);
        // On failure the row stays `deleting`: the edge tells the caller how the delete ends.
        self.ports.secrets.delete(&name).await?;
        self.ports
            .connectors
            .lifecycle
            .remove_deleting(row.id)
            .await?;
        Ok(())
    }
}

fn replay(existing: Connector, cmd: &CreateConnector) -> Result<Connector, ConnectorError> {
    if existing.name != cmd.name {
        return Err(ValidationError::new(
            "request_id",
            format!(
                "was already used to create connector {:?}; use a new request_id for a different connector",
                existing.name.as_str()
            ),
        )
        .into());
    }
    match existing.state {
        ConnectorState::Active => Ok(existing),
        ConnectorState::Creating => Err(in_progress()),
        ConnectorState::Deleting => Err(ConnectorError::Aborted {
            reason: "the connector created with this request_id is being deleted".into(),
        }),
    }
}

fn in_progress() -> ConnectorError {
    ConnectorError::Aborted {
        reason: "a CreateConnector with this request_id is still in progress; retry shortly".into(),
    }
}

fn not_found(id: ConnectorId) -> ConnectorError {
    ConnectorError::NotFound { id: id.to_string() }
}

fn anyhow_internal(msg: &'static str) -> ConnectorError {
    ConnectorError::Internal(anyhow::anyhow!(msg))
}

fn channel_missing(channel: &ChannelRef) -> ConnectorError {
    ConnectorError::FailedPrecondition {
        field: Some("default_channel"),
        reason: format!(
            "channel {channel} does not exist, is archived, or the bot cannot see it \
             (invite the bot to private channels)"
        ),
    }
}

mod update;
pub use update::{UPDATABLE_FIELDS, UpdateConnector, UpdateFields};

#[cfg(test)]
pub(crate) mod tests;
