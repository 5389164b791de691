//! The repository on a PostgreSQL server of its own, in a container: the whole conformance
//! suite, and the faults only a container allows (the server frozen mid-traffic, the network
//! to it cut).

use std::time::{Duration, Instant};

use connector_adapters_postgres::PgConnectorRepository;
use connector_ports::roles::*;
use connector_ports::{RepositoryError, RepositorySettings};
use test_support::TestDatabase;
use test_support::containers::PgContainer;

async fn repo_on(
    admin_url: &str,
    settings: RepositorySettings,
) -> (TestDatabase, PgConnectorRepository) {
    let db = TestDatabase::create_on(admin_url).await.unwrap();
    let repo = PgConnectorRepository::connect(db.url(), &settings)
        .await
        .unwrap();
    (db, repo)
}

fn impatient() -> RepositorySettings {
    RepositorySettings {
        connect_timeout: Duration::from_secs(1),
        query_timeout: Duration::from_secs(1),
        ..RepositorySettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_on_a_server_of_its_own() {
    let pg = PgContainer::start().await.unwrap();
    test_support::repository_conformance_in_sequence!(repo_on(
        pg.admin_url(),
        RepositorySettings::default()
    ));
}

/// Retries `read` until it succeeds, for at most `within`.
async fn recovers<F, Fut>(within: Duration, mut read: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, RepositoryError>>,
{
    let started = Instant::now();
    loop {
        match read().await {
            Ok(true) => return,
            other if started.elapsed() > within => {
                panic!("not recovered within {within:?}: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_is_unavailable_and_its_return_needs_no_restart() {
    let pg = PgContainer::start().await.unwrap();
    let (_db, repo) = repo_on(pg.admin_url(), impatient()).await;
    let n = test_support::conformance::repository::new("acme", "prod", None);
    repo.insert_creating(&n).await.unwrap();
    repo.mark_active(n.id).await.unwrap();

    pg.pause().await.unwrap();
    let err = repo.find_active(n.id).await.unwrap_err();
    assert!(matches!(err, RepositoryError::Unavailable(_)), "{err:?}");
    let err = repo
        .insert_creating(&test_support::conformance::repository::new(
            "acme", "other", None,
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, RepositoryError::Unavailable(_)), "{err:?}");

    pg.unpause().await.unwrap();
    recovers(Duration::from_secs(15), || async {
        Ok(repo.find_active(n.id).await?.is_some())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_cut_is_unavailable_and_the_link_coming_back_needs_no_restart() {
    let pg = PgContainer::start().await.unwrap();
    let (_db, repo) = repo_on(pg.admin_url(), impatient()).await;
    let n = test_support::conformance::repository::new("acme", "prod", None);
    repo.insert_creating(&n).await.unwrap();

    test_support::containers::disconnect(pg.id()).await.unwrap();
    let err = repo.mark_active(n.id).await.unwrap_err();
    assert!(matches!(err, RepositoryError::Unavailable(_)), "{err:?}");

    test_support::containers::reconnect(pg.id()).await.unwrap();
    recovers(Duration::from_secs(20), || async {
        Ok(repo.mark_active(n.id).await?.is_some())
    })
    .await;
    assert!(repo.find_active(n.id).await.unwrap().is_some());
}
