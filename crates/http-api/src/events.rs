//! `POST /slack/events`, `/slack/interactions`, `/slack/commands`: Slack's HTTP deliveries,
//! verified, then taken by the [`Receiver`] (stored in the tenants' event logs, lifecycle
//! events acted on) before they are answered.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse as _, Response};
use connector_slack_inbound::wire::{self, Callback};
use connector_slack_inbound::{Receiver, Transport, count_malformed};
use secrecy::SecretString;

/// What Slack's HTTP routes need: the app's signing secret and the receiver.
#[derive(Clone)]
pub struct EventReceiver {
    /// The Slack app's signing secret.
    pub signing_secret: SecretString,
    /// Stores and acts on what Slack delivers.
    pub receiver: Receiver,
}

/// The answer to Slack's URL check.
#[derive(serde::Serialize)]
struct Challenge {
    challenge: String,
}

fn count_event(outcome: &'static str) {
    metrics::counter!("connector_slack_events_total", "outcome" => outcome).increment(1);
}

/// Slack's signature and timestamp on `body`, checked before anything of it is read: the 401
/// to answer when they do not hold.
fn refused(receiver: &EventReceiver, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let e = wire::verify(
        &receiver.signing_secret,
        header(wire::TIMESTAMP_HEADER),
        header(wire::SIGNATURE_HEADER),
        body,
        chrono::Utc::now().timestamp(),
    )
    .err()?;
    tracing::warn!(reason = %e, "a Slack delivery was refused");
    Some((StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response())
}

/// The answer of every Slack route while no signing secret is set.
fn events_off() -> Response {
    (
        StatusCode::NOT_FOUND,
        "Slack events are off: set CONNECTOR__SLACK__SIGNING_SECRET\n",
    )
        .into_response()
}

/// What an HTTP delivery is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Delivery {
    /// `POST /slack/events`: a JSON callback.
    Event,
    /// `POST /slack/interactions`: a form with the interaction's JSON in `payload`.
    Interaction,
    /// `POST /slack/commands`: a slash command's form fields.
    Command,
}

/// Verifies the signature before anything else, answers Slack's URL check, and hands the
/// rest to the receiver: `200` (empty, which Slack shows as nothing for an interaction or a
/// command) once it is stored, `503` when it could not be, so that Slack delivers it again.
pub(crate) async fn slack_delivery(
    receiver: Option<Arc<EventReceiver>>,
    kind: Delivery,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Some(receiver) = receiver else {
        return events_off();
    };
    if let Some(refused) = refused(&receiver, headers, &body) {
        count_event("refused");
        return refused;
    }
    let parsed = match kind {
        Delivery::Event => wire::parse(&body).map(|callback| match callback {
            Callback::UrlVerification { challenge } => Err(challenge),
            Callback::Event(event) => Ok(*event),
        }),
        Delivery::Interaction => wire::parse_interaction(&body).map(Ok),
        Delivery::Command => wire::parse_command(&body).map(Ok),
    };
    let event = match parsed {
        Ok(Ok(event)) => event,
        Ok(Err(challenge)) => {
            count_event("url_verification");
            return axum::Json(Challenge { challenge }).into_response();
        }
        Err(e) => {
            count_malformed(Transport::Http);
            tracing::warn!(error = %e, ?kind, "a signed Slack delivery could not be read");
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    if let Some(retry) = headers
        .get(wire::RETRY_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        tracing::debug!(event_id = %event.event_id, retry, "Slack delivers an event again");
    }
    match receiver.receiver.accept(event, Transport::Http).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
