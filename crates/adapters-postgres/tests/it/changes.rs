//! The change feed on a real server: every update and delete of a connector row reaches the
//! sink, from any connection; a terminated feed connection is reported lost, then restored.
//! The event feed: every append to the inbound event log is announced with its tenant.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use connector_adapters_postgres::{PgChangeFeed, PgConnectorRepository, changes};
use connector_domain::{ChannelId, ChannelName, ConnectorId, ConnectorName, TenantId, WorkspaceId};
use connector_ports::roles::*;
use connector_ports::{ChangeSink, ConnectorChanges as _, NewConnector, RepositorySettings};
use test_support::TestDatabase;

/// What the sink was told, in order.
#[derive(Default)]
struct Recorded(Mutex<Vec<String>>);

impl ChangeSink for Recorded {
    fn changed(&self, id: ConnectorId) {
        self.0.lock().unwrap().push(format!("changed {id}"));
    }
    fn lost(&self) {
        self.0.lock().unwrap().push("lost".into());
    }
    fn restored(&self) {
        self.0.lock().unwrap().push("restored".into());
    }
}

impl connector_ports::EventSink for Recorded {
    fn appended(&self, tenant: &str) {
        self.0.lock().unwrap().push(format!("appended {tenant}"));
    }
    fn lost(&self) {
        self.0.lock().unwrap().push("lost".into());
    }
    fn restored(&self) {
        self.0.lock().unwrap().push("restored".into());
    }
}

impl Recorded {
    async fn wait_for(&self, what: &str) {
        for _ in 0..100 {
            if self.0.lock().unwrap().iter().any(|e| e == what) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("never told {what:?}; told {:?}", self.0.lock().unwrap());
    }
    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

#[tokio::test]
async fn every_change_of_a_row_reaches_the_sink_and_a_lost_feed_comes_back() {
    let db = TestDatabase::create().await.unwrap();
    let repo = PgConnectorRepository::connect(db.url(), &RepositorySettings::default())
        .await
        .unwrap();
    let recorded = Arc::new(Recorded::default());
    PgChangeFeed::new(db.url()).watch(recorded.clone());
    recorded.wait_for("restored").await;

    let id = ConnectorId::new_v7();
    let tenant = TenantId::parse("tenant_id", "acme").unwrap();
    repo.insert_creating(&NewConnector {
        id,
        tenant_id: tenant.clone(),
        name: ConnectorName::parse("name", "prod").unwrap(),
        workspace_id: WorkspaceId::new("T0001"),
        default_channel_id: ChannelId::new("C0000ALERT"),
        default_channel_name: ChannelName::new("alerts"),
        request_id: None,
        token_expires_at: None,
        bot: None,
    })
    .await
    .unwrap();
    // An insert is no change anyone cached; activating it is.
    repo.mark_active(id).await.unwrap();
    recorded.wait_for(&format!("changed {id}")).await;
    recorded.clear();
    // A write from outside the adapter, as another replica or an operator would make.
    db.execute(&format!(
        "UPDATE connectors SET auth_status = 'needs_reauthorization' WHERE id = '{id}'"
    ))
    .await
    .unwrap();
    recorded.wait_for(&format!("changed {id}")).await;
    recorded.clear();
    repo.mark_deleting(&tenant, id).await.unwrap();
    recorded.wait_for(&format!("changed {id}")).await;
    recorded.clear();
    repo.remove_deleting(id).await.unwrap();
    recorded.wait_for(&format!("changed {id}")).await;

    // The feed's connection is ended by the server: lost, then listening again.
    recorded.clear();
    db.execute(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = '{}' AND datname = current_database()",
        changes::APPLICATION_NAME
    ))
    .await
    .unwrap();
    recorded.wait_for("lost").await;
    recorded.wait_for("restored").await;
    let events = recorded.0.lock().unwrap().clone();
    let lost = events.iter().position(|e| e == "lost").unwrap();
    let restored = events.iter().rposition(|e| e == "restored").unwrap();
    assert!(lost < restored, "{events:?}");
}

#[tokio::test]
async fn every_append_to_the_event_log_is_announced_with_its_tenant() {
    use connector_ports::{EventLog as _, EventNotices as _};
    let db = TestDatabase::create().await.unwrap();
    let repo = PgConnectorRepository::connect(db.url(), &RepositorySettings::default())
        .await
        .unwrap();
    let recorded = Arc::new(Recorded::default());
    connector_adapters_postgres::PgEventFeed::new(db.url()).watch(recorded.clone());
    recorded.wait_for("restored").await;
    let connector = ConnectorId::new_v7();
    let appended = repo
        .append_events(&[
            test_support::conformance::repository::inbound("acme", connector, "message", "Ev1"),
            test_support::conformance::repository::inbound("globex", connector, "message", "Ev2"),
        ])
        .await
        .unwrap();
    assert_eq!(appended.len(), 2);
    recorded.wait_for("appended acme").await;
    recorded.wait_for("appended globex").await;
    // A redelivery appends nothing, and announces nothing.
    recorded.clear();
    repo.append_events(&[test_support::conformance::repository::inbound(
        "acme", connector, "message", "Ev1",
    )])
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        recorded.0.lock().unwrap().is_empty(),
        "{:?}",
        recorded.0.lock().unwrap()
    );
}
