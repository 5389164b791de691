//! The HTTP listeners. The public one serves only what Slack and browsers must reach
//! (`connector-http-api`: Slack's events, the install pages); the admin one serves the
//! process's probes for the kubelet and Prometheus: `GET /metrics`, `GET /healthz` (live: the
//! process serves) and `GET /readyz` (ready: its dependencies answered the last background
//! check and it is not shutting down).

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use connector_app::{MetricsProbe, ReadyState};
use connector_usecases::OAuthInstaller;

pub use connector_http_api::{BodyLimits, EventReceiver, HttpLimits, serve};

/// The public routes, over the install flow and Slack's events; every response carries the
/// security headers, and request bodies are bounded by `body`.
pub fn public_router(
    installer: OAuthInstaller,
    events: Option<EventReceiver>,
    body: BodyLimits,
) -> Router {
    connector_http_api::hardened(connector_http_api::slack_routes(installer, events), body)
}

/// The admin routes: liveness, readiness, metrics (rendered from what is recorded; the gauges
/// that need the database are refreshed in the background, never per scrape).
pub fn admin_router(ready: tokio::sync::watch::Receiver<ReadyState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(|| async {
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
        .layer(axum::middleware::map_response(
            connector_http_api::security_headers,
        ))
}

/// Refreshes the gauges `probe` reads (the pool, the connectors by status) now and every
/// `every`, until aborted.
pub fn spawn_gauge_refresh(
    probe: MetricsProbe,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            probe.record().await;
        }
    })
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
