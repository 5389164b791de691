//! The double's in-memory world: workspaces, tokens, channels, faults and posted messages.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A conversation in a workspace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Channel {
    /// `C…` or `G…`.
    pub id: String,
    /// Without `#`.
    pub name: String,
    /// Private channels are visible only to members.
    #[serde(default)]
    pub is_private: bool,
    /// Archived channels are left out of `conversations.list` with `exclude_archived`.
    #[serde(default)]
    pub is_archived: bool,
    /// Whether the bot is a member (posting needs it).
    #[serde(default = "yes")]
    pub is_member: bool,
}

fn yes() -> bool {
    true
}

impl Channel {
    /// A public channel the bot is a member of.
    pub fn public(id: &str, name: &str) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            is_private: false,
            is_archived: false,
            is_member: true,
        }
    }
}

/// A Slack workspace (team).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Workspace {
    /// `T…`.
    pub team_id: String,
    /// Display name.
    pub team_name: String,
    /// The bot user's ID.
    #[serde(default = "crate::events::bot_user")]
    pub bot_user_id: String,
    /// Its channels, in `conversations.list` order.
    #[serde(default)]
    pub channels: Vec<Channel>,
}

/// A message `chat.postMessage` accepted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PostedMessage {
    /// The workspace it was posted in.
    pub team_id: String,
    /// The token that posted it.
    pub token: String,
    /// The channel ID.
    pub channel: String,
    /// The text.
    pub text: String,
    /// The message `ts`.
    pub ts: String,
    /// The thread it replies to.
    pub thread_ts: Option<String>,
    /// Whether a thread reply was also broadcast.
    pub reply_broadcast: bool,
    /// Block Kit blocks, as sent.
    pub blocks: Option<serde_json::Value>,
    /// `unfurl_links`, when the post set it.
    #[serde(default)]
    pub unfurl_links: Option<bool>,
    /// `unfurl_media`, when the post set it.
    #[serde(default)]
    pub unfurl_media: Option<bool>,
    /// How many times `chat.update` changed it.
    #[serde(default)]
    pub edits: u32,
    /// Whether `chat.delete` removed it.
    #[serde(default)]
    pub deleted: bool,
    /// The message `metadata` it was posted with (`event_type`, `event_payload`).
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

/// A message `chat.scheduleMessage` accepted and `chat.deleteScheduledMessage` has not
/// cancelled (the double never posts it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScheduledPost {
    /// `Q…`.
    pub id: String,
    /// The workspace.
    pub team_id: String,
    /// The channel ID.
    pub channel: String,
    /// The text.
    pub text: String,
    /// When it would be posted, Unix seconds.
    pub post_at: i64,
    /// Whether it was cancelled.
    pub cancelled: bool,
}

/// A file shared through `files.completeUploadExternal`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SharedFile {
    /// `F…`.
    pub id: String,
    /// The workspace.
    pub team_id: String,
    /// The token that shared it.
    pub token: String,
    /// As given to `files.getUploadURLExternal`.
    pub filename: String,
    /// As given to `files.completeUploadExternal`.
    pub title: String,
    /// The uploaded bytes.
    pub content: Vec<u8>,
    /// The channel it was shared in.
    pub channel: String,
    /// The thread it was shared in.
    pub thread_ts: Option<String>,
}

/// A file announced by `files.getUploadURLExternal`, maybe uploaded, not yet shared.
#[derive(Debug, Clone)]
pub(crate) struct PendingUpload {
    pub(crate) team_id: String,
    pub(crate) filename: String,
    pub(crate) length: usize,
    pub(crate) content: Option<Vec<u8>>,
}

/// The Slack app the double's OAuth endpoints act for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OAuthApp {
    /// The app's client ID.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: String,
    /// The workspace an install lands in.
    pub team_id: String,
    /// Whether tokens rotate (`xoxe.xoxb-…` with a refresh token and `expires_in`).
    #[serde(default)]
    pub rotation: bool,
    /// What the simulated user answers on the authorize page.
    #[serde(default)]
    pub deny: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct IssuedCode {
    pub(crate) redirect_uri: String,
}

/// A fault to inject into the next calls of one method.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// HTTP 429 with `Retry-After: retry_after_secs`.
    RateLimited {
        /// Seconds in the `Retry-After` header.
        retry_after_secs: u64,
    },
    /// An HTTP 5xx with an HTML body, as a failing proxy would answer.
    ServerError {
        /// The status, e.g. 503.
        status: u16,
    },
    /// `{"ok": false, "error": code}` with HTTP 200.
    SlackError {
        /// Slack's error string.
        code: String,
    },
    /// Wait this long, then answer normally.
    Delay {
        /// Milliseconds.
        millis: u64,
    },
    /// The call never reaches Slack: nothing happens, and after this long an HTTP 504 comes
    /// (a client that times out first cannot tell this from [`Fault::AnswerLate`]).
    Lost {
        /// Milliseconds.
        millis: u64,
    },
    /// Act on the call at once (a post is recorded), then wait this long before answering:
    /// a client that times out first does not know the call took effect.
    AnswerLate {
        /// Milliseconds.
        millis: u64,
    },
}

/// The Slack app every token of the double belongs to, unless added as another app's.
pub const APP_ID: &str = "A0DOUBLE01";

/// The bot ID of the double's own app in every workspace.
pub const BOT_ID: &str = "B0BOT00001";

/// Whose bot a token is: the app and its bot user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BotOf {
    /// `A…`.
    pub app_id: String,
    /// `U…`.
    pub bot_user_id: String,
    /// `B…`.
    pub bot_id: String,
}

#[derive(Debug, Default)]
struct Inner {
    workspaces: HashMap<String, Workspace>,
    tokens: HashMap<String, String>,
    /// Tokens of other apps than the double's own, by token.
    other_apps: HashMap<String, BotOf>,
    revoked: Vec<String>,
    faults: HashMap<String, VecDeque<Fault>>,
    posted: Vec<PostedMessage>,
    scheduled: Vec<ScheduledPost>,
    calls: HashMap<String, u64>,
    next_ts: u64,
    /// The last message `ts` given, in microseconds (each new one is later).
    last_ts_micros: i64,
    pending_uploads: HashMap<String, PendingUpload>,
    shared_files: Vec<SharedFile>,
    next_file: u64,
    oauth_app: Option<OAuthApp>,
    codes: HashMap<String, IssuedCode>,
    refresh_tokens: HashMap<String, String>,
    next_token: u64,
    refreshes: u64,
    limits: Option<RateLimits>,
    /// Token buckets of `chat.postMessage`, by `team:channel` and by `team`.
    buckets: HashMap<String, (f64, std::time::Instant)>,
    rate_limited: u64,
}

/// Slack's limits on `chat.postMessage` as the double enforces them (unset: none): a token
/// bucket per (workspace, channel) and per workspace; a post finding either empty is answered
/// `429` with `Retry-After` (whole seconds, as Slack sends) and counted.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RateLimits {
    /// Posts a second per channel.
    pub channel_per_second: f64,
    /// Posts at once per channel after a quiet spell.
    pub channel_burst: u32,
    /// Posts a minute per workspace.
    pub workspace_per_minute: f64,
    /// Posts at once per workspace after a quiet spell.
    pub workspace_burst: u32,
}

impl RateLimits {
    /// Slack's published pace: about one a second per channel, short bursts tolerated.
    pub fn slack() -> Self {
        Self {
            channel_per_second: 1.0,
            channel_burst: 3,
            workspace_per_minute: 300.0,
            workspace_burst: 10,
        }
    }
}

/// Refills the bucket `(tokens, at)` at `per_second` up to `burst` by `now`.
fn refill(
    bucket: (f64, std::time::Instant),
    per_second: f64,
    burst: u32,
    now: std::time::Instant,
) -> f64 {
    let (tokens, at) = bucket;
    (tokens + now.saturating_duration_since(at).as_secs_f64() * per_second).min(f64::from(burst))
}

/// The double's state, shared by its handlers; every method is safe to call from tests while
/// the double serves.
#[derive(Debug, Default)]
pub struct State {
    inner: Mutex<Inner>,
    /// Where workspace events are delivered.
    pub(crate) events: crate::events::Events,
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds (or replaces) a workspace.
    pub fn add_workspace(&self, workspace: Workspace) {
        self.lock()
            .workspaces
            .insert(workspace.team_id.clone(), workspace);
    }

    /// A workspace `team_id` with `n` generated public channels named `channel-00001`, … with
    /// IDs `C0000000001`, …, followed by `extra`.
    pub fn add_generated_workspace(&self, team_id: &str, n: usize, extra: Vec<Channel>) {
        let mut channels: Vec<Channel> = (1..=n)
            .map(|i| Channel::public(&format!("C{i:010}"), &format!("channel-{i:05}")))
            .collect();
        channels.extend(extra);
        self.add_workspace(Workspace {
            team_id: team_id.into(),
            team_name: format!("Workspace {team_id}"),
            bot_user_id: crate::events::bot_user(),
            channels,
        });
    }

    /// Lets `token` act as the bot of `team_id`.
    pub fn add_token(&self, token: &str, team_id: &str) {
        self.lock().tokens.insert(token.into(), team_id.into());
    }

    /// Archives (or unarchives) a channel of any workspace.
    pub fn set_archived(&self, channel_id: &str, archived: bool) {
        for w in self.lock().workspaces.values_mut() {
            for c in w.channels.iter_mut().filter(|c| c.id == channel_id) {
                c.is_archived = archived;
            }
        }
    }

    /// Lets `token` act as the bot of another Slack app than the double's own in `team_id`:
    /// `auth.test` and `bots.info` say so, and uninstalling the double's app leaves it working.
    pub fn add_token_of_app(&self, token: &str, team_id: &str, bot: BotOf) {
        let mut inner = self.lock();
        inner.tokens.insert(token.into(), team_id.into());
        inner.other_apps.insert(token.into(), bot);
    }

    /// Whose bot `token` is.
    pub(crate) fn bot_of(&self, token: &str, workspace: &Workspace) -> BotOf {
        self.lock()
            .other_apps
            .get(token)
            .cloned()
            .unwrap_or_else(|| BotOf {
                app_id: APP_ID.into(),
                bot_user_id: workspace.bot_user_id.clone(),
                bot_id: BOT_ID.into(),
            })
    }

    /// The app and bot user of bot `bot_id`, as `bots.info` tells them.
    pub(crate) fn bot_info(&self, bot_id: &str, workspace: &Workspace) -> Option<BotOf> {
        if bot_id == BOT_ID {
            return Some(BotOf {
                app_id: APP_ID.into(),
                bot_user_id: workspace.bot_user_id.clone(),
                bot_id: BOT_ID.into(),
            });
        }
        self.lock()
            .other_apps
            .values()
            .find(|b| b.bot_id == bot_id)
            .cloned()
    }

    /// Revokes every token of the double's own app in `team_id` (it was uninstalled there);
    /// other apps' tokens keep working.
    pub fn revoke_team(&self, team_id: &str) {
        let mut inner = self.lock();
        let tokens: Vec<String> = inner
            .tokens
            .iter()
            .filter(|(token, team)| *team == team_id && !inner.other_apps.contains_key(*token))
            .map(|(token, _)| token.clone())
            .collect();
        inner.revoked.extend(tokens);
    }

    /// The workspace `channel_id` belongs to (the first that has it), or empty.
    pub fn team_of(&self, channel_id: &str) -> String {
        self.lock()
            .workspaces
            .values()
            .find(|w| w.channels.iter().any(|c| c.id == channel_id))
            .map(|w| w.team_id.clone())
            .unwrap_or_default()
    }

    /// Renames a channel of any workspace.
    pub fn rename(&self, channel_id: &str, name: &str) {
        self.each_channel(channel_id, |c| c.name = name.to_owned());
    }

    /// Makes the bot a member of a channel, or not.
    pub fn set_member(&self, channel_id: &str, member: bool) {
        self.each_channel(channel_id, |c| c.is_member = member);
    }

    /// Deletes a channel of any workspace.
    pub fn remove_channel(&self, channel_id: &str) {
        for w in self.lock().workspaces.values_mut() {
            w.channels.retain(|c| c.id != channel_id);
        }
    }

    fn each_channel(&self, channel_id: &str, f: impl Fn(&mut Channel)) {
        for w in self.lock().workspaces.values_mut() {
            for c in w.channels.iter_mut().filter(|c| c.id == channel_id) {
                f(c);
            }
        }
    }

    /// Revokes `token`: every later call with it answers `token_revoked`.
    pub fn revoke(&self, token: &str) {
        self.lock().revoked.push(token.into());
    }

    /// Queues `fault` for the next `times` calls of `method` (e.g. `conversations.list`).
    pub fn inject(&self, method: &str, fault: Fault, times: usize) {
        let mut inner = self.lock();
        let queue = inner.faults.entry(method.into()).or_default();
        for _ in 0..times {
            queue.push_back(fault.clone());
        }
    }

    /// Messages posted so far, oldest first.
    pub fn posted(&self) -> Vec<PostedMessage> {
        self.lock().posted.clone()
    }

    /// How many messages were posted (what [`State::posted`] holds, without copying it).
    pub fn posted_count(&self) -> usize {
        self.lock().posted.len()
    }

    /// How many times `method` was called (faulted calls included).
    pub fn calls(&self, method: &str) -> u64 {
        self.lock().calls.get(method).copied().unwrap_or(0)
    }

    /// Every method's call count.
    pub fn all_calls(&self) -> HashMap<String, u64> {
        self.lock().calls.clone()
    }

    /// Enforces `limits` on `chat.postMessage` from now on (`None`: no limits); the buckets
    /// start full and the count of 429s at zero.
    pub fn set_rate_limits(&self, limits: Option<RateLimits>) {
        let mut inner = self.lock();
        inner.limits = limits;
        inner.buckets.clear();
        inner.rate_limited = 0;
    }

    /// The limits enforced, if any.
    pub fn rate_limits(&self) -> Option<RateLimits> {
        self.lock().limits
    }

    /// How many posts were answered 429 by the limits since they were set.
    pub fn rate_limited(&self) -> u64 {
        self.lock().rate_limited
    }

    /// Takes one post from the buckets of `team`'s `channel`: `Err(retry_after)` when either
    /// is empty (nothing taken; counted).
    pub(crate) fn admit_post(&self, team: &str, channel: &str) -> Result<(), std::time::Duration> {
        let mut inner = self.lock();
        let Some(limits) = inner.limits else {
            return Ok(());
        };
        let now = std::time::Instant::now();
        let scopes = [
            (
                format!("{team}:{channel}"),
                limits.channel_per_second,
                limits.channel_burst,
            ),
            (
                team.to_owned(),
                limits.workspace_per_minute / 60.0,
                limits.workspace_burst,
            ),
        ];
        let mut levels = Vec::with_capacity(2);
        let mut wait = 0.0_f64;
        for (key, rate, burst) in &scopes {
            let bucket = inner
                .buckets
                .get(key)
                .copied()
                .unwrap_or((f64::from(*burst), now));
            let tokens = refill(bucket, *rate, *burst, now);
            if tokens < 1.0 {
                wait = wait.max((1.0 - tokens) / rate);
            }
            levels.push((key.clone(), tokens));
        }
        if wait > 0.0 {
            inner.rate_limited += 1;
            return Err(std::time::Duration::from_secs_f64(wait.ceil().max(1.0)));
        }
        for (key, tokens) in levels {
            inner.buckets.insert(key, (tokens - 1.0, now));
        }
        Ok(())
    }

    pub(crate) fn count_call(&self, method: &str) {
        *self.lock().calls.entry(method.into()).or_default() += 1;
    }

    pub(crate) fn take_fault(&self, method: &str) -> Option<Fault> {
        self.lock().faults.get_mut(method)?.pop_front()
    }

    /// The workspace of `token`, or Slack's error string for it.
    pub(crate) fn authenticate(&self, token: Option<&str>) -> Result<Workspace, &'static str> {
        let inner = self.lock();
        let token = token.filter(|t| !t.is_empty()).ok_or("not_authed")?;
        if inner.revoked.iter().any(|t| t == token) {
            return Err("token_revoked");
        }
        let team = inner.tokens.get(token).ok_or("invalid_auth")?;
        inner
            .workspaces
            .get(team)
            .cloned()
            .ok_or("account_inactive")
    }

    /// Sets the Slack app the OAuth endpoints act for.
    pub fn set_oauth_app(&self, app: OAuthApp) {
        self.lock().oauth_app = Some(app);
    }

    /// How many `grant_type=refresh_token` exchanges succeeded.
    pub fn refreshes(&self) -> u64 {
        self.lock().refreshes
    }

    pub(crate) fn oauth_app(&self) -> Option<OAuthApp> {
        self.lock().oauth_app.clone()
    }

    pub(crate) fn issue_code(&self, redirect_uri: &str) -> String {
        let mut inner = self.lock();
        inner.next_token += 1;
        let code = format!("code-{}-{}", inner.next_token, inner.next_ts);
        inner.codes.insert(
            code.clone(),
            IssuedCode {
                redirect_uri: redirect_uri.into(),
            },
        );
        code
    }

    /// Takes an authorization code (once).
    pub(crate) fn take_code(&self, code: &str) -> Option<IssuedCode> {
        self.lock().codes.remove(code)
    }

    /// Issues a bot token for the app's workspace (and a refresh token when it rotates).
    pub(crate) fn issue_token(&self, app: &OAuthApp) -> (String, Option<String>) {
        let mut inner = self.lock();
        inner.next_token += 1;
        let n = inner.next_token;
        let access = if app.rotation {
            format!("xoxe.xoxb-1-oauthissued{n:06}")
        } else {
            format!("xoxb-1-oauthissued{n:06}")
        };
        inner.tokens.insert(access.clone(), app.team_id.clone());
        let refresh = app.rotation.then(|| {
            let refresh = format!("xoxe-1-refresh{n:06}");
            inner
                .refresh_tokens
                .insert(refresh.clone(), app.team_id.clone());
            refresh
        });
        (access, refresh)
    }

    /// Spends a refresh token: it works once, as Slack's rotating refresh tokens do.
    pub(crate) fn spend_refresh_token(&self, refresh: &str) -> bool {
        let mut inner = self.lock();
        let ok = inner.refresh_tokens.remove(refresh).is_some();
        if ok {
            inner.refreshes += 1;
        }
        ok
    }

    /// Files shared so far, oldest first.
    pub fn files(&self) -> Vec<SharedFile> {
        self.lock().shared_files.clone()
    }

    pub(crate) fn announce_upload(&self, team_id: &str, filename: &str, length: usize) -> String {
        let mut inner = self.lock();
        inner.next_file += 1;
        let id = format!("F{:09}", inner.next_file);
        inner.pending_uploads.insert(
            id.clone(),
            PendingUpload {
                team_id: team_id.into(),
                filename: filename.into(),
                length,
                content: None,
            },
        );
        id
    }

    /// Stores uploaded bytes; `false` when the file was never announced.
    pub(crate) fn receive_upload(&self, file_id: &str, content: Vec<u8>) -> bool {
        match self.lock().pending_uploads.get_mut(file_id) {
            Some(p) => {
                p.content = Some(content);
                true
            }
            None => false,
        }
    }

    /// Shares an uploaded file, or returns Slack's error string.
    pub(crate) fn complete_upload(
        &self,
        workspace: &Workspace,
        token: &str,
        file_id: &str,
        title: Option<String>,
        channel: &str,
        thread_ts: Option<String>,
    ) -> Result<SharedFile, &'static str> {
        let mut inner = self.lock();
        let pending = inner.pending_uploads.get(file_id).ok_or("file_not_found")?;
        if pending.team_id != workspace.team_id {
            return Err("file_not_found");
        }
        let content = pending.content.clone().ok_or("file_upload_not_complete")?;
        if content.len() != pending.length {
            return Err("file_size_mismatch");
        }
        let shared = SharedFile {
            id: file_id.into(),
            team_id: workspace.team_id.clone(),
            token: token.into(),
            title: title.unwrap_or_else(|| pending.filename.clone()),
            filename: pending.filename.clone(),
            content,
            channel: channel.into(),
            thread_ts,
        };
        inner.pending_uploads.remove(file_id);
        inner.shared_files.push(shared.clone());
        Ok(shared)
    }

    /// Applies `change` to the message `ts` of `channel` in `team_id` that is not deleted;
    /// `None` when there is none.
    pub(crate) fn change_post(
        &self,
        team_id: &str,
        channel: &str,
        ts: &str,
        change: impl FnOnce(&mut PostedMessage),
    ) -> Option<PostedMessage> {
        let mut inner = self.lock();
        let message = inner
            .posted
            .iter_mut()
            .find(|m| m.team_id == team_id && m.channel == channel && m.ts == ts && !m.deleted)?;
        change(message);
        Some(message.clone())
    }

    /// Every scheduled message, cancelled ones included.
    pub fn scheduled(&self) -> Vec<ScheduledPost> {
        self.lock().scheduled.clone()
    }

    pub(crate) fn record_scheduled(&self, mut post: ScheduledPost) -> ScheduledPost {
        let mut inner = self.lock();
        post.id = format!("Q{:010}", inner.scheduled.len() + 1);
        inner.scheduled.push(post.clone());
        post
    }

    /// Cancels scheduled message `id` of `channel` in `team_id`: `false` when there is none.
    pub(crate) fn cancel_scheduled(&self, team_id: &str, channel: &str, id: &str) -> bool {
        let mut inner = self.lock();
        match inner
            .scheduled
            .iter_mut()
            .find(|p| p.team_id == team_id && p.channel == channel && p.id == id && !p.cancelled)
        {
            Some(p) => {
                p.cancelled = true;
                true
            }
            None => false,
        }
    }

    pub(crate) fn record_post(&self, mut message: PostedMessage) -> PostedMessage {
        let mut inner = self.lock();
        inner.next_ts += 1;
        // As Slack's: the time of the post, unique and increasing within the workspace.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let micros = now.max(inner.last_ts_micros + 1);
        inner.last_ts_micros = micros;
        message.ts = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
        inner.posted.push(message.clone());
        message
    }

    /// The messages posted in `team_id`'s `channel` and not deleted, oldest first.
    pub(crate) fn channel_posts(&self, team_id: &str, channel: &str) -> Vec<PostedMessage> {
        self.lock()
            .posted
            .iter()
            .filter(|m| m.team_id == team_id && m.channel == channel && !m.deleted)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_past_a_channels_burst_are_429_until_it_refills_and_are_counted() {
        let state = State::default();
        assert!(
            state.admit_post("T1", "C1").is_ok(),
            "no limits: anything goes"
        );
        state.set_rate_limits(Some(RateLimits {
            channel_per_second: 10.0,
            channel_burst: 2,
            workspace_per_minute: 6000.0,
            workspace_burst: 100,
        }));
        assert!(state.admit_post("T1", "C1").is_ok());
        assert!(state.admit_post("T1", "C1").is_ok());
        let wait = state.admit_post("T1", "C1").unwrap_err();
        assert_eq!(
            wait,
            std::time::Duration::from_secs(1),
            "whole seconds, as Slack"
        );
        assert!(
            state.admit_post("T1", "C2").is_ok(),
            "another channel has its own"
        );
        std::thread::sleep(std::time::Duration::from_millis(120));
        assert!(state.admit_post("T1", "C1").is_ok(), "refilled");
        assert_eq!(state.rate_limited(), 1);
    }
}
