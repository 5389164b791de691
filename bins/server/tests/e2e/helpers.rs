use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use connector_grpc_api::pb::{self, CreateConnectorRequest};
use connector_server::ServerConfig;
use slack_double::{Channel, SlackDouble};
use test_support::TestDatabase;
use test_support::stack::{Endpoints, QUIET_SERVER, TestStack, Workspace};

use crate::common;

/// The token the double's workspace accepts.
pub(crate) const TOKEN: &str = "xoxb-1000-2000-e2etesttoken";
/// The double's workspace.
pub(crate) const TEAM: &str = "T0E2E0001";
/// Channels generated before the named ones: more than one `conversations.list` page.
pub(crate) const GENERATED_CHANNELS: usize = 1500;

pub(crate) use crate::common::{Running, TestApp};

/// The workspace every test's double has: `#alerts`, an archived, a private and a non-member
/// channel, after [`GENERATED_CHANNELS`] others.
pub(crate) fn workspace() -> Workspace {
    Workspace::new(TEAM, TOKEN)
        .with_generated_channels(GENERATED_CHANNELS)
        .with_channels(vec![
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
        ])
}

/// A server's settings on `db`, Slack at `slack_base` and secrets under `prefix` (LocalStack),
/// then `extra`.
pub(crate) fn settings(
    db: &TestDatabase,
    slack_base: &str,
    prefix: &str,
    extra: &[(&str, &str)],
) -> ServerConfig {
    let endpoints = Endpoints {
        database_url: db.url().to_owned(),
        aws_endpoint: test_support::localstack_endpoint(),
        secret_prefix: prefix.to_owned(),
        slack_api_base_url: slack_base.to_owned(),
    };
    common::config(endpoints.server_env(), extra)
}

impl TestApp {
    /// A server on a stack of its own with [`workspace`].
    pub(crate) async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Like [`TestApp::spawn`], configured by `extra`.
    pub(crate) async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        Self::start(&workspace(), extra).await
    }

    /// Like [`TestApp::spawn_with`], with a double the caller started (to know its address
    /// before the server's settings are made).
    pub(crate) async fn spawn_with_double(double: SlackDouble, extra: &[(&str, &str)]) -> Self {
        let stack = TestStack::on_double(double, &workspace(), "e2e")
            .await
            .unwrap();
        Self::on(stack, extra).await
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
}

/// The Slack double's workspace every test uses.
pub(crate) async fn double() -> SlackDouble {
    let double = SlackDouble::start().await.unwrap();
    workspace().seed(&double);
    double
}

/// Builds and runs a server in process.
pub(crate) async fn start(settings: ServerConfig) -> Running {
    Running::start(settings).await
}

/// Like [`start`], with the gRPC and admin listeners' addresses.
pub(crate) async fn start_with_addrs(
    settings: ServerConfig,
) -> (Running, std::net::SocketAddr, std::net::SocketAddr) {
    let running = Running::start(settings).await;
    let (grpc, admin) = (running.grpc, running.admin);
    (running, grpc, admin)
}

/// Stops a server started by [`start`].
pub(crate) async fn stop(running: Running) {
    running.stop().await;
}

/// Settings of the embedded mode: no database URL, everything under `data_dir`.
pub(crate) fn embedded_settings(data_dir: &std::path::Path, slack_base: &str) -> ServerConfig {
    let data_dir = data_dir.to_string_lossy();
    let quiet = QUIET_SERVER
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    common::config(
        quiet,
        &[
            ("CONNECTOR__DATA_DIR", &data_dir),
            ("CONNECTOR__SLACK__API_BASE_URL", slack_base),
        ],
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
