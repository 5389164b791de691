//! Crash safety on the real stores: each step of create and delete fails (or the process
//! "dies" after it) in turn, and afterwards no secret exists without a row and no row without
//! a secret beyond one reconciliation pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use connector_adapters_aws::{AwsSecretStore, AwsSettings, StaticCredentials};
use connector_adapters_postgres::PgConnectorRepository;
use connector_adapters_slack::{HttpSlackApi, SlackSettings};
use connector_domain::{
    BotToken, ChannelId, ChannelName, Connector, ConnectorId, ConnectorName, RequestId, SecretName,
    SecretPrefix, TenantId, WorkspaceId,
};
use connector_ports::RepositorySettings;
use connector_ports::{
    ConnectorLifecycle, ConnectorReconciliation, ConnectorSecret, ConnectorUpdate, Connectors,
    NewConnector, PendingPromotion, RepositoryError, SecretLabels, SecretStore, SecretStoreError,
};
use connector_usecases::{
    ConnectorError, ConnectorService, CreateConnector, Ports, ReconcileSettings, Reconciler,
    SystemClock,
};
use slack_double::SlackDouble;
use test_support::TestDatabase;

use crate::helpers::{TEAM, TOKEN, TestApp, secret_value};

/// The real repository's lifecycle and reconciliation, with switches that make one step fail.
struct FlakyRepo {
    inner: Arc<PgConnectorRepository>,
    fail_mark_active: AtomicBool,
    fail_remove_deleting: AtomicBool,
    fail_update: AtomicBool,
    fail_clear_pending: AtomicBool,
}

fn acme() -> TenantId {
    TenantId::parse("tenant_id", "acme").unwrap()
}

fn injected() -> RepositoryError {
    RepositoryError::Unavailable("injected failure".into())
}

#[async_trait]
impl ConnectorLifecycle for FlakyRepo {
    async fn insert_creating(&self, new: &NewConnector) -> Result<Connector, RepositoryError> {
        self.inner.insert_creating(new).await
    }

    async fn mark_active(&self, id: ConnectorId) -> Result<Option<Connector>, RepositoryError> {
        if self.fail_mark_active.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.mark_active(id).await
    }

    async fn remove_creating(&self, id: ConnectorId) -> Result<(), RepositoryError> {
        self.inner.remove_creating(id).await
    }

    async fn find_by_request_id(
        &self,
        tenant: &TenantId,
        request_id: &RequestId,
    ) -> Result<Option<Connector>, RepositoryError> {
        self.inner.find_by_request_id(tenant, request_id).await
    }

    async fn update_active(
        &self,
        tenant: &TenantId,
        id: ConnectorId,
        generation: i64,
        update: &ConnectorUpdate,
    ) -> Result<Option<Connector>, RepositoryError> {
        if self.fail_update.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner
            .update_active(tenant, id, generation, update)
            .await
    }

    async fn mark_deleting(
        &self,
        tenant: &TenantId,
        id: ConnectorId,
    ) -> Result<Option<Connector>, RepositoryError> {
        self.inner.mark_deleting(tenant, id).await
    }

    async fn remove_deleting(&self, id: ConnectorId) -> Result<(), RepositoryError> {
        if self.fail_remove_deleting.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.remove_deleting(id).await
    }

    async fn count_connectors(&self, tenant: &TenantId) -> Result<u64, RepositoryError> {
        self.inner.count_connectors(tenant).await
    }
}

#[async_trait]
impl ConnectorReconciliation for FlakyRepo {
    async fn claim_stale(
        &self,
        stale_after: Duration,
        limit: u32,
    ) -> Result<Vec<Connector>, RepositoryError> {
        self.inner.claim_stale(stale_after, limit).await
    }

    async fn pending_promotions(
        &self,
        older_than: Duration,
        limit: u32,
    ) -> Result<Vec<PendingPromotion>, RepositoryError> {
        self.inner.pending_promotions(older_than, limit).await
    }

    async fn clear_pending_promotion(
        &self,
        id: ConnectorId,
        version: &str,
    ) -> Result<bool, RepositoryError> {
        if self.fail_clear_pending.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.clear_pending_promotion(id, version).await
    }

    async fn is_pending_promotion(
        &self,
        id: ConnectorId,
        version: &str,
    ) -> Result<bool, RepositoryError> {
        self.inner.is_pending_promotion(id, version).await
    }
}

/// The real secret store, with switches that make one step fail.
struct FlakySecrets {
    inner: AwsSecretStore,
    fail_put: AtomicBool,
    fail_delete: AtomicBool,
    fail_stage: AtomicBool,
    fail_promote: AtomicBool,
}

#[async_trait]
impl SecretStore for FlakySecrets {
    async fn put(
        &self,
        name: &SecretName,
        secret: &ConnectorSecret,
        labels: &SecretLabels,
    ) -> Result<(), SecretStoreError> {
        if self.fail_put.load(Ordering::SeqCst) {
            return Err(SecretStoreError::Unavailable("injected failure".into()));
        }
        self.inner.put(name, secret, labels).await
    }
    async fn get(&self, name: &SecretName) -> Result<ConnectorSecret, SecretStoreError> {
        self.inner.get(name).await
    }
    async fn delete(&self, name: &SecretName) -> Result<(), SecretStoreError> {
        if self.fail_delete.load(Ordering::SeqCst) {
            return Err(SecretStoreError::Unavailable("injected failure".into()));
        }
        self.inner.delete(name).await
    }
    async fn stage(
        &self,
        name: &SecretName,
        secret: &ConnectorSecret,
    ) -> Result<String, SecretStoreError> {
        if self.fail_stage.load(Ordering::SeqCst) {
            return Err(SecretStoreError::Unavailable("injected failure".into()));
        }
        self.inner.stage(name, secret).await
    }
    async fn promote(&self, name: &SecretName, version: &str) -> Result<bool, SecretStoreError> {
        if self.fail_promote.load(Ordering::SeqCst) {
            return Err(SecretStoreError::Unavailable("injected failure".into()));
        }
        self.inner.promote(name, version).await
    }
    async fn discard(&self, name: &SecretName, version: &str) -> Result<bool, SecretStoreError> {
        self.inner.discard(name, version).await
    }
    async fn staged_versions(
        &self,
        prefix: &SecretPrefix,
        staged_before: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<Vec<connector_ports::StagedVersion>, SecretStoreError> {
        self.inner
            .staged_versions(prefix, staged_before, limit)
            .await
    }
}

struct Rig {
    db: TestDatabase,
    _double: SlackDouble,
    repo: Arc<FlakyRepo>,
    secrets: Arc<FlakySecrets>,
    service: ConnectorService,
    reconciler: Reconciler,
    prefix: SecretPrefix,
}

impl Rig {
    async fn new() -> Self {
        let endpoint = test_support::require_localstack().await.unwrap();
        let db = TestDatabase::create().await.unwrap();
        let double = SlackDouble::start().await.unwrap();
        double.state().add_generated_workspace(
            TEAM,
            10,
            vec![slack_double::Channel::public("C0ALERTS01", "alerts")],
        );
        double.state().add_token(TOKEN, TEAM);
        let repo = Arc::new(FlakyRepo {
            inner: Arc::new(
                PgConnectorRepository::connect(db.url(), &RepositorySettings::default())
                    .await
                    .unwrap(),
            ),
            fail_mark_active: AtomicBool::new(false),
            fail_remove_deleting: AtomicBool::new(false),
            fail_update: AtomicBool::new(false),
            fail_clear_pending: AtomicBool::new(false),
        });
        let secrets = Arc::new(FlakySecrets {
            inner: AwsSecretStore::new(&AwsSettings {
                endpoint_url: Some(endpoint),
                credentials: Some(StaticCredentials {
                    access_key_id: "test".into(),
                    secret_access_key: "test".to_owned().into(),
                }),
                ..AwsSettings::default()
            })
            .await,
            fail_put: AtomicBool::new(false),
            fail_delete: AtomicBool::new(false),
            fail_stage: AtomicBool::new(false),
            fail_promote: AtomicBool::new(false),
        });
        let slack = HttpSlackApi::new(SlackSettings {
            api_base_url: double.api_base_url(),
            ..SlackSettings::default()
        })
        .unwrap();
        let prefix = SecretPrefix::parse(
            "prefix",
            &format!("crash-{}/", uuid::Uuid::new_v4().simple()),
        )
        .unwrap();
        let service = ConnectorService::new(Ports {
            connectors: Connectors {
                lifecycle: repo.clone(),
                reconciliation: repo.clone(),
                ..Connectors::new(repo.inner.clone())
            },
            secrets: secrets.clone(),
            slack: Arc::new(slack),
            secret_prefix: prefix.clone(),
            clock: Arc::new(SystemClock),
        });
        let reconciler = Reconciler::new(
            service.ports().clone(),
            ReconcileSettings {
                stale_after: Duration::from_secs(60),
                batch: 100,
            },
        );
        Self {
            db,
            _double: double,
            repo,
            secrets,
            service,
            reconciler,
            prefix,
        }
    }

    fn cmd(&self, name: &str) -> CreateConnector {
        CreateConnector::parse("acme", name, TOKEN, "alerts", "").unwrap()
    }

    fn secret_name(&self, id: ConnectorId) -> String {
        self.prefix
            .secret_name(&TenantId::parse("t", "acme").unwrap(), id)
            .to_string()
    }

    /// Pretends every row was last touched long ago, as after a crash.
    async fn age_rows(&self) {
        self.db
            .execute("UPDATE connectors SET updated_at = now() - interval '1 hour'")
            .await
            .unwrap();
    }

    /// Rows in any state.
    async fn row_count(&self) -> usize {
        self.all_ids().await.len()
    }

    /// Names of the secrets under this rig's prefix, straight from Secrets Manager.
    async fn secrets_left(&self) -> Vec<String> {
        use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
        let out = crate::helpers::secrets_client()
            .await
            .list_secrets()
            .filters(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .values(self.prefix.as_str())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.secret_list()
            .iter()
            .filter_map(|s| s.name().map(str::to_owned))
            .filter(|n| n.starts_with(self.prefix.as_str()))
            .collect()
    }

    async fn all_ids(&self) -> Vec<uuid::Uuid> {
        use diesel::QueryableByName;
        use diesel_async::{AsyncConnection as _, RunQueryDsl as _};
        #[derive(QueryableByName)]
        struct IdRow {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            id: uuid::Uuid,
        }
        let mut conn = diesel_async::AsyncPgConnection::establish(self.db.url())
            .await
            .unwrap();
        let rows: Vec<IdRow> = diesel::sql_query("SELECT id FROM connectors")
            .load(&mut conn)
            .await
            .unwrap();
        rows.into_iter().map(|r| r.id).collect()
    }

    /// A connector as the first steps of a create write it, then "crash".
    fn new_connector(&self, name: &str) -> NewConnector {
        NewConnector {
            id: ConnectorId::new_v7(),
            tenant_id: TenantId::parse("t", "acme").unwrap(),
            name: ConnectorName::parse("n", name).unwrap(),
            workspace_id: WorkspaceId::new(TEAM),
            default_channel_id: ChannelId::new("C0ALERTS01"),
            default_channel_name: ChannelName::new("alerts"),
            request_id: None,
            token_expires_at: None,
            bot: None,
        }
    }

    async fn put_secret(&self, new: &NewConnector) {
        self.secrets
            .inner
            .put(
                &self.prefix.secret_name(&new.tenant_id, new.id),
                &ConnectorSecret::new(BotToken::parse("t", TOKEN).unwrap()),
                &SecretLabels {
                    tenant_id: new.tenant_id.clone(),
                    connector_id: new.id,
                },
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_failed_secret_write_leaves_nothing() {
    let rig = Rig::new().await;
    rig.secrets.fail_put.store(true, Ordering::SeqCst);
    let err = rig.service.create(rig.cmd("prod")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable { .. }), "{err:?}");
    assert_eq!(rig.row_count().await, 0);
    assert_eq!(rig.secrets_left().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_failed_activation_is_left_to_the_reconciler_which_removes_the_secret_and_the_row() {
    let rig = Rig::new().await;
    rig.repo.fail_mark_active.store(true, Ordering::SeqCst);
    let err = rig.service.create(rig.cmd("prod")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable { .. }), "{err:?}");
    // The activation may have committed before its answer was lost: nothing is undone
    // blindly. The row stays `creating` with its secret, invisible to clients.
    let ids = rig.all_ids().await;
    assert_eq!(ids.len(), 1);
    let id = ConnectorId::from_uuid(ids[0]);
    assert_eq!(rig.secrets_left().await, vec![rig.secret_name(id)]);
    rig.age_rows().await;
    let report = rig.reconciler.run_once().await.unwrap();
    assert_eq!(report.finished, vec![id]);
    assert_eq!(rig.row_count().await, 0);
    assert_eq!(rig.secrets_left().await, Vec::<String>::new());
    // The name is free for a create that succeeds.
    rig.repo.fail_mark_active.store(false, Ordering::SeqCst);
    let c = rig.service.create(rig.cmd("prod")).await.unwrap();
    assert_eq!(rig.secrets_left().await, vec![rig.secret_name(c.id)]);
}

#[tokio::test]
async fn when_the_undo_also_fails_the_reconciler_finishes_it() {
    let rig = Rig::new().await;
    rig.repo.fail_mark_active.store(true, Ordering::SeqCst);
    rig.secrets.fail_delete.store(true, Ordering::SeqCst);
    rig.service.create(rig.cmd("prod")).await.unwrap_err();
    let ids = rig.all_ids().await;
    assert_eq!(ids.len(), 1, "the row stays so the secret is not orphaned");
    let id = ConnectorId::from_uuid(ids[0]);
    assert!(secret_value(&rig.secret_name(id)).await.is_some());

    rig.secrets.fail_delete.store(false, Ordering::SeqCst);
    rig.age_rows().await;
    let report = rig.reconciler.run_once().await.unwrap();
    assert_eq!(report.finished, vec![id]);
    assert_eq!(rig.row_count().await, 0);
    assert_eq!(rig.secrets_left().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_crash_after_the_row_is_undone_by_the_reconciler() {
    let rig = Rig::new().await;
    let new = rig.new_connector("prod");
    rig.repo.insert_creating(&new).await.unwrap();
    // Not stale yet: a create may still be running.
    assert!(rig.reconciler.run_once().await.unwrap().finished.is_empty());
    rig.age_rows().await;
    let report = rig.reconciler.run_once().await.unwrap();
    assert_eq!(report.finished, vec![new.id]);
    assert_eq!(rig.row_count().await, 0);
}

#[tokio::test]
async fn a_crash_after_the_secret_is_undone_by_the_reconciler() {
    let rig = Rig::new().await;
    let new = rig.new_connector("prod");
    rig.repo.insert_creating(&new).await.unwrap();
    rig.put_secret(&new).await;
    rig.age_rows().await;
    let report = rig.reconciler.run_once().await.unwrap();
    assert_eq!(report.finished, vec![new.id]);
    assert_eq!(rig.row_count().await, 0);
    assert_eq!(secret_value(&rig.secret_name(new.id)).await, None);
    // The create that "crashed" cannot resurrect it.
    assert!(rig.repo.mark_active(new.id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_delete_that_cannot_remove_the_secret_can_be_retried() {
    let rig = Rig::new().await;
    let c = rig.service.create(rig.cmd("prod")).await.unwrap();
    rig.secrets.fail_delete.store(true, Ordering::SeqCst);
    let err = rig.service.delete(&acme(), c.id).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable { .. }), "{err:?}");
    // No longer visible, but not gone: the secret is still there, so is the row.
    assert!(matches!(
        rig.service.get(&acme(), c.id).await,
        Err(ConnectorError::NotFound { .. })
    ));
    assert!(secret_value(&rig.secret_name(c.id)).await.is_some());
    assert_eq!(rig.row_count().await, 1);

    rig.secrets.fail_delete.store(false, Ordering::SeqCst);
    rig.service.delete(&acme(), c.id).await.unwrap();
    assert_eq!(rig.row_count().await, 0);
    assert_eq!(secret_value(&rig.secret_name(c.id)).await, None);
}

#[tokio::test]
async fn a_crash_mid_delete_is_finished_by_the_reconciler() {
    let rig = Rig::new().await;
    // Crash right after the row was marked.
    let a = rig.service.create(rig.cmd("a")).await.unwrap();
    rig.repo.mark_deleting(&a.tenant_id, a.id).await.unwrap();
    // Crash after the secret was deleted, before the row was removed.
    let b = rig.service.create(rig.cmd("b")).await.unwrap();
    rig.repo.fail_remove_deleting.store(true, Ordering::SeqCst);
    rig.service.delete(&acme(), b.id).await.unwrap_err();
    rig.repo.fail_remove_deleting.store(false, Ordering::SeqCst);
    assert_eq!(secret_value(&rig.secret_name(b.id)).await, None);

    rig.age_rows().await;
    let mut finished = rig.reconciler.run_once().await.unwrap().finished;
    finished.sort();
    let mut want = vec![a.id, b.id];
    want.sort();
    assert_eq!(finished, want);
    assert_eq!(rig.row_count().await, 0);
    assert_eq!(secret_value(&rig.secret_name(a.id)).await, None);
}

#[tokio::test]
async fn replicas_reconciling_at_once_finish_each_row_once() {
    let rig = Rig::new().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let new = rig.new_connector(&format!("c{i}"));
        rig.repo.insert_creating(&new).await.unwrap();
        rig.put_secret(&new).await;
        ids.push(new.id);
    }
    rig.age_rows().await;
    let replicas: Vec<_> = (0..3)
        .map(|_| {
            let r = rig.reconciler.clone();
            tokio::spawn(async move { r.run_once().await.unwrap() })
        })
        .collect();
    let mut finished = Vec::new();
    for r in replicas {
        let report = r.await.unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        finished.extend(report.finished);
    }
    finished.sort();
    ids.sort();
    assert_eq!(finished, ids, "each row finished by exactly one replica");
    assert_eq!(rig.row_count().await, 0);
    assert_eq!(rig.secrets_left().await, Vec::<String>::new());
}

#[tokio::test]
async fn the_server_runs_the_reconciler_in_the_background() {
    let app = TestApp::spawn_with(&[
        ("CONNECTOR__RECONCILER__INTERVAL_SECS", "1"),
        ("CONNECTOR__RECONCILER__STALE_AFTER_SECS", "1"),
    ])
    .await;
    let repo = PgConnectorRepository::connect(app.db.url(), &RepositorySettings::default())
        .await
        .unwrap();
    let new = NewConnector {
        id: ConnectorId::new_v7(),
        tenant_id: TenantId::parse("t", "acme").unwrap(),
        name: ConnectorName::parse("n", "orphan").unwrap(),
        workspace_id: WorkspaceId::new(TEAM),
        default_channel_id: ChannelId::new("C0ALERTS01"),
        default_channel_name: ChannelName::new("alerts"),
        request_id: None,
        token_expires_at: None,
        bot: None,
    };
    repo.insert_creating(&new).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while app.db.row_state(new.id.as_uuid()).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the background reconciler did not remove the orphaned row"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
}

/// The token the connector's secret holds now, straight from the secret store.
async fn current_token(rig: &Rig, id: ConnectorId) -> String {
    let name = rig
        .prefix
        .secret_name(&TenantId::parse("t", "acme").unwrap(), id);
    rig.secrets
        .inner
        .get(&name)
        .await
        .unwrap()
        .bot_token
        .expose()
        .to_owned()
}

#[tokio::test]
async fn an_interrupted_token_replacement_always_leaves_a_working_token() {
    const NEW: &str = "xoxb-1000-2000-replacement";
    let rig = Rig::new().await;
    rig._double.state().add_token(NEW, TEAM);
    let replace = |id: ConnectorId| {
        let id = id.to_string();
        let mask = vec!["slack_bot_token".to_owned()];
        connector_usecases::UpdateConnector::parse(connector_usecases::UpdateFields {
            tenant_id: "acme",
            id: &id,
            update_mask: &mask,
            slack_bot_token: NEW,
            ..Default::default()
        })
        .unwrap()
    };
    // Each step fails in turn; the step's switch, and whether the row committed by then.
    type Switch = fn(&Rig) -> &AtomicBool;
    let steps: [(&str, Switch, bool); 4] = [
        ("stage", |r| &r.secrets.fail_stage, false),
        ("update", |r| &r.repo.fail_update, false),
        ("promote", |r| &r.secrets.fail_promote, true),
        ("clear", |r| &r.repo.fail_clear_pending, true),
    ];
    let mut orphaned = None;
    for (step, switch, committed) in steps {
        let c = rig
            .service
            .create(rig.cmd(&format!("before-{step}")))
            .await
            .unwrap();
        if step == "update" {
            orphaned = Some(c.id);
        }
        switch(&rig).store(true, Ordering::SeqCst);
        let answer = rig.service.update(replace(c.id)).await;
        switch(&rig).store(false, Ordering::SeqCst);
        assert_eq!(answer.is_ok(), step == "clear", "{step}: {answer:?}");

        // Right after the failure, the store holds a token of the workspace: the old one
        // unless the promotion itself ran.
        let now = current_token(&rig, c.id).await;
        let expected_now = if step == "clear" { NEW } else { TOKEN };
        assert_eq!(now, expected_now, "{step}");
        let row = rig.service.get(&acme(), c.id).await.unwrap();
        assert_eq!(row.generation, if committed { 2 } else { 1 }, "{step}");

        // One reconciler pass later the store holds what the row committed.
        rig.age_rows().await;
        let report = rig.reconciler.run_once().await.unwrap();
        assert!(report.failed.is_empty(), "{step}: {report:?}");
        let settled = current_token(&rig, c.id).await;
        assert_eq!(settled, if committed { NEW } else { TOKEN }, "{step}");
        if committed && step == "promote" {
            assert_eq!(report.promoted, vec![c.id], "{step}");
        }
    }
    // Nothing is left for a later pass.
    rig.age_rows().await;
    let report = rig.reconciler.run_once().await.unwrap();
    assert!(
        report.promoted.is_empty() && report.failed.is_empty(),
        "{report:?}"
    );
    // The update that failed before its row was written left its staged token in Secrets
    // Manager, which nothing will promote: a sweep (here with no grace period) removes it, and
    // only it.
    let sweeper = Reconciler::new(
        rig.service.ports().clone(),
        ReconcileSettings {
            stale_after: Duration::ZERO,
            batch: 100,
        },
    );
    let report = sweeper.run_once().await.unwrap();
    assert_eq!(report.discarded, vec![orphaned.unwrap()], "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(current_token(&rig, orphaned.unwrap()).await, TOKEN);
    let again = Reconciler::new(
        rig.service.ports().clone(),
        ReconcileSettings {
            stale_after: Duration::ZERO,
            batch: 100,
        },
    )
    .run_once()
    .await
    .unwrap();
    assert!(again.discarded.is_empty(), "{again:?}");
}
