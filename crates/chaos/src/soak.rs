//! The soak: mixed traffic at a fixed rate against one replica for a long while, reporting
//! errors, latency per RPC and the server's resident memory over time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connector_grpc_api::pb::{
    CreateConnectorRequest, DeleteConnectorRequest, GetConnectorRequest, SendMessageRequest,
};
use rand::Rng as _;

use crate::stack::{self, CHANNEL, Stack, TOKEN};

/// How a soak goes.
#[derive(Debug, Clone)]
pub(crate) struct SoakConfig {
    /// How long.
    pub(crate) duration: Duration,
    /// Requests per second, all RPCs together.
    pub(crate) rate: u32,
}

#[derive(Default)]
struct Samples {
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    errors: BTreeMap<(&'static str, String), u64>,
}

/// Runs the soak against replica 0; returns the report (a Markdown table and a summary).
pub(crate) async fn run(stack: &mut Stack, config: &SoakConfig) -> anyhow::Result<String> {
    let pid = stack.replicas[0]
        .pid()
        .ok_or_else(|| anyhow::anyhow!("the replica is not running"))?;
    let client = stack::client(stack.replicas[0].grpc()).await?;
    let tenant = "soak";
    // A pool of connectors to send through and read; creates and deletes churn beside it.
    let mut pool = Vec::new();
    for i in 0..20 {
        let c = client
            .clone()
            .create_connector(CreateConnectorRequest {
                tenant_id: tenant.into(),
                name: format!("pool-{i}"),
                slack_bot_token: TOKEN.into(),
                default_channel: CHANNEL.into(),
                request_id: String::new(),
            })
            .await?
            .into_inner()
            .connector
            .ok_or_else(|| anyhow::anyhow!("no connector in the answer"))?;
        pool.push(c.id);
    }
    let pool = Arc::new(pool);
    let samples = Arc::new(Mutex::new(Samples::default()));
    let rss_start = stack::rss_kib(pid).unwrap_or(0);
    let mut rss_trace = vec![rss_start];
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / config.rate.max(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n = 0u64;
    let mut next_rss = Duration::from_secs(60);
    let mut tasks = tokio::task::JoinSet::new();
    while started.elapsed() < config.duration {
        ticks.tick().await;
        n += 1;
        if started.elapsed() >= next_rss {
            rss_trace.push(stack::rss_kib(pid).unwrap_or(0));
            next_rss += Duration::from_secs(60);
        }
        let mut client = client.clone();
        let pool = pool.clone();
        let samples = samples.clone();
        tasks.spawn(async move {
            let roll = rand::rng().random_range(0..100);
            let id = pool[rand::rng().random_range(0..pool.len())].clone();
            let t0 = Instant::now();
            let (rpc, result): (&'static str, Result<(), tonic::Status>) = if roll < 50 {
                let r = client
                    .send_message(SendMessageRequest {
                        tenant_id: tenant.into(),
                        connector_id: id,
                        text: format!("soak {n}"),
                        request_id: format!("soak-{n}"),
                        ..Default::default()
                    })
                    .await;
                ("SendMessage", r.map(drop))
            } else if roll < 85 {
                let r = client
                    .get_connector(GetConnectorRequest {
                        tenant_id: tenant.into(),
                        id,
                    })
                    .await;
                ("GetConnector", r.map(drop))
            } else {
                // A create and the delete of what it made: the churn of a real tenant.
                let r = client
                    .create_connector(CreateConnectorRequest {
                        tenant_id: tenant.into(),
                        name: format!("churn-{n}"),
                        slack_bot_token: TOKEN.into(),
                        default_channel: CHANNEL.into(),
                        request_id: String::new(),
                    })
                    .await;
                let created = t0.elapsed();
                match r {
                    Ok(r) => {
                        let id = r.into_inner().connector.map(|c| c.id).unwrap_or_default();
                        let t1 = Instant::now();
                        let d = client
                            .delete_connector(DeleteConnectorRequest {
                                tenant_id: tenant.into(),
                                id,
                            })
                            .await;
                        let mut s = samples.lock().unwrap_or_else(|p| p.into_inner());
                        s.latencies
                            .entry("CreateConnector")
                            .or_default()
                            .push(created);
                        match d {
                            Ok(_) => s
                                .latencies
                                .entry("DeleteConnector")
                                .or_default()
                                .push(t1.elapsed()),
                            Err(e) => {
                                *s.errors
                                    .entry(("DeleteConnector", format!("{:?}", e.code())))
                                    .or_default() += 1;
                            }
                        }
                        return;
                    }
                    Err(e) => ("CreateConnector", Err(e)),
                }
            };
            let elapsed = t0.elapsed();
            let mut s = samples.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(()) => s.latencies.entry(rpc).or_default().push(elapsed),
                Err(e) => {
                    *s.errors
                        .entry((rpc, format!("{:?}", e.code())))
                        .or_default() += 1
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let rss_end = stack::rss_kib(pid).unwrap_or(0);
    rss_trace.push(rss_end);

    let s = samples.lock().unwrap_or_else(|p| p.into_inner());
    let mut table =
        String::from("| RPC | calls | errors | p50 | p99 | max |\n|---|---|---|---|---|---|\n");
    let mut total_errors = 0;
    for (rpc, lat) in &s.latencies {
        let mut lat = lat.clone();
        lat.sort();
        let errors: u64 = s
            .errors
            .iter()
            .filter(|((r, _), _)| r == rpc)
            .map(|(_, n)| n)
            .sum();
        total_errors += errors;
        let at = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
        table.push_str(&format!(
            "| {rpc} | {} | {errors} | {:.1} ms | {:.1} ms | {:.1} ms |\n",
            lat.len() as u64 + errors,
            ms(at(0.5)),
            ms(at(0.99)),
            ms(at(1.0)),
        ));
    }
    let rss: Vec<String> = rss_trace
        .iter()
        .map(|k| format!("{:.1}", *k as f64 / 1024.0))
        .collect();
    Ok(format!(
        "{table}\nsoak: {} s at {} req/s; errors {total_errors} {:?}; RSS MiB start {:.1}, end {:.1} (each minute: {})",
        config.duration.as_secs(),
        config.rate,
        s.errors,
        rss_start as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        rss.join(" "),
    ))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
