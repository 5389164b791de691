//! Slack's side of the Events API: what happens in a workspace (the app uninstalled, a channel
//! archived, renamed or deleted, the bot removed or invited) changes the double's state and is
//! delivered, as Slack delivers it, to the configured request URL: a JSON `event_callback`
//! signed with the app's signing secret (`X-Slack-Signature: v0=HMAC-SHA256("v0:{ts}:{body}")`,
//! `X-Slack-Request-Timestamp`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Where events go and how they are signed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventTarget {
    /// The app's request URL (`…/slack/events`).
    pub url: String,
    /// The app's signing secret.
    pub signing_secret: String,
}

/// What a workspace event does, for [`SlackDouble::trigger`](crate::SlackDouble::trigger).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Happening {
    /// The app is uninstalled from `team_id`: its tokens stop working; `app_uninstalled` and
    /// `tokens_revoked` are delivered.
    Uninstall {
        /// The workspace.
        team_id: String,
    },
    /// `channel` is archived (`channel_archive`).
    Archive {
        /// The channel ID.
        channel: String,
    },
    /// `channel` is unarchived (`channel_unarchive`).
    Unarchive {
        /// The channel ID.
        channel: String,
    },
    /// `channel` is renamed (`channel_rename`).
    Rename {
        /// The channel ID.
        channel: String,
        /// Its new name.
        name: String,
    },
    /// `channel` is deleted (`channel_deleted`).
    Delete {
        /// The channel ID.
        channel: String,
    },
    /// The bot is removed from `channel` (`member_left_channel` of the bot).
    RemoveBot {
        /// The channel ID.
        channel: String,
    },
    /// The bot is invited to `channel` (`member_joined_channel` of the bot).
    InviteBot {
        /// The channel ID.
        channel: String,
    },
    /// `user` posts `text` in `channel` (`message`), in the thread of `thread_ts` if given.
    Message {
        /// The channel ID.
        channel: String,
        /// Who posts.
        user: String,
        /// What.
        text: String,
        /// The thread, if a reply.
        #[serde(default)]
        thread_ts: Option<String>,
    },
    /// `user` mentions the bot in `channel` (`app_mention`, the text after the mention).
    Mention {
        /// The channel ID.
        channel: String,
        /// Who mentions it.
        user: String,
        /// What follows the mention.
        text: String,
    },
    /// `user` reacts to message `ts` in `channel` (`reaction_added`).
    React {
        /// The channel ID.
        channel: String,
        /// The message reacted to.
        ts: String,
        /// Who reacts.
        user: String,
        /// The emoji's name.
        reaction: String,
    },
    /// `user` clicks button `action_id` (with `value`) on message `ts` in `channel`: a
    /// `block_actions` interaction.
    Click {
        /// The channel ID.
        channel: String,
        /// The message with the button.
        ts: String,
        /// Who clicks.
        user: String,
        /// The button's `action_id`.
        action_id: String,
        /// The button's value.
        #[serde(default)]
        value: String,
    },
    /// `user` runs slash `command` with `text` in `channel`.
    Command {
        /// The channel ID.
        channel: String,
        /// Who runs it.
        user: String,
        /// The command, with its `/`.
        command: String,
        /// Its text.
        #[serde(default)]
        text: String,
    },
}

/// One delivery and the app's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Delivery {
    /// The delivered event's `event_id`.
    pub event_id: String,
    /// The body, as sent (to send it again: [`Events::redeliver`]).
    pub body: String,
    /// The HTTP status the app answered, or 0 when it could not be reached (over Socket
    /// Mode: 200 once acknowledged, 0 when never).
    pub status: u16,
    /// The Socket Mode envelope's ID, when it went over Socket Mode (`body` is the envelope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_id: Option<String>,
}

/// The double's event delivery.
#[derive(Debug, Default)]
pub struct Events {
    target: Mutex<Option<EventTarget>>,
    next_id: AtomicU64,
    /// Socket Mode: when on, deliveries go over it instead.
    pub(crate) socket: crate::socket::SocketMode,
    /// One client for every delivery (its connections reused, as Slack's are).
    http: std::sync::OnceLock<reqwest::Client>,
}

/// The signature Slack sends for `body` at `timestamp`.
pub fn sign(signing_secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("v0={hex}")
}

/// Which of the app's request URLs a delivery goes to.
#[derive(Debug, Clone, Copy)]
enum Route {
    Events,
    Interactions,
    Commands,
}

/// The app's URL `name` beside its events URL (`…/slack/events` → `…/slack/{name}`).
fn sibling(events_url: &str, name: &str) -> String {
    match events_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => format!("{events_url}/{name}"),
    }
}

/// The bot user of every workspace of the double.
pub(crate) fn bot_user() -> String {
    "U0BOTUSER1".into()
}

/// Now, in Unix seconds.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Events {
    /// Sends later events to `target`.
    pub fn deliver_to(&self, target: EventTarget) {
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = Some(target);
    }

    fn target(&self) -> Option<EventTarget> {
        self.target
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wraps `event` in an `event_callback` of `team` with a fresh `event_id` and delivers it.
    pub async fn deliver(&self, team: &str, event: serde_json::Value) -> Delivery {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        let event_id = format!("Ev{:010}", n);
        let body = serde_json::json!({
            "token": "unused-verification-token",
            "team_id": team,
            "api_app_id": crate::state::APP_ID,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": now_unix(),
            "event": event,
            "authorizations": [{"team_id": team, "user_id": bot_user(), "is_bot": true}],
        });
        self.dispatch(Route::Events, event_id, body.to_string(), body)
            .await
    }

    /// Sends a delivery's body again, as Slack retries one (`X-Slack-Retry-Num`), signed now.
    pub async fn redeliver(&self, delivery: &Delivery, retry: u32) -> u16 {
        if delivery.envelope_id.is_some() {
            // Over Socket Mode: the same envelope, its retry_attempt counted up.
            let envelope = serde_json::from_str(&delivery.body).unwrap_or_default();
            return self.socket.deliver(envelope, retry).await;
        }
        let path = if delivery.body.starts_with('{') {
            Route::Events
        } else if delivery.body.starts_with("payload=") {
            Route::Interactions
        } else {
            Route::Commands
        };
        self.post(path, &delivery.body, Some(retry)).await
    }

    /// A user clicks, submits or opens something (`payload` holds what the interaction is
    /// about: `type` and `actions`, `view`, `message`, …): Slack posts the interaction, as a
    /// form with one `payload` field, to the app's interactivity URL (the events URL's sibling
    /// `…/slack/interactions`). Team, user, app, `trigger_id` and `response_url` are filled in
    /// where `payload` leaves them out.
    pub async fn deliver_interaction(
        &self,
        team: &str,
        user: &str,
        mut payload: serde_json::Value,
    ) -> Delivery {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        let trigger_id = format!("{n}.1000000000.{:032x}", n);
        if let Some(o) = payload.as_object_mut() {
            let mut fill = |k: &str, v: serde_json::Value| {
                o.entry(k.to_owned()).or_insert(v);
            };
            fill("token", "unused-verification-token".into());
            fill("api_app_id", crate::state::APP_ID.into());
            fill(
                "team",
                serde_json::json!({"id": team, "domain": team.to_lowercase()}),
            );
            fill(
                "user",
                serde_json::json!({"id": user, "username": "someone", "team_id": team}),
            );
            fill("trigger_id", trigger_id.clone().into());
            fill(
                "response_url",
                format!("https://hooks.slack.test/actions/{team}/{n}/x").into(),
            );
        }
        let body =
            serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap_or_default();
        self.dispatch(Route::Interactions, format!("I{trigger_id}"), body, payload)
            .await
    }

    /// A user runs slash command `command` with `text` in `channel`: Slack posts its form
    /// fields to the app's command URL (the events URL's sibling `…/slack/commands`).
    pub async fn deliver_command(
        &self,
        team: &str,
        channel: &str,
        user: &str,
        command: &str,
        text: &str,
    ) -> Delivery {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        let trigger_id = format!("{n}.1000000000.{:032x}", n);
        let response_url = format!("https://hooks.slack.test/commands/{team}/{n}/x");
        let team_domain = team.to_lowercase();
        let fields = [
            ("token", "unused-verification-token"),
            ("team_id", team),
            ("team_domain", &team_domain),
            ("channel_id", channel),
            ("channel_name", "alerts"),
            ("user_id", user),
            ("user_name", "someone"),
            ("command", command),
            ("text", text),
            ("api_app_id", crate::state::APP_ID),
            ("is_enterprise_install", "false"),
            ("response_url", &response_url),
            ("trigger_id", &trigger_id),
        ];
        let body = serde_urlencoded::to_string(fields).unwrap_or_default();
        let payload: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect();
        self.dispatch(
            Route::Commands,
            format!("C{trigger_id}"),
            body,
            payload.into(),
        )
        .await
    }

    /// Sends a delivery the way the app takes them: over Socket Mode when it is on (as an
    /// envelope of `payload`), else `body` over HTTP.
    async fn dispatch(
        &self,
        route: Route,
        event_id: String,
        body: String,
        payload: serde_json::Value,
    ) -> Delivery {
        if !self.socket.enabled() {
            let status = self.post(route, &body, None).await;
            return Delivery {
                event_id,
                body,
                status,
                envelope_id: None,
            };
        }
        let kind = match route {
            Route::Events => "events_api",
            Route::Interactions => "interactive",
            Route::Commands => "slash_commands",
        };
        let envelope_id = self.socket.new_envelope_id();
        let envelope = serde_json::json!({
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": !matches!(route, Route::Events),
            "retry_attempt": 0,
            "retry_reason": "",
        });
        let status = self.socket.deliver(envelope.clone(), 0).await;
        Delivery {
            event_id,
            body: envelope.to_string(),
            status,
            envelope_id: Some(envelope_id),
        }
    }

    async fn post(&self, route: Route, body: &str, retry: Option<u32>) -> u16 {
        let Some(target) = self.target() else {
            return 0;
        };
        let url = match route {
            Route::Events => target.url.clone(),
            Route::Interactions => sibling(&target.url, "interactions"),
            Route::Commands => sibling(&target.url, "commands"),
        };
        let content_type = match route {
            Route::Events => "application/json",
            _ => "application/x-www-form-urlencoded",
        };
        let ts = now_unix();
        let mut request = self
            .http
            .get_or_init(reqwest::Client::new)
            .post(&url)
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", ts.to_string())
            .header(
                "x-slack-signature",
                sign(&target.signing_secret, ts, body.as_bytes()),
            )
            .body(body.to_owned());
        if let Some(n) = retry {
            request = request
                .header("x-slack-retry-num", n.to_string())
                .header("x-slack-retry-reason", "http_timeout");
        }
        match request.send().await {
            Ok(answer) => answer.status().as_u16(),
            Err(e) => {
                tracing::warn!(error = %e, url = %url, "event delivery failed");
                0
            }
        }
    }
}
