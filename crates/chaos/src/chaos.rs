//! The chaos suite: clients create, delete and send (immediately and queued) through two
//! replicas while faults are injected at random, and a storm of queued messages is in flight
//! whenever a replica is killed; afterwards, with the faults healed and the reconciler given
//! time, the stores and the Slack double are checked against what the clients were told:
//! every acknowledged queued message settled as SENT (posted once), FAILED (not posted) or
//! UNKNOWN (posted at most once), none lost, none posted twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use anyhow::Context as _;
use connector_grpc_api::pb::connector_service_client::ConnectorServiceClient;
use connector_grpc_api::pb::{
    CreateConnectorRequest, DeleteConnectorRequest, Delivery, GetConnectorRequest,
    GetMessageRequest, MessageStatus, SendMessageRequest,
};
use rand::Rng as _;
use rand::seq::SliceRandom as _;
use slack_double::Fault;
use test_support::proxy::ProxyMode;
use tonic::Code;
use tonic::transport::Channel as GrpcChannel;

use crate::stack::{self, CHANNEL, Stack, TOKEN};

/// How a run goes.
#[derive(Debug, Clone)]
pub(crate) struct ChaosConfig {
    /// How long traffic and faults last.
    pub(crate) duration: Duration,
    /// Concurrent clients.
    pub(crate) clients: usize,
    /// The command that restarts PostgreSQL (`pg_ctl … restart`), run by `sh -c`.
    pub(crate) pg_restart: Option<String>,
    /// The database URL, to read the rows afterwards.
    pub(crate) database_url: String,
    /// The reconciler's staleness, so the check waits long enough.
    pub(crate) settle: Duration,
}

/// The faults, each injected at least once when the run is long enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum FaultKind {
    PgRestart,
    StoreRefused,
    StoreHung,
    Slack5xx,
    Slack429,
    SlackAnswerLost,
    KillReplica,
}

const ALL_FAULTS: [FaultKind; 7] = [
    FaultKind::PgRestart,
    FaultKind::StoreRefused,
    FaultKind::StoreHung,
    FaultKind::Slack5xx,
    FaultKind::Slack429,
    FaultKind::SlackAnswerLost,
    FaultKind::KillReplica,
];

/// What the clients were told.
#[derive(Debug, Default)]
struct Ledger {
    /// Acknowledged creates: connector ID → tenant.
    created: HashMap<String, String>,
    /// Acknowledged deletes.
    deleted: HashSet<String>,
    /// Deletes whose outcome the client does not know (failed or timed out).
    delete_unsure: HashSet<String>,
    /// Texts whose `SendMessage` answered OK.
    sent: HashSet<String>,
    /// Queued messages acknowledged (`DELIVERY_QUEUED` answered OK): text → (tenant, ID).
    queued: HashMap<String, (String, String)>,
    /// How many of them came in the storms sent just before each `kill -9`.
    storm: usize,
    /// Answers by RPC and code.
    codes: BTreeMap<(&'static str, String), u64>,
    /// The `INTERNAL`/`UNKNOWN` answers, whole.
    odd: Vec<String>,
    /// Calls whose connection broke before any answer: which replica, from when to when.
    connections_lost: Vec<LostCall>,
    /// When each `kill -9` happened, and when its replica answered again.
    kills: Vec<Kill>,
    /// Answers that break a promise while traffic runs (an acknowledged connector NOT_FOUND).
    violations: Vec<String>,
}

/// A call that got no answer because its connection broke.
#[derive(Debug)]
struct LostCall {
    rpc: &'static str,
    replica: usize,
    started: Instant,
    ended: Instant,
}

/// A replica killed with `kill -9` and launched again.
#[derive(Debug, Clone, Copy)]
struct Kill {
    replica: usize,
    killed: Instant,
    answering: Instant,
}

/// How long after its replica answers again a call may still find its old connection cut
/// (the client notices the reset on its next write).
const RECONNECT_GRACE: Duration = Duration::from_millis(500);

impl LostCall {
    /// Whether a `kill -9` of the replica that was asked explains the lost connection: the
    /// call ran while that replica was down (or just after, before the client reconnected).
    fn explained_by(&self, kills: &[Kill]) -> bool {
        kills.iter().any(|k| {
            k.replica == self.replica
                && self.ended >= k.killed
                && self.started <= k.answering + RECONNECT_GRACE
        })
    }
}

/// Where one call went and when it started, for the ledger.
#[derive(Debug, Clone, Copy)]
struct Call {
    replica: usize,
    started: Instant,
}

impl Call {
    fn to(replica: usize) -> Self {
        Self {
            replica,
            started: Instant::now(),
        }
    }
}

impl Ledger {
    fn count(&mut self, rpc: &'static str, code: Code) {
        *self.codes.entry((rpc, format!("{code:?}"))).or_default() += 1;
    }

    /// Counts a failed call; an `INTERNAL`/`UNKNOWN` one is kept whole for the report. A
    /// call whose connection broke got no answer at all: the client library reports it as
    /// `UNKNOWN` with its transport error as the source. It is kept apart, with its replica
    /// and times, and excused afterwards only when a `kill -9` of that replica explains it.
    fn failed(&mut self, rpc: &'static str, status: &tonic::Status, call: Call) {
        if status.code() == Code::Unknown && std::error::Error::source(status).is_some() {
            self.count(rpc, Code::Unavailable);
            self.connections_lost.push(LostCall {
                rpc,
                replica: call.replica,
                started: call.started,
                ended: Instant::now(),
            });
            return;
        }
        self.count(rpc, status.code());
        if matches!(status.code(), Code::Internal | Code::Unknown) {
            self.odd
                .push(format!("{rpc}: {:?}: {}", status.code(), status.message()));
        }
    }
}

type Shared = Arc<Mutex<Ledger>>;

fn ledger(shared: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the suite; `Ok(summary)` when every promise held, `Err` naming the broken ones.
pub(crate) async fn run(stack: &mut Stack, config: &ChaosConfig) -> anyhow::Result<String> {
    let shared: Shared = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // Slack's events in, and a stream reading them, through all of it.
    let events = crate::chaos_events::start(stack)
        .await
        .context("starting the Slack events traffic")?;
    let addrs: Vec<SocketAddr> = stack.replicas.iter().map(|r| r.grpc()).collect();
    let storm = stack::create_connector(addrs[0], STORM_TENANT, "storm").await?;
    let mut clients = Vec::new();
    for worker in 0..config.clients {
        clients.push(tokio::spawn(client_loop(
            worker,
            addrs.clone(),
            shared.clone(),
            stop.clone(),
        )));
    }

    let injected = inject_faults(stack, config, &shared, &storm).await?;
    stop.store(true, Ordering::SeqCst);
    events.stop_sending();
    for c in clients {
        c.await.context("a client task panicked")?;
    }

    // Heal: every dependency back, every replica running, and the reconciler given time to
    // finish what the faults interrupted.
    stack.store_proxy.set(ProxyMode::Pass);
    for i in 0..stack.replicas.len() {
        if !stack.running(i) {
            stack.launch(i).await?;
        }
    }
    tokio::time::sleep(config.settle).await;
    let inbound = events.finish(Duration::from_secs(15)).await;

    let ledger = std::mem::take(&mut *ledger(&shared));
    verify(stack, config, ledger, &injected, inbound).await
}

async fn inject_faults(
    stack: &mut Stack,
    config: &ChaosConfig,
    shared: &Shared,
    storm: &str,
) -> anyhow::Result<BTreeMap<FaultKind, u32>> {
    let mut injected = BTreeMap::new();
    let started = tokio::time::Instant::now();
    let mut plan: Vec<FaultKind> = Vec::new();
    while started.elapsed() < config.duration {
        if plan.is_empty() {
            plan = ALL_FAULTS
                .iter()
                .copied()
                .filter(|f| *f != FaultKind::PgRestart || config.pg_restart.is_some())
                .collect();
            plan.shuffle(&mut rand::rng());
        }
        let quiet = Duration::from_millis(rand::rng().random_range(1_500..3_500));
        tokio::time::sleep(quiet).await;
        let Some(fault) = plan.pop() else { break };
        *injected.entry(fault).or_insert(0) += 1;
        let slack = stack.double.state();
        match fault {
            FaultKind::PgRestart => {
                let cmd = config.pg_restart.as_deref().unwrap_or_default();
                let status = tokio::process::Command::new("sh")
                    .args(["-c", cmd])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .await?;
                anyhow::ensure!(status.success(), "restarting PostgreSQL failed: {cmd}");
            }
            FaultKind::StoreRefused | FaultKind::StoreHung => {
                stack.store_proxy.set(if fault == FaultKind::StoreRefused {
                    ProxyMode::Refuse
                } else {
                    ProxyMode::Hang
                });
                let outage = rand::rng().random_range(1_500..4_000);
                tokio::time::sleep(Duration::from_millis(outage)).await;
                stack.store_proxy.set(ProxyMode::Pass);
            }
            FaultKind::Slack5xx => {
                for method in ["chat.postMessage", "auth.test", "conversations.list"] {
                    slack.inject(method, Fault::ServerError { status: 503 }, 4);
                }
            }
            FaultKind::Slack429 => {
                slack.inject(
                    "chat.postMessage",
                    Fault::RateLimited {
                        retry_after_secs: 1,
                    },
                    3,
                );
            }
            FaultKind::SlackAnswerLost => {
                // Posted, but answered after the replicas' 2 s request timeout.
                slack.inject("chat.postMessage", Fault::AnswerLate { millis: 3_000 }, 2);
            }
            FaultKind::KillReplica => {
                // Replica A stays up (it shows recovery without a restart); B is killed
                // while both post a storm of queued messages it helped accept.
                let victim = stack.replicas.len() - 1;
                let round = injected[&fault];
                queue_storm(stack, shared, storm, round).await;
                tokio::time::sleep(Duration::from_millis(rand::rng().random_range(100..600))).await;
                let killed = Instant::now();
                stack.kill(victim).await?;
                tokio::time::sleep(Duration::from_millis(1_500)).await;
                stack.launch(victim).await?;
                ledger(shared).kills.push(Kill {
                    replica: victim,
                    killed,
                    answering: Instant::now(),
                });
            }
        }
    }
    Ok(injected)
}

/// The tenant of the connector the storms go through (never deleted).
const STORM_TENANT: &str = "chaos-storm";
/// Queued messages in each storm, sent half through each replica.
const STORM_SIZE: usize = 60;

/// Sends a storm of queued messages through `connector`, all at once, half to each replica.
async fn queue_storm(stack: &Stack, shared: &Shared, connector: &str, round: u32) {
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..STORM_SIZE {
        let replica = i % stack.replicas.len();
        let addr = stack.replicas[replica].grpc();
        let text = format!("storm-{round}-{i}");
        let request = SendMessageRequest {
            tenant_id: STORM_TENANT.into(),
            connector_id: connector.into(),
            text: text.clone(),
            request_id: text.clone(),
            delivery: Delivery::Queued as i32,
            ..Default::default()
        };
        calls.spawn(async move {
            let call = Call::to(replica);
            let answer = match stack::client(addr).await {
                Ok(mut client) => client.send_message(with_timeout(request)).await,
                Err(e) => Err(tonic::Status::unavailable(e.to_string())),
            };
            (text, call, answer.map(|r| r.into_inner().message_id))
        });
    }
    while let Some(Ok((text, call, answer))) = calls.join_next().await {
        let mut l = ledger(shared);
        match answer {
            Ok(id) => {
                l.count("SendMessage(queued)", Code::Ok);
                l.storm += 1;
                l.queued.insert(text, (STORM_TENANT.into(), id));
            }
            Err(status) => l.failed("SendMessage(queued)", &status, call),
        }
    }
}

/// A client's own connectors.
#[derive(Default)]
struct Own {
    live: Vec<(String, String)>,
}

async fn client_loop(worker: usize, addrs: Vec<SocketAddr>, shared: Shared, stop: Arc<AtomicBool>) {
    let mut clients = Vec::new();
    for addr in &addrs {
        match stack::client(*addr).await {
            Ok(c) => clients.push(c),
            Err(e) => {
                ledger(&shared)
                    .violations
                    .push(format!("client {worker}: {e}"));
                return;
            }
        }
    }
    let mut own = Own::default();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let roll = rand::rng().random_range(0..100);
        let pick = rand::rng().random_range(0..clients.len());
        let client = &mut clients[pick];
        if own.live.is_empty() || roll < 25 {
            create(worker, n, (pick, client), &shared, &mut own).await;
        } else if roll < 40 {
            delete((pick, client), &shared, &mut own).await;
        } else {
            send(worker, n, (pick, client), &shared, &own).await;
        }
    }
}

fn with_timeout<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_secs(20));
    request
}

/// Whether a retry with the same key may help.
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::Aborted | Code::DeadlineExceeded | Code::Cancelled
    )
}

/// A client of one replica, with that replica's index.
type Replica<'a> = (usize, &'a mut ConnectorServiceClient<GrpcChannel>);

async fn create(
    worker: usize,
    n: u64,
    (replica, client): Replica<'_>,
    shared: &Shared,
    own: &mut Own,
) {
    let tenant = format!("chaos-t{}", worker % 3);
    let request = CreateConnectorRequest {
        tenant_id: tenant.clone(),
        name: format!("c-{worker}-{n}"),
        slack_bot_token: TOKEN.into(),
        default_channel: format!("#{CHANNEL}"),
        request_id: uuid::Uuid::new_v4().to_string(),
    };
    for attempt in 0..3 {
        let call = Call::to(replica);
        let answer = client.create_connector(with_timeout(request.clone())).await;
        let again = {
            let mut l = ledger(shared);
            match answer {
                Ok(r) => {
                    l.count("CreateConnector", Code::Ok);
                    if let Some(c) = r.into_inner().connector {
                        l.created.insert(c.id.clone(), tenant.clone());
                        own.live.push((c.id, tenant.clone()));
                    }
                    false
                }
                Err(status) => {
                    l.failed("CreateConnector", &status, call);
                    retryable(status.code()) && attempt < 2
                }
            }
        };
        if !again {
            return;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn delete((replica, client): Replica<'_>, shared: &Shared, own: &mut Own) {
    let i = rand::rng().random_range(0..own.live.len());
    let (id, tenant) = own.live.swap_remove(i);
    let call = Call::to(replica);
    let answer = client
        .delete_connector(with_timeout(DeleteConnectorRequest {
            tenant_id: tenant,
            id: id.clone(),
        }))
        .await;
    let mut l = ledger(shared);
    match answer {
        Ok(_) => {
            l.count("DeleteConnector", Code::Ok);
            l.deleted.insert(id);
        }
        Err(status) => {
            l.failed("DeleteConnector", &status, call);
            if status.code() == Code::NotFound {
                l.violations.push(format!(
                    "connector {id} was acknowledged as created, never deleted, and DeleteConnector says NOT_FOUND"
                ));
            }
            l.delete_unsure.insert(id);
        }
    }
}

async fn send(worker: usize, n: u64, (replica, client): Replica<'_>, shared: &Shared, own: &Own) {
    let (id, tenant) = &own.live[rand::rng().random_range(0..own.live.len())];
    let queued = rand::rng().random_bool(0.5);
    let text = format!("{}-{worker}-{n}", if queued { "q" } else { "m" });
    let rpc = if queued {
        "SendMessage(queued)"
    } else {
        "SendMessage"
    };
    let request = SendMessageRequest {
        tenant_id: tenant.clone(),
        connector_id: id.clone(),
        text: text.clone(),
        request_id: text.clone(),
        delivery: if queued {
            Delivery::Queued
        } else {
            Delivery::Immediate
        } as i32,
        ..Default::default()
    };
    for attempt in 0..3 {
        let call = Call::to(replica);
        let answer = client.send_message(with_timeout(request.clone())).await;
        let again = {
            let mut l = ledger(shared);
            match answer {
                Ok(answer) => {
                    l.count(rpc, Code::Ok);
                    if queued {
                        let id = answer.into_inner().message_id;
                        l.queued.insert(text.clone(), (tenant.clone(), id));
                    } else {
                        l.sent.insert(text.clone());
                    }
                    false
                }
                Err(status) => {
                    l.failed(rpc, &status, call);
                    if status.code() == Code::NotFound {
                        l.violations.push(format!(
                            "connector {id} was acknowledged as created, never deleted, and SendMessage says NOT_FOUND"
                        ));
                    }
                    retryable(status.code()) && attempt < 2
                }
            }
        };
        if !again {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[derive(diesel::QueryableByName)]
struct RowState {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    tenant_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    state: String,
}

async fn verify(
    stack: &Stack,
    config: &ChaosConfig,
    mut ledger: Ledger,
    injected: &BTreeMap<FaultKind, u32>,
    (inbound, inbound_broken): (String, Vec<String>),
) -> anyhow::Result<String> {
    use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
    let mut conn = AsyncPgConnection::establish(&config.database_url)
        .await
        .context("connecting to read the rows")?;
    let rows: Vec<RowState> =
        diesel::sql_query("SELECT id::text AS id, tenant_id, state FROM connectors")
            .load(&mut conn)
            .await?;
    let secrets = stored_secrets(&stack.prefix).await?;

    let mut broken = std::mem::take(&mut ledger.violations);
    broken.extend(inbound_broken);
    let active: HashSet<String> = rows
        .iter()
        .filter(|r| r.state == "active")
        .map(|r| format!("{}/{}", r.tenant_id, r.id))
        .collect();
    let any_row: HashSet<String> = rows
        .iter()
        .map(|r| format!("{}/{}", r.tenant_id, r.id))
        .collect();
    let unfinished = rows.iter().filter(|r| r.state != "active").count();
    if unfinished > 0 {
        broken.push(format!("{unfinished} row(s) left creating/deleting"));
    }
    let orphans: Vec<_> = secrets.difference(&any_row).collect();
    if !orphans.is_empty() {
        broken.push(format!("secrets without a row: {orphans:?}"));
    }
    let bare: Vec<_> = active.difference(&secrets).collect();
    if !bare.is_empty() {
        broken.push(format!("active rows without their secret: {bare:?}"));
    }
    let mut lost = 0;
    for (id, tenant) in &ledger.created {
        let key = format!("{tenant}/{id}");
        if ledger.deleted.contains(id) {
            if any_row.contains(&key) || secrets.contains(&key) {
                broken.push(format!("acknowledged delete of {id} came back"));
            }
        } else if !ledger.delete_unsure.contains(id) && !active.contains(&key) {
            lost += 1;
            broken.push(format!("acknowledged create of {id} is missing"));
        }
    }
    // Replica A was never restarted: it must answer for every surviving connector.
    let mut a = stack::client(stack.replicas[0].grpc()).await?;
    let surviving: Vec<_> = ledger
        .created
        .iter()
        .filter(|(id, _)| !ledger.deleted.contains(*id) && !ledger.delete_unsure.contains(*id))
        .collect();
    for (id, tenant) in &surviving {
        if let Err(status) = a
            .get_connector(GetConnectorRequest {
                tenant_id: (*tenant).clone(),
                id: (*id).clone(),
            })
            .await
        {
            broken.push(format!(
                "replica A cannot read {id} after the faults: {status}"
            ));
        }
    }
    for tenant in ["chaos-t0", "chaos-t1", "chaos-t2"] {
        if let Err(status) = stack::list_all(&mut a, tenant).await {
            broken.push(format!(
                "replica A cannot list {tenant} after the faults: {status}"
            ));
        }
    }

    // Every acknowledged queued message settles: a claim the killed replica held is taken
    // over once its lease (30 s) passes.
    let settled = settle_queued(&mut a, &ledger.queued, Duration::from_secs(120)).await;
    let mut posts: HashMap<String, u32> = HashMap::new();
    for p in stack.double.state().posted() {
        *posts.entry(p.text).or_default() += 1;
    }
    let twice: Vec<_> = posts.iter().filter(|(_, n)| **n > 1).collect();
    let mut queued_by_status: BTreeMap<String, usize> = BTreeMap::new();
    for (text, outcome) in &settled {
        let posted = posts.get(text).copied().unwrap_or(0);
        let status = match outcome {
            Ok((status, last_error)) => {
                let name = status.as_str_name().trim_start_matches("MESSAGE_STATUS_");
                let key = if last_error.is_empty() {
                    name.to_owned()
                } else {
                    format!("{name}({last_error})")
                };
                *queued_by_status.entry(key).or_default() += 1;
                *status
            }
            Err(problem) => {
                broken.push(format!("queued message {text:?}: {problem}"));
                continue;
            }
        };
        match status {
            MessageStatus::Sent if posted != 1 => broken.push(format!(
                "queued message {text:?} is SENT but was posted {posted} times"
            )),
            MessageStatus::Failed if posted != 0 => broken.push(format!(
                "queued message {text:?} is FAILED but was posted {posted} times"
            )),
            MessageStatus::Sent | MessageStatus::Failed | MessageStatus::Unknown => {}
            other => broken.push(format!(
                "queued message {text:?} settled as {}",
                other.as_str_name()
            )),
        }
    }
    if !twice.is_empty() {
        broken.push(format!("messages posted more than once: {twice:?}"));
    }
    let unposted: Vec<_> = ledger
        .sent
        .iter()
        .filter(|t| !posts.contains_key(*t))
        .collect();
    if !unposted.is_empty() {
        broken.push(format!("acknowledged sends never posted: {unposted:?}"));
    }
    let bad_codes: u64 = ledger
        .codes
        .iter()
        .filter(|((_, code), _)| code == "Internal" || code == "Unknown")
        .map(|(_, n)| n)
        .sum();
    let unexplained: Vec<_> = ledger
        .connections_lost
        .iter()
        .filter(|c| !c.explained_by(&ledger.kills))
        .map(|c| format!("{} to replica {}", c.rpc, c.replica))
        .collect();
    if !unexplained.is_empty() {
        broken.push(format!(
            "{} call(s) lost their connection while their replica was not being killed: {unexplained:?}",
            unexplained.len()
        ));
    }
    // A floor under the work done: a run in which (nearly) every call failed proves nothing.
    let floor = Floor::for_run(config);
    for (what, done, least) in [
        ("creates", ledger.created.len(), floor.creates),
        ("deletes", ledger.deleted.len(), floor.deletes),
        (
            "sends",
            ledger.sent.len() + ledger.queued.len(),
            floor.sends,
        ),
    ] {
        if done < least {
            broken.push(format!(
                "only {done} acknowledged {what}, under the floor of {least} for this run"
            ));
        }
    }
    if bad_codes > 0 {
        broken.push(format!(
            "{bad_codes} INTERNAL/UNKNOWN answer(s): {:?}",
            ledger.odd
        ));
    }

    let faults: Vec<String> = injected
        .iter()
        .map(|(k, n)| format!("{}={n}", fault_name(*k)))
        .collect();
    let mut by_code: BTreeMap<&str, u64> = BTreeMap::new();
    for ((_, code), n) in &ledger.codes {
        *by_code.entry(code.as_str()).or_default() += n;
    }
    let codes: Vec<String> = by_code.iter().map(|(c, n)| format!("{c}={n}")).collect();
    let summary = format!(
        "chaos: {} s, {} clients, {} replicas; faults {}; answers {} (connections cut by kill -9: {}); creates acked {} (floor {}), deletes acked {} (floor {}), sends acked {} (floor {}, posted once each); queued acked {} ({} in storms before the kills) settled {:?}; replica A read all {} surviving connectors; secrets {}, rows {}; orphan secrets {}, rows without secret {}, lost creates {lost}, unfinished rows {unfinished}, INTERNAL/UNKNOWN {bad_codes}, double posts {}; {inbound}: {}",
        config.duration.as_secs(),
        config.clients,
        stack.replicas.len(),
        faults.join(" "),
        codes.join(" "),
        ledger.connections_lost.len(),
        ledger.created.len(),
        floor.creates,
        ledger.deleted.len(),
        floor.deletes,
        ledger.sent.len(),
        floor.sends,
        ledger.queued.len(),
        ledger.storm,
        queued_by_status,
        surviving.len(),
        secrets.len(),
        rows.len(),
        orphans.len(),
        bare.len(),
        twice.len(),
        if broken.is_empty() { "PASS" } else { "FAIL" },
    );
    if broken.is_empty() {
        Ok(summary)
    } else {
        anyhow::bail!(
            "{summary}\n{}\n(replica logs in {})",
            broken.join("\n"),
            stack.log_dir().display()
        )
    }
}

/// Waits (at most `patience`) until every acknowledged queued message is final, reading
/// each through `client`; per text, its final status or what is wrong with it.
async fn settle_queued(
    client: &mut ConnectorServiceClient<GrpcChannel>,
    queued: &HashMap<String, (String, String)>,
    patience: Duration,
) -> HashMap<String, Result<(MessageStatus, String), String>> {
    let until = Instant::now() + patience;
    let mut settled = HashMap::new();
    let mut pending: Vec<_> = queued.iter().collect();
    loop {
        let mut open = Vec::new();
        for entry in pending {
            let (text, (tenant, id)) = entry;
            let answer = client
                .get_message(GetMessageRequest {
                    tenant_id: tenant.clone(),
                    message_id: id.clone(),
                })
                .await;
            let (status, last_error) = match answer {
                Ok(r) => r
                    .into_inner()
                    .message
                    .map(|m| {
                        (
                            MessageStatus::try_from(m.status).unwrap_or_default(),
                            m.last_error,
                        )
                    })
                    .unwrap_or_default(),
                Err(status) if status.code() == Code::NotFound => {
                    settled.insert(text.clone(), Err("acknowledged, then lost".to_owned()));
                    continue;
                }
                // Read again in the next round.
                Err(_) => (MessageStatus::Queued, String::new()),
            };
            if matches!(status, MessageStatus::Queued | MessageStatus::Sending) {
                open.push(entry);
            } else {
                settled.insert(text.clone(), Ok((status, last_error)));
            }
        }
        if open.is_empty() {
            return settled;
        }
        if Instant::now() > until {
            for (text, _) in open {
                settled.insert(
                    text.clone(),
                    Err(format!("not settled within {} s", patience.as_secs())),
                );
            }
            return settled;
        }
        pending = open;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The least acknowledged work a run must show, scaled to its length and clients: about a
/// tenth of what a healthy 2-core machine does between the faults (measured: 2.7 creates,
/// 1.6 deletes and 6 sends a client-second), so a slow machine passes and a run where the
/// calls failed does not.
struct Floor {
    creates: usize,
    deletes: usize,
    sends: usize,
}

impl Floor {
    fn for_run(config: &ChaosConfig) -> Self {
        let client_seconds = config.duration.as_secs_f64() * config.clients as f64;
        let least = |per_client_second: f64| (client_seconds * per_client_second).ceil() as usize;
        Self {
            creates: least(0.25),
            deletes: least(0.1),
            sends: least(0.25),
        }
    }
}

fn fault_name(k: FaultKind) -> &'static str {
    match k {
        FaultKind::PgRestart => "pg_restart",
        FaultKind::StoreRefused => "store_refused",
        FaultKind::StoreHung => "store_hung",
        FaultKind::Slack5xx => "slack_5xx",
        FaultKind::Slack429 => "slack_429",
        FaultKind::SlackAnswerLost => "slack_answer_lost",
        FaultKind::KillReplica => "kill_9",
    }
}

/// `tenant/id` of every secret under `prefix` in LocalStack (not through the proxy).
async fn stored_secrets(prefix: &str) -> anyhow::Result<HashSet<String>> {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(test_support::localstack_endpoint())
        .credentials_provider(Credentials::new("test", "test", None, None, "chaos"))
        .build();
    let client = aws_sdk_secretsmanager::Client::from_conf(config);
    let mut names = HashSet::new();
    let mut pages = client
        .list_secrets()
        .filters(
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values(prefix)
                .build(),
        )
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for s in page?.secret_list() {
            if let Some(name) = s.name().and_then(|n| n.strip_prefix(prefix)) {
                names.insert(name.to_owned());
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_connection_is_excused_only_by_a_kill_of_its_replica_while_it_ran() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let kills = [Kill {
            replica: 1,
            killed: at(10_000),
            answering: at(12_000),
        }];
        let lost = |replica, from, to| LostCall {
            rpc: "SendMessage",
            replica,
            started: at(from),
            ended: at(to),
        };
        // Ran across the kill, or started while the replica was down or reconnecting.
        assert!(lost(1, 9_000, 10_001).explained_by(&kills));
        assert!(lost(1, 11_000, 11_500).explained_by(&kills));
        assert!(lost(1, 12_400, 12_450).explained_by(&kills));
        // Another replica, before the kill, or well after it answered again.
        assert!(!lost(0, 9_000, 10_500).explained_by(&kills));
        assert!(!lost(1, 5_000, 9_999).explained_by(&kills));
        assert!(!lost(1, 13_000, 13_100).explained_by(&kills));
        assert!(!lost(1, 9_000, 10_500).explained_by(&[]));
    }

    #[test]
    fn the_floor_scales_with_the_run() {
        let config = |secs, clients| ChaosConfig {
            duration: Duration::from_secs(secs),
            clients,
            pg_restart: None,
            database_url: String::new(),
            settle: Duration::ZERO,
        };
        let short = Floor::for_run(&config(45, 6));
        assert_eq!((short.creates, short.deletes, short.sends), (68, 27, 68));
        let long = Floor::for_run(&config(600, 12));
        assert_eq!((long.creates, long.deletes, long.sends), (1800, 720, 1800));
    }
}
