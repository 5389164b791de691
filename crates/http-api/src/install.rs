//! The OAuth install pages: `GET /slack/install` (binds the install to this browser, then on
//! to Slack) and `GET /slack/oauth/callback` (Slack's redirect back).

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse as _, Response};
use connector_ports::SlackError;
use connector_usecases::error::{incident_id, log_internal};
use connector_usecases::{ConnectorError, InstallError, OAuthInstaller};
use serde::Deserialize;

/// The cookie that binds an install to the browser that started it.
const INSTALL_COOKIE: &str = "sc_install";

#[derive(Deserialize)]
pub(crate) struct BeginParams {
    #[serde(default)]
    state: String,
}

/// Starts an install in this browser: a cookie with a fresh nonce (HttpOnly, Secure,
/// SameSite=Lax, scoped to the callback, living as long as the link), then on to Slack.
pub(crate) async fn begin(
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
pub(crate) struct CallbackParams {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: Option<String>,
}

pub(crate) async fn callback(
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
        let incident = incident_id();
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
        InstallError::OtherBrowser => (StatusCode::BAD_REQUEST, "This install link is not valid"),
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
            let incident = incident_id();
            log_internal(
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
