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
            ..Default::default()
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

/// What a user's browser does: open the install link (our server sets the install cookie and
/// sends it to Slack), let Slack's page redirect to our callback, and show the callback the
/// cookie. Returns the callback URL and the page it showed (or the link's own page when it
/// did not redirect).
pub(crate) async fn click_through(url: &str) -> (String, u16, String) {
    match open_link(url).await {
        Ok((callback, cookie)) => {
            let (status, body) = visit_with_cookie(&callback, Some(&cookie)).await;
            (callback, status, body)
        }
        Err((status, body)) => (url.to_owned(), status, body),
    }
}

/// Opens an install link in a fresh browser: `Ok((callback URL, cookie))` after Slack's page
/// redirected back, `Err((status, page))` when our server refused the link.
pub(crate) async fn open_link(url: &str) -> Result<(String, String), (u16, String)> {
    let start = browser().get(url).send().await.unwrap();
    if start.status() != 302 {
        let status = start.status().as_u16();
        return Err((status, start.text().await.unwrap()));
    }
    let set_cookie = start.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let slack_url = start.headers()["location"].to_str().unwrap().to_owned();
    let slack = browser().get(&slack_url).send().await.unwrap();
    assert_eq!(slack.status(), 302, "Slack's authorize page redirects");
    let callback = slack.headers()["location"].to_str().unwrap().to_owned();
    Ok((callback, cookie))
}

async fn visit(url: &str) -> (u16, String) {
    visit_with_cookie(url, None).await
}

/// Opens a page of ours (with `cookie`, as `name=value`); every one must carry the security
/// headers.
async fn visit_with_cookie(url: &str, cookie: Option<&str>) -> (u16, String) {
    let mut request = browser().get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let r = request.send().await.unwrap();
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
            ..Default::default()
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
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let url = response.url;
    // The link starts the install on our server, which sends the browser on to Slack.
    assert!(url.contains("/slack/install?state="), "{url}");
    let (_, slack_side) = {
        let start = browser().get(&url).send().await.unwrap();
        assert_eq!(start.status(), 302);
        let to = start.headers()["location"].to_str().unwrap().to_owned();
        (start, to)
    };
    assert!(slack_side.contains("client_id=111.222"), "{slack_side}");
    assert!(slack_side.contains("scope=channels%3Aread"), "{slack_side}");
    // That browser has opened the link: another may not.
    let (status, page) = visit(&url).await;
    assert_eq!(status, 400);
    assert!(page.contains("another browser"), "{page}");
    let url = install_url(&mut app, "acme", "installed", "#alerts").await;
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
            ..Default::default()
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
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    app.stop().await;
}

#[tokio::test]
async fn a_leaked_callback_or_another_browsers_cookie_creates_nothing() {
    let (mut app, _) = app_with_oauth(false, "600").await;
    // The user starts an install; Slack sends the browser back to the callback.
    let url = install_url(&mut app, "acme", "victim", "alerts").await;
    let (callback, _user_cookie) = open_link(&url).await.unwrap();
    // Someone who got hold of the callback URL, without the cookie...
    let (status, page) = visit(&callback).await;
    assert_eq!(status, 400);
    assert!(page.contains("another browser"), "{page}");
    assert!(connectors(&mut app, "acme").await.is_empty());

    // ...or with the cookie of an install of their own.
    let victim = install_url(&mut app, "acme", "victim2", "alerts").await;
    let (victims_callback, victims_cookie) = open_link(&victim).await.unwrap();
    let own = install_url(&mut app, "acme", "attacker", "alerts").await;
    let (_, attackers_cookie) = open_link(&own).await.unwrap();
    let (status, page) = visit_with_cookie(&victims_callback, Some(&attackers_cookie)).await;
    assert_eq!(status, 400);
    assert!(page.contains("another browser"), "{page}");
    assert!(connectors(&mut app, "acme").await.is_empty());
    // Neither burned the victim's link: their own browser still completes it.
    let (status, page) = visit_with_cookie(&victims_callback, Some(&victims_cookie)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(connectors(&mut app, "acme").await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn an_install_pinned_to_a_workspace_refuses_another() {
    let (mut app, _) = app_with_oauth(false, "600").await;
    let url = app
        .client
        .get_o_auth_v2url(GetOAuthV2urlRequest {
            tenant_id: "acme".into(),
            name: "pinned".into(),
            default_channel: "alerts".into(),
            team_id: "T0SOMEWHERE".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let (_, status, page) = click_through(&url).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("another workspace"), "{page}");
    assert!(connectors(&mut app, "acme").await.is_empty());
    app.stop().await;
}
