//! Prometheus metrics: the process's recorder (the `metrics` facade with
//! `metrics-exporter-prometheus`), the page `GET /metrics` renders, and the one tower layer
//! that counts, times and traces every gRPC call (a span per call, continuing the caller's
//! `traceparent`).
//!
//! Names follow Prometheus conventions (`connector_` prefix, `_total`, `_seconds`); labels are
//! bounded: `method` is one of the services' methods (anything else is `other`), `code` one of
//! gRPC's 17 codes. No label carries a tenant, a connector or any caller-chosen value.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::Instrument as _;

/// Latency buckets of every `_seconds` histogram: 1 ms to 30 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Queue-to-sent buckets: 50 ms to the default 30-minute delivery deadline (a full match wins
/// over the suffix's).
const DELIVERY_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The handle rendering this process's metrics, the recorder installed on first use. (If a
/// host program installed another global recorder first, the page shows only build info.)
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("connector_delivery_queue_to_sent_seconds".into()),
                    &DELIVERY_BUCKETS,
                )
                .unwrap_or_else(|_| unreachable!("the delivery buckets are not empty"))
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .unwrap_or_else(|_| unreachable!("the latency buckets are not empty"))
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "another metrics recorder is installed; /metrics shows only build info"
                );
            }
            describe();
            handle
        })
        .clone()
}

/// How often histogram samples are folded into their buckets when nobody scrapes `/metrics`.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Folds recorded histogram samples into their buckets every [`UPKEEP_INTERVAL`] until
/// aborted. The recorder keeps each sample until a render or an upkeep drains it, so without
/// this a server nobody scrapes would grow by every call's latencies (the soak saw about
/// 2 MiB in ten minutes at 40 calls/s). The exporter's own builder spawns the same task; the
/// recorder is built here without it because the page is served by our HTTP listener.
pub fn spawn_upkeep() -> tokio::task::JoinHandle<()> {
    let handle = handle();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    })
}

fn describe() {
    connector_app::metrics::describe();
    metrics::describe_counter!(
        "connector_grpc_requests_total",
        "gRPC calls finished, by method and status code"
    );
    metrics::describe_histogram!(
        "connector_grpc_request_duration_seconds",
        metrics::Unit::Seconds,
        "gRPC call latency until the response headers, by method"
    );
    metrics::describe_gauge!(
        "connector_grpc_requests_in_flight",
        "gRPC calls being served, by method"
    );
    metrics::describe_counter!(
        "connector_grpc_refused_before_body_total",
        "gRPC requests refused before their body was buffered, by reason"
    );
    metrics::describe_counter!(
        "connector_grpc_connections_refused_total",
        "gRPC connections closed as accepted: too many open"
    );
    metrics::describe_counter!(
        "connector_tls_handshakes_refused_total",
        "gRPC connections closed at once: too many TLS handshakes in progress"
    );
    metrics::describe_counter!(
        "connector_http_connections_refused_total",
        "Public HTTP connections closed at once, by reason (total or per-client cap)"
    );
    metrics::describe_counter!(
        "connector_http_body_timeouts_total",
        "Public HTTP requests answered 408: the body did not arrive in time"
    );
    metrics::describe_gauge!(
        "connector_outbox_messages",
        "Messages in the outbox (queued delivery), by status"
    );
    metrics::describe_counter!("connector_outbox_enqueued_total", "Messages queued");
    metrics::describe_counter!(
        "connector_outbox_cancelled_total",
        "Queued messages cancelled"
    );
    metrics::describe_counter!(
        "connector_outbox_finished_total",
        "Queued messages that reached a final status, by status"
    );
    metrics::describe_counter!(
        "connector_delivery_attempts_total",
        "Posts of queued messages attempted, by outcome"
    );
    metrics::describe_counter!(
        "connector_delivery_throttled_total",
        "Slack's 429s on queued posts, by scope"
    );
    metrics::describe_histogram!(
        "connector_delivery_queue_to_sent_seconds",
        metrics::Unit::Seconds,
        "From queued to posted"
    );
    metrics::describe_gauge!(
        "connector_ready",
        "1 while the database and the secret store answer and the server is not shutting down"
    );
    metrics::describe_gauge!(
        "connector_build_info",
        "Always 1; the labels say which build runs"
    );
    metrics::gauge!(
        "connector_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "revision" => option_env!("CONNECTOR_GIT_REVISION").unwrap_or("unknown"),
    )
    .set(1.0);
}

/// The methods served, as `package.Service/Method`; anything else is `other`.
fn method_label(path: &str) -> &'static str {
    const KNOWN: [&str; 18] = [
        "connector.v1.ConnectorService/CreateConnector",
        "connector.v1.ConnectorService/UpdateConnector",
        "connector.v1.ConnectorService/GetConnector",
        "connector.v1.ConnectorService/ListConnectors",
        "connector.v1.ConnectorService/DeleteConnector",
        "connector.v1.ConnectorService/SendMessage",
        "connector.v1.ConnectorService/UpdateMessage",
        "connector.v1.ConnectorService/DeleteMessage",
        "connector.v1.ConnectorService/CancelScheduledMessage",
        "connector.v1.ConnectorService/GetOAuthV2URL",
        "connector.v1.ConnectorService/ListEvents",
        "connector.v1.ConnectorService/StreamEvents",
        "connector.v1.ConnectorService/GetMessage",
        "connector.v1.ConnectorService/ListMessages",
        "connector.v1.ConnectorService/CancelMessage",
        "grpc.health.v1.Health/Check",
        "grpc.health.v1.Health/Watch",
        "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    ];
    let path = path.trim_start_matches('/');
    KNOWN.into_iter().find(|k| *k == path).unwrap_or("other")
}

/// gRPC's code names, by number.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The code of a unary response: a failed call is answered trailers-only, with `grpc-status`
/// among the headers; a successful one carries it in the trailers, after the body.
fn code_label(headers: &http::HeaderMap) -> &'static str {
    match headers.get("grpc-status") {
        None => "OK",
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .and_then(|n| CODES.get(n).copied())
            .unwrap_or("UNKNOWN"),
    }
}

/// Counts, times and traces every call of the services under it.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcTelemetryLayer;

impl<S> tower::Layer<S> for GrpcTelemetryLayer {
    type Service = GrpcTelemetry<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcTelemetry { inner }
    }
}

/// The service [`GrpcTelemetryLayer`] wraps around.
#[derive(Debug, Clone)]
pub struct GrpcTelemetry<S> {
    inner: S,
}

/// Takes a call off the in-flight gauge however it ends (also when the caller goes away).
struct InFlight(&'static str);

impl InFlight {
    fn start(method: &'static str) -> Self {
        metrics::gauge!("connector_grpc_requests_in_flight", "method" => method).increment(1.0);
        Self(method)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("connector_grpc_requests_in_flight", "method" => self.0).decrement(1.0);
    }
}

/// Codes that mean the server failed (OpenTelemetry's rule for gRPC servers); the others are
/// the caller's doing and leave the span's status unset.
const SERVER_FAULTS: [&str; 6] = [
    "UNKNOWN",
    "DEADLINE_EXCEEDED",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
];

impl<S, B, R> tower::Service<http::Request<B>> for GrpcTelemetry<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method_label(request.uri().path());
        let started = Instant::now();
        let in_flight = InFlight::start(method);
        // With traces exported, the span carries OpenTelemetry's RPC attributes; without, only
        // what log lines use (the method, the trace ID): every field costs formatting.
        let exporting = crate::telemetry::exporting();
        let span = if exporting {
            tracing::info_span!(
                "grpc",
                otel.name = method,
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.method = method,
                rpc.grpc.status_code = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
                trace_id = tracing::field::Empty,
            )
        } else {
            tracing::info_span!(
                "grpc",
                rpc.method = method,
                trace_id = tracing::field::Empty
            )
        };
        crate::telemetry::continue_trace(&span, request.headers());
        let call = span.in_scope(|| self.inner.call(request));
        Box::pin(async move {
            let result = call.instrument(span.clone()).await;
            let code = match &result {
                Ok(response) => code_label(response.headers()),
                Err(_) => "UNKNOWN",
            };
            if exporting {
                if let Some(n) = CODES.iter().position(|c| *c == code) {
                    span.record("rpc.grpc.status_code", n as i64);
                }
                if SERVER_FAULTS.contains(&code) {
                    span.record("otel.status_code", "ERROR");
                }
            }
            metrics::counter!("connector_grpc_requests_total", "method" => method, "code" => code)
                .increment(1);
            metrics::histogram!("connector_grpc_request_duration_seconds", "method" => method)
                .record(started.elapsed().as_secs_f64());
            drop(in_flight);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(
            method_label("/connector.v1.ConnectorService/GetConnector"),
            "connector.v1.ConnectorService/GetConnector"
        );
        assert_eq!(method_label("/connector.v1.ConnectorService/Nope"), "other");
        assert_eq!(method_label("/anything/else"), "other");
        let mut headers = http::HeaderMap::new();
        assert_eq!(code_label(&headers), "OK");
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(code_label(&headers), "NOT_FOUND");
        headers.insert("grpc-status", http::HeaderValue::from_static("99"));
        assert_eq!(code_label(&headers), "UNKNOWN");
    }
}
