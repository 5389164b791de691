//! The Web API's JSON shapes, and Slack's error strings in the port's terms.

use connector_domain::{ChannelId, ChannelName, MessageEdit, WorkspaceId};
use connector_ports::{AuthIdentity, ChannelInfo, ChannelPage, OutgoingMessage, SlackError};
use serde::Deserialize;

/// What every answer has.
#[derive(Deserialize)]
pub(crate) struct Envelope {
    pub(crate) ok: bool,
    #[serde(default)]
    pub(crate) error: Option<String>,
    /// With `missing_scope`: the scope the call needs.
    #[serde(default)]
    pub(crate) needed: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct AuthTest {
    team_id: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    bot_id: Option<String>,
    #[serde(default)]
    app_id: Option<String>,
}

impl From<AuthTest> for AuthIdentity {
    fn from(r: AuthTest) -> Self {
        Self {
            team_id: WorkspaceId::new(r.team_id),
            team_name: r.team,
            user_id: r.user_id,
            bot_id: r.bot_id.filter(|b| !b.is_empty()),
            app_id: r.app_id.filter(|a| !a.is_empty()),
        }
    }
}

/// `bots.info`'s answer.
#[derive(Deserialize)]
pub(crate) struct BotsInfo {
    pub(crate) bot: BotInfo,
}

/// One bot, as `bots.info` describes it.
#[derive(Deserialize)]
pub(crate) struct BotInfo {
    pub(crate) app_id: String,
}

#[derive(Deserialize)]
pub(crate) struct Channel {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    is_archived: bool,
    #[serde(default)]
    is_member: bool,
    #[serde(default)]
    is_private: bool,
}

impl From<Channel> for ChannelInfo {
    fn from(c: Channel) -> Self {
        Self {
            id: ChannelId::new(c.id),
            name: ChannelName::new(c.name),
            is_archived: c.is_archived,
            is_member: c.is_member,
            is_private: c.is_private,
        }
    }
}

#[derive(Deserialize, Default)]
struct ResponseMetadata {
    #[serde(default)]
    next_cursor: String,
}

#[derive(Deserialize)]
pub(crate) struct ConversationsList {
    #[serde(default)]
    channels: Vec<Channel>,
    #[serde(default)]
    response_metadata: ResponseMetadata,
}

impl From<ConversationsList> for ChannelPage {
    fn from(r: ConversationsList) -> Self {
        let next = r.response_metadata.next_cursor;
        Self {
            channels: r.channels.into_iter().map(Into::into).collect(),
            next_cursor: (!next.is_empty()).then_some(next),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ConversationsInfo {
    pub(crate) channel: Channel,
}

#[derive(Deserialize)]
pub(crate) struct ScheduleMessage {
    pub(crate) channel: String,
    pub(crate) scheduled_message_id: String,
    pub(crate) post_at: i64,
}

#[derive(Deserialize)]
pub(crate) struct Empty {}

/// One page of `conversations.history` or `conversations.replies`.
#[derive(Deserialize)]
pub(crate) struct History {
    #[serde(default)]
    pub(crate) messages: Vec<HistoryMessage>,
    #[serde(default)]
    pub(crate) has_more: bool,
    #[serde(default)]
    response_metadata: ResponseMetadata,
}

impl History {
    /// The cursor of the next page, when there is one.
    pub(crate) fn next_cursor(&self) -> Option<&str> {
        let next = self.response_metadata.next_cursor.as_str();
        (self.has_more && !next.is_empty()).then_some(next)
    }
}

/// A message of a history page: only what a landing check reads.
#[derive(Deserialize)]
pub(crate) struct HistoryMessage {
    pub(crate) ts: String,
    #[serde(default)]
    pub(crate) metadata: Option<HistoryMetadata>,
}

/// A message's `metadata`, as history shows it (with `include_all_metadata`).
#[derive(Deserialize)]
pub(crate) struct HistoryMetadata {
    #[serde(default)]
    pub(crate) event_type: String,
    #[serde(default)]
    pub(crate) event_payload: serde_json::Map<String, serde_json::Value>,
}

impl HistoryMessage {
    /// Whether its metadata is of `event_type` with payload field `key` equal to `value`.
    pub(crate) fn carries(&self, event_type: &str, key: &str, value: &str) -> bool {
        self.metadata.as_ref().is_some_and(|m| {
            m.event_type == event_type
                && m.event_payload.get(key).and_then(|v| v.as_str()) == Some(value)
        })
    }
}

/// A time as Slack's `ts` text (seconds and microseconds), for `oldest`.
pub(crate) fn slack_ts(at: chrono::DateTime<chrono::Utc>) -> String {
    format!("{}.{:06}", at.timestamp(), at.timestamp_subsec_micros())
}

#[derive(Deserialize)]
pub(crate) struct PostMessage {
    pub(crate) channel: String,
    pub(crate) ts: String,
}

#[derive(Deserialize)]
pub(crate) struct UploadUrl {
    pub(crate) upload_url: String,
    pub(crate) file_id: String,
}

#[derive(Deserialize)]
pub(crate) struct FileRef {
    pub(crate) id: String,
}

#[derive(Deserialize)]
pub(crate) struct CompleteUpload {
    #[serde(default)]
    pub(crate) files: Vec<FileRef>,
}

#[derive(Deserialize)]
pub(crate) struct Team {
    id: String,
}

/// `oauth.v2.access`'s answer (bot token part).
#[derive(Deserialize)]
pub(crate) struct OAuthAccess {
    access_token: String,
    #[serde(default)]
    token_type: String,
    team: Option<Team>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    bot_user_id: Option<String>,
}

impl TryFrom<OAuthAccess> for connector_ports::OAuthGrant {
    type Error = SlackError;
    fn try_from(r: OAuthAccess) -> Result<Self, SlackError> {
        if !r.token_type.is_empty() && r.token_type != "bot" {
            return Err(SlackError::Api {
                code: format!("unexpected_token_type_{}", r.token_type),
            });
        }
        let access_token = connector_domain::BotToken::parse("access_token", &r.access_token)
            .map_err(|_| SlackError::Api {
                code: "not_a_bot_token".into(),
            })?;
        let team = r.team.ok_or_else(|| SlackError::Api {
            code: "missing_team".into(),
        })?;
        Ok(Self {
            access_token,
            team_id: WorkspaceId::new(team.id),
            refresh_token: r.refresh_token.map(secrecy::SecretString::from),
            expires_in: r.expires_in,
            app_id: r.app_id.filter(|a| !a.is_empty()),
            bot_user_id: r.bot_user_id.filter(|u| !u.is_empty()),
        })
    }
}

/// The JSON body of `files.completeUploadExternal`.
pub(crate) fn complete_upload_body(
    file_id: &str,
    channel: &connector_domain::ChannelId,
    thread_ts: Option<String>,
    file: &connector_domain::FileAttachment,
) -> serde_json::Value {
    let title = file.title.clone().unwrap_or_else(|| file.filename.clone());
    let mut body = serde_json::json!({
        "files": [{"id": file_id, "title": title}],
        "channel_id": channel.as_str(),
    });
    if let Some(ts) = thread_ts {
        body["thread_ts"] = ts.into();
    }
    body
}

/// The JSON body of `chat.postMessage`.
pub(crate) fn post_message_body(m: &OutgoingMessage) -> Result<serde_json::Value, SlackError> {
    let mut body = serde_json::json!({
        "channel": m.channel.as_str(),
        "text": m.text,
    });
    if let Some(ts) = &m.thread_ts {
        body["thread_ts"] = ts.clone().into();
        if m.reply_broadcast {
            body["reply_broadcast"] = true.into();
        }
    }
    if let Some(blocks) = &m.blocks_json {
        body["blocks"] = blocks_value(blocks)?;
    }
    if let Some(unfurl) = m.unfurl_links {
        body["unfurl_links"] = unfurl.into();
    }
    if let Some(unfurl) = m.unfurl_media {
        body["unfurl_media"] = unfurl.into();
    }
    if let Some(metadata) = &m.metadata {
        let payload: serde_json::Map<String, serde_json::Value> = metadata
            .payload
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        body["metadata"] = serde_json::json!({
            "event_type": metadata.event_type,
            "event_payload": payload,
        });
    }
    Ok(body)
}

/// The JSON body of `chat.update`.
pub(crate) fn update_message_body(e: &MessageEdit) -> Result<serde_json::Value, SlackError> {
    let mut body = serde_json::json!({
        "channel": e.channel.as_str(),
        "ts": e.ts,
        "text": e.text,
    });
    if let Some(blocks) = &e.blocks_json {
        body["blocks"] = blocks_value(blocks)?;
    }
    Ok(body)
}

fn blocks_value(blocks: &str) -> Result<serde_json::Value, SlackError> {
    serde_json::from_str(blocks).map_err(|_| SlackError::Api {
        code: "invalid_blocks".into(),
    })
}

/// Slack's error strings that mean the token itself is no good.
const AUTH_ERRORS: &[&str] = &[
    "invalid_auth",
    "invalid_client_id",
    "bad_client_secret",
    "invalid_code",
    "code_already_used",
    "invalid_refresh_token",
    "not_authed",
    "token_revoked",
    "token_expired",
    "account_inactive",
    "not_allowed_token_type",
    "no_permission",
    "team_access_not_granted",
    "ekm_access_denied",
];

/// Maps a final (non-retryable) Slack error string.
pub(crate) fn error_from_code(code: String, needed: Option<String>) -> SlackError {
    match code.as_str() {
        c if AUTH_ERRORS.contains(&c) => SlackError::InvalidAuth { code },
        "missing_scope" => SlackError::MissingScope {
            needed: needed.unwrap_or_default(),
        },
        "channel_not_found" => SlackError::ChannelNotFound,
        "not_in_channel" => SlackError::NotInChannel,
        "is_archived" => SlackError::IsArchived,
        _ => SlackError::Api { code },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_errors_are_invalid_auth() {
        for code in [
            "invalid_auth",
            "token_revoked",
            "account_inactive",
            "not_authed",
        ] {
            assert!(matches!(
                error_from_code(code.into(), None),
                SlackError::InvalidAuth { .. }
            ));
        }
    }

    #[test]
    fn channel_errors_have_their_own_variants() {
        assert!(matches!(
            error_from_code("channel_not_found".into(), None),
            SlackError::ChannelNotFound
        ));
        assert!(matches!(
            error_from_code("not_in_channel".into(), None),
            SlackError::NotInChannel
        ));
        assert!(matches!(
            error_from_code("is_archived".into(), None),
            SlackError::IsArchived
        ));
        assert!(matches!(
            error_from_code("missing_scope".into(), Some("channels:read".into())),
            SlackError::MissingScope { needed } if needed == "channels:read"
        ));
        assert!(
            matches!(error_from_code("invalid_blocks".into(), None), SlackError::Api { code } if code == "invalid_blocks")
        );
    }

    #[test]
    fn an_empty_next_cursor_ends_the_listing() {
        let page: ConversationsList = serde_json::from_str(
            r#"{"ok":true,"channels":[{"id":"C1","name":"a"}],"response_metadata":{"next_cursor":""}}"#,
        )
        .unwrap();
        let page: ChannelPage = page.into();
        assert_eq!(page.next_cursor, None);
        assert_eq!(page.channels.len(), 1);
    }

    #[test]
    fn history_pages_find_a_post_by_its_metadata_and_say_when_more_follow() {
        let page: History = serde_json::from_str(
            r#"{"ok":true,"has_more":true,"pin_count":0,
                "messages":[
                  {"type":"message","ts":"1.000002","text":"x"},
                  {"type":"message","ts":"1.000001","text":"y",
                   "metadata":{"event_type":"slack_connector_message",
                               "event_payload":{"message_id":"m-1"}}}],
                "response_metadata":{"next_cursor":"bmV4dA=="}}"#,
        )
        .unwrap();
        assert_eq!(page.next_cursor(), Some("bmV4dA=="));
        let found: Vec<&str> = page
            .messages
            .iter()
            .filter(|m| m.carries("slack_connector_message", "message_id", "m-1"))
            .map(|m| m.ts.as_str())
            .collect();
        assert_eq!(found, ["1.000001"]);
        assert!(!page.messages[1].carries("slack_connector_message", "message_id", "m-2"));
        let last: History =
            serde_json::from_str(r#"{"ok":true,"has_more":false,"messages":[]}"#).unwrap();
        assert_eq!(last.next_cursor(), None);
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 123_000).unwrap();
        assert_eq!(slack_ts(at), "1700000000.000123");
    }

    #[test]
    fn thread_replies_carry_thread_ts_and_broadcast() {
        let body = post_message_body(&OutgoingMessage {
            channel: ChannelId::new("C1"),
            text: "hi".into(),
            thread_ts: Some("1.2".into()),
            reply_broadcast: true,
            blocks_json: Some(r#"[{"type":"section"}]"#.into()),
            unfurl_links: Some(false),
            unfurl_media: None,
            metadata: Some(connector_ports::PostMetadata {
                event_type: "slack_connector_message".into(),
                payload: vec![("message_id".into(), "m-1".into())],
            }),
        })
        .unwrap();
        assert_eq!(
            body["metadata"],
            serde_json::json!({"event_type": "slack_connector_message",
                               "event_payload": {"message_id": "m-1"}})
        );
        assert_eq!(body["thread_ts"], "1.2");
        assert_eq!(body["reply_broadcast"], true);
        assert_eq!(body["blocks"][0]["type"], "section");
        assert_eq!(body["unfurl_links"], false);
        assert!(
            body.get("unfurl_media").is_none(),
            "left to Slack's default"
        );
    }
}
