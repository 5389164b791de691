//! Slack's Events API, receiving side: the v0 request signature every delivery carries, and
//! the wire format of a callback, turned into [`SlackEvent`]s.
//!
//! A delivery is trusted only once [`verify`] accepts it: HMAC-SHA256 over
//! `v0:{X-Slack-Request-Timestamp}:{body}` keyed by the app's signing secret, compared in
//! constant time, with the timestamp within five minutes of now (a captured request cannot be
//! replayed later). Nothing of the body is parsed before.

use std::time::Duration;

use connector_domain::{ChannelId, ChannelName, WorkspaceId};
use connector_ports::{EventDetail, SlackEvent, SlackEventKind};
use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use sha2::Sha256;

/// The header with the request's signature (`v0=` and hex).
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
/// The header with the request's Unix time.
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
/// The header Slack sets on a retried delivery (1, 2, 3).
pub const RETRY_HEADER: &str = "x-slack-retry-num";
/// How far a request's timestamp may be from now.
pub const MAX_AGE: Duration = Duration::from_secs(5 * 60);

/// Why a delivery's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Slack-Request-Timestamp`.
    #[error("the X-Slack-Request-Timestamp header is missing")]
    MissingTimestamp,
    /// No `X-Slack-Signature`.
    #[error("the X-Slack-Signature header is missing")]
    MissingSignature,
    /// The timestamp is not a Unix time.
    #[error("the X-Slack-Request-Timestamp header is not a Unix time")]
    BadTimestamp,
    /// The timestamp is more than [`MAX_AGE`] from now.
    #[error("the request is {age_secs} s from now; at most 300 s are accepted")]
    Stale {
        /// How far from now, in seconds.
        age_secs: u64,
    },
    /// The signature is not the body's.
    #[error("the signature does not match the request")]
    Mismatch,
}

/// Checks a delivery's signature; `now_unix` is the current Unix time.
pub fn verify(
    signing_secret: &SecretString,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?;
    let signature = signature.ok_or(SignatureError::MissingSignature)?;
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let age_secs = now_unix.abs_diff(at);
    if age_secs > MAX_AGE.as_secs() {
        return Err(SignatureError::Stale { age_secs });
    }
    let given = signature
        .strip_prefix("v0=")
        .and_then(decode_hex)
        .ok_or(SignatureError::Mismatch)?;
    // verify_slice compares in constant time.
    mac_of(signing_secret.expose_secret(), timestamp.trim(), body)
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// The `X-Slack-Signature` value Slack sends for `body` at `timestamp` (what a sender of
/// test deliveries needs).
pub fn sign(signing_secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = mac_of(signing_secret, &timestamp.to_string(), body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

fn mac_of(secret: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What a verified delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    /// Slack checks the URL when it is configured: answer the challenge.
    UrlVerification {
        /// Echoed back.
        challenge: String,
    },
    /// An event.
    Event(Box<SlackEvent>),
}

/// Why a verified body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an Events API callback: {0}")]
pub struct ParseError(String);

impl ParseError {
    pub(crate) fn new(why: &str) -> Self {
        Self(why.to_owned())
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    challenge: Option<String>,
    team_id: Option<String>,
    api_app_id: Option<String>,
    event_id: Option<String>,
    event: Option<serde_json::Value>,
    /// Where an Enterprise Grid delivery names the workspace when `team_id` is absent.
    context_team_id: Option<String>,
    #[serde(default)]
    authorizations: Vec<Authorization>,
}

#[derive(Deserialize)]
struct Authorization {
    user_id: Option<String>,
    team_id: Option<String>,
    #[serde(default)]
    is_bot: bool,
}

/// Reads a verified delivery's body (`POST /slack/events`).
pub fn parse(body: &[u8]) -> Result<Callback, ParseError> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| ParseError(format!("malformed JSON ({e})")))?;
    callback(envelope)
}

/// Reads the `payload` of a Socket Mode `events_api` envelope: the same callback an HTTP
/// delivery's body holds.
pub fn parse_value(payload: serde_json::Value) -> Result<Callback, ParseError> {
    let envelope: Envelope = serde_json::from_value(payload)
        .map_err(|e| ParseError(format!("malformed callback ({e})")))?;
    callback(envelope)
}

fn callback(envelope: Envelope) -> Result<Callback, ParseError> {
    match envelope.kind.as_str() {
        "url_verification" => Ok(Callback::UrlVerification {
            challenge: envelope
                .challenge
                .ok_or_else(|| ParseError("url_verification without a challenge".into()))?,
        }),
        "event_callback" => {
            let missing = |what: &str| ParseError(format!("event_callback without {what}"));
            let event_id = envelope.event_id.ok_or_else(|| missing("event_id"))?;
            // Enterprise Grid: an org-wide install's delivery may name the workspace only in
            // its context or its authorization.
            let team_id = envelope
                .team_id
                .or(envelope.context_team_id)
                .or_else(|| {
                    envelope
                        .authorizations
                        .iter()
                        .find_map(|a| a.team_id.clone())
                })
                .filter(|t| !t.is_empty())
                .map(WorkspaceId::new)
                .ok_or_else(|| missing("team_id"))?;
            let api_app_id = envelope.api_app_id.ok_or_else(|| missing("api_app_id"))?;
            let raw = envelope.event.ok_or_else(|| missing("event"))?;
            let detail = detail_of(&raw)?;
            let bots: Vec<String> = envelope
                .authorizations
                .into_iter()
                .filter(|a| a.is_bot)
                .filter_map(|a| a.user_id)
                .collect();
            Ok(Callback::Event(Box::new(SlackEvent {
                event_id,
                team_id,
                api_app_id,
                kind: kind_of(&raw, &detail, &bots)?,
                detail,
            })))
        }
        other => Err(ParseError(format!("unknown callback type {other:?}"))),
    }
}

/// A form body's fields (`application/x-www-form-urlencoded`), the first of each name.
fn form_fields(body: &[u8]) -> Result<std::collections::HashMap<String, String>, ParseError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| ParseError(format!("malformed form body ({e})")))?;
    let mut fields = std::collections::HashMap::new();
    for (name, value) in pairs {
        fields.entry(name).or_insert(value);
    }
    Ok(fields)
}

/// A stable ID for a delivery that has no event ID: Slack's `trigger_id` (one per user
/// action), else a digest of the body, so a repeated delivery is stored once.
fn delivery_id(prefix: &str, trigger_id: Option<&str>, body: &[u8]) -> String {
    match trigger_id.filter(|t| !t.is_empty()) {
        Some(t) => format!("{prefix}{t}"),
        None => {
            use sha2::Digest as _;
            let digest = Sha256::digest(body);
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("{prefix}{hex}")
        }
    }
}

/// Reads a verified `POST /slack/interactions` body: a form with one field, `payload`, holding
/// the interaction as JSON (`block_actions`, `view_submission`, `view_closed`, `shortcut`,
/// `message_action`). Its `response_url` and `trigger_id` stay in the payload kept.
pub fn parse_interaction(body: &[u8]) -> Result<SlackEvent, ParseError> {
    let fields = form_fields(body)?;
    let raw = fields
        .get("payload")
        .ok_or_else(|| ParseError("an interaction without a payload field".into()))?;
    let payload: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| ParseError(format!("malformed interaction payload ({e})")))?;
    interaction(payload, body)
}

/// Reads the `payload` of a Socket Mode `interactive` envelope: the interaction itself.
pub fn parse_interaction_payload(payload: serde_json::Value) -> Result<SlackEvent, ParseError> {
    let digested = payload.to_string();
    interaction(payload, digested.as_bytes())
}

/// An interaction's payload; `delivered` (what Slack sent) names it when it has no
/// `trigger_id`.
fn interaction(mut payload: serde_json::Value, delivered: &[u8]) -> Result<SlackEvent, ParseError> {
    if !payload.is_object() {
        return Err(ParseError(
            "an interaction payload that is not an object".into(),
        ));
    }
    // The verification token is deprecated and not the service's to pass on.
    if let Some(o) = payload.as_object_mut() {
        o.remove("token");
    }
    let text = |v: Option<&serde_json::Value>| {
        v.and_then(|x| x.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let event_type = text(payload.get("type"))
        .ok_or_else(|| ParseError("an interaction without a type".into()))?;
    // Enterprise Grid: an org-wide install's interaction may have no `team`, only the
    // user's or the view's workspace.
    let team_id = text(payload.pointer("/team/id"))
        .or_else(|| text(payload.pointer("/user/team_id")))
        .or_else(|| text(payload.pointer("/view/team_id")))
        .ok_or_else(|| ParseError("an interaction without team.id".into()))?;
    let api_app_id = text(payload.get("api_app_id"))
        .ok_or_else(|| ParseError("an interaction without api_app_id".into()))?;
    let message = payload.get("message");
    let event_id = delivery_id(
        "I",
        payload.get("trigger_id").and_then(|t| t.as_str()),
        delivered,
    );
    let detail = EventDetail {
        channel_id: text(payload.pointer("/channel/id"))
            .or_else(|| text(payload.pointer("/container/channel_id"))),
        user_id: text(payload.pointer("/user/id")),
        bot_id: None,
        ts: text(payload.pointer("/container/message_ts"))
            .or_else(|| message.and_then(|m| text(m.get("ts")))),
        thread_ts: message.and_then(|m| text(m.get("thread_ts"))),
        text: message.and_then(|m| text(m.get("text"))),
        payload_json: payload.to_string(),
        event_type: event_type.clone(),
    };
    Ok(SlackEvent {
        event_id,
        team_id: WorkspaceId::new(team_id),
        api_app_id,
        kind: SlackEventKind::Ignored(event_type),
        detail,
    })
}

/// Reads a verified `POST /slack/commands` body: a slash command's form fields (`team_id`,
/// `channel_id`, `user_id`, `command`, `text`, `response_url`, `trigger_id`, `api_app_id`, …),
/// kept as a JSON object of them.
pub fn parse_command(body: &[u8]) -> Result<SlackEvent, ParseError> {
    command(form_fields(body)?, body)
}

/// Reads the `payload` of a Socket Mode `slash_commands` envelope: the same fields as a JSON
/// object.
pub fn parse_command_payload(payload: serde_json::Value) -> Result<SlackEvent, ParseError> {
    let digested = payload.to_string();
    let serde_json::Value::Object(object) = payload else {
        return Err(ParseError(
            "a slash command payload that is not an object".into(),
        ));
    };
    let fields = object
        .into_iter()
        .map(|(name, value)| match value {
            serde_json::Value::String(s) => (name, s),
            other => (name, other.to_string()),
        })
        .collect();
    command(fields, digested.as_bytes())
}

/// A slash command's fields; `delivered` (what Slack sent) names it when it has no
/// `trigger_id`.
fn command(
    fields: std::collections::HashMap<String, String>,
    delivered: &[u8],
) -> Result<SlackEvent, ParseError> {
    let field = |name: &str| fields.get(name).filter(|v| !v.is_empty()).cloned();
    let required = |name: &'static str| {
        field(name).ok_or_else(|| ParseError(format!("a slash command without {name}")))
    };
    let team_id = required("team_id")?;
    let api_app_id = required("api_app_id")?;
    required("command")?;
    // The verification token is deprecated and not the service's to pass on.
    let kept: std::collections::BTreeMap<&String, &String> = fields
        .iter()
        .filter(|(k, _)| k.as_str() != "token")
        .collect();
    let detail = EventDetail {
        event_type: "slash_command".into(),
        channel_id: field("channel_id"),
        user_id: field("user_id"),
        bot_id: None,
        ts: None,
        thread_ts: None,
        text: field("text"),
        payload_json: serde_json::to_string(&kept)
            .map_err(|e| ParseError(format!("unencodable command ({e})")))?,
    };
    Ok(SlackEvent {
        event_id: delivery_id("C", field("trigger_id").as_deref(), delivered),
        team_id: WorkspaceId::new(team_id),
        api_app_id,
        kind: SlackEventKind::Ignored("slash_command".into()),
        detail,
    })
}

/// Where and who, read from the `event` object as Slack's shapes put them: `channel` is an ID
/// or (renames) an object with `id`; a reaction names its message under `item`.
fn detail_of(event: &serde_json::Value) -> Result<EventDetail, ParseError> {
    let text_at = |v: &serde_json::Value, key: &str| {
        v.get(key)
            .and_then(|x| x.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let event_type =
        text_at(event, "type").ok_or_else(|| ParseError("an event without a type".into()))?;
    let item = event.get("item").filter(|i| i.is_object());
    let channel_id = match event.get("channel") {
        Some(serde_json::Value::String(id)) => Some(id.clone()),
        Some(serde_json::Value::Object(o)) => {
            o.get("id").and_then(|v| v.as_str()).map(str::to_owned)
        }
        _ => item.and_then(|i| text_at(i, "channel")),
    };
    Ok(EventDetail {
        channel_id,
        user_id: text_at(event, "user"),
        bot_id: text_at(event, "bot_id"),
        ts: text_at(event, "ts").or_else(|| item.and_then(|i| text_at(i, "ts"))),
        thread_ts: text_at(event, "thread_ts"),
        text: text_at(event, "text"),
        payload_json: event.to_string(),
        event_type,
    })
}

/// What the event (read into `detail` already) says about connectors: the channel and the
/// user are `detail`'s; a revocation's bot users and a rename's new name are read here.
fn kind_of(
    event: &serde_json::Value,
    detail: &EventDetail,
    bots: &[String],
) -> Result<SlackEventKind, ParseError> {
    let kind = detail.event_type.as_str();
    let channel = || {
        detail
            .channel_id
            .clone()
            .map(ChannelId::new)
            .ok_or_else(|| ParseError(format!("{kind} without a channel")))
    };
    let by_bot = || {
        detail
            .user_id
            .as_ref()
            .is_some_and(|u| bots.iter().any(|b| b == u))
    };
    let revoked_bots: Vec<String> = event
        .pointer("/tokens/bot")
        .and_then(|b| b.as_array())
        .map(|b| {
            b.iter()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(match kind {
        "app_uninstalled" => SlackEventKind::AppUninstalled,
        "tokens_revoked" if !revoked_bots.is_empty() => SlackEventKind::TokensRevoked {
            bot_user_ids: revoked_bots,
        },
        "channel_rename" | "group_rename" => {
            let name = event
                .pointer("/channel/name")
                .and_then(|n| n.as_str())
                .ok_or_else(|| ParseError(format!("{kind} without a channel name")))?;
            SlackEventKind::ChannelRenamed {
                channel: channel()?,
                name: ChannelName::new(name.trim_start_matches('#')),
            }
        }
        "channel_archive" | "group_archive" | "channel_deleted" | "group_deleted"
        | "channel_left" | "group_left" => SlackEventKind::ChannelUnavailable {
            channel: channel()?,
        },
        "member_left_channel" if by_bot() => SlackEventKind::ChannelUnavailable {
            channel: channel()?,
        },
        "channel_unarchive" | "group_unarchive" => SlackEventKind::ChannelAvailable {
            channel: channel()?,
        },
        "member_joined_channel" if by_bot() => SlackEventKind::ChannelAvailable {
            channel: channel()?,
        },
        other => SlackEventKind::Ignored(other.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const NOW: i64 = 1_800_000_000;

    fn secret() -> SecretString {
        SecretString::from(SECRET.to_owned())
    }

    #[test]
    fn slacks_documented_example_verifies() {
        // The example of Slack's "Verifying requests from Slack" page.
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        let at = 1_531_420_618;
        assert_eq!(sign(SECRET, at, body), sig);
        verify(&secret(), Some("1531420618"), Some(sig), body, at + 10).unwrap();
    }

    #[test]
    fn every_wrong_delivery_is_refused_for_its_reason() {
        let body = br#"{"type":"url_verification","challenge":"c"}"#;
        let good = sign(SECRET, NOW, body);
        let ts = NOW.to_string();
        verify(&secret(), Some(&ts), Some(&good), body, NOW).unwrap();
        let v = |ts: Option<&str>, sig: Option<&str>, body: &[u8], now: i64| {
            verify(&secret(), ts, sig, body, now)
        };
        assert_eq!(
            v(None, Some(&good), body, NOW),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            v(Some(&ts), None, body, NOW),
            Err(SignatureError::MissingSignature)
        );
        assert_eq!(
            v(Some("soon"), Some(&good), body, NOW),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            v(Some(&ts), Some(&good), body, NOW + 6 * 60),
            Err(SignatureError::Stale { age_secs: 360 })
        );
        assert_eq!(
            v(Some(&ts), Some(&good), b"{\"type\":\"other\"}", NOW),
            Err(SignatureError::Mismatch)
        );
        let other_key = sign("another-secret", NOW, body);
        assert_eq!(
            v(Some(&ts), Some(&other_key), body, NOW),
            Err(SignatureError::Mismatch)
        );
        for broken in ["", "v0=", "v1=00", "v0=zz", &good[..good.len() - 1]] {
            assert_eq!(
                v(Some(&ts), Some(broken), body, NOW),
                Err(SignatureError::Mismatch),
                "{broken}"
            );
        }
        // Signed for another time: the timestamp is part of what is signed.
        let earlier = (NOW - 1).to_string();
        assert_eq!(
            v(Some(&earlier), Some(&good), body, NOW),
            Err(SignatureError::Mismatch)
        );
    }

    fn callback(event: &str) -> Vec<u8> {
        format!(
            r#"{{"type":"event_callback","team_id":"T0001","api_app_id":"A0APP","event_id":"Ev01","event":{event},
               "authorizations":[{{"team_id":"T0001","user_id":"U0BOT","is_bot":true}}]}}"#
        )
        .into_bytes()
    }

    fn kind(event: &str) -> SlackEventKind {
        match parse(&callback(event)).unwrap() {
            Callback::Event(e) => {
                assert_eq!(
                    (
                        e.event_id.as_str(),
                        e.team_id.as_str(),
                        e.api_app_id.as_str()
                    ),
                    ("Ev01", "T0001", "A0APP")
                );
                e.kind
            }
            other => panic!("{other:?}"),
        }
    }

    fn detail(event: &str) -> EventDetail {
        match parse(&callback(event)).unwrap() {
            Callback::Event(e) => e.detail.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn where_and_who_are_read_from_slacks_shapes() {
        // Shapes of the Events API's published examples.
        let d = detail(
            r#"{"type":"app_mention","user":"U061F7AUR","text":"<@U0LAN0Z89> is it everything?",
                "ts":"1515449522.000016","channel":"C0LAN2Q65","event_ts":"1515449522000016",
                "thread_ts":"1515449000.000001"}"#,
        );
        assert_eq!(d.event_type, "app_mention");
        assert_eq!(
            (
                d.channel_id.as_deref(),
                d.user_id.as_deref(),
                d.ts.as_deref()
            ),
            (
                Some("C0LAN2Q65"),
                Some("U061F7AUR"),
                Some("1515449522.000016")
            )
        );
        assert_eq!(d.thread_ts.as_deref(), Some("1515449000.000001"));
        assert_eq!(d.text.as_deref(), Some("<@U0LAN0Z89> is it everything?"));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&d.payload_json).unwrap()["event_ts"],
            "1515449522000016"
        );
        let d = detail(
            r#"{"type":"reaction_added","user":"U024BE7LH","reaction":"thumbsup",
                "item_user":"U0G9QF9C6","item":{"type":"message","channel":"C0G9QF9GZ",
                "ts":"1360782400.498405"},"event_ts":"1360782804.083113"}"#,
        );
        assert_eq!(
            (d.channel_id.as_deref(), d.ts.as_deref(), d.text),
            (Some("C0G9QF9GZ"), Some("1360782400.498405"), None)
        );
        let d = detail(
            r#"{"type":"message","subtype":"bot_message","bot_id":"B0BOT","text":"hi","ts":"1.2","channel":"C1"}"#,
        );
        assert_eq!((d.bot_id.as_deref(), d.user_id), (Some("B0BOT"), None));
        // An event whose user is an object is read, not refused.
        let d = detail(r#"{"type":"user_change","user":{"id":"U1","name":"x"},"event_ts":"1.2"}"#);
        assert_eq!((d.event_type.as_str(), d.user_id), ("user_change", None));
    }

    #[test]
    fn interactions_and_commands_are_read_and_incomplete_ones_refused() {
        let form = |payload: &str| serde_urlencoded::to_string([("payload", payload)]).unwrap();
        let e = parse_interaction(
            form(
                r#"{"type":"view_submission","team":{"id":"T1"},"api_app_id":"A1",
                "user":{"id":"U1"},"trigger_id":"12.34.ab","token":"old","view":{"id":"V1"}}"#,
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            (
                e.event_id.as_str(),
                e.team_id.as_str(),
                e.api_app_id.as_str()
            ),
            ("I12.34.ab", "T1", "A1")
        );
        assert_eq!(e.detail.event_type, "view_submission");
        assert!(
            !e.detail.payload_json.contains("old"),
            "no verification token kept"
        );
        for bad in [
            "nopayload=1".to_owned(),
            form("not json"),
            form(r#"{"type":"block_actions","api_app_id":"A1"}"#),
            form(r#"{"type":"block_actions","team":{"id":"T1"}}"#),
        ] {
            assert!(parse_interaction(bad.as_bytes()).is_err(), "{bad}");
        }
        // Without a trigger_id, the same body gets the same ID (a repeat is stored once).
        let body = form(r#"{"type":"view_closed","team":{"id":"T1"},"api_app_id":"A1"}"#);
        assert_eq!(
            parse_interaction(body.as_bytes()).unwrap().event_id,
            parse_interaction(body.as_bytes()).unwrap().event_id
        );

        let c = parse_command(
            b"token=old&team_id=T1&api_app_id=A1&command=%2Fdeploy&text=api+v2&user_id=U1&channel_id=C1&trigger_id=9.9.z",
        )
        .unwrap();
        assert_eq!(
            (c.event_id.as_str(), c.detail.event_type.as_str()),
            ("C9.9.z", "slash_command")
        );
        assert_eq!(c.detail.text.as_deref(), Some("api v2"));
        assert!(!c.detail.payload_json.contains("old"));
        assert!(
            parse_command(b"team_id=T1&api_app_id=A1").is_err(),
            "no command"
        );
        assert!(
            parse_command(b"command=%2Fx&api_app_id=A1").is_err(),
            "no team"
        );
    }

    #[test]
    fn socket_mode_payloads_read_as_their_http_deliveries() {
        let over_http = match parse(&callback(
            r#"{"type":"app_mention","user":"U1","text":"hi","channel":"C1","ts":"1.2"}"#,
        ))
        .unwrap()
        {
            Callback::Event(e) => e,
            other => panic!("{other:?}"),
        };
        let payload: serde_json::Value = serde_json::from_slice(&callback(
            r#"{"type":"app_mention","user":"U1","text":"hi","channel":"C1","ts":"1.2"}"#,
        ))
        .unwrap();
        match parse_value(payload).unwrap() {
            Callback::Event(e) => assert_eq!(e, over_http),
            other => panic!("{other:?}"),
        }
        let i = parse_interaction_payload(serde_json::json!({"type": "shortcut",
            "team": null, "user": {"id": "U1", "team_id": "T9"}, "api_app_id": "A1",
            "trigger_id": "5.6.x", "token": "old"}))
        .unwrap();
        assert_eq!(
            (
                i.event_id.as_str(),
                i.team_id.as_str(),
                i.detail.event_type.as_str()
            ),
            ("I5.6.x", "T9", "shortcut"),
            "an org-wide install's interaction names the user's workspace"
        );
        assert!(!i.detail.payload_json.contains("old"));
        assert!(parse_interaction_payload(serde_json::json!("text")).is_err());
        let c = parse_command_payload(serde_json::json!({"token": "old", "team_id": "T1",
            "api_app_id": "A1", "command": "/deploy", "text": "api", "is_enterprise_install": false,
            "trigger_id": "7.8.y"}))
        .unwrap();
        assert_eq!(
            (c.event_id.as_str(), c.detail.text.as_deref()),
            ("C7.8.y", Some("api"))
        );
        assert!(!c.detail.payload_json.contains("old"));
        assert!(parse_command_payload(serde_json::json!(["team_id"])).is_err());
    }

    #[test]
    fn enterprise_deliveries_name_their_workspace_where_they_can() {
        let no_team = br#"{"type":"event_callback","api_app_id":"A0APP","event_id":"Ev02",
            "enterprise_id":"E1","context_team_id":"T0CTX","event":{"type":"message","text":"x"},
            "authorizations":[{"enterprise_id":"E1","team_id":"T0AUTH","user_id":"U0BOT","is_bot":true}]}"#;
        match parse(no_team).unwrap() {
            Callback::Event(e) => assert_eq!(e.team_id.as_str(), "T0CTX"),
            other => panic!("{other:?}"),
        }
        let only_auth = br#"{"type":"event_callback","api_app_id":"A0APP","event_id":"Ev03",
            "event":{"type":"message","text":"x"},
            "authorizations":[{"enterprise_id":"E1","team_id":"T0AUTH","user_id":"U0BOT","is_bot":true}]}"#;
        match parse(only_auth).unwrap() {
            Callback::Event(e) => assert_eq!(e.team_id.as_str(), "T0AUTH"),
            other => panic!("{other:?}"),
        }
        let none = br#"{"type":"event_callback","api_app_id":"A0APP","event_id":"Ev04",
            "event":{"type":"message","text":"x"},"authorizations":[]}"#;
        assert!(parse(none).is_err());
    }

    #[test]
    fn the_events_connectors_act_on_are_read() {
        let c = || ChannelId::new("C0001");
        assert_eq!(
            kind(r#"{"type":"app_uninstalled"}"#),
            SlackEventKind::AppUninstalled
        );
        assert_eq!(
            kind(r#"{"type":"tokens_revoked","tokens":{"oauth":[],"bot":["U0BOT","U0BOT2"]}}"#),
            SlackEventKind::TokensRevoked {
                bot_user_ids: vec!["U0BOT".into(), "U0BOT2".into()]
            }
        );
        assert_eq!(
            kind(r#"{"type":"tokens_revoked","tokens":{"oauth":["U1"]}}"#),
            SlackEventKind::Ignored("tokens_revoked".into())
        );
        assert_eq!(
            kind(r#"{"type":"channel_rename","channel":{"id":"C0001","name":"ops","created":1}}"#),
            SlackEventKind::ChannelRenamed {
                channel: c(),
                name: ChannelName::new("ops")
            }
        );
        for gone in [
            "channel_archive",
            "channel_deleted",
            "group_archive",
            "group_left",
        ] {
            assert_eq!(
                kind(&format!(
                    r#"{{"type":"{gone}","channel":"C0001","user":"U9"}}"#
                )),
                SlackEventKind::ChannelUnavailable { channel: c() },
                "{gone}"
            );
        }
        assert_eq!(
            kind(r#"{"type":"member_left_channel","channel":"C0001","user":"U0BOT"}"#),
            SlackEventKind::ChannelUnavailable { channel: c() }
        );
        assert_eq!(
            kind(r#"{"type":"member_left_channel","channel":"C0001","user":"U0SOMEONE"}"#),
            SlackEventKind::Ignored("member_left_channel".into())
        );
        assert_eq!(
            kind(r#"{"type":"channel_unarchive","channel":"C0001"}"#),
            SlackEventKind::ChannelAvailable { channel: c() }
        );
        assert_eq!(
            kind(r#"{"type":"member_joined_channel","channel":"C0001","user":"U0BOT"}"#),
            SlackEventKind::ChannelAvailable { channel: c() }
        );
        assert_eq!(
            kind(r#"{"type":"message","channel":"C0001","text":"hi"}"#),
            SlackEventKind::Ignored("message".into())
        );
    }

    #[test]
    fn challenges_and_malformed_bodies() {
        assert_eq!(
            parse(br#"{"token":"t","challenge":"3eZbrw1aB","type":"url_verification"}"#).unwrap(),
            Callback::UrlVerification {
                challenge: "3eZbrw1aB".into()
            }
        );
        assert!(parse(b"not json").is_err());
        assert!(parse(br#"{"type":"event_callback","team_id":"T1"}"#).is_err());
        // Every callback names the app it is for: without it, nothing could be scoped.
        let no_app = String::from_utf8(callback(r#"{"type":"app_uninstalled"}"#))
            .unwrap()
            .replace(r#""api_app_id":"A0APP","#, "");
        assert!(parse(no_app.as_bytes()).is_err());
        assert!(parse(br#"{"type":"app_rate_limited"}"#).is_err());
        assert!(parse(&callback(r#"{"type":"channel_archive"}"#)).is_err());
    }
}
