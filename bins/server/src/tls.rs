//! TLS on the gRPC listener: rustls (aws-lc) with the certificate and key files and, for
//! mutual TLS, a client CA every client certificate must chain to. The files are checked
//! periodically and reloaded when they change, without a restart; a reload that fails keeps
//! the previous configuration and says why in the log.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::config::TlsFiles;
use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS handshakes in progress at most; connections beyond are closed at once.
const MAX_HANDSHAKES: usize = 256;

/// What identifies a version of the files: modification time and length of each.
type Stamp = Vec<Option<(SystemTime, u64)>>;

/// The listener's TLS configuration, swapped in place when the files change.
pub struct ReloadingTls {
    files: TlsFiles,
    config: RwLock<Arc<ServerConfig>>,
    stamp: Mutex<Stamp>,
}

impl std::fmt::Debug for ReloadingTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

fn stamp(files: &TlsFiles) -> Stamp {
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    })
    .collect()
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not PEM certificates", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{}: holds no certificate",
        path.display()
    );
    Ok(certs)
}

/// Builds a server configuration from the files, naming the file at fault.
fn load(files: &TlsFiles) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs = certificates(&files.cert).context("CONNECTOR__GRPC__TLS_CERT_FILE")?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("{}: not a PEM private key", files.key.display()))
        .context("CONNECTOR__GRPC__TLS_KEY_FILE")?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca).context("CONNECTOR__GRPC__TLS_CLIENT_CA_FILE")? {
                roots
                    .add(cert)
                    .with_context(|| format!("{}: not a CA certificate", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("CONNECTOR__GRPC__TLS_CLIENT_CA_FILE")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("the certificate and the key do not go together")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

impl ReloadingTls {
    /// Loads the files; an error names the file and the setting.
    pub fn load(files: TlsFiles) -> anyhow::Result<Arc<Self>> {
        let stamp = stamp(&files);
        let config = load(&files)?;
        Ok(Arc::new(Self {
            files,
            config: RwLock::new(Arc::new(config)),
            stamp: Mutex::new(stamp),
        }))
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    fn current(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reloads the files if they changed since the last look; `true` when a new
    /// configuration is in use.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.files);
        {
            let mut seen = self.stamp.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        match load(&self.files) {
            Ok(config) => {
                *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
                tracing::info!("TLS certificate files reloaded");
                true
            }
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "TLS certificate files changed but could not be loaded; keeping the previous ones"
                );
                false
            }
        }
    }

    /// Checks the files every `reload_every` until the returned task is aborted.
    pub fn watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(tls.files.reload_every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                tls.reload_if_changed();
            }
        })
    }

    /// TLS connections accepted on `listener`, each handshake with the configuration current
    /// when it began; clients that fail the handshake (plain text, an unknown CA, no
    /// certificate under mutual TLS) are dropped and logged at debug level.
    pub fn incoming(
        self: &Arc<Self>,
        listener: TcpListener,
    ) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let tls = self.clone();
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    break;
                }
                // As on the plain-text listener: no 40 ms delayed-ACK stalls.
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(%peer, error = %e, "could not set TCP_NODELAY");
                }
                // Handshakes in progress are bounded: a flood of connections that never
                // finish one is closed at once instead of spawning a task each.
                let Ok(slot) = handshakes.clone().try_acquire_owned() else {
                    metrics::counter!("connector_tls_handshakes_refused_total").increment(1);
                    tracing::debug!(%peer, "connection closed: too many TLS handshakes in progress");
                    continue;
                };
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send(Ok(stream)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        ReceiverStream::new(rx)
    }
}
