//! What Slack's own events do to connectors (the Events API): an uninstalled app or revoked
//! tokens revoke every connector of the workspace and delete their tokens; a renamed default
//! channel is renamed; an archived or deleted default channel, or the bot removed from it,
//! makes it unavailable until it is back.
//!
//! Each event is acted on once: its `event_id` is recorded first (atomically, across
//! replicas), so Slack's retries of a delivery change nothing; if acting on it fails, the record
//! is dropped again so that Slack's next retry is handled. Every action is idempotent.

use std::sync::Arc;

use connector_ports::{SlackEvent, SlackEventKind, SlackEventStore};

use crate::Ports;
use crate::error::ConnectorError;

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
        let team = &event.team_id;
        let repo = &self.ports.connectors.workspaces;
        let connectors = match &event.kind {
            SlackEventKind::Ignored(_) => return Ok(EventOutcome::Ignored),
            SlackEventKind::TokensGone => {
                let revoked = repo.revoke_workspace(team).await?;
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
                    connectors = revoked.len(), "the Slack app's tokens in a workspace are gone");
                revoked.len() as u64
            }
            SlackEventKind::ChannelRenamed { channel, name } => {
                repo.rename_channel(team, channel, name).await?
            }
            SlackEventKind::ChannelUnavailable { channel } => {
                repo.set_channel_available(team, channel, false).await?
            }
            SlackEventKind::ChannelAvailable { channel } => {
                repo.set_channel_available(team, channel, true).await?
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
    use mockall::predicate::eq;

    use super::*;
    use crate::testing::{connector, ports};

    fn event(kind: SlackEventKind) -> SlackEvent {
        SlackEvent {
            event_id: "Ev0001".into(),
            team_id: WorkspaceId::new("T0001"),
            kind,
        }
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
        let mut repo = MockConnectors::default();
        repo.workspaces
            .expect_revoke_workspace()
            .with(eq(WorkspaceId::new("T0001")))
            .times(1)
            .return_once(move |_| Ok(vec![a, b]));
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
        let e = event(SlackEventKind::TokensGone);
        assert_eq!(
            events.deliver(&e).await.unwrap(),
            EventOutcome::Handled { connectors: 2 }
        );
        // Slack's retry of the same delivery changes nothing (the mocks allow one pass).
        assert_eq!(events.deliver(&e).await.unwrap(), EventOutcome::Duplicate);
    }

    #[tokio::test]
    async fn a_failure_forgets_the_event_so_that_slacks_retry_is_handled() {
        let mut repo = MockConnectors::default();
        repo.workspaces
            .expect_set_channel_available()
            .times(1)
            .returning(|_, _, _| Err(RepositoryError::Unavailable("down".into())));
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
        let mut repo = MockConnectors::default();
        repo.workspaces
            .expect_revoke_workspace()
            .times(1)
            .return_once(|_| Ok(vec![connector("acme", "a", ConnectorState::Active)]));
        let mut secrets = MockSecretStore::new();
        secrets
            .expect_delete()
            .returning(|_| Err(SecretStoreError::Unavailable("down".into())));
        let mut seen = MockSlackEventStore::new();
        seen.expect_record_event().returning(|_, _| Ok(true));
        seen.expect_forget_event().times(1).returning(|_| Ok(()));
        let events = SlackEvents::new(ports(repo, secrets, MockSlackApi::new()), Arc::new(seen));
        let err = events
            .deliver(&event(SlackEventKind::TokensGone))
            .await
            .unwrap_err();
        // The store's outage, named as such: Slack retries the event, which is forgotten.
        assert!(matches!(err, ConnectorError::Unavailable { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn channel_events_go_to_the_workspaces_connectors() {
        let mut repo = MockConnectors::default();
        repo.workspaces
            .expect_rename_channel()
            .withf(|t, c, n| {
                t.as_str() == "T0001" && c.as_str() == "C1" && *n == ChannelName::new("ops")
            })
            .times(1)
            .returning(|_, _, _| Ok(2));
        repo.workspaces
            .expect_set_channel_available()
            .withf(|_, c, available| c.as_str() == "C1" && *available)
            .times(1)
            .returning(|_, _, _| Ok(1));
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
