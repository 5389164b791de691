//! Test-only helpers shared by the integration and end-to-end tests.
//!
//! - [`TestDatabase`]: a fresh, migrated PostgreSQL database per test, dropped afterwards,
//!   cloned from a template database migrated once (`CREATE DATABASE … TEMPLATE`).
//! - [`localstack_endpoint`]: where the Secrets Manager emulator answers.
//! - [`conformance`]: one suite per port, run against every implementation.
//! - [`issuer`]: [`issuer::LocalIssuer`], an identity provider serving a JWKS and signing tokens.
//! - [`containers`]: PostgreSQL and a Secrets Manager emulator in containers (testcontainers),
//!   for suites that get their own and for faults only containers allow (pause, network cut).
//! - [`proxy`]: [`proxy::FaultProxy`], a TCP proxy switched between passing, refusing and
//!   hanging traffic, to put a dependency down or make it hang.
//! - [`stack`]: [`stack::TestStack`], what every test server runs on (database, LocalStack,
//!   a Slack double with one workspace, a secret prefix), and the variables pointing a server
//!   at it: the one base of every harness that starts servers.
//!
//! Services come from the environment that `scripts/test.sh` sets up (`DATABASE_ADMIN_URL`,
//! `AWS_ENDPOINT_URL`), defaulting to the usual local ports. When a service does not answer,
//! the helpers fail the test with a message saying what to start: never a silent skip.
//!
//! # Must never
//! Be a normal (non-dev) dependency of a shipped crate.

pub mod conformance;
pub mod containers;
pub mod issuer;
pub mod proxy;
pub mod stack;

/// What the conformance macros name.
#[doc(hidden)]
pub mod __private {
    pub use futures;
}

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

/// The template every test database is cloned from, migrated once per set of migrations.
static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// An arbitrary, fixed `pg_advisory_lock` key, so that test processes running at once build a
/// template only once.
const TEMPLATE_LOCK_KEY: i64 = 0x5c_0c_0e_c7_00_00_00_02;

/// The name of the template for the migrations as they are in the tree: a digest of every file
/// under `migrations/postgres`, so that a new or edited migration gets a new template.
fn template_name() -> anyhow::Result<String> {
    use sha2::{Digest as _, Sha256};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/postgres");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut digest = Sha256::new();
    for file in files {
        digest.update(file.strip_prefix(&root)?.to_string_lossy().as_bytes());
        digest.update(std::fs::read(&file)?);
    }
    let hex: String = digest.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("sc_template_{hex}"))
}

/// Makes sure the template of the current migrations exists on the default server; returns
/// its name.
async fn ensure_template(admin_url: &str) -> anyhow::Result<String> {
    TEMPLATE
        .get_or_try_init(|| build_template_once(admin_url))
        .await
        .cloned()
}

/// Builds the template on the server of `admin_url` unless it is there; returns its name.
async fn build_template_once(admin_url: &str) -> anyhow::Result<String> {
    let name = template_name()?;
    let mut admin = AsyncPgConnection::establish(admin_url)
        .await
        .with_context(|| format!("PostgreSQL not reachable at {admin_url}: {HOW_TO_START}"))?;
    admin
        .batch_execute(&format!("SELECT pg_advisory_lock({TEMPLATE_LOCK_KEY})"))
        .await?;
    let built = build_template(&mut admin, admin_url, &name).await;
    let _ = admin
        .batch_execute(&format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK_KEY})"))
        .await;
    built.map(|()| name)
}

/// Under the lock: builds the template unless another process already has. It is migrated
/// under a temporary name and renamed when complete, so a half-built one is never cloned.
async fn build_template(
    admin: &mut AsyncPgConnection,
    admin_url: &str,
    name: &str,
) -> anyhow::Result<()> {
    if database_exists(admin, name).await? {
        return Ok(());
    }
    let building = format!("{name}_building");
    one_at_a_time(
        admin,
        &[
            format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
            format!("CREATE DATABASE {building}"),
        ],
    )
    .await
    .with_context(|| format!("creating template database {building}"))?;
    connector_adapters_postgres::run_migrations(&replace_database(admin_url, &building)?)
        .await
        .context("migrating the template database")?;
    one_at_a_time(
        admin,
        &[
            format!("ALTER DATABASE {building} RENAME TO {name}"),
            format!("ALTER DATABASE {name} IS_TEMPLATE true"),
        ],
    )
    .await
    .with_context(|| format!("publishing template database {name}"))
}

/// Runs `statements` one a call: database statements may not run inside the implicit
/// transaction of a multi-statement batch.
async fn one_at_a_time(admin: &mut AsyncPgConnection, statements: &[String]) -> anyhow::Result<()> {
    for sql in statements {
        admin.batch_execute(sql).await?;
    }
    Ok(())
}

async fn database_exists(admin: &mut AsyncPgConnection, name: &str) -> anyhow::Result<bool> {
    use diesel::{OptionalExtension as _, QueryableByName};
    use diesel_async::RunQueryDsl as _;
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        #[allow(dead_code)]
        one: i32,
    }
    let found: Option<Found> =
        diesel::sql_query("SELECT 1 AS one FROM pg_database WHERE datname = $1")
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result(admin)
            .await
            .optional()?;
    Ok(found.is_some())
}

impl TestDatabase {
    /// Creates a database with a unique name, a copy of the migrated template, on the
    /// default server (`DATABASE_ADMIN_URL`).
    pub async fn create() -> anyhow::Result<Self> {
        let admin_url = database_admin_url();
        let template = ensure_template(&admin_url).await?;
        Self::clone_template(admin_url, &template).await
    }

    /// Like [`TestDatabase::create`], on the server of `admin_url` (a container's).
    pub async fn create_on(admin_url: &str) -> anyhow::Result<Self> {
        let template = build_template_once(admin_url).await?;
        Self::clone_template(admin_url.to_owned(), &template).await
    }

    async fn clone_template(admin_url: String, template: &str) -> anyhow::Result<Self> {
        let mut admin = AsyncPgConnection::establish(&admin_url)
            .await
            .with_context(|| format!("PostgreSQL not reachable at {admin_url}: {HOW_TO_START}"))?;
        let name = format!("sc_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .with_context(|| format!("creating test database {name} from {template}"))?;
        let url = replace_database(&admin_url, &name)?;
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

    /// The rows of `sql`, a query of two text columns (checks of what a test made the service
    /// write).
    pub async fn query_pairs(&self, sql: &str) -> anyhow::Result<Vec<(String, String)>> {
        use diesel::QueryableByName;
        use diesel_async::RunQueryDsl as _;
        #[derive(QueryableByName)]
        struct Pair {
            #[diesel(sql_type = diesel::sql_types::Text)]
            a: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            b: String,
        }
        let mut conn = AsyncPgConnection::establish(&self.url).await?;
        let wrapped = format!("SELECT q.* FROM ({sql}) AS q(a, b)");
        let rows: Vec<Pair> = diesel::sql_query(wrapped).load(&mut conn).await?;
        Ok(rows.into_iter().map(|p| (p.a, p.b)).collect())
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
