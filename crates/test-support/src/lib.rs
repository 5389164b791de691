//! Test-only helpers shared by the integration and end-to-end tests.
//!
//! - [`TestDatabase`]: a fresh, migrated PostgreSQL database per test, dropped afterwards.
//! - [`localstack_endpoint`]: where the Secrets Manager emulator answers.
//! - [`conformance`]: one suite per port, run against every implementation.
//!
//! Services come from the environment that `scripts/test.sh` sets up (`DATABASE_ADMIN_URL`,
//! `AWS_ENDPOINT_URL`), defaulting to the usual local ports. When a service does not answer,
//! the helpers fail the test with a message saying what to start: never a silent skip.
//!
//! # Must never
//! Be a normal (non-dev) dependency of a shipped crate.

pub mod conformance;

use anyhow::{Context as _, bail};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, SimpleAsyncConnection as _};

/// The admin URL of the PostgreSQL server tests create their databases on.
pub fn database_admin_url() -> String {
    std::env::var("DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Secrets Manager endpoint (LocalStack) tests use.
pub fn localstack_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".to_owned())
}

const HOW_TO_START: &str = "run the tests through `scripts/test.sh`, which starts PostgreSQL \
     and LocalStack when they are missing, or set DATABASE_ADMIN_URL / AWS_ENDPOINT_URL to \
     services that answer";

/// Fails with a clear message unless LocalStack's health endpoint answers.
pub async fn require_localstack() -> anyhow::Result<String> {
    let endpoint = localstack_endpoint();
    let hostport = endpoint
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    match tokio::time::timeout(
        std::time::Duration::from_secs(3),
        tokio::net::TcpStream::connect(&hostport),
    )
    .await
    {
        Ok(Ok(_)) => Ok(endpoint),
        _ => bail!("Secrets Manager emulator not reachable at {endpoint}: {HOW_TO_START}"),
    }
}

/// A fresh PostgreSQL database with every migration applied, dropped when this value is.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates and migrates a database with a unique name.
    pub async fn create() -> anyhow::Result<Self> {
        let admin_url = database_admin_url();
        let mut admin = AsyncPgConnection::establish(&admin_url)
            .await
            .with_context(|| format!("PostgreSQL not reachable at {admin_url}: {HOW_TO_START}"))?;
        let name = format!("sc_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("creating test database {name}"))?;
        let url = replace_database(&admin_url, &name)?;
        connector_adapters_postgres::run_migrations(&url)
            .await
            .context("migrating the test database")?;
        Ok(Self {
            name,
            url,
            admin_url,
        })
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The lifecycle state of connector `id`'s row, read with plain SQL; `None` when there is
    /// no row.
    pub async fn row_state(&self, id: uuid::Uuid) -> anyhow::Result<Option<String>> {
        use diesel::{OptionalExtension as _, QueryableByName};
        use diesel_async::RunQueryDsl as _;
        #[derive(QueryableByName)]
        struct StateRow {
            #[diesel(sql_type = diesel::sql_types::Text)]
            state: String,
        }
        let mut conn = AsyncPgConnection::establish(&self.url).await?;
        let row: Option<StateRow> = diesel::sql_query("SELECT state FROM connectors WHERE id = $1")
            .bind::<diesel::sql_types::Uuid, _>(id)
            .get_result(&mut conn)
            .await
            .optional()?;
        Ok(row.map(|r| r.state))
    }

    /// Runs `sql` (test set-up such as ageing rows).
    pub async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        let mut conn = AsyncPgConnection::establish(&self.url).await?;
        conn.batch_execute(sql).await?;
        Ok(())
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside a test's runtime, where blocking on another future is not allowed:
        // do it on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut admin = AsyncPgConnection::establish(&admin_url).await.ok()?;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// `url` with its database name replaced by `database`.
fn replace_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").context("database URL has no scheme")? + 3;
    let path_start = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..path_start], database);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            replace_database("postgres://u@h:5432/postgres", "x").unwrap(),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u@h:5432/postgres?sslmode=disable", "x").unwrap(),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            replace_database("postgres://h", "x").unwrap(),
            "postgres://h/x"
        );
    }
}
