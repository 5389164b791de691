//! The admin API of the double, under `/_double/`, for local runs and scripts:
//!
//! | route | body | effect |
//! |---|---|---|
//! | `POST /_double/workspaces` | a [`Workspace`] plus `"tokens": [..]` (and `"other_app_tokens": [{"token", "app_id", "bot_user_id", "bot_id"}]`, bots of other apps) | adds the workspace and its tokens |
//! | `POST /_double/faults` | `{"method": "auth.test", "times": 2, "fault": {"kind": "rate_limited", "retry_after_secs": 1}}` | injects faults |
//! | `POST /_double/revoke` | `{"token": "xoxb-…"}` | revokes a token |
//! | `GET /_double/messages` | | what `chat.postMessage` accepted |
//! | `GET /_double/calls` | | call counts per method |
//! | `POST /_double/rate_limits` | `{"channel_per_second": 1.0, "channel_burst": 3, "workspace_per_minute": 300, "workspace_burst": 10}` (`null`: none) | enforces Slack's limits on `chat.postMessage`: 429 with `Retry-After` when a channel's or workspace's bucket is empty |
//! | `GET /_double/rate_limits` | | the limits, and `rate_limited`: how many posts were answered 429 since they were set |
//! | `GET /_double/scheduled` | | what `chat.scheduleMessage` accepted (cancelled ones marked) |
//! | `POST /_double/events/target` | `{"url": "http://…/slack/events", "signing_secret": "…"}` | where workspace events are delivered, signed |
//! | `POST /_double/socket` | `{"app_token": "xapp-…", "ack_timeout_ms": 3000}` (`null` token: off) | Socket Mode on: `apps.connections.open` takes that token, and deliveries go over the app's connections as envelopes |
//! | `GET /_double/socket` | | connections open, envelopes sent, acknowledged, redelivered |
//! | `POST /_double/socket/disconnect` | `{"reason": "refresh_requested", "close_after_ms": 1000}` (also `warning`, `link_disabled`) | a `disconnect` frame on every connection, closed after the delay |
//! | `POST /_double/socket/drop` | | every connection dropped without a close frame |
//! | `POST /_double/events` | `{"action": "uninstall", "team_id": "T…"}`, `{"action": "archive", "channel": "C…"}` (also `unarchive`, `delete`, `remove_bot`, `invite_bot`; `rename` with `"name"`); what people do: `{"action": "message", "channel": "C…", "user": "U…", "text": "…"}`, `mention` (same fields), `react` (`channel`, `ts`, `user`, `reaction`), `click` (`channel`, `ts`, `user`, `action_id`, `value`: a `block_actions` interaction), `command` (`channel`, `user`, `command`, `text`: a slash command) | makes it happen and delivers it, signed, to the events URL (clicks and commands to its siblings `…/slack/interactions`, `…/slack/commands`); answers the deliveries (`event_id`, the app's HTTP `status`) |

use std::sync::Arc;

use axum::extract::State as AxumState;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::events::{Delivery, EventTarget, Happening};
use crate::socket::{Disconnect, SocketStats};
use crate::state::{BotOf, Fault, PostedMessage, RateLimits, ScheduledPost, State, Workspace};

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/_double/workspaces", post(add_workspace))
        .route("/_double/faults", post(add_fault))
        .route("/_double/revoke", post(revoke))
        .route("/_double/messages", get(messages))
        .route("/_double/calls", get(calls))
        .route(
            "/_double/rate_limits",
            get(rate_limits).post(set_rate_limits),
        )
        .route("/_double/scheduled", get(scheduled))
        .route("/_double/events/target", post(event_target))
        .route("/_double/events", post(trigger))
        .route("/_double/socket", get(socket_stats).post(socket_mode))
        .route("/_double/socket/disconnect", post(socket_disconnect))
        .route("/_double/socket/drop", post(socket_drop))
}

#[derive(Deserialize)]
struct NewWorkspace {
    #[serde(flatten)]
    workspace: Workspace,
    #[serde(default)]
    tokens: Vec<String>,
    /// Tokens of bots of other Slack apps in the same workspace.
    #[serde(default)]
    other_app_tokens: Vec<OtherAppToken>,
}

#[derive(Deserialize)]
struct OtherAppToken {
    token: String,
    #[serde(flatten)]
    bot: BotOf,
}

async fn add_workspace(AxumState(state): AxumState<Arc<State>>, Json(body): Json<NewWorkspace>) {
    let team = body.workspace.team_id.clone();
    state.add_workspace(body.workspace);
    for token in body.tokens {
        state.add_token(&token, &team);
    }
    for other in body.other_app_tokens {
        state.add_token_of_app(&other.token, &team, other.bot);
    }
}

#[derive(Deserialize)]
struct NewFault {
    method: String,
    fault: Fault,
    #[serde(default = "one")]
    times: usize,
}

fn one() -> usize {
    1
}

async fn add_fault(AxumState(state): AxumState<Arc<State>>, Json(body): Json<NewFault>) {
    state.inject(&body.method, body.fault, body.times);
}

#[derive(Deserialize)]
struct Revoke {
    token: String,
}

async fn revoke(AxumState(state): AxumState<Arc<State>>, Json(body): Json<Revoke>) {
    state.revoke(&body.token);
}

async fn messages(AxumState(state): AxumState<Arc<State>>) -> Json<Vec<PostedMessage>> {
    Json(state.posted())
}

async fn calls(
    AxumState(state): AxumState<Arc<State>>,
) -> Json<std::collections::HashMap<String, u64>> {
    Json(state.all_calls())
}

async fn event_target(AxumState(state): AxumState<Arc<State>>, Json(body): Json<EventTarget>) {
    state.events.deliver_to(body);
}

async fn trigger(
    AxumState(state): AxumState<Arc<State>>,
    Json(body): Json<Happening>,
) -> Json<Vec<Delivery>> {
    Json(crate::happenings::trigger(&state, &body).await)
}

#[derive(Deserialize)]
struct SocketModeOn {
    /// The app-level token (`xapp-…`); absent or null: Socket Mode off.
    app_token: Option<String>,
    /// How long an envelope waits for its acknowledgement (default 3000).
    #[serde(default)]
    ack_timeout_ms: Option<u64>,
}

async fn socket_mode(AxumState(state): AxumState<Arc<State>>, Json(body): Json<SocketModeOn>) {
    if let Some(ms) = body.ack_timeout_ms {
        state
            .events
            .socket
            .set_ack_timeout(std::time::Duration::from_millis(ms));
    }
    state.events.socket.enable(body.app_token);
}

async fn socket_stats(AxumState(state): AxumState<Arc<State>>) -> Json<SocketStats> {
    Json(state.events.socket.stats())
}

async fn socket_disconnect(AxumState(state): AxumState<Arc<State>>, Json(body): Json<Disconnect>) {
    state.events.socket.disconnect(
        &body.reason,
        std::time::Duration::from_millis(body.close_after_ms),
    );
}

async fn socket_drop(AxumState(state): AxumState<Arc<State>>) {
    state.events.socket.drop_all();
}

async fn scheduled(AxumState(state): AxumState<Arc<State>>) -> Json<Vec<ScheduledPost>> {
    Json(state.scheduled())
}

async fn set_rate_limits(
    AxumState(state): AxumState<Arc<State>>,
    Json(limits): Json<Option<RateLimits>>,
) -> Json<serde_json::Value> {
    state.set_rate_limits(limits);
    Json(serde_json::json!({"ok": true}))
}

async fn rate_limits(AxumState(state): AxumState<Arc<State>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "limits": state.rate_limits(),
        "rate_limited": state.rate_limited(),
    }))
}
