//! Idempotent `SendMessage`: a `request_id` posts once, across retries, replicas and lost
//! answers.

use std::time::Duration;

use connector_grpc_api::pb::SendMessageRequest;
use slack_double::Fault;
use tonic::Code;

use crate::helpers::{TestApp, settings, start, stop};

fn keyed(connector_id: &str, text: &str, request_id: &str) -> SendMessageRequest {
    SendMessageRequest {
        tenant_id: "acme".into(),
        connector_id: connector_id.into(),
        text: text.into(),
        request_id: request_id.into(),
        ..Default::default()
    }
}

fn posts_of(app: &TestApp, text: &str) -> usize {
    app.double
        .state()
        .posted()
        .iter()
        .filter(|p| p.text == text)
        .count()
}

#[tokio::test]
async fn the_same_request_id_posts_once_and_answers_with_the_first_result() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "#alerts").await;
    let first = app
        .client
        .send_message(keyed(&c.id, "deploy 42 started", "deploy-42"))
        .await
        .unwrap()
        .into_inner();
    let again = app
        .client
        .send_message(keyed(&c.id, "deploy 42 started", "deploy-42"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, first);
    assert_eq!(posts_of(&app, "deploy 42 started"), 1);

    let reused = app
        .client
        .send_message(keyed(&c.id, "another text", "deploy-42"))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert!(reused.message().starts_with("request_id:"), "{reused:?}");
    let bad = app
        .client
        .send_message(keyed(&c.id, "x", "has space"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("request_id"), "{bad:?}");
    assert_eq!(posts_of(&app, "another text") + posts_of(&app, "x"), 0);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_duplicates_on_two_replicas_post_once() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "#alerts").await;
    let replica_b = start(settings(
        &app.db,
        &app.double.api_base_url(),
        &app.prefix,
        &[],
    ))
    .await;
    let mut client_b = replica_b.client.clone();
    // The first post's answer is slow, so the duplicate surely arrives while it is in flight.
    app.double
        .state()
        .inject("chat.postMessage", Fault::AnswerLate { millis: 400 }, 1);
    let mut client_a = app.client.clone();
    let (a, b) = tokio::join!(
        client_a.send_message(keyed(&c.id, "failover done", "fo-1")),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            client_b
                .send_message(keyed(&c.id, "failover done", "fo-1"))
                .await
        }
    );
    let (a, b) = (a.unwrap().into_inner(), b.unwrap().into_inner());
    assert_eq!(
        a, b,
        "the duplicate waited for the first and got its result"
    );
    assert_eq!(posts_of(&app, "failover done"), 1);
    stop(replica_b).await;
    app.stop().await;
}

/// Retries `request` as a caller would, while it is UNAVAILABLE with a RetryInfo (the history
/// cannot tell yet), for at most 30 s: the answer that ends it.
async fn retry_until_settled(
    app: &TestApp,
    request: &SendMessageRequest,
) -> Result<connector_grpc_api::pb::SendMessageResponse, tonic::Status> {
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match app.client.clone().send_message(request.clone()).await {
            Err(e) if e.code() == Code::Unavailable && std::time::Instant::now() < give_up => {
                assert!(e.message().contains("channel's history"), "{e:?}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => return other.map(tonic::Response::into_inner),
        }
    }
}

#[tokio::test]
async fn a_post_whose_answer_is_lost_is_unavailable_and_its_repeat_answers_what_landed() {
    let mut app = TestApp::spawn_with(&[("CONNECTOR__SLACK__REQUEST_TIMEOUT_SECS", "1")]).await;
    let c = app.create("acme", "prod", "#alerts").await;
    app.double
        .state()
        .inject("chat.postMessage", Fault::AnswerLate { millis: 2_500 }, 1);
    let request = keyed(&c.id, "maybe posted", "lost-1");
    let lost = app.client.send_message(request.clone()).await.unwrap_err();
    assert_eq!(lost.code(), Code::Unavailable, "{lost:?}");
    assert!(lost.message().contains("may have been posted"), "{lost:?}");
    assert_eq!(posts_of(&app, "maybe posted"), 1, "Slack did act on it");

    // At once the history cannot tell yet (a request on its way may still land): retry later.
    let early = app.client.send_message(request.clone()).await.unwrap_err();
    assert_eq!(early.code(), Code::Unavailable, "{early:?}");
    let details = tonic_types::StatusExt::get_error_details(&early);
    assert!(details.retry_info().is_some(), "{early:?}");
    // Then the repeat finds the message in the channel's history and answers it.
    let answer = retry_until_settled(&app, &request).await.unwrap();
    let landed = app
        .double
        .state()
        .posted()
        .into_iter()
        .find(|p| p.text == "maybe posted")
        .unwrap();
    assert_eq!(answer.ts, landed.ts);
    assert!(!answer.message_id.is_empty(), "{answer:?}");
    assert!(app.double.state().calls("conversations.history") >= 1);
    assert_eq!(posts_of(&app, "maybe posted"), 1, "never posted twice");
    // Settled: a later repeat answers the same, from the record.
    let again = app.client.send_message(request).await.unwrap().into_inner();
    assert_eq!(again.ts, answer.ts);
    app.stop().await;
}

#[tokio::test]
async fn a_post_lost_on_its_way_is_posted_once_by_its_repeat() {
    let mut app = TestApp::spawn_with(&[("CONNECTOR__SLACK__REQUEST_TIMEOUT_SECS", "1")]).await;
    let c = app.create("acme", "prod", "#alerts").await;
    // The request never reaches Slack, and no answer comes in time.
    app.double
        .state()
        .inject("chat.postMessage", Fault::Lost { millis: 2_000 }, 1);
    let request = keyed(&c.id, "lost on the way", "lost-2");
    let lost = app.client.send_message(request.clone()).await.unwrap_err();
    assert_eq!(lost.code(), Code::Unavailable, "{lost:?}");
    assert_eq!(posts_of(&app, "lost on the way"), 0);
    let answer = retry_until_settled(&app, &request).await.unwrap();
    assert_eq!(
        posts_of(&app, "lost on the way"),
        1,
        "posted by the repeat, once"
    );
    assert_eq!(app.double.state().posted().last().unwrap().ts, answer.ts);
    assert_eq!(app.double.state().calls("chat.postMessage"), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_lost_answer_is_never_reposted_when_the_history_cannot_be_read() {
    let mut app = TestApp::spawn_with(&[("CONNECTOR__SLACK__REQUEST_TIMEOUT_SECS", "1")]).await;
    let c = app.create("acme", "prod", "#alerts").await;
    app.double
        .state()
        .inject("chat.postMessage", Fault::AnswerLate { millis: 2_500 }, 1);
    app.double.state().inject(
        "conversations.history",
        Fault::SlackError {
            code: "missing_scope".into(),
        },
        1,
    );
    let request = keyed(&c.id, "maybe posted", "lost-3");
    app.client.send_message(request.clone()).await.unwrap_err();
    let refused = retry_until_settled(&app, &request).await.unwrap_err();
    assert_eq!(refused.code(), Code::Aborted, "{refused:?}");
    assert!(
        refused.message().contains("not posted again"),
        "{refused:?}"
    );
    assert_eq!(posts_of(&app, "maybe posted"), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_send_outlives_a_caller_that_gave_up_and_its_retry_gets_the_result() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "#alerts").await;
    app.double
        .state()
        .inject("chat.postMessage", Fault::AnswerLate { millis: 800 }, 1);
    let mut request = tonic::Request::new(keyed(&c.id, "slow answer", "slow-1"));
    request.set_timeout(Duration::from_millis(200));
    let gave_up = app.client.send_message(request).await.unwrap_err();
    assert_eq!(gave_up.code(), Code::Cancelled, "{gave_up:?}");
    // The retry arrives while the first is still running: it waits for it.
    let retried = app
        .client
        .send_message(keyed(&c.id, "slow answer", "slow-1"))
        .await
        .unwrap()
        .into_inner();
    let posted = app.double.state().posted();
    let landed: Vec<_> = posted.iter().filter(|p| p.text == "slow answer").collect();
    assert_eq!(landed.len(), 1);
    assert_eq!(landed[0].ts, retried.ts);
    app.stop().await;
}
