//! The `SendMessage` RPC end to end: what lands in Slack, with which token, and every status
//! code of its rows in the contract's table.

use connector_grpc_api::pb::{DeleteConnectorRequest, SendMessageRequest};
use slack_double::Fault;
use tonic::Code;

use crate::helpers::{TOKEN, TestApp};

#[tokio::test]
async fn a_message_lands_in_the_default_channel_with_the_connectors_token() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "#alerts").await;
    let sent = app.send("acme", &c.id, "disk 91% full").await.unwrap();
    assert_eq!(sent.channel_id, "C0ALERTS01");
    let posted = app.double.state().posted();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].text, "disk 91% full");
    assert_eq!(posted[0].channel, "C0ALERTS01");
    assert_eq!(posted[0].token, TOKEN);
    assert_eq!(posted[0].ts, sent.ts);

    // A thread reply, broadcast, with blocks.
    let reply = app
        .client
        .send_message(SendMessageRequest {
            tenant_id: "acme".into(),
            connector_id: c.id.clone(),
            text: "fixed".into(),
            thread_ts: sent.ts.clone(),
            reply_broadcast: true,
            blocks_json: r#"[{"type":"section","text":{"type":"mrkdwn","text":"*fixed*"}}]"#.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let posted = app.double.state().posted();
    assert_eq!(posted[1].ts, reply.ts);
    assert_eq!(posted[1].thread_ts.as_deref(), Some(sent.ts.as_str()));
    assert!(posted[1].reply_broadcast);
    assert_eq!(posted[1].blocks.as_ref().unwrap()[0]["type"], "section");
    app.stop().await;
}

#[tokio::test]
async fn rate_limits_are_waited_out_then_resource_exhausted_past_the_budget() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "alerts").await;
    app.double.state().inject(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    app.send("acme", &c.id, "after a wait").await.unwrap();
    assert_eq!(app.double.state().posted().len(), 1);

    app.double.state().inject(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after_secs: 300,
        },
        1,
    );
    let status = app.send("acme", &c.id, "too soon").await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(app.double.state().posted().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn unknown_foreign_and_deleted_connectors_are_not_found_and_post_nothing() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "alerts").await;
    let status = app
        .send("acme", &uuid::Uuid::now_v7().to_string(), "x")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = app.send("globex", &c.id, "x").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    app.send("acme", &c.id, "warm the token cache")
        .await
        .unwrap();
    app.client
        .delete_connector(DeleteConnectorRequest {
            tenant_id: "acme".into(),
            id: c.id.clone(),
        })
        .await
        .unwrap();
    let status = app.send("acme", &c.id, "after delete").await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "a cached token must not outlive the connector"
    );
    assert_eq!(app.double.state().posted().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn channel_and_token_problems_are_failed_precondition() {
    let mut app = TestApp::spawn().await;
    let outside = app.create("acme", "outside", "outside").await;
    let status = app.send("acme", &outside.id, "x").await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("not a member"),
        "{}",
        status.message()
    );

    let c = app.create("acme", "prod", "alerts").await;
    app.double.state().set_archived("C0ALERTS01", true);
    let status = app.send("acme", &c.id, "x").await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("archived"),
        "{}",
        status.message()
    );
    app.double.state().set_archived("C0ALERTS01", false);

    app.double.state().revoke(TOKEN);
    let status = app.send("acme", &c.id, "x").await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("token_revoked"),
        "{}",
        status.message()
    );
    assert!(!status.message().contains(TOKEN));
    assert!(app.double.state().posted().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_are_invalid_argument_naming_the_field() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "alerts").await;
    let base = SendMessageRequest {
        tenant_id: "acme".into(),
        connector_id: c.id.clone(),
        text: "x".into(),
        ..Default::default()
    };
    let cases = [
        (
            SendMessageRequest {
                tenant_id: String::new(),
                ..base.clone()
            },
            "tenant_id",
        ),
        (
            SendMessageRequest {
                connector_id: "nope".into(),
                ..base.clone()
            },
            "connector_id",
        ),
        (
            SendMessageRequest {
                text: String::new(),
                ..base.clone()
            },
            "text",
        ),
        (
            SendMessageRequest {
                thread_ts: "abc".into(),
                ..base.clone()
            },
            "thread_ts",
        ),
        (
            SendMessageRequest {
                reply_broadcast: true,
                ..base.clone()
            },
            "reply_broadcast",
        ),
        (
            SendMessageRequest {
                blocks_json: "{not json".into(),
                ..base.clone()
            },
            "blocks_json",
        ),
    ];
    for (req, field) in cases {
        let status = app.client.send_message(req).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            status.message().starts_with(field),
            "{field}: {}",
            status.message()
        );
    }
    // Slack's own verdict on the blocks is also the caller's error.
    app.double.state().inject(
        "chat.postMessage",
        Fault::SlackError {
            code: "invalid_blocks".into(),
        },
        1,
    );
    let status = app
        .client
        .send_message(SendMessageRequest {
            blocks_json: r#"[{"type":"bogus"}]"#.into(),
            ..base.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("blocks_json"),
        "{}",
        status.message()
    );
    assert!(app.double.state().posted().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn slack_down_is_unavailable() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "alerts").await;
    app.double
        .state()
        .inject("chat.postMessage", Fault::ServerError { status: 502 }, 100);
    let status = app.send("acme", &c.id, "x").await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    app.stop().await;
}

#[tokio::test]
async fn text_beyond_slacks_limit_continues_in_the_thread() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "alerts").await;
    let text = "line of a long log\n".repeat(5000); // 95,000 characters
    let sent = app.send("acme", &c.id, &text).await.unwrap();
    let posted = app.double.state().posted();
    assert_eq!(posted.len(), 3);
    assert_eq!(posted[0].ts, sent.ts);
    assert!(
        posted[1..]
            .iter()
            .all(|p| p.thread_ts.as_deref() == Some(sent.ts.as_str()))
    );
    let rejoined: String = posted.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(rejoined, text, "nothing lost, nothing reordered");
    assert!(posted.iter().all(|p| p.text.chars().count() <= 40_000));
    app.stop().await;
}
