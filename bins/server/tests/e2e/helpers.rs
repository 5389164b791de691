use std::collections::HashMap;

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use connector_grpc_api::pb::connector_service_client::ConnectorServiceClient;
use connector_grpc_api::pb::{self, CreateConnectorRequest};
use connector_server::{Application, ServerConfig};
use slack_double::{Channel, SlackDouble};
use test_support::TestDatabase;
use tonic::transport::Channel as GrpcChannel;

/// The token the double's workspace accepts.
pub(crate) const TOKEN: &str = "xoxb-1000-2000-e2etesttoken";
/// The double's workspace.
pub(crate) const TEAM: &str = "T0E2E0001";
/// Channels generated before the named ones: more than one `conversations.list` page.
pub(crate) const GENERATED_CHANNELS: usize = 1500;

/// A running server with its own database, Slack double and secret prefix.
pub(crate) struct TestApp {
    pub(crate) client: ConnectorServiceClient<GrpcChannel>,
    pub(crate) double: SlackDouble,
    pub(crate) db: TestDatabase,
    pub(crate) prefix: String,
    http_addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// What every in-process test server shares: ephemeral ports, a quick Slack deadline, and no
/// periodic job (tests that need one turn it on).
const TEST_SERVER: &[(&str, &str)] = &[
    ("CONNECTOR__GRPC__LISTEN_ADDR", "127.0.0.1:0"),
    ("CONNECTOR__HTTP__LISTEN_ADDR", "127.0.0.1:0"),
    ("CONNECTOR__SLACK__DEADLINE_SECS", "5"),
    ("CONNECTOR__RECONCILER__INTERVAL_SECS", "0"),
    ("CONNECTOR__TOKEN_REFRESH__INTERVAL_SECS", "0"),
    ("CONNECTOR__OAUTH_STATE_PURGE__INTERVAL_SECS", "0"),
];

/// [`TEST_SERVER`], then `pairs`, then `extra`; later ones win.
fn load(pairs: &[(&str, &str)], extra: &[(&str, &str)]) -> ServerConfig {
    let env: HashMap<String, String> = TEST_SERVER
        .iter()
        .chain(pairs)
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ServerConfig::load_from(None, Some(env)).unwrap()
}

pub(crate) fn settings(
    db: &TestDatabase,
    slack_base: &str,
    prefix: &str,
    extra: &[(&str, &str)],
) -> ServerConfig {
    let endpoint = test_support::localstack_endpoint();
    load(
        &[
            ("CONNECTOR__DATABASE__URL", db.url()),
            ("CONNECTOR__AWS__ENDPOINT_URL", &endpoint),
            ("CONNECTOR__AWS__ACCESS_KEY_ID", "test"),
            ("CONNECTOR__AWS__SECRET_ACCESS_KEY", "test"),
            ("CONNECTOR__SECRETS__PREFIX", prefix),
            ("CONNECTOR__SLACK__API_BASE_URL", slack_base),
        ],
        extra,
    )
}

impl TestApp {
    pub(crate) async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    pub(crate) async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        Self::spawn_with_double(SlackDouble::start().await.unwrap(), extra).await
    }

    /// Like [`TestApp::spawn_with`], with a double the caller started (to know its address
    /// before the server's settings are made).
    pub(crate) async fn spawn_with_double(double: SlackDouble, extra: &[(&str, &str)]) -> Self {
        test_support::require_localstack().await.unwrap();
        let db = TestDatabase::create().await.unwrap();
        seed(&double);
        let prefix = format!("e2e-{}/", uuid::Uuid::new_v4().simple());
        let (running, http_addr) =
            start_with_http(settings(&db, &double.api_base_url(), &prefix, extra)).await;
        let (client, stop, server) = running;
        Self {
            client,
            double,
            db,
            prefix,
            http_addr,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// The HTTP listener's address.
    pub(crate) fn http_addr(&self) -> std::net::SocketAddr {
        self.http_addr
    }

    /// The name the connector's secret has in Secrets Manager.
    pub(crate) fn secret_name(&self, tenant: &str, id: &str) -> String {
        format!("{}{tenant}/{id}", self.prefix)
    }

    pub(crate) async fn create(
        &mut self,
        tenant: &str,
        name: &str,
        channel: &str,
    ) -> pb::Connector {
        self.client
            .create_connector(create_request(tenant, name, TOKEN, channel, ""))
            .await
            .unwrap()
            .into_inner()
            .connector
            .unwrap()
    }

    pub(crate) async fn send(
        &mut self,
        tenant: &str,
        connector_id: &str,
        text: &str,
    ) -> Result<pb::SendMessageResponse, tonic::Status> {
        self.client
            .send_message(pb::SendMessageRequest {
                tenant_id: tenant.into(),
                connector_id: connector_id.into(),
                text: text.into(),
                ..Default::default()
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Stops the server and waits for it to finish.
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

/// The Slack double's workspace every test uses.
pub(crate) async fn double() -> SlackDouble {
    let double = SlackDouble::start().await.unwrap();
    seed(&double);
    double
}

fn seed(double: &SlackDouble) {
    double.state().add_generated_workspace(
        TEAM,
        GENERATED_CHANNELS,
        vec![
            Channel::public("C0ALERTS01", "alerts"),
            Channel {
                is_archived: true,
                ..Channel::public("C0ARCHIVE1", "old-alerts")
            },
            Channel {
                is_private: true,
                ..Channel::public("G0PRIVATE1", "private-ops")
            },
            Channel {
                is_member: false,
                ..Channel::public("C0OUTSIDE1", "outside")
            },
        ],
    );
    double.state().add_token(TOKEN, TEAM);
}

pub(crate) type Running = (
    ConnectorServiceClient<GrpcChannel>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

/// Builds and runs a server in process; returns a client, the stop switch and the task.
pub(crate) async fn start(settings: ServerConfig) -> Running {
    start_with_http(settings).await.0
}

/// Like [`start`], with the HTTP listener's address.
pub(crate) async fn start_with_http(settings: ServerConfig) -> (Running, std::net::SocketAddr) {
    let (running, _, http_addr) = start_with_addrs(settings).await;
    (running, http_addr)
}

/// Like [`start`], with the gRPC and HTTP listeners' addresses.
pub(crate) async fn start_with_addrs(
    settings: ServerConfig,
) -> (Running, std::net::SocketAddr, std::net::SocketAddr) {
    let app = Application::build(settings).await.unwrap();
    let addr = app.grpc_addr();
    let http_addr = app.http_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let client = ConnectorServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    ((client, stop, server), addr, http_addr)
}

/// Stops a server started by [`start`].
pub(crate) async fn stop(running: Running) {
    let (_, stop, server) = running;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// Settings of the embedded mode: no database URL, everything under `data_dir`.
pub(crate) fn embedded_settings(data_dir: &std::path::Path, slack_base: &str) -> ServerConfig {
    let data_dir = data_dir.to_string_lossy();
    load(
        &[
            ("CONNECTOR__DATA_DIR", &data_dir),
            ("CONNECTOR__SLACK__API_BASE_URL", slack_base),
        ],
        &[],
    )
}

pub(crate) fn create_request(
    tenant: &str,
    name: &str,
    token: &str,
    channel: &str,
    request_id: &str,
) -> CreateConnectorRequest {
    CreateConnectorRequest {
        tenant_id: tenant.into(),
        name: name.into(),
        slack_bot_token: token.into(),
        default_channel: channel.into(),
        request_id: request_id.into(),
    }
}

/// A Secrets Manager client independent of the adapter under test.
pub(crate) async fn secrets_client() -> aws_sdk_secretsmanager::Client {
    secrets_client_of(&test_support::localstack_endpoint())
}

/// Like [`secrets_client`], for the emulator at `endpoint`.
pub(crate) fn secrets_client_of(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "e2e"))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// The stored secret value, or `None` when the secret does not exist.
pub(crate) async fn secret_value(name: &str) -> Option<String> {
    match secrets_client()
        .await
        .get_secret_value()
        .secret_id(name)
        .send()
        .await
    {
        Ok(out) => out.secret_string().map(str::to_owned),
        Err(e) => {
            let service = e.into_service_error();
            assert!(
                service.is_resource_not_found_exception(),
                "unexpected Secrets Manager error: {service:?}"
            );
            None
        }
    }
}

/// Waits until `done` holds, polling every 10 ms, for at most 30 s (a generous deadline, not
/// a speed target); `what` says what never came.
pub(crate) async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited 30 s for this: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
