//! Messages that change after posting, and where a send goes: post, update, delete (seen in
//! the Slack double), another channel by name or ID, unfurl flags, attachments over gRPC up to
//! their own limit, and the size limit every other request keeps.

use connector_grpc_api::pb::{
    Attachment, DeleteMessageRequest, GetConnectorRequest, SendMessageRequest, UpdateMessageRequest,
};
use tonic::Code;

use crate::helpers::TestApp;

fn send(id: &str, text: &str) -> SendMessageRequest {
    SendMessageRequest {
        tenant_id: "acme".into(),
        connector_id: id.into(),
        text: text.into(),
        ..Default::default()
    }
}

fn update(id: &str, channel: &str, ts: &str, text: &str) -> UpdateMessageRequest {
    UpdateMessageRequest {
        tenant_id: "acme".into(),
        connector_id: id.into(),
        channel_id: channel.into(),
        ts: ts.into(),
        text: text.into(),
        ..Default::default()
    }
}

fn delete(id: &str, channel: &str, ts: &str) -> DeleteMessageRequest {
    DeleteMessageRequest {
        tenant_id: "acme".into(),
        connector_id: id.into(),
        channel_id: channel.into(),
        ts: ts.into(),
    }
}

#[tokio::test]
async fn a_message_is_posted_then_updated_then_deleted() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "deploys", "#alerts").await;
    let sent = app
        .client
        .send_message(send(&c.id, "deploy started"))
        .await
        .unwrap()
        .into_inner();

    let updated = app
        .client
        .update_message(UpdateMessageRequest {
            blocks_json: r#"[{"type":"section","text":{"type":"mrkdwn","text":"*finished*"}}]"#
                .into(),
            ..update(&c.id, &sent.channel_id, &sent.ts, "deploy finished")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (updated.channel_id.as_str(), updated.ts.as_str()),
        (sent.channel_id.as_str(), sent.ts.as_str())
    );
    let seen = app.double.state().posted().pop().unwrap();
    assert_eq!(
        (seen.text.as_str(), seen.edits, seen.deleted),
        ("deploy finished", 1, false)
    );
    assert_eq!(seen.blocks.unwrap()[0]["text"]["text"], "*finished*");

    app.client
        .delete_message(delete(&c.id, &sent.channel_id, &sent.ts))
        .await
        .unwrap();
    assert!(app.double.state().posted().pop().unwrap().deleted);

    // Gone now: changing or deleting it again is NOT_FOUND; a malformed reference names its
    // field; another tenant's connector is not found.
    let again = app
        .client
        .delete_message(delete(&c.id, &sent.channel_id, &sent.ts))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound, "{again:?}");
    let again = app
        .client
        .update_message(update(&c.id, &sent.channel_id, &sent.ts, "too late"))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound, "{again:?}");
    let bad = app
        .client
        .update_message(update(&c.id, &sent.channel_id, "yesterday", "x"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("ts:"), "{bad:?}");
    let bad = app
        .client
        .delete_message(delete(&c.id, "alerts", &sent.ts))
        .await
        .unwrap_err();
    assert!(bad.message().starts_with("channel_id:"), "{bad:?}");
    let other = app
        .client
        .update_message(UpdateMessageRequest {
            tenant_id: "globex".into(),
            ..update(&c.id, &sent.channel_id, &sent.ts, "x")
        })
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_cannot_change_messages_another_tenants_connector_posted() {
    let mut app = TestApp::spawn().await;
    // Two tenants' connectors through the same Slack bot (the same token): Slack itself would
    // let either change the other's messages.
    let acme = app.create("acme", "deploys", "#alerts").await;
    let globex = app.create("globex", "shared-bot", "#alerts").await;
    let sent = app
        .client
        .send_message(send(&acme.id, "acme's deploy"))
        .await
        .unwrap()
        .into_inner();
    let at = chrono::Utc::now() + chrono::Duration::hours(1);
    let scheduled = app
        .client
        .send_message(SendMessageRequest {
            post_at: Some(prost_types::Timestamp {
                seconds: at.timestamp(),
                nanos: 0,
            }),
            ..send(&acme.id, "acme's later report")
        })
        .await
        .unwrap()
        .into_inner();
    let as_globex = |mut r: UpdateMessageRequest| {
        r.tenant_id = "globex".into();
        r.connector_id = globex.id.clone();
        r
    };
    let stolen = app
        .client
        .update_message(as_globex(update(
            &acme.id,
            &sent.channel_id,
            &sent.ts,
            "pwned",
        )))
        .await
        .unwrap_err();
    assert_eq!(stolen.code(), Code::NotFound, "{stolen:?}");
    let stolen = app
        .client
        .delete_message(DeleteMessageRequest {
            tenant_id: "globex".into(),
            ..delete(&globex.id, &sent.channel_id, &sent.ts)
        })
        .await
        .unwrap_err();
    assert_eq!(stolen.code(), Code::NotFound, "{stolen:?}");
    let stolen = app
        .client
        .cancel_scheduled_message(connector_grpc_api::pb::CancelScheduledMessageRequest {
            tenant_id: "globex".into(),
            connector_id: globex.id.clone(),
            channel_id: scheduled.channel_id.clone(),
            scheduled_message_id: scheduled.scheduled_message_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(stolen.code(), Code::NotFound, "{stolen:?}");
    // Slack was never asked; acme's messages are as they were.
    let state = app.double.state();
    for method in ["chat.update", "chat.delete", "chat.deleteScheduledMessage"] {
        assert_eq!(state.calls(method), 0, "{method}");
    }
    let seen = state.posted().pop().unwrap();
    assert_eq!(
        (seen.text.as_str(), seen.edits, seen.deleted),
        ("acme's deploy", 0, false)
    );
    assert!(!state.scheduled()[0].cancelled);

    // A message globex's connector posted is globex's to change.
    let own = app
        .client
        .send_message(SendMessageRequest {
            tenant_id: "globex".into(),
            ..send(&globex.id, "globex's own")
        })
        .await
        .unwrap()
        .into_inner();
    app.client
        .update_message(as_globex(update(
            &globex.id,
            &own.channel_id,
            &own.ts,
            "edited",
        )))
        .await
        .unwrap();
    // And acme still changes its own.
    app.client
        .update_message(update(&acme.id, &sent.channel_id, &sent.ts, "acme edited"))
        .await
        .unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_send_can_name_another_channel_and_set_unfurling() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "#alerts").await;
    let by_name = app
        .client
        .send_message(SendMessageRequest {
            channel: "#private-ops".into(),
            unfurl_links: Some(false),
            unfurl_media: Some(true),
            ..send(&c.id, "to the ops channel")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_name.channel_id, "G0PRIVATE1");
    let seen = app.double.state().posted().pop().unwrap();
    assert_eq!(
        (seen.unfurl_links, seen.unfurl_media),
        (Some(false), Some(true))
    );
    // The name is remembered: a second send does not list channels again.
    let listed = app.double.state().calls("conversations.list");
    app.client
        .send_message(SendMessageRequest {
            channel: "private-ops".into(),
            ..send(&c.id, "again")
        })
        .await
        .unwrap();
    assert_eq!(app.double.state().calls("conversations.list"), listed);
    let by_id = app
        .client
        .send_message(SendMessageRequest {
            channel: "C0000000007".into(),
            ..send(&c.id, "by ID")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id.channel_id, "C0000000007");
    let missing = app
        .client
        .send_message(SendMessageRequest {
            channel: "#no-such-channel".into(),
            ..send(&c.id, "nowhere")
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::FailedPrecondition, "{missing:?}");
    assert!(
        missing.message().contains("#no-such-channel"),
        "{missing:?}"
    );
    // The default channel is unchanged.
    let still = app
        .client
        .get_connector(GetConnectorRequest {
            tenant_id: "acme".into(),
            id: c.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(still.default_channel_id, "C0ALERTS01");
    app.stop().await;
}

#[tokio::test]
async fn a_five_megabyte_attachment_arrives_whole_and_the_limits_hold() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "#alerts").await;
    let content: Vec<u8> = (0..5 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let sent = app
        .client
        .send_message(SendMessageRequest {
            attachments: vec![Attachment {
                filename: "build.log".into(),
                title: "The build's log".into(),
                content: content.clone(),
            }],
            ..send(&c.id, "the log is attached")
        })
        .await
        .unwrap()
        .into_inner();
    let files = app.double.state().files();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].filename, "build.log");
    assert_eq!(files[0].title, "The build's log");
    assert_eq!(files[0].channel, sent.channel_id);
    assert!(files[0].content == content, "the bytes arrived whole");

    // Past the attachment limit (10 MiB by default): OUT_OF_RANGE, nothing posted.
    let posted = app.double.state().posted().len();
    let too_big = app
        .client
        .send_message(SendMessageRequest {
            attachments: vec![
                Attachment {
                    filename: "a.bin".into(),
                    content: vec![1; 6 * 1024 * 1024],
                    ..Default::default()
                },
                Attachment {
                    filename: "b.bin".into(),
                    content: vec![2; 4 * 1024 * 1024 + 64 * 1024],
                    ..Default::default()
                },
            ],
            ..send(&c.id, "too much")
        })
        .await
        .unwrap_err();
    assert_eq!(too_big.code(), Code::OutOfRange, "{too_big:?}");
    assert!(
        too_big.message().contains("MAX_ATTACHMENT_BYTES"),
        "{too_big:?}"
    );
    assert_eq!(app.double.state().posted().len(), posted);

    // Other requests keep the message limit (1 MiB by default).
    let huge = app
        .client
        .get_connector(GetConnectorRequest {
            tenant_id: "acme".into(),
            id: "x".repeat(2 * 1024 * 1024),
        })
        .await
        .unwrap_err();
    assert_eq!(huge.code(), Code::OutOfRange, "{huge:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_message_is_scheduled_then_cancelled() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "#alerts").await;
    let at = chrono::Utc::now() + chrono::Duration::hours(2);
    let scheduled = app
        .client
        .send_message(SendMessageRequest {
            post_at: Some(prost_types::Timestamp {
                seconds: at.timestamp(),
                nanos: 0,
            }),
            request_id: "nightly-2026-11-28".into(),
            ..send(&c.id, "the nightly report is late")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(scheduled.channel_id, "C0ALERTS01");
    assert!(scheduled.ts.is_empty(), "{scheduled:?}");
    assert!(
        scheduled.scheduled_message_id.starts_with('Q'),
        "{scheduled:?}"
    );
    let kept = app.double.state().scheduled();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].post_at, kept[0].text.as_str()),
        (at.timestamp(), "the nightly report is late")
    );
    assert!(app.double.state().posted().is_empty(), "not posted now");

    // Retried with its request_id: the same schedule, not a second one.
    let again = app
        .client
        .send_message(SendMessageRequest {
            post_at: Some(prost_types::Timestamp {
                seconds: at.timestamp(),
                nanos: 0,
            }),
            request_id: "nightly-2026-11-28".into(),
            ..send(&c.id, "the nightly report is late")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, scheduled);
    assert_eq!(app.double.state().scheduled().len(), 1);

    let cancel = connector_grpc_api::pb::CancelScheduledMessageRequest {
        tenant_id: "acme".into(),
        connector_id: c.id.clone(),
        channel_id: scheduled.channel_id.clone(),
        scheduled_message_id: scheduled.scheduled_message_id.clone(),
    };
    app.client
        .cancel_scheduled_message(cancel.clone())
        .await
        .unwrap();
    assert!(app.double.state().scheduled()[0].cancelled);
    let twice = app
        .client
        .cancel_scheduled_message(cancel)
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::NotFound, "{twice:?}");

    // In the past, or with files: refused, naming the field.
    for (request, field) in [
        (
            SendMessageRequest {
                post_at: Some(prost_types::Timestamp {
                    seconds: chrono::Utc::now().timestamp() - 60,
                    nanos: 0,
                }),
                ..send(&c.id, "too late")
            },
            "post_at",
        ),
        (
            SendMessageRequest {
                post_at: Some(prost_types::Timestamp {
                    seconds: at.timestamp(),
                    nanos: 0,
                }),
                attachments: vec![Attachment {
                    filename: "a.txt".into(),
                    content: b"a".to_vec(),
                    ..Default::default()
                }],
                ..send(&c.id, "with a file")
            },
            "attachments",
        ),
    ] {
        let refused = app.client.send_message(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().starts_with(field), "{refused:?}");
    }
    assert_eq!(app.double.state().scheduled().len(), 1);
    app.stop().await;
}
