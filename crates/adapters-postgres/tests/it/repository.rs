use std::time::Duration;

use connector_adapters_postgres::PgConnectorRepository;
use connector_ports::RepositorySettings;
use test_support::TestDatabase;

async fn repo() -> (TestDatabase, PgConnectorRepository) {
    let db = TestDatabase::create().await.expect("test database");
    let repo = PgConnectorRepository::connect(db.url(), &RepositorySettings::default())
        .await
        .expect("connect");
    (db, repo)
}

test_support::repository_conformance!(repo());

#[tokio::test]
async fn an_unreachable_database_is_unavailable() {
    let settings = RepositorySettings {
        connect_timeout: Duration::from_millis(500),
        ..RepositorySettings::default()
    };
    let err = PgConnectorRepository::connect("postgres://postgres@127.0.0.1:1/nope", &settings)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = TestDatabase::create().await.unwrap();
    let applied = connector_adapters_postgres::run_migrations(db.url())
        .await
        .unwrap();
    assert!(applied.is_empty(), "already applied: {applied:?}");
}

#[tokio::test]
async fn reads_survive_connections_the_server_terminated() {
    use connector_ports::roles::*;
    let (db, repo) = repo().await;
    let tenant = connector_domain::TenantId::parse("t", "acme").unwrap();
    assert!(
        repo.list_active(&tenant, None, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    // The server ends every backend of this database (as a restart or an operator would)
    // between two requests; the pooled connections are dead.
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await
    .unwrap();
    for _ in 0..3 {
        assert!(
            repo.list_active(&tenant, None, 10, None)
                .await
                .unwrap()
                .is_empty()
        );
        let missing = connector_domain::ConnectorId::new_v7();
        assert!(repo.get_active(&tenant, missing).await.unwrap().is_none());
        assert!(repo.find_active(missing).await.unwrap().is_none());
    }
}
