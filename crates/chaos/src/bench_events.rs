//! The inbound benchmark: signed Events API deliveries (Slack's `event_callback` of a
//! `message`) posted by concurrent senders to two replicas on one PostgreSQL, in turn, while a
//! `StreamEvents` stream is open on each replica. Measured: deliveries accepted (HTTP 200) per
//! second, the delivery's answer time, and the time from a delivery's send to its arrival on
//! each stream (the replica that stored it, and the other one, through `LISTEN/NOTIFY`), all
//! as p50/p99 over the whole run. Every accepted event must reach both streams exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use connector_grpc_api::pb::StreamEventsRequest;
use tokio::sync::Mutex;

use crate::stack::{self, Stack, TEAM, ms, percentile};

use crate::chaos_events::SIGNING_SECRET;

/// How the benchmark runs.
#[derive(Debug, Clone)]
pub(crate) struct BenchConfig {
    /// How long deliveries are sent.
    pub(crate) duration: Duration,
    /// Concurrent senders.
    pub(crate) senders: usize,
}

/// When each sequence number was sent, and what came of it.
#[derive(Default)]
struct Ledger {
    sent_at: HashMap<u64, Instant>,
    answers: Vec<Duration>,
    accepted: Vec<u64>,
    refused: u64,
}

/// What one stream saw: per sequence number, how often and how long after its send.
#[derive(Default)]
struct Seen {
    count: HashMap<u64, u32>,
    latency: Vec<Duration>,
}

/// Runs it on `stack` (two replicas configured with [`SIGNING_SECRET`]); a Markdown report.
pub(crate) async fn run(stack: &mut Stack, config: &BenchConfig) -> anyhow::Result<String> {
    ensure!(
        stack.replicas.len() >= 2,
        "the benchmark needs two replicas"
    );
    stack::create_connector(stack.replicas[0].grpc(), "bench", "events").await?;

    // A stream on each replica, from now on.
    let seen: Vec<Arc<Mutex<Seen>>> = (0..2).map(|_| Arc::default()).collect();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut streams = Vec::new();
    for (i, seen) in seen.iter().enumerate() {
        let mut client = stack::client(stack.replicas[i].grpc()).await?;
        let mut stream = client
            .stream_events(StreamEventsRequest {
                tenant_id: "bench".into(),
                ..Default::default()
            })
            .await
            .with_context(|| format!("opening a stream on replica {i}"))?
            .into_inner();
        let (seen, ledger) = (seen.clone(), ledger.clone());
        streams.push(tokio::spawn(async move {
            while let Ok(Some(message)) = stream.message().await {
                let now = Instant::now();
                let Some(event) = message.event else { continue };
                let Some(seq) = event
                    .text
                    .strip_prefix("bench ")
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    continue;
                };
                let sent = ledger.lock().await.sent_at.get(&seq).copied();
                let mut seen = seen.lock().await;
                *seen.count.entry(seq).or_default() += 1;
                if let Some(sent) = sent {
                    seen.latency.push(now.saturating_duration_since(sent));
                }
            }
        }));
    }
    // The streams are open (and following) before the first delivery.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(config.senders)
        .timeout(Duration::from_secs(10))
        .build()?;
    let urls: Vec<String> = stack
        .replicas
        .iter()
        .take(2)
        .map(|r| format!("http://{}/slack/events", r.http()))
        .collect();
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..config.senders {
        let (http, urls, next, stop, ledger) = (
            http.clone(),
            urls.clone(),
            next.clone(),
            stop.clone(),
            ledger.clone(),
        );
        senders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                let body = serde_json::json!({
                    "token": "unused", "team_id": TEAM, "api_app_id": slack_double::APP_ID,
                    "type": "event_callback", "event_id": format!("EvBENCH{seq:010}"),
                    "event_time": chrono_now(),
                    "event": {"type": "message", "channel": "C0ALERTS01", "user": "U0SOMEONE",
                        "text": format!("bench {seq}"), "ts": format!("1700000000.{seq:06}"),
                        "channel_type": "channel"},
                    "authorizations": [{"team_id": TEAM, "user_id": "U0BOTUSER1", "is_bot": true}],
                })
                .to_string();
                let ts = chrono_now();
                let signature = slack_double::events::sign(SIGNING_SECRET, ts, body.as_bytes());
                let sent = Instant::now();
                ledger.lock().await.sent_at.insert(seq, sent);
                let answer = http
                    .post(&urls[(seq % 2) as usize])
                    .header("content-type", "application/json")
                    .header("x-slack-request-timestamp", ts.to_string())
                    .header("x-slack-signature", signature)
                    .body(body)
                    .send()
                    .await;
                let took = sent.elapsed();
                let mut ledger = ledger.lock().await;
                match answer {
                    Ok(a) if a.status().as_u16() == 200 => {
                        ledger.answers.push(took);
                        ledger.accepted.push(seq);
                    }
                    _ => ledger.refused += 1,
                }
            }
        }));
    }
    tokio::time::sleep(config.duration).await;
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await?;
    }
    let elapsed = started.elapsed();

    // Every accepted event reaches both streams (waiting at most 10 s for the last ones).
    let (accepted, mut answers, refused) = {
        let l = ledger.lock().await;
        (l.accepted.clone(), l.answers.clone(), l.refused)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut all = true;
        for s in &seen {
            let s = s.lock().await;
            all &= accepted.iter().all(|seq| s.count.contains_key(seq));
        }
        if all || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for s in streams {
        s.abort();
    }
    let mut report = String::new();
    let rate = accepted.len() as f64 / elapsed.as_secs_f64();
    answers.sort();
    report.push_str(&format!(
        "| figure | value |\n|---|---|\n\
         | deliveries accepted (HTTP 200) | {} in {:.1} s: **{:.0} events/s** ({} senders, two replicas in turn) |\n\
         | deliveries refused | {} |\n\
         | delivery answer p50 / p99 | {} / {} |\n",
        accepted.len(),
        elapsed.as_secs_f64(),
        rate,
        config.senders,
        refused,
        ms(percentile(&answers, 0.5)),
        ms(percentile(&answers, 0.99)),
    ));
    let mut problems = Vec::new();
    for (i, s) in seen.iter().enumerate() {
        let mut s = s.lock().await;
        let missing = accepted
            .iter()
            .filter(|seq| !s.count.contains_key(seq))
            .count();
        let repeated = s.count.values().filter(|&&n| n > 1).count();
        s.latency.sort();
        report.push_str(&format!(
            "| stream on replica {} (events sent to both) send-to-stream p50 / p99 | {} / {} (missing {missing}, repeated {repeated}) |\n",
            ["a", "b"][i],
            ms(percentile(&s.latency, 0.5)),
            ms(percentile(&s.latency, 0.99)),
        ));
        if missing > 0 || repeated > 0 {
            problems.push(format!(
                "the stream on replica {i} missed {missing} and repeated {repeated} events"
            ));
        }
    }
    ensure!(problems.is_empty(), "{}\n{report}", problems.join("; "));
    Ok(report)
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
