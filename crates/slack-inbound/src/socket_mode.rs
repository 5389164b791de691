//! Slack's Socket Mode, for deployments Slack cannot reach: each replica holds
//! [`SocketModeSettings::connections`] WebSockets to Slack, opened with the app-level token
//! (`apps.connections.open`), and takes every envelope (`events_api`, `interactive`,
//! `slash_commands`) through the [`Receiver`], acknowledging it (`{"envelope_id": "…"}`) only
//! once it is stored. An envelope not acknowledged is delivered again by Slack (on this
//! connection or another, to this replica or another), and stored once.
//!
//! A `disconnect` (`refresh_requested`, `warning`, `link_disabled`) opens the next connection
//! before the old one is closed, so nothing waits on a refresh; a connection that drops, or
//! stays silent past [`SILENT_LIMIT`], is opened again with jittered exponential backoff.
//!
//! The app token is sent only in `apps.connections.open`'s `Authorization` header, and the
//! URL it answers (a ticket) is never logged.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::receiver::{Receiver, Transport};
use crate::wire::{self, Callback};

/// How long opening a connection may take: `apps.connections.open`, the WebSocket handshake,
/// and Slack's `hello`, each.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a connection is pinged.
const PING_EVERY: Duration = Duration::from_secs(10);
/// A connection that has sent nothing (not even a pong) for this long is dead: it is replaced.
pub const SILENT_LIMIT: Duration = Duration::from_secs(30);
/// How long a closing connection waits for its envelopes in flight to be stored and
/// acknowledged.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Envelopes one connection works on at once; past it, it reads no more until one is done.
const MAX_IN_FLIGHT: usize = 256;
/// The largest frame read (Slack's envelopes are a few KiB; a modal's view is the largest).
const MAX_FRAME_BYTES: usize = 4 << 20;
/// The first wait before opening again, and the longest.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// What Socket Mode needs.
#[derive(Clone)]
pub struct SocketModeSettings {
    /// The Web API base URL, methods appended (`https://slack.com/api/`).
    pub api_base_url: String,
    /// The app-level token (`xapp-…`, scope `connections:write`).
    pub app_token: SecretString,
    /// Connections this replica holds (Slack spreads envelopes over an app's connections).
    pub connections: usize,
}

impl std::fmt::Debug for SocketModeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketModeSettings")
            .field("api_base_url", &self.api_base_url)
            .field("app_token", &"[REDACTED]")
            .field("connections", &self.connections)
            .finish()
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `apps.connections.open` could not be called.
    #[error("apps.connections.open failed: {0}")]
    Http(String),
    /// Slack answered an error (`invalid_auth`, `not_allowed_token_type`, …).
    #[error("apps.connections.open answered {0}")]
    Slack(String),
    /// Slack answered 429.
    #[error("apps.connections.open is rate limited for {0:?}")]
    RateLimited(Duration),
    /// The WebSocket could not be opened.
    #[error("the WebSocket could not be opened: {0}")]
    Connect(String),
    /// The connection closed, or said something else, before `hello`.
    #[error("the connection did not say hello: {0}")]
    NoHello(String),
    /// A step took longer than [`OPEN_TIMEOUT`].
    #[error("{0} took longer than 10 s")]
    Timeout(&'static str),
}

impl OpenError {
    /// Whether opening again cannot help until someone changes the app or its token.
    fn needs_someone(&self) -> bool {
        matches!(self, Self::Slack(code) if matches!(code.as_str(),
            "invalid_auth" | "not_authed" | "not_allowed_token_type" | "account_inactive"
            | "token_revoked" | "missing_scope"))
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One frame from Slack.
#[derive(Debug, Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    envelope_id: Option<String>,
    payload: Option<serde_json::Value>,
    #[serde(default)]
    retry_attempt: u32,
    retry_reason: Option<String>,
    reason: Option<String>,
}

/// The Socket Mode connections of this replica; [`SocketMode::stop`] closes them.
#[derive(Debug)]
pub struct SocketMode {
    stop: watch::Sender<bool>,
    slots: JoinSet<()>,
}

struct Shared {
    settings: SocketModeSettings,
    http: reqwest::Client,
    receiver: Receiver,
}

impl SocketMode {
    /// Opens the connections and keeps them open until [`SocketMode::stop`].
    pub fn start(settings: SocketModeSettings, receiver: Receiver) -> Self {
        let (stop, stopped) = watch::channel(false);
        let http = reqwest::Client::builder()
            .timeout(OPEN_TIMEOUT)
            .build()
            .unwrap_or_default();
        let n = settings.connections.max(1);
        let shared = Arc::new(Shared {
            settings,
            http,
            receiver,
        });
        let mut slots = JoinSet::new();
        for slot in 0..n {
            let (shared, stopped) = (shared.clone(), stopped.clone());
            slots.spawn(async move { hold(slot, &shared, stopped).await });
        }
        tracing::info!(connections = n, "Socket Mode: opening connections to Slack");
        Self { stop, slots }
    }

    /// Stops reading envelopes, acknowledges those already stored, and closes every
    /// connection (Slack delivers what was not acknowledged to another replica).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.slots.join_next().await.is_some() {}
        tracing::info!("Socket Mode: connections closed");
    }
}

/// Counts connections open (`connector_socket_mode_connections`) while it lives.
struct Open;

impl Open {
    fn new() -> Self {
        metrics::gauge!("connector_socket_mode_connections").increment(1.0);
        Self
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!("connector_socket_mode_connections").decrement(1.0);
    }
}

fn count_reopen(reason: &str) {
    metrics::counter!("connector_socket_mode_reopens_total", "reason" => reason.to_owned())
        .increment(1);
}

/// How one connection ended.
enum Ended {
    /// The replica is stopping.
    Stopped,
    /// Slack asked for a new connection, which is open already.
    Replaced(Box<Ws>),
    /// Slack asked for a new connection, and opening it failed: open one after a backoff.
    ReplaceFailed,
    /// It dropped or went silent.
    Dropped(&'static str),
}

/// Jittered exponential backoff.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self {
            next: BACKOFF_FIRST,
        }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }

    /// The wait before the next attempt (at least `floor`).
    fn wait(&mut self, floor: Duration) -> Duration {
        let base = self.next.max(floor);
        self.next = (self.next * 2).min(BACKOFF_MAX);
        // Full jitter over the upper half: replicas that lost Slack together do not return
        // together.
        let half = base / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// Holds slot `slot`'s connection open until stopped.
async fn hold(slot: usize, shared: &Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let mut backoff = Backoff::new();
    let mut ready: Option<Ws> = None;
    loop {
        if *stopped.borrow() {
            return;
        }
        let ws = match ready.take() {
            Some(ws) => ws,
            None => match tokio::select! {
                opened = open(shared) => opened,
                _ = stopped.changed() => return,
            } {
                Ok(ws) => ws,
                Err(e) => {
                    let floor = match &e {
                        OpenError::RateLimited(after) => *after,
                        e if e.needs_someone() => Duration::from_secs(30),
                        _ => Duration::ZERO,
                    };
                    let wait = backoff.wait(floor);
                    if e.needs_someone() {
                        tracing::error!(slot, error = %e, ?wait,
                            "Socket Mode: Slack refuses the app token (CONNECTOR__SLACK__APP_TOKEN: \
                             an xapp- token with connections:write, Socket Mode on for the app)");
                    } else {
                        tracing::warn!(slot, error = %e, ?wait, "Socket Mode: could not open a connection");
                    }
                    count_reopen("open_failed");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => continue,
                        _ = stopped.changed() => return,
                    }
                }
            },
        };
        tracing::info!(slot, "Socket Mode: connected");
        match serve(slot, shared, ws, &mut stopped).await {
            Ended::Stopped => return,
            Ended::Replaced(next) => {
                backoff.reset();
                ready = Some(*next);
            }
            Ended::ReplaceFailed => {
                let wait = backoff.wait(Duration::ZERO);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stopped.changed() => return,
                }
            }
            Ended::Dropped(reason) => {
                count_reopen(reason);
                let wait = backoff.wait(Duration::ZERO);
                tracing::warn!(
                    slot,
                    reason,
                    ?wait,
                    "Socket Mode: connection lost; opening another"
                );
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stopped.changed() => return,
                }
            }
        }
    }
}

/// `apps.connections.open`'s answer.
#[derive(Deserialize)]
struct Opened {
    ok: bool,
    url: Option<String>,
    error: Option<String>,
}

/// Asks Slack for a connection URL, connects, and waits for `hello`.
async fn open(shared: &Shared) -> Result<Ws, OpenError> {
    let s = &shared.settings;
    let answer = shared
        .http
        .post(format!("{}apps.connections.open", s.api_base_url))
        .bearer_auth(s.app_token.expose_secret())
        .send()
        .await
        .map_err(|e| OpenError::Http(e.without_url().to_string()))?;
    if answer.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
        let after = answer
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1);
        return Err(OpenError::RateLimited(Duration::from_secs(after)));
    }
    if !answer.status().is_success() {
        return Err(OpenError::Http(format!("HTTP {}", answer.status())));
    }
    let opened: Opened = answer
        .json()
        .await
        .map_err(|e| OpenError::Http(e.without_url().to_string()))?;
    let url = match opened {
        Opened {
            ok: true,
            url: Some(url),
            ..
        } => url,
        Opened { error, .. } => {
            return Err(OpenError::Slack(
                error.unwrap_or_else(|| "an answer without a url".into()),
            ));
        }
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let (mut ws, _) = tokio::time::timeout(
        OPEN_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true),
    )
    .await
    .map_err(|_| OpenError::Timeout("the WebSocket handshake"))?
    .map_err(|e| OpenError::Connect(e.to_string()))?;
    tokio::time::timeout(OPEN_TIMEOUT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return match serde_json::from_str::<Frame>(&text) {
                        Ok(frame) if frame.kind == "hello" => Ok(()),
                        Ok(frame) => Err(OpenError::NoHello(format!("a {:?} frame", frame.kind))),
                        Err(_) => Err(OpenError::NoHello("an unreadable frame".into())),
                    };
                }
                Some(Ok(Message::Close(_))) | None => {
                    return Err(OpenError::NoHello("closed".into()));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(OpenError::NoHello(e.to_string())),
            }
        }
    })
    .await
    .map_err(|_| OpenError::Timeout("waiting for hello"))??;
    Ok(ws)
}

/// Reads `ws`'s envelopes, stores and acknowledges them, until it ends.
async fn serve(
    slot: usize,
    shared: &Arc<Shared>,
    mut ws: Ws,
    stopped: &mut watch::Receiver<bool>,
) -> Ended {
    let _open = Open::new();
    let (acks, mut to_ack) = mpsc::unbounded_channel::<String>();
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let mut heard = Instant::now();
    // A refresh asked for: the next connection being opened.
    let mut next: Option<tokio::task::JoinHandle<Result<Ws, OpenError>>> = None;
    // Why this connection is closing, once it is: it reads no more envelopes, finishes those
    // in flight, then closes.
    let mut closing: Option<(Ended, Instant)> = None;
    loop {
        if let Some((_, since)) = &closing
            && (in_flight.is_empty() && to_ack.is_empty() || since.elapsed() > CLOSE_WAIT)
        {
            let (ended, _) = closing.take().unwrap_or((Ended::Stopped, Instant::now()));
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
            return ended;
        }
        let reading = closing.is_none() && in_flight.len() < MAX_IN_FLIGHT;
        tokio::select! {
            frame = ws.next(), if reading => match frame {
                Some(Ok(Message::Text(text))) => {
                    heard = Instant::now();
                    let frame = match serde_json::from_str::<Frame>(&text) {
                        Ok(frame) => frame,
                        Err(e) => {
                            tracing::warn!(slot, error = %e, "Socket Mode: an unreadable frame; ignored");
                            continue;
                        }
                    };
                    match frame.kind.as_str() {
                        "events_api" | "interactive" | "slash_commands" => {
                            let receiver = shared.receiver.clone();
                            let acks = acks.clone();
                            in_flight.spawn(async move {
                                if let Some(id) = take(&receiver, frame).await {
                                    let _ = acks.send(id);
                                }
                            });
                        }
                        "disconnect" => {
                            let reason = frame.reason.unwrap_or_default();
                            tracing::info!(slot, reason, "Socket Mode: Slack asks for a new connection");
                            count_reopen(match reason.as_str() {
                                "refresh_requested" => "refresh_requested",
                                "warning" => "warning",
                                "link_disabled" => "link_disabled",
                                _ => "disconnect",
                            });
                            if next.is_none() {
                                let shared = shared.clone();
                                next = Some(tokio::spawn(async move { open(&shared).await }));
                            }
                        }
                        "hello" => {}
                        other => tracing::debug!(slot, kind = other, "Socket Mode: a frame ignored"),
                    }
                }
                Some(Ok(Message::Close(_))) | None => {
                    closing = Some((Ended::Dropped("closed"), Instant::now()));
                }
                Some(Ok(_)) => heard = Instant::now(),
                Some(Err(e)) => {
                    tracing::debug!(slot, error = %e, "Socket Mode: the connection failed");
                    // Nothing more can be sent on it: what is in flight is stored, and Slack
                    // delivers it again elsewhere, where it is stored once.
                    return Ended::Dropped("error");
                }
            },
            Some(id) = to_ack.recv() => {
                let ack = serde_json::json!({ "envelope_id": id }).to_string();
                if let Err(e) = ws.send(Message::text(ack)).await {
                    tracing::debug!(slot, error = %e, "Socket Mode: an acknowledgement could not be sent");
                    return Ended::Dropped("error");
                }
            }
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            opened = async { next.as_mut().expect("guarded").await }, if next.is_some() => {
                next = None;
                match opened {
                    Ok(Ok(ws_next)) => {
                        closing = Some((Ended::Replaced(Box::new(ws_next)), Instant::now()));
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(slot, error = %e, "Socket Mode: the next connection could not be opened");
                        closing = Some((Ended::ReplaceFailed, Instant::now()));
                    }
                    Err(_) => closing = Some((Ended::ReplaceFailed, Instant::now())),
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > SILENT_LIMIT {
                    tracing::warn!(slot, "Socket Mode: the connection went silent");
                    return Ended::Dropped("silent");
                }
                if ws.send(Message::Ping(Default::default())).await.is_err() {
                    return Ended::Dropped("error");
                }
            }
            _ = stopped.changed(), if closing.is_none() => {
                if let Some(next) = next.take() {
                    next.abort();
                }
                closing = Some((Ended::Stopped, Instant::now()));
            }
            // While closing: wake up to check the deadline.
            () = tokio::time::sleep(Duration::from_millis(100)), if closing.is_some() => {}
        }
    }
}

/// Takes one envelope through the receiver: its `envelope_id` to acknowledge, or `None` when
/// it must not be (it was not stored, so Slack delivers it again).
async fn take(receiver: &Receiver, frame: Frame) -> Option<String> {
    let id = frame.envelope_id?;
    if frame.retry_attempt > 0 {
        tracing::debug!(envelope_id = %id, retry_attempt = frame.retry_attempt,
            retry_reason = ?frame.retry_reason, "Socket Mode: Slack delivers an envelope again");
    }
    let payload = frame.payload.unwrap_or_default();
    let parsed = match frame.kind.as_str() {
        "events_api" => wire::parse_value(payload).and_then(|callback| match callback {
            Callback::Event(event) => Ok(*event),
            Callback::UrlVerification { .. } => {
                Err(wire::ParseError::new("a url_verification over Socket Mode"))
            }
        }),
        "interactive" => wire::parse_interaction_payload(payload),
        _ => wire::parse_command_payload(payload),
    };
    match parsed {
        Ok(event) => receiver
            .accept(event, Transport::SocketMode)
            .await
            .ok()
            .map(|()| id),
        Err(e) => {
            // Delivering it again cannot make it readable.
            crate::receiver::count_malformed(Transport::SocketMode);
            tracing::warn!(envelope_id = %id, kind = %frame.kind, error = %e,
                "Socket Mode: an envelope could not be read; acknowledged and dropped");
            Some(id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_token_never_shows_in_debug() {
        let settings = SocketModeSettings {
            api_base_url: "https://slack.com/api/".into(),
            app_token: SecretString::from("xapp-1-A1-123-abcdef"),
            connections: 2,
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("xapp-1"), "{shown}");
    }

    #[test]
    fn backoff_grows_to_its_ceiling_with_jitter_and_honours_a_floor() {
        let mut b = Backoff::new();
        let first = b.wait(Duration::ZERO);
        assert!(
            first >= BACKOFF_FIRST / 2 && first <= BACKOFF_FIRST,
            "{first:?}"
        );
        for _ in 0..20 {
            let w = b.wait(Duration::ZERO);
            assert!(w <= BACKOFF_MAX, "{w:?}");
        }
        assert!(b.wait(Duration::ZERO) >= BACKOFF_MAX / 2);
        b.reset();
        let floored = b.wait(Duration::from_secs(30));
        assert!(floored >= Duration::from_secs(15), "{floored:?}");
    }

    #[test]
    fn refusals_of_the_token_wait_for_someone_and_others_do_not() {
        assert!(OpenError::Slack("invalid_auth".into()).needs_someone());
        assert!(OpenError::Slack("not_allowed_token_type".into()).needs_someone());
        assert!(!OpenError::Slack("internal_error".into()).needs_someone());
        assert!(!OpenError::Timeout("waiting for hello").needs_someone());
    }

    #[test]
    fn frames_read_as_slack_sends_them() {
        let f: Frame = serde_json::from_str(
            r#"{"envelope_id":"57d6a792-4d35-4d0b-b6aa-3361493e1caf","payload":{"type":"event_callback"},
               "type":"events_api","accepts_response_payload":false,"retry_attempt":1,"retry_reason":"timeout"}"#,
        )
        .unwrap();
        assert_eq!(f.kind, "events_api");
        assert_eq!(f.retry_attempt, 1);
        let d: Frame = serde_json::from_str(
            r#"{"type":"disconnect","reason":"refresh_requested","debug_info":{"host":"applink-1"}}"#,
        )
        .unwrap();
        assert_eq!(d.reason.as_deref(), Some("refresh_requested"));
    }
}
