//! The chaos suite's inbound half: while the faults run, signed Events API deliveries go to
//! the replicas in turn (one refused or unanswered is delivered again, as Slack does, until a
//! replica accepts it), and one `StreamEvents` reader follows the tenant's log, moving to
//! another replica with its last cursor whenever its stream breaks. Afterwards every accepted
//! event must have reached the reader exactly once.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connector_grpc_api::pb::{CreateConnectorRequest, StreamEventsRequest};

use crate::stack::{self, CHANNEL, Stack, TEAM, TOKEN};

/// The signing secret the replicas are configured with.
pub(crate) const SIGNING_SECRET: &str = "chaos-events-signing-secret";
/// The tenant whose log is watched.
const TENANT: &str = "chaos-events";
/// The pause between deliveries (about 50 a second).
const PACE: Duration = Duration::from_millis(20);

#[derive(Default)]
struct State {
    accepted: BTreeSet<u64>,
    /// Deliveries refused or unanswered (each delivered again).
    redelivered: u64,
    seen: HashMap<u64, u32>,
    last_cursor: String,
    /// Streams opened after the first (a replica killed or draining, a database restart).
    resumed: u32,
}

/// The inbound traffic of a run.
pub(crate) struct EventTraffic {
    state: Arc<Mutex<State>>,
    stop_sending: Arc<AtomicBool>,
    stop_reading: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn lock(state: &Arc<Mutex<State>>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Creates the watched connector (on replica A) and starts sending and reading.
pub(crate) async fn start(stack: &Stack) -> anyhow::Result<EventTraffic> {
    let mut a = stack::client(stack.replicas[0].grpc()).await?;
    a.create_connector(CreateConnectorRequest {
        tenant_id: TENANT.into(),
        name: "events".into(),
        slack_bot_token: TOKEN.into(),
        default_channel: format!("#{CHANNEL}"),
        ..Default::default()
    })
    .await?;
    let state = Arc::new(Mutex::new(State {
        last_cursor: "0".into(),
        ..State::default()
    }));
    let (stop_sending, stop_reading) = (Arc::default(), Arc::default());
    let grpc: Vec<SocketAddr> = stack.replicas.iter().map(|r| r.grpc()).collect();
    let http: Vec<String> = stack
        .replicas
        .iter()
        .map(|r| format!("http://{}/slack/events", r.http()))
        .collect();
    let tasks = vec![
        tokio::spawn(send(http, state.clone(), Arc::clone(&stop_sending))),
        tokio::spawn(read(grpc, state.clone(), Arc::clone(&stop_reading))),
    ];
    Ok(EventTraffic {
        state,
        stop_sending,
        stop_reading,
        tasks,
    })
}

async fn send(urls: Vec<String>, state: Arc<Mutex<State>>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap_or_default();
    let mut seq = 0u64;
    let mut turn = 0usize;
    while !stop.load(Ordering::SeqCst) {
        turn += 1;
        let body = serde_json::json!({
            "token": "unused", "team_id": TEAM, "api_app_id": slack_double::APP_ID,
            "type": "event_callback", "event_id": format!("EvCHAOS{seq:08}"),
            "event_time": unix_now(),
            "event": {"type": "message", "channel": "C0ALERTS01", "user": "U0SOMEONE",
                "text": format!("chaos {seq}"), "ts": format!("1700000000.{seq:06}")},
            "authorizations": [{"team_id": TEAM, "user_id": "U0BOTUSER1", "is_bot": true}],
        })
        .to_string();
        let ts = unix_now();
        let answer = http
            .post(&urls[turn % urls.len()])
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", ts.to_string())
            .header(
                "x-slack-signature",
                slack_double::events::sign(SIGNING_SECRET, ts, body.as_bytes()),
            )
            .body(body)
            .send()
            .await;
        if matches!(&answer, Ok(a) if a.status().as_u16() == 200) {
            lock(&state).accepted.insert(seq);
            seq += 1;
        } else {
            // Slack delivers it again (to the next replica in turn).
            lock(&state).redelivered += 1;
        }
        tokio::time::sleep(PACE).await;
    }
}

async fn read(addrs: Vec<SocketAddr>, state: Arc<Mutex<State>>, stop: Arc<AtomicBool>) {
    let mut turn = 0usize;
    let mut opened = 0u32;
    while !stop.load(Ordering::SeqCst) {
        turn += 1;
        let addr = addrs[turn % addrs.len()];
        let after = lock(&state).last_cursor.clone();
        let stream = match stack::client(addr).await {
            Ok(mut client) => {
                client
                    .stream_events(StreamEventsRequest {
                        tenant_id: TENANT.into(),
                        after_cursor: after,
                        ..Default::default()
                    })
                    .await
            }
            Err(e) => Err(tonic::Status::unavailable(e.to_string())),
        };
        let mut stream = match stream {
            Ok(s) => s.into_inner(),
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        opened += 1;
        if opened > 1 {
            lock(&state).resumed += 1;
        }
        loop {
            let message = tokio::select! {
                m = stream.message() => m,
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if stop.load(Ordering::SeqCst) { return; }
                    continue;
                }
            };
            let Ok(Some(message)) = message else { break };
            let Some(event) = message.event else { continue };
            let mut s = lock(&state);
            s.last_cursor = event.cursor.clone();
            if let Some(seq) = event
                .text
                .strip_prefix("chaos ")
                .and_then(|n| n.parse::<u64>().ok())
            {
                *s.seen.entry(seq).or_default() += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl EventTraffic {
    /// Stops sending (the faults are over).
    pub(crate) fn stop_sending(&self) {
        self.stop_sending.store(true, Ordering::SeqCst);
    }

    /// Waits (at most `wait`) for the reader to have every accepted event, stops it, and
    /// reports: a summary, and the promises broken.
    pub(crate) async fn finish(self, wait: Duration) -> (String, Vec<String>) {
        self.stop_sending();
        let deadline = Instant::now() + wait;
        loop {
            let done = {
                let s = lock(&self.state);
                s.accepted.iter().all(|seq| s.seen.contains_key(seq))
            };
            if done || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.stop_reading.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        let s = lock(&self.state);
        let missing: Vec<u64> = s
            .accepted
            .iter()
            .copied()
            .filter(|seq| !s.seen.contains_key(seq))
            .collect();
        let repeated: Vec<u64> = s
            .seen
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(seq, _)| *seq)
            .collect();
        let mut broken = Vec::new();
        if !missing.is_empty() {
            broken.push(format!(
                "{} accepted Slack event(s) never reached the stream: {missing:?}",
                missing.len()
            ));
        }
        if !repeated.is_empty() {
            broken.push(format!(
                "{} Slack event(s) reached the stream more than once: {repeated:?}",
                repeated.len()
            ));
        }
        if s.accepted.is_empty() {
            broken.push("no Slack event was accepted".into());
        }
        let summary = format!(
            "Slack events accepted {} (delivered again after a refusal {}), streamed {} (stream resumed by cursor {} times), lost {}, repeated {}",
            s.accepted.len(),
            s.redelivered,
            s.seen.len(),
            s.resumed,
            missing.len(),
            repeated.len()
        );
        (summary, broken)
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
