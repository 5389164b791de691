//! The repository conformance suite against SQLite files, plus SQLite-specific cases.

// Helpers here are test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use connector_adapters_sqlite::{SqliteConnectorRepository, run_migrations};
use connector_ports::RepositorySettings;

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn repo() -> (TempDir, SqliteConnectorRepository) {
    let dir = std::env::temp_dir().join(format!("sc-sqlite-{}", uuid::Uuid::new_v4().simple()));
    let path = dir.join("nested").join("connectors.sqlite3");
    run_migrations(&path).await.unwrap();
    let repo = SqliteConnectorRepository::open(
        &path,
        &RepositorySettings {
            max_connections: 4,
            ..RepositorySettings::default()
        },
    )
    .await
    .unwrap();
    (TempDir(dir), repo)
}

test_support::repository_conformance!(repo());

#[tokio::test]
async fn migrations_are_idempotent_and_data_survives_reopening() {
    use connector_ports::roles::*;
    let (dir, repo) = repo().await;
    let path = dir.0.join("nested").join("connectors.sqlite3");
    let n = test_support::conformance::repository::new("acme", "prod", None);
    repo.insert_creating(&n).await.unwrap();
    repo.mark_active(n.id).await.unwrap();
    drop(repo);
    assert!(run_migrations(&path).await.unwrap().is_empty());
    let reopened = SqliteConnectorRepository::open(
        &path,
        &RepositorySettings {
            max_connections: 2,
            ..RepositorySettings::default()
        },
    )
    .await
    .unwrap();
    assert!(reopened.find_active(n.id).await.unwrap().is_some());
}

#[cfg(unix)]
#[tokio::test]
async fn the_file_and_the_directories_it_needed_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let (dir, repo) = repo().await;
    drop(repo);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.0), 0o700, "a directory it created");
    assert_eq!(mode(&dir.0.join("nested")), 0o700, "a directory it created");
    assert_eq!(
        mode(&dir.0.join("nested").join("connectors.sqlite3")),
        0o600
    );
}
