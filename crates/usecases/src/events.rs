//! What Slack's own events do to connectors (the Events API): an uninstalled app revokes the
//! workspace's connectors of that app and deletes their tokens, revoked tokens those of the bot
//! users named; a renamed default channel is renamed; an archived or deleted default channel,
//! or the bot removed from it, makes it unavailable until it is back.
//!
//! Only connectors whose bot belongs to the app the event was sent for (`api_app_id`) are
//! touched: another app's uninstall, or the same workspace's connectors of another app (a
//! tenant's own Slack app), are not this event's business. Connectors made before their bot
//! was recorded are identified first (their tokens asked of Slack), so none is missed.
//!
//! Each event is acted on once: its `event_id` is recorded first (atomically, across
//! replicas), so Slack's retries of a delivery change nothing; if acting on it fails, the record
//! is dropped again so that Slack's next retry is handled. Every action is idempotent.

use std::sync::Arc;

use connector_ports::{SlackEvent, SlackEventKind, SlackEventStore};

use crate::Ports;
use crate::error::ConnectorError;

/// Connectors of one workspace identified at most per event (Slack's 3-second answer deadline
/// does not apply: events are acted on after they are acknowledged).
const BACKFILL_BATCH: u32 = 100;

/// How an event delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// Acted on: this many connectors changed.
    Handled {
        /// Connectors changed.
        connectors: u64,
    },
    /// The event was handled before (a retry of the delivery): nothing changed.
    Duplicate,
    /// Not an event the connectors act on.
    Ignored,
}

/// Acts on Slack's events.
#[derive(Clone)]
pub struct SlackEvents {
    ports: Ports,
    seen: Arc<dyn SlackEventStore>,
}

impl std::fmt::Debug for SlackEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackEvents").finish_non_exhaustive()
    }
}

impl SlackEvents {
    /// Over the ports, remembering handled events in `seen`.
    pub fn new(ports: Ports, seen: Arc<dyn SlackEventStore>) -> Self {
        Self { ports, seen }
    }

    /// Records `event` as seen: `false` when it was seen before (a retry), which must then
    /// be acknowledged and dropped.
    #[tracing::instrument(name = "usecase events.record", skip_all)]
    pub async fn first_delivery(&self, event: &SlackEvent) -> Result<bool, ConnectorError> {
        Ok(self
            .seen
            .record_event(&event.event_id, self.ports.clock.utc())
            .await?)
    }

    /// Acts on an event [`SlackEvents::first_delivery`] recorded; on failure the record is
    /// dropped so that Slack's retry of the delivery is acted on.
    #[tracing::instrument(name = "usecase events.handle", skip_all)]
    pub async fn handle(&self, event: &SlackEvent) -> Result<EventOutcome, ConnectorError> {
        let result = self.act(event).await;
        if result.is_err()
            && let Err(e) = self.seen.forget_event(&event.event_id).await
        {
            tracing::warn!(event_id = %event.event_id, error = %e,
                "could not forget a failed event; Slack's retry of it will be dropped");
        }
        result
    }

    /// Forgets event IDs older than a day (Slack retries a delivery for about 30 minutes).
    pub async fn purge_expired(&self) -> Result<u64, ConnectorError> {
        Ok(self
            .seen
            .purge_events(self.ports.clock.utc() - chrono::Duration::hours(24))
            .await?)
    }

    /// Records and acts on `event` in one call (for callers that need not acknowledge first).
    pub async fn deliver(&self, event: &SlackEvent) -> Result<EventOutcome, ConnectorError> {
        if !self.first_delivery(event).await? {
            return Ok(EventOutcome::Duplicate);
        }
        self.handle(event).await
    }

    async fn act(&self, event: &SlackEvent) -> Result<EventOutcome, ConnectorError> {
        if let SlackEventKind::Ignored(_) = event.kind {
            return Ok(EventOutcome::Ignored);
        }
        let team = &event.team_id;
        let app = event.api_app_id.as_str();
        // Older connectors of the workspace may not say whose bot they are yet.
        crate::bots::backfill(&self.ports, Some(team), BACKFILL_BATCH).await?;
        let repo = &self.ports.connectors.workspaces;
        let connectors = match &event.kind {
            SlackEventKind::Ignored(_) => return Ok(EventOutcome::Ignored),
            SlackEventKind::AppUninstalled | SlackEventKind::TokensRevoked { .. } => {
                let bot_users = match &event.kind {
                    SlackEventKind::TokensRevoked { bot_user_ids } => Some(bot_user_ids.as_slice()),
                    _ => None,
                };
                let revoked = repo.revoke_workspace(team, app, bot_users).await?;
                // The tokens no longer work: delete them. The rows already refuse to send.
                let mut failed = None;
                for c in &revoked {
                    if let Err(e) = self.ports.secrets.delete(&self.ports.secret_name(c)).await {
                        failed = Some(e);
                    }
                }
                if let Some(e) = failed {
                    return Err(e.into());
                }
                tracing::info!(target: "audit", action = "connector.revoke", workspace_id = %team,
                    app_id = %app, connectors = revoked.len(),
                    "the Slack app's tokens in a workspace are gone");
                revoked.len() as u64
            }
            SlackEventKind::ChannelRenamed { channel, name } => {
                repo.rename_channel(team, app, channel, name).await?
            }
            SlackEventKind::ChannelUnavailable { channel } => {
                repo.set_channel_available(team, app, channel, false)
                    .await?
            }
            SlackEventKind::ChannelAvailable { channel } => {
                repo.set_channel_available(team, app, channel, true).await?
            }
        };
        Ok(EventOutcome::Handled { connectors })
    }
}

#[cfg(test)]
mod tests {
    use connector_domain::{ChannelId, ChannelName, ConnectorState, WorkspaceId};
    use connector_ports::{
        MockConnectors, MockSecretStore, MockSlackApi, MockSlackEventStore, RepositoryError,
        SecretStoreError,
    };

    use super::*;
    use crate::testing::{connector, ports};

    fn event(kind: SlackEventKind) -> SlackEvent {
        SlackEvent {
            event_id: "Ev0001".into(),
            team_id: WorkspaceId::new("T0001"),
            api_app_id: "A0APP".into(),
            kind,
            detail: connector_ports::EventDetail::default(),
        }
    }

    /// A store whose connectors all say whose bot they are.
    fn identified() -> MockConnectors {
        let mut repo = MockConnectors::default();
        repo.workspaces
            .expect_unidentified()
            .returning(|_, _| Ok(Vec::new()));
        repo
    }

    fn seen_once() -> MockSlackEventStore {
        let mut seen = MockSlackEventStore::new();
        let mut first = true;
        seen.expect_record_event().returning(move |_, _| {
            let was = first;
            first = false;
            Ok(was)
        });
        seen
    }

    #[tokio::test]
    async fn tokens_gone_revokes_the_workspace_and_deletes_each_token_once() {
        let (a, b) = (
            connector("acme", "a", ConnectorState::Active),
            connector("globex", "b", ConnectorState::Active),
        );
        let names = [format!("sc/acme/{}", a.id), format!("sc/globex/{}", b.id)];
        let mut repo = identified();
        repo.workspaces
            .expect_revoke_workspace()
            .withf(|w, app, bots| w.as_str() == "T0001" && app == "A0APP" && bots.is_none())
            .times(1)
            .return_once(move |_, _, _| Ok(vec![a, b]));
        let mut secrets = MockSecretStore::new();
        secrets
            .expect_delete()
            .withf(move |n| names.contains(&n.to_string()))
            .times(2)
            .returning(|_| Ok(()));
        let events = SlackEvents::new(
            ports(repo, secrets, MockSlackApi::new()),
            Arc::new(seen_once()),
        );
        let e = event(SlackEventKind::AppUninstalled);
        assert_eq!(
            events.deliver(&e).await.unwrap(),
            EventOutcome::Handled { connectors: 2 }
        );
        // Slack's retry of the same delivery changes nothing (the mocks allow one pass).
        assert_eq!(events.deliver(&e).await.unwrap(), EventOutcome::Duplicate);
    }

    #[tokio::test]
    async fn revoked_tokens_revoke_only_the_bots_named() {
        let mut repo = identified();
        repo.workspaces
            .expect_revoke_workspace()
            .withf(|_, app, bots| app == "A0APP" && bots == &Some(&["U0BOT".to_owned()][..]))
            .times(1)
            .returning(|_, _, _| Ok(Vec::new()));
        let events = SlackEvents::new(
            ports(repo, MockSecretStore::new(), MockSlackApi::new()),
            Arc::new(seen_once()),
        );
        assert_eq!(
            events
                .deliver(&event(SlackEventKind::TokensRevoked {
                    bot_user_ids: vec!["U0BOT".into()]
                }))
                .await
                .unwrap(),
            EventOutcome::Handled { connectors: 0 }
        );
    }

    #[tokio::test]
    async fn connectors_of_unknown_bots_are_identified_before_acting() {
        let old = connector("acme", "old", ConnectorState::Active);
        let old_id = old.id;
        let mut repo = MockConnectors::default();
        let mut seq = mockall::Sequence::new();
        repo.workspaces
            .expect_unidentified()
            .times(1)
            .in_sequence(&mut seq)
            .return_once(move |_, _| Ok(vec![old]));
        repo.workspaces
            .expect_record_bot()
            .withf(move |id, bot| *id == old_id && bot.is_of_app("A0APP"))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(true));
        repo.workspaces
            .expect_revoke_workspace()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _| Ok(Vec::new()));
        let mut secrets = MockSecretStore::new();
        secrets.expect_get().returning(|_| {
            Ok(connector_ports::ConnectorSecret::new(
                connector_domain::BotToken::parse("t", "xoxb-1111-2222-old").unwrap(),
            ))
        });
        let mut slack = MockSlackApi::new();
        slack.expect_auth_test().returning(|_| {
            Ok(connector_ports::AuthIdentity {
                team_id: WorkspaceId::new("T0001"),
                team_name: "Acme".into(),
                user_id: "U0BOT".into(),
                bot_id: Some("B0BOT".into()),
                app_id: None,
            })
        });
        slack
            .expect_bot_app_id()
            .returning(|_, _| Ok("A0APP".into()));
        let events = SlackEvents::new(ports(repo, secrets, slack), Arc::new(seen_once()));
        events
            .deliver(&event(SlackEventKind::AppUninstalled))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_failure_forgets_the_event_so_that_slacks_retry_is_handled() {
        let mut repo = identified();
        repo.workspaces
            .expect_set_channel_available()
            .times(1)
            .returning(|_, _, _, _| Err(RepositoryError::Unavailable("down".into())));
        let mut seen = MockSlackEventStore::new();
        seen.expect_record_event().returning(|_, _| Ok(true));
        seen.expect_forget_event()
            .withf(|id| id == "Ev0001")
            .times(1)
            .returning(|_| Ok(()));
        let events = SlackEvents::new(
            ports(repo, MockSecretStore::new(), MockSlackApi::new()),
            Arc::new(seen),
        );
        let err = events
            .deliver(&event(SlackEventKind::ChannelUnavailable {
                channel: ChannelId::new("C1"),
            }))
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Unavailable { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_token_that_cannot_be_deleted_fails_the_event_after_revoking() {
        let mut repo = identified();
        repo.workspaces
            .expect_revoke_workspace()
            .times(1)
            .return_once(|_, _, _| Ok(vec![connector("acme", "a", ConnectorState::Active)]));
        let mut secrets = MockSecretStore::new();
        secrets
            .expect_delete()
            .returning(|_| Err(SecretStoreError::Unavailable("down".into())));
        let mut seen = MockSlackEventStore::new();
        seen.expect_record_event().returning(|_, _| Ok(true));
        seen.expect_forget_event().times(1).returning(|_| Ok(()));
        let events = SlackEvents::new(ports(repo, secrets, MockSlackApi::new()), Arc::new(seen));
        let err = events
            .deliver(&event(SlackEventKind::AppUninstalled))
            .await
            .unwrap_err();
        // The store's outage, named as such: Slack retries the event, which is forgotten.
        assert!(matches!(err, ConnectorError::Unavailable { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn channel_events_go_to_the_workspaces_connectors() {
        let mut repo = identified();
        repo.workspaces
            .expect_rename_channel()
            .withf(|t, app, c, n| {
                t.as_str() == "T0001"
                    && app == "A0APP"
                    && c.as_str() == "C1"
                    && *n == ChannelName::new("ops")
            })
            .times(1)
            .returning(|_, _, _, _| Ok(2));
        repo.workspaces
            .expect_set_channel_available()
            .withf(|_, app, c, available| app == "A0APP" && c.as_str() == "C1" && *available)
            .times(1)
            .returning(|_, _, _, _| Ok(1));
        let mut seen = MockSlackEventStore::new();
        seen.expect_record_event().returning(|_, _| Ok(true));
        let events = SlackEvents::new(
            ports(repo, MockSecretStore::new(), MockSlackApi::new()),
            Arc::new(seen),
        );
        assert_eq!(
            events
                .deliver(&event(SlackEventKind::ChannelRenamed {
                    channel: ChannelId::new("C1"),
                    name: ChannelName::new("ops"),
                }))
                .await
                .unwrap(),
            EventOutcome::Handled { connectors: 2 }
        );
        assert_eq!(
            events
                .deliver(&event(SlackEventKind::ChannelAvailable {
                    channel: ChannelId::new("C1"),
                }))
                .await
                .unwrap(),
            EventOutcome::Handled { connectors: 1 }
        );
        assert_eq!(
            events
                .deliver(&event(SlackEventKind::Ignored("app_mention".into())))
                .await
                .unwrap(),
            EventOutcome::Ignored
        );
    }
}
