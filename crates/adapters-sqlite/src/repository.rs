//! [`SqliteConnectorRepository`]: the store ports over one SQLite file. The queries are the
//! shared SQL body (`connector-adapters-sql`); what is SQLite's own is opening the file
//! (WAL, busy timeout) and the claim of unfinished rows, atomic because SQLite runs one
//! writer at a time.

use std::path::Path;
use std::time::Duration;

use connector_adapters_sql::SqlPool;
use connector_adapters_sql::types::{DbNow, DbTime, Moment};
use connector_ports::RepositorySettings;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection as _, SimpleAsyncConnection as _};

use crate::SqliteSetupError;

type Conn = SyncConnectionWrapper<SqliteConnection>;

/// Per-connection settings: WAL lets readers run beside a writer, and writers wait for each
/// other (up to the busy timeout, the connect timeout of [`RepositorySettings`]) instead of
/// failing.
pub(crate) fn pragmas(busy_timeout: Duration) -> String {
    format!(
        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = {}; \
         PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        busy_timeout.as_millis()
    )
}

/// The SQLite repository; cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct SqliteConnectorRepository {
    sql: SqlPool<Conn>,
}

impl SqliteConnectorRepository {
    /// Opens the database file at `path` (which [`run_migrations`](crate::run_migrations)
    /// has prepared), pooled and bounded as `settings` say.
    pub async fn open(
        path: &Path,
        settings: &RepositorySettings,
    ) -> Result<Self, SqliteSetupError> {
        let mut config = ManagerConfig::<Conn>::default();
        let setup = pragmas(settings.connect_timeout);
        config.custom_setup = Box::new(move |url| {
            let url = url.to_owned();
            let setup = setup.clone();
            Box::pin(async move {
                let mut conn = Conn::establish(&url).await?;
                conn.batch_execute(&setup)
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            })
        });
        let manager =
            AsyncDieselConnectionManager::<Conn>::new_with_config(path.to_string_lossy(), config);
        let sql = SqlPool::open(manager, settings)
            .await
            .map_err(SqliteSetupError::Open)?;
        Ok(Self { sql })
    }

    /// The claim of unfinished rows: one statement, and SQLite runs one writer at a time.
    fn claim_stale_query(
        stale_after: Duration,
        limit: u32,
    ) -> BoxedSqlQuery<'static, Sqlite, SqlQuery> {
        diesel::sql_query(
            "UPDATE connectors SET state = 'deleting', updated_at = ? \
             WHERE id IN ( \
               SELECT id FROM connectors \
               WHERE state <> 'active' AND updated_at < ? \
               ORDER BY updated_at LIMIT ?) \
             RETURNING *",
        )
        .into_boxed()
        .bind::<Moment, _>(DbNow::now().local())
        .bind::<Moment, _>(DbNow::minus(stale_after).local())
        .bind::<BigInt, _>(i64::from(limit))
    }

    /// Which of `keys` (connector, Slack's event ID) the event log holds already: SQLite
    /// probes its (connector_id, event_id) index once for each pair of the two `IN` lists
    /// (the connectors deduplicated: a batch is one tenant's, mostly one connector's).
    async fn stored_event_keys(
        conn: &mut Conn,
        keys: &[(connector_adapters_sql::types::DbId, &str)],
    ) -> diesel::QueryResult<Vec<connector_adapters_sql::event_log::EventKey>> {
        use connector_adapters_sql::event_log::EventKey;
        use connector_adapters_sql::schema::inbound_events::dsl as e;
        use diesel::{ExpressionMethods as _, QueryDsl as _};
        use diesel_async::RunQueryDsl as _;
        let mut connectors: Vec<connector_adapters_sql::types::DbId> =
            keys.iter().map(|(c, _)| *c).collect();
        connectors.sort();
        connectors.dedup();
        let mut stored = Vec::new();
        // In chunks: SQLite binds each value of an `IN` list as a variable of its own.
        for chunk in keys.chunks(1000) {
            let ids: Vec<&str> = chunk.iter().map(|(_, id)| *id).collect();
            let found: Vec<(connector_adapters_sql::types::DbId, String)> = e::inbound_events
                .filter(e::connector_id.eq_any(&connectors))
                .filter(e::event_id.eq_any(&ids))
                .select((e::connector_id, e::event_id))
                .load(conn)
                .await?;
            stored.extend(found.into_iter().map(|(connector_id, event_id)| EventKey {
                connector_id,
                event_id,
            }));
        }
        Ok(stored)
    }

    /// Writes inbound events row by row (diesel's async SQLite connection takes no multi-row
    /// insert of these); in the caller's one transaction, so one commit all the same, and each
    /// row a call into the library, not a round trip.
    async fn insert_events(
        conn: &mut Conn,
        fresh: &[(i64, &connector_ports::NewInboundEvent)],
    ) -> diesel::QueryResult<()> {
        use connector_adapters_sql::schema::inbound_events::dsl as e;
        use diesel_async::RunQueryDsl as _;
        for (cursor, event) in fresh {
            diesel::insert_into(e::inbound_events)
                .values(connector_adapters_sql::inbound_event_values!(
                    *cursor, event
                ))
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    /// Reads and locks the budgets of `scopes` one by one, making a fresh one (`tat` now)
    /// where there is none: the first write takes SQLite's one write lock, which holds them all.
    async fn lock_budget_rows(
        conn: &mut Conn,
        scopes: &[String],
    ) -> diesel::QueryResult<Vec<connector_adapters_sql::outbox::BudgetRow>> {
        use connector_adapters_sql::schema::delivery_budgets::dsl as b;
        use diesel::ExpressionMethods as _;
        use diesel_async::RunQueryDsl as _;
        let fresh = DbNow::now().local();
        let mut rows = Vec::with_capacity(scopes.len());
        for scope in scopes {
            let (tat, paused_until): (DbTime, Option<DbTime>) =
                diesel::insert_into(b::delivery_budgets)
                    .values((b::scope.eq(scope), b::tat.eq(fresh)))
                    .on_conflict(b::scope)
                    .do_update()
                    .set(b::tat.eq(b::tat))
                    .returning((b::tat, b::paused_until))
                    .get_result(conn)
                    .await?;
            rows.push(connector_adapters_sql::outbox::BudgetRow {
                scope: scope.clone(),
                tat,
                paused_until,
            });
        }
        Ok(rows)
    }

    /// Sets the `tat` of each budget, one statement each (calls into the library, not round
    /// trips).
    async fn save_budget_rows(conn: &mut Conn, tats: &[(&str, DbTime)]) -> diesel::QueryResult<()> {
        use connector_adapters_sql::schema::delivery_budgets::dsl as b;
        use diesel::{ExpressionMethods as _, query_dsl::methods::FilterDsl as _};
        use diesel_async::RunQueryDsl as _;
        for (scope, tat) in tats {
            diesel::update(b::delivery_budgets.filter(b::scope.eq(*scope)))
                .set(b::tat.eq(*tat))
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    /// The outbox's claim: leases the oldest open message of each channel that is due and
    /// whose channel and workspace budgets allow a post; one statement, one writer at a time.
    /// The channels with open messages are found by seeking through the open index one
    /// channel at a time (`lanes`; SQLite seeks with `=`/`>` on each column, not with a row
    /// value), and each channel's head by one probe: a claim costs the same whatever the
    /// backlog (scanning the queued rows instead ran for minutes at 100,000 with every
    /// channel busy).
    fn claim_outbox_query(
        owner: &str,
        lease: Duration,
        channel_tolerance: Duration,
        workspace_tolerance: Duration,
        limit: u32,
    ) -> BoxedSqlQuery<'static, Sqlite, SqlQuery> {
        let now = DbNow::now().local();
        diesel::sql_query(
            "WITH RECURSIVE lanes(team_id, channel_id) AS ( \
               SELECT team_id, channel_id FROM ( \
                 SELECT team_id, channel_id FROM outbound_messages \
                 WHERE status IN ('queued', 'sending') ORDER BY team_id, channel_id LIMIT 1) \
               UNION ALL \
               SELECT n.team_id, n.channel_id FROM lanes l JOIN outbound_messages n ON n.id = \
                 COALESCE( \
                   (SELECT o.id FROM outbound_messages o \
                     WHERE o.status IN ('queued', 'sending') \
                       AND o.team_id = l.team_id AND o.channel_id > l.channel_id \
                     ORDER BY o.team_id, o.channel_id LIMIT 1), \
                   (SELECT o.id FROM outbound_messages o \
                     WHERE o.status IN ('queued', 'sending') AND o.team_id > l.team_id \
                     ORDER BY o.team_id, o.channel_id LIMIT 1))), \
             heads(id) AS ( \
               SELECT (SELECT o.id FROM outbound_messages o \
                 WHERE o.team_id = l.team_id AND o.channel_id = l.channel_id \
                   AND o.status IN ('queued', 'sending') \
                 ORDER BY o.created_at, o.id LIMIT 1) FROM lanes l) \
             UPDATE outbound_messages SET lease_owner = ?, lease_until = ? \
             WHERE id IN ( \
               SELECT m.id FROM outbound_messages m \
               WHERE m.id IN (SELECT id FROM heads) \
                 AND m.status = 'queued' AND m.next_attempt_at <= ? \
                 AND (m.lease_until IS NULL OR m.lease_until < ?) \
                 AND NOT EXISTS (SELECT 1 FROM delivery_budgets b \
                   WHERE (b.scope = 'channel:' || m.team_id || ':' || m.channel_id \
                          AND (b.paused_until > ? OR b.tat > ?)) \
                      OR (b.scope = 'workspace:' || m.team_id \
                          AND (b.paused_until > ? OR b.tat > ?))) \
               ORDER BY m.created_at, m.id LIMIT ?) \
             RETURNING id",
        )
        .into_boxed()
        .bind::<Text, _>(owner.to_owned())
        .bind::<Moment, _>(DbNow::plus(lease).local())
        .bind::<Moment, _>(now)
        .bind::<Moment, _>(now)
        .bind::<Moment, _>(now)
        .bind::<Moment, _>(shifted(now, channel_tolerance))
        .bind::<Moment, _>(now)
        .bind::<Moment, _>(shifted(now, workspace_tolerance))
        .bind::<BigInt, _>(i64::from(limit))
    }
}

/// `at` moved `by` later.
fn shifted(at: DbTime, by: Duration) -> DbTime {
    DbTime(at.0 + chrono::Duration::from_std(by).unwrap_or_default())
}

connector_adapters_sql::sql_stores!(SqliteConnectorRepository.sql: crate::repository::Conn);
