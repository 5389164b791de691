//! Finishes work that a crash or a failure left half done.
//!
//! A row left `creating` (the create died between writing the row and activating it) or
//! `deleting` (the delete died before removing the row) for longer than the grace period is
//! claimed, its secret force-deleted, and the row removed. Claiming is atomic and skips rows
//! another replica holds, so several server replicas may run passes at the same time.
//!
//! A token replacement recorded in its row but not yet made current in the secret store (the
//! updater stopped between the two, see [`crate::connectors`]) is promoted: promoting is
//! idempotent, so two replicas doing it at once do no harm. A staged version that no row
//! records (the updater stopped between staging it and recording it) is removed, at most every
//! [`STAGED_SWEEP_EVERY`]; and connectors made before their bot was recorded are identified.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use connector_domain::ConnectorId;

use crate::Ports;
use crate::error::ConnectorError;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Connectors whose secret and row are now both gone.
    pub finished: Vec<ConnectorId>,
    /// Connectors whose recorded replacement token is now current in the secret store.
    pub promoted: Vec<ConnectorId>,
    /// Connectors that could not be finished this pass, with the reason; a later pass retries
    /// them once their lease expires.
    pub failed: Vec<(ConnectorId, String)>,
    /// Connectors made before their bot was recorded that now say whose bot they are.
    pub identified: u64,
    /// Connectors a staged token version of which was removed: staged by an update that never
    /// recorded it (a crash between the two, or a lost answer of a write that did not apply).
    pub discarded: Vec<ConnectorId>,
}

/// How often a replica looks for staged token versions nothing will promote: listing them
/// costs secret store calls (Secrets Manager: a page per 100 secrets), and they are rare.
pub const STAGED_SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Which rows a pass takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// Rows untouched for this long are finished. Must exceed the longest a create or delete
    /// request can take.
    pub stale_after: Duration,
    /// Rows a pass at most.
    pub batch: u32,
}

/// One reconciliation pass over the ports.
#[derive(Clone)]
pub struct Reconciler {
    ports: Ports,
    settings: ReconcileSettings,
    /// When this replica last looked for abandoned staged versions.
    last_sweep: Arc<Mutex<Option<DateTime<Utc>>>>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    /// A reconciler over the ports that takes the rows `settings` describe.
    pub fn new(ports: Ports, settings: ReconcileSettings) -> Self {
        Self {
            ports,
            settings,
            last_sweep: Arc::new(Mutex::new(None)),
        }
    }

    /// Runs one pass. Fails only when the rows cannot be claimed at all.
    #[tracing::instrument(name = "usecase reconciler.run_once", skip_all)]
    pub async fn run_once(&self) -> Result<ReconcileReport, ConnectorError> {
        let claimed = self
            .ports
            .connectors
            .reconciliation
            .claim_stale(self.settings.stale_after, self.settings.batch)
            .await?;
        let mut report = ReconcileReport::default();
        for row in claimed {
            let name = self.ports.secret_name(&row);
            if let Err(e) = self.ports.secrets.delete(&name).await {
                report.failed.push((row.id, e.to_string()));
                continue;
            }
            match self
                .ports
                .connectors
                .lifecycle
                .remove_deleting(row.id)
                .await
            {
                Ok(()) => report.finished.push(row.id),
                Err(e) => report.failed.push((row.id, e.to_string())),
            }
        }
        let pending = self
            .ports
            .connectors
            .reconciliation
            .pending_promotions(self.settings.stale_after, self.settings.batch)
            .await?;
        for p in pending {
            let id = p.connector.id;
            let name = self.ports.secret_name(&p.connector);
            if let Err(e) = self.ports.secrets.promote(&name, &p.version).await {
                report.failed.push((id, e.to_string()));
                continue;
            }
            match self
                .ports
                .connectors
                .reconciliation
                .clear_pending_promotion(id, &p.version)
                .await
            {
                Ok(_) => report.promoted.push(id),
                Err(e) => report.failed.push((id, e.to_string())),
            }
        }
        if self.sweep_due()
            && let Err(e) = self.discard_abandoned(&mut report).await
        {
            tracing::warn!(error = %e,
                "could not look for abandoned staged token versions; the next sweep retries");
        }
        // Lazily, a batch a pass: connectors made before bots were recorded.
        match crate::bots::backfill(&self.ports, None, self.settings.batch).await {
            Ok(n) => report.identified = n,
            Err(e) => tracing::warn!(error = %e,
                "could not learn the bots of older connectors this pass; the next pass retries"),
        }
        Ok(report)
    }
}

impl Reconciler {
    /// Whether [`STAGED_SWEEP_EVERY`] has passed since this replica's last sweep (the first
    /// pass sweeps).
    fn sweep_due(&self) -> bool {
        let now = self.ports.clock.utc();
        let mut last = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
        let every = chrono::Duration::from_std(STAGED_SWEEP_EVERY).unwrap_or_default();
        if last.is_some_and(|at| now - at < every) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Removes token versions staged longer than `stale_after` ago that no row records as
    /// pending: no update will ever promote them, and a token is not kept for nothing. A
    /// version a row records is left to the promotion above.
    async fn discard_abandoned(&self, report: &mut ReconcileReport) -> Result<(), ConnectorError> {
        let before = self.ports.clock.utc()
            - chrono::Duration::from_std(self.settings.stale_after).unwrap_or_default();
        let staged = self
            .ports
            .secrets
            .staged_versions(&self.ports.secret_prefix, before, self.settings.batch)
            .await?;
        for s in staged {
            if self
                .ports
                .connectors
                .reconciliation
                .is_pending_promotion(s.connector_id, &s.version)
                .await?
            {
                continue;
            }
            let name = self
                .ports
                .secret_prefix
                .secret_name(&s.tenant_id, s.connector_id);
            match self.ports.secrets.discard(&name, &s.version).await {
                Ok(true) => report.discarded.push(s.connector_id),
                Ok(false) => {}
                Err(e) => report.failed.push((s.connector_id, e.to_string())),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use connector_domain::ConnectorState;
    use connector_ports::{
        MockConnectors, MockSecretStore, MockSlackApi, RepositoryError, SecretStoreError,
    };
    use mockall::predicate::eq;

    use super::*;
    use crate::testing::{connector, ports};

    /// A reconciler over the mocks, with no token replacement left to promote.
    fn reconciler(mut repo: MockConnectors, secrets: MockSecretStore) -> Reconciler {
        repo.reconciliation
            .expect_pending_promotions()
            .returning(|_, _| Ok(Vec::new()));
        settled(repo, secrets)
    }

    fn settled(mut repo: MockConnectors, mut secrets: MockSecretStore) -> Reconciler {
        secrets
            .expect_staged_versions()
            .returning(|_, _, _| Ok(Vec::new()));
        repo.workspaces
            .expect_unidentified()
            .returning(|_, _| Ok(Vec::new()));
        Reconciler::new(
            ports(repo, secrets, MockSlackApi::new()),
            ReconcileSettings {
                stale_after: Duration::from_secs(120),
                batch: 10,
            },
        )
    }

    #[tokio::test]
    async fn staged_versions_no_row_records_are_discarded_once_per_sweep() {
        let (orphan, pending) = (ConnectorId::new_v7(), ConnectorId::new_v7());
        let mut repo = MockConnectors::default();
        repo.reconciliation
            .expect_claim_stale()
            .returning(|_, _| Ok(Vec::new()));
        repo.reconciliation
            .expect_pending_promotions()
            .returning(|_, _| Ok(Vec::new()));
        repo.workspaces
            .expect_unidentified()
            .returning(|_, _| Ok(Vec::new()));
        repo.reconciliation
            .expect_is_pending_promotion()
            .times(2)
            .returning(move |id, _| Ok(id == pending));
        let mut secrets = MockSecretStore::new();
        let tenant = connector_domain::TenantId::parse("t", "acme").unwrap();
        secrets
            .expect_staged_versions()
            .withf(|prefix, _, limit| prefix.as_str() == "sc/" && *limit == 10)
            .times(1)
            .returning(move |_, _, _| {
                Ok([orphan, pending]
                    .into_iter()
                    .map(|id| connector_ports::StagedVersion {
                        tenant_id: tenant.clone(),
                        connector_id: id,
                        version: "v9".into(),
                    })
                    .collect())
            });
        secrets
            .expect_discard()
            .withf(move |name, v| name.to_string() == format!("sc/acme/{orphan}") && v == "v9")
            .times(1)
            .returning(|_, _| Ok(true));
        let reconciler = Reconciler::new(
            ports(repo, secrets, MockSlackApi::new()),
            ReconcileSettings {
                stale_after: Duration::from_secs(120),
                batch: 10,
            },
        );
        let report = reconciler.run_once().await.unwrap();
        assert_eq!(report.discarded, vec![orphan]);
        // The next pass, minutes later: not due again (the mocks allow one sweep).
        assert!(reconciler.run_once().await.unwrap().discarded.is_empty());
    }

    #[tokio::test]
    async fn deletes_the_secret_before_the_row_of_each_claimed_connector() {
        let a = connector("acme", "a", ConnectorState::Deleting);
        let b = connector("acme", "b", ConnectorState::Deleting);
        let (a_id, b_id) = (a.id, b.id);
        let mut seq = mockall::Sequence::new();
        let mut repo = MockConnectors::default();
        let mut secrets = MockSecretStore::new();
        repo.reconciliation
            .expect_claim_stale()
            .with(eq(Duration::from_secs(120)), eq(10))
            .times(1)
            .in_sequence(&mut seq)
            .return_once(move |_, _| Ok(vec![a, b]));
        secrets
            .expect_delete()
            .withf(move |n| n.as_str() == format!("sc/acme/{a_id}"))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        repo.lifecycle
            .expect_remove_deleting()
            .with(eq(a_id))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        secrets
            .expect_delete()
            .withf(move |n| n.as_str() == format!("sc/acme/{b_id}"))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        repo.lifecycle
            .expect_remove_deleting()
            .with(eq(b_id))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        let report = reconciler(repo, secrets).run_once().await.unwrap();
        assert_eq!(report.finished, vec![a_id, b_id]);
        assert!(report.failed.is_empty());
    }

    #[tokio::test]
    async fn keeps_the_row_when_the_secret_cannot_be_deleted() {
        let a = connector("acme", "a", ConnectorState::Deleting);
        let a_id = a.id;
        let mut repo = MockConnectors::default();
        let mut secrets = MockSecretStore::new();
        repo.reconciliation
            .expect_claim_stale()
            .return_once(move |_, _| Ok(vec![a]));
        secrets
            .expect_delete()
            .returning(|_| Err(SecretStoreError::Unavailable("timeout".into())));
        repo.lifecycle.expect_remove_deleting().never();
        let report = reconciler(repo, secrets).run_once().await.unwrap();
        assert!(report.finished.is_empty());
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].0, a_id);
    }

    #[tokio::test]
    async fn a_recorded_replacement_is_promoted_then_cleared_and_a_failed_one_is_retried_later() {
        let a = connector("acme", "a", ConnectorState::Active);
        let b = connector("acme", "b", ConnectorState::Active);
        let (a_id, b_id) = (a.id, b.id);
        let mut repo = MockConnectors::default();
        let mut secrets = MockSecretStore::new();
        repo.reconciliation
            .expect_claim_stale()
            .returning(|_, _| Ok(Vec::new()));
        repo.reconciliation
            .expect_pending_promotions()
            .with(eq(Duration::from_secs(120)), eq(10))
            .return_once(move |_, _| {
                Ok(vec![
                    connector_ports::PendingPromotion {
                        connector: a,
                        version: "v-a".into(),
                    },
                    connector_ports::PendingPromotion {
                        connector: b,
                        version: "v-b".into(),
                    },
                ])
            });
        secrets
            .expect_promote()
            .withf(move |n, v| n.as_str() == format!("sc/acme/{a_id}") && v == "v-a")
            .times(1)
            .returning(|_, _| Ok(true));
        secrets
            .expect_promote()
            .withf(|_, v| v == "v-b")
            .times(1)
            .returning(|_, _| Err(SecretStoreError::Unavailable("down".into())));
        // Only the promoted one is cleared: the other stays recorded for the next pass.
        repo.reconciliation
            .expect_clear_pending_promotion()
            .withf(move |id, v| *id == a_id && v == "v-a")
            .times(1)
            .returning(|_, _| Ok(true));
        let report = settled(repo, secrets).run_once().await.unwrap();
        assert_eq!(report.promoted, vec![a_id]);
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].0, b_id);
    }

    #[tokio::test]
    async fn a_claim_failure_is_an_error() {
        let mut repo = MockConnectors::default();
        repo.reconciliation
            .expect_claim_stale()
            .returning(|_, _| Err(RepositoryError::Unavailable("down".into())));
        let err = reconciler(repo, MockSecretStore::new())
            .run_once()
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Unavailable { .. }), "{err:?}");
    }
}
