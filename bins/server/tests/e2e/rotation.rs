//! Rotating tokens: refreshed once under concurrent sends from two server processes, refused
//! refreshes visible as NEEDS_REAUTHORIZATION, and refreshed in the background.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use connector_grpc_api::pb::connector_service_client::ConnectorServiceClient;
use connector_grpc_api::pb::{ConnectorStatus, GetConnectorRequest, SendMessageRequest};
use tonic::Code;

use crate::helpers::{TestApp, secrets_client};
use crate::oauth::{app_with_oauth_and, click_through, connectors, free_port, install_url};

/// Installs a connector through OAuth with a rotating token, then makes its token due (it
/// expires in 60 s, inside the 10-minute refresh margin). Returns its ID.
async fn due_rotating_connector(app: &mut TestApp) -> String {
    let url = install_url(app, "acme", "rotating", "alerts").await;
    let (_, status, page) = click_through(&url).await;
    assert_eq!(status, 200, "{page}");
    let id = connectors(app, "acme").await.remove(0).id;
    let name = app.secret_name("acme", &id);
    let client = secrets_client().await;
    let raw = client
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .unwrap()
        .secret_string()
        .unwrap()
        .to_owned();
    let mut value: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let soon = chrono::Utc::now().timestamp() + 60;
    value["expires_at"] = soon.into();
    client
        .put_secret_value()
        .secret_id(&name)
        .secret_string(value.to_string())
        .send()
        .await
        .unwrap();
    app.db
        .execute(&format!(
            "UPDATE connectors SET token_expires_at = to_timestamp({soon}) WHERE id = '{id}'"
        ))
        .await
        .unwrap();
    id
}

async fn stored_secret(app: &TestApp, id: &str) -> serde_json::Value {
    let raw = crate::helpers::secret_value(&app.secret_name("acme", id))
        .await
        .unwrap();
    serde_json::from_str(&raw).unwrap()
}

fn send(id: &str, text: &str) -> SendMessageRequest {
    SendMessageRequest {
        tenant_id: "acme".into(),
        connector_id: id.into(),
        text: text.into(),
        ..Default::default()
    }
}

/// A connector-server process on the test's database, LocalStack prefix and Slack double.
struct Replica {
    child: Child,
    grpc: String,
}

impl Replica {
    fn start(app: &TestApp) -> Self {
        let grpc = format!("127.0.0.1:{}", free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_connector-server"))
            .env_clear()
            // The stack's variables (listeners on free ports, periodic jobs off), then this
            // replica's gRPC port and the Slack app that refreshes tokens.
            .envs(app.server_env())
            .env("CONNECTOR__GRPC__LISTEN_ADDR", &grpc)
            .env("CONNECTOR__SLACK__CLIENT_ID", "111.222")
            .env("CONNECTOR__SLACK__CLIENT_SECRET", "app-secret")
            .env(
                "CONNECTOR__SLACK__REDIRECT_URL",
                "http://127.0.0.1:9/slack/oauth/callback",
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self { child, grpc }
    }

    async fn client(&self) -> ConnectorServiceClient<tonic::transport::Channel> {
        for _ in 0..100 {
            if let Ok(c) = ConnectorServiceClient::connect(format!("http://{}", self.grpc)).await {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("replica on {} did not start", self.grpc);
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn two_server_processes_refresh_a_due_token_exactly_once_under_concurrent_sends() {
    let (mut app, _) = app_with_oauth_and(true, "600", &[]).await;
    let id = due_rotating_connector(&mut app).await;
    let before = stored_secret(&app, &id).await;

    let (a, b) = (Replica::start(&app), Replica::start(&app));
    let clients = [a.client().await, b.client().await];
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..40 {
        let mut client = clients[i % 2].clone();
        let id = id.clone();
        sends.spawn(async move { client.send_message(send(&id, &format!("burst {i}"))).await });
    }
    while let Some(result) = sends.join_next().await {
        result.unwrap().unwrap();
    }
    assert_eq!(
        app.double.state().refreshes(),
        1,
        "one refresh for 40 sends on 2 processes"
    );
    assert_eq!(app.double.state().posted().len(), 40);

    let after = stored_secret(&app, &id).await;
    assert_ne!(after["bot_token"], before["bot_token"]);
    assert_ne!(after["refresh_token"], before["refresh_token"]);
    assert!(after["expires_at"].as_i64().unwrap() > chrono::Utc::now().timestamp() + 40_000);
    // Later sends use the new token.
    let mut client = clients[0].clone();
    client.send_message(send(&id, "after")).await.unwrap();
    let last = app.double.state().posted().pop().unwrap();
    assert_eq!(last.token, after["bot_token"].as_str().unwrap());
    drop((a, b));
    app.stop().await;
}

#[tokio::test]
async fn a_refused_refresh_is_visible_and_stops_sending() {
    let (mut app, _) = app_with_oauth_and(true, "600", &[]).await;
    let id = due_rotating_connector(&mut app).await;
    // Spend the stored refresh token behind the server's back: Slack will refuse it.
    let stored = stored_secret(&app, &id).await;
    let spent: serde_json::Value = reqwest::Client::new()
        .post(format!("{}oauth.v2.access", app.double.api_base_url()))
        .basic_auth("111.222", Some("app-secret"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", stored["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spent["ok"], true);

    let status = app.client.send_message(send(&id, "x")).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("re-authorisation"),
        "{}",
        status.message()
    );
    let c = app
        .client
        .get_connector(GetConnectorRequest {
            tenant_id: "acme".into(),
            id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(c.status, ConnectorStatus::NeedsReauthorization as i32);
    assert!(app.double.state().posted().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn due_tokens_are_refreshed_in_the_background() {
    let (mut app, _) = app_with_oauth_and(
        true,
        "600",
        &[("CONNECTOR__TOKEN_REFRESH__INTERVAL_SECS", "1")],
    )
    .await;
    let id = due_rotating_connector(&mut app).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while app.double.state().refreshes() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no background refresh"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Slack counts the refresh before the refresher has stored what it got: wait for that.
    loop {
        let after = stored_secret(&app, &id).await;
        if after["expires_at"].as_i64().unwrap() > chrono::Utc::now().timestamp() + 40_000 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refreshed token was not stored: {after}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(app.double.state().posted().is_empty(), "no send was needed");
    app.stop().await;
}
