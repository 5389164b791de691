//! What happens in a workspace of the double (an uninstall, a channel archived, renamed,
//! deleted, the bot removed or invited): the state changes, then the events Slack would send
//! are delivered, in order.

use std::sync::Arc;

use crate::events::{Delivery, Happening, bot_user};
use crate::state::State;

/// A fresh message `ts`: now, with a counter for its fraction (unique within the double).
fn new_ts() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 1_000_000;
    format!("{}.{n:06}", crate::events::now_unix())
}

/// Applies `happening` to `state` and delivers its events, in order; one [`Delivery`] each.
pub(crate) async fn trigger(state: &Arc<State>, happening: &Happening) -> Vec<Delivery> {
    let bot = bot_user();
    let channel_event = |kind: &str, channel: &str| serde_json::json!({"type": kind, "channel": channel, "user": "U0SOMEONE"});
    let (team, events) = match happening {
        Happening::Uninstall { team_id } => {
            state.revoke_team(team_id);
            (
                team_id.clone(),
                vec![
                    serde_json::json!({"type": "app_uninstalled"}),
                    serde_json::json!({"type": "tokens_revoked",
                        "tokens": {"oauth": [], "bot": [bot]}}),
                ],
            )
        }
        Happening::Archive { channel } => {
            state.set_archived(channel, true);
            (
                state.team_of(channel),
                vec![channel_event("channel_archive", channel)],
            )
        }
        Happening::Unarchive { channel } => {
            state.set_archived(channel, false);
            (
                state.team_of(channel),
                vec![channel_event("channel_unarchive", channel)],
            )
        }
        Happening::Rename { channel, name } => {
            state.rename(channel, name);
            (
                state.team_of(channel),
                vec![serde_json::json!({"type": "channel_rename",
                    "channel": {"id": channel, "name": name, "created": 1_700_000_000}})],
            )
        }
        Happening::Delete { channel } => {
            let team = state.team_of(channel);
            state.remove_channel(channel);
            (team, vec![channel_event("channel_deleted", channel)])
        }
        Happening::RemoveBot { channel } => {
            state.set_member(channel, false);
            (
                state.team_of(channel),
                vec![serde_json::json!({"type": "member_left_channel",
                    "channel": channel, "user": bot, "channel_type": "C"})],
            )
        }
        Happening::Message {
            channel,
            user,
            text,
            thread_ts,
        } => {
            let mut event = serde_json::json!({"type": "message", "channel": channel,
                "user": user, "text": text, "ts": new_ts(), "channel_type": "channel"});
            if let Some(thread) = thread_ts {
                event["thread_ts"] = thread.clone().into();
            }
            (state.team_of(channel), vec![event])
        }
        Happening::Mention {
            channel,
            user,
            text,
        } => (
            state.team_of(channel),
            vec![
                serde_json::json!({"type": "app_mention", "channel": channel, "user": user,
                "text": format!("<@{bot}> {text}"), "ts": new_ts()}),
            ],
        ),
        Happening::React {
            channel,
            ts,
            user,
            reaction,
        } => (
            state.team_of(channel),
            vec![serde_json::json!({"type": "reaction_added", "user": user,
                "reaction": reaction, "item": {"type": "message", "channel": channel, "ts": ts},
                "event_ts": new_ts()})],
        ),
        Happening::Click {
            channel,
            ts,
            user,
            action_id,
            value,
        } => {
            let team = state.team_of(channel);
            let payload = serde_json::json!({
                "type": "block_actions",
                "container": {"type": "message", "message_ts": ts, "channel_id": channel,
                    "is_ephemeral": false},
                "channel": {"id": channel},
                "message": {"type": "message", "ts": ts},
                "actions": [{"action_id": action_id, "block_id": "b0", "type": "button",
                    "value": value, "action_ts": new_ts()}],
            });
            return vec![state.events.deliver_interaction(&team, user, payload).await];
        }
        Happening::Command {
            channel,
            user,
            command,
            text,
        } => {
            let team = state.team_of(channel);
            return vec![
                state
                    .events
                    .deliver_command(&team, channel, user, command, text)
                    .await,
            ];
        }
        Happening::InviteBot { channel } => {
            state.set_member(channel, true);
            (
                state.team_of(channel),
                vec![serde_json::json!({"type": "member_joined_channel",
                    "channel": channel, "user": bot, "channel_type": "C"})],
            )
        }
    };
    let mut deliveries = Vec::new();
    for event in events {
        deliveries.push(state.events.deliver(&team, event).await);
    }
    deliveries
}
