//! [`PgConnectorRepository`]: the store ports over PostgreSQL. The queries are the shared SQL
//! body (`connector-adapters-sql`); what is PostgreSQL's own is the connection and the claim
//! of unfinished rows, which other replicas skip while one holds them.

use std::time::Duration;

use connector_adapters_sql::SqlPool;
use connector_adapters_sql::prepared::prepared;
use connector_ports::RepositorySettings;
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Double, Text};
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;

use crate::PgSetupError;

/// The event log's duplicate probe: which of the (connector, event ID) pairs `$1`, `$2` it
/// holds. Each pair is looked up by itself (a `LATERAL` subquery with `LIMIT`, which the
/// planner cannot turn into a join): one probe of the unique index a pair, whatever the
/// log's size or statistics. A plain join was planned as a hash join over a scan of the whole
/// log when the log was small enough to look cheap. Public so that a test can check the plan.
pub const STORED_EVENT_KEYS: &str = "SELECT k.connector_id, k.event_id \
     FROM unnest($1::uuid[], $2::text[]) AS k(connector_id, event_id), \
     LATERAL (SELECT 1 FROM inbound_events e \
       WHERE e.connector_id = k.connector_id AND e.event_id = k.event_id LIMIT 1) AS found";

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

    /// Which of `keys` (connector, Slack's event ID) the event log holds already
    /// ([`STORED_EVENT_KEYS`]): one index probe a key, so it costs the same whatever the
    /// log's size. (`connector_id = ANY(..) AND event_id = ANY(..)` was planned as a scan of
    /// the connector's whole log: 43 ms for 1,000 keys at 90,000 events, growing with it.)
    async fn stored_event_keys(
        conn: &mut AsyncPgConnection,
        keys: &[(connector_adapters_sql::types::DbId, &str)],
    ) -> diesel::QueryResult<Vec<connector_adapters_sql::event_log::EventKey>> {
        use connector_adapters_sql::types::{DbId, Id};
        use diesel::sql_types::Array;
        use diesel_async::RunQueryDsl as _;
        let connectors: Vec<DbId> = keys.iter().map(|(c, _)| *c).collect();
        let ids: Vec<&str> = keys.iter().map(|(_, id)| *id).collect();
        prepared(
            diesel::sql_query(STORED_EVENT_KEYS)
                .bind::<Array<Id>, _>(connectors)
                .bind::<Array<Text>, _>(ids),
        )
        .load(conn)
        .await
    }

    /// Writes inbound events in one statement of one fixed shape whatever their number: each
    /// column bound as one array and unnested into rows. One round trip for a whole group
    /// commit's batch, planned once per connection (a multi-row `VALUES` list is a statement
    /// of its own for every batch size, with up to 14 parameters a row: measured slower).
    async fn insert_events(
        conn: &mut AsyncPgConnection,
        fresh: &[(i64, &connector_ports::NewInboundEvent)],
    ) -> diesel::QueryResult<()> {
        use connector_adapters_sql::types::{DbId, DbTime, Id, Moment};
        use diesel::sql_types::{Array, Bool, Nullable};
        use diesel_async::RunQueryDsl as _;
        fn column<'a, T>(
            fresh: &'a [(i64, &connector_ports::NewInboundEvent)],
            f: impl Fn(&'a connector_ports::NewInboundEvent) -> T,
        ) -> Vec<T> {
            fresh.iter().map(|(_, e)| f(e)).collect()
        }
        prepared(diesel::sql_query(
            "INSERT INTO inbound_events (tenant_id, cursor, connector_id, event_type, event_id, \
               team_id, channel_id, user_id, ts, thread_ts, text, from_own_bot, payload_json, \
               received_at) \
             SELECT * FROM unnest($1::text[], $2::int8[], $3::uuid[], $4::text[], $5::text[], \
               $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
               $12::bool[], $13::text[], $14::timestamptz[])",
        )
        .bind::<Array<Text>, _>(column(fresh, |e| e.tenant_id.as_str()))
        .bind::<Array<BigInt>, _>(fresh.iter().map(|(c, _)| *c).collect::<Vec<i64>>())
        .bind::<Array<Id>, _>(column(fresh, |e| DbId::from(e.connector_id)))
        .bind::<Array<Text>, _>(column(fresh, |e| e.event_type.as_str()))
        .bind::<Array<Text>, _>(column(fresh, |e| e.event_id.as_str()))
        .bind::<Array<Text>, _>(column(fresh, |e| e.team_id.as_str()))
        .bind::<Array<Nullable<Text>>, _>(column(fresh, |e| e.channel_id.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(column(fresh, |e| e.user_id.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(column(fresh, |e| e.ts.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(column(fresh, |e| e.thread_ts.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(column(fresh, |e| e.text.as_deref()))
        .bind::<Array<Bool>, _>(column(fresh, |e| e.from_own_bot))
        .bind::<Array<Text>, _>(column(fresh, |e| e.payload_json.as_str()))
        .bind::<Array<Moment>, _>(column(fresh, |e| DbTime(e.received_at))))
        .execute(conn)
        .await
        .map(drop)
    }

    /// Reads and locks the budgets of `scopes` (sorted) in one statement, inserting a fresh
    /// one (`tat` now: a full burst) where there is none; rows are locked in the order given
    /// (`WITH ORDINALITY`), so two claims never wait on each other in a circle.
    async fn lock_budget_rows(
        conn: &mut AsyncPgConnection,
        scopes: &[String],
    ) -> diesel::QueryResult<Vec<connector_adapters_sql::outbox::BudgetRow>> {
        use diesel::sql_types::Array;
        use diesel_async::RunQueryDsl as _;
        prepared(
            diesel::sql_query(
                "INSERT INTO delivery_budgets (scope, tat) \
             SELECT u.scope, now() FROM unnest($1::text[]) WITH ORDINALITY AS u(scope, n) \
             ORDER BY u.n \
             ON CONFLICT (scope) DO UPDATE SET tat = delivery_budgets.tat \
             RETURNING scope, tat, paused_until",
            )
            .bind::<Array<Text>, _>(scopes),
        )
        .load(conn)
        .await
    }

    /// Sets the `tat` of each budget (locked already by this transaction), in one statement.
    async fn save_budget_rows(
        conn: &mut AsyncPgConnection,
        tats: &[(&str, connector_adapters_sql::types::DbTime)],
    ) -> diesel::QueryResult<()> {
        use connector_adapters_sql::types::{DbTime, Moment};
        use diesel::sql_types::Array;
        use diesel_async::RunQueryDsl as _;
        let scopes: Vec<&str> = tats.iter().map(|(s, _)| *s).collect();
        let times: Vec<DbTime> = tats.iter().map(|(_, t)| *t).collect();
        prepared(
            diesel::sql_query(
                "UPDATE delivery_budgets b SET tat = v.tat \
                 FROM unnest($1::text[], $2::timestamptz[]) AS v(scope, tat) \
                 WHERE b.scope = v.scope",
            )
            .bind::<Array<Text>, _>(scopes)
            .bind::<Array<Moment>, _>(times),
        )
        .execute(conn)
        .await
        .map(drop)
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
