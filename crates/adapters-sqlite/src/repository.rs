//! [`SqliteConnectorRepository`]: the repository and OAuth state store over one SQLite file.

use std::future::Future;
use std::path::Path;
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
use diesel::sqlite::SqliteConnection;
use diesel_async::pooled_connection::bb8::{Pool, PooledConnection, RunError};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection as _, RunQueryDsl, SimpleAsyncConnection as _};

use crate::SqliteSetupError;
use crate::schema::connectors::{self, dsl};

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
#[derive(Clone)]
pub struct SqliteConnectorRepository {
    pool: Pool<Conn>,
    query_timeout: Duration,
    max_connections: u32,
}

impl std::fmt::Debug for SqliteConnectorRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteConnectorRepository")
            .finish_non_exhaustive()
    }
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
        let pool = Pool::builder()
            .max_size(settings.max_connections.max(1))
            .connection_timeout(settings.connect_timeout)
            .build(manager)
            .await
            .map_err(|e| SqliteSetupError::Open(e.to_string()))?;
        drop(
            pool.get()
                .await
                .map_err(|e| SqliteSetupError::Open(e.to_string()))?,
        );
        Ok(Self {
            pool,
            query_timeout: settings.query_timeout,
            max_connections: settings.max_connections.max(1),
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

    pub(crate) async fn conn(&self) -> Result<PooledConnection<'_, Conn>, RepositoryError> {
        self.pool.get().await.map_err(|e| match e {
            RunError::TimedOut => {
                RepositoryError::Unavailable("timed out waiting for a database connection".into())
            }
            RunError::User(e) => {
                RepositoryError::Unavailable(format!("cannot open the database: {e}"))
            }
        })
    }

    pub(crate) async fn timed<T>(
        &self,
        f: impl Future<Output = Result<T, RepositoryError>>,
    ) -> Result<T, RepositoryError> {
        tokio::time::timeout(self.query_timeout, f)
            .await
            .map_err(|_| RepositoryError::Unavailable("database query timed out".into()))?
    }

    /// The connector `query` (which selects a [`Row`], at most one) finds. `query` has a
    /// static shape (never boxed), so each pooled connection prepares it once.
    async fn first<Q>(&self, query: Q) -> Result<Option<Connector>, RepositoryError>
    where
        Q: diesel_async::methods::LoadQuery<'static, Conn, Row> + Send + 'static,
    {
        self.timed(async {
            let mut conn = self.conn().await?;
            let row: Option<Row> = query
                .get_result(&mut conn)
                .await
                .optional()
                .map_err(map_err)?;
            row.map(Connector::try_from).transpose()
        })
        .await
    }
}

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn now_micros() -> i64 {
    micros(Utc::now())
}

#[derive(Debug, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = connectors, check_for_backend(diesel::sqlite::Sqlite))]
struct Row {
    id: String,
    tenant_id: String,
    name: String,
    workspace_id: String,
    default_channel_id: String,
    default_channel_name: String,
    state: String,
    #[allow(dead_code)]
    request_id: Option<String>,
    auth_status: String,
    created_at: i64,
    updated_at: i64,
    generation: i64,
    last_update_request_id: Option<String>,
    revoked_at: Option<i64>,
    default_channel_available: bool,
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
    token_expires_at: Option<Option<i64>>,
    refresh_lease_until: Option<Option<i64>>,
    refresh_fence: Option<Option<i64>>,
    revoked_at: Option<Option<i64>>,
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
            RepositoryError::Unknown(anyhow::anyhow!("corrupt row {}: {what}", r.id))
        };
        let time = |us: i64| {
            DateTime::<Utc>::from_timestamp_micros(us)
                .ok_or_else(|| corrupt(format!("timestamp {us} out of range")))
        };
        Ok(Connector {
            id: ConnectorId::parse("id", &r.id).map_err(|e| corrupt(e.to_string()))?,
            tenant_id: TenantId::parse("tenant_id", &r.tenant_id)
                .map_err(|e| corrupt(e.to_string()))?,
            name: ConnectorName::parse("name", &r.name).map_err(|e| corrupt(e.to_string()))?,
            workspace_id: WorkspaceId::new(r.workspace_id.clone()),
            default_channel_id: ChannelId::new(r.default_channel_id.clone()),
            default_channel_name: ChannelName::new(r.default_channel_name.clone()),
            state: ConnectorState::from_stored(&r.state)
                .ok_or_else(|| corrupt(format!("unknown state {:?}", r.state)))?,
            auth_status: match r.revoked_at {
                Some(_) => AuthStatus::Revoked,
                None => AuthStatus::from_stored(&r.auth_status)
                    .ok_or_else(|| corrupt(format!("unknown auth status {:?}", r.auth_status)))?,
            },
            default_channel_available: r.default_channel_available,
            created_at: time(r.created_at)?,
            updated_at: time(r.updated_at)?,
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

#[derive(Insertable)]
#[diesel(table_name = connectors)]
struct NewRow<'a> {
    id: String,
    tenant_id: &'a str,
    name: &'a str,
    workspace_id: &'a str,
    default_channel_id: &'a str,
    default_channel_name: &'a str,
    state: &'a str,
    request_id: Option<&'a str>,
    token_expires_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

pub(crate) fn map_err(e: DieselError) -> RepositoryError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            let message = info.message();
            if message.contains("connectors.name") {
                RepositoryError::DuplicateName
            } else if message.contains("connectors.request_id") {
                RepositoryError::DuplicateRequestId
            } else {
                RepositoryError::Unknown(anyhow::anyhow!("unexpected unique violation: {message}"))
            }
        }
        DieselError::DatabaseError(_, info)
            if info.message().contains("database is locked")
                || info.message().contains("database is busy") =>
        {
            RepositoryError::Unavailable(format!("the database is busy: {}", info.message()))
        }
        other => RepositoryError::Unknown(anyhow::Error::new(other)),
    }
}

fn one(row: Option<Row>) -> Result<Option<Connector>, RepositoryError> {
    row.map(Connector::try_from).transpose()
}

fn many(rows: Vec<Row>) -> Result<Vec<Connector>, RepositoryError> {
    rows.into_iter().map(Connector::try_from).collect()
}

#[async_trait]
impl ConnectorRepository for SqliteConnectorRepository {
    async fn insert_creating(&self, new: &NewConnector) -> Result<Connector, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let now = now_micros();
            let row: Row = diesel::insert_into(connectors::table)
                .values(NewRow {
                    id: new.id.to_string(),
                    tenant_id: new.tenant_id.as_str(),
                    name: new.name.as_str(),
                    workspace_id: new.workspace_id.as_str(),
                    default_channel_id: new.default_channel_id.as_str(),
                    default_channel_name: new.default_channel_name.as_str(),
                    state: ConnectorState::Creating.as_str(),
                    request_id: new.request_id.as_ref().map(RequestId::as_str),
                    token_expires_at: new.token_expires_at.map(micros),
                    created_at: now,
                    updated_at: now,
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
            let row = diesel::update(
                dsl::connectors
                    .filter(dsl::id.eq(id.to_string()))
                    .filter(dsl::state.eq(ConnectorState::Creating.as_str())),
            )
            .set((
                dsl::state.eq(ConnectorState::Active.as_str()),
                dsl::updated_at.eq(now_micros()),
            ))
            .returning(Row::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(map_err)?;
            one(row)
        })
        .await
    }

    async fn remove_creating(&self, id: ConnectorId) -> Result<(), RepositoryError> {
        self.remove_in_state(id, ConnectorState::Creating).await
    }

    async fn find_by_request_id(
        &self,
        tenant: &TenantId,
        request_id: &RequestId,
    ) -> Result<Option<Connector>, RepositoryError> {
        self.first(
            dsl::connectors
                .filter(dsl::tenant_id.eq(tenant.as_str().to_owned()))
                .filter(dsl::request_id.eq(request_id.as_str().to_owned()))
                .select(Row::as_select())
                .limit(1),
        )
        .await
    }

    async fn get_active(
        &self,
        tenant: &TenantId,
        id: ConnectorId,
    ) -> Result<Option<Connector>, RepositoryError> {
        self.first(
            dsl::connectors
                .filter(dsl::tenant_id.eq(tenant.as_str().to_owned()))
                .filter(dsl::id.eq(id.to_string()))
                .filter(dsl::state.eq(ConnectorState::Active.as_str().to_owned()))
                .select(Row::as_select())
                .limit(1),
        )
        .await
    }

    async fn find_active(&self, id: ConnectorId) -> Result<Option<Connector>, RepositoryError> {
        self.first(
            dsl::connectors
                .filter(dsl::id.eq(id.to_string()))
                .filter(dsl::state.eq(ConnectorState::Active.as_str().to_owned()))
                .select(Row::as_select())
                .limit(1),
        )
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
            let mut conn = self.conn().await?;
            // One static shape for every page (the first starts after "", before every ID)
            // and every filter.
            let after = after.map(|a| a.to_string()).unwrap_or_default();
            let query = dsl::connectors
                .filter(dsl::tenant_id.eq(tenant.as_str()))
                .filter(dsl::state.eq(ConnectorState::Active.as_str()))
                .filter(dsl::id.gt(after))
                .filter(
                    filter
                        .any_auth
                        .into_sql::<Bool>()
                        .or(dsl::auth_status.eq(filter.auth)),
                )
                .filter(
                    filter
                        .any_revoked
                        .into_sql::<Bool>()
                        .or(dsl::revoked_at.is_not_null().eq(filter.revoked)),
                )
                .filter(
                    filter
                        .any_channel
                        .into_sql::<Bool>()
                        .or(dsl::default_channel_available.eq(filter.channel_available)),
                )
                .order(dsl::id.asc())
                .limit(i64::from(limit))
                .select(Row::as_select());
            many(query.load(&mut conn).await.map_err(map_err)?)
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
            let row = diesel::update(
                dsl::connectors
                    .filter(dsl::tenant_id.eq(tenant.as_str()))
                    .filter(dsl::id.eq(id.to_string()))
                    .filter(dsl::state.eq_any([
                        ConnectorState::Active.as_str(),
                        ConnectorState::Deleting.as_str(),
                    ])),
            )
            .set((
                dsl::state.eq(ConnectorState::Deleting.as_str()),
                dsl::updated_at.eq(now_micros()),
            ))
            .returning(Row::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(map_err)?;
            one(row)
        })
        .await
    }

    async fn remove_deleting(&self, id: ConnectorId) -> Result<(), RepositoryError> {
        self.remove_in_state(id, ConnectorState::Deleting).await
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
            let row = diesel::update(
                dsl::connectors
                    .filter(dsl::tenant_id.eq(tenant.as_str()))
                    .filter(dsl::id.eq(id.to_string()))
                    .filter(dsl::state.eq(ConnectorState::Active.as_str()))
                    .filter(dsl::generation.eq(generation)),
            )
            .set((
                UpdateRow::of(update),
                dsl::generation.eq(dsl::generation + 1),
                dsl::updated_at.eq(now_micros()),
            ))
            .returning(Row::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(map_err)?;
            one(row)
        })
        .await
    }

    async fn revoke_workspace(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Vec<Connector>, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let now = now_micros();
            let rows: Vec<Row> = diesel::sql_query(
                "UPDATE connectors SET revoked_at = coalesce(revoked_at, ?), token_expires_at = NULL, \
                   updated_at = ? \
                 WHERE workspace_id = ? AND state = 'active' RETURNING *",
            )
            .bind::<diesel::sql_types::BigInt, _>(now)
            .bind::<diesel::sql_types::BigInt, _>(now)
            .bind::<diesel::sql_types::Text, _>(workspace.as_str())
            .load(&mut conn)
            .await
            .map_err(map_err)?;
            many(rows)
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
                dsl::updated_at.eq(now_micros()),
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
                dsl::updated_at.eq(now_micros()),
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
            let cutoff = now_micros()
                .saturating_sub(i64::try_from(older_than.as_micros()).unwrap_or(i64::MAX));
            let rows: Vec<PendingRow> = diesel::sql_query(
                "SELECT * FROM connectors \
                 WHERE pending_secret_version IS NOT NULL AND state = 'active' \
                   AND updated_at < ? \
                 ORDER BY updated_at LIMIT ?",
            )
            .bind::<diesel::sql_types::BigInt, _>(cutoff)
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
            let n = diesel::update(
                dsl::connectors
                    .filter(dsl::id.eq(id.to_string()))
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
            let now = now_micros();
            let until = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
            let taken = diesel::update(
                dsl::connectors
                    .filter(dsl::id.eq(id.to_string()))
                    .filter(dsl::state.eq(ConnectorState::Active.as_str()))
                    .filter(
                        dsl::refresh_lease_until
                            .is_null()
                            .or(dsl::refresh_lease_until.lt(now)),
                    ),
            )
            .set((
                dsl::refresh_lease_until.eq(Some(until)),
                dsl::refresh_fence.eq(Some(fence)),
            ))
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
            let until =
                now_micros().saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
            let renewed = diesel::update(
                dsl::connectors
                    .filter(dsl::id.eq(id.to_string()))
                    .filter(dsl::refresh_fence.eq(fence))
                    .filter(dsl::refresh_lease_until.is_not_null()),
            )
            .set(dsl::refresh_lease_until.eq(Some(until)))
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
                .filter(dsl::id.eq(id.to_string()))
                .filter(dsl::refresh_fence.eq(fence))
                .filter(dsl::refresh_lease_until.is_not_null());
            let lease = (
                dsl::refresh_lease_until.eq(None::<i64>),
                dsl::refresh_fence.eq(None::<i64>),
            );
            match outcome {
                RefreshOutcome::Refreshed { expires_at } => {
                    diesel::update(target)
                        .set((
                            lease,
                            dsl::token_expires_at.eq(Some(micros(expires_at))),
                            dsl::auth_status.eq(AuthStatus::Ok.as_str()),
                            dsl::updated_at.eq(now_micros()),
                        ))
                        .execute(&mut conn)
                        .await
                }
                RefreshOutcome::Failed => {
                    diesel::update(target)
                        .set((
                            lease,
                            dsl::auth_status.eq(AuthStatus::NeedsReauthorization.as_str()),
                            dsl::updated_at.eq(now_micros()),
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
            let now = now_micros();
            let rows: Vec<Row> = dsl::connectors
                .filter(dsl::state.eq(ConnectorState::Active.as_str()))
                .filter(dsl::auth_status.eq(AuthStatus::Ok.as_str()))
                .filter(dsl::token_expires_at.lt(micros(before)))
                .filter(
                    dsl::refresh_lease_until
                        .is_null()
                        .or(dsl::refresh_lease_until.lt(now)),
                )
                .order(dsl::token_expires_at.asc())
                .limit(i64::from(limit))
                .select(Row::as_select())
                .load(&mut conn)
                .await
                .map_err(map_err)?;
            many(rows)
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
            let now = now_micros();
            let cutoff =
                now.saturating_sub(i64::try_from(stale_after.as_micros()).unwrap_or(i64::MAX));
            // One statement, and SQLite runs one writer at a time: the claim is atomic.
            let rows: Vec<Row> = diesel::sql_query(
                "UPDATE connectors SET state = 'deleting', updated_at = ? \
                 WHERE id IN ( \
                   SELECT id FROM connectors \
                   WHERE state <> 'active' AND updated_at < ? \
                   ORDER BY updated_at LIMIT ?) \
                 RETURNING *",
            )
            .bind::<diesel::sql_types::BigInt, _>(now)
            .bind::<diesel::sql_types::BigInt, _>(cutoff)
            .bind::<diesel::sql_types::BigInt, _>(i64::from(limit))
            .load(&mut conn)
            .await
            .map_err(map_err)?;
            many(rows)
        })
        .await
    }
}

impl SqliteConnectorRepository {
    async fn remove_in_state(
        &self,
        id: ConnectorId,
        state: ConnectorState,
    ) -> Result<(), RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            diesel::delete(
                dsl::connectors
                    .filter(dsl::id.eq(id.to_string()))
                    .filter(dsl::state.eq(state.as_str())),
            )
            .execute(&mut conn)
            .await
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = crate::schema::oauth_states, check_for_backend(diesel::sqlite::Sqlite))]
struct StateRow {
    tenant_id: String,
    name: String,
    default_channel: String,
    expires_at: i64,
    browser_hash: Option<String>,
    team_id: Option<String>,
}

impl TryFrom<StateRow> for PendingInstall {
    type Error = RepositoryError;
    fn try_from(r: StateRow) -> Result<Self, Self::Error> {
        let corrupt =
            |e: String| RepositoryError::Unknown(anyhow::anyhow!("corrupt oauth state: {e}"));
        Ok(PendingInstall {
            tenant_id: TenantId::parse("tenant_id", &r.tenant_id)
                .map_err(|e| corrupt(e.to_string()))?,
            name: ConnectorName::parse("name", &r.name).map_err(|e| corrupt(e.to_string()))?,
            default_channel: r.default_channel,
            expires_at: DateTime::<Utc>::from_timestamp_micros(r.expires_at)
                .ok_or_else(|| corrupt("expiry out of range".into()))?,
            team_id: r.team_id.map(WorkspaceId::new),
            browser_hash: r.browser_hash,
        })
    }
}

#[async_trait]
impl OAuthStateStore for SqliteConnectorRepository {
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
                    s::created_at.eq(now_micros()),
                    s::expires_at.eq(micros(pending.expires_at)),
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
                    .filter(s::expires_at.gt(micros(now))),
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
                .filter(s::expires_at.gt(micros(now)))
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
            let n = diesel::delete(s::oauth_states.filter(s::expires_at.lt(micros(before))))
                .execute(&mut conn)
                .await
                .map_err(map_err)?;
            Ok(n as u64)
        })
        .await
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = crate::schema::api_keys, check_for_backend(diesel::sqlite::Sqlite))]
struct ApiKeyRow {
    id: String,
    secret_hash: String,
    tenant_id: Option<String>,
    scopes: String,
    name: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<ApiKeyRow> for ApiKeyRecord {
    type Error = RepositoryError;
    fn try_from(r: ApiKeyRow) -> Result<Self, Self::Error> {
        let corrupt = |what: &str| {
            RepositoryError::Unknown(anyhow::anyhow!("corrupt API key {}: {what}", r.id))
        };
        let time = |t: i64| {
            DateTime::<Utc>::from_timestamp_micros(t).ok_or_else(|| corrupt("time out of range"))
        };
        ApiKeyRecord::from_columns(
            ApiKeyId::parse("id", &r.id).map_err(|_| corrupt("bad id"))?,
            r.secret_hash.clone(),
            r.tenant_id.as_deref(),
            &r.scopes,
            r.name.clone(),
            time(r.created_at)?,
            r.revoked_at.map(time).transpose()?,
        )
    }
}

#[async_trait]
impl ApiKeyStore for SqliteConnectorRepository {
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), RepositoryError> {
        use crate::schema::api_keys::dsl as k;
        self.timed(async {
            let mut conn = self.conn().await?;
            diesel::insert_into(k::api_keys)
                .values((
                    k::id.eq(key.id.as_uuid().to_string()),
                    k::secret_hash.eq(&key.secret_hash),
                    k::tenant_id.eq(key.tenant_column()),
                    k::scopes.eq(key.scopes_column()),
                    k::name.eq(&key.name),
                    k::created_at.eq(micros(key.created_at)),
                    k::revoked_at.eq(key.revoked_at.map(micros)),
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
                .filter(k::id.eq(id.as_uuid().to_string()))
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
                k::api_keys
                    .filter(k::id.eq(id.as_uuid().to_string()))
                    .filter(k::revoked_at.is_null()),
            )
            .set(k::revoked_at.eq(Some(micros(at))))
            .execute(&mut conn)
            .await
            .map_err(map_err)?;
            Ok(n == 1)
        })
        .await
    }
}
