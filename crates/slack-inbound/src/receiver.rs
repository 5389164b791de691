//! The one path a verified delivery takes, whichever transport brought it: stored in the event
//! logs of the connectors it belongs to, then (Slack's own lifecycle events only) recorded once
//! and acted on. A transport acknowledges a delivery only when [`Receiver::accept`] returned
//! `Ok`, so that Slack delivers anything else again.

use std::time::Duration;

use connector_ports::{SlackEvent, SlackEventKind};
use connector_usecases::{ConnectorError, EventOutcome, InboundEvents, SlackEvents};

/// How long an answer waits for a lifecycle event to be acted on; Slack wants an answer within
/// 3 s, so longer work goes on after it.
const EVENT_WORK_WAIT: Duration = Duration::from_secs(2);

/// Which of Slack's transports brought a delivery (the `transport` label of
/// `connector_inbound_events_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `POST /slack/events`, `/slack/interactions`, `/slack/commands`.
    Http,
    /// A Socket Mode WebSocket.
    SocketMode,
}

impl Transport {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::SocketMode => "socket_mode",
        }
    }
}

/// Why a delivery must not be acknowledged (Slack then delivers it again).
#[derive(Debug, thiserror::Error)]
pub enum NotAccepted {
    /// The event log could not be written.
    #[error("the event could not be stored: {0}")]
    Store(#[source] ConnectorError),
    /// The lifecycle event could not be recorded as seen.
    #[error("the event could not be recorded: {0}")]
    Record(#[source] ConnectorError),
    /// Acting on the lifecycle event failed before the answer was due.
    #[error("acting on the event failed")]
    Act,
}

/// Stores and acts on what Slack delivers.
#[derive(Debug, Clone)]
pub struct Receiver {
    events: SlackEvents,
    inbound: InboundEvents,
}

fn count_inbound(transport: Transport, event_type: &str, outcome: &'static str) {
    metrics::counter!("connector_inbound_events_total", "transport" => transport.label(),
        "type" => event_type.to_owned(), "outcome" => outcome)
    .increment(1);
}

/// Counts a delivery that could not be read (after its signature held, where it has one).
pub fn count_malformed(transport: Transport) {
    count_inbound(transport, "malformed", "malformed");
}

fn count_event(outcome: &'static str) {
    metrics::counter!("connector_slack_events_total", "outcome" => outcome).increment(1);
}

impl Receiver {
    /// Acting on lifecycle events with `events`, storing every delivery with `inbound`.
    pub fn new(events: SlackEvents, inbound: InboundEvents) -> Self {
        Self { events, inbound }
    }

    /// Stores `event` for every connector it belongs to (a redelivery is stored once), then,
    /// for Slack's lifecycle events (an uninstall, revoked tokens, a channel renamed, archived
    /// or left), records it once and acts on it, waiting at most two seconds for that: what
    /// takes longer goes on after the answer.
    pub async fn accept(&self, event: SlackEvent, transport: Transport) -> Result<(), NotAccepted> {
        let event_type = event.detail.event_type.clone();
        match self.inbound.store(&event).await {
            Ok(0) => count_inbound(transport, &event_type, "not_stored"),
            Ok(_) => count_inbound(transport, &event_type, "stored"),
            Err(e) => {
                count_inbound(transport, &event_type, "failed");
                tracing::warn!(event_id = %event.event_id, transport = transport.label(),
                    error = %e, "could not store a Slack delivery; Slack will deliver it again");
                return Err(NotAccepted::Store(e));
            }
        }
        if let SlackEventKind::Ignored(_) = event.kind {
            // Nothing for the connectors themselves to do: stored is done.
            return Ok(());
        }
        match self.events.first_delivery(&event).await {
            Ok(true) => {}
            Ok(false) => {
                count_event("duplicate");
                tracing::debug!(event_id = %event.event_id,
                    "a Slack event already handled was delivered again; dropped");
                return Ok(());
            }
            Err(e) => {
                // Not recorded: Slack delivers it again.
                count_event("failed");
                tracing::warn!(event_id = %event.event_id, error = %e,
                    "could not record a Slack event; Slack will deliver it again");
                return Err(NotAccepted::Record(e));
            }
        }
        let events = self.events.clone();
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
                        "acting on a Slack event failed; Slack's next delivery of it is acted on");
                }
            }
            outcome.is_ok()
        });
        match tokio::time::timeout(EVENT_WORK_WAIT, &mut work).await {
            // Failed before the answer: Slack delivers it again, and that one is acted on.
            Ok(Ok(false)) => Err(NotAccepted::Act),
            // Done, or still running (it goes on after the answer).
            _ => Ok(()),
        }
    }
}
