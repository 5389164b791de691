//! [`Application`]: the server built from its settings, run until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use connector_adapters_slack::{HttpSlackApi, SlackSettings};
use connector_domain::SecretPrefix;
use connector_grpc_api::ConnectorGrpc;
use connector_grpc_api::pb::connector_service_server::ConnectorServiceServer;
use connector_usecases::{
    AppCredentials, ConnectorService, MessageSender, OAuthInstaller, Ports, ReconcileSettings,
    Reconciler, RefreshSettings, SystemClock, TokenCache, TokenRefresher,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::settings::Settings;

/// A built server: dependencies connected, migrations applied, listener bound.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    http_listener: TcpListener,
    http_addr: SocketAddr,
    installer: OAuthInstaller,
    grpc: ConnectorGrpc,
    reconciler: Option<(Reconciler, Duration)>,
    refresher: TokenRefresher,
    grace: Duration,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Checks the settings, opens the stores (PostgreSQL + Secrets Manager, or the embedded
    /// SQLite file + local encrypted secrets), applying pending migrations, prepares the Slack
    /// client and binds the gRPC and HTTP listeners (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // Configuration errors first, before any connection is made.
        let prefix = SecretPrefix::parse("secrets.prefix", &settings.secrets.prefix)?;
        let oauth = settings.oauth()?;
        let storage_settings = settings.storage();
        storage_settings.metadata()?;
        storage_settings.local_secrets()?;

        let storage = connector_storage::open(&storage_settings, true).await?;
        tracing::info!(storage = %storage.description, "storage ready");
        let (repo, secrets, states) = (storage.repo, storage.secrets, storage.states);
        let oauth_app = oauth.as_ref().map(|o| AppCredentials {
            client_id: o.client_id.clone(),
            client_secret: o.client_secret.clone(),
        });
        let slack = HttpSlackApi::new(SlackSettings {
            api_base_url: settings.slack.api_base_url.clone(),
            deadline: Duration::from_secs(settings.slack.deadline_secs),
            ..SlackSettings::default()
        })?;

        let ports = Ports {
            repo,
            secrets,
            slack: Arc::new(slack),
            secret_prefix: prefix,
        };
        let service = ConnectorService::new(ports.clone());
        let installer = OAuthInstaller::new(states, service.clone(), oauth);
        let refresher = TokenRefresher::new(
            ports.clone(),
            oauth_app,
            RefreshSettings::default(),
            Arc::new(|d| Box::pin(tokio::time::sleep(d))),
        );
        let sender = MessageSender::new(
            ports.clone(),
            TokenCache::new(
                Duration::from_secs(settings.sender.token_cache_ttl_secs),
                Arc::new(SystemClock),
            ),
            refresher.clone(),
        );
        let reconciler = (settings.reconciler.interval_secs > 0).then(|| {
            (
                Reconciler::new(
                    ports,
                    ReconcileSettings {
                        stale_after: Duration::from_secs(settings.reconciler.stale_after_secs),
                        batch: settings.reconciler.batch,
                    },
                ),
                Duration::from_secs(settings.reconciler.interval_secs),
            )
        });

        let listener = TcpListener::bind(settings.grpc.listen_addr)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (CONNECTOR__GRPC__LISTEN_ADDR)",
                    settings.grpc.listen_addr
                )
            })?;
        let addr = listener.local_addr()?;
        let http_listener = TcpListener::bind(settings.http.listen_addr)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (CONNECTOR__HTTP__LISTEN_ADDR)",
                    settings.http.listen_addr
                )
            })?;
        let http_addr = http_listener.local_addr()?;
        Ok(Self {
            listener,
            addr,
            http_listener,
            http_addr,
            installer: installer.clone(),
            refresher,
            grpc: ConnectorGrpc::new(service, sender, installer),
            reconciler,
            grace: settings.shutdown_grace(),
        })
    }

    /// The address gRPC listens on.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the HTTP listener (OAuth redirect, `/healthz`) listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Serves until `shutdown` completes, then reports NOT_SERVING, stops taking calls and
    /// lets in-flight ones finish within the grace period.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<ConnectorServiceServer<ConnectorGrpc>>()
            .await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(connector_grpc_api::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(connector_grpc_api::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let installer = self.installer.clone();
        let refresher = self.refresher.clone();
        let reconciler = self
            .reconciler
            .map(|(r, every)| tokio::spawn(reconcile_forever(r, installer, refresher, every)));

        let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let http = axum::serve(self.http_listener, crate::http::router(self.installer))
            .with_graceful_shutdown(async {
                let _ = http_stop_rx.await;
            });
        let http = tokio::spawn(async move { http.await });
        tracing::info!(addr = %self.http_addr, "HTTP listener (OAuth redirect) listening");

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(self.grpc.into_server())
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.listener), async {
                let _ = stop_rx.await;
            });
        let mut server = tokio::spawn(server);
        tracing::info!(addr = %self.addr, "connector-server listening");

        tokio::select! {
            result = &mut server => {
                // The server stopped on its own: that is an error.
                result??;
                anyhow::bail!("the gRPC server stopped unexpectedly");
            }
            () = shutdown => {}
        }
        tracing::info!(grace = ?self.grace, "shutting down: draining in-flight calls");
        health
            .set_not_serving::<ConnectorServiceServer<ConnectorGrpc>>()
            .await;
        if let Some(r) = reconciler {
            // Safe at any point: an interrupted pass is finished by the next one.
            r.abort();
        }
        let _ = stop_tx.send(());
        let _ = http_stop_tx.send(());
        let drained = tokio::time::timeout(self.grace, async {
            let grpc = server.await;
            let http = http.await;
            (grpc, http)
        })
        .await;
        match drained {
            Ok((grpc, http)) => {
                grpc??;
                http??;
            }
            Err(_) => tracing::warn!("grace period over; dropping the calls still running"),
        }
        tracing::info!("connector-server stopped");
        Ok(())
    }
}

/// The periodic work of a replica: finish interrupted creates and deletes, purge expired
/// install states, refresh rotating tokens that are due.
async fn reconcile_forever(
    reconciler: Reconciler,
    installer: OAuthInstaller,
    refresher: TokenRefresher,
    every: Duration,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match reconciler.run_once().await {
            Ok(report) => {
                for id in &report.finished {
                    tracing::info!(connector_id = %id, "reconciler finished an interrupted create or delete");
                }
                for (id, reason) in &report.failed {
                    tracing::warn!(connector_id = %id, %reason, "reconciler could not finish a connector; will retry");
                }
            }
            Err(e) => tracing::warn!(error = %e, "reconciler pass failed; will retry"),
        }
        match installer.purge_expired().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(count = n, "expired OAuth states purged"),
            Err(e) => tracing::warn!(error = %e, "purging expired OAuth states failed; will retry"),
        }
        match refresher.refresh_due(100).await {
            Ok(report) if report == Default::default() => {}
            Ok(report) => tracing::info!(
                refreshed = report.refreshed,
                failed = report.failed,
                skipped = report.skipped,
                "rotating tokens refreshed"
            ),
            Err(e) => tracing::warn!(error = %e, "refreshing rotating tokens failed; will retry"),
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
