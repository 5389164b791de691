//! Slack's OAuth v2 install flow end to end: GetOAuthV2URL, a simulated browser through the
//! Slack double's authorize page, the server's callback, and the connector it creates.

use connector_grpc_api::pb::{GetOAuthV2urlRequest, ListConnectorsRequest, SendMessageRequest};
use slack_double::OAuthApp;
use tonic::Code;

use crate::helpers::{TEAM, TestApp, secret_value};

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server with a Slack app configured, its HTTP listener on a known port.
async fn app_with_oauth(rotation: bool, ttl_secs: &str) -> (TestApp, String) {
    app_with_oauth_and(rotation, ttl_secs, &[]).await
}

/// Like [`app_with_oauth`], with more settings.
pub(crate) async fn app_with_oauth_and(
    rotation: bool,
    ttl_secs: &str,
    more: &[(&str, &str)],
) -> (TestApp, String) {
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let redirect = format!("http://{http}/slack/oauth/callback");
    // Start the double first, so the server's settings can name its authorize page.
    let probe = slack_double::SlackDouble::start().await.unwrap();
    let authorize = format!("http://{}/oauth/v2/authorize", probe.addr());
    let mut settings = vec![
        ("CONNECTOR__HTTP__LISTEN_ADDR", http.as_str()),
        ("CONNECTOR__SLACK__CLIENT_ID", "111.222"),
        ("CONNECTOR__SLACK__CLIENT_SECRET", "app-secret"),
        ("CONNECTOR__SLACK__REDIRECT_URL", redirect.as_str()),
        ("CONNECTOR__SLACK__AUTHORIZE_URL", authorize.as_str()),
        ("CONNECTOR__SLACK__OAUTH_STATE_TTL_SECS", ttl_secs),
    ];
    settings.extend_from_slice(more);
    let app = TestApp::spawn_with_double(probe, &settings).await;
    app.double.state().set_oauth_app(OAuthApp {
        client_id: "111.222".into(),
        client_secret: "app-secret".into(),
        team_id: TEAM.into(),
        rotation,
        deny: false,
    });
    (app, http)
}

pub(crate) async fn install_url(
    app: &mut TestApp,
    tenant: &str,
    name: &str,
    channel: &str,
) -> String {
    app.client
        .get_o_auth_v2url(GetOAuthV2urlRequest {
            tenant_id: tenant.into(),
            name: name.into(),
            default_channel: channel.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .url
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// What a user's browser does: open Slack's page, follow its redirect to our callback.
/// Returns the callback URL and the page it showed.
pub(crate) async fn click_through(url: &str) -> (String, u16, String) {
    let slack = browser().get(url).send().await.unwrap();
    assert_eq!(slack.status(), 302, "Slack's authorize page redirects");
    let callback = slack.headers()["location"].to_str().unwrap().to_owned();
    let (status, body) = visit(&callback).await;
    (callback, status, body)
}

/// Opens a page of ours; every one must carry the security headers.
async fn visit(url: &str) -> (u16, String) {
    let r = browser().get(url).send().await.unwrap();
    for (name, value) in [
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(r.headers()[name], value, "{name} on {url}");
    }
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    (r.status().as_u16(), r.text().await.unwrap())
}

pub(crate) async fn connectors(
    app: &mut TestApp,
    tenant: &str,
) -> Vec<connector_grpc_api::pb::Connector> {
    app.client
        .list_connectors(ListConnectorsRequest {
            tenant_id: tenant.into(),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .connectors
}

#[tokio::test]
async fn an_install_creates_a_connector_whose_secret_holds_the_granted_token() {
    let (mut app, _) = app_with_oauth(true, "600").await;
    let response = app
        .client
        .get_o_auth_v2url(GetOAuthV2urlRequest {
            tenant_id: "acme".into(),
            name: "installed".into(),
            default_channel: "#alerts".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let url = response.url;
    assert!(url.contains("client_id=111.222"), "{url}");
    assert!(url.contains("scope=channels%3Aread"), "{url}");
    let expires = response.expire_time.unwrap().seconds;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (590..=601).contains(&(expires - now)),
        "expires in ~10 minutes"
    );

    let (callback, status, page) = click_through(&url).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Slack is connected") && page.contains("#alerts"),
        "{page}"
    );

    let listed = connectors(&mut app, "acme").await;
    assert_eq!(listed.len(), 1);
    let c = &listed[0];
    assert_eq!(
        (c.name.as_str(), c.workspace_id.as_str()),
        ("installed", TEAM)
    );
    assert_eq!(c.default_channel_id, "C0ALERTS01");
    let stored: serde_json::Value =
        serde_json::from_str(&secret_value(&app.secret_name("acme", &c.id)).await.unwrap())
            .unwrap();
    assert!(
        stored["bot_token"]
            .as_str()
            .unwrap()
            .starts_with("xoxe.xoxb-1-oauthissued")
    );
    assert!(
        stored["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("xoxe-1-refresh")
    );
    assert!(
        stored["expires_at"].as_i64().unwrap() > now + 40_000,
        "rotation kept"
    );

    // The granted token sends.
    app.client
        .send_message(SendMessageRequest {
            tenant_id: "acme".into(),
            connector_id: c.id.clone(),
            text: "installed through OAuth".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let posted = app.double.state().posted();
    assert_eq!(posted[0].token, stored["bot_token"].as_str().unwrap());

    // Replaying the redirect does nothing.
    let (status, page) = visit(&callback).await;
    assert_eq!(status, 400);
    assert!(page.contains("not valid"), "{page}");
    assert_eq!(connectors(&mut app, "acme").await.len(), 1);
    // Nor does it show up for another tenant.
    assert!(connectors(&mut app, "globex").await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn forged_expired_and_denied_installs_create_nothing() {
    let (mut app, http) = app_with_oauth(false, "1").await;

    let (status, page) = visit(&format!(
        "http://{http}/slack/oauth/callback?code=x&state=forged-state-value"
    ))
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("not valid"), "{page}");

    let url = install_url(&mut app, "acme", "late", "alerts").await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, status, page) = click_through(&url).await;
    assert_eq!(status, 400);
    assert!(page.contains("expired"), "{page}");

    app.double.state().set_oauth_app(OAuthApp {
        client_id: "111.222".into(),
        client_secret: "app-secret".into(),
        team_id: TEAM.into(),
        rotation: false,
        deny: true,
    });
    let url = install_url(&mut app, "acme", "refused", "alerts").await;
    let (_, status, page) = click_through(&url).await;
    assert_eq!(status, 200);
    assert!(page.contains("Installation cancelled"), "{page}");

    assert!(connectors(&mut app, "acme").await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_missing_channel_is_explained_on_the_page() {
    let (mut app, _) = app_with_oauth(false, "600").await;
    let url = install_url(&mut app, "acme", "nochannel", "#does-not-exist").await;
    let (_, status, page) = click_through(&url).await;
    assert_eq!(status, 400);
    assert!(page.contains("#does-not-exist"), "{page}");
    assert!(connectors(&mut app, "acme").await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn without_a_slack_app_the_url_is_a_failed_precondition() {
    let mut app = TestApp::spawn().await;
    let status = app
        .client
        .get_o_auth_v2url(GetOAuthV2urlRequest {
            tenant_id: "acme".into(),
            name: "x".into(),
            default_channel: "alerts".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("CONNECTOR__SLACK__CLIENT_ID"),
        "{}",
        status.message()
    );
    let status = app
        .client
        .get_o_auth_v2url(GetOAuthV2urlRequest {
            tenant_id: "acme".into(),
            name: String::new(),
            default_channel: "alerts".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    app.stop().await;
}
