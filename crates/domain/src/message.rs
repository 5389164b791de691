//! Messages to send through a connector, and how long text is split.

use crate::channel::ChannelRef;
use crate::error::ValidationError;
use crate::ids::{ChannelId, RequestId};

/// Slack's documented limit of a message's `text`, in characters. Longer text is truncated by
/// Slack; we split it instead (see [`split_text`]).
pub const MAX_TEXT_CHARS: usize = 40_000;
/// Slack's limit of Block Kit blocks in one message.
pub const MAX_BLOCKS: usize = 50;
/// Slack's limit of one uploaded file, in bytes (1 GB).
pub const MAX_FILE_BYTES: usize = 1_000_000_000;

/// How much one send may ask of Slack: a deployment's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLimits {
    /// Text becomes at most this many Slack messages (the first, then thread replies).
    pub max_text_parts: usize,
    /// `blocks_json` is at most this many bytes.
    pub max_blocks_bytes: usize,
}

impl Default for SendLimits {
    fn default() -> Self {
        Self {
            max_text_parts: 10,
            max_blocks_bytes: 64 * 1024,
        }
    }
}

/// A file to upload beside a message.
#[derive(Clone, PartialEq, Eq)]
pub struct FileAttachment {
    /// The file name Slack shows, e.g. `report.pdf`.
    pub filename: String,
    /// An optional title; Slack shows the file name without one.
    pub title: Option<String>,
    /// The content.
    pub content: Vec<u8>,
}

impl std::fmt::Debug for FileAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileAttachment")
            .field("filename", &self.filename)
            .field("title", &self.title)
            .field("bytes", &self.content.len())
            .finish()
    }
}

/// A message for a connector's default channel.
///
/// ```
/// use connector_domain::Message;
/// let m = Message::from("deploy finished").in_thread("1700000000.000100");
/// assert!(m.validate().is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The text (Slack mrkdwn). Longer than [`MAX_TEXT_CHARS`] is split into a thread.
    pub text: String,
    /// Reply in this thread (a parent message's `ts`).
    pub thread_ts: Option<String>,
    /// With `thread_ts`: also show the reply in the channel.
    pub reply_broadcast: bool,
    /// Block Kit blocks, a JSON array; `text` is then the notification fallback.
    pub blocks_json: Option<String>,
    /// Files to upload to the same channel (and thread).
    pub files: Vec<FileAttachment>,
    /// The idempotency key: a send repeated with the same key through the same connector
    /// within a day posts once and answers with the first result.
    pub request_id: Option<RequestId>,
    /// Post here instead of the connector's default channel (a name or an ID).
    pub channel: Option<ChannelRef>,
    /// Whether Slack unfurls links in the text (Slack's default when unset).
    pub unfurl_links: Option<bool>,
    /// Whether Slack unfurls media in the text (Slack's default when unset).
    pub unfurl_media: Option<bool>,
    /// Post at this time instead of now (`chat.scheduleMessage`): at most [`MAX_SCHEDULE_AHEAD`]
    /// ahead, one message (no continuation, no files).
    pub post_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// How far ahead Slack schedules a message (120 days).
pub const MAX_SCHEDULE_AHEAD: chrono::TimeDelta = chrono::TimeDelta::days(120);

/// A change to a message a connector posted: its new text (and blocks), by channel and `ts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEdit {
    /// The channel the message is in (an ID, as SendMessage answered it).
    pub channel: ChannelId,
    /// The message's `ts`.
    pub ts: String,
    /// The new text (mrkdwn); with blocks, the notification fallback.
    pub text: String,
    /// New Block Kit blocks, a JSON array.
    pub blocks_json: Option<String>,
}

impl MessageEdit {
    /// Checks the edit, naming the field (`UpdateMessageRequest` field names).
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_message_ref(&self.channel, &self.ts)?;
        if self.text.trim().is_empty() && self.blocks_json.is_none() {
            return Err(ValidationError::new(
                "text",
                "must not be empty (or give blocks_json)",
            ));
        }
        if self.text.chars().count() > MAX_TEXT_CHARS {
            return Err(ValidationError::new(
                "text",
                format!("must be at most {MAX_TEXT_CHARS} characters: an edit is one message"),
            ));
        }
        if let Some(blocks) = &self.blocks_json {
            check_blocks(blocks)?;
        }
        Ok(())
    }
}

/// Checks `channel_id` of a request about a posted or scheduled message: an ID, as SendMessage
/// answered it.
pub fn check_channel_id(channel: &ChannelId) -> Result<(), ValidationError> {
    if ChannelId::looks_like_id(channel.as_str()) {
        Ok(())
    } else {
        Err(ValidationError::new(
            "channel_id",
            "must be a channel ID (C…, G… or D…) as SendMessage answered it",
        ))
    }
}

/// Checks a reference to a posted message: a channel ID and a `ts`.
pub fn check_message_ref(channel: &ChannelId, ts: &str) -> Result<(), ValidationError> {
    check_channel_id(channel)?;
    if !is_ts(ts) {
        return Err(ValidationError::new(
            "ts",
            "must be a message timestamp like 1700000000.000100",
        ));
    }
    Ok(())
}

fn check_blocks(blocks: &str) -> Result<(), ValidationError> {
    let count = count_json_array(blocks).ok_or_else(|| {
        ValidationError::new("blocks_json", "must be a JSON array of Block Kit blocks")
    })?;
    if count == 0 || count > MAX_BLOCKS {
        return Err(ValidationError::new(
            "blocks_json",
            format!("must hold 1 to {MAX_BLOCKS} blocks (got {count})"),
        ));
    }
    Ok(())
}

impl Message {
    /// Replies in the thread of `ts`.
    pub fn in_thread(mut self, ts: impl Into<String>) -> Self {
        self.thread_ts = Some(ts.into());
        self
    }

    /// Also shows a thread reply in the channel.
    pub fn broadcast(mut self) -> Self {
        self.reply_broadcast = true;
        self
    }

    /// Adds Block Kit blocks (a JSON array).
    pub fn with_blocks(mut self, blocks_json: impl Into<String>) -> Self {
        self.blocks_json = Some(blocks_json.into());
        self
    }

    /// Attaches a file.
    pub fn with_file(mut self, file: FileAttachment) -> Self {
        self.files.push(file);
        self
    }

    /// Schedules the message for `at` instead of posting it now.
    pub fn post_at(mut self, at: chrono::DateTime<chrono::Utc>) -> Self {
        self.post_at = Some(at);
        self
    }

    /// Checks a schedule against `now`: in the future, at most [`MAX_SCHEDULE_AHEAD`] ahead.
    pub fn check_schedule(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ValidationError> {
        let Some(at) = self.post_at else {
            return Ok(());
        };
        if at <= now {
            return Err(ValidationError::new("post_at", "must be in the future"));
        }
        if at - now > MAX_SCHEDULE_AHEAD {
            return Err(ValidationError::new(
                "post_at",
                "must be at most 120 days ahead (Slack's limit)",
            ));
        }
        Ok(())
    }

    /// Posts to `channel` instead of the connector's default channel.
    pub fn to_channel(mut self, channel: ChannelRef) -> Self {
        self.channel = Some(channel);
        self
    }

    /// Makes the send idempotent under `key`: repeating it (after a timeout, a restart) never
    /// posts twice.
    pub fn with_request_id(mut self, key: RequestId) -> Self {
        self.request_id = Some(key);
        self
    }

    /// Checks the message against the deployment's `limits`: how many Slack messages its text
    /// may become, how large its blocks may be. Named fields, as [`Message::validate`].
    pub fn check_limits(&self, limits: &SendLimits) -> Result<(), ValidationError> {
        let most = MAX_TEXT_CHARS.saturating_mul(limits.max_text_parts);
        // Count no further than needed: a 4 MiB text is refused without walking all of it.
        let chars = self.text.chars().take(most + 1).count();
        if chars > most {
            return Err(ValidationError::new(
                "text",
                format!(
                    "must be at most {most} characters ({} Slack messages of {MAX_TEXT_CHARS}); send a file for more",
                    limits.max_text_parts
                ),
            ));
        }
        if let Some(blocks) = &self.blocks_json
            && blocks.len() > limits.max_blocks_bytes
        {
            return Err(ValidationError::new(
                "blocks_json",
                format!(
                    "must be at most {} bytes (got {})",
                    limits.max_blocks_bytes,
                    blocks.len()
                ),
            ));
        }
        Ok(())
    }

    /// Checks the message against Slack's rules, naming the field (the `SendMessageRequest`
    /// field names) that breaks one.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.text.trim().is_empty() && self.blocks_json.is_none() {
            return Err(ValidationError::new(
                "text",
                "must not be empty (or give blocks_json)",
            ));
        }
        if let Some(ts) = &self.thread_ts
            && !is_ts(ts)
        {
            return Err(ValidationError::new(
                "thread_ts",
                "must be a message timestamp like 1700000000.000100",
            ));
        }
        if self.reply_broadcast && self.thread_ts.is_none() {
            return Err(ValidationError::new(
                "reply_broadcast",
                "needs thread_ts: only thread replies can be broadcast",
            ));
        }
        if let Some(blocks) = &self.blocks_json {
            check_blocks(blocks)?;
            if self.text.chars().count() > MAX_TEXT_CHARS {
                return Err(ValidationError::new(
                    "text",
                    format!(
                        "with blocks_json, text is the notification fallback and must be at most {MAX_TEXT_CHARS} characters"
                    ),
                ));
            }
        }
        if self.post_at.is_some() {
            if !self.files.is_empty() {
                return Err(ValidationError::new(
                    "attachments",
                    "cannot be scheduled: post_at schedules one message; send files without it",
                ));
            }
            if self.text.chars().count() > MAX_TEXT_CHARS {
                return Err(ValidationError::new(
                    "text",
                    format!(
                        "a scheduled message is one message: at most {MAX_TEXT_CHARS} characters"
                    ),
                ));
            }
        }
        for f in &self.files {
            if f.filename.trim().is_empty() || f.filename.chars().count() > 255 {
                return Err(ValidationError::new(
                    "file",
                    "needs a file name of 1-255 characters",
                ));
            }
            if f.content.is_empty() {
                return Err(ValidationError::new(
                    "file",
                    format!("{} is empty", f.filename),
                ));
            }
            if f.content.len() > MAX_FILE_BYTES {
                return Err(ValidationError::new(
                    "file",
                    format!("{} is larger than Slack's 1 GB limit", f.filename),
                ));
            }
        }
        Ok(())
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            ..Self::default()
        }
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self {
            text,
            ..Self::default()
        }
    }
}

fn is_ts(ts: &str) -> bool {
    match ts.split_once('.') {
        Some((secs, frac)) => {
            !secs.is_empty()
                && !frac.is_empty()
                && secs.len() <= 12
                && frac.len() <= 9
                && secs.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// The number of elements when `json` is a JSON array of objects, else `None`.
fn count_json_array(json: &str) -> Option<usize> {
    match serde_json::from_str::<serde_json::Value>(json).ok()? {
        serde_json::Value::Array(items) if items.iter().all(|i| i.is_object()) => Some(items.len()),
        _ => None,
    }
}

/// Splits `text` into parts of at most `max_chars` characters, preferring to break after a
/// newline, then after whitespace, and only then inside a word. Joining the parts gives back
/// `text`. Text that fits is one part; empty text is one empty part.
pub fn split_text(text: &str, max_chars: usize) -> Vec<&str> {
    assert!(max_chars > 0, "max_chars must be positive");
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        // Byte index just past `max_chars` characters, or the end.
        let Some((limit, _)) = rest.char_indices().nth(max_chars) else {
            parts.push(rest);
            return parts;
        };
        let window = &rest[..limit];
        let cut = window
            .rfind('\n')
            .map(|i| i + 1)
            .or_else(|| {
                window
                    .char_indices()
                    .rev()
                    .find(|(_, c)| c.is_whitespace())
                    .map(|(i, c)| i + c.len_utf8())
            })
            .filter(|&i| i > 0)
            .unwrap_or(limit);
        parts.push(&rest[..cut]);
        rest = &rest[cut..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_names_its_bad_field() {
        let edit = MessageEdit {
            channel: ChannelId::new("C0ALERTS01"),
            ts: "1700000000.000100".into(),
            text: "deploy finished".into(),
            blocks_json: None,
        };
        assert!(edit.validate().is_ok());
        let field = |e: MessageEdit| e.validate().unwrap_err().field;
        assert_eq!(
            field(MessageEdit {
                channel: ChannelId::new("#alerts"),
                ..edit.clone()
            }),
            "channel_id"
        );
        assert_eq!(
            field(MessageEdit {
                ts: "yesterday".into(),
                ..edit.clone()
            }),
            "ts"
        );
        assert_eq!(
            field(MessageEdit {
                text: " ".into(),
                ..edit.clone()
            }),
            "text"
        );
        assert_eq!(
            field(MessageEdit {
                text: "x".repeat(MAX_TEXT_CHARS + 1),
                ..edit.clone()
            }),
            "text"
        );
        assert_eq!(
            field(MessageEdit {
                blocks_json: Some("{}".into()),
                ..edit
            }),
            "blocks_json"
        );
    }

    #[test]
    fn limits_bound_the_text_parts_and_the_blocks() {
        let limits = SendLimits {
            max_text_parts: 2,
            max_blocks_bytes: 100,
        };
        let ok = Message::from("x".repeat(2 * MAX_TEXT_CHARS));
        assert!(ok.check_limits(&limits).is_ok());
        let err = Message::from("x".repeat(2 * MAX_TEXT_CHARS + 1))
            .check_limits(&limits)
            .unwrap_err();
        assert_eq!(err.field, "text");
        assert!(err.reason.contains("80000"), "{err}");
        let blocks = Message::from("fallback").with_blocks(format!("[{}]", "1,".repeat(60) + "1"));
        let err = blocks.check_limits(&limits).unwrap_err();
        assert_eq!(err.field, "blocks_json");
    }

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split_text("hello", 10), vec!["hello"]);
        assert_eq!(split_text("", 10), vec![""]);
        assert_eq!(split_text("0123456789", 10), vec!["0123456789"]);
    }

    #[test]
    fn splits_prefer_newlines_then_spaces_then_anywhere() {
        assert_eq!(
            split_text("aaaa\nbbbb cccc", 10),
            vec!["aaaa\n", "bbbb cccc"]
        );
        assert_eq!(split_text("aaaa bbbb cccc", 10), vec!["aaaa bbbb ", "cccc"]);
        assert_eq!(split_text("abcdefghijkl", 5), vec!["abcde", "fghij", "kl"]);
    }

    #[test]
    fn parts_respect_the_limit_in_characters_and_rejoin_losslessly() {
        let text = "é😀 word ".repeat(20_000);
        let parts = split_text(&text, MAX_TEXT_CHARS);
        assert!(parts.len() >= 4);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_TEXT_CHARS));
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn validation_names_the_field() {
        let err = |m: Message| m.validate().unwrap_err().field;
        assert_eq!(err(Message::from("  ")), "text");
        assert_eq!(err(Message::from("x").in_thread("yesterday")), "thread_ts");
        assert_eq!(err(Message::from("x").broadcast()), "reply_broadcast");
        assert_eq!(
            err(Message::from("x").with_blocks("{\"type\":\"section\"}")),
            "blocks_json"
        );
        assert_eq!(err(Message::from("x").with_blocks("[]")), "blocks_json");
        assert_eq!(
            err(Message::from("x").with_blocks("not json")),
            "blocks_json"
        );
        assert_eq!(
            err(Message::from("x").with_file(FileAttachment {
                filename: "a.txt".into(),
                title: None,
                content: vec![],
            })),
            "file"
        );
        assert!(
            Message::from("x")
                .in_thread("1700000000.000100")
                .broadcast()
                .validate()
                .is_ok()
        );
        assert!(
            Message::default()
                .with_blocks(r#"[{"type":"section","text":{"type":"mrkdwn","text":"hi"}}]"#)
                .validate()
                .is_ok()
        );
        assert!(
            Message::from("x".repeat(100_000)).validate().is_ok(),
            "long text is split, not refused"
        );
    }
}
