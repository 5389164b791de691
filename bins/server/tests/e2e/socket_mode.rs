//! Slack's Socket Mode end to end: the server opens its connections to the Slack double with
//! an app-level token, and what people do in Slack arrives as envelopes, stored (in
//! PostgreSQL) before they are acknowledged, once however often Slack delivers them, across
//! refreshes, drops and stalls.

use std::time::{Duration, Instant};

use connector_grpc_api::pb;
use slack_double::{Happening, SlackDouble};

use crate::helpers::{TestApp, eventually};

const APP_TOKEN: &str = "xapp-1-A0DOUBLEAPP-1234-e2esocketmodetoken";

/// A server whose only way in is Socket Mode (no signing secret: the HTTP routes are off),
/// with `connections` connections, once they are open.
async fn spawn(connections: usize) -> TestApp {
    let double = SlackDouble::start().await.unwrap();
    double.enable_socket_mode(Some(APP_TOKEN));
    let n = connections.to_string();
    let app = TestApp::spawn_with_double(
        double,
        &[
            ("CONNECTOR__SLACK__APP_TOKEN", APP_TOKEN),
            ("CONNECTOR__SLACK__SOCKET_CONNECTIONS", n.as_str()),
        ],
    )
    .await;
    eventually("the Socket Mode connections open", || {
        app.double.socket_mode().stats().connections == connections
    })
    .await;
    app
}

async fn events(app: &mut TestApp, tenant: &str) -> Vec<pb::InboundEvent> {
    app.client
        .list_events(pb::ListEventsRequest {
            tenant_id: tenant.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events
}

async fn mention(app: &TestApp, text: &str) -> slack_double::Delivery {
    app.double
        .trigger(Happening::Mention {
            channel: "C0ALERTS01".into(),
            user: "U0SOMEONE".into(),
            text: text.into(),
        })
        .await
        .remove(0)
}

async fn next(stream: &mut tonic::Streaming<pb::StreamEventsResponse>) -> pb::InboundEvent {
    tokio::time::timeout(Duration::from_secs(3), stream.message())
        .await
        .expect("an event within 3 s")
        .unwrap()
        .expect("the stream goes on")
        .event
        .unwrap()
}

#[tokio::test]
async fn events_clicks_and_commands_arrive_over_socket_mode_and_are_stored_once() {
    let mut app = spawn(2).await;
    let c = app.create("acme", "prod", "#alerts").await;
    let mut stream = app
        .client
        .stream_events(pb::StreamEventsRequest {
            tenant_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let m = mention(&app, "deploy?").await;
    assert_eq!(m.status, 200, "acknowledged: {m:?}");
    assert!(m.envelope_id.is_some(), "went over Socket Mode: {m:?}");
    let got = next(&mut stream).await;
    assert_eq!(
        (
            got.r#type.as_str(),
            got.connector_id.as_str(),
            got.event_id.as_str()
        ),
        ("app_mention", c.id.as_str(), m.event_id.as_str())
    );
    assert!(got.text.ends_with("deploy?"), "{got:?}");

    let click = app
        .double
        .trigger(Happening::Click {
            channel: "C0ALERTS01".into(),
            ts: "1700000005.000100".into(),
            user: "U0SOMEONE".into(),
            action_id: "approve".into(),
            value: "yes".into(),
        })
        .await
        .remove(0);
    assert_eq!(click.status, 200);
    let got = next(&mut stream).await;
    assert_eq!(got.r#type, "block_actions");
    let payload: serde_json::Value = serde_json::from_str(&got.payload_json).unwrap();
    assert_eq!(payload["actions"][0]["action_id"], "approve");
    assert!(payload["response_url"].as_str().is_some(), "{payload}");
    assert!(
        payload.get("token").is_none(),
        "the verification token is dropped"
    );

    let command = app
        .double
        .trigger(Happening::Command {
            channel: "C0ALERTS01".into(),
            user: "U0SOMEONE".into(),
            command: "/deploy".into(),
            text: "api v2".into(),
        })
        .await
        .remove(0);
    assert_eq!(command.status, 200);
    let got = next(&mut stream).await;
    assert_eq!(
        (got.r#type.as_str(), got.text.as_str(), got.user_id.as_str()),
        ("slash_command", "api v2", "U0SOMEONE")
    );
    let payload: serde_json::Value = serde_json::from_str(&got.payload_json).unwrap();
    assert_eq!(payload["command"], "/deploy");
    assert!(payload.get("token").is_none());

    // Slack's redeliveries of the same envelopes (retry_attempt 1, 2) are stored once.
    for d in [&m, &click, &command] {
        assert_eq!(app.double.redeliver(d, 1).await, 200);
        assert_eq!(app.double.redeliver(d, 2).await, 200);
    }
    assert_eq!(events(&mut app, "acme").await.len(), 3);
    let stats = app.double.socket_mode().stats();
    assert_eq!((stats.sent, stats.acknowledged), (9, 9), "{stats:?}");
    // Spread over both connections (Slack's turn-taking), none left unacknowledged.
    assert_eq!(stats.redelivered, 0, "{stats:?}");
    app.stop().await;
}

#[tokio::test]
async fn an_envelope_is_acknowledged_only_once_stored_and_its_redeliveries_are_stored_once() {
    use diesel_async::{AsyncConnection as _, RunQueryDsl as _};
    let mut app = spawn(2).await;
    app.create("acme", "prod", "#alerts").await;
    app.double
        .socket_mode()
        .set_ack_timeout(Duration::from_millis(400));
    // The event log cannot be written for a while (a lock held by another session).
    let mut conn = diesel_async::AsyncPgConnection::establish(app.db.url())
        .await
        .unwrap();
    diesel::sql_query("BEGIN").execute(&mut conn).await.unwrap();
    diesel::sql_query("LOCK TABLE inbound_events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut conn)
        .await
        .unwrap();
    let blocked = Duration::from_millis(1000);
    let release = tokio::spawn(async move {
        tokio::time::sleep(blocked).await;
        diesel::sql_query("COMMIT")
            .execute(&mut conn)
            .await
            .unwrap();
    });
    let started = Instant::now();
    let m = mention(&app, "while the log is locked").await;
    let took = started.elapsed();
    release.await.unwrap();
    assert_eq!(m.status, 200, "{m:?}");
    assert!(
        took >= blocked,
        "acknowledged after {took:?}, before the event could be stored"
    );
    let stats = app.double.socket_mode().stats();
    assert!(
        stats.redelivered >= 1,
        "Slack delivered it again meanwhile: {stats:?}"
    );
    let stored = events(&mut app, "acme").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].event_id, m.event_id);
    app.stop().await;
}

#[tokio::test]
async fn a_refresh_opens_the_next_connection_first_and_a_dropped_one_is_opened_again() {
    let mut app = spawn(2).await;
    app.create("acme", "prod", "#alerts").await;
    let socket = app.double.socket_mode();

    // Slack announces a refresh and closes the connections a moment later: the next ones
    // are open by then, and nothing delivered meanwhile is lost.
    socket.disconnect("refresh_requested", Duration::from_millis(500));
    let mut delivered = Vec::new();
    for i in 0..10 {
        delivered.push(mention(&app, &format!("during the refresh {i}")).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered.iter().all(|d| d.status == 200), "{delivered:?}");
    eventually("two new connections replace the old", || {
        let s = socket.stats();
        s.opened >= 4 && s.connections == 2
    })
    .await;

    // The network drops them without a word: they are opened again.
    socket.drop_all();
    eventually("the dropped connections are opened again", || {
        let s = socket.stats();
        s.opened >= 6 && s.connections == 2
    })
    .await;
    assert_eq!(mention(&app, "after the drop").await.status, 200);

    let stats = socket.stats();
    let stored = events(&mut app, "acme").await;
    assert_eq!(stored.len(), 11, "every delivery stored once");
    assert_eq!(
        stats.redelivered, 0,
        "none waited for a connection: {stats:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_refused_app_token_leaves_the_service_serving() {
    let double = SlackDouble::start().await.unwrap();
    // Slack knows another app token: this one is refused.
    double.enable_socket_mode(Some("xapp-1-A0DOUBLEAPP-1234-theappsrealtoken"));
    let app =
        TestApp::spawn_with_double(double, &[("CONNECTOR__SLACK__APP_TOKEN", APP_TOKEN)]).await;
    eventually("the server asks for a connection", || {
        app.double.state().calls("apps.connections.open") >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.double.socket_mode().stats().connections, 0);
    // gRPC serves meanwhile: Socket Mode is not the service's readiness.
    let mut app = app;
    app.create("acme", "prod", "#alerts").await;
    app.stop().await;
}
