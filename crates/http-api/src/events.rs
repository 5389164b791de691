//! `POST /slack/events`: Slack's Events API deliveries, verified, stored in the tenants' event
//! logs before they are acknowledged, recorded once and acted on.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse as _, Response};
use connector_usecases::{EventOutcome, InboundEvents, SlackEvents};
use secrecy::SecretString;

use crate::wire::{self, Callback};

/// What `POST /slack/events` needs: the app's signing secret and the use case.
#[derive(Clone)]
pub struct EventReceiver {
    /// The Slack app's signing secret.
    pub signing_secret: SecretString,
    /// Acts on the events.
    pub events: SlackEvents,
    /// Stores every event in the event logs of the connectors it belongs to.
    pub inbound: InboundEvents,
}

/// The answer to Slack's URL check.
#[derive(serde::Serialize)]
struct Challenge {
    challenge: String,
}

/// How long a delivery's answer waits for the event to be acted on; Slack wants an answer
/// within 3 s, so longer work goes on after the answer.
const EVENT_WORK_WAIT: Duration = Duration::from_secs(2);

fn count_event(outcome: &'static str) {
    metrics::counter!("connector_slack_events_total", "outcome" => outcome).increment(1);
}

fn count_inbound(event_type: &str, outcome: &'static str) {
    metrics::counter!("connector_inbound_events_total", "transport" => "http",
        "type" => event_type.to_owned(), "outcome" => outcome)
    .increment(1);
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

/// What a form delivery is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FormDelivery {
    /// `POST /slack/interactions`.
    Interaction,
    /// `POST /slack/commands`.
    Command,
}

/// `POST /slack/interactions` and `POST /slack/commands`: verified like events, stored in the
/// event logs of the connectors they belong to, and acknowledged (an empty `200`, which Slack
/// shows as nothing) only once stored; the platform answers through the kept `response_url`
/// or `trigger_id`, or with SendMessage.
pub(crate) async fn slack_form(
    receiver: Option<Arc<EventReceiver>>,
    kind: FormDelivery,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Some(receiver) = receiver else {
        return events_off();
    };
    if let Some(refused) = refused(&receiver, headers, &body) {
        return refused;
    }
    let parsed = match kind {
        FormDelivery::Interaction => wire::parse_interaction(&body),
        FormDelivery::Command => wire::parse_command(&body),
    };
    let event = match parsed {
        Ok(event) => event,
        Err(e) => {
            count_inbound("malformed", "malformed");
            tracing::warn!(error = %e, ?kind, "a signed Slack delivery could not be read");
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    match receiver.inbound.store(&event).await {
        Ok(n) => {
            count_inbound(
                &event.detail.event_type,
                if n > 0 { "stored" } else { "not_stored" },
            );
            StatusCode::OK.into_response()
        }
        Err(e) => {
            count_inbound(&event.detail.event_type, "failed");
            tracing::warn!(event_id = %event.event_id, error = %e, ?kind,
                "could not store a Slack delivery; answering 503");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// `POST /slack/events`: verifies the signature before anything else, answers Slack's URL
/// check, drops retries of handled events, and acts on the rest (answering within
/// [`EVENT_WORK_WAIT`] whatever the work takes).
pub(crate) async fn slack_events(
    receiver: Option<Arc<EventReceiver>>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Some(receiver) = receiver else {
        return events_off();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(refused) = refused(&receiver, headers, &body) {
        count_event("refused");
        return refused;
    }
    let event = match wire::parse(&body) {
        Ok(Callback::UrlVerification { challenge }) => {
            count_event("url_verification");
            return axum::Json(Challenge { challenge }).into_response();
        }
        Ok(Callback::Event(event)) => *event,
        Err(e) => {
            count_event("malformed");
            tracing::warn!(error = %e, "a signed Slack delivery could not be read");
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    let retry = header(wire::RETRY_HEADER).map(str::to_owned);
    // Stored first (idempotently, per connector): a delivery is acknowledged only once what
    // it carries is kept, and a retry of one that failed here is stored then.
    match receiver.inbound.store(&event).await {
        Ok(0) => count_inbound(&event.detail.event_type, "not_stored"),
        Ok(_) => count_inbound(&event.detail.event_type, "stored"),
        Err(e) => {
            count_inbound(&event.detail.event_type, "failed");
            tracing::warn!(event_id = %event.event_id, error = %e,
                "could not store a Slack event; Slack will retry it");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    match receiver.events.first_delivery(&event).await {
        Ok(true) => {}
        Ok(false) => {
            count_event("duplicate");
            tracing::debug!(event_id = %event.event_id, retry = ?retry,
                "a Slack event already handled was delivered again; dropped");
            return StatusCode::OK.into_response();
        }
        Err(e) => {
            // Not recorded: Slack retries the delivery.
            count_event("failed");
            tracing::warn!(event_id = %event.event_id, error = %e,
                "could not record a Slack event; Slack will retry it");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    let events = receiver.events.clone();
    let mut work = tokio::spawn(async move {
        let outcome = events.handle(&event).await;
        match &outcome {
            Ok(EventOutcome::Handled { connectors }) => {
                count_event("handled");
                tracing::info!(event_id = %event.event_id, workspace_id = %event.team_id,
                    kind = ?event.kind, connectors, "Slack event handled");
            }
            Ok(_) => count_event("ignored"),
            Err(e) => {
                count_event("failed");
                tracing::warn!(event_id = %event.event_id, error = %e,
                    "acting on a Slack event failed; Slack's retry of it will be handled");
            }
        }
        outcome.is_ok()
    });
    match tokio::time::timeout(EVENT_WORK_WAIT, &mut work).await {
        // Failed before the answer: Slack retries the delivery, which is acted on again.
        Ok(Ok(false)) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        // Done, or still running (it goes on after the answer).
        _ => StatusCode::OK.into_response(),
    }
}
