//! The `connectors` table: its rows in the domain's terms, and the
//! [`ConnectorRepository`](connector_ports::ConnectorRepository) roles each backend instantiates
//! with [`connector_repository!`](crate::connector_repository).

use connector_domain::{
    AuthStatus, BotIdentity, ChannelId, ChannelName, Connector, ConnectorId, ConnectorName,
    ConnectorState, RequestId, TenantId, WorkspaceId,
};
use connector_ports::{ConnectorUpdate, RepositoryError};
use diesel::prelude::*;

use crate::errors::corrupt;
use crate::schema::connectors;
use crate::types::{DbId, DbTime};

/// One row of `connectors`.
#[derive(Debug, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = connectors)]
pub struct Row {
    id: DbId,
    tenant_id: String,
    name: String,
    workspace_id: String,
    default_channel_id: String,
    default_channel_name: String,
    state: String,
    #[allow(dead_code)]
    request_id: Option<String>,
    auth_status: String,
    created_at: DbTime,
    updated_at: DbTime,
    generation: i64,
    last_update_request_id: Option<String>,
    revoked_at: Option<DbTime>,
    default_channel_available: bool,
    slack_app_id: Option<String>,
    bot_user_id: Option<String>,
}

impl TryFrom<Row> for Connector {
    type Error = RepositoryError;
    fn try_from(r: Row) -> Result<Self, Self::Error> {
        let id = r.id.0;
        let bad = |what: String| corrupt(format!("connector {id}: {what}"));
        Ok(Connector {
            id: ConnectorId::from_uuid(id),
            tenant_id: TenantId::parse("tenant_id", &r.tenant_id)
                .map_err(|e| bad(e.to_string()))?,
            name: ConnectorName::parse("name", &r.name).map_err(|e| bad(e.to_string()))?,
            workspace_id: WorkspaceId::new(r.workspace_id),
            default_channel_id: ChannelId::new(r.default_channel_id),
            default_channel_name: ChannelName::new(r.default_channel_name),
            state: ConnectorState::from_stored(&r.state)
                .ok_or_else(|| bad(format!("unknown state {:?}", r.state)))?,
            auth_status: match r.revoked_at {
                Some(_) => AuthStatus::Revoked,
                None => AuthStatus::from_stored(&r.auth_status)
                    .ok_or_else(|| bad(format!("unknown auth status {:?}", r.auth_status)))?,
            },
            default_channel_available: r.default_channel_available,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            generation: r.generation,
            last_update_request_id: r
                .last_update_request_id
                .as_deref()
                .map(|v| RequestId::parse("request_id", v))
                .transpose()
                .map_err(|e| bad(e.to_string()))?,
            bot: r.bot_user_id.map(|bot_user_id| BotIdentity {
                bot_user_id,
                app_id: r.slack_app_id,
            }),
        })
    }
}

/// The connectors `rows` hold.
pub fn connectors(rows: Vec<Row>) -> Result<Vec<Connector>, RepositoryError> {
    rows.into_iter().map(Connector::try_from).collect()
}

/// The connector `row` holds, if any.
pub fn connector(row: Option<Row>) -> Result<Option<Connector>, RepositoryError> {
    row.map(Connector::try_from).transpose()
}

/// One line of the count by status.
#[derive(QueryableByName)]
pub struct CountRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    state: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    auth_status: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// The count by state and auth status (revoked counted as its own status), one SQL for both
/// backends.
pub const COUNT_BY_STATUS: &str = "SELECT state, \
       CASE WHEN revoked_at IS NOT NULL THEN 'revoked' ELSE auth_status END AS auth_status, \
       count(*) AS n \
     FROM connectors GROUP BY 1, 2";

impl CountRow {
    /// The port's line for this row.
    pub fn to_count(&self) -> Result<connector_ports::StatusCount, RepositoryError> {
        connector_ports::StatusCount::from_stored(&self.state, &self.auth_status, self.n)
    }
}

/// The columns an update sets; `None` leaves one as it is, `Some(None)` sets NULL.
#[derive(AsChangeset)]
#[diesel(table_name = connectors)]
pub struct UpdateRow<'a> {
    name: Option<&'a str>,
    default_channel_id: Option<&'a str>,
    default_channel_name: Option<&'a str>,
    last_update_request_id: Option<Option<&'a str>>,
    pending_secret_version: Option<&'a str>,
    auth_status: Option<&'a str>,
    token_expires_at: Option<Option<DbTime>>,
    refresh_lease_until: Option<Option<DbTime>>,
    refresh_fence: Option<Option<i64>>,
    revoked_at: Option<Option<DbTime>>,
    default_channel_available: Option<bool>,
    slack_app_id: Option<Option<&'a str>>,
    bot_user_id: Option<&'a str>,
}

impl<'a> UpdateRow<'a> {
    /// The columns `update` changes. A replaced token starts afresh: authorised, not revoked,
    /// no expiry or refresh lease of the old one.
    pub fn of(update: &'a ConnectorUpdate) -> Self {
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
            slack_app_id: update.bot.as_ref().map(|b| b.app_id.as_deref()),
            bot_user_id: update.bot.as_ref().map(|b| b.bot_user_id.as_str()),
        }
    }
}

/// Implements every role of [`ConnectorRepository`](connector_ports::ConnectorRepository) for `$repo`, whose
/// field `$pool` is a [`SqlPool`](crate::SqlPool) of the backend's connections, `$conn`.
///
/// Also gives `$repo` an inherent `pool_status`, for metrics. The one query that truly
/// differs stays with the backend: `$repo` provides `fn claim_stale_query(stale_after:
/// Duration, limit: u32) -> BoxedSqlQuery<'static, Backend, SqlQuery>`, the one statement that
/// atomically claims unfinished rows (flipped to `deleting`, `updated_at` renewed as the lease
/// other replicas respect, `RETURNING *`): PostgreSQL's skips rows another replica holds
/// (`FOR UPDATE SKIP LOCKED`), SQLite's relies on its single writer.
#[macro_export]
macro_rules! connector_repository {
    ($repo:ident . $pool:ident : $conn:ty) => {
        mod __sql_connector_repository {
            use super::$repo;
            use $crate::__private::*;
            use $crate::__private::domain::{
                AuthStatus, BotIdentity, ChannelId, ChannelName, Connector, ConnectorId,
                ConnectorState, ConnectorStatus, RequestId, TenantId, WorkspaceId,
            };
            use $crate::__private::ports::{
                ConnectorLifecycle, ConnectorQueries, ConnectorReconciliation, ConnectorUpdate,
                RefreshLeases, WorkspaceConnectors, NewConnector, PendingPromotion,
                RefreshOutcome, RepositoryError, StatusCount, StatusFilter,
            };
            use $crate::connectors::{connector, connectors, CountRow, Row, UpdateRow, COUNT_BY_STATUS};
            use $crate::schema::connectors::{self as table, dsl};

            const ACTIVE: &str = ConnectorState::Active.as_str();

            impl $repo {
                /// The pool's state, for metrics.
                pub fn pool_status(&self) -> $crate::__private::ports::PoolStatus {
                    self.$pool.status()
                }

                /// The connector `query` (which selects a [`Row`], at most one) finds: an
                /// idempotent read, run once more on a fresh connection when the first
                /// attempt's connection broke (a restarted server, a terminated backend).
                /// `query` has a static shape (never boxed), so each pooled connection
                /// prepares it once and reuses the statement.
                async fn one<Q>(&self, query: impl Fn() -> Q) -> Result<Option<Connector>, RepositoryError>
                where
                    Q: diesel_async::methods::LoadQuery<'static, $conn, Row> + Send + 'static,
                {
                    let row = $crate::read_retrying!(self.$pool, conn, {
                        query().get_result::<Row>(&mut conn).await.optional()
                    })?;
                    connector(row)
                }

                async fn remove_in_state(
                    &self,
                    id: ConnectorId,
                    state: ConnectorState,
                ) -> Result<(), RepositoryError> {
                    $crate::execute!(
                        self.$pool,
                        diesel::delete(
                            dsl::connectors
                                .filter(dsl::id.eq(DbId::from(id)))
                                .filter(dsl::state.eq(state.as_str())),
                        )
                    )
                    .map(|_| ())
                }
            }

            #[async_trait]
            impl ConnectorLifecycle for $repo {
                async fn insert_creating(&self, new: &NewConnector) -> Result<Connector, RepositoryError> {
                    $crate::with_conn!(self.$pool, conn, {
                        let row: Row = diesel::insert_into(table::table)
                            .values((
                                dsl::id.eq(DbId::from(new.id)),
                                dsl::tenant_id.eq(new.tenant_id.as_str()),
                                dsl::name.eq(new.name.as_str()),
                                dsl::workspace_id.eq(new.workspace_id.as_str()),
                                dsl::default_channel_id.eq(new.default_channel_id.as_str()),
                                dsl::default_channel_name.eq(new.default_channel_name.as_str()),
                                dsl::state.eq(ConnectorState::Creating.as_str()),
                                dsl::request_id.eq(new.request_id.as_ref().map(RequestId::as_str)),
                                dsl::token_expires_at.eq(new.token_expires_at.map(DbTime)),
                                dsl::slack_app_id.eq(new.bot.as_ref().and_then(|b| b.app_id.as_deref())),
                                dsl::bot_user_id.eq(new.bot.as_ref().map(|b| b.bot_user_id.as_str())),
                                dsl::created_at.eq(DbNow::now()),
                                dsl::updated_at.eq(DbNow::now()),
                            ))
                            .returning(Row::as_returning())
                            .get_result(&mut conn)
                            .await
                            .map_err(map_err)?;
                        row.try_into()
                    })
                }

                async fn mark_active(&self, id: ConnectorId) -> Result<Option<Connector>, RepositoryError> {
                    let row: Option<Row> = $crate::first!(
                        self.$pool,
                        diesel::update(
                            dsl::connectors
                                .filter(dsl::id.eq(DbId::from(id)))
                                .filter(dsl::state.eq(ConnectorState::Creating.as_str())),
                        )
                        .set((dsl::state.eq(ACTIVE), dsl::updated_at.eq(DbNow::now())))
                        .returning(Row::as_returning())
                    )?;
                    connector(row)
                }

                async fn remove_creating(&self, id: ConnectorId) -> Result<(), RepositoryError> {
                    self.remove_in_state(id, ConnectorState::Creating).await
                }

                async fn find_by_request_id(
                    &self,
                    tenant: &TenantId,
                    request_id: &RequestId,
                ) -> Result<Option<Connector>, RepositoryError> {
                    self.one(|| {
                        dsl::connectors
                            .filter(dsl::tenant_id.eq(tenant.as_str().to_owned()))
                            .filter(dsl::request_id.eq(request_id.as_str().to_owned()))
                            .select(Row::as_select())
                            .limit(1)
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
                    let row: Option<Row> = $crate::first!(
                        self.$pool,
                        diesel::update(
                            dsl::connectors
                                .filter(dsl::tenant_id.eq(tenant.as_str()))
                                .filter(dsl::id.eq(DbId::from(id)))
                                .filter(dsl::state.eq(ACTIVE))
                                .filter(dsl::generation.eq(generation)),
                        )
                        .set((
                            UpdateRow::of(update),
                            dsl::generation.eq(dsl::generation + 1),
                            dsl::updated_at.eq(DbNow::now()),
                        ))
                        .returning(Row::as_returning())
                    )?;
                    connector(row)
                }

                async fn mark_deleting(
                    &self,
                    tenant: &TenantId,
                    id: ConnectorId,
                ) -> Result<Option<Connector>, RepositoryError> {
                    let row: Option<Row> = $crate::first!(
                        self.$pool,
                        diesel::update(
                            dsl::connectors
                                .filter(dsl::tenant_id.eq(tenant.as_str()))
                                .filter(dsl::id.eq(DbId::from(id)))
                                .filter(dsl::state.eq_any([ACTIVE, ConnectorState::Deleting.as_str()])),
                        )
                        .set((
                            dsl::state.eq(ConnectorState::Deleting.as_str()),
                            dsl::updated_at.eq(DbNow::now()),
                        ))
                        .returning(Row::as_returning())
                    )?;
                    connector(row)
                }

                async fn remove_deleting(&self, id: ConnectorId) -> Result<(), RepositoryError> {
                    self.remove_in_state(id, ConnectorState::Deleting).await
                }

                async fn count_connectors(&self, tenant: &TenantId) -> Result<u64, RepositoryError> {
                    $crate::with_conn!(self.$pool, conn, {
                        let n: i64 = dsl::connectors
                            .filter(dsl::tenant_id.eq(tenant.as_str()))
                            .count()
                            .get_result(&mut conn)
                            .await
                            .map_err(map_err)?;
                        Ok(u64::try_from(n).unwrap_or(0))
                    })
                }
            }

            #[async_trait]
            impl ConnectorQueries for $repo {
                async fn get_active(
                    &self,
                    tenant: &TenantId,
                    id: ConnectorId,
                ) -> Result<Option<Connector>, RepositoryError> {
                    // The row by its key, then its tenant: one prepared statement for both reads.
                    Ok(self.find_active(id).await?.filter(|c| c.tenant_id == *tenant))
                }

                async fn find_active(&self, id: ConnectorId) -> Result<Option<Connector>, RepositoryError> {
                    self.one(|| {
                        dsl::connectors
                            .filter(dsl::id.eq(DbId::from(id)))
                            // Owned values: a borrowed one in the query's type makes the future
                            // only as Send as that borrow (rust-lang/rust#64552).
                            .filter(dsl::state.eq(ACTIVE.to_owned()))
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
                    let filter = StatusFilter::of(status);
                    // One static shape for every page and filter (the first page starts after
                    // the nil UUID, which no connector has; no filter is a filter every row
                    // passes), so the statement is prepared once per connection.
                    let after = DbId::from(after.unwrap_or_else(ConnectorId::nil));
                    let rows = $crate::read_retrying!(self.$pool, conn, {
                        dsl::connectors
                            .filter(dsl::tenant_id.eq(tenant.as_str()))
                            .filter(dsl::state.eq(ACTIVE))
                            .filter(dsl::id.gt(after))
                            .filter(filter.any_auth.into_sql::<Bool>().or(dsl::auth_status.eq(filter.auth)))
                            .filter(
                                filter.any_revoked.into_sql::<Bool>()
                                    .or(dsl::revoked_at.is_not_null().eq(filter.revoked)),
                            )
                            .filter(
                                filter.any_channel.into_sql::<Bool>()
                                    .or(dsl::default_channel_available.eq(filter.channel_available)),
                            )
                            .order(dsl::id.asc())
                            .limit(i64::from(limit))
                            .select(Row::as_select())
                            .load::<Row>(&mut conn)
                            .await
                    })?;
                    connectors(rows)
                }

                async fn count_by_status(&self) -> Result<Vec<StatusCount>, RepositoryError> {
                    let rows: Vec<CountRow> = $crate::load!(
                        self.$pool,
                        diesel::sql_query(COUNT_BY_STATUS)
                    )?;
                    rows.iter().map(CountRow::to_count).collect()
                }
            }

            #[async_trait]
            impl WorkspaceConnectors for $repo {
                async fn revoke_workspace<'a>(
                    &self,
                    workspace: &WorkspaceId,
                    app: &str,
                    bot_users: Option<&'a [String]>,
                ) -> Result<Vec<Connector>, RepositoryError> {
                    // One statement for both: without a list of bot users, every bot of the
                    // app passes.
                    let every_bot = bot_users.is_none();
                    let bot_users = bot_users.unwrap_or_default();
                    let rows: Vec<Row> = $crate::load!(
                        self.$pool,
                        diesel::update(
                            dsl::connectors
                                .filter(dsl::workspace_id.eq(workspace.as_str()))
                                .filter(dsl::slack_app_id.eq(app))
                                .filter(
                                    every_bot.into_sql::<diesel::sql_types::Bool>().nullable()
                                        .or(dsl::bot_user_id.eq_any(bot_users)),
                                )
                                .filter(dsl::state.eq(ACTIVE)),
                        )
                        .set((
                            dsl::revoked_at.eq(coalesce(dsl::revoked_at, DbNow::now().nullable())),
                            // The token is gone: nothing to refresh.
                            dsl::token_expires_at.eq(None::<DbTime>),
                            dsl::updated_at.eq(DbNow::now()),
                        ))
                        .returning(Row::as_returning())
                    )?;
                    connectors(rows)
                }

                async fn rename_channel(
                    &self,
                    workspace: &WorkspaceId,
                    app: &str,
                    channel: &ChannelId,
                    name: &ChannelName,
                ) -> Result<u64, RepositoryError> {
                    $crate::execute!(
                        self.$pool,
                        diesel::update(
                            dsl::connectors
                                .filter(dsl::workspace_id.eq(workspace.as_str()))
                                .filter(dsl::slack_app_id.eq(app))
                                .filter(dsl::default_channel_id.eq(channel.as_str()))
                                .filter(dsl::default_channel_name.ne(name.as_str())),
                        )
                        .set((
                            dsl::default_channel_name.eq(name.as_str()),
                            dsl::updated_at.eq(DbNow::now()),
                        ))
                    )
                }

                async fn set_channel_available(
                    &self,
                    workspace: &WorkspaceId,
                    app: &str,
                    channel: &ChannelId,
                    available: bool,
                ) -> Result<u64, RepositoryError> {
                    $crate::execute!(
                        self.$pool,
                        diesel::update(
                            dsl::connectors
                                .filter(dsl::workspace_id.eq(workspace.as_str()))
                                .filter(dsl::slack_app_id.eq(app))
                                .filter(dsl::default_channel_id.eq(channel.as_str()))
                                .filter(dsl::default_channel_available.ne(available)),
                        )
                        .set((
                            dsl::default_channel_available.eq(available),
                            dsl::updated_at.eq(DbNow::now()),
                        ))
                    )
                }

                async fn of_app(
                    &self,
                    workspace: &WorkspaceId,
                    app: &str,
                ) -> Result<Vec<Connector>, RepositoryError> {
                    let rows: Vec<Row> = $crate::load!(
                        self.$pool,
                        dsl::connectors
                            .filter(dsl::workspace_id.eq(workspace.as_str()))
                            .filter(dsl::slack_app_id.eq(app))
                            .filter(dsl::state.eq(ACTIVE))
                            .filter(dsl::revoked_at.is_null())
                            .order(dsl::created_at.asc())
                            .select(Row::as_select())
                    )?;
                    connectors(rows)
                }

                async fn unidentified<'a>(
                    &self,
                    workspace: Option<&'a WorkspaceId>,
                    limit: u32,
                ) -> Result<Vec<Connector>, RepositoryError> {
                    let any_workspace = workspace.is_none();
                    let workspace = workspace.map(WorkspaceId::as_str).unwrap_or_default();
                    let rows: Vec<Row> = $crate::load!(
                        self.$pool,
                        dsl::connectors
                            .filter(dsl::bot_user_id.is_null())
                            .filter(dsl::state.eq(ACTIVE))
                            .filter(dsl::auth_status.eq(AuthStatus::Ok.as_str()))
                            .filter(dsl::revoked_at.is_null())
                            .filter(
                                any_workspace.into_sql::<diesel::sql_types::Bool>()
                                    .or(dsl::workspace_id.eq(workspace)),
                            )
                            .order(dsl::created_at.asc())
                            .limit(i64::from(limit))
                            .select(Row::as_select())
                    )?;
                    connectors(rows)
                }

                async fn record_bot(
                    &self,
                    id: ConnectorId,
                    bot: &BotIdentity,
                ) -> Result<bool, RepositoryError> {
                    $crate::execute!(
                        self.$pool,
                        diesel::update(
                            dsl::connectors
                                .filter(dsl::id.eq(DbId::from(id)))
                                .filter(dsl::bot_user_id.is_null()),
                        )
                        .set((
                            dsl::slack_app_id.eq(bot.app_id.as_deref()),
                            dsl::bot_user_id.eq(bot.bot_user_id.as_str()),
                        ))
                    )
                    .map(|n| n > 0)
                }
            }

            #[async_trait]
            impl RefreshLeases for $repo {
                async fn tokens_expiring(
                    &self,
                    before: DateTime<Utc>,
                    limit: u32,
                ) -> Result<Vec<Connector>, RepositoryError> {
                    let rows: Vec<Row> = $crate::load!(
                        self.$pool,
                        dsl::connectors
                            .filter(dsl::state.eq(ACTIVE))
                            .filter(dsl::auth_status.eq(AuthStatus::Ok.as_str()))
                            .filter(dsl::token_expires_at.lt(DbTime(before)))
                            .filter(
                                dsl::refresh_lease_until
                                    .is_null()
                                    .or(dsl::refresh_lease_until.lt(DbNow::now().nullable())),
                            )
                            .order(dsl::token_expires_at.asc())
                            .limit(i64::from(limit))
                            .select(Row::as_select())
                    )?;
                    connectors(rows)
                }

                async fn lease_token_refresh(
                    &self,
                    id: ConnectorId,
                    lease: Duration,
                    fence: i64,
                ) -> Result<bool, RepositoryError> {
                    $crate::execute!(
                        self.$pool,
                        diesel::update(
                            dsl::connectors
                                .filter(dsl::id.eq(DbId::from(id)))
                                .filter(dsl::state.eq(ACTIVE))
                                .filter(
                                    dsl::refresh_lease_until
                                        .is_null()
                                        .or(dsl::refresh_lease_until.lt(DbNow::now().nullable())),
                                ),
                        )
                        .set((
                            dsl::refresh_lease_until.eq(DbNow::plus(lease).nullable()),
                            dsl::refresh_fence.eq(Some(fence)),
                        ))
                    )
                    .map(|taken| taken == 1)
                }

                async fn renew_token_refresh(
                    &self,
                    id: ConnectorId,
                    fence: i64,
                    lease: Duration,
                ) -> Result<bool, RepositoryError> {
                    $crate::execute!(
                        self.$pool,
                        diesel::update(
                            dsl::connectors
                                .filter(dsl::id.eq(DbId::from(id)))
                                .filter(dsl::refresh_fence.eq(fence))
                                .filter(dsl::refresh_lease_until.is_not_null()),
                        )
                        .set(dsl::refresh_lease_until.eq(DbNow::plus(lease).nullable()))
                    )
                    .map(|renewed| renewed == 1)
                }

                async fn finish_token_refresh(
                    &self,
                    id: ConnectorId,
                    fence: i64,
                    outcome: RefreshOutcome,
                ) -> Result<bool, RepositoryError> {
                    $crate::with_conn!(self.$pool, conn, {
                        // Only the lease's holder records an outcome: a late finisher changes
                        // nothing.
                        let target = dsl::connectors
                            .filter(dsl::id.eq(DbId::from(id)))
                            .filter(dsl::refresh_fence.eq(fence))
                            .filter(dsl::refresh_lease_until.is_not_null());
                        let lease = (
                            dsl::refresh_lease_until.eq(None::<DbTime>),
                            dsl::refresh_fence.eq(None::<i64>),
                        );
                        match outcome {
                            RefreshOutcome::Refreshed { expires_at } => {
                                diesel::update(target)
                                    .set((
                                        lease,
                                        dsl::token_expires_at.eq(Some(DbTime(expires_at))),
                                        dsl::auth_status.eq(AuthStatus::Ok.as_str()),
                                        dsl::updated_at.eq(DbNow::now()),
                                    ))
                                    .execute(&mut conn)
                                    .await
                            }
                            RefreshOutcome::Failed => {
                                diesel::update(target)
                                    .set((
                                        lease,
                                        dsl::auth_status.eq(AuthStatus::NeedsReauthorization.as_str()),
                                        dsl::updated_at.eq(DbNow::now()),
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
                }
            }

            #[async_trait]
            impl ConnectorReconciliation for $repo {
                async fn claim_stale(
                    &self,
                    stale_after: Duration,
                    limit: u32,
                ) -> Result<Vec<Connector>, RepositoryError> {
                    let rows: Vec<Row> = $crate::load!(
                        self.$pool,
                        <$repo>::claim_stale_query(stale_after, limit)
                    )?;
                    connectors(rows)
                }


                async fn pending_promotions(
                    &self,
                    older_than: Duration,
                    limit: u32,
                ) -> Result<Vec<PendingPromotion>, RepositoryError> {
                    let rows: Vec<(Row, String)> = $crate::load!(
                        self.$pool,
                        dsl::connectors
                            .filter(dsl::pending_secret_version.is_not_null())
                            .filter(dsl::state.eq(ACTIVE))
                            .filter(dsl::updated_at.lt(DbNow::minus(older_than)))
                            .order(dsl::updated_at.asc())
                            .limit(i64::from(limit))
                            .select((Row::as_select(), dsl::pending_secret_version.assume_not_null()))
                    )?;
                    rows.into_iter()
                        .map(|(row, version)| {
                            Ok(PendingPromotion { connector: row.try_into()?, version })
                        })
                        .collect()
                }

                async fn clear_pending_promotion(
                    &self,
                    id: ConnectorId,
                    version: &str,
                ) -> Result<bool, RepositoryError> {
                    // No updated_at: the row's content does not change, only the bookkeeping.
                    $crate::execute!(
                        self.$pool,
                        diesel::update(
                            dsl::connectors
                                .filter(dsl::id.eq(DbId::from(id)))
                                .filter(dsl::pending_secret_version.eq(version)),
                        )
                        .set(dsl::pending_secret_version.eq(None::<String>))
                    )
                    .map(|n| n == 1)
                }

                async fn is_pending_promotion(
                    &self,
                    id: ConnectorId,
                    version: &str,
                ) -> Result<bool, RepositoryError> {
                    let found: Option<DbId> = $crate::first!(
                        self.$pool,
                        dsl::connectors
                            .filter(dsl::id.eq(DbId::from(id)))
                            .filter(dsl::pending_secret_version.eq(version))
                            .select(dsl::id)
                            .limit(1)
                    )?;
                    Ok(found.is_some())
                }
            }
        }
    };
}
