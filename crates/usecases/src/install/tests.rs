//! Unit tests of the install flow against mocked ports.

use std::sync::{Arc, Mutex};

use connector_domain::{BotToken, ChannelId, ChannelName, ConnectorState, WorkspaceId};

use super::*;
use connector_ports::{
    AuthIdentity, ChannelInfo, ChannelPage, MockConnectors, MockOAuthStateStore, MockSecretStore,
    MockSlackApi, OAuthGrant,
};

use crate::testing::{connector, ports_with_slack};

fn config() -> OAuthConfig {
    OAuthConfig {
        client_id: "1234.5678".into(),
        client_secret: SecretString::from("app-secret".to_owned()),
        redirect_url: "https://connectors.example.com/slack/oauth/callback".into(),
        authorize_url: "https://slack.example.com/oauth/v2/authorize".into(),
        scopes: "channels:read,chat:write".into(),
        user_scopes: String::new(),
        state_ttl: Duration::from_secs(600),
        start_url: "https://connectors.example.com/slack/install".into(),
    }
}

fn installer(
    states: MockOAuthStateStore,
    slack: MockSlackApi,
    repo: MockConnectors,
    secrets: MockSecretStore,
    config: Option<OAuthConfig>,
) -> OAuthInstaller {
    let service = ConnectorService::new(ports_with_slack(repo, secrets, Arc::new(slack)));
    OAuthInstaller::new(Arc::new(states), service, config)
}

#[tokio::test]
async fn the_url_carries_the_app_and_a_state_whose_hash_is_stored() {
    let saved = Arc::new(Mutex::new(None));
    let mut states = MockOAuthStateStore::new();
    let s = saved.clone();
    states
        .expect_save_state()
        .times(1)
        .returning(move |hash, p| {
            *s.lock().unwrap() = Some((hash.to_owned(), p.clone()));
            Ok(())
        });
    let i = installer(
        states,
        MockSlackApi::new(),
        MockConnectors::default(),
        MockSecretStore::new(),
        Some(config()),
    );
    let (url, expires) = i
        .authorize_url(&acme(), "prod", "#alerts", "T0PINNED1")
        .await
        .unwrap();
    // The link starts the install on our server, in the user's browser.
    assert!(
        url.starts_with("https://connectors.example.com/slack/install?state="),
        "{url}"
    );
    let state = url.split("state=").nth(1).unwrap();
    assert!(state.len() >= 43, "256 bits of state");
    let (hash, pending) = saved.lock().unwrap().clone().unwrap();
    assert_eq!(hash, hash_state(state), "only the hash is stored");
    assert_eq!(pending.tenant_id.as_str(), "acme");
    assert_eq!(pending.default_channel, "#alerts");
    assert_eq!(pending.expires_at, expires);
    assert_eq!(pending.team_id, Some(WorkspaceId::new("T0PINNED1")));
    assert_eq!(pending.browser_hash, None);
    let ttl = expires - Utc::now();
    assert!(ttl > chrono::Duration::seconds(590) && ttl <= chrono::Duration::seconds(600));
}

#[tokio::test]
async fn without_app_settings_the_url_is_a_failed_precondition() {
    let i = installer(
        MockOAuthStateStore::new(),
        MockSlackApi::new(),
        MockConnectors::default(),
        MockSecretStore::new(),
        None,
    );
    let err = i
        .authorize_url(&acme(), "prod", "alerts", "")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("CONNECTOR__SLACK__CLIENT_ID"),
        "{err}"
    );
    let err = i
        .authorize_url(&acme(), "", "alerts", "")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Invalid(v) if v.field == "name"),
        "validation first"
    );
}

fn acme() -> TenantId {
    TenantId::parse("tenant_id", "acme").unwrap()
}

fn pending(expires_in: i64) -> PendingInstall {
    PendingInstall {
        tenant_id: TenantId::parse("t", "acme").unwrap(),
        name: ConnectorName::parse("n", "prod").unwrap(),
        default_channel: "alerts".into(),
        expires_at: Utc::now() + chrono::Duration::seconds(expires_in),
        team_id: None,
        browser_hash: Some(hash_state("the-nonce")),
    }
}

#[tokio::test]
async fn unknown_expired_and_denied_states_create_nothing() {
    for (taken, error, expected) in [
        (None, None, "UnknownState"),
        (Some(pending(-1)), None, "ExpiredState"),
        (Some(pending(600)), Some("access_denied"), "Denied"),
    ] {
        let mut states = MockOAuthStateStore::new();
        states
            .expect_take_state()
            .times(1)
            .return_once(move |_, _| Ok(taken));
        let mut slack = MockSlackApi::new();
        slack.expect_oauth_access().never();
        let mut repo = MockConnectors::default();
        repo.lifecycle.expect_insert_creating().never();
        let i = installer(states, slack, repo, MockSecretStore::new(), Some(config()));
        let err = i
            .complete("some-state", Some("code"), error, Some("the-nonce"))
            .await
            .unwrap_err();
        assert_eq!(
            format!("{err:?}").split([' ', '(']).next().unwrap(),
            expected
        );
    }
}

#[tokio::test]
async fn an_approved_install_creates_the_connector_with_the_granted_token() {
    let mut states = MockOAuthStateStore::new();
    states
        .expect_take_state()
        .return_once(|_, _| Ok(Some(pending(600))));
    let mut slack = MockSlackApi::new();
    slack
        .expect_oauth_access()
        .withf(|id, secret, grant| {
            id == "1234.5678"
                && secrecy::ExposeSecret::expose_secret(secret) == "app-secret"
                && matches!(grant, OAuthGrantRequest::Code { code, redirect_uri }
                    if code == "the-code" && redirect_uri.ends_with("/slack/oauth/callback"))
        })
        .returning(|_, _, _| {
            Ok(OAuthGrant {
                access_token: BotToken::parse("t", "xoxe.xoxb-1-grantedtoken").unwrap(),
                team_id: WorkspaceId::new("T0001"),
                refresh_token: Some(SecretString::from("xoxe-1-refresh".to_owned())),
                expires_in: Some(43_200),
                app_id: Some("A0INSTALL".into()),
                bot_user_id: Some("U1".into()),
            })
        });
    slack.expect_auth_test().returning(|_| {
        Ok(AuthIdentity {
            team_id: WorkspaceId::new("T0001"),
            team_name: "Acme".into(),
            user_id: "U1".into(),
            bot_id: Some("B0BOT".into()),
            app_id: Some("A0APP".into()),
        })
    });
    slack.expect_list_channels().returning(|_, _| {
        Ok(ChannelPage {
            channels: vec![ChannelInfo {
                id: ChannelId::new("C0000ALERT"),
                name: ChannelName::new("alerts"),
                is_archived: false,
                is_member: true,
                is_private: false,
            }],
            next_cursor: None,
        })
    });
    let mut repo = MockConnectors::default();
    repo.lifecycle
        .expect_find_by_request_id()
        .withf(|_, r| r.as_str().starts_with("oauth-"))
        .returning(|_, _| Ok(None));
    repo.lifecycle.expect_insert_creating().returning(|n| {
        // The app is the one oauth.v2.access named, not asked of Slack again.
        assert_eq!(
            n.bot.as_ref().and_then(|b| b.app_id.as_deref()),
            Some("A0INSTALL")
        );
        let mut c = connector("acme", "prod", ConnectorState::Creating);
        c.id = n.id;
        Ok(c)
    });
    repo.lifecycle.expect_mark_active().returning(|id| {
        let mut c = connector("acme", "prod", ConnectorState::Active);
        c.id = id;
        Ok(Some(c))
    });
    let mut secrets = MockSecretStore::new();
    secrets
        .expect_put()
        .withf(|_, s, _| {
            s.bot_token.expose() == "xoxe.xoxb-1-grantedtoken"
                && s.rotation.as_ref().is_some_and(|r| {
                    secrecy::ExposeSecret::expose_secret(&r.refresh_token) == "xoxe-1-refresh"
                })
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    let i = installer(states, slack, repo, secrets, Some(config()));
    let c = i
        .complete("some-state", Some("the-code"), None, Some("the-nonce"))
        .await
        .unwrap();
    assert_eq!(c.state, ConnectorState::Active);
}

#[tokio::test]
async fn opening_the_link_binds_the_browser_and_sends_it_to_slack() {
    let mut states = MockOAuthStateStore::new();
    let bound = Arc::new(Mutex::new(None));
    let b = bound.clone();
    states
        .expect_bind_browser()
        .times(1)
        .returning(move |hash, browser, _| {
            *b.lock().unwrap() = Some(browser.to_owned());
            assert_eq!(hash, hash_state("the-state"));
            let mut p = pending(600);
            p.team_id = Some(WorkspaceId::new("T0PINNED1"));
            p.browser_hash = Some(browser.to_owned());
            Ok(Some(p))
        });
    let i = installer(
        states,
        MockSlackApi::new(),
        MockConnectors::default(),
        MockSecretStore::new(),
        Some(config()),
    );
    let (url, nonce) = i.begin("the-state").await.unwrap();
    assert!(url.starts_with("https://slack.example.com/oauth/v2/authorize?client_id=1234.5678&"));
    assert!(
        url.contains("scope=channels%3Aread%2Cchat%3Awrite"),
        "{url}"
    );
    assert!(
        url.contains(
            "redirect_uri=https%3A%2F%2Fconnectors.example.com%2Fslack%2Foauth%2Fcallback"
        )
    );
    assert!(url.contains("state=the-state"), "{url}");
    assert!(url.contains("team=T0PINNED1"), "{url}");
    // Only the nonce's hash is stored; the nonce goes to the browser.
    let stored = bound.lock().unwrap().clone().unwrap();
    assert_eq!(
        stored,
        hash_state(secrecy::ExposeSecret::expose_secret(&nonce))
    );

    // A link already opened (or unknown) is refused.
    let mut states = MockOAuthStateStore::new();
    states.expect_bind_browser().returning(|_, _, _| Ok(None));
    let i = installer(
        states,
        MockSlackApi::new(),
        MockConnectors::default(),
        MockSecretStore::new(),
        Some(config()),
    );
    assert!(matches!(
        i.begin("the-state").await,
        Err(InstallError::UnknownState)
    ));
}

#[tokio::test]
async fn another_browser_or_none_cannot_complete_nor_consume_the_link() {
    for (cookie, expected) in [
        (None, "OtherBrowser"),
        (Some("another-browsers-nonce"), "UnknownState"),
    ] {
        let mut states = MockOAuthStateStore::new();
        // Without a cookie the store is not asked; with another browser's, it is asked to
        // take the state bound to that browser only, which leaves the real one in place.
        let asked = cookie.is_some();
        states
            .expect_take_state()
            .times(usize::from(asked))
            .withf(|_, browser| *browser == hash_state("another-browsers-nonce"))
            .returning(|_, _| Ok(None));
        let mut slack = MockSlackApi::new();
        slack.expect_oauth_access().never();
        let i = installer(
            states,
            slack,
            MockConnectors::default(),
            MockSecretStore::new(),
            Some(config()),
        );
        let err = i
            .complete("some-state", Some("the-code"), None, cookie)
            .await
            .unwrap_err();
        assert_eq!(
            format!("{err:?}").split([' ', '(']).next().unwrap(),
            expected
        );
    }
}

#[tokio::test]
async fn an_install_in_another_workspace_than_the_pinned_one_creates_nothing() {
    let mut states = MockOAuthStateStore::new();
    states.expect_take_state().returning(|_, _| {
        let mut p = pending(600);
        p.team_id = Some(WorkspaceId::new("T0PINNED1"));
        Ok(Some(p))
    });
    let mut slack = MockSlackApi::new();
    slack.expect_oauth_access().returning(|_, _, _| {
        Ok(OAuthGrant {
            access_token: BotToken::parse("t", "xoxb-1-othertoken00").unwrap(),
            team_id: WorkspaceId::new("T0OTHER01"),
            refresh_token: None,
            expires_in: None,
            app_id: Some("A0INSTALL".into()),
            bot_user_id: Some("U1".into()),
        })
    });
    slack.expect_auth_test().never();
    let i = installer(
        states,
        slack,
        MockConnectors::default(),
        MockSecretStore::new(),
        Some(config()),
    );
    let err = i
        .complete("some-state", Some("the-code"), None, Some("the-nonce"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, InstallError::WrongWorkspace { .. }),
        "{err:?}"
    );
}
