//! Queued delivery end to end (`DELIVERY_QUEUED`): messages accepted at once, posted in order
//! and paced by the server's delivery worker, retried after Slack's 429, failed for good on a
//! permanent error, cancelled before their turn, and read back with GetMessage and
//! ListMessages.

use std::time::{Duration, Instant};

use connector_grpc_api::pb::connector_service_client::ConnectorServiceClient;
use connector_grpc_api::pb::{
    self, CancelMessageRequest, Delivery, GetMessageRequest, ListMessagesRequest, MessageStatus,
    SendMessageRequest,
};
use slack_double::Fault;
use tonic::Code;

use crate::helpers::TestApp;

/// A server a test can call.
trait HasClient {
    fn client(&mut self) -> &mut ConnectorServiceClient<tonic::transport::Channel>;
}

impl HasClient for TestApp {
    fn client(&mut self) -> &mut ConnectorServiceClient<tonic::transport::Channel> {
        &mut self.client
    }
}

impl HasClient for crate::common::Running {
    fn client(&mut self) -> &mut ConnectorServiceClient<tonic::transport::Channel> {
        &mut self.client
    }
}

fn queued(tenant: &str, connector_id: &str, text: &str) -> SendMessageRequest {
    SendMessageRequest {
        tenant_id: tenant.into(),
        connector_id: connector_id.into(),
        text: text.into(),
        delivery: Delivery::Queued as i32,
        ..Default::default()
    }
}

async fn get(
    app: &mut impl HasClient,
    tenant: &str,
    id: &str,
) -> Result<pb::OutboundMessage, tonic::Status> {
    app.client()
        .get_message(GetMessageRequest {
            tenant_id: tenant.into(),
            message_id: id.into(),
        })
        .await
        .map(|r| r.into_inner().message.unwrap())
}

/// Waits (at most 30 s) until message `id` is in a final status; returns it.
async fn settled(app: &mut impl HasClient, tenant: &str, id: &str) -> pb::OutboundMessage {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let m = get(app, tenant, id).await.unwrap();
        let open = [MessageStatus::Queued as i32, MessageStatus::Sending as i32];
        if !open.contains(&m.status) {
            return m;
        }
        assert!(Instant::now() < until, "message {id} never settled: {m:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn queued_messages_are_accepted_at_once_then_posted_in_order_at_the_channels_pace() {
    let mut app = TestApp::spawn_with(&[
        ("CONNECTOR__DELIVERY__CHANNEL_RATE", "20"),
        ("CONNECTOR__DELIVERY__CHANNEL_BURST", "5"),
    ])
    .await;
    let c = app.create("acme", "prod", "#alerts").await;
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..20 {
        let answer = app
            .client
            .send_message(queued("acme", &c.id, &format!("alert {i}")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.status, MessageStatus::Queued as i32);
        assert_eq!(answer.channel_id, "C0ALERTS01");
        assert!(answer.ts.is_empty());
        ids.push(answer.message_id);
    }
    let mut last = None;
    for id in &ids {
        last = Some(settled(&mut app, "acme", id).await);
    }
    let elapsed = started.elapsed();
    let last = last.unwrap();
    assert_eq!(last.status, MessageStatus::Sent as i32, "{last:?}");
    assert_eq!(last.attempts, 1);
    assert!(last.send_time.is_some() && last.create_time.is_some());
    let posted = app.double.state().posted();
    let texts: Vec<&str> = posted.iter().map(|p| p.text.as_str()).collect();
    let wanted: Vec<String> = (0..20).map(|i| format!("alert {i}")).collect();
    assert_eq!(texts, wanted, "in the order queued, each once");
    assert_eq!(posted[19].ts, last.ts);
    // 20 posts at 20 a second after a burst of 5: at least 15 intervals of 50 ms.
    assert!(
        elapsed >= Duration::from_millis(700),
        "{elapsed:?}: not paced"
    );

    // Read back: newest first, by status, in pages; another tenant sees none of it.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .client
            .list_messages(ListMessagesRequest {
                tenant_id: "acme".into(),
                connector_id: c.id.clone(),
                statuses: vec![MessageStatus::Sent as i32],
                page_size: 7,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.messages.into_iter().map(|m| m.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    let status = get(&mut app, "globex", &ids[0]).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = get(&mut app, "acme", "not-a-uuid").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("message_id"), "{status:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_429_pauses_the_channel_and_the_message_is_posted_after_it_in_order() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "alerts").await;
    app.double.state().inject(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    let first = app
        .client
        .send_message(queued("acme", &c.id, "first"))
        .await
        .unwrap()
        .into_inner();
    let second = app
        .client
        .send_message(queued("acme", &c.id, "second"))
        .await
        .unwrap()
        .into_inner();
    let started = Instant::now();
    let a = settled(&mut app, "acme", &first.message_id).await;
    let b = settled(&mut app, "acme", &second.message_id).await;
    assert_eq!(a.status, MessageStatus::Sent as i32, "{a:?}");
    assert_eq!(a.attempts, 2, "the 429, then the post");
    assert_eq!(a.last_error, "ratelimited");
    assert_eq!(b.status, MessageStatus::Sent as i32);
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "Retry-After was honoured"
    );
    let texts: Vec<String> = app
        .double
        .state()
        .posted()
        .into_iter()
        .map(|p| p.text)
        .collect();
    assert_eq!(
        texts,
        ["first", "second"],
        "the second waited for the first"
    );
    app.stop().await;
}

#[tokio::test]
async fn permanent_errors_fail_at_once_and_cancel_stops_what_is_not_yet_posted() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "alerts").await;
    app.double.state().inject(
        "chat.postMessage",
        Fault::SlackError {
            code: "not_in_channel".into(),
        },
        1,
    );
    let doomed = app
        .client
        .send_message(queued("acme", &c.id, "nobody hears"))
        .await
        .unwrap()
        .into_inner();
    let m = settled(&mut app, "acme", &doomed.message_id).await;
    assert_eq!(m.status, MessageStatus::Failed as i32, "{m:?}");
    assert_eq!(m.last_error, "not_in_channel");
    assert_eq!(m.attempts, 1, "a permanent error is not retried");

    // A message due in an hour waits in the outbox; cancelled, it is never posted.
    let mut later = queued("acme", &c.id, "later");
    later.post_at = Some(prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() + 3600,
        nanos: 0,
    });
    let later = app.client.send_message(later).await.unwrap().into_inner();
    let waiting = get(&mut app, "acme", &later.message_id).await.unwrap();
    assert_eq!(waiting.status, MessageStatus::Queued as i32);
    assert!(waiting.next_attempt_time.unwrap().seconds > chrono::Utc::now().timestamp() + 3000);
    for _ in 0..2 {
        let cancelled = app
            .client
            .cancel_message(CancelMessageRequest {
                tenant_id: "acme".into(),
                message_id: later.message_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .message
            .unwrap();
        assert_eq!(cancelled.status, MessageStatus::Cancelled as i32);
    }
    // What is finished cannot be cancelled; another tenant's is not found.
    let status = app
        .client
        .cancel_message(CancelMessageRequest {
            tenant_id: "acme".into(),
            message_id: doomed.message_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("FAILED"), "{status:?}");
    let status = app
        .client
        .cancel_message(CancelMessageRequest {
            tenant_id: "globex".into(),
            message_id: later.message_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // A queued message is one Slack message: no attachments.
    let mut with_file = queued("acme", &c.id, "see file");
    with_file.attachments.push(pb::Attachment {
        filename: "a.txt".into(),
        content: b"hello".to_vec(),
        ..Default::default()
    });
    let status = app.client.send_message(with_file).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("attachments"), "{status:?}");

    // A request_id queues once; reused for another message it is refused.
    let mut keyed = queued("acme", &c.id, "once");
    keyed.request_id = "deploy-42".into();
    let one = app
        .client
        .send_message(keyed.clone())
        .await
        .unwrap()
        .into_inner();
    let two = app
        .client
        .send_message(keyed.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.message_id, two.message_id);
    keyed.text = "another".into();
    let status = app.client.send_message(keyed).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    settled(&mut app, "acme", &one.message_id).await;
    let posted: Vec<String> = app
        .double
        .state()
        .posted()
        .into_iter()
        .map(|p| p.text)
        .collect();
    assert_eq!(posted, ["once"], "nothing else was posted");
    app.stop().await;
}

#[tokio::test]
async fn a_deleted_connectors_queued_messages_fail_with_the_reason() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "alerts").await;
    let mut later = queued("acme", &c.id, "after the delete");
    later.post_at = Some(prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() + 2,
        nanos: 0,
    });
    let later = app.client.send_message(later).await.unwrap().into_inner();
    app.client
        .delete_connector(pb::DeleteConnectorRequest {
            tenant_id: "acme".into(),
            id: c.id.clone(),
        })
        .await
        .unwrap();
    let m = settled(&mut app, "acme", &later.message_id).await;
    assert_eq!(m.status, MessageStatus::Failed as i32, "{m:?}");
    assert_eq!(m.last_error, "connector_deleted");
    assert!(app.double.state().posted().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn two_replicas_share_one_pace_and_slack_answers_them_no_429() {
    let pace = [
        ("CONNECTOR__DELIVERY__CHANNEL_RATE", "10"),
        ("CONNECTOR__DELIVERY__CHANNEL_BURST", "2"),
        ("CONNECTOR__DELIVERY__WORKSPACE_RATE_PER_MINUTE", "6000"),
        ("CONNECTOR__DELIVERY__WORKSPACE_BURST", "50"),
    ];
    let mut a = TestApp::spawn_with(&pace).await;
    // Slack's side: the same limits, enforced; a post past them is a 429 the double counts.
    a.double
        .state()
        .set_rate_limits(Some(slack_double::RateLimits {
            channel_per_second: 10.0,
            channel_burst: 2,
            workspace_per_minute: 6000.0,
            workspace_burst: 50,
        }));
    let mut b = crate::helpers::start(crate::common::config(a.server_env(), &pace)).await;
    let c = a.create("acme", "prod", "#alerts").await;
    let channels = ["C0ALERTS01", "G0PRIVATE1"];
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..30 {
        for channel in channels {
            let mut m = queued("acme", &c.id, &format!("{channel} {i}"));
            m.channel = channel.into();
            // Queued through either replica; either may post it.
            let client = if i % 2 == 0 {
                &mut a.client
            } else {
                &mut b.client
            };
            ids.push(
                client
                    .send_message(m)
                    .await
                    .unwrap()
                    .into_inner()
                    .message_id,
            );
        }
    }
    for id in &ids {
        let m = settled(&mut a, "acme", id).await;
        assert_eq!(m.status, MessageStatus::Sent as i32, "{m:?}");
    }
    let elapsed = started.elapsed();
    assert_eq!(
        a.double.state().rate_limited(),
        0,
        "the two replicas together kept to Slack's pace"
    );
    let posted = a.double.state().posted();
    assert_eq!(posted.len(), 60);
    for channel in channels {
        let texts: Vec<String> = posted
            .iter()
            .filter(|p| p.channel == channel)
            .map(|p| p.text.clone())
            .collect();
        let wanted: Vec<String> = (0..30).map(|i| format!("{channel} {i}")).collect();
        assert_eq!(texts, wanted, "each channel in the order queued");
    }
    // 30 a channel at 10 a second after a burst of 2: at least 2.8 s, and not much more.
    assert!(
        elapsed >= Duration::from_millis(2700),
        "{elapsed:?}: not paced"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "{elapsed:?}: far below the pace"
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_429_holds_the_channel_for_retry_after_on_every_replica() {
    let mut a = TestApp::spawn().await;
    let mut b = crate::helpers::start(crate::common::config(a.server_env(), &[])).await;
    let c = a.create("acme", "prod", "alerts").await;
    a.double.state().inject(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after_secs: 2,
        },
        1,
    );
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..4 {
        let client = if i % 2 == 0 {
            &mut a.client
        } else {
            &mut b.client
        };
        let m = queued("acme", &c.id, &format!("after the pause {i}"));
        ids.push(
            client
                .send_message(m)
                .await
                .unwrap()
                .into_inner()
                .message_id,
        );
    }
    for id in &ids {
        let m = settled(&mut b, "acme", id).await;
        assert_eq!(m.status, MessageStatus::Sent as i32, "{m:?}");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "Retry-After was honoured"
    );
    assert_eq!(
        a.double.state().calls("chat.postMessage"),
        5,
        "one 429, then each message once: no replica posted into the pause"
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn every_status_change_of_a_queued_message_is_an_event_on_the_tenants_stream() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "alerts").await;
    let mut stream = app
        .client
        .stream_events(pb::StreamEventsRequest {
            tenant_id: "acme".into(),
            types: vec!["connector.message_status".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    app.double.state().inject(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    let queued = app
        .client
        .send_message(queued("acme", &c.id, "watched"))
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while seen.last().map(|(s, _): &(String, u64)| s.as_str()) != Some("sent") {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("a status event within 10 s")
            .unwrap()
            .unwrap()
            .event
            .unwrap();
        assert_eq!(event.r#type, "connector.message_status");
        assert_eq!(event.connector_id, c.id);
        assert_eq!(event.channel_id, "C0ALERTS01");
        let payload: serde_json::Value = serde_json::from_str(&event.payload_json).unwrap();
        assert_eq!(payload["message_id"], queued.message_id.as_str());
        if payload["status"] == "sent" {
            assert_eq!(event.ts, payload["ts"].as_str().unwrap());
        }
        seen.push((
            payload["status"].as_str().unwrap().to_owned(),
            payload["attempts"].as_u64().unwrap(),
        ));
    }
    let want = [
        ("queued", 0),
        ("sending", 1),
        ("queued", 1),
        ("sending", 2),
        ("sent", 2),
    ];
    let want: Vec<(String, u64)> = want.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect();
    assert_eq!(
        seen, want,
        "each change once, in order, the 429's retry included"
    );
    app.stop().await;
}

#[tokio::test]
async fn immediate_sends_share_the_budget_of_a_channel_with_queued_messages() {
    let pace = [
        ("CONNECTOR__DELIVERY__CHANNEL_RATE", "10"),
        ("CONNECTOR__DELIVERY__CHANNEL_BURST", "2"),
    ];
    let mut a = TestApp::spawn_with(&pace).await;
    a.double
        .state()
        .set_rate_limits(Some(slack_double::RateLimits {
            channel_per_second: 10.0,
            channel_burst: 2,
            workspace_per_minute: 6000.0,
            workspace_burst: 100,
        }));
    let mut b = crate::helpers::start(crate::common::config(a.server_env(), &pace)).await;
    let c = a.create("acme", "prod", "#alerts").await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let m = queued("acme", &c.id, &format!("queued {i}"));
        ids.push(
            a.client
                .send_message(m)
                .await
                .unwrap()
                .into_inner()
                .message_id,
        );
    }
    // Replica b learns that the channel is in use at its next sweep (each second).
    settled(&mut a, "acme", &ids[0]).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (mut sent, mut paced) = (0, 0);
    for i in 0..10 {
        let m = SendMessageRequest {
            tenant_id: "acme".into(),
            connector_id: c.id.clone(),
            text: format!("immediate {i}"),
            ..Default::default()
        };
        match b.client.send_message(m).await {
            Ok(_) => sent += 1,
            Err(s) => {
                assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
                assert!(s.message().contains("DELIVERY_QUEUED"), "{s:?}");
                paced += 1;
            }
        }
    }
    for id in &ids {
        let m = settled(&mut a, "acme", id).await;
        assert_eq!(m.status, MessageStatus::Sent as i32, "{m:?}");
    }
    assert_eq!(
        a.double.state().rate_limited(),
        0,
        "queued and immediate posts together kept to Slack's pace ({sent} sent, {paced} paced)"
    );
    assert!(sent > 0, "immediate sends wait their turn rather than fail");
    assert_eq!(a.double.state().posted().len(), 40 + sent);
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn immediate_sends_with_a_request_id_are_recorded_and_never_posted_twice_by_both_modes() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "alerts").await;
    let immediate = |text: &str, request_id: &str| SendMessageRequest {
        tenant_id: "acme".into(),
        connector_id: c.id.clone(),
        text: text.into(),
        request_id: request_id.into(),
        ..Default::default()
    };

    // Posted: the answer names its record, which GetMessage reads as SENT and IMMEDIATE.
    let first = app
        .client
        .send_message(immediate("deployed", "deploy-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.status, MessageStatus::Sent as i32);
    assert!(!first.message_id.is_empty(), "{first:?}");
    let m = get(&mut app, "acme", &first.message_id).await.unwrap();
    assert_eq!(m.status, MessageStatus::Sent as i32, "{m:?}");
    assert_eq!(m.delivery, Delivery::Immediate as i32);
    assert_eq!(m.ts, first.ts);
    assert_eq!(m.request_id, "deploy-1");
    assert_eq!(m.attempts, 1);
    assert!(
        m.send_time.is_some() && m.next_attempt_time.is_none(),
        "{m:?}"
    );
    assert!(get(&mut app, "globex", &first.message_id).await.is_err());
    // A repeat answers the same record and posts nothing.
    let again = app
        .client
        .send_message(immediate("deployed", "deploy-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (again.message_id, again.ts),
        (first.message_id.clone(), first.ts)
    );
    // Without a request_id nothing is recorded.
    let unkeyed = app
        .client
        .send_message(immediate("no key", ""))
        .await
        .unwrap()
        .into_inner();
    assert!(unkeyed.message_id.is_empty());

    // Failed: the error names the record (x-message-id), which is FAILED with Slack's code.
    app.double.state().inject(
        "chat.postMessage",
        Fault::SlackError {
            code: "is_archived".into(),
        },
        1,
    );
    let status = app
        .client
        .send_message(immediate("into the void", "deploy-2"))
        .await
        .unwrap_err();
    let record = status
        .metadata()
        .get("x-message-id")
        .unwrap_or_else(|| panic!("no x-message-id: {status:?}"))
        .to_str()
        .unwrap()
        .to_owned();
    let m = get(&mut app, "acme", &record).await.unwrap();
    assert_eq!(m.status, MessageStatus::Failed as i32, "{m:?}");
    assert_eq!(m.last_error, "is_archived");
    assert_eq!(m.delivery, Delivery::Immediate as i32);
    let failed = app
        .client
        .list_messages(ListMessagesRequest {
            tenant_id: "acme".into(),
            connector_id: c.id.clone(),
            statuses: vec![MessageStatus::Failed as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .messages;
    assert_eq!(failed.iter().map(|m| &m.id).collect::<Vec<_>>(), [&record]);

    // Queued first, then sent immediately with the same request_id: posted once, by the queue.
    let mut keyed = queued("acme", &c.id, "queued once");
    keyed.request_id = "deploy-3".into();
    let queued_one = app.client.send_message(keyed).await.unwrap().into_inner();
    settled(&mut app, "acme", &queued_one.message_id).await;
    let answer = app
        .client
        .send_message(immediate("queued once", "deploy-3"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.message_id, queued_one.message_id);
    assert_eq!(answer.status, MessageStatus::Sent as i32);
    let status = app
        .client
        .send_message(immediate("something else", "deploy-3"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let posted: Vec<String> = app
        .double
        .state()
        .posted()
        .into_iter()
        .map(|p| p.text)
        .collect();
    assert_eq!(posted, ["deployed", "no key", "queued once"]);
    app.stop().await;
}

/// Posts the double has of `texts`'s messages, in order, as `(text, metadata message_id)`.
fn posts_with_ids(app: &TestApp) -> Vec<(String, Option<String>)> {
    app.double
        .state()
        .posted()
        .into_iter()
        .map(|p| {
            let id = p
                .metadata
                .as_ref()
                .and_then(|m| m["event_payload"]["message_id"].as_str())
                .map(str::to_owned);
            (p.text, id)
        })
        .collect()
}

#[tokio::test]
async fn a_post_whose_answer_was_lost_is_found_in_the_channels_history_not_posted_again() {
    let mut app = TestApp::spawn_with(&[("CONNECTOR__SLACK__REQUEST_TIMEOUT_SECS", "1")]).await;
    let c = app.create("acme", "prod", "alerts").await;
    // Slack posts the first message, but its answer comes after the client gave up.
    app.double
        .state()
        .inject("chat.postMessage", Fault::AnswerLate { millis: 2_000 }, 1);
    let first = app
        .client
        .send_message(queued("acme", &c.id, "landed, answer lost"))
        .await
        .unwrap()
        .into_inner();
    let second = app
        .client
        .send_message(queued("acme", &c.id, "next in line"))
        .await
        .unwrap()
        .into_inner();
    let m = settled(&mut app, "acme", &first.message_id).await;
    assert_eq!(m.status, MessageStatus::Sent as i32, "{m:?}");
    assert_eq!(m.attempts, 2, "one post, one look at the history");
    assert!(m.last_error.starts_with("slack_answer_lost"), "{m:?}");
    let next = settled(&mut app, "acme", &second.message_id).await;
    assert_eq!(next.status, MessageStatus::Sent as i32, "{next:?}");
    let posts = posts_with_ids(&app);
    assert_eq!(
        posts,
        [
            ("landed, answer lost".to_owned(), Some(first.message_id)),
            ("next in line".to_owned(), Some(second.message_id)),
        ],
        "each posted once, in order, marked with its message ID"
    );
    assert_eq!(app.double.state().posted()[0].ts, m.ts);
    assert!(app.double.state().calls("conversations.history") >= 1);
    app.stop().await;
}

#[tokio::test]
async fn a_post_that_never_reached_slack_is_posted_once_the_history_shows_it_absent() {
    let mut app = TestApp::spawn_with(&[("CONNECTOR__SLACK__REQUEST_TIMEOUT_SECS", "1")]).await;
    let c = app.create("acme", "prod", "alerts").await;
    // The request is lost on its way: nothing is posted, and no answer comes in time.
    app.double
        .state()
        .inject("chat.postMessage", Fault::Lost { millis: 2_000 }, 1);
    let sent = app
        .client
        .send_message(queued("acme", &c.id, "lost on the way"))
        .await
        .unwrap()
        .into_inner();
    let m = settled(&mut app, "acme", &sent.message_id).await;
    assert_eq!(m.status, MessageStatus::Sent as i32, "{m:?}");
    assert_eq!(m.attempts, 2);
    assert_eq!(
        posts_with_ids(&app),
        [("lost on the way".to_owned(), Some(sent.message_id))]
    );
    assert_eq!(app.double.state().calls("chat.postMessage"), 2);
    assert!(app.double.state().calls("conversations.history") >= 1);
    app.stop().await;
}

#[tokio::test]
async fn a_lost_answer_is_unknown_when_the_history_cannot_be_read_and_cannot_be_cancelled() {
    let mut app = TestApp::spawn_with(&[("CONNECTOR__SLACK__REQUEST_TIMEOUT_SECS", "1")]).await;
    let c = app.create("acme", "prod", "alerts").await;
    app.double
        .state()
        .inject("chat.postMessage", Fault::AnswerLate { millis: 2_000 }, 1);
    app.double.state().inject(
        "conversations.history",
        Fault::SlackError {
            code: "missing_scope".into(),
        },
        1,
    );
    let sent = app
        .client
        .send_message(queued("acme", &c.id, "maybe posted"))
        .await
        .unwrap()
        .into_inner();
    // Waiting for its landing check: queued, and refused a cancel (it may be posted).
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let m = get(&mut app, "acme", &sent.message_id).await.unwrap();
        if m.status == MessageStatus::Queued as i32 && m.attempts == 1 {
            break;
        }
        assert!(Instant::now() < until, "never waited for its check: {m:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = app
        .client
        .cancel_message(CancelMessageRequest {
            tenant_id: "acme".into(),
            message_id: sent.message_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("may already have been posted"),
        "{refused:?}"
    );
    let m = settled(&mut app, "acme", &sent.message_id).await;
    assert_eq!(m.status, MessageStatus::Unknown as i32, "{m:?}");
    assert!(
        m.last_error.contains("could not be checked: missing_scope"),
        "{m:?}"
    );
    assert_eq!(app.double.state().posted().len(), 1, "never posted again");
    app.stop().await;
}

#[tokio::test]
async fn refusals_in_two_channels_at_once_pause_the_whole_workspace() {
    // The service believes the workspace may take 6,000 posts a minute; Slack allows 6 (a
    // burst of 2), and says only "429, Retry-After: 10", not which limit it means.
    let mut app = TestApp::spawn_with(&[
        ("CONNECTOR__DELIVERY__CHANNEL_RATE", "100"),
        ("CONNECTOR__DELIVERY__CHANNEL_BURST", "10"),
        ("CONNECTOR__DELIVERY__WORKSPACE_RATE_PER_MINUTE", "6000"),
        ("CONNECTOR__DELIVERY__WORKSPACE_BURST", "100"),
    ])
    .await;
    app.double
        .state()
        .set_rate_limits(Some(slack_double::RateLimits {
            channel_per_second: 100.0,
            channel_burst: 10,
            workspace_per_minute: 6.0,
            workspace_burst: 2,
        }));
    let c = app.create("acme", "prod", "#alerts").await;
    let mut ids = Vec::new();
    for n in 1..=4 {
        let mut m = queued("acme", &c.id, &format!("channel {n}"));
        m.channel = format!("C{n:010}");
        ids.push(
            app.client
                .send_message(m)
                .await
                .unwrap()
                .into_inner()
                .message_id,
        );
    }
    // Two land, two are refused: the second refusal, in another channel while the first is
    // paused, is taken as the workspace's limit.
    let until = Instant::now() + Duration::from_secs(5);
    while app.double.state().rate_limited() < 2 {
        assert!(Instant::now() < until, "Slack never refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The double counts a 429 as it answers; the replica records the pause a moment later,
    // before the refused message's outcome. Both outcomes recorded: the pause is too (a
    // message claimed in between would be refused as well, and retried: that is not what
    // this test is about).
    loop {
        let mut refused = 0;
        for id in &ids {
            let m = get(&mut app, "acme", id).await.unwrap();
            if m.last_error == "ratelimited" {
                refused += 1;
            }
        }
        if refused == 2 {
            break;
        }
        assert!(Instant::now() < until, "the refusals were never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut fifth = queued("acme", &c.id, "channel 5");
    fifth.channel = "C0000000005".into();
    let fifth = app.client.send_message(fifth).await.unwrap().into_inner();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = get(&mut app, "acme", &fifth.message_id).await.unwrap();
    assert_eq!(waiting.status, MessageStatus::Queued as i32, "{waiting:?}");
    assert_eq!(
        waiting.attempts, 0,
        "a channel that saw no 429 waits out the workspace's pause: {waiting:?}"
    );
    assert_eq!(
        app.double.state().rate_limited(),
        2,
        "no post into the pause"
    );
    assert_eq!(app.double.state().posted().len(), 2);
    app.stop().await;
}
