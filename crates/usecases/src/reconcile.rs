//! Finishes work that a crash or a failure left half done.
//!
//! A row left `creating` (the create died between writing the row and activating it) or
//! `deleting` (the delete died before removing the row) for longer than the grace period is
//! claimed, its secret force-deleted, and the row removed. Claiming is atomic and skips rows
//! another replica holds, so several server replicas may run passes at the same time.
//!
//! A token replacement recorded in its row but not yet made current in the secret store (the
//! updater stopped between the two, see [`crate::connectors`]) is promoted: promoting is
//! idempotent, so two replicas doing it at once do no harm.

use std::time::Duration;

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
}

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
        Self { ports, settings }
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
        // Lazily, a batch a pass: connectors made before bots were recorded.
        match crate::bots::backfill(&self.ports, None, self.settings.batch).await {
            Ok(n) => report.identified = n,
            Err(e) => tracing::warn!(error = %e,
                "could not learn the bots of older connectors this pass; the next pass retries"),
        }
        Ok(report)
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

    fn settled(mut repo: MockConnectors, secrets: MockSecretStore) -> Reconciler {
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
