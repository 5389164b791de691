//! Refreshing rotating Slack tokens before they expire, one replica at a time.
//!
//! A token due within the margin is refreshed by whoever takes the connector's lease in the
//! database (atomic across replicas): it re-reads the secret (another replica may just have
//! refreshed), calls `oauth.v2.access` with `grant_type=refresh_token`, stores the new token,
//! refresh token and expiry, and records the outcome. The others keep using the current token
//! while it is still valid, and only wait (polling the secret) when it has already expired.
//! A refused refresh marks the connector `NEEDS_REAUTHORIZATION`: a person must reinstall.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use connector_domain::{AuthStatus, Connector};
use connector_ports::{
    ConnectorSecret, OAuthGrantRequest, RefreshOutcome, SlackError, TokenRotation,
};
use secrecy::SecretString;

use crate::Ports;
use crate::error::{Dependency, SendError};

/// Waits; injected so that this crate needs no async runtime.
pub type Sleep = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The Slack app's credentials, which `oauth.v2.access` needs to refresh.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    /// The app's client ID.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: SecretString,
}

/// How refreshing behaves.
#[derive(Debug, Clone)]
pub struct RefreshSettings {
    /// Refresh tokens that expire within this margin.
    pub margin: Duration,
    /// How long one refresh may hold the lease.
    pub lease: Duration,
    /// How long a send waits for another replica's refresh of an expired token.
    pub wait: Duration,
    /// How often it looks meanwhile.
    pub poll: Duration,
}

impl Default for RefreshSettings {
    fn default() -> Self {
        Self {
            margin: Duration::from_secs(600),
            lease: Duration::from_secs(30),
            wait: Duration::from_secs(15),
            poll: Duration::from_millis(200),
        }
    }
}

/// What a background pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RefreshReport {
    /// Connectors whose token was refreshed.
    pub refreshed: usize,
    /// Connectors now marked as needing re-authorisation.
    pub failed: usize,
    /// Connectors skipped this pass (another replica refreshing, Slack unreachable, …).
    pub skipped: usize,
}

/// Refreshes rotating tokens.
#[derive(Clone)]
pub struct TokenRefresher {
    ports: Ports,
    app: Option<AppCredentials>,
    settings: RefreshSettings,
    sleep: Sleep,
}

impl std::fmt::Debug for TokenRefresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRefresher")
            .field("settings", &self.settings)
            .field("app", &self.app.as_ref().map(|a| &a.client_id))
            .finish_non_exhaustive()
    }
}

/// Slack's lifetime of a rotating token when a refresh answer does not say (12 hours).
const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 43_200;

/// Longest token lifetime believed; a larger `expires_in` is clamped so that no date
/// arithmetic can overflow.
const MAX_TOKEN_LIFETIME_SECS: u64 = 366 * 24 * 3600;

/// The [`TokenRotation`] an `oauth.v2.access` grant starts, the one place a grant becomes one.
///
/// On an install (`spent` is `None`) rotation is on only when Slack sent both a refresh token
/// and an expiry. On a refresh (`spent` is the refresh token just used) Slack always rotates:
/// a missing refresh token keeps the spent one, a missing expiry means Slack's 12 hours.
pub(crate) fn rotation_from_grant(
    refresh_token: Option<SecretString>,
    expires_in: Option<u64>,
    spent: Option<SecretString>,
) -> Option<TokenRotation> {
    let (refresh_token, secs) = match spent {
        None => (refresh_token?, expires_in?),
        Some(spent) => (
            refresh_token.unwrap_or(spent),
            expires_in.unwrap_or(DEFAULT_TOKEN_LIFETIME_SECS),
        ),
    };
    Some(TokenRotation {
        refresh_token,
        expires_at: expiry_after(secs),
    })
}

fn expiry_after(secs: u64) -> DateTime<Utc> {
    let secs = secs.min(MAX_TOKEN_LIFETIME_SECS) as i64;
    Utc::now() + chrono::Duration::seconds(secs)
}

impl TokenRefresher {
    /// A refresher over the ports; without `app` credentials rotating tokens cannot be
    /// refreshed (they are used until they expire).
    pub fn new(
        ports: Ports,
        app: Option<AppCredentials>,
        settings: RefreshSettings,
        sleep: Sleep,
    ) -> Self {
        Self {
            ports,
            app,
            settings,
            sleep,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &RefreshSettings {
        &self.settings
    }

    fn due(&self, rotation: &TokenRotation) -> bool {
        let margin = chrono::Duration::from_std(self.settings.margin).unwrap_or_default();
        rotation.expires_at - margin <= Utc::now()
    }

    fn expired(rotation: &TokenRotation) -> bool {
        rotation.expires_at <= Utc::now()
    }

    /// `secret`, or a fresher one when its token is due: refreshed here if this replica gets
    /// the lease, else the current one while it works, else whatever another replica stores.
    pub async fn ensure_fresh(
        &self,
        connector: &Connector,
        secret: ConnectorSecret,
    ) -> Result<ConnectorSecret, SendError> {
        if connector.auth_status == AuthStatus::NeedsReauthorization {
            return Err(SendError::NeedsReauthorization {
                id: connector.id.to_string(),
            });
        }
        let Some(rotation) = secret.rotation.clone() else {
            return Ok(secret);
        };
        if !self.due(&rotation) {
            return Ok(secret);
        }
        if self.app.is_none() {
            return if Self::expired(&rotation) {
                Err(SendError::TokenRevoked {
                    code: "token_expired (no Slack app credentials to refresh it)".into(),
                })
            } else {
                Ok(secret)
            };
        }
        if self
            .ports
            .repo
            .lease_token_refresh(connector.id, self.settings.lease)
            .await?
        {
            return self.refresh_holding_lease(connector, secret).await;
        }
        if !Self::expired(&rotation) {
            return Ok(secret);
        }
        self.wait_for_other_replica(connector).await
    }

    async fn refresh_holding_lease(
        &self,
        connector: &Connector,
        stale: ConnectorSecret,
    ) -> Result<ConnectorSecret, SendError> {
        let name = self.ports.secret_name(connector);
        let result = self.refresh_inner(connector, &name, stale).await;
        let outcome = match &result {
            Ok((_, outcome)) => *outcome,
            Err(SendError::NeedsReauthorization { .. }) => RefreshOutcome::Failed,
            Err(_) => RefreshOutcome::Abandoned,
        };
        if let Err(e) = self
            .ports
            .repo
            .finish_token_refresh(connector.id, outcome)
            .await
        {
            // The lease expires by itself; the token is stored either way.
            tracing::warn!(connector_id = %connector.id, error = %e, "could not record a token refresh");
        }
        result.map(|(secret, _)| secret)
    }

    async fn refresh_inner(
        &self,
        connector: &Connector,
        name: &connector_domain::SecretName,
        stale: ConnectorSecret,
    ) -> Result<(ConnectorSecret, RefreshOutcome), SendError> {
        // Another replica may have refreshed between our read and our lease.
        let current = self
            .ports
            .secrets
            .get(name)
            .await
            .map_err(|e| SendError::from_store(e, connector.id))?;
        let Some(rotation) = current.rotation.clone() else {
            return Ok((current, RefreshOutcome::Abandoned));
        };
        if !self.due(&rotation) {
            let expires_at = rotation.expires_at;
            return Ok((current, RefreshOutcome::Refreshed { expires_at }));
        }
        let app = self.app.as_ref().ok_or_else(|| SendError::TokenRevoked {
            code: "token_expired".into(),
        })?;
        let grant = match self
            .ports
            .slack
            .oauth_access(
                &app.client_id,
                &app.client_secret,
                &OAuthGrantRequest::Refresh {
                    refresh_token: rotation.refresh_token.clone(),
                },
            )
            .await
        {
            Ok(grant) => grant,
            Err(SlackError::InvalidAuth { code } | SlackError::Api { code }) => {
                tracing::warn!(connector_id = %connector.id, %code,
                    "Slack refused to refresh the token; the connector needs re-authorisation");
                return Err(SendError::NeedsReauthorization {
                    id: connector.id.to_string(),
                });
            }
            Err(e) => {
                // Slack unreachable: the current token, if it still works, is fine for now.
                if Self::expired(&rotation) {
                    return Err(match e {
                        SlackError::RateLimited { retry_after } => {
                            SendError::RateLimited { retry_after }
                        }
                        other => SendError::Unavailable {
                            dependency: Dependency::Slack,
                            detail: format!("refreshing the token: {other}"),
                        },
                    });
                }
                drop(stale);
                return Ok((current, RefreshOutcome::Abandoned));
            }
        };
        let fresh = ConnectorSecret {
            bot_token: grant.access_token,
            rotation: rotation_from_grant(
                grant.refresh_token,
                grant.expires_in,
                Some(rotation.refresh_token),
            ),
        };
        let labels = Ports::secret_labels(connector);
        // The old refresh token is spent: losing the new one would break the connector, so
        // insist a little before giving up.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.ports.secrets.put(name, &fresh, &labels).await {
                Ok(()) => break,
                Err(e) if attempt < 5 => {
                    tracing::warn!(connector_id = %connector.id, error = %e, attempt,
                        "storing a refreshed token failed; retrying");
                    (self.sleep)(Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => {
                    tracing::error!(connector_id = %connector.id, error = %e,
                        "a refreshed token could not be stored; the connector needs re-authorisation");
                    return Err(SendError::NeedsReauthorization {
                        id: connector.id.to_string(),
                    });
                }
            }
        }
        tracing::info!(connector_id = %connector.id, "token refreshed");
        let expires_at = fresh
            .rotation
            .as_ref()
            .map_or_else(Utc::now, |r| r.expires_at);
        Ok((fresh, RefreshOutcome::Refreshed { expires_at }))
    }

    async fn wait_for_other_replica(
        &self,
        connector: &Connector,
    ) -> Result<ConnectorSecret, SendError> {
        let name = self.ports.secret_name(connector);
        let mut waited = Duration::ZERO;
        while waited < self.settings.wait {
            (self.sleep)(self.settings.poll).await;
            waited += self.settings.poll;
            let current = self
                .ports
                .secrets
                .get(&name)
                .await
                .map_err(|e| SendError::from_store(e, connector.id))?;
            if current.rotation.as_ref().is_none_or(|r| !Self::expired(r)) {
                return Ok(current);
            }
        }
        Err(SendError::Unavailable {
            dependency: Dependency::Slack,
            detail: "the connector's token is being refreshed by another replica; retry".into(),
        })
    }

    /// Refreshes up to `limit` tokens that are due, without waiting for anyone.
    pub async fn refresh_due(&self, limit: u32) -> Result<RefreshReport, SendError> {
        let mut report = RefreshReport::default();
        if self.app.is_none() {
            return Ok(report);
        }
        let margin = chrono::Duration::from_std(self.settings.margin).unwrap_or_default();
        for connector in self
            .ports
            .repo
            .tokens_expiring(Utc::now() + margin, limit)
            .await?
        {
            if !self
                .ports
                .repo
                .lease_token_refresh(connector.id, self.settings.lease)
                .await?
            {
                report.skipped += 1;
                continue;
            }
            let name = self.ports.secret_name(&connector);
            let stale = match self.ports.secrets.get(&name).await {
                Ok(s) => s,
                Err(_) => {
                    let _ = self
                        .ports
                        .repo
                        .finish_token_refresh(connector.id, RefreshOutcome::Abandoned)
                        .await;
                    report.skipped += 1;
                    continue;
                }
            };
            match self.refresh_holding_lease(&connector, stale).await {
                Ok(_) => report.refreshed += 1,
                Err(SendError::NeedsReauthorization { .. }) => report.failed += 1,
                Err(_) => report.skipped += 1,
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use connector_domain::{BotToken, ConnectorState, WorkspaceId};
    use mockall::predicate::eq;

    use connector_ports::{MockConnectorRepository, MockSecretStore, MockSlackApi, OAuthGrant};

    use super::*;
    use crate::testing::{connector, ports, tokio_sleep};

    fn rotating(token: &str, refresh: &str, expires_in_secs: i64) -> ConnectorSecret {
        ConnectorSecret {
            bot_token: BotToken::parse("t", token).unwrap(),
            rotation: Some(TokenRotation {
                refresh_token: SecretString::from(refresh.to_owned()),
                expires_at: Utc::now() + chrono::Duration::seconds(expires_in_secs),
            }),
        }
    }

    fn refresher(
        repo: MockConnectorRepository,
        secrets: MockSecretStore,
        slack: MockSlackApi,
    ) -> TokenRefresher {
        TokenRefresher::new(
            ports(repo, secrets, slack),
            Some(AppCredentials {
                client_id: "111.222".into(),
                client_secret: SecretString::from("app-secret".to_owned()),
            }),
            RefreshSettings {
                poll: Duration::from_millis(5),
                wait: Duration::from_millis(200),
                ..RefreshSettings::default()
            },
            tokio_sleep(),
        )
    }

    const OLD: &str = "xoxe.xoxb-1-oldtoken000";
    const NEW: &str = "xoxe.xoxb-1-newtoken000";

    #[test]
    fn any_expires_in_from_slack_is_handled_without_overflow() {
        for secs in [0, 1, 43_200, u64::from(u32::MAX), i64::MAX as u64, u64::MAX] {
            let r = rotation_from_grant(Some(SecretString::from("r".to_owned())), Some(secs), None)
                .unwrap();
            assert!(
                r.expires_at <= Utc::now() + chrono::Duration::days(367),
                "{secs}"
            );
        }
        // A refresh without an expiry means Slack's 12 hours; without a new refresh token the
        // spent one is kept.
        let r =
            rotation_from_grant(None, None, Some(SecretString::from("spent".to_owned()))).unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&r.refresh_token),
            "spent"
        );
        assert!(r.expires_at > Utc::now() + chrono::Duration::hours(11));
        // An install without both is not rotating.
        assert!(rotation_from_grant(None, Some(60), None).is_none());
    }

    #[tokio::test]
    async fn a_token_not_yet_due_is_used_as_it_is() {
        let mut repo = MockConnectorRepository::new();
        repo.expect_lease_token_refresh().never();
        let mut slack = MockSlackApi::new();
        slack.expect_oauth_access().never();
        let r = refresher(repo, MockSecretStore::new(), slack);
        let c = connector("acme", "prod", ConnectorState::Active);
        let s = r.ensure_fresh(&c, rotating(OLD, "r1", 3600)).await.unwrap();
        assert_eq!(s.bot_token.expose(), OLD);
    }

    #[tokio::test]
    async fn the_lease_holder_refreshes_stores_and_records_the_new_token() {
        let c = connector("acme", "prod", ConnectorState::Active);
        let mut repo = MockConnectorRepository::new();
        repo.expect_lease_token_refresh()
            .with(eq(c.id), eq(Duration::from_secs(30)))
            .times(1)
            .returning(|_, _| Ok(true));
        repo.expect_finish_token_refresh()
            .withf(|_, o| matches!(o, RefreshOutcome::Refreshed { .. }))
            .times(1)
            .returning(|_, _| Ok(()));
        let mut secrets = MockSecretStore::new();
        secrets
            .expect_get()
            .times(1)
            .returning(|_| Ok(rotating(OLD, "r1", 60)));
        let stored = Arc::new(Mutex::new(None));
        let st = stored.clone();
        secrets.expect_put().times(1).returning(move |_, s, _| {
            *st.lock().unwrap() = Some(s.clone());
            Ok(())
        });
        let mut slack = MockSlackApi::new();
        slack
            .expect_oauth_access()
            .withf(|id, _, g| {
                id == "111.222"
                    && matches!(g, OAuthGrantRequest::Refresh { refresh_token }
                        if secrecy::ExposeSecret::expose_secret(refresh_token) == "r1")
            })
            .times(1)
            .returning(|_, _, _| {
                Ok(OAuthGrant {
                    access_token: BotToken::parse("t", NEW).unwrap(),
                    team_id: WorkspaceId::new("T1"),
                    refresh_token: Some(SecretString::from("r2".to_owned())),
                    expires_in: Some(43_200),
                })
            });
        let r = refresher(repo, secrets, slack);
        let s = r.ensure_fresh(&c, rotating(OLD, "r1", 60)).await.unwrap();
        assert_eq!(s.bot_token.expose(), NEW);
        let stored = stored.lock().unwrap().clone().unwrap();
        assert_eq!(stored.bot_token.expose(), NEW);
        let rot = stored.rotation.unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&rot.refresh_token),
            "r2"
        );
        assert!(rot.expires_at > Utc::now() + chrono::Duration::hours(11));
    }

    #[tokio::test]
    async fn without_the_lease_a_still_valid_token_is_used_and_nobody_else_refreshes() {
        let mut repo = MockConnectorRepository::new();
        repo.expect_lease_token_refresh()
            .returning(|_, _| Ok(false));
        let mut slack = MockSlackApi::new();
        slack.expect_oauth_access().never();
        let r = refresher(repo, MockSecretStore::new(), slack);
        let c = connector("acme", "prod", ConnectorState::Active);
        let s = r.ensure_fresh(&c, rotating(OLD, "r1", 60)).await.unwrap();
        assert_eq!(s.bot_token.expose(), OLD);
    }

    #[tokio::test]
    async fn without_the_lease_an_expired_token_waits_for_the_other_replica() {
        let mut repo = MockConnectorRepository::new();
        repo.expect_lease_token_refresh()
            .returning(|_, _| Ok(false));
        let mut secrets = MockSecretStore::new();
        let mut reads = 0;
        secrets.expect_get().returning(move |_| {
            reads += 1;
            Ok(if reads < 3 {
                rotating(OLD, "r1", -5)
            } else {
                rotating(NEW, "r2", 43_200)
            })
        });
        let mut slack = MockSlackApi::new();
        slack.expect_oauth_access().never();
        let r = refresher(repo, secrets, slack);
        let c = connector("acme", "prod", ConnectorState::Active);
        let s = r.ensure_fresh(&c, rotating(OLD, "r1", -5)).await.unwrap();
        assert_eq!(s.bot_token.expose(), NEW);
    }

    #[tokio::test]
    async fn a_refused_refresh_marks_the_connector_for_reauthorisation() {
        let mut repo = MockConnectorRepository::new();
        repo.expect_lease_token_refresh().returning(|_, _| Ok(true));
        repo.expect_finish_token_refresh()
            .withf(|_, o| *o == RefreshOutcome::Failed)
            .times(1)
            .returning(|_, _| Ok(()));
        let mut secrets = MockSecretStore::new();
        secrets
            .expect_get()
            .returning(|_| Ok(rotating(OLD, "r1", 60)));
        secrets.expect_put().never();
        let mut slack = MockSlackApi::new();
        slack.expect_oauth_access().returning(|_, _, _| {
            Err(SlackError::InvalidAuth {
                code: "invalid_refresh_token".into(),
            })
        });
        let r = refresher(repo, secrets, slack);
        let c = connector("acme", "prod", ConnectorState::Active);
        let err = r
            .ensure_fresh(&c, rotating(OLD, "r1", 60))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SendError::NeedsReauthorization { .. }),
            "{err:?}"
        );

        // And such a connector is refused without asking Slack again.
        let mut flagged = connector("acme", "prod", ConnectorState::Active);
        flagged.auth_status = AuthStatus::NeedsReauthorization;
        let mut slack = MockSlackApi::new();
        slack.expect_oauth_access().never();
        let r = refresher(
            MockConnectorRepository::new(),
            MockSecretStore::new(),
            slack,
        );
        let err = r
            .ensure_fresh(&flagged, rotating(OLD, "r1", 60))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SendError::NeedsReauthorization { .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn slack_unreachable_keeps_a_still_valid_token_and_gives_the_lease_back() {
        let mut repo = MockConnectorRepository::new();
        repo.expect_lease_token_refresh().returning(|_, _| Ok(true));
        repo.expect_finish_token_refresh()
            .withf(|_, o| *o == RefreshOutcome::Abandoned)
            .times(1)
            .returning(|_, _| Ok(()));
        let mut secrets = MockSecretStore::new();
        secrets
            .expect_get()
            .returning(|_| Ok(rotating(OLD, "r1", 60)));
        let mut slack = MockSlackApi::new();
        slack
            .expect_oauth_access()
            .returning(|_, _, _| Err(SlackError::Unavailable("down".into())));
        let r = refresher(repo, secrets, slack);
        let c = connector("acme", "prod", ConnectorState::Active);
        let s = r.ensure_fresh(&c, rotating(OLD, "r1", 60)).await.unwrap();
        assert_eq!(s.bot_token.expose(), OLD);
    }
}
