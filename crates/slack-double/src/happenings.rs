//! What happens in a workspace of the double (an uninstall, a channel archived, renamed,
//! deleted, the bot removed or invited): the state changes, then the events Slack would send
//! are delivered, in order.

use std::sync::Arc;

use crate::events::{Delivery, Happening, bot_user};
use crate::state::State;

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
