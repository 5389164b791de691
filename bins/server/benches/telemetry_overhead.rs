//! What metrics and spans add to a call when traces are off: the gRPC layer
//! (`GrpcTelemetryLayer`: counters, histogram, in-flight gauge, the server span with
//! `traceparent` handling) around a service that answers at once, and an observed store call
//! (`Observed`: span, counter, histogram) around a store that answers at once, each against the
//! bare call. The process runs as the server does: the Prometheus recorder installed and log
//! lines at INFO (written to a sink), no OpenTelemetry layer.
//!
//! `cargo bench -p connector-server --bench telemetry_overhead` (`scripts/bench.sh` runs it);
//! docs/performance.md keeps a run.

// A benchmark: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::http;
use connector_domain::{Connector, ConnectorId, TenantId};
use connector_instrumentation::Observed;
use connector_ports::{ConnectorQueries, RepositoryError, StatusCount};
use connector_server::metrics::GrpcTelemetryLayer;
use tower::{Layer as _, Service, ServiceExt as _};
use tracing_subscriber::prelude::*;

/// A store whose reads answer at once.
struct Instant0;

#[async_trait]
impl ConnectorQueries for Instant0 {
    async fn get_active(
        &self,
        _: &TenantId,
        _: ConnectorId,
    ) -> Result<Option<Connector>, RepositoryError> {
        Ok(None)
    }
    async fn find_active(&self, _: ConnectorId) -> Result<Option<Connector>, RepositoryError> {
        Ok(None)
    }
    async fn list_active(
        &self,
        _: &TenantId,
        _: Option<ConnectorId>,
        _: u32,
        _: Option<connector_domain::ConnectorStatus>,
    ) -> Result<Vec<Connector>, RepositoryError> {
        Ok(Vec::new())
    }
    async fn count_by_status(&self) -> Result<Vec<StatusCount>, RepositoryError> {
        Ok(Vec::new())
    }
}

const CALLS: u32 = 200_000;

/// The median over 5 rounds of the time per call of `f`.
async fn per_call<F, Fut>(mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..CALLS / 10 {
        f().await;
    }
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..CALLS {
            f().await;
        }
        rounds.push(started.elapsed() / CALLS);
    }
    rounds.sort();
    rounds[2]
}

fn request() -> http::Request<()> {
    http::Request::builder()
        .uri("/connector.v1.ConnectorService/GetConnector")
        .body(())
        .unwrap()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    connector_server::metrics::handle();
    // The server's log layer (JSON lines at INFO), writing to a sink; no OpenTelemetry layer.
    let log = connector_server::ServerConfig::load_from(
        None,
        Some(
            [
                ("CONNECTOR__LOG__FORMAT".to_owned(), "json".to_owned()),
                // BENCH_LOG_FILTER=warn shows what the metrics alone cost.
                (
                    "CONNECTOR__LOG__FILTER".to_owned(),
                    std::env::var("BENCH_LOG_FILTER").unwrap_or_else(|_| "info".to_owned()),
                ),
            ]
            .into_iter()
            .collect(),
        ),
    )
    .unwrap()
    .log;
    // RUST_LOG would replace the configured filter the benchmark means to measure.
    if std::env::var_os("RUST_LOG").is_some() {
        panic!("unset RUST_LOG: the benchmark measures the configured filter");
    }
    let _ = tracing_subscriber::registry()
        .with(connector_server::telemetry::log_layer(&log))
        .try_init();

    let answer = tower::service_fn(|_: http::Request<()>| async {
        Ok::<_, Infallible>(http::Response::new(()))
    });
    let bare_grpc = per_call(|| {
        let svc = answer;
        async move {
            black_box(svc.oneshot(request()).await.unwrap());
        }
    })
    .await;
    let mut layered = GrpcTelemetryLayer.layer(answer);
    let layered_grpc = per_call(|| {
        let call = layered.call(request());
        async move {
            black_box(call.await.unwrap());
        }
    })
    .await;
    let mut with_parent = GrpcTelemetryLayer.layer(answer);
    let traced_grpc = per_call(|| {
        let mut r = request();
        r.headers_mut().insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let call = with_parent.call(r);
        async move {
            black_box(call.await.unwrap());
        }
    })
    .await;

    let (tenant, id) = (TenantId::parse("t", "acme").unwrap(), ConnectorId::new_v7());
    let bare = Instant0;
    let bare_store = per_call(|| async {
        black_box(bare.get_active(&tenant, id).await.unwrap());
    })
    .await;
    let observed = Observed::new(Instant0);
    let observed_store = per_call(|| async {
        black_box(observed.get_active(&tenant, id).await.unwrap());
    })
    .await;

    let ns = |d: Duration| d.as_nanos();
    println!("| call | bare | with metrics and spans (traces off) | added |");
    println!("|---|---|---|---|");
    for (what, bare, with) in [
        ("gRPC layer, no traceparent", bare_grpc, layered_grpc),
        ("gRPC layer, with traceparent", bare_grpc, traced_grpc),
        ("store call (`get_active`)", bare_store, observed_store),
    ] {
        println!(
            "| {what} | {} ns | {} ns | {} ns |",
            ns(bare),
            ns(with),
            ns(with.saturating_sub(bare))
        );
    }
}
