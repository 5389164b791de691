//! Refreshing rotating Slack tokens before they expire, one replica at a time.
//!
//! A token due within the margin is refreshed by whoever takes the connector's lease in the
//! database (atomic across replicas): it re-reads the secret (another replica may just have
//! refreshed), calls `oauth.v2.access` with `grant_type=refresh_token`, stores the new token,
//! refresh token and expiry, and records the outcome. The others keep using the current token
//! while it is still valid, and only wait (polling the secret) when it has already expired.
//! A refused refresh marks the connector `NEEDS_REAUTHORIZATION`: a person must reinstall.
//!
//! A refresh spends the old refresh token, so losing its result would break the connector.
//! Hence: the refresh runs on a detached task that outlives the request that asked for it
//! (the request waits for it, bounded); the lease is renewed while the work runs and is well
//! over the worst case of one refresh; the outcome is recorded only by the lease's holder (a
//! fencing value), so a late finisher changes nothing; and only Slack's grant errors are
//! permanent, anything else is retried later.

use std::time::Duration;

use chrono::{DateTime, Utc};
use connector_domain::{AuthStatus, Connector};
use connector_ports::{
    ConnectorSecret, OAuthGrantRequest, RefreshOutcome, SlackError, TokenRotation,
};
use futures::future::Either;
use secrecy::SecretString;

use crate::Ports;
use crate::error::{Dependency, SendError};
use crate::runtime::{Sleep, Spawn};

/// Slack's answers to a refresh that mean the refresh token will never work again; anything
/// else (a proxy's 4xx, a 5xx, a timeout, a misconfigured app) is retried later.
const PERMANENT_REFRESH_ERRORS: &[&str] = &[
    "invalid_refresh_token",
    "invalid_grant",
    "token_revoked",
    "token_expired",
];

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
    /// How long the lease lasts between renewals. A refresh renews it every third of this
    /// while it runs; it must exceed twice the worst case of one refresh (Slack's deadline of
    /// 30 s plus five secret-store attempts of 10 s: about 85 s).
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
            lease: Duration::from_secs(180),
            wait: Duration::from_secs(15),
            poll: Duration::from_millis(200),
        }
    }
}

/// Counts a refresh attempt in `connector_token_refreshes_total{outcome}`: `refreshed`,
/// `refused` (Slack said no: the connector needs re-authorisation), `failed` (Slack
/// unreachable; retried), `store_failed` (the new token could not be stored), `lease_lost`
/// (another replica took the refresh over before this one recorded its outcome).
fn count_refresh(outcome: &'static str) {
    metrics::counter!("connector_token_refreshes_total", "outcome" => outcome).increment(1);
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
    spawn: Spawn,
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
    now: DateTime<Utc>,
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
        expires_at: expiry_after(secs, now),
    })
}

fn expiry_after(secs: u64, now: DateTime<Utc>) -> DateTime<Utc> {
    let secs = secs.min(MAX_TOKEN_LIFETIME_SECS) as i64;
    now + chrono::Duration::seconds(secs)
}

impl TokenRefresher {
    /// A refresher over the ports; without `app` credentials rotating tokens cannot be
    /// refreshed (they are used until they expire).
    pub fn new(
        ports: Ports,
        app: Option<AppCredentials>,
        settings: RefreshSettings,
        sleep: Sleep,
        spawn: Spawn,
    ) -> Self {
        Self {
            ports,
            app,
            settings,
            sleep,
            spawn,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &RefreshSettings {
        &self.settings
    }

    fn due(&self, rotation: &TokenRotation) -> bool {
        let margin = chrono::Duration::from_std(self.settings.margin).unwrap_or_default();
        rotation.expires_at - margin <= self.ports.clock.utc()
    }

    fn expired(&self, rotation: &TokenRotation) -> bool {
        rotation.expires_at <= self.ports.clock.utc()
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
            return if self.expired(&rotation) {
                Err(SendError::TokenRevoked {
                    code: "token_expired (no Slack app credentials to refresh it)".into(),
                })
            } else {
                Ok(secret)
            };
        }
        let fence: i64 = rand::random();
        if self
            .ports
            .connectors
            .refresh
            .lease_token_refresh(connector.id, self.settings.lease, fence)
            .await?
        {
            return self
                .refresh_detached(connector.clone(), fence, secret)
                .await;
        }
        if !self.expired(&rotation) {
            return Ok(secret);
        }
        self.wait_for_other_replica(connector).await
    }

    /// Refreshes on a task of its own, so that a caller that goes away (a cancelled request)
    /// cannot interrupt a refresh between spending the old refresh token and storing the new
    /// one; the caller waits for the result at most [`RefreshSettings::wait`].
    async fn refresh_detached(
        &self,
        connector: Connector,
        fence: i64,
        stale: ConnectorSecret,
    ) -> Result<ConnectorSecret, SendError> {
        let (tx, rx) = futures::channel::oneshot::channel();
        let this = self.clone();
        (self.spawn)(Box::pin(async move {
            let result = this.refresh_holding_lease(&connector, fence, stale).await;
            let _ = tx.send(result);
        }));
        match futures::future::select(rx, (self.sleep)(self.settings.wait)).await {
            Either::Left((Ok(result), _)) => result,
            Either::Left((Err(_), _)) => Err(SendError::Internal(anyhow::anyhow!(
                "the token refresh task ended without an answer"
            ))),
            Either::Right(_) => Err(SendError::Unavailable {
                dependency: Dependency::Slack,
                detail: "the connector's token is still being refreshed; retry shortly".into(),
            }),
        }
    }

    async fn refresh_holding_lease(
        &self,
        connector: &Connector,
        fence: i64,
        stale: ConnectorSecret,
    ) -> Result<ConnectorSecret, SendError> {
        let name = self.ports.secret_name(connector);
        let work = self.refresh_inner(connector, &name, stale);
        let heartbeat = self.keep_lease(connector, fence);
        futures::pin_mut!(work, heartbeat);
        let result = match futures::future::select(work, heartbeat).await {
            Either::Left((result, _)) => result,
            // The lease was lost (the database kept refusing renewals): finish anyway; the
            // outcome will be fenced out if another replica took over.
            Either::Right(((), work)) => work.await,
        };
        let outcome = match &result {
            Ok((_, outcome)) => *outcome,
            Err(SendError::NeedsReauthorization { .. }) => RefreshOutcome::Failed,
            Err(_) => RefreshOutcome::Abandoned,
        };
        match self
            .ports
            .connectors
            .refresh
            .finish_token_refresh(connector.id, fence, outcome)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(connector_id = %connector.id, ?outcome,
                    "the refresh lease was taken over before the outcome could be recorded; another replica's outcome stands");
                count_refresh("lease_lost");
            }
            // The lease expires by itself; the token is stored either way.
            Err(e) => tracing::warn!(connector_id = %connector.id, error = %e,
                "could not record a token refresh"),
        }
        result.map(|(secret, _)| secret)
    }

    /// Renews the lease every third of its length until the lease is lost; runs beside the
    /// refresh and is dropped when it ends.
    async fn keep_lease(&self, connector: &Connector, fence: i64) {
        loop {
            (self.sleep)(self.settings.lease / 3).await;
            match self
                .ports
                .connectors
                .refresh
                .renew_token_refresh(connector.id, fence, self.settings.lease)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(connector_id = %connector.id,
                        "the token refresh lease was lost while refreshing");
                    return;
                }
                Err(e) => tracing::warn!(connector_id = %connector.id, error = %e,
                    "could not renew the token refresh lease; will retry"),
            }
        }
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
            Err(SlackError::InvalidAuth { code } | SlackError::Api { code })
                if PERMANENT_REFRESH_ERRORS.contains(&code.as_str()) =>
            {
                tracing::warn!(connector_id = %connector.id, %code,
                    "Slack refused to refresh the token; the connector needs re-authorisation");
                count_refresh("refused");
                return Err(SendError::NeedsReauthorization {
                    id: connector.id.to_string(),
                });
            }
            Err(e) => {
                if let SlackError::InvalidAuth { code } | SlackError::Api { code } = &e {
                    // Not the refresh token's fault (a proxy, a misconfigured app): retried later.
                    tracing::warn!(connector_id = %connector.id, %code,
                        "refreshing the token failed; will retry");
                }
                count_refresh("failed");
                // Slack unreachable: the current token, if it still works, is fine for now.
                if self.expired(&rotation) {
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
                self.ports.clock.utc(),
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
                    count_refresh("store_failed");
                    return Err(SendError::NeedsReauthorization {
                        id: connector.id.to_string(),
                    });
                }
            }
        }
        tracing::info!(connector_id = %connector.id, "token refreshed");
        count_refresh("refreshed");
        let expires_at = fresh
            .rotation
            .as_ref()
            .map_or_else(|| self.ports.clock.utc(), |r| r.expires_at);
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
            if current.rotation.as_ref().is_none_or(|r| !self.expired(r)) {
                return Ok(current);
            }
        }
        Err(SendError::Unavailable {
            dependency: Dependency::Slack,
            detail: "the connector's token is being refreshed by another replica; retry".into(),
        })
    }

    /// Refreshes up to `limit` tokens that are due, without waiting for anyone.
    #[tracing::instrument(name = "usecase tokens.refresh_due", skip_all)]
    pub async fn refresh_due(&self, limit: u32) -> Result<RefreshReport, SendError> {
        let mut report = RefreshReport::default();
        if self.app.is_none() {
            return Ok(report);
        }
        let margin = chrono::Duration::from_std(self.settings.margin).unwrap_or_default();
        for connector in self
            .ports
            .connectors
            .refresh
            .tokens_expiring(self.ports.clock.utc() + margin, limit)
            .await?
        {
            let fence: i64 = rand::random();
            if !self
                .ports
                .connectors
                .refresh
                .lease_token_refresh(connector.id, self.settings.lease, fence)
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
                        .connectors
                        .refresh
                        .finish_token_refresh(connector.id, fence, RefreshOutcome::Abandoned)
                        .await;
                    report.skipped += 1;
                    continue;
                }
            };
            match self.refresh_holding_lease(&connector, fence, stale).await {
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
    use std::sync::{Arc, Mutex};

    use connector_domain::{BotToken, ConnectorState, WorkspaceId};

    use connector_ports::{MockConnectors, MockSecretStore, MockSlackApi, OAuthGrant};

    use super::*;
    use crate::testing::{connector, ports, tokio_sleep, tokio_spawn};

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
        repo: MockConnectors,
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
            tokio_spawn(),
        )
    }

    const OLD: &str = "xoxe.xoxb-1-oldtoken000";
    const NEW: &str = "xoxe.xoxb-1-newtoken000";

    #[test]
    fn any_expires_in_from_slack_is_handled_without_overflow() {
        for secs in [0, 1, 43_200, u64::from(u32::MAX), i64::MAX as u64, u64::MAX] {
            let r = rotation_from_grant(
                Some(SecretString::from("r".to_owned())),
                Some(secs),
                None,
                Utc::now(),
            )
            .unwrap();
            assert!(
                r.expires_at <= Utc::now() + chrono::Duration::days(367),
                "{secs}"
            );
        }
        // A refresh without an expiry means Slack's 12 hours; without a new refresh token the
        // spent one is kept.
        let r = rotation_from_grant(
            None,
            None,
            Some(SecretString::from("spent".to_owned())),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&r.refresh_token),
            "spent"
        );
        assert!(r.expires_at > Utc::now() + chrono::Duration::hours(11));
        // An install without both is not rotating.
        assert!(rotation_from_grant(None, Some(60), None, Utc::now()).is_none());
    }

    #[tokio::test]
    async fn a_token_not_yet_due_is_used_as_it_is() {
        let mut repo = MockConnectors::default();
        repo.refresh.expect_lease_token_refresh().never();
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
        let c_id = c.id;
        let mut repo = MockConnectors::default();
        repo.refresh
            .expect_lease_token_refresh()
            .withf(move |id, lease, _| *id == c_id && *lease == Duration::from_secs(180))
            .times(1)
            .returning(|_, _, _| Ok(true));
        repo.refresh
            .expect_finish_token_refresh()
            .withf(|_, _, o| matches!(o, RefreshOutcome::Refreshed { .. }))
            .times(1)
            .returning(|_, _, _| Ok(true));
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
                    app_id: None,
                    bot_user_id: None,
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
        let mut repo = MockConnectors::default();
        repo.refresh
            .expect_lease_token_refresh()
            .returning(|_, _, _| Ok(false));
        let mut slack = MockSlackApi::new();
        slack.expect_oauth_access().never();
        let r = refresher(repo, MockSecretStore::new(), slack);
        let c = connector("acme", "prod", ConnectorState::Active);
        let s = r.ensure_fresh(&c, rotating(OLD, "r1", 60)).await.unwrap();
        assert_eq!(s.bot_token.expose(), OLD);
    }

    #[tokio::test]
    async fn without_the_lease_an_expired_token_waits_for_the_other_replica() {
        let mut repo = MockConnectors::default();
        repo.refresh
            .expect_lease_token_refresh()
            .returning(|_, _, _| Ok(false));
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
        let mut repo = MockConnectors::default();
        repo.refresh
            .expect_lease_token_refresh()
            .returning(|_, _, _| Ok(true));
        repo.refresh
            .expect_finish_token_refresh()
            .withf(|_, _, o| *o == RefreshOutcome::Failed)
            .times(1)
            .returning(|_, _, _| Ok(true));
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
        let r = refresher(MockConnectors::default(), MockSecretStore::new(), slack);
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
        let mut repo = MockConnectors::default();
        repo.refresh
            .expect_lease_token_refresh()
            .returning(|_, _, _| Ok(true));
        repo.refresh
            .expect_finish_token_refresh()
            .withf(|_, _, o| *o == RefreshOutcome::Abandoned)
            .times(1)
            .returning(|_, _, _| Ok(true));
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

    /// A secret store whose writes take `delay`, remembering what was written.
    struct SlowStore {
        delay: Duration,
        current: Mutex<ConnectorSecret>,
        writes: Mutex<usize>,
    }

    #[async_trait::async_trait]
    impl connector_ports::SecretStore for SlowStore {
        async fn put(
            &self,
            _: &connector_domain::SecretName,
            secret: &ConnectorSecret,
            _: &connector_ports::SecretLabels,
        ) -> Result<(), connector_ports::SecretStoreError> {
            tokio::time::sleep(self.delay).await;
            *self.current.lock().unwrap() = secret.clone();
            *self.writes.lock().unwrap() += 1;
            Ok(())
        }
        async fn get(
            &self,
            _: &connector_domain::SecretName,
        ) -> Result<ConnectorSecret, connector_ports::SecretStoreError> {
            Ok(self.current.lock().unwrap().clone())
        }
        async fn delete(
            &self,
            _: &connector_domain::SecretName,
        ) -> Result<(), connector_ports::SecretStoreError> {
            Ok(())
        }
        async fn stage(
            &self,
            _: &connector_domain::SecretName,
            _: &ConnectorSecret,
        ) -> Result<String, connector_ports::SecretStoreError> {
            unimplemented!("refresh never stages")
        }
        async fn promote(
            &self,
            _: &connector_domain::SecretName,
            _: &str,
        ) -> Result<bool, connector_ports::SecretStoreError> {
            unimplemented!("refresh never promotes")
        }
        async fn discard(
            &self,
            _: &connector_domain::SecretName,
            _: &str,
        ) -> Result<bool, connector_ports::SecretStoreError> {
            unimplemented!("refresh never discards")
        }
        async fn staged_versions(
            &self,
            _: &connector_domain::SecretPrefix,
            _: chrono::DateTime<chrono::Utc>,
            _: u32,
        ) -> Result<Vec<connector_ports::StagedVersion>, connector_ports::SecretStoreError>
        {
            unimplemented!("refresh never sweeps")
        }
    }

    /// One shared lease, as the database keeps it: holder's fence and expiry.
    #[derive(Default)]
    struct Lease {
        holder: Option<(i64, tokio::time::Instant)>,
        outcomes: Vec<RefreshOutcome>,
    }

    fn repo_over(lease: Arc<Mutex<Lease>>) -> MockConnectors {
        let mut repo = MockConnectors::default();
        let l = lease.clone();
        repo.refresh
            .expect_lease_token_refresh()
            .returning(move |_, ttl, fence| {
                let mut l = l.lock().unwrap();
                let now = tokio::time::Instant::now();
                if l.holder.is_some_and(|(_, until)| until > now) {
                    return Ok(false);
                }
                l.holder = Some((fence, now + ttl));
                Ok(true)
            });
        let l = lease.clone();
        repo.refresh
            .expect_renew_token_refresh()
            .returning(move |_, fence, ttl| {
                let mut l = l.lock().unwrap();
                match l.holder {
                    Some((f, _)) if f == fence => {
                        l.holder = Some((fence, tokio::time::Instant::now() + ttl));
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            });
        let l = lease;
        repo.refresh
            .expect_finish_token_refresh()
            .returning(move |_, fence, outcome| {
                let mut l = l.lock().unwrap();
                match l.holder {
                    Some((f, _)) if f == fence => {
                        l.holder = None;
                        l.outcomes.push(outcome);
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            });
        repo
    }

    fn granting_slack(calls: Arc<Mutex<usize>>) -> MockSlackApi {
        let mut slack = MockSlackApi::new();
        slack.expect_oauth_access().returning(move |_, _, _| {
            *calls.lock().unwrap() += 1;
            Ok(OAuthGrant {
                access_token: BotToken::parse("t", NEW).unwrap(),
                team_id: WorkspaceId::new("T1"),
                refresh_token: Some(SecretString::from("r2".to_owned())),
                expires_in: Some(43_200),
                app_id: None,
                bot_user_id: None,
            })
        });
        slack
    }

    fn refresher_over(
        repo: MockConnectors,
        store: Arc<SlowStore>,
        slack: MockSlackApi,
        settings: RefreshSettings,
    ) -> TokenRefresher {
        let mut ports = ports(repo, MockSecretStore::new(), slack);
        ports.secrets = store;
        TokenRefresher::new(
            ports,
            Some(AppCredentials {
                client_id: "111.222".into(),
                client_secret: SecretString::from("app-secret".to_owned()),
            }),
            settings,
            tokio_sleep(),
            tokio_spawn(),
        )
    }

    // Paused time: the store's delay, the lease and the waits are virtual, so the order of
    // events is the same on any machine.
    #[tokio::test(start_paused = true)]
    async fn a_request_cancelled_mid_refresh_still_stores_the_new_token() {
        let lease = Arc::new(Mutex::new(Lease::default()));
        let calls = Arc::new(Mutex::new(0));
        let store = Arc::new(SlowStore {
            delay: Duration::from_millis(300),
            current: Mutex::new(rotating(OLD, "r1", 60)),
            writes: Mutex::new(0),
        });
        let r = refresher_over(
            repo_over(lease.clone()),
            store.clone(),
            granting_slack(calls.clone()),
            RefreshSettings::default(),
        );
        let c = connector("acme", "prod", ConnectorState::Active);
        // The client gives up after Slack answered, while the new token is being stored.
        let cancelled = tokio::time::timeout(
            Duration::from_millis(50),
            r.ensure_fresh(&c, rotating(OLD, "r1", 60)),
        )
        .await;
        assert!(cancelled.is_err(), "the request was meant to be cancelled");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(*calls.lock().unwrap(), 1);
        assert_eq!(*store.writes.lock().unwrap(), 1, "the new token was lost");
        assert_eq!(store.current.lock().unwrap().bot_token.expose(), NEW);
        let l = lease.lock().unwrap();
        assert!(matches!(l.outcomes[..], [RefreshOutcome::Refreshed { .. }]));
        assert!(l.holder.is_none(), "the lease was given back");
    }

    // Paused time: the store's delay, the lease and the waits are virtual, so the order of
    // events is the same on any machine.
    #[tokio::test(start_paused = true)]
    async fn a_refresh_slower_than_the_lease_keeps_it_and_the_other_replica_waits() {
        let lease = Arc::new(Mutex::new(Lease::default()));
        let calls = Arc::new(Mutex::new(0));
        // Storing takes longer than a whole lease: only renewals keep it.
        let store = Arc::new(SlowStore {
            delay: Duration::from_millis(700),
            current: Mutex::new(rotating(OLD, "r1", -5)),
            writes: Mutex::new(0),
        });
        let settings = RefreshSettings {
            lease: Duration::from_millis(300),
            wait: Duration::from_secs(3),
            poll: Duration::from_millis(20),
            ..RefreshSettings::default()
        };
        let replica_a = refresher_over(
            repo_over(lease.clone()),
            store.clone(),
            granting_slack(calls.clone()),
            settings.clone(),
        );
        let replica_b = refresher_over(
            repo_over(lease.clone()),
            store.clone(),
            granting_slack(calls.clone()),
            settings,
        );
        let c = connector("acme", "prod", ConnectorState::Active);
        let a = {
            let c = c.clone();
            tokio::spawn(async move { replica_a.ensure_fresh(&c, rotating(OLD, "r1", -5)).await })
        };
        tokio::time::sleep(Duration::from_millis(450)).await;
        let b = replica_b
            .ensure_fresh(&c, rotating(OLD, "r1", -5))
            .await
            .unwrap();
        let a = a.await.unwrap().unwrap();
        assert_eq!(a.bot_token.expose(), NEW);
        assert_eq!(b.bot_token.expose(), NEW);
        assert_eq!(*calls.lock().unwrap(), 1, "one refresh");
        let l = lease.lock().unwrap();
        assert!(
            matches!(l.outcomes[..], [RefreshOutcome::Refreshed { .. }]),
            "no NEEDS_REAUTHORIZATION"
        );
    }

    #[tokio::test]
    async fn a_proxys_4xx_during_refresh_is_retried_later_not_permanent() {
        let lease = Arc::new(Mutex::new(Lease::default()));
        let mut slack = MockSlackApi::new();
        slack.expect_oauth_access().returning(|_, _, _| {
            Err(SlackError::Api {
                code: "http_403".into(),
            })
        });
        let store = Arc::new(SlowStore {
            delay: Duration::ZERO,
            current: Mutex::new(rotating(OLD, "r1", 60)),
            writes: Mutex::new(0),
        });
        let r = refresher_over(
            repo_over(lease.clone()),
            store.clone(),
            slack,
            RefreshSettings::default(),
        );
        let c = connector("acme", "prod", ConnectorState::Active);
        let s = r.ensure_fresh(&c, rotating(OLD, "r1", 60)).await.unwrap();
        assert_eq!(s.bot_token.expose(), OLD, "the still-valid token is used");
        let l = lease.lock().unwrap();
        assert_eq!(l.outcomes, vec![RefreshOutcome::Abandoned]);
        assert_eq!(*store.writes.lock().unwrap(), 0);
    }
}
