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

/// The event log's duplicate probe stays a probe of the (connector, event ID) index however
/// large the connector's log grows. Its first form (`connector_id = ANY(..) AND event_id =
/// ANY(..)`) was planned as a scan of the connector's whole log (43 ms for 1,000 keys at
/// 90,000 events), and every group commit of events waited for it.
#[tokio::test]
async fn the_event_logs_duplicate_probe_uses_its_index_on_a_large_log() {
    let (db, _repo) = repo().await;
    // One connector's log of 100,000 events, analysed as autovacuum would.
    db.execute(
        "INSERT INTO inbound_events (tenant_id, cursor, connector_id, event_type, event_id, \
           team_id, from_own_bot, payload_json, received_at) \
         SELECT 'acme', n, '01a2516f-39c8-7024-a442-34a1ced3a15e', 'message', 'ev-' || n, \
           'T1', false, '{}', now() FROM generate_series(1, 100000) AS n; \
         ANALYZE inbound_events;",
    )
    .await
    .unwrap();
    // EXPLAIN of the probe with 1,000 keys of that connector bound as its arrays would be;
    // the plan is raised as the error when it is not a probe of the index.
    let probe = connector_adapters_postgres::repository::STORED_EVENT_KEYS
        .replace(
            "$1::uuid[]",
            "array_fill('01a2516f-39c8-7024-a442-34a1ced3a15e'::uuid, ARRAY[1000])",
        )
        .replace(
            "$2::text[]",
            "(SELECT array_agg('ev-' || n) FROM generate_series(99001, 100000) AS n)",
        );
    let check = format!(
        "DO $check$ DECLARE line text; plan text := ''; BEGIN \
           FOR line IN EXECUTE 'EXPLAIN ' || {probe} LOOP plan := plan || line || E'\\n'; END LOOP; \
           IF plan LIKE '%Seq Scan on inbound_events%' \
              OR plan NOT LIKE '%inbound_events_connector_id_event_id_key%' \
              OR plan NOT LIKE '%Index Cond: ((connector_id = k.connector_id) AND (event_id = k.event_id))%' \
              OR plan LIKE '%Hash%' \
           THEN RAISE EXCEPTION 'the probe is not planned as index probes: %', plan; END IF; \
         END $check$;",
        probe = quote(&probe)
    );
    db.execute(&check).await.unwrap();
}

/// `s` as an SQL string literal.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A statement wrapped in `prepared` is parsed and planned once per connection, where diesel
/// alone sends every `UPDATE` and raw statement unnamed (parsed, analysed and planned on each
/// call). The outcome of each queued post is such an `UPDATE`, and the claim, the budgets and
/// the event log are raw statements: planned every time, they were most of the database's
/// work while a backlog drained.
#[tokio::test]
async fn a_prepared_statement_is_parsed_once_per_connection() {
    use connector_adapters_sql::prepared::{prepared, prepared_with_lists};
    use connector_adapters_sql::schema::delivery_budgets::dsl as b;
    use connector_adapters_sql::types::{DbNow, DbTime};
    use diesel::prelude::*;
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

    #[derive(QueryableByName)]
    struct Statement {
        #[diesel(sql_type = diesel::sql_types::Text)]
        statement: String,
    }

    let (db, _repo) = repo().await;
    let mut conn = AsyncPgConnection::establish(db.url()).await.unwrap();
    for n in 0..3 {
        let scope = format!("channel:T1:C{n}");
        diesel::insert_into(b::delivery_budgets)
            .values((b::scope.eq(&scope), b::tat.eq(DbNow::now())))
            .execute(&mut conn)
            .await
            .unwrap();
        // Left to diesel: sent unnamed each time.
        diesel::update(b::delivery_budgets.filter(b::scope.eq(&scope)))
            .set(b::paused_until.eq(None::<DbTime>))
            .execute(&mut conn)
            .await
            .unwrap();
        // Prepared: an UPDATE and a raw statement.
        let touched = prepared(
            diesel::update(b::delivery_budgets.filter(b::scope.eq(&scope)))
                .set(b::tat.eq(DbNow::now())),
        )
        .execute(&mut conn)
        .await
        .unwrap();
        assert_eq!(touched, 1);
        let found: Vec<Statement> = prepared(
            diesel::sql_query("SELECT scope AS statement FROM delivery_budgets WHERE scope = $1")
                .bind::<diesel::sql_types::Text, _>(&scope),
        )
        .load(&mut conn)
        .await
        .unwrap();
        assert_eq!(found.len(), 1);
        // Prepared once though its list grows: PostgreSQL binds the list as one array.
        let scopes: Vec<String> = (0..=n).map(|i| format!("channel:T1:C{i}")).collect();
        let listed = prepared_with_lists(
            diesel::update(b::delivery_budgets.filter(b::scope.eq_any(&scopes)))
                .set(b::paused_until.eq(DbNow::now().nullable())),
        )
        .execute(&mut conn)
        .await
        .unwrap();
        assert_eq!(listed, n + 1);
    }
    let statements: Vec<String> = diesel::sql_query("SELECT statement FROM pg_prepared_statements")
        .load::<Statement>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.statement)
        .collect();
    let count = |needle: &str| statements.iter().filter(|s| s.contains(needle)).count();
    assert_eq!(count("SET \"tat\""), 1, "{statements:#?}");
    assert_eq!(count("SELECT scope AS statement"), 1, "{statements:#?}");
    assert_eq!(count("= ANY("), 1, "{statements:#?}");
    let unprepared = statements
        .iter()
        .filter(|s| s.contains("SET \"paused_until\"") && !s.contains("= ANY("))
        .count();
    assert_eq!(unprepared, 0, "{statements:#?}");
}
