//! [`PgConnectorRepository`]: the store ports over PostgreSQL. The queries are the shared SQL
//! body (`connector-adapters-sql`); what is PostgreSQL's own is the connection and the claim
//! of unfinished rows, which other replicas skip while one holds them.

use std::time::Duration;

use connector_adapters_sql::SqlPool;
use connector_ports::RepositorySettings;
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Double};
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;

use crate::PgSetupError;
/// The PostgreSQL repository; cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct PgConnectorRepository {
    sql: SqlPool<AsyncPgConnection>,
}

impl PgConnectorRepository {
    /// Builds the pool and checks that one connection can be made. `url` may contain a
    /// password: it is never logged.
    pub async fn connect(url: &str, settings: &RepositorySettings) -> Result<Self, PgSetupError> {
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
        let sql = SqlPool::open(manager, settings)
            .await
            .map_err(PgSetupError::Connect)?;
        Ok(Self { sql })
    }

    /// The claim of unfinished rows: rows another replica holds are skipped.
    fn claim_stale_query(
        stale_after: Duration,
        limit: u32,
    ) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
        diesel::sql_query(
            "UPDATE connectors SET state = 'deleting', updated_at = now() \
             WHERE id IN ( \
               SELECT id FROM connectors \
               WHERE state <> 'active' AND updated_at < now() - make_interval(secs => $1) \
               ORDER BY updated_at LIMIT $2 \
               FOR UPDATE SKIP LOCKED) \
             RETURNING *",
        )
        .into_boxed()
        .bind::<Double, _>(stale_after.as_secs_f64())
        .bind::<BigInt, _>(i64::from(limit))
    }
}

connector_adapters_sql::sql_stores!(PgConnectorRepository.sql: diesel_async::AsyncPgConnection);
