//! [`IntakeLayer`]: what a gRPC request may cost before a handler sees it. tonic decodes a
//! whole request before the handler runs, so this layer, on the HTTP request, checks what it
//! can before any body byte is read:
//!
//! - the client address: with a per-address rate, a client over it is `RESOURCE_EXHAUSTED`
//!   before anything else is done for it (an authentication costs a key lookup or a
//!   signature check);
//! - the caller: `connector.v1.ConnectorService` methods need credentials, checked from the
//!   `authorization` metadata alone (the handler reuses the result); a caller without valid
//!   ones is `UNAUTHENTICATED` and its body is never read;
//! - the size: only `SendMessage` may be large (its attachments); every other method, and
//!   every other service, is held to the small limit while its body is read (`OUT_OF_RANGE`);
//! - the memory: every body byte read is counted against one budget for all requests in
//!   flight; past it a request is `RESOURCE_EXHAUSTED` instead of being buffered.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use connector_domain::Principal;
use http_body::Frame;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tonic::codegen::http::{self, HeaderMap};
use tonic::codegen::{Body as HttpBody, Bytes};
use tonic_types::StatusExt as _;

use crate::auth::Authentication;
use crate::rate::ClientRateLimiter;

/// The path prefix of the service whose methods need credentials.
const SERVICE: &str = "/connector.v1.ConnectorService/";
/// The one method whose requests may be large.
const LARGE_METHOD: &str = "/connector.v1.ConnectorService/SendMessage";

/// The caller the layer established, for the handler (no client can set an extension).
#[derive(Debug, Clone)]
pub(crate) struct Authenticated(pub(crate) Principal);

/// How much request bodies may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntakeLimits {
    /// A request body at most, for every method but `SendMessage`.
    pub small_bytes: usize,
    /// A `SendMessage` body at most (the message and its attachments).
    pub large_bytes: usize,
    /// The bytes of every request body being read, together, at most.
    pub budget_bytes: usize,
}

/// See the module documentation.
#[derive(Clone)]
pub struct IntakeLayer {
    auth: Authentication,
    limits: IntakeLimits,
    budget: Arc<Semaphore>,
    clients: Option<Arc<ClientRateLimiter>>,
}

impl std::fmt::Debug for IntakeLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeLayer")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl IntakeLayer {
    /// Callers checked by `auth`, bodies held to `limits`.
    pub fn new(auth: Authentication, limits: IntakeLimits) -> Self {
        let budget = limits.budget_bytes.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            auth,
            limits,
            budget: Arc::new(Semaphore::new(budget)),
            clients: None,
        }
    }

    /// The same, each client address's requests also bounded by `limiter`, before anything
    /// else.
    pub fn with_client_rate(mut self, limiter: Arc<ClientRateLimiter>) -> Self {
        self.clients = Some(limiter);
        self
    }
}

/// The address of the client that sent `request`, as the transport recorded it.
fn client_ip<B>(request: &http::Request<B>) -> Option<std::net::IpAddr> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|tls| tls.get_ref().remote_addr())
        })
        .map(|addr| addr.ip())
}

impl<S> tower::Layer<S> for IntakeLayer {
    type Service = Intake<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Intake {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`IntakeLayer`] wraps around.
#[derive(Clone)]
pub struct Intake<S> {
    inner: S,
    layer: IntakeLayer,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S> tower::Service<http::Request<tonic::body::Body>> for Intake<S>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        // The clone that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            if let (Some(limiter), Some(ip)) = (&layer.clients, client_ip(&request))
                && let Err(wait) = limiter.check(&ip)
            {
                metrics::counter!("connector_grpc_refused_before_body_total", "reason" => "client_rate").increment(1);
                return Ok(refuse(Status::with_error_details(
                    tonic::Code::ResourceExhausted,
                    format!(
                        "this client address is over its request rate ({} a second, CONNECTOR__QUOTAS__REQUESTS_PER_SECOND_PER_CLIENT); retry in {} ms",
                        limiter.per_second(),
                        wait.as_millis().max(1)
                    ),
                    tonic_types::ErrorDetails::with_retry_info(Some(wait)),
                )));
            }
            let path = request.uri().path();
            let limit = if path == LARGE_METHOD {
                layer.limits.large_bytes
            } else {
                layer.limits.small_bytes
            };
            if declared_length(request.headers()).is_some_and(|n| n > limit as u64) {
                return Ok(refuse(too_large(limit)));
            }
            let (mut parts, body) = request.into_parts();
            if parts.uri.path().starts_with(SERVICE) {
                match layer.auth.principal_of_headers(&parts.headers).await {
                    Ok(Some(principal)) => {
                        parts.extensions.insert(Authenticated(principal));
                    }
                    Ok(None) => {}
                    Err(status) => {
                        metrics::counter!("connector_grpc_refused_before_body_total", "reason" => "unauthenticated").increment(1);
                        return Ok(refuse(status));
                    }
                }
            }
            let body = tonic::body::Body::new(Counted {
                inner: body,
                remaining: limit,
                limit,
                budget: layer.budget.clone(),
                held: None,
            });
            inner.call(http::Request::from_parts(parts, body)).await
        })
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn too_large(limit: usize) -> Status {
    metrics::counter!("connector_grpc_refused_before_body_total", "reason" => "too_large")
        .increment(1);
    Status::out_of_range(format!(
        "the request is larger than {limit} bytes (CONNECTOR__GRPC__MAX_MESSAGE_BYTES; SendMessage may add CONNECTOR__GRPC__MAX_ATTACHMENT_BYTES)"
    ))
}

fn refuse(status: Status) -> http::Response<tonic::body::Body> {
    status.into_http()
}

/// A request body held to a size, its bytes counted against the shared budget until it is
/// dropped (decoded, or the call ended).
struct Counted {
    inner: tonic::body::Body,
    remaining: usize,
    limit: usize,
    budget: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let n = data.len();
            if n > self.remaining {
                let limit = self.limit;
                return Poll::Ready(Some(Err(too_large(limit))));
            }
            self.remaining -= n;
            let permits = u32::try_from(n).unwrap_or(u32::MAX);
            match self.budget.clone().try_acquire_many_owned(permits) {
                Ok(permit) => match &mut self.held {
                    Some(held) => held.merge(permit),
                    None => self.held = Some(permit),
                },
                Err(_) => {
                    metrics::counter!("connector_grpc_refused_before_body_total", "reason" => "budget")
                        .increment(1);
                    return Poll::Ready(Some(Err(Status::resource_exhausted(
                        "the server is receiving too many request bytes at once (CONNECTOR__GRPC__REQUEST_BYTES_BUDGET); retry shortly",
                    ))));
                }
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(text: &str, limit: usize, budget: &Arc<Semaphore>) -> Counted {
        Counted {
            inner: tonic::body::Body::new(text.to_owned()),
            remaining: limit,
            limit,
            budget: budget.clone(),
            held: None,
        }
    }

    async fn read(mut body: Counted) -> (Result<usize, Status>, Counted) {
        let mut n = 0;
        loop {
            let next = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
            match next {
                None => return (Ok(n), body),
                Some(Err(status)) => return (Err(status), body),
                Some(Ok(frame)) => n += frame.data_ref().map_or(0, Bytes::len),
            }
        }
    }

    #[tokio::test]
    async fn a_body_is_held_to_its_limit_and_to_the_shared_budget_while_it_lives() {
        let budget = Arc::new(Semaphore::new(10));
        let (read_ok, first) = read(counted("12345678", 16, &budget)).await;
        assert_eq!(read_ok.unwrap(), 8);
        assert_eq!(budget.available_permits(), 2, "held while the body lives");
        // The budget is spent: the next body is refused, not buffered.
        let (refused, _) = read(counted("1234", 16, &budget)).await;
        assert_eq!(refused.unwrap_err().code(), tonic::Code::ResourceExhausted);
        drop(first);
        assert_eq!(budget.available_permits(), 10, "given back when dropped");
        // Beyond its own limit: OUT_OF_RANGE, whatever the budget.
        let (too_large, _) = read(counted("123456789", 4, &budget)).await;
        assert_eq!(too_large.unwrap_err().code(), tonic::Code::OutOfRange);
    }
}
