//! The queued-delivery benchmark: a backlog of queued messages spread over many channels of
//! one workspace, accepted by two replicas on one PostgreSQL and posted by both to the Slack
//! double, which enforces the same limits the replicas are configured with (a token bucket
//! per channel and per workspace, answering 429 with `Retry-After`). Measured: the enqueue's
//! answer time (p50/p99) under concurrent callers, delivered posts a second against the rate
//! the limits allow, the 429s the double sent after the first second, and each replica's
//! resident memory while the backlog drains. Every accepted message must be posted exactly
//! once, each channel's in the order its messages were accepted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use connector_grpc_api::pb::{Delivery, SendMessageRequest};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use slack_double::{Channel, RateLimits};
use tokio::sync::Mutex;

use crate::stack::{self, CHANNEL, Stack, TEAM, ms, percentile};

/// How the benchmark runs.
#[derive(Debug, Clone)]
pub(crate) struct BenchConfig {
    /// Messages queued in all.
    pub(crate) messages: usize,
    /// Channels they are spread over (round robin).
    pub(crate) channels: usize,
    /// Concurrent enqueuing callers, half on each replica.
    pub(crate) enqueuers: usize,
    /// Posts a second per channel (the double and the replicas alike).
    pub(crate) channel_rate: f64,
    /// Posts at once per channel.
    pub(crate) channel_burst: u32,
    /// How long the backlog is held (`post_at`) so that it is all queued before the first
    /// post: the enqueue is measured alone, then the drain of the whole backlog. Zero: every
    /// message is due at once, and the replicas post while the rest is queued.
    pub(crate) hold: Duration,
}

impl BenchConfig {
    /// The replicas' settings for it: the same limits as the double's, the workspace's large
    /// enough that every channel can post at its rate.
    pub(crate) fn server_env(&self) -> Vec<(String, String)> {
        [
            (
                "CONNECTOR__DELIVERY__CHANNEL_RATE",
                self.channel_rate.to_string(),
            ),
            (
                "CONNECTOR__DELIVERY__CHANNEL_BURST",
                self.channel_burst.to_string(),
            ),
            (
                "CONNECTOR__DELIVERY__WORKSPACE_RATE_PER_MINUTE",
                self.workspace_per_minute().to_string(),
            ),
            (
                "CONNECTOR__DELIVERY__WORKSPACE_BURST",
                self.workspace_burst().to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn workspace_per_minute(&self) -> f64 {
        (self.channel_rate * self.channels as f64 * 60.0).max(60_000.0)
    }

    fn workspace_burst(&self) -> u32 {
        self.channel_burst * u32::try_from(self.channels).unwrap_or(u32::MAX)
    }

    fn allowed_per_second(&self) -> f64 {
        (self.channel_rate * self.channels as f64).min(self.workspace_per_minute() / 60.0)
    }
}

/// One reading of the run, every second.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    /// Messages the double received: what the delivered throughput is counted from.
    posted: usize,
    /// Final and SENT in the outbox, as last counted (every [`COUNT_EVERY`] samples, and
    /// every sample once everything was posted).
    finished: i64,
    sent: i64,
    rate_limited: u64,
    rss_kib: [u64; 2],
}

#[derive(diesel::QueryableByName)]
struct Queued {
    #[diesel(sql_type = diesel::sql_types::Text)]
    channel_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    body_json: String,
}

#[derive(diesel::QueryableByName)]
struct Counts {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    finished: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    sent: i64,
}

/// Where a channel's time goes between two posts, from the outbox's own times (the database's
/// clock): each claim's `attempted_at`, each outcome's `finished_at`; the first and last 5 s
/// left out.
#[derive(diesel::QueryableByName)]
struct Cycle {
    #[diesel(sql_type = diesel::sql_types::Double)]
    cycle_p50: f64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    cycle_p90: f64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    post_p50: f64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    post_p90: f64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    wait_p50: f64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    wait_p90: f64,
}

const CYCLE_QUERY: &str = "WITH m AS ( \
       SELECT attempted_at, finished_at, \
         lag(finished_at) OVER w AS prev_finished, lag(attempted_at) OVER w AS prev_attempted \
       FROM outbound_messages WHERE status = 'sent' \
       WINDOW w AS (PARTITION BY team_id, channel_id ORDER BY created_at, id)), \
     bounds AS (SELECT min(attempted_at) + interval '5 s' AS lo, \
       max(attempted_at) - interval '5 s' AS hi FROM outbound_messages), \
     steady AS (SELECT extract(epoch FROM attempted_at - prev_attempted) * 1000 AS cycle, \
         extract(epoch FROM finished_at - attempted_at) * 1000 AS post, \
         extract(epoch FROM attempted_at - prev_finished) * 1000 AS wait \
       FROM m, bounds WHERE prev_finished IS NOT NULL AND attempted_at BETWEEN lo AND hi) \
     SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY cycle), 0)::float8 AS cycle_p50, \
       coalesce(percentile_cont(0.9) WITHIN GROUP (ORDER BY cycle), 0)::float8 AS cycle_p90, \
       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY post), 0)::float8 AS post_p50, \
       coalesce(percentile_cont(0.9) WITHIN GROUP (ORDER BY post), 0)::float8 AS post_p90, \
       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY wait), 0)::float8 AS wait_p50, \
       coalesce(percentile_cont(0.9) WITHIN GROUP (ORDER BY wait), 0)::float8 AS wait_p90 \
     FROM steady";

/// The outbox is counted every this many samples (seconds) while the backlog drains.
const COUNT_EVERY: u64 = 10;

/// What a sample reads.
struct Probe<'a> {
    started: Instant,
    pids: [u32; 2],
    double: &'a slack_double::State,
}

impl Probe<'_> {
    /// A reading without the database: the double's count of posts, the replicas' memory.
    /// Counting the outbox is a scan of every row (about 60 ms at 100,000): done every second
    /// it would compete with the enqueues and the drain measured.
    fn sample_without_outbox(&self) -> Sample {
        Sample {
            at: self.started.elapsed(),
            posted: self.double.posted_count(),
            finished: 0,
            sent: 0,
            rate_limited: self.double.rate_limited(),
            rss_kib: self.pids.map(|p| stack::rss_kib(p).unwrap_or(0)),
        }
    }

    /// [`Probe::sample_without_outbox`] with the outbox counted by status.
    async fn sample(&self, db: &mut AsyncPgConnection) -> anyhow::Result<Sample> {
        let counts: Counts = diesel::sql_query(
            "SELECT count(*) FILTER (WHERE status IN ('sent', 'failed', 'unknown', 'cancelled')) AS finished, \
             count(*) FILTER (WHERE status = 'sent') AS sent FROM outbound_messages",
        )
        .get_result(db)
        .await?;
        Ok(Sample {
            finished: counts.finished,
            sent: counts.sent,
            ..self.sample_without_outbox()
        })
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Runs it on `stack` (two replicas configured with [`BenchConfig::server_env`]); a Markdown
/// report, or an error naming what broke.
pub(crate) async fn run(
    stack: &mut Stack,
    config: &BenchConfig,
    database_url: &str,
) -> anyhow::Result<String> {
    ensure!(
        stack.replicas.len() >= 2,
        "the benchmark needs two replicas"
    );
    // The workspace with its channels, and Slack's limits as the replicas know them.
    stack.double.state().add_generated_workspace(
        TEAM,
        config.channels,
        vec![Channel::public("C0ALERTS01", CHANNEL)],
    );
    stack.double.state().set_rate_limits(Some(RateLimits {
        channel_per_second: config.channel_rate,
        channel_burst: config.channel_burst,
        workspace_per_minute: config.workspace_per_minute(),
        workspace_burst: config.workspace_burst(),
    }));
    let channels: Vec<String> = (1..=config.channels).map(|i| format!("C{i:010}")).collect();
    let connector = stack::create_connector(stack.replicas[0].grpc(), "bench", "delivery").await?;

    let mut db = AsyncPgConnection::establish(database_url)
        .await
        .context("connecting to count the outbox")?;
    let pids = [
        stack.replicas[0].pid().unwrap_or(0),
        stack.replicas[1].pid().unwrap_or(0),
    ];
    let started = Instant::now();
    let due = (config.hold > Duration::ZERO).then(|| {
        let at = std::time::SystemTime::now() + config.hold;
        let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        prost_types::Timestamp {
            seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            nanos: 0,
        }
    });
    let probe = Probe {
        started,
        pids,
        double: stack.double.state(),
    };
    // Enqueue the backlog while the replicas deliver; sample every second meanwhile.
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(config.messages)));
    let refused: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let mut enqueuers = tokio::task::JoinSet::new();
    for e in 0..config.enqueuers {
        let mut client = stack::client(stack.replicas[e % 2].grpc()).await?;
        let (next, latencies, refused, channels, connector) = (
            next.clone(),
            latencies.clone(),
            refused.clone(),
            channels.clone(),
            connector.clone(),
        );
        let total = config.messages;
        enqueuers.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= total {
                    break;
                }
                let request = SendMessageRequest {
                    tenant_id: "bench".into(),
                    connector_id: connector.clone(),
                    channel: channels[seq % channels.len()].clone(),
                    text: format!("bench {seq}"),
                    delivery: Delivery::Queued as i32,
                    post_at: due,
                    ..Default::default()
                };
                let sent = Instant::now();
                match client.send_message(request).await {
                    Ok(_) => mine.push(sent.elapsed()),
                    Err(status) => {
                        let why = format!("{:?}: {}", status.code(), status.message());
                        *refused.lock().await.entry(why).or_default() += 1;
                    }
                }
            }
            latencies.lock().await.extend(mine);
        });
    }
    let mut samples = Vec::new();
    let mut problems_early = Vec::new();
    while !enqueuers.is_empty() {
        tokio::select! {
            done = enqueuers.join_next() => { done.transpose().context("an enqueuer panicked")?; }
            () = tokio::time::sleep(Duration::from_secs(1)) => samples.push(if due.is_some() {
                probe.sample_without_outbox()
            } else {
                probe.sample(&mut db).await?
            }),
        }
    }
    let enqueued_in = started.elapsed();
    if let Some(due) = due {
        let due = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(due.seconds)?);
        match due.duration_since(std::time::SystemTime::now()) {
            Ok(wait) => {
                while started.elapsed() < enqueued_in + wait {
                    samples.push(probe.sample_without_outbox());
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Err(_) => problems_early.push(format!(
                "the enqueue took {:.0} s, longer than the hold of {} s: posts began before it ended",
                enqueued_in.as_secs_f64(),
                config.hold.as_secs()
            )),
        }
    }
    let mut latencies = std::mem::take(&mut *latencies.lock().await);
    let accepted = latencies.len() as i64;
    let refused: Vec<String> = refused
        .lock()
        .await
        .iter()
        .map(|(why, n)| format!("{n} × {why}"))
        .collect();
    let refused = if refused.is_empty() {
        "0".to_owned()
    } else {
        refused.join("; ")
    };

    // Drain: until every accepted message is final (allowing twice the ideal time, plus a
    // minute).
    let ideal = Duration::from_secs_f64(accepted as f64 / config.allowed_per_second());
    let patience = started.elapsed().max(config.hold) + ideal * 2 + Duration::from_secs(60);
    let mut counted: Option<Sample> = None;
    for n in 0_u64.. {
        let light = probe.sample_without_outbox();
        let s = if n % COUNT_EVERY == 0 || light.posted as i64 >= accepted {
            let s = probe.sample(&mut db).await?;
            counted = Some(s);
            s
        } else {
            let last = counted.unwrap_or(light);
            Sample {
                finished: last.finished,
                sent: last.sent,
                ..light
            }
        };
        samples.push(s);
        if s.finished >= accepted {
            break;
        }
        ensure!(
            started.elapsed() < patience,
            "the backlog did not drain within {} s: {} of {accepted} final",
            patience.as_secs(),
            s.finished
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let last = *samples.last().context("no sample")?;
    // Each replica's metrics as the drain ended, beside its log, for a closer look.
    for (name, replica) in ["replica-a", "replica-b"].iter().zip(&stack.replicas) {
        let url = format!("http://{}/metrics", replica.admin());
        if let Ok(text) = async { reqwest::get(&url).await?.text().await }.await {
            std::fs::write(stack.log_dir().join(format!("{name}.metrics")), text)?;
        }
    }
    let cycle: Cycle = diesel::sql_query(CYCLE_QUERY).get_result(&mut db).await?;

    // Every accepted message posted once, each channel's in acceptance order.
    let posted = stack.double.state().posted();
    let mut seen: HashMap<u64, u32> = HashMap::new();
    let mut posted_order: HashMap<String, Vec<u64>> = HashMap::new();
    for p in &posted {
        if let Some(seq) = p.text.strip_prefix("bench ").and_then(|n| n.parse().ok()) {
            *seen.entry(seq).or_default() += 1;
            posted_order.entry(p.channel.clone()).or_default().push(seq);
        }
    }
    let twice = seen.values().filter(|&&n| n > 1).count();
    let mut problems = problems_early;
    let rows: Vec<Queued> = diesel::sql_query(
        "SELECT channel_id, body_json FROM outbound_messages ORDER BY created_at, id",
    )
    .load(&mut db)
    .await?;
    let mut accepted_order: HashMap<String, Vec<u64>> = HashMap::new();
    for r in rows {
        let text = serde_json::from_str::<serde_json::Value>(&r.body_json)
            .ok()
            .and_then(|b| b["text"].as_str().map(str::to_owned))
            .unwrap_or_default();
        if let Some(seq) = text.strip_prefix("bench ").and_then(|n| n.parse().ok()) {
            accepted_order.entry(r.channel_id).or_default().push(seq);
        }
    }
    let out_of_order = accepted_order
        .iter()
        .filter(|(channel, order)| posted_order.get(*channel) != Some(order))
        .count();
    if out_of_order > 0 {
        problems.push(format!(
            "{out_of_order} channels posted out of acceptance order"
        ));
    }
    if twice > 0 {
        problems.push(format!("{twice} messages posted more than once"));
    }
    if last.sent != accepted || seen.len() as i64 != accepted {
        problems.push(format!(
            "{accepted} accepted, {} SENT, {} distinct posted",
            last.sent,
            seen.len()
        ));
    }

    // Throughput at steady state: from 5% to 95% of the backlog posted (as the double saw it).
    let at = |share: f64| {
        samples
            .iter()
            .find(|s| s.posted as f64 >= share * accepted as f64)
            .copied()
    };
    let (from, to) = (
        at(0.05).context("5% never posted")?,
        at(0.95).context("95% never posted")?,
    );
    let throughput = (to.posted - from.posted) as f64 / (to.at - from.at).as_secs_f64().max(0.001);
    let first_post = samples
        .iter()
        .find(|s| s.posted > 0)
        .copied()
        .context("nothing posted")?;
    let after_first_second = samples
        .iter()
        .find(|s| s.at >= first_post.at + Duration::from_secs(1))
        .map_or(0, |s| last.rate_limited - s.rate_limited);
    let drain: Vec<&Sample> = samples.iter().filter(|s| s.at >= enqueued_in).collect();
    let rss = |i: usize, of: &[&Sample]| {
        let values: Vec<u64> = of.iter().map(|s| s.rss_kib[i]).collect();
        (
            values.iter().copied().min().unwrap_or(0),
            values.iter().copied().max().unwrap_or(0),
        )
    };
    let all: Vec<&Sample> = samples.iter().collect();
    latencies.sort();
    let allowed = config.allowed_per_second();
    let mut report = format!(
        "| figure | value |\n|---|---|\n\
         | set-up | {} messages over {} channels of one workspace, two replicas, {} enqueuers; the double and the replicas at {} posts/s per channel, burst {}, workspace {:.0}/min; {} |\n\
         | enqueue (DELIVERY_QUEUED answered OK) | {accepted} in {:.1} s ({:.0}/s), refused {refused}; answer p50 / p99 / max {} / {} / {} |\n\
         | delivered at steady state (5% → 95% of the backlog) | **{throughput:.0} posts/s** of {allowed:.0} allowed: **{:.3} ×** |\n\
         | backlog drained | all {} final after {:.1} s ({} SENT) |\n\
         | 429s from the double | {} in all, **{after_first_second} after the first second** |\n\
         | replica RSS while the backlog drained (min → max) | a: {} → {}, b: {} → {} (whole run: a peak {}, b peak {}) |\n\
         | a channel's cycle at steady state, p50 / p90 (database clock) | claim to claim {:.1} / {:.1} ms: claim to outcome recorded {:.1} / {:.1} ms, outcome recorded to the next claim {:.1} / {:.1} ms |\n",
        config.messages,
        config.channels,
        config.enqueuers,
        config.channel_rate,
        config.channel_burst,
        config.workspace_per_minute(),
        if config.hold > Duration::ZERO {
            format!(
                "the backlog held (post_at) {} s after the start, so that it is all queued before the first post",
                config.hold.as_secs()
            )
        } else {
            "every message due at once: posted while the rest is queued".to_owned()
        },
        enqueued_in.as_secs_f64(),
        accepted as f64 / enqueued_in.as_secs_f64(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        throughput / allowed,
        last.finished,
        last.at.as_secs_f64(),
        last.sent,
        last.rate_limited,
        mib(rss(0, &drain).0),
        mib(rss(0, &drain).1),
        mib(rss(1, &drain).0),
        mib(rss(1, &drain).1),
        mib(rss(0, &all).1),
        mib(rss(1, &all).1),
        cycle.cycle_p50,
        cycle.cycle_p90,
        cycle.post_p50,
        cycle.post_p90,
        cycle.wait_p50,
        cycle.wait_p90,
    );
    report.push_str("\nRSS of replica a / b (MiB) and messages posted, every 10 s:\n\n| s | posted | a | b |\n|---|---|---|---|\n");
    for s in samples.iter().step_by(10) {
        report.push_str(&format!(
            "| {:.0} | {} | {:.1} | {:.1} |\n",
            s.at.as_secs_f64(),
            s.posted,
            s.rss_kib[0] as f64 / 1024.0,
            s.rss_kib[1] as f64 / 1024.0
        ));
    }
    ensure!(problems.is_empty(), "{}\n{report}", problems.join("; "));
    Ok(report)
}
