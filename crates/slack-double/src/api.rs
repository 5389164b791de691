//! The Web API methods, in Slack's wire format.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};

use crate::state::{Channel, Fault, PostedMessage, State, Workspace};

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/api/{method}", any(dispatch))
        // Slack takes files up to 1 GB: no small default cap on the upload itself.
        .route(
            "/_upload/{file_id}",
            axum::routing::post(upload).layer(axum::extract::DefaultBodyLimit::max(
                connector_upload_limit(),
            )),
        )
        .route("/oauth/v2/authorize", axum::routing::get(authorize))
        .route("/link/", axum::routing::get(crate::socket::link))
}

/// The largest file the double's upload URL takes (Slack's own limit, 1 GB).
const fn connector_upload_limit() -> usize {
    1_000_000_000
}

/// Slack's authorize page, with the user's answer decided by the app's `deny` flag: a 302 to
/// `redirect_uri` with `code` and `state`, or `error=access_denied` and `state`.
async fn authorize(AxumState(state): AxumState<Arc<State>>, RawQuery(query): RawQuery) -> Response {
    let params: Params = query
        .as_deref()
        .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
        .unwrap_or_default();
    let Some(app) = state.oauth_app() else {
        return (
            StatusCode::BAD_REQUEST,
            "no OAuth app configured in the double",
        )
            .into_response();
    };
    if params.get("client_id") != Some(&app.client_id) {
        return (StatusCode::BAD_REQUEST, "invalid_client_id").into_response();
    }
    let (Some(redirect_uri), Some(oauth_state)) = (params.get("redirect_uri"), params.get("state"))
    else {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri and state are required",
        )
            .into_response();
    };
    let outcome = if app.deny {
        serde_urlencoded::to_string([("error", "access_denied"), ("state", oauth_state.as_str())])
    } else {
        let code = state.issue_code(redirect_uri);
        serde_urlencoded::to_string([("code", code.as_str()), ("state", oauth_state.as_str())])
    }
    .unwrap_or_default();
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    (
        StatusCode::FOUND,
        [(
            header::LOCATION,
            format!("{redirect_uri}{separator}{outcome}"),
        )],
    )
        .into_response()
}

/// `oauth.v2.access`: the app authenticates with HTTP Basic (or client_id/client_secret).
fn oauth_access(state: &State, headers: &HeaderMap, params: &Params) -> Response {
    use base64::Engine as _;
    let Some(app) = state.oauth_app() else {
        return fail("invalid_client_id");
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_owned(), b.to_owned())));
    let (id, secret) = basic.unwrap_or_else(|| {
        (
            params.get("client_id").cloned().unwrap_or_default(),
            params.get("client_secret").cloned().unwrap_or_default(),
        )
    });
    if id != app.client_id {
        return fail("invalid_client_id");
    }
    if secret != app.client_secret {
        return fail("bad_client_secret");
    }
    match params
        .get("grant_type")
        .map(String::as_str)
        .unwrap_or("authorization_code")
    {
        "authorization_code" => {
            let Some(issued) = params.get("code").and_then(|c| state.take_code(c)) else {
                return fail("invalid_code");
            };
            if params.get("redirect_uri") != Some(&issued.redirect_uri) {
                return fail("bad_redirect_uri");
            }
        }
        "refresh_token" => {
            let Some(refresh) = params.get("refresh_token") else {
                return fail("invalid_refresh_token");
            };
            if !state.spend_refresh_token(refresh) {
                return fail("invalid_refresh_token");
            }
        }
        _ => return fail("invalid_grant_type"),
    }
    let (access, refresh) = state.issue_token(&app);
    let mut body = json!({
        "access_token": access,
        "token_type": "bot",
        "scope": "channels:read,groups:read,chat:write,files:write",
        "bot_user_id": "U0BOTUSER1",
        "app_id": crate::state::APP_ID,
        "team": {"id": app.team_id, "name": format!("Workspace {}", app.team_id)},
        "enterprise": null,
        "authed_user": {"id": "U0INSTALLR"},
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = refresh.into();
        body["expires_in"] = 43_200.into();
    }
    ok(body)
}

/// The pre-signed upload URL: takes the raw bytes (or one multipart part), no token.
async fn upload(
    AxumState(state): AxumState<Arc<State>>,
    Path(file_id): Path<String>,
    body: Bytes,
) -> Response {
    if state.receive_upload(&file_id, body.to_vec()) {
        (StatusCode::OK, "OK - uploaded").into_response()
    } else {
        (StatusCode::NOT_FOUND, "unknown upload").into_response()
    }
}

/// Request parameters from the query string and the body (form or JSON), flattened to strings
/// as Slack reads them (JSON arrays and objects, such as `blocks`, keep their JSON text).
type Params = HashMap<String, String>;

fn parse_params(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Params, &'static str> {
    let mut params: Params = query
        .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
        .unwrap_or_default();
    if body.is_empty() {
        return Ok(params);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") {
        let Value::Object(map) = serde_json::from_slice(body).map_err(|_| "invalid_json")? else {
            return Err("json_not_object");
        };
        for (k, v) in map {
            let s = match v {
                Value::String(s) => s,
                Value::Null => continue,
                other => other.to_string(),
            };
            params.insert(k, s);
        }
    } else {
        let form: Vec<(String, String)> =
            serde_urlencoded::from_bytes(body).map_err(|_| "invalid_form_data")?;
        params.extend(form);
    }
    Ok(params)
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

fn ok(mut body: Value) -> Response {
    body["ok"] = Value::Bool(true);
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn fail(code: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"ok": false, "error": code})),
    )
        .into_response()
}

async fn dispatch(
    AxumState(state): AxumState<Arc<State>>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.count_call(&method);
    let mut late = None;
    if let Some(fault) = state.take_fault(&method) {
        match fault {
            Fault::AnswerLate { millis } => late = Some(Duration::from_millis(millis)),
            Fault::Delay { millis } => tokio::time::sleep(Duration::from_millis(millis)).await,
            Fault::Lost { millis } => {
                tokio::time::sleep(Duration::from_millis(millis)).await;
                return fault_response(&Fault::ServerError { status: 504 });
            }
            other => return fault_response(&other),
        }
    }
    let response = handle(&state, &method, query.as_deref(), &headers, &body);
    if let Some(late) = late {
        // The call took effect; only its answer is late (a client may time out first).
        tokio::time::sleep(late).await;
    }
    response
}

fn handle(
    state: &State,
    method: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let params = match parse_params(query, headers, body) {
        Ok(p) => p,
        Err(code) => return fail(code),
    };
    if method == "oauth.v2.access" {
        return oauth_access(state, headers, &params);
    }
    if method == "apps.connections.open" {
        // The app-level token, not a workspace's: Socket Mode's own check.
        let token = bearer(headers).or_else(|| params.get("token").cloned());
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        return match state.events.socket.open(token.as_deref(), host) {
            Ok(url) => ok(json!({ "url": url })),
            Err(code) => fail(code),
        };
    }
    let token = bearer(headers).or_else(|| params.get("token").cloned());
    let workspace = match state.authenticate(token.as_deref()) {
        Ok(w) => w,
        Err(code) => return fail(code),
    };
    let token = token.unwrap_or_default();
    match method {
        "auth.test" => {
            let bot = state.bot_of(&token, &workspace);
            ok(json!({
                "url": format!("https://{}.slack.test/", workspace.team_id.to_lowercase()),
                "team": workspace.team_name,
                "user": "connector-bot",
                "team_id": workspace.team_id,
                "user_id": bot.bot_user_id,
                "bot_id": bot.bot_id,
                "is_enterprise_install": false,
            }))
        }
        "bots.info" => match params
            .get("bot")
            .and_then(|b| state.bot_info(b, &workspace))
        {
            Some(bot) => ok(json!({"bot": {
                "id": bot.bot_id,
                "deleted": false,
                "name": "connector-bot",
                "updated": 1_700_000_000,
                "app_id": bot.app_id,
                "user_id": bot.bot_user_id,
                "icons": {"image_36": "https://a.slack-edge.test/36.png",
                          "image_48": "https://a.slack-edge.test/48.png",
                          "image_72": "https://a.slack-edge.test/72.png"},
            }})),
            None => fail("bot_not_found"),
        },
        "conversations.list" => conversations_list(&workspace, &params),
        "conversations.info" => conversations_info(&workspace, &params),
        "conversations.history" => conversations_history(state, &workspace, &params),
        "conversations.replies" => conversations_replies(state, &workspace, &params),
        "chat.postMessage" => post_message(state, &workspace, &token, &params),
        "chat.update" => update_message(state, &workspace, &params),
        "chat.scheduleMessage" => schedule_message(state, &workspace, &params),
        "chat.deleteScheduledMessage" => delete_scheduled(state, &workspace, &params),
        "chat.delete" => delete_message(state, &workspace, &params),
        "files.getUploadURLExternal" => get_upload_url(state, &workspace, headers, &params),
        "files.completeUploadExternal" => complete_upload(state, &workspace, &token, &params),
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"ok": false, "error": "unknown_method"})),
        )
            .into_response(),
    }
}

fn fault_response(fault: &Fault) -> Response {
    match fault {
        Fault::RateLimited { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after_secs.to_string())],
            axum::Json(json!({"ok": false, "error": "ratelimited"})),
        )
            .into_response(),
        Fault::ServerError { status } => (
            StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>upstream failure</body></html>",
        )
            .into_response(),
        Fault::SlackError { code } => fail(code),
        Fault::Delay { .. } | Fault::AnswerLate { .. } | Fault::Lost { .. } => {
            fail("internal_error")
        }
    }
}

fn channel_json(c: &Channel) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "is_channel": !c.is_private,
        "is_group": c.is_private,
        "is_private": c.is_private,
        "is_archived": c.is_archived,
        "is_member": c.is_member,
    })
}

/// Private channels are visible to the bot only when it is a member.
fn visible(c: &Channel) -> bool {
    !c.is_private || c.is_member
}

fn conversations_list(workspace: &Workspace, params: &Params) -> Response {
    let types = params
        .get("types")
        .map(String::as_str)
        .unwrap_or("public_channel");
    let want_public = types.split(',').any(|t| t.trim() == "public_channel");
    let want_private = types.split(',').any(|t| t.trim() == "private_channel");
    let exclude_archived = matches!(
        params.get("exclude_archived").map(String::as_str),
        Some("true" | "1")
    );
    let limit = match params.get("limit") {
        None => 100,
        Some(l) => match l.parse::<usize>() {
            Ok(n) => n.clamp(1, 1000),
            Err(_) => return fail("invalid_limit"),
        },
    };
    let start = match params.get("cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => match decode_cursor(c) {
            Some(n) => n,
            None => return fail("invalid_cursor"),
        },
    };
    let matching: Vec<&Channel> = workspace
        .channels
        .iter()
        .filter(|c| visible(c))
        .filter(|c| {
            if c.is_private {
                want_private
            } else {
                want_public
            }
        })
        .filter(|c| !(exclude_archived && c.is_archived))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(limit)
        .map(|c| channel_json(c))
        .collect();
    let next = start + page.len();
    let next_cursor = if next < matching.len() {
        encode_cursor(next)
    } else {
        String::new()
    };
    ok(json!({"channels": page, "response_metadata": {"next_cursor": next_cursor}}))
}

fn encode_cursor(offset: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("offset:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(cursor)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

fn find_channel<'a>(workspace: &'a Workspace, id: &str) -> Option<&'a Channel> {
    workspace.channels.iter().find(|c| c.id == id && visible(c))
}

fn conversations_info(workspace: &Workspace, params: &Params) -> Response {
    let Some(id) = params.get("channel") else {
        return fail("channel_not_found");
    };
    match find_channel(workspace, id) {
        Some(c) => ok(json!({"channel": channel_json(c)})),
        None => fail("channel_not_found"),
    }
}

fn get_upload_url(
    state: &State,
    workspace: &Workspace,
    headers: &HeaderMap,
    params: &Params,
) -> Response {
    let Some(filename) = params.get("filename").filter(|f| !f.is_empty()) else {
        return fail("invalid_arguments");
    };
    let Some(length) = params
        .get("length")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
    else {
        return fail("invalid_arguments");
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let file_id = state.announce_upload(&workspace.team_id, filename, length);
    ok(json!({"upload_url": format!("http://{host}/_upload/{file_id}"), "file_id": file_id}))
}

fn complete_upload(state: &State, workspace: &Workspace, token: &str, params: &Params) -> Response {
    #[derive(serde::Deserialize)]
    struct FileRef {
        id: String,
        title: Option<String>,
    }
    let Some(files) = params
        .get("files")
        .and_then(|f| serde_json::from_str::<Vec<FileRef>>(f).ok())
        .filter(|f| !f.is_empty())
    else {
        return fail("invalid_arguments");
    };
    let Some(channel_id) = params.get("channel_id").or_else(|| params.get("channels")) else {
        return fail("invalid_arguments");
    };
    let Some(channel) = find_channel(workspace, channel_id) else {
        return fail("channel_not_found");
    };
    if channel.is_archived {
        return fail("is_archived");
    }
    if !channel.is_member {
        return fail("not_in_channel");
    }
    let thread_ts = params.get("thread_ts").filter(|t| !t.is_empty()).cloned();
    let mut shared = Vec::new();
    for f in files {
        match state.complete_upload(
            workspace,
            token,
            &f.id,
            f.title,
            &channel.id,
            thread_ts.clone(),
        ) {
            Ok(s) => shared.push(json!({"id": s.id, "title": s.title, "name": s.filename})),
            Err(code) => return fail(code),
        }
    }
    ok(json!({"files": shared}))
}

fn flag(params: &Params, name: &str) -> Option<bool> {
    params.get(name).map(|v| matches!(v.as_str(), "true" | "1"))
}

/// A message's `text` and `blocks` as `chat.postMessage`, `chat.update` and
/// `chat.scheduleMessage` check them: blocks a JSON array, one of the two present, text at
/// most 40,000 characters; else the error code Slack answers.
fn message_content(params: &Params) -> Result<(String, Option<Value>), &'static str> {
    let text = params.get("text").cloned().unwrap_or_default();
    let blocks = match params.get("blocks") {
        None => None,
        Some(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(v @ Value::Array(_)) => Some(v),
            _ => return Err("invalid_blocks"),
        },
    };
    if text.is_empty() && blocks.is_none() {
        return Err("no_text");
    }
    if text.chars().count() > 40_000 {
        return Err("msg_too_long");
    }
    Ok((text, blocks))
}

/// `chat.update`: the text (and blocks) of a message in the workspace.
fn update_message(state: &State, workspace: &Workspace, params: &Params) -> Response {
    let (Some(channel), Some(ts)) = (params.get("channel"), params.get("ts")) else {
        return fail("message_not_found");
    };
    if find_channel(workspace, channel).is_none() {
        return fail("channel_not_found");
    }
    let (text, blocks) = match message_content(params) {
        Ok(content) => content,
        Err(code) => return fail(code),
    };
    let changed = state.change_post(&workspace.team_id, channel, ts, |m| {
        m.text = text.clone();
        if blocks.is_some() {
            m.blocks = blocks;
        }
        m.edits += 1;
    });
    match changed {
        Some(m) => ok(json!({"channel": m.channel, "ts": m.ts, "text": m.text})),
        None => fail("message_not_found"),
    }
}

/// `chat.scheduleMessage`: keeps the message with its time (never posts it).
fn schedule_message(state: &State, workspace: &Workspace, params: &Params) -> Response {
    let Some(channel) = params
        .get("channel")
        .and_then(|c| find_channel(workspace, c))
    else {
        return fail("channel_not_found");
    };
    if channel.is_archived {
        return fail("is_archived");
    }
    if !channel.is_member {
        return fail("not_in_channel");
    }
    let Some(post_at) = params.get("post_at").and_then(|p| p.parse::<i64>().ok()) else {
        return fail("invalid_time");
    };
    let now = crate::events::now_unix();
    if post_at <= now {
        return fail("time_in_past");
    }
    if post_at > now + 120 * 24 * 3600 {
        return fail("time_too_far");
    }
    let (text, _blocks) = match message_content(params) {
        Ok(content) => content,
        Err(code) => return fail(code),
    };
    let post = state.record_scheduled(crate::state::ScheduledPost {
        id: String::new(),
        team_id: workspace.team_id.clone(),
        channel: channel.id.clone(),
        text: text.clone(),
        post_at,
        cancelled: false,
    });
    ok(json!({
        "channel": post.channel,
        "scheduled_message_id": post.id,
        "post_at": post.post_at,
        "message": {"type": "message", "text": text},
    }))
}

/// `chat.deleteScheduledMessage`: cancels a scheduled message.
fn delete_scheduled(state: &State, workspace: &Workspace, params: &Params) -> Response {
    let (Some(channel), Some(id)) = (params.get("channel"), params.get("scheduled_message_id"))
    else {
        return fail("invalid_scheduled_message_id");
    };
    if state.cancel_scheduled(&workspace.team_id, channel, id) {
        ok(json!({}))
    } else {
        fail("invalid_scheduled_message_id")
    }
}

/// `chat.delete`: removes a message of the workspace.
fn delete_message(state: &State, workspace: &Workspace, params: &Params) -> Response {
    let (Some(channel), Some(ts)) = (params.get("channel"), params.get("ts")) else {
        return fail("message_not_found");
    };
    if find_channel(workspace, channel).is_none() {
        return fail("channel_not_found");
    }
    match state.change_post(&workspace.team_id, channel, ts, |m| m.deleted = true) {
        Some(m) => ok(json!({"channel": m.channel, "ts": m.ts})),
        None => fail("message_not_found"),
    }
}

fn post_message(state: &State, workspace: &Workspace, token: &str, params: &Params) -> Response {
    let Some(channel_id) = params.get("channel") else {
        return fail("channel_not_found");
    };
    let Some(channel) = find_channel(workspace, channel_id) else {
        return fail("channel_not_found");
    };
    if channel.is_archived {
        return fail("is_archived");
    }
    if !channel.is_member {
        return fail("not_in_channel");
    }
    let (text, blocks) = match message_content(params) {
        Ok(content) => content,
        Err(code) => return fail(code),
    };
    if let Err(retry_after) = state.admit_post(&workspace.team_id, &channel.id) {
        return fault_response(&Fault::RateLimited {
            retry_after_secs: retry_after.as_secs(),
        });
    }
    let metadata = match message_metadata(params) {
        Ok(m) => m,
        Err(code) => return fail(code),
    };
    let thread_ts = params.get("thread_ts").filter(|t| !t.is_empty()).cloned();
    let reply_broadcast = matches!(
        params.get("reply_broadcast").map(String::as_str),
        Some("true" | "1")
    );
    let posted = state.record_post(PostedMessage {
        team_id: workspace.team_id.clone(),
        token: token.to_owned(),
        channel: channel.id.clone(),
        text: text.clone(),
        ts: String::new(),
        thread_ts: thread_ts.clone(),
        reply_broadcast,
        blocks,
        unfurl_links: flag(params, "unfurl_links"),
        unfurl_media: flag(params, "unfurl_media"),
        edits: 0,
        deleted: false,
        metadata,
    });
    ok(json!({
        "channel": posted.channel,
        "ts": posted.ts,
        "message": {"type": "message", "text": text, "ts": posted.ts, "thread_ts": thread_ts},
    }))
}

/// `metadata` of `chat.postMessage`: a JSON object (or its text, in a form) with a string
/// `event_type` of lowercase letters, digits and underscores, and an object `event_payload`.
fn message_metadata(params: &Params) -> Result<Option<Value>, &'static str> {
    let Some(raw) = params.get("metadata") else {
        return Ok(None);
    };
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(raw) else {
        return Err("invalid_metadata_format");
    };
    let event_type_ok = m
        .get("event_type")
        .and_then(Value::as_str)
        .is_some_and(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    if !event_type_ok || !m.get("event_payload").is_some_and(Value::is_object) {
        return Err("invalid_metadata_schema");
    }
    if raw.len() > 8_000 {
        return Err("metadata_too_large");
    }
    Ok(Some(Value::Object(m)))
}

/// A message `ts` as microseconds, for ordering and `oldest`/`latest`.
fn ts_micros(ts: &str) -> Option<i64> {
    let (secs, micros) = ts.split_once('.').unwrap_or((ts, "0"));
    let micros = format!("{micros:0<6}");
    Some(secs.parse::<i64>().ok()? * 1_000_000 + micros.get(..6)?.parse::<i64>().ok()?)
}

/// The bounds, page size and position a history read asks for: Slack's `oldest`, `latest`,
/// `inclusive`, `limit` (default 100, at most 999) and `cursor` (this double's own: an offset).
struct HistoryWindow {
    oldest: Option<i64>,
    latest: Option<i64>,
    inclusive: bool,
    limit: usize,
    offset: usize,
    with_metadata: bool,
}

impl HistoryWindow {
    fn of(params: &Params) -> Result<Self, &'static str> {
        let bound =
            |name: &str, code: &'static str| match params.get(name).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => ts_micros(v).map(Some).ok_or(code),
            };
        let offset = match params.get("cursor").filter(|c| !c.is_empty()) {
            None => 0,
            Some(c) => c
                .strip_prefix("offset_")
                .and_then(|n| n.parse().ok())
                .ok_or("invalid_cursor")?,
        };
        Ok(Self {
            oldest: bound("oldest", "invalid_ts_oldest")?,
            latest: bound("latest", "invalid_ts_latest")?,
            inclusive: flag(params, "inclusive").unwrap_or(false),
            limit: params
                .get("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .filter(|l| *l > 0)
                .unwrap_or(100)
                .min(999),
            offset,
            with_metadata: flag(params, "include_all_metadata").unwrap_or(false),
        })
    }

    fn admits(&self, ts: &str) -> bool {
        let Some(at) = ts_micros(ts) else {
            return false;
        };
        let after_oldest = self
            .oldest
            .is_none_or(|o| at > o || (self.inclusive && at == o));
        let before_latest = self
            .latest
            .is_none_or(|l| at < l || (self.inclusive && at == l));
        after_oldest && before_latest
    }

    /// One page of `messages` (already in the method's order) as Slack answers it.
    fn page(&self, messages: Vec<Value>) -> Response {
        let total = messages.len();
        let page: Vec<Value> = messages
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect();
        let end = self.offset + page.len();
        let has_more = end < total;
        let next_cursor = if has_more {
            format!("offset_{end}")
        } else {
            String::new()
        };
        ok(json!({
            "messages": page,
            "has_more": has_more,
            "pin_count": 0,
            "channel_actions_ts": null,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }))
    }
}

/// A posted message as history shows it.
fn history_json(
    state: &State,
    workspace: &Workspace,
    m: &PostedMessage,
    with_metadata: bool,
) -> Value {
    let bot = state.bot_of(&m.token, workspace);
    let mut v = json!({
        "type": "message",
        "text": m.text,
        "ts": m.ts,
        "user": bot.bot_user_id,
        "bot_id": bot.bot_id,
        "app_id": bot.app_id,
    });
    if let Some(thread_ts) = &m.thread_ts {
        v["thread_ts"] = thread_ts.clone().into();
    }
    if let Some(blocks) = &m.blocks {
        v["blocks"] = blocks.clone();
    }
    if with_metadata && let Some(metadata) = &m.metadata {
        v["metadata"] = metadata.clone();
    }
    v
}

/// The channel a history read names, if the bot may read it.
fn readable_channel<'a>(
    workspace: &'a Workspace,
    params: &Params,
) -> Result<&'a Channel, &'static str> {
    let channel = params
        .get("channel")
        .and_then(|id| find_channel(workspace, id))
        .ok_or("channel_not_found")?;
    if !channel.is_member {
        return Err("not_in_channel");
    }
    Ok(channel)
}

/// `conversations.history`: the channel's messages (thread replies only when broadcast),
/// newest first.
fn conversations_history(state: &State, workspace: &Workspace, params: &Params) -> Response {
    let channel = match readable_channel(workspace, params) {
        Ok(c) => c,
        Err(code) => return fail(code),
    };
    let window = match HistoryWindow::of(params) {
        Ok(w) => w,
        Err(code) => return fail(code),
    };
    let mut messages: Vec<PostedMessage> = state
        .channel_posts(&workspace.team_id, &channel.id)
        .into_iter()
        .filter(|m| {
            m.thread_ts.is_none() || m.reply_broadcast || m.thread_ts.as_ref() == Some(&m.ts)
        })
        .filter(|m| window.admits(&m.ts))
        .collect();
    messages.reverse();
    let messages = messages
        .iter()
        .map(|m| history_json(state, workspace, m, window.with_metadata))
        .collect();
    window.page(messages)
}

/// `conversations.replies`: the thread of `ts` (its parent, when posted here, then its
/// replies), oldest first.
fn conversations_replies(state: &State, workspace: &Workspace, params: &Params) -> Response {
    let channel = match readable_channel(workspace, params) {
        Ok(c) => c,
        Err(code) => return fail(code),
    };
    let Some(thread) = params.get("ts").filter(|t| !t.is_empty()).cloned() else {
        return fail("thread_not_found");
    };
    let window = match HistoryWindow::of(params) {
        Ok(w) => w,
        Err(code) => return fail(code),
    };
    let in_thread: Vec<PostedMessage> = state
        .channel_posts(&workspace.team_id, &channel.id)
        .into_iter()
        .filter(|m| m.ts == thread || m.thread_ts.as_deref() == Some(thread.as_str()))
        .collect();
    if in_thread.is_empty() {
        return fail("thread_not_found");
    }
    let messages = in_thread
        .iter()
        .filter(|m| m.ts == thread || window.admits(&m.ts))
        .map(|m| history_json(state, workspace, m, window.with_metadata))
        .collect();
    window.page(messages)
}
