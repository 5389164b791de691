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
async fn the_http_listener_drops_slow_headers_and_caps_connections() {
    let app = TestApp::spawn_with(&[
        ("CONNECTOR__HTTP__HEADER_READ_TIMEOUT_SECS", "1"),
        ("CONNECTOR__HTTP__MAX_CONNECTIONS", "2"),
    ])
    .await;
    let addr = app.http_addr();
    // A slow-loris client: headers never finished.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
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
        match reqwest::get(format!("http://{addr}/healthz")).await {
            Ok(ok) if ok.status() == 200 => break,
            other => assert!(Instant::now() < deadline, "never served again: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
