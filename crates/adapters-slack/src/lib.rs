//! reqwest implementation of the [`SlackApi`] port, speaking Slack's Web API wire format.
//!
//! - The token goes in `Authorization: Bearer`, never in a URL or a log line.
//! - HTTP 429 is retried after its `Retry-After` when that fits [`SlackSettings::max_retry_after`]
//!   and the call's deadline; otherwise it becomes [`SlackError::RateLimited`].
//! - Connection failures, timeouts and 5xx are retried with jittered exponential backoff within
//!   [`SlackSettings::deadline`]. `chat.postMessage` is not idempotent, so it is retried only
//!   when Slack cannot have acted on it (connection refused, 429, 5xx), never after a timeout:
//!   a post sent and left unanswered (timed out, connection lost, body cut off) is
//!   [`SlackError::OutcomeUnknown`], so the caller knows it may have landed.
//! - Slack's error strings become [`SlackError`] variants.
//! - [`SlackApi::find_post`] pages through `conversations.history` (or `.replies`) with
//!   `include_all_metadata`, at most 10 pages of 200 messages.
//!
//! # Must never
//! Log, display or return a token; let a reqwest type escape through the port.

mod wire;

use std::time::Duration;

use async_trait::async_trait;
use connector_domain::{BotToken, ChannelId, FileAttachment, MessageEdit};
use connector_ports::{
    AuthIdentity, ChannelInfo, ChannelPage, OAuthGrant, OAuthGrantRequest, OutgoingMessage,
    PostLookup, PostedMessage, ScheduledMessage, SlackApi, SlackError, UploadedFile,
};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

/// Messages asked for per page of history when looking for a post.
const HISTORY_PAGE_SIZE: u32 = 200;
/// Pages of history searched at most for one post (then `history_too_long`).
const HISTORY_PAGES: usize = 10;

/// How to reach Slack and how hard to try.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    /// The Web API base URL, methods appended (`https://slack.com/api/`).
    pub api_base_url: String,
    /// Upper bound of one HTTP attempt.
    pub request_timeout: Duration,
    /// Upper bound of one call, retries and waits included.
    pub deadline: Duration,
    /// The longest `Retry-After` worth waiting for; longer ones fail at once as rate-limited.
    pub max_retry_after: Duration,
    /// Most attempts per call.
    pub max_attempts: u32,
    /// First backoff delay; doubled each retry, with full jitter, capped at 5 s.
    pub initial_backoff: Duration,
}

impl Default for SlackSettings {
    fn default() -> Self {
        Self {
            api_base_url: "https://slack.com/api/".into(),
            request_timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(20),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
        }
    }
}

/// Errors building the client.
#[derive(Debug, thiserror::Error)]
pub enum SlackSetupError {
    /// The base URL is not an absolute http(s) URL.
    #[error("slack.api_base_url: {0}")]
    BaseUrl(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// The Slack Web API over HTTP; cheap to clone (connections are pooled and shared).
#[derive(Debug, Clone)]
pub struct HttpSlackApi {
    http: reqwest::Client,
    base: reqwest::Url,
    settings: SlackSettings,
}

/// How a call authenticates.
enum Auth<'a> {
    /// A bot token, in `Authorization: Bearer`.
    Bearer(&'a BotToken),
    /// The Slack app itself (`oauth.v2.access`), HTTP Basic with client ID and secret.
    App(&'a str, &'a secrecy::SecretString),
}

/// How a call's body is encoded.
enum Body<'a> {
    Form(&'a [(&'a str, String)]),
    Json(&'a serde_json::Value),
}

/// Whether a call may be repeated when Slack might have acted on the first attempt.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idempotency {
    Safe,
    NotAfterTimeout,
}

impl HttpSlackApi {
    /// Builds a client for `settings`.
    pub fn new(settings: SlackSettings) -> Result<Self, SlackSetupError> {
        let mut base = settings.api_base_url.clone();
        if !base.ends_with('/') {
            base.push('/');
        }
        let base =
            reqwest::Url::parse(&base).map_err(|e| SlackSetupError::BaseUrl(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(SlackSetupError::BaseUrl("must be an http(s) URL".into()));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("slack-connector/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            // reqwest says only "builder error"; the cause (no CA certificates found, say) is
            // in its sources, which anyhow's alternate form prints on one line.
            .map_err(|e| SlackSetupError::Client(format!("{:#}", anyhow::Error::new(e))))?;
        Ok(Self {
            http,
            base,
            settings,
        })
    }

    /// Calls `method` and decodes a successful answer as `T`, retrying as the crate docs say.
    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        auth: Auth<'_>,
        body: Body<'_>,
        idempotency: Idempotency,
    ) -> Result<T, SlackError> {
        self.call_with(method, auth, body, idempotency, self.settings.max_attempts)
            .await
    }

    /// `chat.postMessage` in at most `max_attempts` attempts.
    async fn post(
        &self,
        token: &BotToken,
        message: &OutgoingMessage,
        max_attempts: u32,
    ) -> Result<PostedMessage, SlackError> {
        let body = wire::post_message_body(message)?;
        let r: wire::PostMessage = self
            .call_with(
                "chat.postMessage",
                Auth::Bearer(token),
                Body::Json(&body),
                Idempotency::NotAfterTimeout,
                max_attempts,
            )
            .await?;
        Ok(PostedMessage {
            channel: ChannelId::new(r.channel),
            ts: r.ts,
        })
    }

    /// [`HttpSlackApi::call`] making at most `max_attempts` attempts (1: answer at once, a 429
    /// as [`SlackError::RateLimited`] with its `Retry-After`, for a caller that paces itself).
    async fn call_with<T: DeserializeOwned>(
        &self,
        method: &str,
        auth: Auth<'_>,
        body: Body<'_>,
        idempotency: Idempotency,
        max_attempts: u32,
    ) -> Result<T, SlackError> {
        let url = self
            .base
            .join(method)
            .map_err(|e| SlackError::Unknown(anyhow::Error::msg(e.to_string())))?;
        let deadline = Instant::now() + self.settings.deadline;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(SlackError::Unavailable(format!(
                    "{method}: no answer within the {:?} deadline",
                    self.settings.deadline
                )));
            }
            let request = self
                .http
                .post(url.clone())
                .timeout(remaining.min(self.settings.request_timeout));
            let request = match &auth {
                Auth::Bearer(token) => request.bearer_auth(token.expose()),
                Auth::App(id, secret) => {
                    request.basic_auth(id, Some(secrecy::ExposeSecret::expose_secret(*secret)))
                }
            };
            let request = match &body {
                Body::Form(fields) => request.form(fields),
                Body::Json(value) => request.json(value),
            };
            let attempt_started = Instant::now();
            let retry = match request.send().await {
                Err(e) => {
                    record_call(
                        method,
                        if e.is_timeout() {
                            "timeout"
                        } else {
                            "connection_error"
                        },
                        attempt_started,
                    );
                    let retryable = e.is_connect()
                        || (idempotency == Idempotency::Safe && (e.is_timeout() || e.is_request()));
                    let detail = format!("{method}: {}", describe(&e));
                    if !retryable {
                        // Sent (not a connect failure) but unanswered: a post may have landed.
                        return Err(match idempotency {
                            Idempotency::NotAfterTimeout => SlackError::OutcomeUnknown(detail),
                            Idempotency::Safe => SlackError::Unavailable(detail),
                        });
                    }
                    Retry::Backoff(detail)
                }
                Ok(response) => {
                    let answer = self.answer::<T>(method, response, idempotency).await;
                    record_call(method, &outcome(&answer), attempt_started);
                    match answer {
                        Ok(value) => return Ok(value),
                        Err(Answer::Final(e)) => return Err(e),
                        Err(Answer::Retry(r)) => r,
                    }
                }
            };
            let wait = match retry {
                Retry::After(wait) => {
                    if wait > self.settings.max_retry_after
                        || Instant::now() + wait >= deadline
                        || attempt >= max_attempts
                    {
                        return Err(SlackError::RateLimited {
                            retry_after: Some(wait),
                        });
                    }
                    metrics::counter!(
                        "connector_slack_retry_after_seconds_total",
                        "method" => method.to_owned()
                    )
                    .increment(wait.as_secs());
                    wait
                }
                Retry::Backoff(detail) => {
                    let wait = self.backoff(attempt);
                    if attempt >= max_attempts || Instant::now() + wait >= deadline {
                        return Err(SlackError::Unavailable(format!(
                            "{detail} (gave up after {attempt} attempts)"
                        )));
                    }
                    tracing::debug!(method, attempt, ?wait, "retrying Slack call");
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn answer<T: DeserializeOwned>(
        &self,
        method: &str,
        response: reqwest::Response,
        idempotency: Idempotency,
    ) -> Result<T, Answer> {
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(Duration::from_secs(1));
            return Err(Answer::Retry(Retry::After(wait)));
        }
        if status.is_server_error() {
            return Err(Answer::Retry(Retry::Backoff(format!(
                "{method}: Slack answered HTTP {status}"
            ))));
        }
        let bytes = response.bytes().await.map_err(|e| {
            let detail = format!("{method}: reading the answer: {}", describe(&e));
            match idempotency {
                // Slack answered 2xx and then the body was lost: it acted on the call.
                Idempotency::NotAfterTimeout => Answer::Final(SlackError::OutcomeUnknown(detail)),
                Idempotency::Safe => Answer::Retry(Retry::Backoff(detail)),
            }
        })?;
        if !status.is_success() {
            return Err(Answer::Final(SlackError::Api {
                code: format!("http_{}", status.as_u16()),
            }));
        }
        // A 2xx answer that cannot be read: Slack may well have acted on the call.
        let unreadable = |detail: String| {
            Answer::Final(match idempotency {
                Idempotency::NotAfterTimeout => SlackError::OutcomeUnknown(detail),
                Idempotency::Safe => SlackError::Unknown(anyhow::Error::msg(detail)),
            })
        };
        let envelope: wire::Envelope = serde_json::from_slice(&bytes)
            .map_err(|e| unreadable(format!("{method}: malformed answer: {e}")))?;
        if !envelope.ok {
            let code = envelope.error.unwrap_or_else(|| "unknown_error".into());
            return Err(match code.as_str() {
                "ratelimited" | "rate_limited" => {
                    Answer::Retry(Retry::After(Duration::from_secs(1)))
                }
                "internal_error" | "service_unavailable" | "request_timeout" | "fatal_error" => {
                    Answer::Retry(Retry::Backoff(format!("{method}: Slack answered {code}")))
                }
                _ => Answer::Final(wire::error_from_code(code, envelope.needed)),
            });
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| unreadable(format!("{method}: unexpected answer shape: {e}")))
    }

    /// POSTs a file's bytes to the pre-signed upload URL Slack handed out. The token is not
    /// sent there. Retried (it only overwrites) on connection failures, timeouts and 5xx.
    async fn upload_bytes(&self, upload_url: &str, content: &[u8]) -> Result<(), SlackError> {
        let url = reqwest::Url::parse(upload_url).map_err(|e| {
            SlackError::Unknown(anyhow::Error::msg(format!(
                "Slack gave a bad upload URL: {e}"
            )))
        })?;
        let deadline = Instant::now() + self.settings.deadline;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let detail = match self
                .http
                .post(url.clone())
                .timeout(remaining.min(self.settings.request_timeout.max(Duration::from_secs(60))))
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(content.to_vec())
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().is_server_error() => {
                    format!("file upload: HTTP {}", r.status())
                }
                Ok(r) => {
                    return Err(SlackError::Api {
                        code: format!("upload_http_{}", r.status().as_u16()),
                    });
                }
                Err(e) => format!("file upload: {}", describe(&e)),
            };
            let wait = self.backoff(attempt);
            if attempt >= self.settings.max_attempts || Instant::now() + wait >= deadline {
                return Err(SlackError::Unavailable(detail));
            }
            tokio::time::sleep(wait).await;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let cap = Duration::from_secs(5);
        let exp = self
            .settings
            .initial_backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(cap);
        // Full jitter: anywhere between half and all of the exponential step.
        let half = exp / 2;
        half + exp.mul_f64(rand::random::<f64>() * 0.5)
    }
}

enum Retry {
    After(Duration),
    Backoff(String),
}

/// Describes this crate's metrics to the installed recorder (their `# HELP` lines).
pub fn describe_metrics() {
    metrics::describe_counter!(
        "connector_slack_calls_total",
        "Slack Web API attempts by method and outcome (ok, ratelimited, server_error, timeout, Slack's error code, …)"
    );
    metrics::describe_histogram!(
        "connector_slack_call_duration_seconds",
        metrics::Unit::Seconds,
        "Slack Web API attempt latency by method"
    );
    metrics::describe_counter!(
        "connector_slack_retry_after_seconds_total",
        "Seconds spent waiting on Slack's Retry-After, by method"
    );
}

/// Counts and times one attempt of a Slack call (`method` is one of the Web API methods this
/// crate calls, so the labels are bounded).
fn record_call(method: &str, outcome: &str, started: Instant) {
    metrics::counter!(
        "connector_slack_calls_total",
        "method" => method.to_owned(),
        "outcome" => outcome.to_owned()
    )
    .increment(1);
    metrics::histogram!("connector_slack_call_duration_seconds", "method" => method.to_owned())
        .record(started.elapsed().as_secs_f64());
}

/// An attempt's outcome label: `ok`, `ratelimited`, `server_error`, `outcome_unknown`,
/// `malformed`, or Slack's error string (when it looks like one: lowercase and short; any
/// other is `other_error`, so a strange server cannot grow the label set).
fn outcome<T>(answer: &Result<T, Answer>) -> String {
    let code = |c: &str| {
        if !c.is_empty()
            && c.len() <= 40
            && c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')
        {
            c.to_owned()
        } else {
            "other_error".to_owned()
        }
    };
    match answer {
        Ok(_) => "ok".into(),
        Err(Answer::Retry(Retry::After(_))) => "ratelimited".into(),
        Err(Answer::Retry(Retry::Backoff(_))) => "server_error".into(),
        Err(Answer::Final(e)) => match e {
            SlackError::InvalidAuth { code: c } | SlackError::Api { code: c } => code(c),
            SlackError::MissingScope { .. } => "missing_scope".into(),
            SlackError::ChannelNotFound => "channel_not_found".into(),
            SlackError::NotInChannel => "not_in_channel".into(),
            SlackError::IsArchived => "is_archived".into(),
            SlackError::RateLimited { .. } => "ratelimited".into(),
            SlackError::Unavailable(_) => "server_error".into(),
            SlackError::OutcomeUnknown(_) => "outcome_unknown".into(),
            SlackError::Unknown(_) => "malformed".into(),
        },
    }
}

enum Answer {
    Retry(Retry),
    Final(SlackError),
}

/// A reqwest error as text, without the URL's query (where a token could be, were one ever
/// put there).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

#[async_trait]
impl SlackApi for HttpSlackApi {
    async fn auth_test(&self, token: &BotToken) -> Result<AuthIdentity, SlackError> {
        let r: wire::AuthTest = self
            .call(
                "auth.test",
                Auth::Bearer(token),
                Body::Form(&[]),
                Idempotency::Safe,
            )
            .await?;
        Ok(r.into())
    }

    async fn bot_app_id(&self, token: &BotToken, bot_id: &str) -> Result<String, SlackError> {
        let fields = [("bot", bot_id.to_owned())];
        let r: wire::BotsInfo = self
            .call(
                "bots.info",
                Auth::Bearer(token),
                Body::Form(&fields),
                Idempotency::Safe,
            )
            .await?;
        Ok(r.bot.app_id)
    }

    async fn list_channels(
        &self,
        token: &BotToken,
        cursor: Option<String>,
    ) -> Result<ChannelPage, SlackError> {
        let mut fields = vec![
            ("types", "public_channel,private_channel".to_owned()),
            ("exclude_archived", "true".to_owned()),
            ("limit", "1000".to_owned()),
        ];
        if let Some(c) = cursor {
            fields.push(("cursor", c));
        }
        let r: wire::ConversationsList = self
            .call(
                "conversations.list",
                Auth::Bearer(token),
                Body::Form(&fields),
                Idempotency::Safe,
            )
            .await?;
        Ok(r.into())
    }

    async fn channel_info(
        &self,
        token: &BotToken,
        channel: &ChannelId,
    ) -> Result<ChannelInfo, SlackError> {
        let fields = [("channel", channel.as_str().to_owned())];
        let r: wire::ConversationsInfo = self
            .call(
                "conversations.info",
                Auth::Bearer(token),
                Body::Form(&fields),
                Idempotency::Safe,
            )
            .await?;
        Ok(r.channel.into())
    }

    async fn post_message(
        &self,
        token: &BotToken,
        message: &OutgoingMessage,
    ) -> Result<PostedMessage, SlackError> {
        self.post(token, message, self.settings.max_attempts).await
    }

    async fn post_message_once(
        &self,
        token: &BotToken,
        message: &OutgoingMessage,
    ) -> Result<PostedMessage, SlackError> {
        self.post(token, message, 1).await
    }

    async fn find_post(
        &self,
        token: &BotToken,
        lookup: &PostLookup,
    ) -> Result<Option<PostedMessage>, SlackError> {
        let method = if lookup.thread_ts.is_some() {
            "conversations.replies"
        } else {
            "conversations.history"
        };
        let mut cursor: Option<String> = None;
        for _ in 0..HISTORY_PAGES {
            let mut fields = vec![
                ("channel", lookup.channel.as_str().to_owned()),
                ("oldest", wire::slack_ts(lookup.oldest)),
                ("inclusive", "true".to_owned()),
                ("limit", HISTORY_PAGE_SIZE.to_string()),
                ("include_all_metadata", "true".to_owned()),
            ];
            if let Some(ts) = &lookup.thread_ts {
                fields.push(("ts", ts.clone()));
            }
            if let Some(c) = cursor.take() {
                fields.push(("cursor", c));
            }
            let page: wire::History = self
                .call(
                    method,
                    Auth::Bearer(token),
                    Body::Form(&fields),
                    Idempotency::Safe,
                )
                .await?;
            if let Some(found) = page
                .messages
                .iter()
                .find(|m| m.carries(&lookup.event_type, &lookup.key, &lookup.value))
            {
                return Ok(Some(PostedMessage {
                    channel: lookup.channel.clone(),
                    ts: found.ts.clone(),
                }));
            }
            match page.next_cursor() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(None),
            }
        }
        Err(SlackError::Api {
            code: "history_too_long".into(),
        })
    }

    async fn schedule_message(
        &self,
        token: &BotToken,
        message: &OutgoingMessage,
        post_at: i64,
    ) -> Result<ScheduledMessage, SlackError> {
        let mut body = wire::post_message_body(message)?;
        body["post_at"] = post_at.into();
        let r: wire::ScheduleMessage = self
            .call(
                "chat.scheduleMessage",
                Auth::Bearer(token),
                Body::Json(&body),
                // Repeated after a lost answer it would schedule the message twice.
                Idempotency::NotAfterTimeout,
            )
            .await?;
        Ok(ScheduledMessage {
            channel: ChannelId::new(r.channel),
            scheduled_message_id: r.scheduled_message_id,
            post_at: r.post_at,
        })
    }

    async fn delete_scheduled_message(
        &self,
        token: &BotToken,
        channel: &ChannelId,
        scheduled_message_id: &str,
    ) -> Result<(), SlackError> {
        let body = serde_json::json!({
            "channel": channel.as_str(),
            "scheduled_message_id": scheduled_message_id,
        });
        let _: wire::Empty = self
            .call(
                "chat.deleteScheduledMessage",
                Auth::Bearer(token),
                Body::Json(&body),
                Idempotency::NotAfterTimeout,
            )
            .await?;
        Ok(())
    }

    async fn update_message(
        &self,
        token: &BotToken,
        edit: &MessageEdit,
    ) -> Result<PostedMessage, SlackError> {
        let body = wire::update_message_body(edit)?;
        let r: wire::PostMessage = self
            .call(
                "chat.update",
                Auth::Bearer(token),
                Body::Json(&body),
                // Setting the same content twice leaves the message as once.
                Idempotency::Safe,
            )
            .await?;
        Ok(PostedMessage {
            channel: ChannelId::new(r.channel),
            ts: r.ts,
        })
    }

    async fn delete_message(
        &self,
        token: &BotToken,
        channel: &ChannelId,
        ts: &str,
    ) -> Result<(), SlackError> {
        let body = serde_json::json!({ "channel": channel.as_str(), "ts": ts });
        let _: wire::PostMessage = self
            .call(
                "chat.delete",
                Auth::Bearer(token),
                Body::Json(&body),
                // Repeated after a lost answer it would say message_not_found: unknown instead.
                Idempotency::NotAfterTimeout,
            )
            .await?;
        Ok(())
    }

    async fn oauth_access(
        &self,
        client_id: &str,
        client_secret: &secrecy::SecretString,
        grant: &OAuthGrantRequest,
    ) -> Result<OAuthGrant, SlackError> {
        let fields: Vec<(&str, String)> = match grant {
            OAuthGrantRequest::Code { code, redirect_uri } => vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code.clone()),
                ("redirect_uri", redirect_uri.clone()),
            ],
            OAuthGrantRequest::Refresh { refresh_token } => vec![
                ("grant_type", "refresh_token".to_owned()),
                (
                    "refresh_token",
                    secrecy::ExposeSecret::expose_secret(refresh_token).to_owned(),
                ),
            ],
        };
        let r: wire::OAuthAccess = self
            .call(
                "oauth.v2.access",
                Auth::App(client_id, client_secret),
                Body::Form(&fields),
                // A code works once: a retry after a lost answer would fail anyway.
                Idempotency::NotAfterTimeout,
            )
            .await?;
        r.try_into()
    }

    async fn upload_file(
        &self,
        token: &BotToken,
        channel: &ChannelId,
        thread_ts: Option<String>,
        file: &FileAttachment,
    ) -> Result<UploadedFile, SlackError> {
        let fields = [
            ("filename", file.filename.clone()),
            ("length", file.content.len().to_string()),
        ];
        let target: wire::UploadUrl = self
            .call(
                "files.getUploadURLExternal",
                Auth::Bearer(token),
                Body::Form(&fields),
                Idempotency::Safe,
            )
            .await?;
        self.upload_bytes(&target.upload_url, &file.content).await?;
        let body = wire::complete_upload_body(&target.file_id, channel, thread_ts, file);
        let done: wire::CompleteUpload = self
            .call(
                "files.completeUploadExternal",
                Auth::Bearer(token),
                Body::Json(&body),
                Idempotency::NotAfterTimeout,
            )
            .await?;
        Ok(UploadedFile {
            id: done
                .files
                .into_iter()
                .next()
                .map(|f| f.id)
                .unwrap_or(target.file_id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let api = HttpSlackApi::new(SlackSettings {
            api_base_url: "http://127.0.0.1:9/api/".into(),
            initial_backoff: Duration::from_millis(100),
            ..SlackSettings::default()
        })
        .expect("client");
        for attempt in 1..=20u32 {
            let step = Duration::from_millis(100)
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(Duration::from_secs(5));
            for _ in 0..50 {
                let wait = api.backoff(attempt);
                assert!(
                    wait >= step / 2 && wait <= step,
                    "attempt {attempt}: {wait:?} vs {step:?}"
                );
            }
        }
    }

    #[test]
    fn base_urls_must_be_http() {
        for bad in ["ftp://slack.com/api/", "not a url"] {
            let err = HttpSlackApi::new(SlackSettings {
                api_base_url: bad.into(),
                ..SlackSettings::default()
            })
            .unwrap_err();
            assert!(err.to_string().starts_with("slack.api_base_url"), "{err}");
        }
        // A missing trailing slash is added, so methods append.
        let api = HttpSlackApi::new(SlackSettings {
            api_base_url: "http://127.0.0.1:9/api".into(),
            ..SlackSettings::default()
        })
        .expect("client");
        assert_eq!(
            api.base.join("auth.test").expect("url").path(),
            "/api/auth.test"
        );
    }
}
