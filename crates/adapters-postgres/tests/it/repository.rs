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
