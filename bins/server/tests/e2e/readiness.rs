//! Readiness: a dependency that stops answering turns gRPC health NOT_SERVING and `/readyz`
//! 503 within the check interval, and SERVING again when it returns; liveness and the process
//! are untouched.

use std::time::{Duration, Instant};

use test_support::proxy::{FaultProxy, ProxyMode};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{double, settings, start_with_addrs, stop};

async fn status(addr: std::net::SocketAddr) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let answer = client
        .check(HealthCheckRequest {
            service: "connector.v1.ConnectorService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(answer.status).unwrap()
}

async fn readyz(http: std::net::SocketAddr) -> (u16, String) {
    let r = reqwest::get(format!("http://{http}/readyz")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{what} did not happen"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_secret_store_makes_the_replica_not_ready_until_it_returns() {
    test_support::require_localstack().await.unwrap();
    let localstack = test_support::localstack_endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(localstack).await.unwrap();
    let db = test_support::TestDatabase::create().await.unwrap();
    let double = double().await;
    let endpoint = format!("http://{}", proxy.addr());
    let (running, addr, http) = start_with_addrs(settings(
        &db,
        &double.api_base_url(),
        "readiness/",
        &[
            ("CONNECTOR__AWS__ENDPOINT_URL", &endpoint),
            ("CONNECTOR__READINESS__CHECK_INTERVAL_SECS", "1"),
        ],
    ))
    .await;
    assert_eq!(status(addr).await, ServingStatus::Serving);
    assert_eq!(readyz(http).await, (200, "ready\n".to_owned()));

    proxy.set(ProxyMode::Refuse);
    until("NOT_SERVING", async || {
        status(addr).await == ServingStatus::NotServing
    })
    .await;
    let (code, body) = readyz(http).await;
    assert_eq!(code, 503);
    assert_eq!(body, "not ready: secret store not answering\n");
    let live = reqwest::get(format!("http://{http}/healthz"))
        .await
        .unwrap();
    assert_eq!(live.status().as_u16(), 200, "liveness is not readiness");

    proxy.set(ProxyMode::Pass);
    until("SERVING again", async || {
        status(addr).await == ServingStatus::Serving
    })
    .await;
    assert_eq!(readyz(http).await.0, 200);
    stop(running).await;
}
