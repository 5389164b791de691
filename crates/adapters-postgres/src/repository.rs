//! [`PgConnectorRepository`]: connector rows in PostgreSQL.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_domain::{
    ApiKeyId, AuthStatus, ChannelId, ChannelName, Connector, ConnectorId, ConnectorName,
    ConnectorState, ConnectorStatus, RequestId, TenantId, WorkspaceId,
};
use connector_ports::{
    ApiKeyRecord, ApiKeyStore, ConnectorRepository, ConnectorUpdate, NewConnector, OAuthStateStore,
    PendingInstall, PendingPromotion, RefreshOutcome, RepositoryError, RepositorySettings,
    StatusCount,
};
use diesel::IntoSql as _;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::Bool;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::bb8::{Pool, PooledConnection, RunError};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::PgSetupError;
use crate::schema::connectors::{self, dsl};

/// The PostgreSQL repository; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PgConnectorRepository {
    pool: Pool<AsyncPgConnection>,
    query_timeout: Duration,
    max_connections: u32,
}

impl std::fmt::Debug for PgConnectorRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnectorRepository")
            .finish_non_exhaustive()
    }
}

impl PgConnectorRepository {
    /// Builds the pool and checks that one connection can be made. `url` may contain a
    /// password: it is never logged.
    pub async fn connect(url: &str, settings: &RepositorySettings) -> Result<Self, PgSetupError> {
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
        let pool = Pool::builder()
            .max_size(settings.max_connections)
            .connection_timeout(settings.connect_timeout)
            .build(manager)
            .await
            .map_err(|e| PgSetupError::Connect(e.to_string()))?;
        drop(
            pool.get()
                .await
                .map_err(|e| PgSetupError::Connect(e.to_string()))?,
        );
        Ok(Self {
            pool,
            query_timeout: settings.query_timeout,
            max_connections: settings.max_connections,
        })
    }

    /// The pool's state, for metrics.
    pub fn pool_status(&self) -> connector_ports::PoolStatus {
        let state = self.pool.state();
        connector_ports::PoolStatus {
            max_connections: self.max_connections,
            connections: state.connections,
            idle_connections: state.idle_connections,
            waited_total: state.statistics.get_waited,
            timed_out_total: state.statistics.get_timed_out,
            wait_seconds_total: state.statistics.get_wait_time.as_secs_f64(),
        }
    }

    pub(crate) async fn conn(
        &self,
    ) -> Result<PooledConnection<'_, AsyncPgConnection>, RepositoryError> {
        self.pool.get().await.map_err(|e| match e {
            RunError::TimedOut => {
                RepositoryError::Unavailable("timed out waiting for a database connection".into())
            }
            RunError::User(e) => {
                RepositoryError::Unavailable(format!("cannot connect to the database: {e}"))
            }
        })
    }

    /// Runs `f` bounded by the query timeout.
    pub(crate) async fn timed<T>(
        &self,
        f: impl Future<Output = Result<T, RepositoryError>>,
    ) -> Result<T, RepositoryError> {
        tokio::time::timeout(self.query_timeout, f)
            .await
            .map_err(|_| RepositoryError::Unavailable("database query timed out".into()))?
    }

    /// The first row `query` selects, as a connector.
    /// The connector `query` (which selects a [`Row`], at most one) finds: an idempotent
    /// read, run once more on a fresh connection when the first attempt's connection broke (a
    /// restarted server, a terminated backend). `query` has a static shape (never boxed), so
    /// each pooled connection prepares it once and reuses the statement.
    async fn first<Q>(&self, query: impl Fn() -> Q) -> Result<Option<Connector>, RepositoryError>
    where
        Q: diesel_async::methods::LoadQuery<'static, AsyncPgConnection, Row> + Send + 'static,
    {
        self.timed(async {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let mut conn = self.conn().await?;
                match query().get_result::<Row>(&mut conn).await.optional() {
                    Ok(row) => return row.map(Connector::try_from).transpose(),
                    Err(e) if attempt == 1 && is_connection_error(&e) => {
                        tracing::warn!(error = %e, "a database connection broke; retrying the read on a fresh one");
                        drop(conn);
                    }
                    Err(e) => return Err(map_err(e)),
                }
            }
        })
        .await
    }
}

/// Whether `e` says the connection itself failed (closed, broken, or ended by the server:
/// SQLSTATE 57P01–57P03, which diesel-async reports without their code), as opposed to the
/// statement.
fn is_connection_error(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => true,
        DieselError::DatabaseError(_, info) => {
            let m = info.message();
            [
                "terminating connection due to administrator command",
                "terminating connection due to crash of another server process",
                "the database system is shutting down",
                "the database system is starting up",
                "the database system is in recovery mode",
                "server closed the connection unexpectedly",
                "connection closed",
            ]
            .iter()
            .any(|known| m.contains(known))
        }
        _ => false,
    }
}

/// One row of `connectors`.
#[derive(Debug, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = connectors, check_for_backend(diesel::pg::Pg))]
struct Row {
    id: uuid::Uuid,
    tenant_id: String,
    name: String,
    workspace_id: String,
    default_channel_id: String,
    default_channel_name: String,
    state: String,
    #[allow(dead_code)]
    request_id: Option<String>,
    auth_status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    generation: i64,
    last_update_request_id: Option<String>,
    revoked_at: Option<DateTime<Utc>>,
    default_channel_available: bool,
}

/// A row with the staged secret version it records.
#[derive(QueryableByName)]
struct PendingRow {
    #[diesel(embed)]
    columns: Row,
    #[diesel(sql_type = diesel::sql_types::Text, column_name = pending_secret_version)]
    pending: String,
}

/// The columns an update sets; `None` leaves one as it is, `Some(None)` sets NULL.
#[derive(AsChangeset)]
#[diesel(table_name = connectors)]
struct UpdateRow<'a> {
    name: Option<&'a str>,
    default_channel_id: Option<&'a str>,
    default_channel_name: Option<&'a str>,
    last_update_request_id: Option<Option<&'a str>>,
    pending_secret_version: Option<&'a str>,
    auth_status: Option<&'a str>,
    token_expires_at: Option<Option<DateTime<Utc>>>,
    refresh_lease_until: Option<Option<DateTime<Utc>>>,
    refresh_fence: Option<Option<i64>>,
    revoked_at: Option<Option<DateTime<Utc>>>,
    default_channel_available: Option<bool>,
}

impl<'a> UpdateRow<'a> {
    fn of(update: &'a ConnectorUpdate) -> Self {
        let replacing = update.token_replaced;
        Self {
            name: update.name.as_ref().map(ConnectorName::as_str),
            default_channel_id: update.default_channel.as_ref().map(|(id, _)| id.as_str()),
            default_channel_name: update.default_channel.as_ref().map(|(_, n)| n.as_str()),
            last_update_request_id: Some(update.request_id.as_ref().map(RequestId::as_str)),
            pending_secret_version: update.staged_secret_version.as_deref(),
            auth_status: replacing.then_some(AuthStatus::Ok.as_str()),
            token_expires_at: replacing.then_some(None),
            refresh_lease_until: replacing.then_some(None),
            refresh_fence: replacing.then_some(None),
            revoked_at: replacing.then_some(None),
            default_channel_available: update.default_channel.as_ref().map(|_| true),
        }
    }
}

impl TryFrom<Row> for Connector {
    type Error = RepositoryError;
    fn try_from(r: Row) -> Result<Self, Self::Error> {
        let corrupt = |what: String| {
            RepositoryError::Unknown(anyhow_error(format!("corrupt row {}: {what}", r.id)))
        };
        Ok(Connector {
            id: ConnectorId::from_uuid(r.id),
            tenant_id: TenantId::parse("tenant_id", &r.tenant_id)
                .map_err(|e| corrupt(e.to_string()))?,
            name: ConnectorName::parse("name", &r.name).map_err(|e| corrupt(e.to_string()))?,
            workspace_id: WorkspaceId::new(r.workspace_id),
            default_channel_id: ChannelId::new(r.default_channel_id),
            default_channel_name: ChannelName::new(r.default_channel_name),
            state: ConnectorState::from_stored(&r.state)
                .ok_or_else(|| corrupt(format!("unknown state {:?}", r.state)))?,
            auth_status: match r.revoked_at {
                Some(_) => AuthStatus::Revoked,
                None => AuthStatus::from_stored(&r.auth_status)
                    .ok_or_else(|| corrupt(format!("unknown auth status {:?}", r.auth_status)))?,
            },
            default_channel_available: r.default_channel_available,
            created_at: r.created_at,
            updated_at: r.updated_at,
            generation: r.generation,
            last_update_request_id: r
                .last_update_request_id
                .as_deref()
                .map(|v| RequestId::parse("request_id", v))
                .transpose()
                .map_err(|e| corrupt(e.to_string()))?,
        })
    }
}

pub(crate) fn anyhow_error(msg: String) -> anyhow::Error {
    anyhow::Error::msg(msg)
}

#[derive(Insertable)]
#[diesel(table_name = connectors)]
struct NewRow<'a> {
    id: uuid::Uuid,
    tenant_id: &'a str,
    name: &'a str,
    workspace_id: &'a str,
    default_channel_id: &'a str,
    default_channel_name: &'a str,
    state: &'a str,
    request_id: Option<&'a str>,
    token_expires_at: Option<DateTime<Utc>>,
}

/// Translates a diesel error into the port's terms.
pub(crate) fn map_err(e: DieselError) -> RepositoryError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            match info.constraint_name() {
                Some("connectors_tenant_name_key") => RepositoryError::DuplicateName,
                Some("connectors_tenant_request_id_key") => RepositoryError::DuplicateRequestId,
                other => RepositoryError::Unknown(anyhow_error(format!(
                    "unexpected unique violation on {other:?}: {}",
                    info.message()
                ))),
            }
        }
        e if is_connection_error(&e) => {
            RepositoryError::Unavailable(format!("the database connection was lost: {e}"))
        }
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, info) => {
            RepositoryError::Unavailable(format!("transient database conflict: {}", info.message()))
        }
        other => RepositoryError::Unknown(anyhow::Error::new(other)),
    }
}

/// One line of the count by status.
#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    state: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    auth_status: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn rows_to_connectors(rows: Vec<Row>) -> Result<Vec<Connector>, RepositoryError> {
    rows.into_iter().map(Connector::try_from).collect()
}

#[async_trait]
impl ConnectorRepository for PgConnectorRepository {
    async fn insert_creating(&self, new: &NewConnector) -> Result<Connector, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let row: Row = diesel::insert_into(connectors::table)
                .values(NewRow {
                    id: new.id.as_uuid(),
                    tenant_id: new.tenant_id.as_str(),
                    name: new.name.as_str(),
                    workspace_id: new.workspace_id.as_str(),
                    default_channel_id: new.default_channel_id.as_str(),
                    default_channel_name: new.default_channel_name.as_str(),
                    state: ConnectorState::Creating.as_str(),
                    request_id: new.request_id.as_ref().map(RequestId::as_str),
                    token_expires_at: new.token_expires_at,
                })
                .returning(Row::as_returning())
                .get_result(&mut conn)
                .await
                .map_err(map_err)?;
            row.try_into()
        })
        .await
    }

    async fn mark_active(&self, id: ConnectorId) -> Result<Option<Connector>, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let row: Option<Row> = diesel::update(
                dsl::connectors
                    .filter(dsl::id.eq(id.as_uuid()))
                    .filter(dsl::state.eq(ConnectorState::Creating.as_str())),
            )
            .set((
                dsl::state.eq(ConnectorState::Active.as_str()),
                dsl::updated_at.eq(diesel::dsl::now),
            ))
            .returning(Row::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(map_err)?;
            row.map(Connector::try_from).transpose()
        })
        .await
    }

    async fn remove_creating(&self, id: ConnectorId) -> Result<(), RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            diesel::delete(
                dsl::connectors
                    .filter(dsl::id.eq(id.as_uuid()))
                    .filter(dsl::state.eq(ConnectorState::Creating.as_str())),
            )
            .execute(&mut conn)
            .await
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn find_by_request_id(
        &self,
        tenant: &TenantId,
        request_id: &RequestId,
    ) -> Result<Option<Connector>, RepositoryError> {
        self.first(|| {
            dsl::connectors
                .filter(dsl::tenant_id.eq(tenant.as_str().to_owned()))
                .filter(dsl::request_id.eq(request_id.as_str().to_owned()))
                .select(Row::as_select())
                .limit(1)
        })
        .await
    }

    async fn get_active(
        &self,
        tenant: &TenantId,
        id: ConnectorId,
    ) -> Result<Option<Connector>, RepositoryError> {
        self.first(|| {
            dsl::connectors
                .filter(dsl::tenant_id.eq(tenant.as_str().to_owned()))
                .filter(dsl::id.eq(id.as_uuid()))
                .filter(dsl::state.eq(ConnectorState::Active.as_str().to_owned()))
                .select(Row::as_select())
                .limit(1)
        })
        .await
    }

    async fn find_active(&self, id: ConnectorId) -> Result<Option<Connector>, RepositoryError> {
        self.first(|| {
            dsl::connectors
                .filter(dsl::id.eq(id.as_uuid()))
                .filter(dsl::state.eq(ConnectorState::Active.as_str().to_owned()))
                .select(Row::as_select())
                .limit(1)
        })
        .await
    }

    async fn list_active(
        &self,
        tenant: &TenantId,
        after: Option<ConnectorId>,
        limit: u32,
        status: Option<ConnectorStatus>,
    ) -> Result<Vec<Connector>, RepositoryError> {
        let filter = connector_ports::StatusFilter::of(status);
        self.timed(async {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let mut conn = self.conn().await?;
                // One static shape for every page and filter (the first page starts after the
                // nil UUID, which no connector has; no filter is a filter every row passes), so
                // the statement is prepared once per connection.
                let after = after.map_or_else(uuid::Uuid::nil, |a| a.as_uuid());
                let query = dsl::connectors
                    .filter(dsl::tenant_id.eq(tenant.as_str()))
                    .filter(dsl::state.eq(ConnectorState::Active.as_str()))
                    .filter(dsl::id.gt(after))
                    .filter(filter.any_auth.into_sql::<Bool>().or(dsl::auth_status.eq(filter.auth)))
                    .filter(filter.any_revoked.into_sql::<Bool>().or(dsl::revoked_at.is_not_null().eq(filter.revoked)))
                    .filter(filter.any_channel.into_sql::<Bool>().or(dsl::default_channel_available.eq(filter.channel_available)))
                    .order(dsl::id.asc())
                    .limit(i64::from(limit))
                    .select(Row::as_select());
                match query.load::<Row>(&mut conn).await {
                    Ok(rows) => return rows_to_connectors(rows),
                    // An idempotent read: once more on a fresh connection.
                    Err(e) if attempt == 1 && is_connection_error(&e) => {
                        tracing::warn!(error = %e, "a database connection broke; retrying the read on a fresh one");
                        drop(conn);
                    }
                    Err(e) => return Err(map_err(e)),
                }
            }
        })
        .await
    }

    async fn mark_deleting(
        &self,
        tenant: &TenantId,
        id: ConnectorId,
    ) -> Result<Option<Connector>, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let row: Option<Row> = diesel::update(
                dsl::connectors
                    .filter(dsl::tenant_id.eq(tenant.as_str()))
                    .filter(dsl::id.eq(id.as_uuid()))
                    .filter(dsl::state.eq_any([
                        ConnectorState::Active.as_str(),
                        ConnectorState::Deleting.as_str(),
                    ])),
            )
            .set((
                dsl::state.eq(ConnectorState::Deleting.as_str()),
                dsl::updated_at.eq(diesel::dsl::now),
            ))
            .returning(Row::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(map_err)?;
            row.map(Connector::try_from).transpose()
        })
        .await
    }

    async fn remove_deleting(&self, id: ConnectorId) -> Result<(), RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            diesel::delete(
                dsl::connectors
                    .filter(dsl::id.eq(id.as_uuid()))
                    .filter(dsl::state.eq(ConnectorState::Deleting.as_str())),
            )
            .execute(&mut conn)
            .await
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn update_active(
        &self,
        tenant: &TenantId,
        id: ConnectorId,
        generation: i64,
        update: &ConnectorUpdate,
    ) -> Result<Option<Connector>, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let row: Option<Row> = diesel::update(
                dsl::connectors
                    .filter(dsl::tenant_id.eq(tenant.as_str()))
                    .filter(dsl::id.eq(id.as_uuid()))
                    .filter(dsl::state.eq(ConnectorState::Active.as_str()))
                    .filter(dsl::generation.eq(generation)),
            )
            .set((
                UpdateRow::of(update),
                dsl::generation.eq(dsl::generation + 1),
                dsl::updated_at.eq(diesel::dsl::now),
            ))
            .returning(Row::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(map_err)?;
            row.map(Connector::try_from).transpose()
        })
        .await
    }

    async fn revoke_workspace(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Vec<Connector>, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let rows: Vec<Row> = diesel::update(
                dsl::connectors
                    .filter(dsl::workspace_id.eq(workspace.as_str()))
                    .filter(dsl::state.eq(ConnectorState::Active.as_str())),
            )
            .set((
                dsl::revoked_at.eq(diesel::dsl::sql::<
                    diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
                >("coalesce(revoked_at, now())")),
                // The token is gone: nothing to refresh.
                dsl::token_expires_at.eq(None::<DateTime<Utc>>),
                dsl::updated_at.eq(diesel::dsl::now),
            ))
            .returning(Row::as_returning())
            .get_results(&mut conn)
            .await
            .map_err(map_err)?;
            rows_to_connectors(rows)
        })
        .await
    }

    async fn rename_channel(
        &self,
        workspace: &WorkspaceId,
        channel: &ChannelId,
        name: &ChannelName,
    ) -> Result<u64, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let n = diesel::update(
                dsl::connectors
                    .filter(dsl::workspace_id.eq(workspace.as_str()))
                    .filter(dsl::default_channel_id.eq(channel.as_str()))
                    .filter(dsl::default_channel_name.ne(name.as_str())),
            )
            .set((
                dsl::default_channel_name.eq(name.as_str()),
                dsl::updated_at.eq(diesel::dsl::now),
            ))
            .execute(&mut conn)
            .await
            .map_err(map_err)?;
            Ok(n as u64)
        })
        .await
    }

    async fn set_channel_available(
        &self,
        workspace: &WorkspaceId,
        channel: &ChannelId,
        available: bool,
    ) -> Result<u64, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let n = diesel::update(
                dsl::connectors
                    .filter(dsl::workspace_id.eq(workspace.as_str()))
                    .filter(dsl::default_channel_id.eq(channel.as_str()))
                    .filter(dsl::default_channel_available.ne(available)),
            )
            .set((
                dsl::default_channel_available.eq(available),
                dsl::updated_at.eq(diesel::dsl::now),
            ))
            .execute(&mut conn)
            .await
            .map_err(map_err)?;
            Ok(n as u64)
        })
        .await
    }

    async fn pending_promotions(
        &self,
        older_than: Duration,
        limit: u32,
    ) -> Result<Vec<PendingPromotion>, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let rows: Vec<PendingRow> = diesel::sql_query(
                "SELECT * FROM connectors \
                 WHERE pending_secret_version IS NOT NULL AND state = 'active' \
                   AND updated_at < now() - make_interval(secs => $1) \
                 ORDER BY updated_at LIMIT $2",
            )
            .bind::<diesel::sql_types::Double, _>(older_than.as_secs_f64())
            .bind::<diesel::sql_types::BigInt, _>(i64::from(limit))
            .load(&mut conn)
            .await
            .map_err(map_err)?;
            rows.into_iter()
                .map(|p| {
                    Ok(PendingPromotion {
                        connector: p.columns.try_into()?,
                        version: p.pending,
                    })
                })
                .collect()
        })
        .await
    }

    async fn clear_pending_promotion(
        &self,
        id: ConnectorId,
        version: &str,
    ) -> Result<bool, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            // No updated_at: the row's content does not change, only the bookkeeping.
            let n = diesel::update(
                dsl::connectors
                    .filter(dsl::id.eq(id.as_uuid()))
                    .filter(dsl::pending_secret_version.eq(version)),
            )
            .set(dsl::pending_secret_version.eq(None::<String>))
            .execute(&mut conn)
            .await
            .map_err(map_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn lease_token_refresh(
        &self,
        id: ConnectorId,
        lease: Duration,
        fence: i64,
    ) -> Result<bool, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let taken = diesel::sql_query(
                "UPDATE connectors SET refresh_lease_until = now() + make_interval(secs => $2), \
                   refresh_fence = $3 \
                 WHERE id = $1 AND state = 'active' \
                   AND (refresh_lease_until IS NULL OR refresh_lease_until < now())",
            )
            .bind::<diesel::sql_types::Uuid, _>(id.as_uuid())
            .bind::<diesel::sql_types::Double, _>(lease.as_secs_f64())
            .bind::<diesel::sql_types::BigInt, _>(fence)
            .execute(&mut conn)
            .await
            .map_err(map_err)?;
            Ok(taken == 1)
        })
        .await
    }

    async fn renew_token_refresh(
        &self,
        id: ConnectorId,
        fence: i64,
        lease: Duration,
    ) -> Result<bool, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let renewed = diesel::sql_query(
                "UPDATE connectors SET refresh_lease_until = now() + make_interval(secs => $3) \
                 WHERE id = $1 AND refresh_fence = $2 AND refresh_lease_until IS NOT NULL",
            )
            .bind::<diesel::sql_types::Uuid, _>(id.as_uuid())
            .bind::<diesel::sql_types::BigInt, _>(fence)
            .bind::<diesel::sql_types::Double, _>(lease.as_secs_f64())
            .execute(&mut conn)
            .await
            .map_err(map_err)?;
            Ok(renewed == 1)
        })
        .await
    }

    async fn finish_token_refresh(
        &self,
        id: ConnectorId,
        fence: i64,
        outcome: RefreshOutcome,
    ) -> Result<bool, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            // Only the lease's holder records an outcome: a late finisher changes nothing.
            let target = dsl::connectors
                .filter(dsl::id.eq(id.as_uuid()))
                .filter(dsl::refresh_fence.eq(fence))
                .filter(dsl::refresh_lease_until.is_not_null());
            let lease = (
                dsl::refresh_lease_until.eq(None::<DateTime<Utc>>),
                dsl::refresh_fence.eq(None::<i64>),
            );
            match outcome {
                RefreshOutcome::Refreshed { expires_at } => {
                    diesel::update(target)
                        .set((
                            lease,
                            dsl::token_expires_at.eq(Some(expires_at)),
                            dsl::auth_status.eq(AuthStatus::Ok.as_str()),
                            dsl::updated_at.eq(diesel::dsl::now),
                        ))
                        .execute(&mut conn)
                        .await
                }
                RefreshOutcome::Failed => {
                    diesel::update(target)
                        .set((
                            lease,
                            dsl::auth_status.eq(AuthStatus::NeedsReauthorization.as_str()),
                            dsl::updated_at.eq(diesel::dsl::now),
                        ))
                        .execute(&mut conn)
                        .await
                }
                RefreshOutcome::Abandoned => {
                    diesel::update(target).set(lease).execute(&mut conn).await
                }
            }
            .map(|n| n == 1)
            .map_err(map_err)
        })
        .await
    }

    async fn tokens_expiring(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Connector>, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let rows: Vec<Row> = dsl::connectors
                .filter(dsl::state.eq(ConnectorState::Active.as_str()))
                .filter(dsl::auth_status.eq(AuthStatus::Ok.as_str()))
                .filter(dsl::token_expires_at.lt(before))
                .filter(
                    dsl::refresh_lease_until
                        .is_null()
                        .or(dsl::refresh_lease_until.lt(diesel::dsl::now)),
                )
                .order(dsl::token_expires_at.asc())
                .limit(i64::from(limit))
                .select(Row::as_select())
                .load(&mut conn)
                .await
                .map_err(map_err)?;
            rows_to_connectors(rows)
        })
        .await
    }

    async fn count_connectors(&self, tenant: &TenantId) -> Result<u64, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let n: i64 = dsl::connectors
                .filter(dsl::tenant_id.eq(tenant.as_str()))
                .count()
                .get_result(&mut conn)
                .await
                .map_err(map_err)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn count_by_status(&self) -> Result<Vec<StatusCount>, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let rows: Vec<CountRow> = diesel::sql_query(
                "SELECT state, \
                   CASE WHEN revoked_at IS NOT NULL THEN 'revoked' ELSE auth_status END AS auth_status, \
                   count(*) AS n \
                 FROM connectors GROUP BY 1, 2",
            )
            .load(&mut conn)
            .await
            .map_err(map_err)?;
            rows.iter()
                .map(|r| StatusCount::from_stored(&r.state, &r.auth_status, r.n))
                .collect()
        })
        .await
    }

    async fn claim_stale(
        &self,
        stale_after: Duration,
        limit: u32,
    ) -> Result<Vec<Connector>, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            // One statement: pick unfinished rows nobody else holds, flip them to 'deleting'
            // and renew updated_at, which is the lease other replicas respect.
            let rows: Vec<Row> = diesel::sql_query(
                "UPDATE connectors SET state = 'deleting', updated_at = now() \
                 WHERE id IN ( \
                   SELECT id FROM connectors \
                   WHERE state <> 'active' AND updated_at < now() - make_interval(secs => $1) \
                   ORDER BY updated_at LIMIT $2 \
                   FOR UPDATE SKIP LOCKED) \
                 RETURNING *",
            )
            .bind::<diesel::sql_types::Double, _>(stale_after.as_secs_f64())
            .bind::<diesel::sql_types::BigInt, _>(i64::from(limit))
            .load(&mut conn)
            .await
            .map_err(map_err)?;
            rows_to_connectors(rows)
        })
        .await
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = crate::schema::oauth_states, check_for_backend(diesel::pg::Pg))]
struct StateRow {
    tenant_id: String,
    name: String,
    default_channel: String,
    expires_at: DateTime<Utc>,
    browser_hash: Option<String>,
    team_id: Option<String>,
}

impl TryFrom<StateRow> for PendingInstall {
    type Error = RepositoryError;
    fn try_from(r: StateRow) -> Result<Self, Self::Error> {
        let corrupt = |e: connector_domain::ValidationError| {
            RepositoryError::Unknown(anyhow_error(format!("corrupt oauth state: {e}")))
        };
        Ok(PendingInstall {
            tenant_id: TenantId::parse("tenant_id", &r.tenant_id).map_err(corrupt)?,
            name: ConnectorName::parse("name", &r.name).map_err(corrupt)?,
            default_channel: r.default_channel,
            expires_at: r.expires_at,
            team_id: r.team_id.map(WorkspaceId::new),
            browser_hash: r.browser_hash,
        })
    }
}

#[async_trait]
impl OAuthStateStore for PgConnectorRepository {
    async fn save_state(
        &self,
        state_hash: &str,
        pending: &PendingInstall,
    ) -> Result<(), RepositoryError> {
        use crate::schema::oauth_states::dsl as s;
        self.timed(async {
            let mut conn = self.conn().await?;
            diesel::insert_into(s::oauth_states)
                .values((
                    s::state_hash.eq(state_hash),
                    s::tenant_id.eq(pending.tenant_id.as_str()),
                    s::name.eq(pending.name.as_str()),
                    s::default_channel.eq(&pending.default_channel),
                    s::expires_at.eq(pending.expires_at),
                    s::team_id.eq(pending.team_id.as_ref().map(|t| t.as_str())),
                    s::browser_hash.eq(pending.browser_hash.as_deref()),
                ))
                .execute(&mut conn)
                .await
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn take_state(
        &self,
        state_hash: &str,
    ) -> Result<Option<PendingInstall>, RepositoryError> {
        use crate::schema::oauth_states::dsl as s;
        self.timed(async {
            let mut conn = self.conn().await?;
            let row: Option<StateRow> =
                diesel::delete(s::oauth_states.filter(s::state_hash.eq(state_hash)))
                    .returning(StateRow::as_returning())
                    .get_result(&mut conn)
                    .await
                    .optional()
                    .map_err(map_err)?;
            row.map(PendingInstall::try_from).transpose()
        })
        .await
    }

    async fn bind_browser(
        &self,
        state_hash: &str,
        browser_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingInstall>, RepositoryError> {
        use crate::schema::oauth_states::dsl as s;
        self.timed(async {
            let mut conn = self.conn().await?;
            let row: Option<StateRow> = diesel::update(
                s::oauth_states
                    .filter(s::state_hash.eq(state_hash))
                    .filter(s::browser_hash.is_null())
                    .filter(s::expires_at.gt(now)),
            )
            .set(s::browser_hash.eq(Some(browser_hash)))
            .returning(StateRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(map_err)?;
            row.map(PendingInstall::try_from).transpose()
        })
        .await
    }

    async fn count_states(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<u64, RepositoryError> {
        use crate::schema::oauth_states::dsl as s;
        self.timed(async {
            let mut conn = self.conn().await?;
            let n: i64 = s::oauth_states
                .filter(s::tenant_id.eq(tenant.as_str()))
                .filter(s::expires_at.gt(now))
                .count()
                .get_result(&mut conn)
                .await
                .map_err(map_err)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn purge_states(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError> {
        use crate::schema::oauth_states::dsl as s;
        self.timed(async {
            let mut conn = self.conn().await?;
            let n = diesel::delete(s::oauth_states.filter(s::expires_at.lt(before)))
                .execute(&mut conn)
                .await
                .map_err(map_err)?;
            Ok(n as u64)
        })
        .await
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = crate::schema::api_keys, check_for_backend(diesel::pg::Pg))]
struct ApiKeyRow {
    id: uuid::Uuid,
    secret_hash: String,
    tenant_id: Option<String>,
    scopes: String,
    name: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<ApiKeyRow> for ApiKeyRecord {
    type Error = RepositoryError;
    fn try_from(r: ApiKeyRow) -> Result<Self, Self::Error> {
        ApiKeyRecord::from_columns(
            ApiKeyId::from_uuid(r.id),
            r.secret_hash,
            r.tenant_id.as_deref(),
            &r.scopes,
            r.name,
            r.created_at,
            r.revoked_at,
        )
    }
}

#[async_trait]
impl ApiKeyStore for PgConnectorRepository {
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), RepositoryError> {
        use crate::schema::api_keys::dsl as k;
        self.timed(async {
            let mut conn = self.conn().await?;
            diesel::insert_into(k::api_keys)
                .values((
                    k::id.eq(key.id.as_uuid()),
                    k::secret_hash.eq(&key.secret_hash),
                    k::tenant_id.eq(key.tenant_column()),
                    k::scopes.eq(key.scopes_column()),
                    k::name.eq(&key.name),
                    k::created_at.eq(key.created_at),
                    k::revoked_at.eq(key.revoked_at),
                ))
                .execute(&mut conn)
                .await
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn find_api_key(&self, id: ApiKeyId) -> Result<Option<ApiKeyRecord>, RepositoryError> {
        use crate::schema::api_keys::dsl as k;
        self.timed(async {
            let mut conn = self.conn().await?;
            let row: Option<ApiKeyRow> = k::api_keys
                .filter(k::id.eq(id.as_uuid()))
                .select(ApiKeyRow::as_select())
                .first(&mut conn)
                .await
                .optional()
                .map_err(map_err)?;
            row.map(ApiKeyRecord::try_from).transpose()
        })
        .await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, RepositoryError> {
        use crate::schema::api_keys::dsl as k;
        self.timed(async {
            let mut conn = self.conn().await?;
            let rows: Vec<ApiKeyRow> = k::api_keys
                .order((k::created_at.asc(), k::id.asc()))
                .select(ApiKeyRow::as_select())
                .load(&mut conn)
                .await
                .map_err(map_err)?;
            rows.into_iter().map(ApiKeyRecord::try_from).collect()
        })
        .await
    }

    async fn revoke_api_key(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        use crate::schema::api_keys::dsl as k;
        self.timed(async {
            let mut conn = self.conn().await?;
            let n = diesel::update(
                k::api_keys.filter(k::id.eq(id.as_uuid()).and(k::revoked_at.is_null())),
            )
            .set(k::revoked_at.eq(Some(at)))
            .execute(&mut conn)
            .await
            .map_err(map_err)?;
            Ok(n == 1)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn connection_class_errors_are_unavailable_and_statement_errors_are_not() {
        for e in [
            db(
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            db(
                DatabaseErrorKind::Unknown,
                "the database system is shutting down",
            ),
            db(
                DatabaseErrorKind::Unknown,
                "the database system is starting up",
            ),
            db(
                DatabaseErrorKind::Unknown,
                "terminating connection due to crash of another server process",
            ),
            db(DatabaseErrorKind::UnableToSendCommand, "connection closed"),
            db(DatabaseErrorKind::ClosedConnection, "gone"),
        ] {
            assert!(is_connection_error(&e), "{e}");
            assert!(matches!(map_err(e), RepositoryError::Unavailable(_)));
        }
        let syntax = db(
            DatabaseErrorKind::Unknown,
            "syntax error at or near \"SELEC\"",
        );
        assert!(!is_connection_error(&syntax));
        assert!(matches!(map_err(syntax), RepositoryError::Unknown(_)));
        assert!(matches!(
            map_err(db(
                DatabaseErrorKind::SerializationFailure,
                "could not serialize"
            )),
            RepositoryError::Unavailable(_)
        ));
    }
}
