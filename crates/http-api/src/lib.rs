//! The HTTP edge that Slack and browsers reach: Slack's Events API (`POST /slack/events`,
//! when a signing secret is set: [`wire`] verifies the v0 signature and reads the callback)
//! and the OAuth install pages (`GET /slack/install`, `GET /slack/oauth/callback`), each
//! mapped to the use cases; [`serve`] runs a router with bounded connections.
//!
//! # Must never
//! Parse a Slack delivery before its signature is verified, show a client a dependency's
//! detail or an internal error (an incident ID instead), or serve anything a browser may
//! cache, frame or sniff.

mod events;
mod install;
mod serve;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use connector_usecases::OAuthInstaller;

pub use events::EventReceiver;
pub use serve::{HttpLimits, serve};

/// Slack's routes: the Events API receiver (`None`: answered 404 with what to set) and the
/// install pages over `installer`.
pub fn slack_routes(installer: OAuthInstaller, events: Option<EventReceiver>) -> Router {
    let events = events.map(Arc::new);
    Router::new()
        .route(
            "/slack/events",
            post(move |headers: HeaderMap, body: Bytes| {
                let events = events.clone();
                async move { events::slack_events(events, &headers, body).await }
            }),
        )
        .route("/slack/install", get(install::begin))
        .route("/slack/oauth/callback", get(install::callback))
        .with_state(installer)
}

/// `router` with request bodies capped at `max_body_bytes` and [`security_headers`] on every
/// response.
pub fn hardened(router: Router, max_body_bytes: usize) -> Router {
    router
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::map_response(security_headers))
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
