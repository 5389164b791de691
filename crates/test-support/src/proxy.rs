//! [`FaultProxy`]: a TCP proxy in front of a dependency that a test switches between passing
//! traffic, refusing it, and hanging it, to see how the service behaves when the dependency
//! goes down or stops answering.

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward bytes both ways.
    Pass,
    /// Close every connection at once, new and open ones (a dependency that is down).
    Refuse,
    /// Accept and keep connections open, forwarding nothing (a dependency that hangs). Held
    /// connections are closed when the mode changes.
    Hang,
}

/// A switchable TCP proxy; dropped, it stops accepting and closes its connections.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<ProxyMode>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`, passing traffic.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (mode, watching) = watch::channel(ProxyMode::Pass);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let _ = client.set_nodelay(true);
                tokio::spawn(connection(client, upstream, watching.clone()));
            }
        });
        Ok(Self { addr, mode, accept })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches every connection, open and future, to `mode`.
    pub fn set(&self, mode: ProxyMode) {
        self.mode.send_replace(mode);
    }

    /// The current mode.
    pub fn mode(&self) -> ProxyMode {
        *self.mode.borrow()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.mode.send_replace(ProxyMode::Refuse);
    }
}

async fn connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut mode: watch::Receiver<ProxyMode>,
) {
    let current = *mode.borrow_and_update();
    match current {
        ProxyMode::Refuse => {
            let _ = client.shutdown().await;
            return;
        }
        ProxyMode::Hang => {
            // Hold the connection, silent, until the mode changes; then drop it.
            let _ = mode.changed().await;
            return;
        }
        ProxyMode::Pass => {}
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = async {
            // Any change away from passing ends the connection: refused at once, or held
            // silent (the bytes stop) until the next change.
            loop {
                if mode.changed().await.is_err() {
                    return;
                }
                if *mode.borrow_and_update() != ProxyMode::Pass {
                    break;
                }
            }
        } => {
            if *mode.borrow() == ProxyMode::Hang {
                let _ = mode.changed().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt as _;

    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    /// Sends `ping` and reads the echo, waiting at most `patience` for it.
    async fn round_trip(addr: SocketAddr, patience: Duration) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(patience, s.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "hung"))??;
        Ok(buf.to_vec())
    }

    /// Generous: an answer that comes at all comes well within it.
    const ANSWERS: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn passes_refuses_and_hangs_on_command() {
        let proxy = FaultProxy::start(echo_server().await).await.unwrap();
        assert_eq!(round_trip(proxy.addr(), ANSWERS).await.unwrap(), b"ping");

        proxy.set(ProxyMode::Refuse);
        let err = round_trip(proxy.addr(), ANSWERS).await.unwrap_err();
        assert_ne!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");

        // Held silent: nothing comes back, however long one waits (half a second here), and
        // the connection is neither answered nor refused until the mode changes.
        proxy.set(ProxyMode::Hang);
        let mut hung = TcpStream::connect(proxy.addr()).await.unwrap();
        hung.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        assert!(
            tokio::time::timeout(Duration::from_millis(500), hung.read(&mut buf))
                .await
                .is_err(),
            "a held connection answered or was closed"
        );

        proxy.set(ProxyMode::Pass);
        // The held connection is let go when the mode changes; new ones pass.
        let n = tokio::time::timeout(ANSWERS, hung.read(&mut buf))
            .await
            .expect("the held connection was never let go")
            .unwrap_or(0);
        assert_eq!(n, 0, "a held connection was answered");
        assert_eq!(round_trip(proxy.addr(), ANSWERS).await.unwrap(), b"ping");
    }

    #[tokio::test]
    async fn open_connections_are_cut_when_the_mode_changes() {
        let proxy = FaultProxy::start(echo_server().await).await.unwrap();
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        s.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        proxy.set(ProxyMode::Refuse);
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "the open connection was closed");
    }
}
