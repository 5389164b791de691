//! [`Application`]: the server built from its configuration, run until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use connector_adapters_jwt::{JwtSettings, JwtVerifier};
use connector_app::config::invalid;
use connector_app::{Migrate, PeriodicJobs, ReadinessMonitor, Services};
use connector_grpc_api::pb::connector_service_server::ConnectorServiceServer;
use connector_grpc_api::{
    Authentication, ClientRateLimiter, ConnectorGrpc, IntakeLayer, IntakeLimits, TenantRateLimiter,
};
use connector_usecases::{ApiKeys, Authenticator, CredentialPolicy, OAuthInstaller};
use tokio::net::TcpListener;

use crate::config::{Auth, ServerConfig};
use crate::tls::ReloadingTls;

/// A built server: dependencies connected, migrations applied, listener bound.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    http_listener: TcpListener,
    http_addr: SocketAddr,
    admin_listener: TcpListener,
    admin_addr: SocketAddr,
    installer: OAuthInstaller,
    grpc: ConnectorGrpc,
    intake: IntakeLayer,
    tls: Option<Arc<ReloadingTls>>,
    services: Services,
    config: ServerConfig,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Opens the stores the configuration names (PostgreSQL + Secrets Manager, or the
    /// embedded SQLite file + local encrypted secrets), applying pending migrations, prepares
    /// the Slack client and binds the gRPC and HTTP listeners (port 0 picks a free port).
    pub async fn build(config: ServerConfig) -> anyhow::Result<Self> {
        // The recorder first, so what opening the services records (the change feed
        // listening) is kept.
        crate::metrics::handle();
        let services = Services::open(&config.core, Migrate::Apply).await?;
        tracing::info!(storage = %services.storage, "storage ready");
        let mut auth = Authentication::new(authenticator(&config.auth, &services.api_keys)?);
        if let Some((rate, burst)) = config.rate_per_tenant {
            auth = auth.with_rate_limit(Arc::new(TenantRateLimiter::new(rate, burst)));
        }
        // Certificate files are read before binding: a bad one stops start-up, named.
        let tls = config
            .grpc
            .tls
            .clone()
            .map(ReloadingTls::load)
            .transpose()?;
        if config.core.oauth.is_none() {
            tracing::info!(
                "OAuth installs off: set CONNECTOR__SLACK__CLIENT_ID, CONNECTOR__SLACK__CLIENT_SECRET and CONNECTOR__SLACK__REDIRECT_URL to turn them on"
            );
        }

        let listener = TcpListener::bind(config.grpc.listen_addr)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (CONNECTOR__GRPC__LISTEN_ADDR)",
                    config.grpc.listen_addr
                )
            })?;
        let addr = listener.local_addr()?;
        let http_listener = TcpListener::bind(config.http.listen_addr)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (CONNECTOR__HTTP__LISTEN_ADDR)",
                    config.http.listen_addr
                )
            })?;
        let http_addr = http_listener.local_addr()?;
        let admin_listener = TcpListener::bind(config.admin.listen_addr)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (CONNECTOR__ADMIN__LISTEN_ADDR)",
                    config.admin.listen_addr
                )
            })?;
        let admin_addr = admin_listener.local_addr()?;
        let g = &config.grpc;
        // gRPC frames a message in 5 bytes; SendMessage's attachments carry a few bytes each
        // beyond their content (name, title, lengths).
        let mut intake = IntakeLayer::new(
            auth.clone(),
            IntakeLimits {
                small_bytes: g.max_message_bytes.saturating_add(5),
                large_bytes: g
                    .max_message_bytes
                    .saturating_add(g.max_attachment_bytes)
                    .saturating_add(4096 + 5),
                budget_bytes: g.request_bytes_budget,
            },
        );
        if let Some((rate, burst)) = config.rate_per_client {
            intake = intake.with_client_rate(Arc::new(ClientRateLimiter::new(rate, burst)));
        }
        Ok(Self {
            intake,
            listener,
            addr,
            http_listener,
            http_addr,
            admin_listener,
            admin_addr,
            installer: services.installer.clone(),
            grpc: ConnectorGrpc::new(
                services.connectors.clone(),
                services.sender.clone(),
                services.installer.clone(),
                services.inbound.clone(),
                auth,
            )
            .with_limits(connector_grpc_api::MessageLimits {
                max_message_bytes: config.grpc.max_message_bytes,
                max_attachment_bytes: config.grpc.max_attachment_bytes,
                max_attachments: config.grpc.max_attachments,
            }),
            tls,
            services,
            config,
        })
    }

    /// The address gRPC listens on.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the public HTTP listener (Slack's events, the OAuth pages) listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The address the admin HTTP listener (`/healthz`, `/readyz`, `/metrics`) listens on.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Serves until `shutdown` completes, then reports NOT_SERVING, stops taking calls and
    /// lets in-flight ones finish within the grace period.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        crate::metrics::handle();
        let (health, health_service) = tonic_health::server::health_reporter();
        // Readiness follows the background check of the database and the secret store: gRPC
        // health and /readyz both read it, so probes never touch a dependency.
        let readiness = ReadinessMonitor::start(
            self.services.readiness.clone(),
            self.config.core.readiness_interval,
        )
        .await;
        let mut ready_changes = readiness.subscribe();
        // The first status is set before anything is served: a probe at start-up reads
        // SERVING or NOT_SERVING, never "unknown service".
        let ready = ready_changes.borrow_and_update().is_ready();
        report_readiness(&health, ready).await;
        let health_follows = {
            let health = health.clone();
            tokio::spawn(async move {
                while ready_changes.changed().await.is_ok() {
                    let ready = ready_changes.borrow_and_update().is_ready();
                    report_readiness(&health, ready).await;
                }
            })
        };
        // The google.rpc error details too, so that grpcurl and other reflection clients
        // print BadRequest, PreconditionFailure, RetryInfo, … decoded.
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(connector_grpc_api::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(connector_grpc_api::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let jobs = PeriodicJobs::start(&self.services, &self.config.core.jobs);
        // Queued messages: this replica's worker, one of many claiming from the same outbox.
        let (delivery_stop, delivery_stopped) = tokio::sync::oneshot::channel::<()>();
        let delivery = self
            .services
            .sender
            .delivery_worker(format!("replica-{}", uuid::Uuid::now_v7()))
            .map(|worker| {
                tokio::spawn(worker.run(async {
                    let _ = delivery_stopped.await;
                }))
            });
        let metrics_upkeep = crate::metrics::spawn_upkeep();
        let grace = self.config.grpc.shutdown_grace;

        // Slack's deliveries, whichever way they come, take one path.
        let receiver = connector_slack_inbound::Receiver::new(
            self.services.events.clone(),
            self.services.inbound.clone(),
        );
        let socket_mode =
            self.config.socket_mode.clone().map(|settings| {
                connector_slack_inbound::SocketMode::start(settings, receiver.clone())
            });

        let (http_stop_tx, http_stop_rx) = tokio::sync::watch::channel(false);
        let stopped_http = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let h = &self.config.http;
        let http = crate::http::serve(
            self.http_listener,
            crate::http::public_router(
                self.installer,
                self.config
                    .signing_secret
                    .as_ref()
                    .map(|secret| crate::http::EventReceiver {
                        signing_secret: secret.clone(),
                        receiver: receiver.clone(),
                    }),
                crate::http::BodyLimits {
                    max_bytes: h.max_body_bytes,
                    read_timeout: h.body_read_timeout,
                },
            ),
            crate::http::HttpLimits {
                header_read_timeout: h.header_read_timeout,
                max_connections: h.max_connections,
                max_connections_per_client: h.max_connections_per_client,
            },
            stopped_http(http_stop_rx.clone()),
        );
        let admin = crate::http::serve(
            self.admin_listener,
            crate::http::admin_router(readiness.subscribe()),
            crate::http::HttpLimits {
                header_read_timeout: h.header_read_timeout,
                max_connections: 64,
                max_connections_per_client: 64,
            },
            stopped_http(http_stop_rx),
        );
        let gauges = crate::http::spawn_gauge_refresh(
            self.services.metrics.clone(),
            self.config.admin.gauge_refresh,
        );
        let http = tokio::spawn(async move {
            tokio::join!(http, admin);
            anyhow::Ok(())
        });
        tracing::info!(addr = %self.http_addr, "public HTTP listener (Slack, OAuth) listening");
        tracing::info!(addr = %self.admin_addr, "admin HTTP listener (probes, metrics) listening");

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let drain_streams = self.grpc.drain();
        let g = &self.config.grpc;
        let (with_health, with_reflection) = (g.health, g.reflection);
        let router = tonic::transport::Server::builder()
            // Bounded work per caller: a deadline per call, streams per connection, calls at
            // once overall, keepalives that find dead peers.
            .timeout(g.request_timeout)
            .max_concurrent_streams(Some(g.max_concurrent_streams))
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            // Innermost of these: credentials and body sizes before a body is read.
            .layer(self.intake)
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                g.max_concurrent_requests,
            ))
            // Outermost: counts, times and traces every call, also those the limit made wait.
            .layer(crate::metrics::GrpcTelemetryLayer)
            .add_optional_service(with_health.then_some(health_service))
            .add_optional_service(with_reflection.then_some(reflection_v1))
            .add_optional_service(with_reflection.then_some(reflection_v1alpha))
            .add_service(self.grpc.into_server());
        let stopped = async {
            let _ = stop_rx.await;
        };
        let (mut server, tls_watch) = match &self.tls {
            Some(tls) => (
                tokio::spawn(router.serve_with_incoming_shutdown(
                    crate::capped::capped(tls.incoming(self.listener), g.max_connections),
                    stopped,
                )),
                Some(tls.watch()),
            ),
            None => (
                // Accepted sockets get TCP_NODELAY and keepalives here: the builder's
                // settings do not apply to a listener passed in. Without NODELAY a
                // response written in parts (headers, message, trailers) can wait 40 ms
                // for a delayed ACK.
                tokio::spawn(
                    router.serve_with_incoming_shutdown(
                        crate::capped::capped(
                            tonic::transport::server::TcpIncoming::from(self.listener)
                                .with_nodelay(Some(true))
                                .with_keepalive(Some(Duration::from_secs(60))),
                            g.max_connections,
                        ),
                        stopped,
                    ),
                ),
                None,
            ),
        };
        let transport = match &self.tls {
            Some(tls) if tls.mutual() => "mutual TLS",
            Some(_) => "TLS",
            None => "plain text",
        };
        tracing::info!(addr = %self.addr, transport, "connector-server listening");

        tokio::select! {
            result = &mut server => {
                // The server stopped on its own: that is an error.
                result??;
                anyhow::bail!("the gRPC server stopped unexpectedly");
            }
            () = shutdown => {}
        }
        // Readiness first (probes stop sending traffic), then drain.
        readiness.shutting_down();
        tracing::info!(?grace, "shutting down: not ready; draining in-flight calls");
        health
            .set_not_serving::<ConnectorServiceServer<ConnectorGrpc>>()
            .await;
        health_follows.abort();
        // Safe at any point: an interrupted pass is finished by the next one.
        jobs.stop();
        metrics_upkeep.abort();
        gauges.abort();
        if let Some(watch) = tls_watch {
            watch.abort();
        }
        drain_streams.start();
        let sender = self.services.sender.clone();
        let _ = stop_tx.send(());
        let _ = http_stop_tx.send(true);
        let drained = tokio::time::timeout(grace, async {
            // Envelopes stored are acknowledged, the rest left to Slack to deliver elsewhere.
            if let Some(socket_mode) = socket_mode {
                socket_mode.stop().await;
            }
            // Claims no more; the posts in flight finish and are recorded.
            let _ = delivery_stop.send(());
            if let Some(delivery) = delivery {
                let _ = delivery.await;
            }
            let grpc = server.await;
            let http = http.await;
            (grpc, http)
        })
        .await;
        // The records of the last messages posted, before the runtime goes.
        sender.flush_posted().await;
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

/// The authenticator `auth` calls for; API keys are looked up in `api_keys`. A mode never
/// falls back to another: each carries its own settings, checked when parsed.
fn authenticator(auth: &Auth, api_keys: &ApiKeys) -> anyhow::Result<Authenticator> {
    let verifier = |jwt: &JwtSettings| {
        JwtVerifier::new(jwt.clone())
            .map(Arc::new)
            .map_err(|e| invalid("auth.jwks_url", e.to_string()))
    };
    let policy = match auth {
        Auth::Off => {
            tracing::warn!(
                "authentication is off (CONNECTOR__AUTH__MODE): every caller may act as any tenant"
            );
            CredentialPolicy::Off
        }
        Auth::ApiKeys => CredentialPolicy::ApiKeys(api_keys.clone()),
        Auth::Jwt(jwt) => CredentialPolicy::Tokens(verifier(jwt)?),
        Auth::JwtOrApiKeys(jwt) => {
            CredentialPolicy::TokensOrApiKeys(verifier(jwt)?, api_keys.clone())
        }
        Auth::Mtls { tenant_uri, scopes } => CredentialPolicy::ClientCertificates {
            tenant_uri: tenant_uri.clone(),
            scopes: *scopes,
        },
    };
    if !matches!(auth, Auth::Off) {
        tracing::info!(mode = auth.mode(), "callers must authenticate");
    }
    Ok(Authenticator::new(policy))
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

/// Tells gRPC health and the `connector_ready` gauge whether this replica is ready.
async fn report_readiness(health: &tonic_health::server::HealthReporter, ready: bool) {
    metrics::gauge!("connector_ready").set(if ready { 1.0 } else { 0.0 });
    if ready {
        health
            .set_serving::<ConnectorServiceServer<ConnectorGrpc>>()
            .await;
    } else {
        health
            .set_not_serving::<ConnectorServiceServer<ConnectorGrpc>>()
            .await;
    }
}
