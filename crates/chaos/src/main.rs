//! `connector-chaos`: the chaos suite and the soak, against real `connector-server` replicas.
//!
//! ```text
//! connector-chaos chaos --server-bin PATH --database-url URL [--pg-restart CMD] [--secs 60] [--clients 6]
//! connector-chaos soak  --server-bin PATH --database-url URL [--secs 600] [--rate 40]
//! connector-chaos bench-events --server-bin PATH --database-url URL [--secs 20] [--senders 32]
//! connector-chaos bench-delivery --server-bin PATH --database-url URL [--messages 100000] [--channels 50]
//! ```
//! `scripts/chaos.sh`, `scripts/soak.sh` and `scripts/bench-events.sh` provision what these need (a private PostgreSQL
//! cluster the suite may restart, LocalStack) and run them. The Slack double runs in process;
//! LocalStack is reached through a switchable proxy (`test_support::proxy`).
//!
//! # Must never
//! Be part of a shipped binary, or pass a run in which a promise broke.

mod bench_delivery;
mod bench_events;
mod chaos;
mod chaos_events;
mod soak;
mod stack;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(about = "Chaos suite and soak for connector-server")]
struct Args {
    #[command(subcommand)]
    mode: Mode,
    /// The connector-server binary.
    #[arg(long, global = true, default_value = "target/debug/connector-server")]
    server_bin: PathBuf,
    /// The PostgreSQL database the replicas use (migrated by them).
    #[arg(long, global = true, env = "CHAOS_DATABASE_URL", default_value = "")]
    database_url: String,
    /// Where the replicas' logs go.
    #[arg(long, global = true, default_value = "target/chaos-logs")]
    log_dir: PathBuf,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Concurrent clients against two replicas while faults are injected.
    Chaos {
        /// How long traffic and faults last.
        #[arg(long, default_value_t = 60)]
        secs: u64,
        /// Concurrent clients.
        #[arg(long, default_value_t = 6)]
        clients: usize,
        /// A shell command that restarts the PostgreSQL server (omitted: no restarts).
        #[arg(long)]
        pg_restart: Option<String>,
    },
    /// Mixed traffic at a fixed rate against one replica.
    Soak {
        /// How long.
        #[arg(long, default_value_t = 600)]
        secs: u64,
        /// Requests per second.
        #[arg(long, default_value_t = 40)]
        rate: u32,
    },
    /// Signed Events API deliveries to two replicas, with a stream open on each.
    BenchEvents {
        /// How long deliveries are sent.
        #[arg(long, default_value_t = 20)]
        secs: u64,
        /// Concurrent senders.
        #[arg(long, default_value_t = 32)]
        senders: usize,
    },
    /// A backlog of queued messages over many channels, posted by two replicas to a double
    /// that enforces Slack's limits.
    BenchDelivery {
        /// Messages queued in all.
        #[arg(long, default_value_t = 100_000)]
        messages: usize,
        /// Channels they are spread over.
        #[arg(long, default_value_t = 50)]
        channels: usize,
        /// Concurrent enqueuing callers.
        #[arg(long, default_value_t = 8)]
        enqueuers: usize,
        /// Posts a second per channel, for the double and the replicas alike.
        #[arg(long, default_value_t = 20.0)]
        channel_rate: f64,
        /// Posts at once per channel.
        #[arg(long, default_value_t = 5)]
        channel_burst: u32,
        /// Seconds the backlog is held (post_at) so that it is all queued before the first
        /// post; 0: posted while it is queued.
        #[arg(long, default_value_t = 0)]
        hold_secs: u64,
    },
}

/// The reconciler's interval and staleness in the chaos runs: short, so the check after the
/// faults does not wait long.
const RECONCILE_INTERVAL_SECS: u64 = 2;
const RECONCILE_STALE_SECS: u64 = 5;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(summary) => {
            #[allow(clippy::print_stdout)] // the summary is this program's output
            {
                println!("{summary}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("connector-chaos: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<String> {
    anyhow::ensure!(
        !args.database_url.is_empty(),
        "--database-url (or CHAOS_DATABASE_URL) is required"
    );
    let localstack = test_support::require_localstack().await?;
    let localstack = localstack
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .context("LocalStack's endpoint must be http://HOST:PORT")?;
    let mut extra_env: Vec<(String, String)> = [
        (
            "CONNECTOR__RECONCILER__INTERVAL_SECS",
            RECONCILE_INTERVAL_SECS,
        ),
        (
            "CONNECTOR__RECONCILER__STALE_AFTER_SECS",
            RECONCILE_STALE_SECS,
        ),
        ("CONNECTOR__SLACK__REQUEST_TIMEOUT_SECS", 2),
        ("CONNECTOR__SLACK__DEADLINE_SECS", 8),
        ("CONNECTOR__DATABASE__CONNECT_TIMEOUT_SECS", 2),
        ("CONNECTOR__DATABASE__QUERY_TIMEOUT_SECS", 5),
        ("CONNECTOR__QUOTAS__REQUESTS_PER_SECOND_PER_TENANT", 100_000),
        // Queued delivery at a pace that drains a storm within the run.
        ("CONNECTOR__DELIVERY__CHANNEL_RATE", 20),
        ("CONNECTOR__DELIVERY__CHANNEL_BURST", 5),
        ("CONNECTOR__DELIVERY__WORKSPACE_RATE_PER_MINUTE", 60_000),
        ("CONNECTOR__DELIVERY__WORKSPACE_BURST", 50),
        ("CONNECTOR__QUOTAS__REQUEST_BURST_PER_TENANT", 100_000),
        ("CONNECTOR__QUOTAS__MAX_CONNECTORS_PER_TENANT", 100_000),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_string()))
    .collect();
    let (replicas, quiet) = match &args.mode {
        Mode::Chaos { .. } => (2, false),
        Mode::Soak { .. } => (1, true),
        Mode::BenchEvents { .. } | Mode::BenchDelivery { .. } => (2, true),
    };
    let bench_delivery = match &args.mode {
        Mode::BenchDelivery {
            messages,
            channels,
            enqueuers,
            channel_rate,
            channel_burst,
            hold_secs,
        } => Some(bench_delivery::BenchConfig {
            messages: *messages,
            channels: *channels,
            enqueuers: *enqueuers,
            channel_rate: *channel_rate,
            channel_burst: *channel_burst,
            hold: Duration::from_secs(*hold_secs),
        }),
        _ => None,
    };
    if let Some(bench) = &bench_delivery {
        extra_env.extend(bench.server_env());
    }
    if quiet {
        extra_env.push(("CONNECTOR__LOG__FILTER".into(), "warn".into()));
    }
    // Slack's events over HTTP, for the chaos suite's stream and the inbound benchmark.
    extra_env.push((
        "CONNECTOR__SLACK__SIGNING_SECRET".into(),
        chaos_events::SIGNING_SECRET.into(),
    ));
    if let Mode::BenchEvents { senders, .. } = &args.mode {
        extra_env.push((
            "CONNECTOR__HTTP__MAX_CONNECTIONS_PER_CLIENT".into(),
            (senders * 2).max(64).to_string(),
        ));
    }
    let config = stack::StackConfig {
        server_bin: args.server_bin.clone(),
        database_url: args.database_url.clone(),
        localstack,
        log_dir: args.log_dir.clone(),
        extra_env,
    };
    let mut stack = stack::Stack::start(config, replicas).await?;
    let result = match args.mode {
        Mode::Chaos {
            secs,
            clients,
            pg_restart,
        } => {
            chaos::run(
                &mut stack,
                &chaos::ChaosConfig {
                    duration: Duration::from_secs(secs),
                    clients,
                    pg_restart,
                    database_url: args.database_url,
                    settle: Duration::from_secs(RECONCILE_STALE_SECS + 4 * RECONCILE_INTERVAL_SECS),
                },
            )
            .await
        }
        Mode::BenchEvents { secs, senders } => {
            bench_events::run(
                &mut stack,
                &bench_events::BenchConfig {
                    duration: Duration::from_secs(secs),
                    senders,
                },
            )
            .await
        }
        Mode::BenchDelivery { .. } => match &bench_delivery {
            Some(bench) => bench_delivery::run(&mut stack, bench, &args.database_url).await,
            None => Err(anyhow::anyhow!("the benchmark's settings are missing")),
        },
        Mode::Soak { secs, rate } => {
            soak::run(
                &mut stack,
                &soak::SoakConfig {
                    duration: Duration::from_secs(secs),
                    rate,
                },
            )
            .await
        }
    };
    stack.stop().await;
    result
}
