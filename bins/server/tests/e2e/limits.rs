//! Bounded work per request: each limit hit, answered with its documented status, while the
//! server goes on serving others.

use std::time::{Duration, Instant};

use slack_double::Fault;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::Code;

use crate::helpers::{TestApp, eventually};

#[tokio::test]
async fn a_call_past_the_request_timeout_is_cut_and_others_are_served_meanwhile() {
    let mut app = TestApp::spawn_with(&[("CONNECTOR__GRPC__REQUEST_TIMEOUT_SECS", "1")]).await;
    let c = app.create("acme", "prod", "alerts").await;
    app.double
        .state()
        .inject("chat.postMessage", Fault::Delay { millis: 3_000 }, 1);
    let slow = {
        let mut client = app.client.clone();
        let id = c.id.clone();
        tokio::spawn(async move {
            client
                .send_message(connector_grpc_api::pb::SendMessageRequest {
                    tenant_id: "acme".into(),
                    connector_id: id,
                    text: "slow".into(),
                    ..Default::default()
                })
                .await
        })
    };
    // While the slow call waits on Slack, another is served: answered before the slow one
    // is cut.
    let state = app.double.state();
    eventually("the slow send reaches Slack", || {
        state.calls("chat.postMessage") >= 1
    })
    .await;
    app.client
        .get_connector(connector_grpc_api::pb::GetConnectorRequest {
            tenant_id: "acme".into(),
            id: c.id.clone(),
        })
        .await
        .unwrap();
    assert!(
        !slow.is_finished(),
        "the slow call ended before the other was served"
    );
    let status = slow.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    app.stop().await;
}

#[tokio::test]
async fn oversized_messages_and_texts_are_refused_naming_the_limit() {
    let mut app = TestApp::spawn_with(&[
        ("CONNECTOR__GRPC__MAX_MESSAGE_BYTES", "4096"),
        ("CONNECTOR__SENDER__MAX_TEXT_PARTS", "1"),
    ])
    .await;
    let c = app.create("acme", "prod", "alerts").await;
    // Beyond the decoded message size: refused by the transport.
    let status = app
        .send("acme", &c.id, &"x".repeat(10_000))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    // Within it, but more Slack messages than allowed: INVALID_ARGUMENT naming `text`. (With
    // 4 KiB messages this needs a text of more than one part, so check the limit directly.)
    let app2 = TestApp::spawn_with(&[("CONNECTOR__SENDER__MAX_TEXT_PARTS", "1")]).await;
    let mut app2 = app2;
    let c2 = app2.create("acme", "prod", "alerts").await;
    let status = app2
        .send("acme", &c2.id, &"x".repeat(40_001))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with("text:"),
        "{}",
        status.message()
    );
    assert!(app2.double.state().posted().is_empty());
    app.stop().await;
    app2.stop().await;
}

#[tokio::test]
async fn attachments_beyond_their_number_are_refused_and_nothing_is_uploaded() {
    let mut app = TestApp::spawn_with(&[("CONNECTOR__GRPC__MAX_ATTACHMENTS", "2")]).await;
    let c = app.create("acme", "prod", "alerts").await;
    let file = |n: usize| connector_grpc_api::pb::Attachment {
        filename: format!("f{n}.txt"),
        content: b"tiny".to_vec(),
        ..Default::default()
    };
    let status = app
        .client
        .send_message(connector_grpc_api::pb::SendMessageRequest {
            tenant_id: "acme".into(),
            connector_id: c.id.clone(),
            text: "three files".into(),
            attachments: (0..3).map(file).collect(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(
        status.message().starts_with("attachments:")
            && status
                .message()
                .contains("CONNECTOR__GRPC__MAX_ATTACHMENTS"),
        "{}",
        status.message()
    );
    assert!(app.double.state().posted().is_empty());
    // Two are within the limit.
    app.client
        .send_message(connector_grpc_api::pb::SendMessageRequest {
            tenant_id: "acme".into(),
            connector_id: c.id.clone(),
            text: "two files".into(),
            attachments: (0..2).map(file).collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_keyed_send_past_its_deadline_is_recorded_unknown_and_never_reposted() {
    let mut app = TestApp::spawn_with(&[("CONNECTOR__SENDER__SEND_DEADLINE_SECS", "1")]).await;
    let c = app.create("acme", "prod", "alerts").await;
    app.double
        .state()
        .inject("chat.postMessage", Fault::Delay { millis: 3_000 }, 1);
    let keyed = connector_grpc_api::pb::SendMessageRequest {
        tenant_id: "acme".into(),
        connector_id: c.id.clone(),
        text: "slow".into(),
        request_id: "deadline-1".into(),
        ..Default::default()
    };
    let started = Instant::now();
    let status = app.client.send_message(keyed.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().starts_with("Slack's answer was lost;"),
        "{}",
        status.message()
    );
    assert!(
        started.elapsed() < Duration::from_millis(2_900),
        "waited for Slack"
    );
    // The outcome is recorded: a retry is not posted again; it is told when the channel's
    // history can say whether the cut post landed.
    let again = app.client.send_message(keyed).await.unwrap_err();
    assert_eq!(again.code(), Code::Unavailable, "{again:?}");
    assert!(again.message().contains("channel's history"), "{again:?}");
    // Whatever became of the cut post, the retry did not post again.
    tokio::time::sleep(Duration::from_millis(3_500).saturating_sub(started.elapsed())).await;
    assert!(app.double.state().posted().len() <= 1);
    app.stop().await;
}

#[tokio::test]
async fn a_send_naming_a_channel_gives_up_on_a_slow_lookup_at_its_deadline() {
    let mut app =
        TestApp::spawn_with(&[("CONNECTOR__SLACK__CHANNEL_RESOLVE_DEADLINE_SECS", "1")]).await;
    let c = app.create("acme", "prod", "C0ALERTS01").await;
    app.double
        .state()
        .inject("conversations.list", Fault::Delay { millis: 3_000 }, 1);
    let started = Instant::now();
    let status = app
        .client
        .send_message(connector_grpc_api::pb::SendMessageRequest {
            tenant_id: "acme".into(),
            connector_id: c.id.clone(),
            text: "by name".into(),
            channel: "#outside".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_millis(2_900),
        "waited for Slack"
    );
    assert!(app.double.state().posted().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_client_address_over_its_rate_is_refused_before_authentication() {
    let app = TestApp::spawn_with(&[
        ("CONNECTOR__AUTH__MODE", "api_key"),
        ("CONNECTOR__QUOTAS__REQUESTS_PER_SECOND_PER_CLIENT", "1"),
        ("CONNECTOR__QUOTAS__REQUEST_BURST_PER_CLIENT", "2"),
    ])
    .await;
    let list = || connector_grpc_api::pb::ListConnectorsRequest {
        tenant_id: "acme".into(),
        ..Default::default()
    };
    let mut client = app.client.clone();
    for _ in 0..2 {
        let status = client.list_connectors(list()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    let status = client.list_connectors(list()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("client address"),
        "{}",
        status.message()
    );
    app.stop().await;
}

#[tokio::test]
async fn grpc_connections_beyond_the_cap_are_closed_and_open_ones_keep_working() {
    let mut app = TestApp::spawn_with(&[("CONNECTOR__GRPC__MAX_CONNECTIONS", "2")]).await;
    // The app's client holds one connection; one more fills the cap.
    let _second = tokio::net::TcpStream::connect(app.grpc_addr())
        .await
        .unwrap();
    let mut third = tokio::net::TcpStream::connect(app.grpc_addr())
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), third.read(&mut buf))
        .await
        .expect("the third connection was neither served nor closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "a connection beyond the cap was kept");
    // The connection already open is served as before.
    app.client
        .list_connectors(connector_grpc_api::pb::ListConnectorsRequest {
            tenant_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    app.stop().await;
}

#[tokio::test]
async fn the_http_listener_drops_slow_headers_and_caps_connections() {
    let app = TestApp::spawn_with(&[
        ("CONNECTOR__HTTP__HEADER_READ_TIMEOUT_SECS", "1"),
        ("CONNECTOR__HTTP__MAX_CONNECTIONS", "2"),
    ])
    .await;
    let addr = app.http_addr();
    // A slow-loris client: headers never finished.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /slack/install HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A third connection while two are open is closed at once. (The listener accepts in
    // arrival order and takes a slot as it accepts, so the two are counted first.)
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(1), third.read(&mut buf))
        .await
        .expect("the third connection was neither served nor closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "a connection beyond the cap was served");
    // Both earlier ones are dropped once the header timeout passes.
    for stream in [&mut slow, &mut idle] {
        let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
            .await
            .expect("a slow client was never dropped")
            .unwrap_or(0);
        // hyper may answer 408 before closing; either way the connection ends.
        if n > 0 {
            assert!(std::str::from_utf8(&buf[..n]).unwrap().contains("408"));
        }
    }
    // And the listener serves again, once the dropped connections gave their slots back.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Probes are not on the public listener: its 404 says it serves.
        match reqwest::get(format!("http://{addr}/healthz")).await {
            Ok(served) if served.status() == 404 => break,
            other => assert!(Instant::now() < deadline, "never served again: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn probes_and_metrics_answer_only_on_the_admin_listener() {
    let app = TestApp::spawn().await;
    let (public, admin) = (app.http_addr(), app.admin_addr());
    assert_ne!(public, admin);
    for path in ["/healthz", "/readyz", "/metrics"] {
        let on_public = reqwest::get(format!("http://{public}{path}"))
            .await
            .unwrap();
        assert_eq!(on_public.status(), 404, "{path} on the public listener");
    }
    let live = reqwest::get(format!("http://{admin}/healthz"))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let metrics = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("connector_"), "{metrics}");
    // The public listener still serves Slack's and the browsers' routes.
    let install = reqwest::get(format!("http://{public}/slack/install?state=unknown"))
        .await
        .unwrap();
    assert_eq!(install.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn one_client_address_cannot_hold_every_connection_nor_trickle_a_body() {
    let app = TestApp::spawn_with(&[
        ("CONNECTOR__HTTP__MAX_CONNECTIONS_PER_CLIENT", "2"),
        ("CONNECTOR__HTTP__BODY_READ_TIMEOUT_SECS", "1"),
        ("CONNECTOR__SLACK__SIGNING_SECRET", "a-signing-secret"),
    ])
    .await;
    let addr = app.http_addr();
    // A body announced and never sent: answered 408 once the body-read timeout passes.
    let mut trickle = tokio::net::TcpStream::connect(addr).await.unwrap();
    trickle
        .write_all(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), trickle.read(&mut buf))
        .await
        .expect("a trickled body held the connection past the body-read timeout")
        .unwrap();
    let answer = std::str::from_utf8(&buf[..n]).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    drop(trickle);
    // Two connections from this address are open; a third is closed at once. (The listener
    // accepts in arrival order and counts as it accepts, so the two are counted first.)
    let _first = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _second = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), third.read(&mut buf))
        .await
        .expect("the third connection was neither served nor closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "a connection beyond the per-address cap was served");
    app.stop().await;
}

#[tokio::test]
async fn sends_beyond_a_connectors_in_flight_cap_are_resource_exhausted() {
    let mut app =
        TestApp::spawn_with(&[("CONNECTOR__SENDER__MAX_IN_FLIGHT_PER_CONNECTOR", "1")]).await;
    let c = app.create("acme", "prod", "alerts").await;
    app.double
        .state()
        .inject("chat.postMessage", Fault::Delay { millis: 1_000 }, 1);
    let first = {
        let mut client = app.client.clone();
        let id = c.id.clone();
        tokio::spawn(async move {
            client
                .send_message(connector_grpc_api::pb::SendMessageRequest {
                    tenant_id: "acme".into(),
                    connector_id: id,
                    text: "first".into(),
                    ..Default::default()
                })
                .await
        })
    };
    // The first holds the connector's one slot while Slack delays it.
    let state = app.double.state();
    eventually("the first send reaches Slack", || {
        state.calls("chat.postMessage") >= 1
    })
    .await;
    let status = app.send("acme", &c.id, "second").await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("in flight"),
        "{}",
        status.message()
    );
    first.await.unwrap().unwrap();
    // Its place is given back once it finishes.
    app.send("acme", &c.id, "third").await.unwrap();
    app.stop().await;
}
