//! The one harness that starts connector servers in a test process, for every test binary of
//! `bins/server` (`e2e`; `metrics` and `traces`, which need a process of their own: the
//! metrics recorder and the tracing pipeline are per process). What a server runs on comes
//! from `test_support::stack` (the base the sender's rig and the chaos replicas share).
//!
//! - [`config`]: a server's settings from variables (a stack's, then the test's own);
//! - [`Running`]: a server serving until stopped, with a client and its addresses;
//! - [`TestApp`]: a server on a [`TestStack`] of its own.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Deref;

use connector_grpc_api::pb::connector_service_client::ConnectorServiceClient;
use connector_grpc_api::pb::{self, CreateConnectorRequest};
use connector_server::{Application, ServerConfig};
use test_support::stack::{TestStack, Workspace};
use tonic::transport::Channel as GrpcChannel;

/// The settings `env` (a stack's [`TestStack::server_env`], or any variables) makes, then
/// `extra`; later ones win.
pub(crate) fn config(
    env: impl IntoIterator<Item = (String, String)>,
    extra: &[(&str, &str)],
) -> ServerConfig {
    let env: HashMap<String, String> = env
        .into_iter()
        .chain(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .collect();
    ServerConfig::load_from(None, Some(env)).unwrap()
}

/// A server serving in this process until [`Running::stop`].
pub(crate) struct Running {
    /// A client of its gRPC listener.
    pub(crate) client: ConnectorServiceClient<GrpcChannel>,
    /// Its gRPC listener.
    pub(crate) grpc: SocketAddr,
    /// Its public HTTP listener.
    pub(crate) http: SocketAddr,
    /// Its admin HTTP listener (probes, metrics).
    pub(crate) admin: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Builds the server `settings` describe and runs it on a task of its own.
    pub(crate) async fn start(settings: ServerConfig) -> Self {
        let app = Application::build(settings).await.unwrap();
        let (grpc, http, admin) = (app.grpc_addr(), app.http_addr(), app.admin_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        let client = ConnectorServiceClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        Self {
            client,
            grpc,
            http,
            admin,
            stop,
            server,
        }
    }

    /// Creates connector `prod` of tenant `acme` on `#alerts` with `token`.
    pub(crate) async fn create(&mut self, token: &str) -> pb::Connector {
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

/// A server on a [`TestStack`] of its own; the stack's fields (`db`, `double`, `prefix`) are
/// reached through it.
pub(crate) struct TestApp {
    /// A client of the server.
    pub(crate) client: ConnectorServiceClient<GrpcChannel>,
    stack: TestStack,
    running: Running,
}

impl Deref for TestApp {
    type Target = TestStack;
    fn deref(&self) -> &TestStack {
        &self.stack
    }
}

impl TestApp {
    /// A server on a fresh stack with `workspace`, configured by `extra` over the stack's
    /// variables.
    pub(crate) async fn start(workspace: &Workspace, extra: &[(&str, &str)]) -> Self {
        let stack = TestStack::start(workspace, "e2e").await.unwrap();
        Self::on(stack, extra).await
    }

    /// A server on `stack`.
    pub(crate) async fn on(stack: TestStack, extra: &[(&str, &str)]) -> Self {
        let running = Running::start(config(stack.server_env(), extra)).await;
        Self {
            client: running.client.clone(),
            stack,
            running,
        }
    }

    /// The public HTTP listener's address.
    pub(crate) fn http_addr(&self) -> SocketAddr {
        self.running.http
    }

    /// The gRPC listener's address.
    pub(crate) fn grpc_addr(&self) -> SocketAddr {
        self.running.grpc
    }

    /// The admin HTTP listener's address.
    pub(crate) fn admin_addr(&self) -> SocketAddr {
        self.running.admin
    }

    /// Stops the server and waits for it to finish.
    pub(crate) async fn stop(self) {
        self.running.stop().await;
    }
}
