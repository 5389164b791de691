//! The connector cache across replicas: two servers on one PostgreSQL, each caching rows and
//! tokens, each told by `LISTEN/NOTIFY` when the other (or anyone) changes a connector.

use std::time::{Duration, Instant};

use connector_grpc_api::pb::{GetConnectorRequest, SendMessageRequest};
use tonic::Code;

use crate::helpers::{self, TestApp};

/// How long a change may take to reach the other replica in this test: the promise is 100 ms;
/// the bound is generous so a loaded machine does not fail it (the measured time is printed).
const BOUND: Duration = Duration::from_secs(2);

fn get(id: &str) -> GetConnectorRequest {
    GetConnectorRequest {
        tenant_id: "acme".into(),
        id: id.into(),
    }
}

fn send(id: &str) -> SendMessageRequest {
    SendMessageRequest {
        tenant_id: "acme".into(),
        connector_id: id.into(),
        text: "through replica B".into(),
        ..Default::default()
    }
}

/// Replica B: another server on replica A's database, secrets and Slack double, with a
/// long TTL so only the change feed can make it drop what it cached.
async fn replica_b(a: &TestApp) -> helpers::Running {
    helpers::start(helpers::settings(
        &a.db,
        &a.double.api_base_url(),
        &a.prefix,
        &[("CONNECTOR__CACHE__CONNECTOR_TTL_MS", "600000")],
    ))
    .await
}

/// Renames connector `id` with the trigger off: a change the database does not announce.
async fn rename_quietly(a: &TestApp, id: &str, name: &str) {
    a.db.execute(&format!(
        "ALTER TABLE connectors DISABLE TRIGGER connector_changed; \
         UPDATE connectors SET name = '{name}' WHERE id = '{id}'; \
         ALTER TABLE connectors ENABLE TRIGGER connector_changed"
    ))
    .await
    .unwrap();
}

/// The name `b` answers for connector `id`.
async fn name_on(b: &mut helpers::Running, id: &str) -> String {
    b.client
        .get_connector(get(id))
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap()
        .name
}

/// Asks `b` until it answers `name` for connector `id`, failing with `why` after [`BOUND`].
async fn until_named(b: &mut helpers::Running, id: &str, name: &str, why: &str) {
    let started = Instant::now();
    while name_on(b, id).await != name {
        assert!(started.elapsed() < BOUND, "{why}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends through `b` until it is refused with `code`; how long that took.
async fn refused_within(b: &mut helpers::Running, id: &str, code: Code) -> Duration {
    let started = Instant::now();
    loop {
        match b.client.send_message(send(id)).await {
            Err(status) if status.code() == code => return started.elapsed(),
            Err(status) => panic!("unexpected answer {status:?}"),
            Ok(_) => {
                assert!(started.elapsed() < BOUND, "still sending after {BOUND:?}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

#[tokio::test]
async fn a_change_on_one_replica_stops_the_other_from_using_its_cache() {
    let mut a = TestApp::spawn_with(&[("CONNECTOR__CACHE__CONNECTOR_TTL_MS", "600000")]).await;
    let mut b = replica_b(&a).await;
    let id = a.create("acme", "prod", "#alerts").await.id;

    // B caches the row: a change the database does not announce (the trigger off, as if the
    // feed missed it) is not seen by B, which proves it serves from memory.
    b.client.send_message(send(&id)).await.unwrap();
    assert_eq!(name_on(&mut b, &id).await, "prod");
    rename_quietly(&a, &id, "renamed-quietly").await;
    assert_eq!(
        name_on(&mut b, &id).await,
        "prod",
        "B read the database: its cache is off"
    );

    // Marked for re-authorisation on A's side (what a refused refresh does): B refuses to
    // send without calling Slack, within the bound.
    a.db.execute(&format!(
        "UPDATE connectors SET auth_status = 'needs_reauthorization' WHERE id = '{id}'"
    ))
    .await
    .unwrap();
    let took = refused_within(&mut b, &id, Code::FailedPrecondition).await;
    eprintln!("B refused a connector needing re-authorisation {took:?} after the change");
    a.db.execute(&format!(
        "UPDATE connectors SET auth_status = 'ok' WHERE id = '{id}'"
    ))
    .await
    .unwrap();
    // Authorised again: B sends again once the change reaches it.
    let started = Instant::now();
    while let Err(status) = b.client.send_message(send(&id)).await {
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(started.elapsed() < BOUND, "B still refuses after {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Deleted through A: B refuses it within the bound.
    a.client
        .delete_connector(connector_grpc_api::pb::DeleteConnectorRequest {
            tenant_id: "acme".into(),
            id: id.clone(),
        })
        .await
        .unwrap();
    let took = refused_within(&mut b, &id, Code::NotFound).await;
    eprintln!("B refused a deleted connector {took:?} after the delete");
    assert!(took < BOUND);

    helpers::stop(b).await;
    a.stop().await;
}

#[tokio::test]
async fn a_token_replaced_on_one_replica_is_the_one_the_other_sends_with() {
    const NEW: &str = "xoxb-1000-2000-replacedonreplicaa";
    let mut a = TestApp::spawn_with(&[("CONNECTOR__CACHE__CONNECTOR_TTL_MS", "600000")]).await;
    let mut b = replica_b(&a).await;
    let id = a.create("acme", "prod", "#alerts").await.id;
    // B caches the row and the token.
    b.client.send_message(send(&id)).await.unwrap();
    assert_eq!(
        a.double.state().posted().pop().unwrap().token,
        helpers::TOKEN
    );

    a.double.state().add_token(NEW, helpers::TEAM);
    a.client
        .update_connector(connector_grpc_api::pb::UpdateConnectorRequest {
            tenant_id: "acme".into(),
            id: id.clone(),
            slack_bot_token: NEW.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        b.client.send_message(send(&id)).await.unwrap();
        if a.double.state().posted().pop().unwrap().token == NEW {
            break;
        }
        assert!(
            started.elapsed() < BOUND,
            "B still sends with the old token"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "B sent with the replacement token {:?} after the update answered",
        started.elapsed()
    );
    helpers::stop(b).await;
    a.stop().await;
}

#[tokio::test]
async fn a_lost_change_feed_drops_everything_cached() {
    let mut a = TestApp::spawn_with(&[("CONNECTOR__CACHE__CONNECTOR_TTL_MS", "600000")]).await;
    let mut b = replica_b(&a).await;
    let id = a.create("acme", "prod", "#alerts").await.id;
    b.client.get_connector(get(&id)).await.unwrap();
    // A change nobody announces, then the feed connections end (as a database restart or a
    // network cut would): whatever B cached is dropped, and the change is seen.
    rename_quietly(&a, &id, "renamed-quietly").await;
    a.db.execute(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = '{}' AND datname = current_database()",
        connector_adapters_postgres::changes::APPLICATION_NAME
    ))
    .await
    .unwrap();
    until_named(
        &mut b,
        &id,
        "renamed-quietly",
        "B still serves what it cached before the feed was lost",
    )
    .await;
    // The feed is back: B caches again, and announced changes reach it.
    a.db.execute(&format!(
        "UPDATE connectors SET name = 'renamed' WHERE id = '{id}'"
    ))
    .await
    .unwrap();
    until_named(
        &mut b,
        &id,
        "renamed",
        "an announced change did not reach B",
    )
    .await;
    helpers::stop(b).await;
    a.stop().await;
}
