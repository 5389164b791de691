//! Slack's side of Socket Mode: with an app-level token set ([`SocketMode::enable`]),
//! `apps.connections.open` (that token as `Authorization: Bearer xapp-…`) answers a one-use
//! `ws://…/link/?ticket=…` URL; a connection to it is greeted with `hello`, and every
//! delivery goes to one of the open connections (in turn) as an envelope
//! (`events_api`, `interactive`, `slash_commands`) instead of over HTTP. An envelope not
//! acknowledged (`{"envelope_id": "…"}`) within the ack timeout (3 s, as Slack) is delivered
//! again, to the next connection, with `retry_attempt` counting up and `retry_reason`
//! `timeout`, at most three times. The admin API sends `disconnect` frames (a refresh: the
//! connection is closed a moment later) or drops every connection without a word.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// Deliveries of one envelope at most: the first and three retries.
const ATTEMPTS: u32 = 4;

/// What a connection is told to do.
#[derive(Debug)]
enum Out {
    /// Send this text frame.
    Text(String),
    /// Send a close frame and end.
    Close,
    /// End without a word (a network failure).
    Drop,
}

#[derive(Debug)]
struct Conn {
    id: u64,
    tx: mpsc::UnboundedSender<Out>,
    /// Told to go (a `disconnect` sent): gets no more envelopes.
    leaving: bool,
}

#[derive(Debug, Default)]
struct Inner {
    app_token: Option<String>,
    tickets: HashSet<String>,
    conns: Vec<Conn>,
    pending: HashMap<String, oneshot::Sender<()>>,
    turn: usize,
}

/// What Socket Mode has done, for tests (`GET /_double/socket`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SocketStats {
    /// Whether an app token is set (deliveries go over Socket Mode).
    pub enabled: bool,
    /// Connections open now.
    pub connections: usize,
    /// Connections ever opened.
    pub opened: u64,
    /// Envelopes sent, retries included.
    pub sent: u64,
    /// Envelopes acknowledged.
    pub acknowledged: u64,
    /// Envelopes sent again after no acknowledgement.
    pub redelivered: u64,
}

/// Slack's Socket Mode side of the double.
#[derive(Debug)]
pub struct SocketMode {
    inner: Mutex<Inner>,
    next: AtomicU64,
    ack_timeout_ms: AtomicU64,
    opened: AtomicU64,
    sent: AtomicU64,
    acknowledged: AtomicU64,
    redelivered: AtomicU64,
}

impl Default for SocketMode {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            next: AtomicU64::new(0),
            ack_timeout_ms: AtomicU64::new(3000),
            opened: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            acknowledged: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
        }
    }
}

/// `POST /_double/socket/disconnect`'s body.
#[derive(Debug, Clone, Deserialize)]
pub struct Disconnect {
    /// `refresh_requested`, `warning` or `link_disabled`.
    pub reason: String,
    /// How long after the frame the connections are closed (default 1 s).
    #[serde(default = "a_second")]
    pub close_after_ms: u64,
}

fn a_second() -> u64 {
    1000
}

impl SocketMode {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Turns Socket Mode on with `app_token` (deliveries then go over it), or off (`None`).
    pub fn enable(&self, app_token: Option<String>) {
        self.lock().app_token = app_token;
    }

    /// How long an envelope waits for its acknowledgement before it is delivered again.
    pub fn set_ack_timeout(&self, timeout: Duration) {
        self.ack_timeout_ms
            .store(timeout.as_millis() as u64, Ordering::SeqCst);
    }

    /// Whether deliveries go over Socket Mode.
    pub fn enabled(&self) -> bool {
        self.lock().app_token.is_some()
    }

    /// What it has done.
    pub fn stats(&self) -> SocketStats {
        let inner = self.lock();
        SocketStats {
            enabled: inner.app_token.is_some(),
            connections: inner.conns.len(),
            opened: self.opened.load(Ordering::SeqCst),
            sent: self.sent.load(Ordering::SeqCst),
            acknowledged: self.acknowledged.load(Ordering::SeqCst),
            redelivered: self.redelivered.load(Ordering::SeqCst),
        }
    }

    /// `apps.connections.open`: a one-use URL on `host` for the app token `token`, or Slack's
    /// error code.
    pub(crate) fn open(&self, token: Option<&str>, host: &str) -> Result<String, &'static str> {
        let mut inner = self.lock();
        let Some(token) = token else {
            return Err("not_authed");
        };
        if !token.starts_with("xapp-") {
            return Err("not_allowed_token_type");
        }
        if inner.app_token.as_deref() != Some(token) {
            return Err("invalid_auth");
        }
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let ticket = format!("{n:08x}-{:016x}", rand_u64());
        inner.tickets.insert(ticket.clone());
        Ok(format!(
            "ws://{host}/link/?ticket={ticket}&app_id={}",
            crate::state::APP_ID
        ))
    }

    /// Sends a `disconnect` with `reason` on every connection, and closes them after
    /// `close_after`; they get no more envelopes meanwhile.
    pub fn disconnect(&self, reason: &str, close_after: Duration) {
        let frame = serde_json::json!({"type": "disconnect", "reason": reason,
            "debug_info": {"host": "applink-double"}})
        .to_string();
        let mut leaving = Vec::new();
        for conn in self.lock().conns.iter_mut() {
            conn.leaving = true;
            let _ = conn.tx.send(Out::Text(frame.clone()));
            leaving.push(conn.tx.clone());
        }
        tokio::spawn(async move {
            tokio::time::sleep(close_after).await;
            for tx in leaving {
                let _ = tx.send(Out::Close);
            }
        });
    }

    /// Drops every connection without a close frame, as a network failure would.
    pub fn drop_all(&self) {
        for conn in self.lock().conns.iter() {
            let _ = conn.tx.send(Out::Drop);
        }
    }

    /// The next connection in turn that takes envelopes.
    fn pick(&self) -> Option<mpsc::UnboundedSender<Out>> {
        let mut inner = self.lock();
        let open: Vec<usize> = (0..inner.conns.len())
            .filter(|&i| !inner.conns[i].leaving)
            .collect();
        if open.is_empty() {
            return None;
        }
        inner.turn = inner.turn.wrapping_add(1);
        let i = open[inner.turn % open.len()];
        Some(inner.conns[i].tx.clone())
    }

    /// A fresh envelope ID (Slack's are UUIDs).
    pub(crate) fn new_envelope_id(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let r = rand_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            n as u32,
            (r >> 48) as u16,
            (r >> 36) & 0xfff,
            (r >> 24) & 0xfff,
            r & 0xffff_ffff_ffff
        )
    }

    /// Delivers `envelope` (its `retry_attempt` counted from `first_attempt`) until it is
    /// acknowledged, at most [`ATTEMPTS`] times over: 200 when acknowledged, 0 when never.
    pub(crate) async fn deliver(&self, mut envelope: serde_json::Value, first_attempt: u32) -> u16 {
        let id = envelope["envelope_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let wait = Duration::from_millis(self.ack_timeout_ms.load(Ordering::SeqCst));
        for attempt in first_attempt..first_attempt + ATTEMPTS {
            envelope["retry_attempt"] = attempt.into();
            envelope["retry_reason"] = if attempt == 0 { "" } else { "timeout" }.into();
            let (tx, rx) = oneshot::channel();
            self.lock().pending.insert(id.clone(), tx);
            // A connection may be between a refresh and the next: wait for one a little.
            let deadline = tokio::time::Instant::now() + wait;
            let conn = loop {
                match self.pick() {
                    Some(conn) => break Some(conn),
                    None if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    None => break None,
                }
            };
            if let Some(conn) = conn {
                if attempt > first_attempt {
                    self.redelivered.fetch_add(1, Ordering::SeqCst);
                }
                self.sent.fetch_add(1, Ordering::SeqCst);
                let _ = conn.send(Out::Text(envelope.to_string()));
                if let Ok(Ok(())) = tokio::time::timeout(wait, rx).await {
                    self.acknowledged.fetch_add(1, Ordering::SeqCst);
                    return 200;
                }
            }
            self.lock().pending.remove(&id);
        }
        0
    }

    fn acknowledge(&self, text: &str) {
        #[derive(Deserialize)]
        struct Ack {
            envelope_id: String,
        }
        if let Ok(ack) = serde_json::from_str::<Ack>(text)
            && let Some(tx) = self.lock().pending.remove(&ack.envelope_id)
        {
            let _ = tx.send(());
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

#[derive(Deserialize)]
pub(crate) struct Ticket {
    ticket: String,
}

/// `GET /link/?ticket=…`: the WebSocket a ticket of `apps.connections.open` opens.
pub(crate) async fn link(
    AxumState(state): AxumState<std::sync::Arc<crate::State>>,
    Query(ticket): Query<Ticket>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !state.events.socket.lock().tickets.remove(&ticket.ticket) {
        return (StatusCode::UNAUTHORIZED, "unknown or used ticket\n").into_response();
    }
    upgrade.on_upgrade(move |ws| serve(state, ws))
}

async fn serve(state: std::sync::Arc<crate::State>, mut ws: WebSocket) {
    let socket = &state.events.socket;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = socket.next.fetch_add(1, Ordering::SeqCst);
    let hello = {
        let mut inner = socket.lock();
        inner.conns.push(Conn {
            id,
            tx,
            leaving: false,
        });
        serde_json::json!({"type": "hello", "num_connections": inner.conns.len(),
            "debug_info": {"host": "applink-double", "build_number": 1,
                "approximate_connection_time": 18060},
            "connection_info": {"app_id": crate::state::APP_ID}})
        .to_string()
    };
    socket.opened.fetch_add(1, Ordering::SeqCst);
    if ws.send(Message::Text(hello.into())).await.is_ok() {
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Some(Out::Text(text)) => {
                        if ws.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                    }
                    Some(Out::Close) => {
                        let _ = ws.send(Message::Close(None)).await;
                        break;
                    }
                    Some(Out::Drop) | None => break,
                },
                msg = ws.recv() => match msg {
                    Some(Ok(Message::Text(text))) => socket.acknowledge(&text),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
    socket.lock().conns.retain(|c| c.id != id);
}
