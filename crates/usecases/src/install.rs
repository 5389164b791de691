//! Slack's OAuth v2 install flow: `GetOAuthV2URL` hands out Slack's authorize URL with a
//! single-use state; the callback exchanges the code for a bot token and creates the connector
//! through the same use case as `CreateConnector`.
//!
//! The state is 256 random bits; only its SHA-256 is stored (with the tenant and the pending
//! connector's name and default channel), so any replica can verify it and a copy of the
//! table cannot forge a callback. Taking a state deletes it: a state works once.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use connector_domain::{
    ChannelRef, Connector, ConnectorName, RequestId, TenantId, ValidationError, WorkspaceId,
};
use connector_ports::{OAuthGrantRequest, OAuthStateStore, PendingInstall};
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};

use crate::connectors::{ConnectorService, CreateConnector};
use crate::error::{ConnectorError, InstallError};
use crate::refresh::rotation_from_grant;

/// The Slack app's OAuth settings.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// The app's client ID.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: SecretString,
    /// The public URL of `/slack/oauth/callback`.
    pub redirect_url: String,
    /// Slack's authorize page.
    pub authorize_url: String,
    /// Bot scopes to ask for, comma-separated.
    pub scopes: String,
    /// User scopes to ask for, comma-separated (usually none).
    pub user_scopes: String,
    /// How long a state is accepted.
    pub state_ttl: Duration,
    /// The public URL of the server's `/slack/install`, where an install starts in the
    /// user's browser (which it binds, then sends on to Slack).
    pub start_url: String,
}

/// The install flow's use cases.
#[derive(Clone)]
pub struct OAuthInstaller {
    states: Arc<dyn OAuthStateStore>,
    max_pending_per_tenant: Option<u64>,
    service: ConnectorService,
    config: Option<OAuthConfig>,
}

fn hash_state(state: &str) -> String {
    crate::hex(&Sha256::digest(state.as_bytes()))
}

impl OAuthInstaller {
    /// The flow over the state store and the connector use cases (whose Slack port it uses);
    /// `config` is `None` when the server has no Slack app settings.
    pub fn new(
        states: Arc<dyn OAuthStateStore>,
        service: ConnectorService,
        config: Option<OAuthConfig>,
    ) -> Self {
        Self {
            states,
            max_pending_per_tenant: None,
            service,
            config,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.service.ports().clock.utc()
    }

    /// The same flow allowing each tenant at most `max` install links waiting at once.
    pub fn with_pending_quota(mut self, max: u64) -> Self {
        self.max_pending_per_tenant = Some(max);
        self
    }

    fn config(&self) -> Result<&OAuthConfig, ConnectorError> {
        self.config
            .as_ref()
            .ok_or_else(|| ConnectorError::FailedPrecondition {
                field: None,
                reason: "the Slack OAuth flow is not configured on this server: set \
                     CONNECTOR__SLACK__CLIENT_ID, CONNECTOR__SLACK__CLIENT_SECRET and \
                     CONNECTOR__SLACK__REDIRECT_URL"
                    .into(),
            })
    }

    /// The URL that starts installing connector `name` of `tenant_id` in a browser, and when
    /// it expires. Opened, it binds the install to that browser ([`OAuthInstaller::begin`])
    /// and sends it on to Slack's authorize page. `team_id`, if not empty, pins the workspace
    /// the install must land in. The fields are validated as `CreateConnector`'s are.
    #[tracing::instrument(name = "usecase install.authorize_url", skip_all)]
    pub async fn authorize_url(
        &self,
        tenant_id: &TenantId,
        name: &str,
        default_channel: &str,
        team_id: &str,
    ) -> Result<(String, DateTime<Utc>), ConnectorError> {
        let name = ConnectorName::parse("name", name)?;
        ChannelRef::parse("default_channel", default_channel)?;
        let team_id = match team_id {
            "" => None,
            t if t.len() <= 32
                && t.starts_with(['T', 'E'])
                && t.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) =>
            {
                Some(WorkspaceId::new(t))
            }
            _ => {
                return Err(ValidationError::new(
                    "team_id",
                    "must be a Slack workspace ID such as T0123ABCD (or empty)",
                )
                .into());
            }
        };
        let config = self.config()?;
        if let Some(max) = self.max_pending_per_tenant
            && self.states.count_states(tenant_id, self.now()).await? >= max
        {
            return Err(ConnectorError::QuotaExceeded {
                subject: "pending installs",
                description: format!(
                    "tenant {tenant_id} has {max} install links waiting already; complete one or wait for them to expire"
                ),
            });
        }
        let ttl = chrono::Duration::from_std(config.state_ttl)
            .map_err(|e| ConnectorError::Internal(anyhow::Error::new(e)))?;
        let expires_at = self.now() + ttl;
        let state =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        self.states
            .save_state(
                &hash_state(&state),
                &PendingInstall {
                    tenant_id: tenant_id.clone(),
                    name,
                    default_channel: default_channel.to_owned(),
                    expires_at,
                    team_id,
                    browser_hash: None,
                },
            )
            .await?;
        let query = serde_urlencoded::to_string([("state", state.as_str())])
            .map_err(|e| ConnectorError::Internal(anyhow::Error::new(e)))?;
        Ok((format!("{}?{query}", config.start_url), expires_at))
    }

    /// Starts an install in the browser that opened its link: binds the install to a fresh
    /// nonce the caller keeps in that browser (a cookie), and returns Slack's authorize URL
    /// to send the browser on to, with the nonce. A link works in one browser only: opened
    /// again, elsewhere or after it expired, it is [`InstallError::UnknownState`].
    #[tracing::instrument(name = "usecase install.begin", skip_all)]
    pub async fn begin(&self, state: &str) -> Result<(String, SecretString), InstallError> {
        if state.is_empty() || state.len() > 128 {
            return Err(InstallError::UnknownState);
        }
        let config = self.config().map_err(InstallError::Store)?;
        let nonce =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let pending = self
            .states
            .bind_browser(&hash_state(state), &hash_state(&nonce), self.now())
            .await
            .map_err(|e| InstallError::Store(e.into()))?
            .ok_or(InstallError::UnknownState)?;
        let mut params = vec![
            ("client_id", config.client_id.as_str()),
            ("scope", config.scopes.as_str()),
            ("user_scope", config.user_scopes.as_str()),
            ("redirect_uri", config.redirect_url.as_str()),
            ("state", state),
        ];
        if let Some(team) = &pending.team_id {
            params.push(("team", team.as_str()));
        }
        let query = serde_urlencoded::to_string(params)
            .map_err(|e| InstallError::Store(ConnectorError::Internal(anyhow::Error::new(e))))?;
        let separator = if config.authorize_url.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok((
            format!("{}{separator}{query}", config.authorize_url),
            SecretString::from(nonce),
        ))
    }

    /// Completes an install from Slack's redirect: `code` on approval, `error` on refusal.
    /// The state is consumed whatever happens next.
    /// Counted in `connector_oauth_installs_total{outcome}`.
    #[tracing::instrument(name = "usecase install.complete", skip_all)]
    pub async fn complete(
        &self,
        state: &str,
        code: Option<&str>,
        error: Option<&str>,
        browser_nonce: Option<&str>,
    ) -> Result<Connector, InstallError> {
        let result = self.complete_inner(state, code, error, browser_nonce).await;
        let outcome = match &result {
            Ok(_) => "created",
            Err(e) => e.outcome(),
        };
        metrics::counter!("connector_oauth_installs_total", "outcome" => outcome).increment(1);
        result
    }

    async fn complete_inner(
        &self,
        state: &str,
        code: Option<&str>,
        error: Option<&str>,
        browser_nonce: Option<&str>,
    ) -> Result<Connector, InstallError> {
        if state.is_empty() || state.len() > 128 {
            return Err(InstallError::UnknownState);
        }
        // Only the browser that started the install may finish it, and the link is consumed
        // only by that browser: a leaked link is useless, and a stranger or an unfurler that
        // opens it does not burn it.
        let Some(nonce) = browser_nonce.filter(|n| !n.is_empty() && n.len() <= 128) else {
            return Err(InstallError::OtherBrowser);
        };
        let pending = self
            .states
            .take_state(&hash_state(state), &hash_state(nonce))
            .await
            .map_err(|e| InstallError::Store(e.into()))?
            .ok_or(InstallError::UnknownState)?;
        if pending.expires_at <= self.now() {
            return Err(InstallError::ExpiredState);
        }
        if error.is_some() {
            return Err(InstallError::Denied);
        }
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or(InstallError::MissingCode)?;
        let config = self.config().map_err(InstallError::Store)?;
        let grant = self
            .service
            .ports()
            .slack
            .oauth_access(
                &config.client_id,
                &config.client_secret,
                &OAuthGrantRequest::Code {
                    code: code.to_owned(),
                    redirect_uri: config.redirect_url.clone(),
                },
            )
            .await
            .map_err(InstallError::Exchange)?;
        if let Some(expected) = &pending.team_id
            && grant.team_id != *expected
        {
            return Err(InstallError::WrongWorkspace {
                expected: expected.to_string(),
            });
        }
        let cmd = CreateConnector {
            tenant_id: pending.tenant_id,
            name: pending.name,
            bot_token: grant.access_token,
            default_channel: ChannelRef::parse("default_channel", &pending.default_channel)
                .map_err(|e| InstallError::Create(e.into()))?,
            request_id: RequestId::parse_optional(
                "request_id",
                &format!("oauth-{}", &hash_state(state)[..32]),
            )
            .map_err(|e| InstallError::Create(e.into()))?,
            rotation: rotation_from_grant(grant.refresh_token, grant.expires_in, None, self.now()),
            app_id: grant.app_id,
        };
        self.service.create(cmd).await.map_err(InstallError::Create)
    }

    /// Deletes expired states; returns how many.
    #[tracing::instrument(name = "usecase install.purge_expired", skip_all)]
    pub async fn purge_expired(&self) -> Result<u64, ConnectorError> {
        Ok(self.states.purge_states(self.now()).await?)
    }
}

#[cfg(test)]
mod tests;
