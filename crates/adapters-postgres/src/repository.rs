//! [`PgConnectorRepository`]: the store ports over PostgreSQL. The queries are the shared SQL
//! body (`connector-adapters-sql`); what is PostgreSQL's own is the connection and the claim
//! of unfinished rows, which other replicas skip while one holds them.

use std::time::Duration;

use connector_adapters_sql::SqlPool;
use connector_ports::RepositorySettings;
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Double, Text};
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

    /// The outbox's claim: leases the oldest open message of each channel that is due and
    /// whose channel and workspace budgets allow a post; rows another replica holds are
    /// skipped, so concurrent claims take different channels. The channels with open
    /// messages are found by skipping through `outbound_messages_open_idx` one channel at a
    /// time (`lanes`), and each channel's head by one probe of it: a claim costs a few
    /// milliseconds whatever the backlog (scanning the queued rows instead took 2.7 s at
    /// 100,000 with every channel busy).
    fn claim_outbox_query(
        owner: &str,
        lease: Duration,
        channel_tolerance: Duration,
        workspace_tolerance: Duration,
        limit: u32,
    ) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
        diesel::sql_query(
            "WITH RECURSIVE lanes(team_id, channel_id) AS ( \
               (SELECT team_id, channel_id FROM outbound_messages \
                 WHERE status IN ('queued', 'sending') ORDER BY team_id, channel_id LIMIT 1) \
               UNION ALL \
               SELECT n.team_id, n.channel_id FROM lanes l, LATERAL ( \
                 SELECT team_id, channel_id FROM outbound_messages \
                 WHERE status IN ('queued', 'sending') \
                   AND (team_id, channel_id) > (l.team_id, l.channel_id) \
                 ORDER BY team_id, channel_id LIMIT 1) n) \
             UPDATE outbound_messages SET lease_owner = $1, \
               lease_until = now() + make_interval(secs => $2) \
             WHERE id IN ( \
               SELECT m.id FROM outbound_messages m \
               WHERE m.status = 'queued' \
                 AND (m.lease_until IS NULL OR m.lease_until < now()) AND m.id IN ( \
                 SELECT h.id FROM lanes l, LATERAL ( \
                   SELECT id, status, next_attempt_at, lease_until FROM outbound_messages \
                   WHERE team_id = l.team_id AND channel_id = l.channel_id \
                     AND status IN ('queued', 'sending') \
                   ORDER BY created_at, id LIMIT 1) h \
                 WHERE h.status = 'queued' AND h.next_attempt_at <= now() \
                   AND (h.lease_until IS NULL OR h.lease_until < now()) \
                   AND NOT EXISTS (SELECT 1 FROM delivery_budgets b \
                     WHERE (b.scope = 'channel:' || l.team_id || ':' || l.channel_id \
                            AND (b.paused_until > now() \
                                 OR b.tat > now() + make_interval(secs => $3))) \
                        OR (b.scope = 'workspace:' || l.team_id \
                            AND (b.paused_until > now() \
                                 OR b.tat > now() + make_interval(secs => $4))))) \
               ORDER BY m.created_at, m.id LIMIT $5 \
               FOR UPDATE OF m SKIP LOCKED) \
             RETURNING id",
        )
        .into_boxed()
        .bind::<Text, _>(owner.to_owned())
        .bind::<Double, _>(lease.as_secs_f64())
        .bind::<Double, _>(channel_tolerance.as_secs_f64())
        .bind::<Double, _>(workspace_tolerance.as_secs_f64())
        .bind::<BigInt, _>(i64::from(limit))
    }
}

connector_adapters_sql::sql_stores!(PgConnectorRepository.sql: diesel_async::AsyncPgConnection);
