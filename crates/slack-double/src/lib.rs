//! An HTTP double of Slack's Web API, for tests and local runs.
//!
//! It speaks the Web API's wire format: `POST` or `GET` `/api/{method}`; the token in an
//! `Authorization: Bearer` header or a `token` parameter; parameters as a query string, a
//! form or a JSON body; answers as JSON with `"ok": true`, or `"ok": false` and an `error`
//! string with HTTP 200, as Slack does. Methods: `auth.test`, `bots.info`, `conversations.list` (cursors,
//! `limit` up to 1000), `conversations.info`, `conversations.history` and `conversations.replies`
//! (`oldest`/`latest`/`inclusive`, `limit`, cursors, `include_all_metadata`), `chat.postMessage`
//! (threads, broadcast, blocks, unfurl flags, `metadata`; `ts` from the clock, as Slack's),
//! `chat.update`, `chat.delete`, `chat.scheduleMessage`, `chat.deleteScheduledMessage` (kept,
//! never posted),
//! and the file upload flow `files.getUploadURLExternal` → `POST` the bytes to the returned
//! `upload_url` → `files.completeUploadExternal`. With an [`OAuthApp`] set, it also plays
//! Slack's side of OAuth v2: `GET /oauth/v2/authorize` answers as a user's browser would see it
//! (a redirect to `redirect_uri` with a code, or with `error=access_denied`), and
//! `oauth.v2.access` exchanges codes and rotating refresh tokens (each usable once).
//!
//! Tests drive it in process through [`SlackDouble`]; the `slack-double` binary serves the
//! same thing for local runs, with an admin API under `/_double/` (see [`admin`]).
//!
//! Slack's Events API ([`events`]): [`SlackDouble::trigger`] (or the admin API) makes something
//! happen in a workspace (the app uninstalled, a channel archived, renamed or deleted, the bot
//! removed or invited) and delivers the events, signed, to the app's request URL.
//!
//! Fault injection ([`Fault`]): HTTP 429 with `Retry-After`, HTTP 5xx, any Slack error string,
//! or a delay, for the next N calls of a method. Revoked tokens answer `token_revoked`.
//!
//! # Must never
//! Be used as a real Slack: it keeps everything in memory and checks nothing but what tests
//! need.

pub mod admin;
mod api;
pub mod events;
mod happenings;
pub mod socket;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

pub use events::{Delivery, EventTarget, Happening};
pub use socket::{Disconnect, SocketStats};
pub use state::{
    APP_ID, BOT_ID, BotOf, Channel, Fault, OAuthApp, PostedMessage, RateLimits, ScheduledPost,
    SharedFile, State, Workspace,
};

/// A running double, stopped when dropped.
#[derive(Debug)]
pub struct SlackDouble {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl SlackDouble {
    /// Starts a double on an ephemeral port of 127.0.0.1 with no workspaces.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(
            "127.0.0.1:0".parse().expect("a valid address"),
            State::default(),
        )
        .await
    }

    /// Starts a double on `addr` with `state`.
    pub async fn start_on(addr: SocketAddr, state: State) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(state);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            state,
            shutdown: Some(tx),
        })
    }

    /// The Web API base URL, methods appended (`http://127.0.0.1:PORT/api/`).
    pub fn api_base_url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its state, to seed workspaces, inject faults and read what was posted.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Delivers workspace events to `url`, signed with `signing_secret`.
    pub fn deliver_events_to(&self, url: &str, signing_secret: &str) {
        self.state.events.deliver_to(EventTarget {
            url: url.to_owned(),
            signing_secret: signing_secret.to_owned(),
        });
    }

    /// Turns Socket Mode on for the app-level token `app_token` (deliveries then go over the
    /// app's Socket Mode connections, not HTTP), or off (`None`).
    pub fn enable_socket_mode(&self, app_token: Option<&str>) {
        self.state
            .events
            .socket
            .enable(app_token.map(str::to_owned));
    }

    /// Socket Mode's side of Slack: connections, envelopes sent and acknowledged, the
    /// acknowledgement timeout, disconnects.
    pub fn socket_mode(&self) -> &socket::SocketMode {
        &self.state.events.socket
    }

    /// Makes `happening` happen and delivers its events; the app's answers.
    pub async fn trigger(&self, happening: Happening) -> Vec<Delivery> {
        happenings::trigger(&self.state, &happening).await
    }

    /// Delivers one `event` (the inner event object) of workspace `team` as Slack would.
    pub async fn deliver_event(&self, team: &str, event: serde_json::Value) -> Delivery {
        self.state.events.deliver(team, event).await
    }

    /// A user's interaction (`block_actions`, `view_submission`, `shortcut`, …) in `team`,
    /// posted as Slack posts it to the app's interactivity URL.
    pub async fn deliver_interaction(
        &self,
        team: &str,
        user: &str,
        payload: serde_json::Value,
    ) -> Delivery {
        self.state
            .events
            .deliver_interaction(team, user, payload)
            .await
    }

    /// A user's slash command, posted as Slack posts it to the app's command URL.
    pub async fn deliver_command(
        &self,
        team: &str,
        channel: &str,
        user: &str,
        command: &str,
        text: &str,
    ) -> Delivery {
        self.state
            .events
            .deliver_command(team, channel, user, command, text)
            .await
    }

    /// Sends `delivery` again, as Slack's retry number `retry`.
    pub async fn redeliver(&self, delivery: &Delivery, retry: u32) -> u16 {
        self.state.events.redeliver(delivery, retry).await
    }
}

impl Drop for SlackDouble {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The double's routes: the Web API under `/api/` and the admin API under `/_double/`.
pub fn router(state: Arc<State>) -> axum::Router {
    api::routes().merge(admin::routes()).with_state(state)
}
