//! Whether this replica can serve: its database and its secret store answer. Checked in the
//! background (never per probe), so a probe storm costs nothing and a slow dependency does
//! not make probes time out.

use connector_domain::{ConnectorId, SecretPrefix, TenantId};
use connector_ports::SecretStoreError;

use crate::Ports;

/// What a check found; `None` fields answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Why the database did not answer, if it did not.
    pub database: Option<String>,
    /// Why the secret store did not answer, if it did not.
    pub secret_store: Option<String>,
}

impl Readiness {
    /// Whether both answered.
    pub fn is_ready(&self) -> bool {
        self.database.is_none() && self.secret_store.is_none()
    }

    /// The dependencies that did not answer, for a probe's body (no details).
    pub fn unavailable(&self) -> Vec<&'static str> {
        let mut down = Vec::new();
        if self.database.is_some() {
            down.push("database");
        }
        if self.secret_store.is_some() {
            down.push("secret store");
        }
        down
    }
}

/// Checks the dependencies with the cheapest calls each has: a primary-key lookup of an ID no
/// connector has, and a read of a secret name no connector uses (not found means the store
/// answered).
#[derive(Clone, Debug)]
pub struct ReadinessCheck {
    ports: Ports,
}

impl ReadinessCheck {
    /// A check over `ports`.
    pub fn new(ports: Ports) -> Self {
        Self { ports }
    }

    /// Asks both dependencies, at once.
    pub async fn check(&self) -> Readiness {
        let probe_id = ConnectorId::nil();
        let database = async {
            self.ports
                .connectors
                .queries
                .find_active(probe_id)
                .await
                .err()
                .map(|e| e.to_string())
        };
        let secret_store = async {
            let name = probe_name(&self.ports.secret_prefix);
            match self.ports.secrets.get(&name).await {
                Ok(_) | Err(SecretStoreError::NotFound) => None,
                Err(e) => Some(e.to_string()),
            }
        };
        let (database, secret_store) = futures::future::join(database, secret_store).await;
        Readiness {
            database,
            secret_store,
        }
    }
}

fn probe_name(prefix: &SecretPrefix) -> connector_domain::SecretName {
    // The nil connector ID is never a connector's, so no secret has this name.
    let tenant = TenantId::parse("tenant_id", "readiness-probe")
        .unwrap_or_else(|_| unreachable!("a valid tenant ID literal"));
    prefix.secret_name(&tenant, ConnectorId::nil())
}

#[cfg(test)]
mod tests {
    use connector_ports::{MockConnectors, MockSecretStore, MockSlackApi, RepositoryError};

    use super::*;
    use crate::testing::ports;

    #[tokio::test]
    async fn ready_when_both_answer_even_with_nothing_found() {
        let mut repo = MockConnectors::default();
        repo.queries.expect_find_active().returning(|_| Ok(None));
        let mut secrets = MockSecretStore::new();
        secrets
            .expect_get()
            .returning(|_| Err(SecretStoreError::NotFound));
        let r = ReadinessCheck::new(ports(repo, secrets, MockSlackApi::new()))
            .check()
            .await;
        assert!(r.is_ready(), "{r:?}");
    }

    #[tokio::test]
    async fn each_dependency_that_does_not_answer_is_named() {
        let mut repo = MockConnectors::default();
        repo.queries.expect_find_active().returning(|_| {
            Err(RepositoryError::Unavailable(
                "terminating connection".into(),
            ))
        });
        let mut secrets = MockSecretStore::new();
        secrets
            .expect_get()
            .returning(|_| Err(SecretStoreError::Unavailable("connection refused".into())));
        let r = ReadinessCheck::new(ports(repo, secrets, MockSlackApi::new()))
            .check()
            .await;
        assert!(!r.is_ready());
        assert_eq!(r.unavailable(), vec!["database", "secret store"]);
        assert!(r.database.unwrap().contains("terminating connection"));
    }
}
