//! Test fixtures shared by the use cases' unit tests: rows, ports over mocks, a real sleep.

use std::sync::Arc;

use chrono::Utc;
use connector_domain::{
    AuthStatus, ChannelId, ChannelName, Connector, ConnectorId, ConnectorName, ConnectorState,
    SecretPrefix, TenantId, WorkspaceId,
};
use connector_ports::{MockConnectorRepository, MockSecretStore, MockSlackApi, SlackApi};

use crate::{Ports, Sleep, Spawn};

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
    }
}

/// Ports over mocks, secrets named `sc/{tenant}/{id}`.
pub(crate) fn ports(
    repo: MockConnectorRepository,
    secrets: MockSecretStore,
    slack: MockSlackApi,
) -> Ports {
    ports_with_slack(repo, secrets, Arc::new(slack))
}

/// Like [`ports`], with a Slack port the test keeps a handle on.
pub(crate) fn ports_with_slack(
    repo: MockConnectorRepository,
    secrets: MockSecretStore,
    slack: Arc<dyn SlackApi>,
) -> Ports {
    Ports {
        repo: Arc::new(repo),
        secrets: Arc::new(secrets),
        slack,
        secret_prefix: SecretPrefix::parse("secrets.prefix", "sc/").unwrap(),
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
