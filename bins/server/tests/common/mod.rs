//! One server in this test process, on a fresh database, LocalStack and a Slack double with
//! one workspace: for the test binaries that need a process of their own (`metrics`,
//! `traces`: the metrics recorder and the tracing pipeline are per process).

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;

use connector_grpc_api::pb::connector_service_client::ConnectorServiceClient;
use connector_grpc_api::pb::{Connector, CreateConnectorRequest};
use connector_server::{Application, ServerConfig};
use slack_double::{Channel, SlackDouble};
use test_support::TestDatabase;

/// The services a server runs on.
pub(crate) struct Services {
    pub(crate) db: TestDatabase,
    pub(crate) double: SlackDouble,
}

impl Services {
    /// Workspace `team` with channel `#alerts`, whose bot token is `token`.
    pub(crate) async fn start(team: &str, token: &str) -> Self {
        test_support::require_localstack().await.unwrap();
        let db = TestDatabase::create().await.unwrap();
        let double = SlackDouble::start().await.unwrap();
        double.state().add_generated_workspace(
            team,
            2,
            vec![Channel::public("C0ALERTS01", "alerts")],
        );
        double.state().add_token(token, team);
        Self { db, double }
    }

    /// The server's settings on these services (secrets under `prefix`, periodic jobs off),
    /// then `more`.
    pub(crate) fn settings(&self, prefix: &str, more: &[(&str, &str)]) -> ServerConfig {
        let mut env: HashMap<String, String> = [
            ("CONNECTOR__GRPC__LISTEN_ADDR", "127.0.0.1:0"),
            ("CONNECTOR__HTTP__LISTEN_ADDR", "127.0.0.1:0"),
            ("CONNECTOR__DATABASE__URL", self.db.url()),
            (
                "CONNECTOR__AWS__ENDPOINT_URL",
                &test_support::localstack_endpoint(),
            ),
            ("CONNECTOR__AWS__ACCESS_KEY_ID", "test"),
            ("CONNECTOR__AWS__SECRET_ACCESS_KEY", "test"),
            ("CONNECTOR__SECRETS__PREFIX", prefix),
            (
                "CONNECTOR__SLACK__API_BASE_URL",
                &self.double.api_base_url(),
            ),
            ("CONNECTOR__RECONCILER__INTERVAL_SECS", "0"),
            ("CONNECTOR__TOKEN_REFRESH__INTERVAL_SECS", "0"),
            ("CONNECTOR__OAUTH_STATE_PURGE__INTERVAL_SECS", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.extend(more.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        ServerConfig::load_from(None, Some(env)).unwrap()
    }
}

/// A server serving until [`Running::stop`].
pub(crate) struct Running {
    pub(crate) http: SocketAddr,
    pub(crate) client: ConnectorServiceClient<tonic::transport::Channel>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub(crate) async fn start(settings: ServerConfig) -> Self {
        let app = Application::build(settings).await.unwrap();
        let (grpc, http) = (app.grpc_addr(), app.http_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        let client = ConnectorServiceClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        Self {
            http,
            client,
            stop,
            server,
        }
    }

    /// Creates connector `prod` of tenant `acme` on `#alerts`.
    pub(crate) async fn create(&mut self, token: &str) -> Connector {
        self.client
            .create_connector(CreateConnectorRequest {
                tenant_id: "acme".into(),
                name: "prod".into(),
                slack_bot_token: token.into(),
                default_channel: "#alerts".into(),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .connector
            .unwrap()
    }

    /// Stops the server and waits for it to drain.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap().unwrap();
    }
}
