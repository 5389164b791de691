//! The listener loop: bounded connections (in all and per client address), a header-read
//! deadline, graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

/// How much the HTTP listener gives each client.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// A client must send its request headers within this, or is dropped (slow loris).
    pub header_read_timeout: Duration,
    /// Connections open at most; more are closed at once.
    pub max_connections: usize,
    /// Connections open at most from one client address; more are closed at once.
    pub max_connections_per_client: usize,
}

/// Open connections per client address.
#[derive(Debug, Default)]
struct PerClient {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection of a client, counted until dropped.
struct ClientSlot {
    clients: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    /// A slot for `ip`, unless it already holds `max`.
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            clients: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.clients.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets open connections finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let clients = Arc::new(PerClient::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let service = hyper_util::service::TowerToHyperService::new(router);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting an HTTP connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "HTTP connection refused: too many open");
                    metrics::counter!("connector_http_connections_refused_total", "reason" => "total").increment(1);
                    continue;
                };
                let Some(client_slot) = clients.take(peer.ip(), limits.max_connections_per_client) else {
                    tracing::debug!(%peer, "HTTP connection refused: too many open from this address");
                    metrics::counter!("connector_http_connections_refused_total", "reason" => "per_client").increment(1);
                    continue;
                };
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(limits.header_read_timeout);
                let connection = graceful.watch(
                    builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service.clone()),
                );
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                    }
                    drop(client_slot);
                    drop(slot);
                });
            }
            () = &mut shutdown => break,
        }
    }
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_address_holds_at_most_its_share_and_gets_it_back() {
        let clients = Arc::new(PerClient::default());
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let first = clients.take(a, 2).unwrap();
        let _second = clients.take(a, 2).unwrap();
        assert!(
            clients.take(a, 2).is_none(),
            "a third from the same address"
        );
        assert!(
            clients.take(b, 2).is_some(),
            "another address is not affected"
        );
        drop(first);
        assert!(
            clients.take(a, 2).is_some(),
            "a closed connection frees its slot"
        );
    }
}
