//! The HTTP listener: Slack's OAuth redirect (`GET /slack/oauth/callback`), Slack's Events API
//! (`POST /slack/events`, when a signing secret is set), `GET /metrics`
//! (Prometheus), `GET /healthz`
//! (live: the process serves) and `GET /readyz` (ready: its dependencies answered the last
//! background check and it is not shutting down).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse as _, Response};
use axum::routing::{get, post};
use connector_app::slack_events::{self as slack_events_wire, Callback};
use connector_app::{MetricsProbe, ReadyState};
use connector_ports::SlackError;
use connector_usecases::{ConnectorError, InstallError, OAuthInstaller};
use connector_usecases::{EventOutcome, SlackEvents};
use secrecy::SecretString;
use serde::Deserialize;
use tokio::net::TcpListener;

/// The routes, over the install flow and the readiness `ready` publishes; every response
/// carries [`security_headers`], and request bodies are capped at `max_body_bytes`.
pub fn router(
    installer: OAuthInstaller,
    events: Option<EventReceiver>,
    max_body_bytes: usize,
    ready: tokio::sync::watch::Receiver<ReadyState>,
    probe: MetricsProbe,
) -> Router {
    let events = events.map(Arc::new);
    Router::new()
        .route(
            "/slack/events",
            post(move |headers: HeaderMap, body: Bytes| {
                let events = events.clone();
                async move { slack_events(events, &headers, body).await }
            }),
        )
        .route("/slack/install", get(begin))
        .route("/slack/oauth/callback", get(callback))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || async move {
                // The gauges read at scrape time: the pool, the connectors by status.
                probe.record().await;
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    )],
                    crate::metrics::handle().render(),
                )
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let state = ready.borrow().clone();
                async move { readyz(&state) }
            }),
        )
        .with_state(installer)
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::map_response(security_headers))
}

/// What `POST /slack/events` needs: the app's signing secret and the use case.
#[derive(Clone)]
pub struct EventReceiver {
    /// The Slack app's signing secret.
    pub signing_secret: SecretString,
    /// Acts on the events.
    pub events: SlackEvents,
}

/// The answer to Slack's URL check.
#[derive(serde::Serialize)]
struct Challenge {
    challenge: String,
}

/// How long a delivery's answer waits for the event to be acted on; Slack wants an answer
/// within 3 s, so longer work goes on after the answer.
const EVENT_WORK_WAIT: Duration = Duration::from_secs(2);

fn count_event(outcome: &'static str) {
    metrics::counter!("connector_slack_events_total", "outcome" => outcome).increment(1);
}

/// `POST /slack/events`: verifies the signature before anything else, answers Slack's URL
/// check, drops retries of handled events, and acts on the rest (answering within
/// [`EVENT_WORK_WAIT`] whatever the work takes).
async fn slack_events(
    receiver: Option<Arc<EventReceiver>>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Some(receiver) = receiver else {
        return (
            StatusCode::NOT_FOUND,
            "Slack events are off: set CONNECTOR__SLACK__SIGNING_SECRET\n",
        )
            .into_response();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = slack_events_wire::verify(
        &receiver.signing_secret,
        header(slack_events_wire::TIMESTAMP_HEADER),
        header(slack_events_wire::SIGNATURE_HEADER),
        &body,
        chrono::Utc::now().timestamp(),
    ) {
        count_event("refused");
        tracing::warn!(reason = %e, "a Slack event delivery was refused");
        return (StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response();
    }
    let event = match slack_events_wire::parse(&body) {
        Ok(Callback::UrlVerification { challenge }) => {
            count_event("url_verification");
            return axum::Json(Challenge { challenge }).into_response();
        }
        Ok(Callback::Event(event)) => event,
        Err(e) => {
            count_event("malformed");
            tracing::warn!(error = %e, "a signed Slack delivery could not be read");
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    let retry = header(slack_events_wire::RETRY_HEADER).map(str::to_owned);
    match receiver.events.first_delivery(&event).await {
        Ok(true) => {}
        Ok(false) => {
            count_event("duplicate");
            tracing::debug!(event_id = %event.event_id, retry = ?retry,
                "a Slack event already handled was delivered again; dropped");
            return StatusCode::OK.into_response();
        }
        Err(e) => {
            // Not recorded: Slack retries the delivery.
            count_event("failed");
            tracing::warn!(event_id = %event.event_id, error = %e,
                "could not record a Slack event; Slack will retry it");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    let events = receiver.events.clone();
    let mut work = tokio::spawn(async move {
        let outcome = events.handle(&event).await;
        match &outcome {
            Ok(EventOutcome::Handled { connectors }) => {
                count_event("handled");
                tracing::info!(event_id = %event.event_id, workspace_id = %event.team_id,
                    kind = ?event.kind, connectors, "Slack event handled");
            }
            Ok(_) => count_event("ignored"),
            Err(e) => {
                count_event("failed");
                tracing::warn!(event_id = %event.event_id, error = %e,
                    "acting on a Slack event failed; Slack's retry of it will be handled");
            }
        }
        outcome.is_ok()
    });
    match tokio::time::timeout(EVENT_WORK_WAIT, &mut work).await {
        // Failed before the answer: Slack retries the delivery, which is acted on again.
        Ok(Ok(false)) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        // Done, or still running (it goes on after the answer).
        _ => StatusCode::OK.into_response(),
    }
}

/// `200 ready`, or `503` saying why not (which dependency, or shutting down; no details).
fn readyz(state: &ReadyState) -> Response {
    match state {
        ReadyState::Ready => (StatusCode::OK, "ready\n".to_owned()).into_response(),
        ReadyState::NotReady(down) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {} not answering\n", down.join(", ")),
        )
            .into_response(),
        ReadyState::ShuttingDown => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n".to_owned(),
        )
            .into_response(),
    }
}

/// How much the HTTP listener gives each client.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// A client must send its request headers within this, or is dropped (slow loris).
    pub header_read_timeout: Duration,
    /// Connections open at most; more are closed at once.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown`, then lets open connections finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
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
                    drop(slot);
                });
            }
            () = &mut shutdown => break,
        }
    }
    graceful.shutdown().await;
}

/// Pages are never cached, framed, sniffed or allowed to load anything but their inline style,
/// and they send no referrer (the callback URL carries a code and a state).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The cookie that binds an install to the browser that started it.
const INSTALL_COOKIE: &str = "sc_install";

#[derive(Deserialize)]
struct BeginParams {
    #[serde(default)]
    state: String,
}

/// Starts an install in this browser: a cookie with a fresh nonce (HttpOnly, Secure,
/// SameSite=Lax, scoped to the callback, living as long as the link), then on to Slack.
async fn begin(
    State(installer): State<OAuthInstaller>,
    Query(params): Query<BeginParams>,
) -> Response {
    match installer.begin(&params.state).await {
        Ok((slack_url, nonce)) => {
            let cookie = format!(
                "{INSTALL_COOKIE}={}; Path=/slack/oauth; Max-Age=3600; HttpOnly; Secure; SameSite=Lax",
                secrecy::ExposeSecret::expose_secret(&nonce)
            );
            let (Ok(location), Ok(cookie)) = (
                HeaderValue::from_str(&slack_url),
                HeaderValue::from_str(&cookie),
            ) else {
                return failure(InstallError::UnknownState).into_response();
            };
            let mut response = StatusCode::FOUND.into_response();
            response.headers_mut().insert(header::LOCATION, location);
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        Err(InstallError::UnknownState) => page(
            StatusCode::BAD_REQUEST,
            "This install link is not valid",
            "The link is unknown, has expired, or was already opened in another browser; ask for a new one.",
        )
        .into_response(),
        Err(e) => failure(e).into_response(),
    }
}

/// The install nonce of the request's cookies, if any.
fn install_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == INSTALL_COOKIE)
        .map(|(_, value)| value.to_owned())
}

#[derive(Deserialize)]
struct CallbackParams {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: Option<String>,
}

async fn callback(
    State(installer): State<OAuthInstaller>,
    Query(params): Query<CallbackParams>,
    headers: axum::http::HeaderMap,
) -> Response {
    let cookie = install_cookie(&headers);
    let mut response = match installer
        .complete(
            &params.state,
            params.code.as_deref(),
            params.error.as_deref(),
            cookie.as_deref(),
        )
        .await
    {
        Ok(c) => {
            tracing::info!(target: "audit", action = "oauth.install", subject = "slack-oauth-callback",
                tenant_id = %c.tenant_id, connector_id = %c.id, workspace_id = %c.workspace_id,
                "connector created through the Slack install");
            page(
                StatusCode::OK,
                "Slack is connected",
                &format!(
                    "Connector <b>{}</b> now posts to <b>#{}</b> in workspace {}. You can close this window.",
                    escape(c.name.as_str()),
                    escape(c.default_channel_name.as_str()),
                    escape(c.workspace_id.as_str())
                ),
            )
        }
        Err(e) => failure(e),
    }
    .into_response();
    // The nonce has served its purpose.
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "sc_install=; Path=/slack/oauth; Max-Age=0; HttpOnly; Secure; SameSite=Lax",
        ),
    );
    response
}

fn failure(e: InstallError) -> (StatusCode, Html<String>) {
    // A dependency's detail goes to the log with an incident ID; the page shows the ID only.
    let unavailable = |detail: &str| {
        let incident = connector_grpc_api::status::incident_id();
        tracing::warn!(%incident, %detail, "a Slack install could not complete: a dependency is unavailable");
        page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again in a moment",
            &format!(
                "A service the install needs is unavailable. Start the install again in a moment (incident {incident})."
            ),
        )
    };
    let (status, title) = match &e {
        InstallError::Denied => (StatusCode::OK, "Installation cancelled"),
        InstallError::UnknownState => (StatusCode::BAD_REQUEST, "This install link is not valid"),
        InstallError::ExpiredState => (StatusCode::BAD_REQUEST, "This install link has expired"),
        InstallError::MissingCode => (StatusCode::BAD_REQUEST, "Slack sent no authorization code"),
        InstallError::OtherBrowser => (
            StatusCode::BAD_REQUEST,
            "This install was started in another browser",
        ),
        InstallError::WrongWorkspace { .. } => (StatusCode::BAD_REQUEST, "Wrong Slack workspace"),
        InstallError::Exchange(
            SlackError::Unavailable(detail) | SlackError::OutcomeUnknown(detail),
        ) => return unavailable(detail),
        InstallError::Exchange(SlackError::InvalidAuth { code } | SlackError::Api { code }) => {
            tracing::info!(%code, "Slack refused the authorization code");
            return page(
                StatusCode::BAD_GATEWAY,
                "Slack did not complete the install",
                &format!(
                    "Slack did not accept the authorization code ({}); start the install again.",
                    escape(code)
                ),
            );
        }
        InstallError::Exchange(_) => (
            StatusCode::BAD_GATEWAY,
            "Slack did not complete the install",
        ),
        InstallError::Create(ConnectorError::FailedPrecondition { .. }) => (
            StatusCode::BAD_REQUEST,
            "The connector could not be created",
        ),
        InstallError::Create(ConnectorError::AlreadyExists { .. }) => {
            (StatusCode::CONFLICT, "That connector already exists")
        }
        InstallError::Create(ConnectorError::Unavailable { dependency, detail })
        | InstallError::Store(ConnectorError::Unavailable { dependency, detail }) => {
            return unavailable(&format!("{dependency}: {detail}"));
        }
        InstallError::Create(ConnectorError::Internal(inner))
        | InstallError::Store(ConnectorError::Internal(inner)) => {
            let incident = connector_grpc_api::status::incident_id();
            connector_grpc_api::status::log_internal(
                &incident,
                "internal error completing a Slack install",
                inner,
            );
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                &format!(
                    "The install could not be completed; the server log has the details (incident {incident})."
                ),
            );
        }
        InstallError::Create(_) | InstallError::Store(_) => (
            StatusCode::BAD_REQUEST,
            "The connector could not be created",
        ),
    };
    tracing::info!(reason = %e, "Slack install did not complete");
    let shown = match &e {
        InstallError::Exchange(_) => {
            "Slack did not complete the install; start it again.".to_owned()
        }
        other => other.to_string(),
    };
    page(status, title, &escape(&shown))
}

fn page(status: StatusCode, title: &str, body: &str) -> (StatusCode, Html<String>) {
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
             <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1d1c1d}}</style>\
             </head><body><h1>{title}</h1><p>{body}</p></body></html>"
        )),
    )
}

/// Escapes text for HTML.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<b>\"x\" & 'y'</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
    }
}
