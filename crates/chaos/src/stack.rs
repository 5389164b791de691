//! The system under test: server replicas (the real `connector-server` binary, as child
//! processes) on one PostgreSQL, reaching LocalStack through a [`FaultProxy`] and Slack through
//! an in-process double.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use connector_grpc_api::pb::connector_service_client::ConnectorServiceClient;
use connector_grpc_api::pb::{Connector, ListConnectorsRequest};
use slack_double::{Channel, SlackDouble};
use test_support::proxy::FaultProxy;
use test_support::stack::{Endpoints, Workspace};
use tokio::process::{Child, Command};
use tonic::transport::Channel as GrpcChannel;

/// The bot token every connector is created with.
pub(crate) const TOKEN: &str = "xoxb-chaos-0000-token";
/// The double's workspace.
pub(crate) const TEAM: &str = "T0CHAOS001";
/// The default channel of every connector.
pub(crate) const CHANNEL: &str = "alerts";

/// How the replicas are configured.
#[derive(Debug, Clone)]
pub(crate) struct StackConfig {
    /// The `connector-server` binary.
    pub(crate) server_bin: PathBuf,
    /// Its PostgreSQL database.
    pub(crate) database_url: String,
    /// LocalStack's address (the proxy forwards to it).
    pub(crate) localstack: SocketAddr,
    /// Where the replicas' logs go.
    pub(crate) log_dir: PathBuf,
    /// Extra `CONNECTOR__…` settings.
    pub(crate) extra_env: Vec<(String, String)>,
}

/// One server process.
pub(crate) struct Replica {
    name: &'static str,
    grpc: SocketAddr,
    http: SocketAddr,
    admin: SocketAddr,
    child: Option<Child>,
    starts: u32,
}

impl Replica {
    /// Its gRPC address.
    pub(crate) fn grpc(&self) -> SocketAddr {
        self.grpc
    }

    /// Its public HTTP address (Slack's routes).
    pub(crate) fn http(&self) -> SocketAddr {
        self.http
    }

    /// Its admin address (`/metrics`, the probes).
    pub(crate) fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// The process ID, while running.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }
}

/// The running stack.
pub(crate) struct Stack {
    /// The Slack double.
    pub(crate) double: SlackDouble,
    /// The proxy in front of LocalStack.
    pub(crate) store_proxy: FaultProxy,
    /// The secret-name prefix of this run.
    pub(crate) prefix: String,
    /// The replicas.
    pub(crate) replicas: Vec<Replica>,
    config: StackConfig,
}

impl Stack {
    /// Starts the double, the proxy and `replicas` servers, and waits until each answers.
    pub(crate) async fn start(config: StackConfig, replicas: usize) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.log_dir)
            .with_context(|| format!("creating {}", config.log_dir.display()))?;
        let double = SlackDouble::start().await?;
        Workspace::new(TEAM, TOKEN)
            .with_generated_channels(5)
            .with_channels(vec![Channel::public("C0ALERTS01", CHANNEL)])
            .seed(&double);
        let store_proxy = FaultProxy::start(config.localstack).await?;
        let names = ["replica-a", "replica-b", "replica-c"];
        let mut stack = Self {
            double,
            store_proxy,
            prefix: format!("chaos-{}/", uuid::Uuid::new_v4().simple()),
            replicas: Vec::new(),
            config,
        };
        for name in names.into_iter().take(replicas.max(1)) {
            let (grpc, http, admin) = (free_addr()?, free_addr()?, free_addr()?);
            stack.replicas.push(Replica {
                name,
                grpc,
                http,
                admin,
                child: None,
                starts: 0,
            });
        }
        for i in 0..stack.replicas.len() {
            stack.launch(i).await?;
        }
        Ok(stack)
    }

    /// Starts replica `i` (again) and waits until it answers.
    pub(crate) async fn launch(&mut self, i: usize) -> anyhow::Result<()> {
        let dependencies = Endpoints {
            database_url: self.config.database_url.clone(),
            aws_endpoint: format!("http://{}", self.store_proxy.addr()),
            secret_prefix: self.prefix.clone(),
            slack_api_base_url: self.double.api_base_url(),
        };
        let replica = &mut self.replicas[i];
        replica.starts += 1;
        let log = self
            .config
            .log_dir
            .join(format!("{}-{}.log", replica.name, replica.starts));
        let log = std::fs::File::create(&log).with_context(|| format!("{}", log.display()))?;
        let mut cmd = Command::new(&self.config.server_bin);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(dependencies.dependency_env())
            .env("CONNECTOR__GRPC__LISTEN_ADDR", replica.grpc.to_string())
            .env("CONNECTOR__HTTP__LISTEN_ADDR", replica.http.to_string())
            .env("CONNECTOR__ADMIN__LISTEN_ADDR", replica.admin.to_string())
            .env("CONNECTOR__LOG__FORMAT", "json")
            .envs(self.config.extra_env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        replica.child = Some(
            cmd.spawn()
                .with_context(|| format!("starting {}", self.config.server_bin.display()))?,
        );
        let grpc = replica.grpc;
        let started = Instant::now();
        loop {
            if let Ok(mut client) = client(grpc).await
                && client
                    .list_connectors(ListConnectorsRequest {
                        tenant_id: "chaos-probe".into(),
                        ..Default::default()
                    })
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "{} did not answer within 60 s; see its log in {}",
                    self.replicas[i].name,
                    self.config.log_dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kills replica `i` with SIGKILL (no draining, no cleanup) and reaps it.
    pub(crate) async fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.replicas[i].child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// Whether replica `i` runs.
    pub(crate) fn running(&self, i: usize) -> bool {
        self.replicas[i].child.is_some()
    }

    /// Stops every replica with SIGTERM and waits for it to drain.
    pub(crate) async fn stop(&mut self) {
        for r in &mut self.replicas {
            if let Some(mut child) = r.child.take() {
                if let Some(pid) = child.id() {
                    let _ = Command::new("kill")
                        .args(["-TERM", &pid.to_string()])
                        .status()
                        .await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
                let _ = child.start_kill();
            }
        }
    }

    /// Where the logs are.
    pub(crate) fn log_dir(&self) -> &Path {
        &self.config.log_dir
    }
}

/// A gRPC client of `addr` (connected lazily).
pub(crate) async fn client(
    addr: SocketAddr,
) -> anyhow::Result<ConnectorServiceClient<GrpcChannel>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    Ok(ConnectorServiceClient::new(channel))
}

/// Creates connector `name` of `tenant` (the double's workspace, its default channel
/// [`CHANNEL`]) through replica `addr`; its ID.
pub(crate) async fn create_connector(
    addr: SocketAddr,
    tenant: &str,
    name: &str,
) -> anyhow::Result<String> {
    client(addr)
        .await?
        .create_connector(connector_grpc_api::pb::CreateConnectorRequest {
            tenant_id: tenant.into(),
            name: name.into(),
            slack_bot_token: TOKEN.into(),
            default_channel: format!("#{CHANNEL}"),
            ..Default::default()
        })
        .await
        .with_context(|| format!("creating connector {name} of {tenant}"))?
        .into_inner()
        .connector
        .map(|c| c.id)
        .context("no connector in the answer")
}

/// The `p` quantile (0 to 1) of `sorted`; zero when empty.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `d` in milliseconds, for a report.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Every active connector of `tenant`, through the API.
pub(crate) async fn list_all(
    client: &mut ConnectorServiceClient<GrpcChannel>,
    tenant: &str,
) -> Result<Vec<Connector>, tonic::Status> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_connectors(ListConnectorsRequest {
                tenant_id: tenant.into(),
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await?
            .into_inner();
        all.extend(page.connectors);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}

/// A free loopback address (bound, then released).
pub(crate) fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// The resident set of process `pid`, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
