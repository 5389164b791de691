//! Sender benchmark against the Slack double (in process), PostgreSQL and LocalStack:
//!
//! 1. messages per second through a warm `Sender`, versus raw `chat.postMessage` posts with a
//!    plain HTTP client to the same double in the same run (the floor the sender adds to);
//! 2. the latency of one cold `send_message` call (new pool, new clients, token read from
//!    Secrets Manager), and of a warm one.
//!
//! Raw and `Sender` runs alternate in `BENCH_ROUNDS` paired rounds (default 5), each of
//! `BENCH_MESSAGES` messages (default 4000) sequentially and at `BENCH_CONCURRENCY` (default
//! 16); the table shows each path's median and the median of the per-round ratios, with their
//! range: on a small machine shared with the double and the databases one round is noisy.
//!
//! Run it with the services up (`scripts/bench.sh` provisions them):
//! `cargo bench -p connector-sender --bench throughput`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use connector_adapters_aws::{AwsSecretStore, AwsSettings, StaticCredentials};
use connector_adapters_postgres::PgConnectorRepository;
use connector_adapters_slack::{HttpSlackApi, SlackSettings};
use connector_domain::SecretPrefix;
use connector_ports::{Connectors, RepositorySettings};
use connector_sender::{Sender, SenderConfig, clear_send_message_cache, send_message};
use connector_usecases::{ConnectorService, CreateConnector, Ports, SystemClock};
use slack_double::{Channel, SlackDouble};

const TOKEN: &str = "xoxb-7777-8888-benchmarks";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `total` calls of `f` on `concurrency` tasks; returns messages per second.
async fn rate<F, Fut>(total: usize, concurrency: usize, f: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let f = f.clone();
        tasks.spawn(async move {
            let mut i = worker;
            while i < total {
                f(i).await;
                i += concurrency;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let total = env_usize("BENCH_MESSAGES", 4000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 16);
    let rounds = env_usize("BENCH_ROUNDS", 5).max(1);

    let endpoint = test_support::require_localstack().await.unwrap();
    let db = test_support::TestDatabase::create().await.unwrap();
    let double = SlackDouble::start().await.unwrap();
    double.state().add_generated_workspace(
        "T0BENCH01",
        0,
        vec![Channel::public("C0BENCH001", "bench")],
    );
    double.state().add_token(TOKEN, "T0BENCH01");
    let prefix = format!("bench-{}/", uuid::Uuid::new_v4().simple());

    let secrets = AwsSecretStore::new(&AwsSettings {
        endpoint_url: Some(endpoint.clone()),
        credentials: Some(StaticCredentials {
            access_key_id: "test".into(),
            secret_access_key: "test".to_owned().into(),
        }),
        ..AwsSettings::default()
    })
    .await;
    let service = ConnectorService::new(Ports {
        connectors: Connectors::new(Arc::new(
            PgConnectorRepository::connect(db.url(), &RepositorySettings::default())
                .await
                .unwrap(),
        )),
        secrets: Arc::new(secrets),
        slack: Arc::new(
            HttpSlackApi::new(SlackSettings {
                api_base_url: double.api_base_url(),
                ..SlackSettings::default()
            })
            .unwrap(),
        ),
        secret_prefix: SecretPrefix::parse("p", &prefix).unwrap(),
        clock: Arc::new(SystemClock),
    });
    let id = service
        .create(CreateConnector::parse("bench", "bench", TOKEN, "bench", "").unwrap())
        .await
        .unwrap()
        .id
        .to_string();
    let config = SenderConfig::new(db.url())
        .with_aws_endpoint(endpoint)
        .with_aws_credentials("test", "test")
        .with_secret_prefix(prefix)
        .with_slack_api_base_url(double.api_base_url());

    // 1. Raw chat.postMessage with a plain client: the floor.
    let http = reqwest::Client::new();
    let url = format!("{}chat.postMessage", double.api_base_url());
    let raw = |conc: usize| {
        let (http, url) = (http.clone(), url.clone());
        rate(total, conc, move |i| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let r: serde_json::Value = http
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&serde_json::json!({"channel": "C0BENCH001", "text": format!("raw {i}")}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(r["ok"], true);
            }
        })
    };
    // 2. A warm Sender, in rounds paired with the raw posts.
    let sender = Sender::connect(&config).await.unwrap();
    sender.send(&id, "warm up").await.unwrap();
    let through_sender = |conc: usize| {
        let (sender, id) = (sender.clone(), id.clone());
        rate(total, conc, move |i| {
            let (sender, id) = (sender.clone(), id.clone());
            async move {
                sender.send(&id, format!("sender {i}")).await.unwrap();
            }
        })
    };
    let (mut raw_seqs, mut raw_pars, mut sender_seqs, mut sender_pars) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut seq_ratios, mut par_ratios) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (r, s) = (raw(1).await, through_sender(1).await);
        seq_ratios.push(s / r);
        raw_seqs.push(r);
        sender_seqs.push(s);
        let (r, s) = (raw(concurrency).await, through_sender(concurrency).await);
        par_ratios.push(s / r);
        raw_pars.push(r);
        sender_pars.push(s);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        format!("{:.0}–{:.0} %", lo * 100.0, hi * 100.0)
    };
    let (seq_range, par_range) = (range(&seq_ratios), range(&par_ratios));
    let (raw_seq, raw_par) = (median(&mut raw_seqs), median(&mut raw_pars));
    let (sender_seq, sender_par) = (median(&mut sender_seqs), median(&mut sender_pars));
    let (seq_ratio, par_ratio) = (median(&mut seq_ratios), median(&mut par_ratios));

    // The same with one pooled database connection per concurrent sender.
    let wide = Sender::connect(&config.clone().with_max_connections(concurrency as u32))
        .await
        .unwrap();
    wide.send(&id, "warm up").await.unwrap();
    let wide_par = rate(total, concurrency, {
        let id = id.clone();
        move |i| {
            let (sender, id) = (wide.clone(), id.clone());
            async move {
                sender.send(&id, format!("wide {i}")).await.unwrap();
            }
        }
    })
    .await;

    // 3. Cold and warm send_message latency.
    let mut cold = Vec::new();
    for i in 0..20 {
        clear_send_message_cache();
        let started = Instant::now();
        send_message(&config, &id, format!("cold {i}"))
            .await
            .unwrap();
        cold.push(started.elapsed());
    }
    cold.sort();
    let mut warm = Vec::new();
    for i in 0..200 {
        let started = Instant::now();
        send_message(&config, &id, format!("warm {i}"))
            .await
            .unwrap();
        warm.push(started.elapsed());
    }
    warm.sort();

    println!(
        "messages: {total} a run, rounds: {rounds}, concurrency: {concurrency}, cores: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!();
    println!("| path | sequential msg/s | {concurrency} concurrent msg/s |");
    println!("|---|---|---|");
    println!("| raw chat.postMessage (reqwest) | {raw_seq:.0} | {raw_par:.0} |");
    println!(
        "| warm Sender::send (default pool: 4 connections) | {sender_seq:.0} | {sender_par:.0} |"
    );
    println!("| warm Sender::send ({concurrency} connections) | - | {wide_par:.0} |");
    println!(
        "| Sender / raw, median of the rounds' ratios (range) | {:.0} % ({seq_range}) | {:.0} % ({par_range}) |",
        seq_ratio * 100.0,
        par_ratio * 100.0
    );
    println!();
    println!("| send_message latency | median | p90 | min | max |");
    println!("|---|---|---|---|---|");
    println!(
        "| cold (20 calls, cache cleared each time) | {} | {} | {} | {} |",
        ms(percentile(&cold, 0.5)),
        ms(percentile(&cold, 0.9)),
        ms(cold[0]),
        ms(cold[cold.len() - 1])
    );
    println!(
        "| warm (200 calls) | {} | {} | {} | {} |",
        ms(percentile(&warm, 0.5)),
        ms(percentile(&warm, 0.9)),
        ms(warm[0]),
        ms(warm[warm.len() - 1])
    );
}
