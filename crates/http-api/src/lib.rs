//! The HTTP edge that Slack and browsers reach: Slack's Events API, interactivity and slash
//! commands (`POST /slack/events`, `/slack/interactions`, `/slack/commands`, when a signing
//! secret is set: [`wire`] verifies the v0 signature and reads the delivery, the
//! [`Receiver`](connector_slack_inbound::Receiver) stores it) and the OAuth install pages (`GET /slack/install`, `GET /slack/oauth/callback`), each
//! mapped to the use cases; [`serve`] runs a router with bounded connections.
//!
//! # Must never
//! Parse a Slack delivery before its signature is verified, show a client a dependency's
//! detail or an internal error (an incident ID instead), or serve anything a browser may
//! cache, frame or sniff.

mod events;
mod install;
mod serve;

/// Slack's wire formats and signature (kept here too for callers of this crate).
pub use connector_slack_inbound::wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use connector_usecases::OAuthInstaller;

pub use events::EventReceiver;
pub use serve::{HttpLimits, serve};

/// Slack's routes: the Events API, interactivity and slash command receivers (`None`:
/// answered 404 with what to set) and the install pages over `installer`.
pub fn slack_routes(installer: OAuthInstaller, events: Option<EventReceiver>) -> Router {
    let events = events.map(Arc::new);
    let route = |kind: events::Delivery| {
        let receiver = events.clone();
        post(move |headers: HeaderMap, body: Bytes| {
            let receiver = receiver.clone();
            async move { events::slack_delivery(receiver, kind, &headers, body).await }
        })
    };
    Router::new()
        .route("/slack/events", route(events::Delivery::Event))
        .route("/slack/interactions", route(events::Delivery::Interaction))
        .route("/slack/commands", route(events::Delivery::Command))
        .route("/slack/install", get(install::begin))
        .route("/slack/oauth/callback", get(install::callback))
        .with_state(installer)
}

/// How much of a request body the listener reads, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Bytes at most: a larger body is `413`.
    pub max_bytes: usize,
    /// The whole body must arrive within this: a slower one is `408` (a client trickling a
    /// body cannot hold a connection and its buffer).
    pub read_timeout: Duration,
}

/// `router` with request bodies bounded by `limits` and [`security_headers`] on every
/// response.
pub fn hardened(router: Router, limits: BodyLimits) -> Router {
    router
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_bytes))
        .layer(axum::middleware::from_fn_with_state(limits, read_body))
        .layer(axum::middleware::map_response(security_headers))
}

/// Reads the whole body within [`BodyLimits`] before any route sees the request.
async fn read_body(
    axum::extract::State(limits): axum::extract::State<BodyLimits>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than {} bytes\n",
                limits.max_bytes
            ),
        )
            .into_response()
    };
    if declared.is_some_and(|n| n > limits.max_bytes as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(
        limits.read_timeout,
        axum::body::to_bytes(body, limits.max_bytes),
    )
    .await
    {
        Err(_) => {
            metrics::counter!("connector_http_body_timeouts_total").increment(1);
            (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s\n",
                    limits.read_timeout.as_secs()
                ),
            )
                .into_response()
        }
        Ok(Err(_)) => too_large(),
        Ok(Ok(bytes)) => {
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await
        }
    }
}

/// Pages are never cached, framed, sniffed or allowed to load anything but their inline style,
/// and they send no referrer (the callback URL carries a code and a state).
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
