//! The HTTP listener: Slack's routes and the install pages (`connector-http-api`), with the
//! process's probes beside them: `GET /metrics` (Prometheus), `GET /healthz` (live: the
//! process serves) and `GET /readyz` (ready: its dependencies answered the last background
//! check and it is not shutting down).

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use connector_app::{MetricsProbe, ReadyState};
use connector_usecases::OAuthInstaller;

pub use connector_http_api::{EventReceiver, HttpLimits, serve};

/// The routes, over the install flow and the readiness `ready` publishes; every response
/// carries the security headers, and request bodies are capped at `max_body_bytes`.
pub fn router(
    installer: OAuthInstaller,
    events: Option<EventReceiver>,
    max_body_bytes: usize,
    ready: tokio::sync::watch::Receiver<ReadyState>,
    probe: MetricsProbe,
) -> Router {
    let slack = connector_http_api::slack_routes(installer, events);
    connector_http_api::hardened(slack.merge(probes(ready, probe)), max_body_bytes)
}

/// The process's own routes: liveness, readiness, metrics.
fn probes(ready: tokio::sync::watch::Receiver<ReadyState>, probe: MetricsProbe) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || async move {
                // The gauges read at scrape time: the pool, the connectors by status.
                probe.record().await;
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    )],
                    crate::metrics::handle().render(),
                )
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let state = ready.borrow().clone();
                async move { readyz(&state) }
            }),
        )
}

/// `200 ready`, or `503` saying why not (which dependency, or shutting down; no details).
fn readyz(state: &ReadyState) -> Response {
    match state {
        ReadyState::Ready => (StatusCode::OK, "ready\n".to_owned()).into_response(),
        ReadyState::NotReady(down) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {} not answering\n", down.join(", ")),
        )
            .into_response(),
        ReadyState::ShuttingDown => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n".to_owned(),
        )
            .into_response(),
    }
}
