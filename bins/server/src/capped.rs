//! [`capped`]: the gRPC listener's connections bounded in number. Each accepted connection
//! holds a slot until it closes; one beyond the cap is closed at once, so idle or abandoned
//! connections cannot exhaust the process's file descriptors and memory.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::{Stream, StreamExt as _};
use tonic::transport::server::Connected;

/// A connection counted against the cap until it is dropped.
pub struct Capped<T> {
    inner: T,
    _slot: OwnedSemaphorePermit,
}

/// The connections of `incoming`, at most `max` open at once; more are closed as accepted.
pub fn capped<T, S>(incoming: S, max: usize) -> impl Stream<Item = io::Result<Capped<T>>>
where
    S: Stream<Item = io::Result<T>>,
{
    let slots = Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS)));
    incoming.filter_map(move |accepted| match accepted {
        Err(e) => Some(Err(e)),
        Ok(conn) => match slots.clone().try_acquire_owned() {
            Ok(slot) => Some(Ok(Capped {
                inner: conn,
                _slot: slot,
            })),
            Err(_) => {
                metrics::counter!("connector_grpc_connections_refused_total").increment(1);
                tracing::debug!("gRPC connection closed: too many open");
                None
            }
        },
    })
}

impl<T: Connected> Connected for Capped<T> {
    type ConnectInfo = T::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Capped<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Capped<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
