//! Test fixtures shared by the use cases' unit tests: rows, ports over mocks, a real sleep.

use std::sync::Arc;

use chrono::Utc;
use connector_domain::{
    AuthStatus, BotIdentity, ChannelId, ChannelName, Connector, ConnectorId, ConnectorName,
    ConnectorState, SecretPrefix, TenantId, WorkspaceId,
};
use connector_ports::{MockConnectors, MockSecretStore, MockSlackApi, SlackApi};

use crate::Ports;
use crate::runtime::{Sleep, Spawn};

/// A connector row of `tenant` named `name` in `state`, default channel `#alerts`.
pub(crate) fn connector(tenant: &str, name: &str, state: ConnectorState) -> Connector {
    Connector {
        id: ConnectorId::new_v7(),
        tenant_id: TenantId::parse("tenant_id", tenant).unwrap(),
        name: ConnectorName::parse("name", name).unwrap(),
        workspace_id: WorkspaceId::new("T0001"),
        default_channel_id: ChannelId::new("C0000ALERT"),
        default_channel_name: ChannelName::new("alerts"),
        state,
        auth_status: AuthStatus::Ok,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        generation: 1,
        default_channel_available: true,
        last_update_request_id: None,
        bot: Some(BotIdentity {
            bot_user_id: "U0BOT".into(),
            app_id: Some("A0APP".into()),
        }),
    }
}

/// Ports over mocks, secrets named `sc/{tenant}/{id}`.
pub(crate) fn ports(repo: MockConnectors, secrets: MockSecretStore, slack: MockSlackApi) -> Ports {
    ports_with_slack(repo, secrets, Arc::new(slack))
}

/// Like [`ports`], with a Slack port the test keeps a handle on.
pub(crate) fn ports_with_slack(
    repo: MockConnectors,
    secrets: MockSecretStore,
    slack: Arc<dyn SlackApi>,
) -> Ports {
    Ports {
        connectors: repo.into_connectors(),
        secrets: Arc::new(secrets),
        slack,
        secret_prefix: SecretPrefix::parse("secrets.prefix", "sc/").unwrap(),
        clock: Arc::new(crate::runtime::SystemClock),
    }
}

/// tokio's sleep, for use cases that wait.
pub(crate) fn tokio_sleep() -> Sleep {
    Arc::new(|d| Box::pin(tokio::time::sleep(d)))
}

/// tokio's spawn, for use cases that detach work.
pub(crate) fn tokio_spawn() -> Spawn {
    Arc::new(|f| {
        tokio::spawn(f);
    })
}

/// Idempotent-send records in memory, with the store's semantics (the real ones are tested
/// against both databases by the conformance suite).
#[derive(Default)]
pub(crate) struct MemorySends {
    pub(crate) records: std::sync::Mutex<
        std::collections::HashMap<(ConnectorId, String), connector_ports::SendRecord>,
    >,
    /// How many of the next finish/release writes fail as if the database were restarting.
    pub(crate) failing_writes: std::sync::atomic::AtomicU32,
    /// Posted messages: (connector, channel, ts) and when.
    pub(crate) posted: std::sync::Mutex<
        std::collections::HashMap<(ConnectorId, String, String), chrono::DateTime<Utc>>,
    >,
}

impl MemorySends {
    fn key(key: &connector_ports::SendKey) -> (ConnectorId, String) {
        (key.connector_id, key.request_id.as_str().to_owned())
    }

    fn blink(&self) -> Result<(), connector_ports::RepositoryError> {
        use std::sync::atomic::Ordering;
        let failing = self
            .failing_writes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        match failing {
            Ok(_) => Err(connector_ports::RepositoryError::Unavailable(
                "the database system is starting up".into(),
            )),
            Err(_) => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl connector_ports::SentMessageStore for MemorySends {
    async fn claim_send(
        &self,
        key: &connector_ports::SendKey,
        fingerprint: &str,
        message_id: Option<connector_domain::MessageId>,
        now: chrono::DateTime<Utc>,
        expired_before: chrono::DateTime<Utc>,
    ) -> Result<Option<connector_ports::SendRecord>, connector_ports::RepositoryError> {
        let mut records = self.records.lock().unwrap();
        match records.get(&Self::key(key)) {
            Some(r) if r.created_at >= expired_before => Ok(Some(r.clone())),
            _ => {
                records.insert(
                    Self::key(key),
                    connector_ports::SendRecord {
                        outcome: connector_ports::SendOutcome::InFlight,
                        fingerprint: fingerprint.to_owned(),
                        created_at: now,
                        updated_at: now,
                        message_id,
                    },
                );
                Ok(None)
            }
        }
    }

    async fn retake_send(
        &self,
        key: &connector_ports::SendKey,
        seen: &connector_ports::SendRecord,
        now: chrono::DateTime<Utc>,
    ) -> Result<bool, connector_ports::RepositoryError> {
        match self.records.lock().unwrap().get_mut(&Self::key(key)) {
            Some(r) if r.outcome == seen.outcome && r.created_at == seen.created_at => {
                r.outcome = connector_ports::SendOutcome::InFlight;
                r.created_at = now;
                r.updated_at = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn finish_send(
        &self,
        key: &connector_ports::SendKey,
        outcome: &connector_ports::SendOutcome,
    ) -> Result<(), connector_ports::RepositoryError> {
        self.blink()?;
        if let Some(r) = self.records.lock().unwrap().get_mut(&Self::key(key)) {
            r.outcome = outcome.clone();
            r.updated_at = Utc::now();
        }
        Ok(())
    }

    async fn release_send(
        &self,
        key: &connector_ports::SendKey,
    ) -> Result<(), connector_ports::RepositoryError> {
        self.blink()?;
        self.records.lock().unwrap().remove(&Self::key(key));
        Ok(())
    }

    async fn find_send(
        &self,
        key: &connector_ports::SendKey,
    ) -> Result<Option<connector_ports::SendRecord>, connector_ports::RepositoryError> {
        Ok(self.records.lock().unwrap().get(&Self::key(key)).cloned())
    }

    async fn purge_sends(
        &self,
        before: chrono::DateTime<Utc>,
    ) -> Result<u64, connector_ports::RepositoryError> {
        let mut records = self.records.lock().unwrap();
        let n = records.len();
        records.retain(|_, r| r.created_at >= before);
        Ok((n - records.len()) as u64)
    }

    async fn record_posted(
        &self,
        posted: &[connector_ports::PostedRecord],
        at: chrono::DateTime<Utc>,
    ) -> Result<(), connector_ports::RepositoryError> {
        let mut all = self.posted.lock().unwrap();
        for p in posted {
            all.entry((p.connector_id, p.channel.to_string(), p.ts.clone()))
                .or_insert(at);
        }
        Ok(())
    }

    async fn was_posted(
        &self,
        connector: ConnectorId,
        channel: &ChannelId,
        ts: &str,
    ) -> Result<bool, connector_ports::RepositoryError> {
        Ok(self.posted.lock().unwrap().contains_key(&(
            connector,
            channel.to_string(),
            ts.to_owned(),
        )))
    }

    async fn forget_posted(
        &self,
        connector: ConnectorId,
        channel: &ChannelId,
        ts: &str,
    ) -> Result<(), connector_ports::RepositoryError> {
        self.posted
            .lock()
            .unwrap()
            .remove(&(connector, channel.to_string(), ts.to_owned()));
        Ok(())
    }

    async fn purge_posted(
        &self,
        before: chrono::DateTime<Utc>,
    ) -> Result<u64, connector_ports::RepositoryError> {
        let mut all = self.posted.lock().unwrap();
        let n = all.len();
        all.retain(|_, at| *at >= before);
        Ok((n - all.len()) as u64)
    }
}
