//! Finishes work that a crash or a failure left half done.
//!
//! A row left `creating` (the create died between writing the row and activating it) or
//! `deleting` (the delete died before removing the row) for longer than the grace period is
//! claimed, its secret force-deleted, and the row removed. Claiming is atomic and skips rows
//! another replica holds, so several server replicas may run passes at the same time.

use std::sync::Arc;
use std::time::Duration;

use connector_domain::{ConnectorId, SecretPrefix};

use crate::error::ConnectorError;
use crate::repository::ConnectorRepository;
use crate::secrets::SecretStore;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Connectors whose secret and row are now both gone.
    pub finished: Vec<ConnectorId>,
    /// Connectors that could not be finished this pass, with the reason; a later pass retries
    /// them once their lease expires.
    pub failed: Vec<(ConnectorId, String)>,
}

/// One reconciliation pass over the ports.
#[derive(Clone)]
pub struct Reconciler {
    repo: Arc<dyn ConnectorRepository>,
    secrets: Arc<dyn SecretStore>,
    prefix: SecretPrefix,
    stale_after: Duration,
    batch: u32,
}

impl Reconciler {
    /// A reconciler that finishes rows untouched for `stale_after`, `batch` rows a pass.
    /// `stale_after` must exceed the longest a create or delete request can take.
    pub fn new(
        repo: Arc<dyn ConnectorRepository>,
        secrets: Arc<dyn SecretStore>,
        prefix: SecretPrefix,
        stale_after: Duration,
        batch: u32,
    ) -> Self {
        Self {
            repo,
            secrets,
            prefix,
            stale_after,
            batch,
        }
    }

    /// Runs one pass. Fails only when the rows cannot be claimed at all.
    pub async fn run_once(&self) -> Result<ReconcileReport, ConnectorError> {
        let claimed = self.repo.claim_stale(self.stale_after, self.batch).await?;
        let mut report = ReconcileReport::default();
        for row in claimed {
            let name = self.prefix.secret_name(&row.tenant_id, row.id);
            if let Err(e) = self.secrets.delete(&name).await {
                report.failed.push((row.id, e.to_string()));
                continue;
            }
            match self.repo.remove_deleting(row.id).await {
                Ok(()) => report.finished.push(row.id),
                Err(e) => report.failed.push((row.id, e.to_string())),
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::MockConnectorRepository;
    use crate::secrets::MockSecretStore;
    use crate::service::tests::fixtures::connector;
    use crate::{RepositoryError, SecretStoreError};
    use connector_domain::ConnectorState;
    use mockall::predicate::eq;

    fn reconciler(repo: MockConnectorRepository, secrets: MockSecretStore) -> Reconciler {
        Reconciler::new(
            Arc::new(repo),
            Arc::new(secrets),
            SecretPrefix::parse("p", "sc/").unwrap(),
            Duration::from_secs(120),
            10,
        )
    }

    #[tokio::test]
    async fn deletes_the_secret_before_the_row_of_each_claimed_connector() {
        let a = connector("acme", "a", ConnectorState::Deleting);
        let b = connector("acme", "b", ConnectorState::Deleting);
        let (a_id, b_id) = (a.id, b.id);
        let mut seq = mockall::Sequence::new();
        let mut repo = MockConnectorRepository::new();
        let mut secrets = MockSecretStore::new();
        repo.expect_claim_stale()
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
        repo.expect_remove_deleting()
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
        repo.expect_remove_deleting()
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
        let mut repo = MockConnectorRepository::new();
        let mut secrets = MockSecretStore::new();
        repo.expect_claim_stale()
            .return_once(move |_, _| Ok(vec![a]));
        secrets
            .expect_delete()
            .returning(|_| Err(SecretStoreError::Unavailable("timeout".into())));
        repo.expect_remove_deleting().never();
        let report = reconciler(repo, secrets).run_once().await.unwrap();
        assert!(report.finished.is_empty());
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].0, a_id);
    }

    #[tokio::test]
    async fn a_claim_failure_is_an_error() {
        let mut repo = MockConnectorRepository::new();
        repo.expect_claim_stale()
            .returning(|_, _| Err(RepositoryError::Unavailable("down".into())));
        let err = reconciler(repo, MockSecretStore::new())
            .run_once()
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Unavailable { .. }), "{err:?}");
    }
}
