//! The `outbound_messages` and `delivery_budgets` tables (queued delivery), and the
//! [`Outbox`](connector_ports::Outbox) body each backend instantiates with
//! [`outbox!`](crate::outbox!).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use connector_domain::{
    ChannelId, ConnectorId, Delivery, MessageId, MessageStatus, Pace, TenantId,
};
use connector_ports::{OutboundRecord, RepositoryError};
use diesel::prelude::*;

use crate::errors::corrupt;
use crate::types::{DbId, DbTime};

/// One row of `outbound_messages`.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = crate::schema::outbound_messages)]
pub struct OutboxRow {
    id: DbId,
    tenant_id: String,
    connector_id: DbId,
    /// The workspace (the claim orders by it).
    pub team_id: String,
    /// The channel (the claim orders by it).
    pub channel_id: String,
    request_id: Option<String>,
    fingerprint: String,
    body_json: String,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    ts: Option<String>,
    /// When queued (the claim orders by it).
    pub created_at: DbTime,
    next_attempt_at: DbTime,
    deadline_at: DbTime,
    finished_at: Option<DbTime>,
    delivery: String,
    attempted_at: Option<DbTime>,
    unconfirmed_since: Option<DbTime>,
}

impl OutboxRow {
    /// The row's ID.
    pub fn id(&self) -> DbId {
        self.id
    }
}

impl TryFrom<OutboxRow> for OutboundRecord {
    type Error = RepositoryError;
    fn try_from(r: OutboxRow) -> Result<Self, Self::Error> {
        let status = MessageStatus::from_name(&r.status)
            .ok_or_else(|| corrupt(format!("outbound message {} status {:?}", r.id.0, r.status)))?;
        Ok(OutboundRecord {
            id: MessageId::from_uuid(r.id.0),
            tenant_id: TenantId::parse("tenant_id", &r.tenant_id)
                .map_err(|e| corrupt(format!("outbound message {}: {e}", r.id.0)))?,
            connector_id: ConnectorId::from_uuid(r.connector_id.0),
            team_id: r.team_id,
            channel_id: ChannelId::new(&r.channel_id),
            request_id: r.request_id,
            delivery: Delivery::from_name(&r.delivery).ok_or_else(|| {
                corrupt(format!(
                    "outbound message {} delivery {:?}",
                    r.id.0, r.delivery
                ))
            })?,
            fingerprint: r.fingerprint,
            body_json: r.body_json,
            status,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            last_error: r.last_error,
            ts: r.ts,
            created_at: r.created_at.0,
            next_attempt_at: r.next_attempt_at.0,
            deadline: r.deadline_at.0,
            finished_at: r.finished_at.map(|t| t.0),
            attempted_at: r.attempted_at.map(|t| t.0),
            unconfirmed_since: r.unconfirmed_since.map(|t| t.0),
        })
    }
}

/// The rows, as records.
pub fn records(rows: Vec<OutboxRow>) -> Result<Vec<OutboundRecord>, RepositoryError> {
    rows.into_iter().map(OutboundRecord::try_from).collect()
}

/// What a backend's claim statement returns: the IDs it leased.
#[derive(Debug, QueryableByName)]
pub struct ClaimedId {
    /// The message's ID.
    #[diesel(sql_type = crate::types::Id)]
    pub id: DbId,
}

/// One budget as a backend's `lock_budget_rows` reads it.
#[derive(Debug, Clone, QueryableByName)]
pub struct BudgetRow {
    /// Its scope ([`channel_scope`] or [`workspace_scope`]).
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub scope: String,
    /// Its theoretical arrival time.
    #[diesel(sql_type = crate::types::Moment)]
    pub tat: DbTime,
    /// Paused until, when it is.
    #[diesel(sql_type = diesel::sql_types::Nullable<crate::types::Moment>)]
    pub paused_until: Option<DbTime>,
}

/// The budget scope of a workspace.
pub fn workspace_scope(team_id: &str) -> String {
    format!("workspace:{team_id}")
}

/// The budget scope of a channel of a workspace (the claim statements build the same text).
pub fn channel_scope(team_id: &str, channel_id: &str) -> String {
    format!("channel:{team_id}:{channel_id}")
}

/// The range of budget scopes (`from` inclusive, `to` exclusive) holding the channels of
/// `team_id`: every [`channel_scope`] of it, nothing else.
pub fn channels_of(team_id: &str) -> (String, String) {
    // `;` is the character after `:`.
    (format!("channel:{team_id}:"), format!("channel:{team_id};"))
}

/// A budget as [`next_admission`] reads it: its scope, theoretical arrival time and pause.
pub type BudgetState<'a> = (&'a str, DateTime<Utc>, Option<DateTime<Utc>>);

/// How long after `now` the earliest of `budgets` (scope, tat, paused until) that refuses a
/// post under `pace` admits one again, counting the workspace's budget of a channel's: a
/// channel is admitted when both its budgets are. `None` when none refuses.
pub fn next_admission(
    budgets: &[BudgetState<'_>],
    pace: &Pace,
    now: DateTime<Utc>,
) -> Option<Duration> {
    use connector_ports::PauseScope;
    // Each refusing budget's scope and the moment it admits again.
    let refusing: Vec<(PauseScope, DateTime<Utc>)> = budgets
        .iter()
        .filter_map(|(scope, tat, paused)| {
            let scope = parse_scope(scope)?;
            let rate = match scope {
                PauseScope::Channel { .. } => &pace.channel,
                PauseScope::Workspace { .. } => &pace.workspace,
            };
            Some((scope, rate.admit(*tat, *paused, now).err()?))
        })
        .collect();
    let workspaces: HashMap<&str, DateTime<Utc>> = refusing
        .iter()
        .filter_map(|(scope, at)| match scope {
            PauseScope::Workspace { team_id } => Some((team_id.as_str(), *at)),
            PauseScope::Channel { .. } => None,
        })
        .collect();
    refusing
        .iter()
        .map(|(scope, at)| match scope {
            // A channel is admitted when its workspace is too; a workspace's other channels
            // (not refusing themselves) are admitted with it.
            PauseScope::Channel { team_id, .. } => workspaces
                .get(team_id.as_str())
                .map_or(*at, |w| (*w).max(*at)),
            PauseScope::Workspace { .. } => *at,
        })
        .min()
        .map(|at| (at - now).to_std().unwrap_or_default())
}

/// The scope a budget's `scope` text names (see [`channel_scope`] and [`workspace_scope`]).
pub fn parse_scope(scope: &str) -> Option<connector_ports::PauseScope> {
    use connector_ports::PauseScope;
    if let Some(rest) = scope.strip_prefix("channel:") {
        let (team_id, channel) = rest.split_once(':')?;
        return Some(PauseScope::Channel {
            team_id: team_id.to_owned(),
            channel_id: ChannelId::new(channel),
        });
    }
    scope
        .strip_prefix("workspace:")
        .map(|team_id| PauseScope::Workspace {
            team_id: team_id.to_owned(),
        })
}

/// Budgets read (and locked) in one transaction: theoretical arrival time, pause, and
/// whether the transaction changed it.
pub type Budgets = HashMap<String, (DbTime, Option<DbTime>, bool)>;

/// Implements [`Outbox`](connector_ports::Outbox) for `$repo`, whose field `$pool` is a
/// [`SqlPool`](crate::SqlPool) of the backend's connections, `$conn`.
///
/// The one statement that differs stays with the backend: `$repo` provides
/// `fn claim_outbox_query(owner: &str, lease: Duration, channel_tolerance: Duration,
/// workspace_tolerance: Duration, limit: u32) -> BoxedSqlQuery<'static, Backend, SqlQuery>`,
/// which leases (sets `lease_owner` and `lease_until` of) at most `limit` queued messages,
/// each the oldest open one of its channel, due, and in a channel and workspace whose budget
/// is neither paused nor spent beyond its tolerance, returning their `id`s: PostgreSQL's
/// skips rows another replica holds (`FOR UPDATE SKIP LOCKED`), SQLite's relies on its single
/// writer. Its text must be the same on every call: it is [`prepared`](crate::prepared) once
/// per connection. The rest of the claim (spending the budgets, in one order of scopes so two claims
/// never wait on each other in a circle) runs here, in the same transaction, through two more
/// of `$repo`'s: `async fn lock_budget_rows(conn, scopes: &[String]) ->
/// QueryResult<Vec<BudgetRow>>` (reads and row-locks the budgets of the sorted `scopes`,
/// inserting a fresh one, `tat` now, where there is none) and `async fn save_budget_rows(conn,
/// &[(&str, DbTime)]) -> QueryResult<()>` (sets those budgets' `tat`).
#[macro_export]
macro_rules! outbox {
    ($repo:ident . $pool:ident : $conn:ty) => {
        mod __sql_outbox {
            use super::$repo;
            use $crate::__private::domain::{
                ChannelId, ConnectorId, MessageId, MessageStatus, Pace, Rate, TenantId,
            };
            use $crate::__private::ports::{
                AttemptOutcome, Cancelled, Enqueued, ImmediateRecord, MessageFilter,
                NewOutboundMessage, OutboundRecord, Outbox, PauseScope, RepositoryError,
            };
            use $crate::__private::*;
            use $crate::outbox::{
                Budgets, ClaimedId, OutboxRow, channel_scope, channels_of, parse_scope, records,
                workspace_scope,
            };
            use $crate::schema::delivery_budgets::dsl as b;
            use $crate::schema::outbound_messages::dsl as o;

            const QUEUED: &str = "queued";
            const SENDING: &str = "sending";

            /// Reads and locks the budgets of `scopes` (the backend's `lock_budget_rows`, in
            /// sorted order so that two transactions never wait on each other in a circle, each
            /// made fresh, a full burst, when it has none yet); then the clock, read after any
            /// wait for those locks.
            async fn lock_budgets(
                conn: &mut $conn,
                mut scopes: Vec<String>,
            ) -> Result<(Budgets, DbTime), diesel::result::Error> {
                scopes.sort();
                scopes.dedup();
                let budgets = <$repo>::lock_budget_rows(conn, &scopes)
                    .await?
                    .into_iter()
                    .map(|r| (r.scope, (r.tat, r.paused_until, false)))
                    .collect::<Budgets>();
                if let Some(missing) = scopes.iter().find(|s| !budgets.contains_key(*s)) {
                    return Err(diesel::result::Error::DeserializationError(
                        format!("the budget of {missing} was not read back").into(),
                    ));
                }
                let now: DbTime = diesel::select(DbClock::read()).get_result(conn).await?;
                Ok((budgets, now))
            }

            /// Spends one post at `now` from `team_id`'s workspace budget and its `channel`'s,
            /// both or neither: `Err(at)`, when the next post is allowed, if either refuses.
            fn take_post(
                budgets: &mut Budgets,
                team_id: &str,
                channel: &str,
                pace: &Pace,
                now: DbTime,
            ) -> Result<(), DateTime<Utc>> {
                let ws = workspace_scope(team_id);
                let ch = channel_scope(team_id, channel);
                let admit = |scope: &str, rate: &Rate| {
                    let (tat, paused, _) = budgets[scope];
                    rate.admit(tat.0, paused.map(|p| p.0), now.0)
                };
                match (admit(&ws, &pace.workspace), admit(&ch, &pace.channel)) {
                    (Ok(w), Ok(c)) => {
                        for (scope, tat) in [(ws, w), (ch, c)] {
                            if let Some(entry) = budgets.get_mut(&scope) {
                                *entry = (DbTime(tat), entry.1, true);
                            }
                        }
                        Ok(())
                    }
                    (w, c) => Err([w.err(), c.err()]
                        .into_iter()
                        .flatten()
                        .max()
                        .unwrap_or(now.0)),
                }
            }

            /// Ends the queued messages among `ids`: `Failed`, or `Unknown` for one an earlier
            /// attempt may have posted; with `last_error` `replace`, or else the one it has, or
            /// else `fallback`.
            async fn end_queued(
                conn: &mut $conn,
                ids: &[DbId],
                replace: Option<&str>,
                fallback: &str,
            ) -> Result<Vec<OutboxRow>, diesel::result::Error> {
                type NullableText = diesel::sql_types::Nullable<diesel::sql_types::Text>;
                let mut ended = Vec::new();
                // In chunks: SQLite binds each ID of an `IN` list as a variable of its own.
                for ids in ids.chunks(1000) {
                    for maybe_posted in [false, true] {
                        let status = if maybe_posted {
                            MessageStatus::Unknown
                        } else {
                            MessageStatus::Failed
                        };
                        let error = coalesce(
                            replace.map(str::to_owned).into_sql::<NullableText>(),
                            coalesce(o::last_error, Some(fallback).into_sql::<NullableText>()),
                        );
                        ended.extend(
                            diesel::update(
                                o::outbound_messages
                                    .filter(o::id.eq_any(ids))
                                    .filter(o::status.eq(QUEUED))
                                    .filter(o::unconfirmed_since.is_not_null().eq(maybe_posted)),
                            )
                            .set((
                                o::status.eq(status.as_str()),
                                o::last_error.eq(error),
                                o::lease_owner.eq(None::<String>),
                                o::lease_until.eq(None::<DbTime>),
                                o::finished_at.eq(DbNow::now().nullable()),
                                o::updated_at.eq(DbNow::now()),
                            ))
                            .returning(OutboxRow::as_returning())
                            .get_results::<OutboxRow>(conn)
                            .await?,
                        );
                    }
                }
                Ok(ended)
            }

            /// Writes back what a transaction spent of `budgets` (the backend's
            /// `save_budget_rows`).
            async fn save_budgets(
                conn: &mut $conn,
                budgets: &Budgets,
            ) -> Result<(), diesel::result::Error> {
                let changed: Vec<(&str, DbTime)> = budgets
                    .iter()
                    .filter(|(_, (_, _, changed))| *changed)
                    .map(|(scope, (tat, _, _))| (scope.as_str(), *tat))
                    .collect();
                if changed.is_empty() {
                    return Ok(());
                }
                <$repo>::save_budget_rows(conn, &changed).await
            }

            #[async_trait]
            impl Outbox for $repo {
                async fn enqueue(
                    &self,
                    m: &NewOutboundMessage,
                ) -> Result<Enqueued, RepositoryError> {
                    $crate::with_conn!(self.$pool, conn, {
                        let inserted = diesel::insert_into(o::outbound_messages)
                            .values((
                                o::id.eq(DbId(m.id.as_uuid())),
                                o::tenant_id.eq(m.tenant_id.as_str()),
                                o::connector_id.eq(DbId::from(m.connector_id)),
                                o::team_id.eq(&m.team_id),
                                o::channel_id.eq(m.channel_id.as_str()),
                                o::request_id.eq(m.request_id.as_deref()),
                                o::fingerprint.eq(&m.fingerprint),
                                o::body_json.eq(&m.body_json),
                                o::status.eq(QUEUED),
                                o::attempts.eq(0),
                                o::created_at.eq(DbNow::now()),
                                o::next_attempt_at.eq(DbTime(m.not_before)),
                                o::deadline_at.eq(DbTime(m.deadline)),
                                o::updated_at.eq(DbNow::now()),
                            ))
                            .on_conflict_do_nothing()
                            .returning(OutboxRow::as_returning())
                            .get_result::<OutboxRow>(&mut conn)
                            .await
                            .optional()
                            .map_err(map_err)?;
                        if let Some(row) = inserted {
                            return OutboundRecord::try_from(row).map(Enqueued::New);
                        }
                        let existing: Option<OutboxRow> = match &m.request_id {
                            Some(request_id) => o::outbound_messages
                                .filter(o::connector_id.eq(DbId::from(m.connector_id)))
                                .filter(o::request_id.eq(request_id))
                                .select(OutboxRow::as_select())
                                .first(&mut conn)
                                .await
                                .optional()
                                .map_err(map_err)?,
                            None => None,
                        };
                        match existing {
                            Some(row) => OutboundRecord::try_from(row).map(Enqueued::Existing),
                            None => Err(RepositoryError::Unknown(anyhow::anyhow!(
                                "outbound message {} already exists",
                                m.id
                            ))),
                        }
                    })
                }

                async fn record_immediate(
                    &self,
                    record: &ImmediateRecord,
                ) -> Result<(), RepositoryError> {
                    let m = &record.message;
                    $crate::with_conn!(self.$pool, conn, {
                        diesel_async::AsyncConnection::transaction(&mut conn, async |conn| {
                            let earlier: Option<(DbId, String)> = match &m.request_id {
                                Some(request_id) => o::outbound_messages
                                    .filter(o::connector_id.eq(DbId::from(m.connector_id)))
                                    .filter(o::request_id.eq(request_id))
                                    .select((o::id, o::delivery))
                                    .first(conn)
                                    .await
                                    .optional()?,
                                None => None,
                            };
                            match earlier {
                                // A queued message owns the key: left as it is.
                                Some((_, delivery)) if delivery != "immediate" => return Ok(()),
                                Some((id, _)) => {
                                    diesel::delete(o::outbound_messages.filter(o::id.eq(id)))
                                        .execute(conn)
                                        .await?;
                                }
                                None => {}
                            }
                            diesel::insert_into(o::outbound_messages)
                                .values((
                                    o::id.eq(DbId(m.id.as_uuid())),
                                    o::tenant_id.eq(m.tenant_id.as_str()),
                                    o::connector_id.eq(DbId::from(m.connector_id)),
                                    o::team_id.eq(&m.team_id),
                                    o::channel_id.eq(m.channel_id.as_str()),
                                    o::request_id.eq(m.request_id.as_deref()),
                                    o::fingerprint.eq(&m.fingerprint),
                                    o::body_json.eq("{}"),
                                    o::status.eq(record.status.as_str()),
                                    o::attempts.eq(1),
                                    o::last_error.eq(record.last_error.as_deref()),
                                    o::ts.eq(record.ts.as_deref()),
                                    o::created_at.eq(DbTime(m.not_before)),
                                    o::next_attempt_at.eq(DbTime(m.not_before)),
                                    o::deadline_at.eq(DbTime(m.deadline)),
                                    o::finished_at.eq(DbNow::now().nullable()),
                                    o::updated_at.eq(DbNow::now()),
                                    o::delivery.eq("immediate"),
                                ))
                                .execute(conn)
                                .await?;
                            Ok::<_, diesel::result::Error>(())
                        })
                        .await
                        .map_err(map_err)
                    })
                }

                async fn find_by_request(
                    &self,
                    connector: ConnectorId,
                    request_id: &str,
                ) -> Result<Option<OutboundRecord>, RepositoryError> {
                    let row: Option<OutboxRow> = $crate::first!(
                        self.$pool,
                        o::outbound_messages
                            .filter(o::connector_id.eq(DbId::from(connector)))
                            .filter(o::request_id.eq(request_id))
                            .select(OutboxRow::as_select())
                            .limit(1)
                    )?;
                    row.map(OutboundRecord::try_from).transpose()
                }

                async fn claim(
                    &self,
                    owner: &str,
                    pace: &Pace,
                    lease: Duration,
                    limit: u32,
                ) -> Result<Vec<OutboundRecord>, RepositoryError> {
                    $crate::with_conn!(self.$pool, conn, {
                        diesel_async::AsyncConnection::transaction(&mut conn, async |conn| {
                            let leased: Vec<ClaimedId> = prepared(<$repo>::claim_outbox_query(
                                owner,
                                lease,
                                pace.channel.tolerance(),
                                pace.workspace.tolerance(),
                                limit,
                            ))
                            .load(conn)
                            .await?;
                            if leased.is_empty() {
                                return Ok(Vec::new());
                            }
                            let ids: Vec<DbId> = leased.iter().map(|c| c.id).collect();
                            let mut rows: Vec<OutboxRow> = o::outbound_messages
                                .filter(o::id.eq_any(&ids))
                                .select(OutboxRow::as_select())
                                .load(conn)
                                .await?;
                            // Granted in channel order, oldest first.
                            rows.sort_by(|a, b| {
                                (&a.team_id, &a.channel_id, a.created_at).cmp(&(
                                    &b.team_id,
                                    &b.channel_id,
                                    b.created_at,
                                ))
                            });
                            let scopes = rows
                                .iter()
                                .flat_map(|r| {
                                    [
                                        workspace_scope(&r.team_id),
                                        channel_scope(&r.team_id, &r.channel_id),
                                    ]
                                })
                                .collect();
                            let (mut budgets, now) = lock_budgets(conn, scopes).await?;
                            let granted: Vec<DbId> = rows
                                .iter()
                                .filter(|r| {
                                    take_post(&mut budgets, &r.team_id, &r.channel_id, pace, now)
                                        .is_ok()
                                })
                                .map(OutboxRow::id)
                                .collect();
                            save_budgets(conn, &budgets).await?;
                            // What the budgets refused goes back, unleased.
                            prepared_with_lists(
                                diesel::update(
                                    o::outbound_messages
                                        .filter(o::id.eq_any(&ids))
                                        .filter(o::id.ne_all(&granted)),
                                )
                                .set((
                                    o::lease_owner.eq(None::<String>),
                                    o::lease_until.eq(None::<DbTime>),
                                )),
                            )
                            .execute(conn)
                            .await?;
                            if granted.is_empty() {
                                return Ok(Vec::new());
                            }
                            let claimed: Vec<OutboxRow> = prepared_with_lists(
                                diesel::update(o::outbound_messages.filter(o::id.eq_any(&granted)))
                                    .set((
                                        o::status.eq(SENDING),
                                        o::attempts.eq(o::attempts + 1),
                                        o::lease_owner.eq(owner),
                                        o::lease_until.eq(DbNow::plus(lease).nullable()),
                                        o::attempted_at.eq(DbNow::now().nullable()),
                                        o::updated_at.eq(DbNow::now()),
                                    ))
                                    .returning(OutboxRow::as_returning()),
                            )
                            .get_results(conn)
                            .await?;
                            Ok(claimed)
                        })
                        .await
                        .map_err(map_err)
                        .and_then(records)
                        .map(|mut claimed| {
                            claimed.sort_by_key(|r| (r.created_at, r.id));
                            claimed
                        })
                    })
                }

                async fn finish(
                    &self,
                    id: MessageId,
                    owner: &str,
                    outcome: &AttemptOutcome,
                ) -> Result<bool, RepositoryError> {
                    let target = o::outbound_messages
                        .filter(o::id.eq(DbId(id.as_uuid())))
                        .filter(o::status.eq(SENDING))
                        .filter(o::lease_owner.eq(owner));
                    let unleased = (
                        o::lease_owner.eq(None::<String>),
                        o::lease_until.eq(None::<DbTime>),
                        o::updated_at.eq(DbNow::now()),
                    );
                    // Whatever else the attempt did, it settled whether an earlier one landed.
                    let settled = o::unconfirmed_since.eq(None::<DbTime>);
                    let n = match outcome {
                        AttemptOutcome::Sent { ts } => $crate::execute!(
                            self.$pool,
                            prepared(diesel::update(target).set((
                                unleased,
                                settled,
                                o::status.eq(MessageStatus::Sent.as_str()),
                                o::ts.eq(ts),
                                o::finished_at.eq(DbNow::now().nullable()),
                            )))
                        )?,
                        AttemptOutcome::Retry { error, retry_at } => $crate::execute!(
                            self.$pool,
                            prepared(diesel::update(target).set((
                                unleased,
                                settled,
                                o::status.eq(QUEUED),
                                o::last_error.eq(error),
                                o::next_attempt_at.eq(DbTime(*retry_at)),
                            )))
                        )?,
                        AttemptOutcome::Unconfirmed { error, check_at } => $crate::execute!(
                            self.$pool,
                            prepared(diesel::update(target).set((
                                unleased,
                                // Searched from the first attempt that may have posted it.
                                o::unconfirmed_since.eq(coalesce(
                                    o::unconfirmed_since,
                                    // A row claimed before attempted_at was recorded:
                                    // searched from when it was queued.
                                    coalesce(o::attempted_at, o::created_at.nullable()),
                                )),
                                o::status.eq(QUEUED),
                                o::last_error.eq(error),
                                o::next_attempt_at.eq(DbTime(*check_at)),
                            )))
                        )?,
                        AttemptOutcome::Failed { error } | AttemptOutcome::Unknown { error } => {
                            let status = match outcome {
                                AttemptOutcome::Failed { .. } => MessageStatus::Failed,
                                _ => MessageStatus::Unknown,
                            };
                            $crate::execute!(
                                self.$pool,
                                prepared(diesel::update(target).set((
                                    unleased,
                                    settled,
                                    o::status.eq(status.as_str()),
                                    o::last_error.eq(error),
                                    o::finished_at.eq(DbNow::now().nullable()),
                                )))
                            )?
                        }
                    };
                    Ok(n == 1)
                }

                async fn spend(
                    &self,
                    team_id: &str,
                    channel: &ChannelId,
                    pace: &Pace,
                ) -> Result<Option<Duration>, RepositoryError> {
                    $crate::with_conn!(self.$pool, conn, {
                        diesel_async::AsyncConnection::transaction(&mut conn, async |conn| {
                            let scopes = vec![
                                workspace_scope(team_id),
                                channel_scope(team_id, channel.as_str()),
                            ];
                            let (mut budgets, now) = lock_budgets(conn, scopes).await?;
                            match take_post(&mut budgets, team_id, channel.as_str(), pace, now) {
                                Ok(()) => {
                                    save_budgets(conn, &budgets).await?;
                                    Ok(None)
                                }
                                Err(at) => Ok(Some((at - now.0).to_std().unwrap_or_default())),
                            }
                        })
                        .await
                        .map_err(map_err)
                    })
                }

                async fn pause(
                    &self,
                    scope: &PauseScope,
                    for_: Duration,
                ) -> Result<PauseScope, RepositoryError> {
                    let team_id = match scope {
                        PauseScope::Channel { team_id, .. } | PauseScope::Workspace { team_id } => {
                            team_id.clone()
                        }
                    };
                    let named = match scope {
                        PauseScope::Channel {
                            team_id,
                            channel_id,
                        } => channel_scope(team_id, channel_id.as_str()),
                        PauseScope::Workspace { team_id } => workspace_scope(team_id),
                    };
                    let workspace = workspace_scope(&team_id);
                    $crate::with_conn!(self.$pool, conn, {
                        diesel_async::AsyncConnection::transaction(&mut conn, async |conn| {
                            // The workspace's budget is locked too: two channels' pauses at
                            // once are taken one after the other, so the second sees the first.
                            let (budgets, now) =
                                lock_budgets(conn, vec![named.clone(), workspace.clone()]).await?;
                            let until = DbTime(
                                now.0 + chrono::Duration::from_std(for_).unwrap_or_default(),
                            );
                            let widen = match scope {
                                PauseScope::Workspace { .. } => true,
                                PauseScope::Channel { .. } => {
                                    // Another channel of the workspace paused now: the
                                    // workspace's limit, not the channel's.
                                    let (from, to) = channels_of(&team_id);
                                    let others: i64 = b::delivery_budgets
                                        .filter(b::scope.ge(from))
                                        .filter(b::scope.lt(to))
                                        .filter(b::scope.ne(&named))
                                        .filter(b::paused_until.gt(Some(now)))
                                        .count()
                                        .get_result(conn)
                                        .await?;
                                    others > 0
                                }
                            };
                            let mut targets = vec![named.clone()];
                            if widen && named != workspace {
                                targets.push(workspace.clone());
                            }
                            for target in targets {
                                let paused = budgets[&target].1;
                                // A pause only grows: a shorter Retry-After never cuts a longer one.
                                if paused.is_none_or(|p| p < until) {
                                    diesel::update(
                                        b::delivery_budgets.filter(b::scope.eq(&target)),
                                    )
                                    .set(b::paused_until.eq(Some(until)))
                                    .execute(conn)
                                    .await?;
                                }
                            }
                            Ok::<_, diesel::result::Error>(if widen {
                                PauseScope::Workspace {
                                    team_id: team_id.clone(),
                                }
                            } else {
                                scope.clone()
                            })
                        })
                        .await
                        .map_err(map_err)
                    })
                }

                async fn next_admission(
                    &self,
                    pace: &Pace,
                ) -> Result<Option<Duration>, RepositoryError> {
                    let refusing: Vec<(String, DbTime, Option<DbTime>, DbTime)> = $crate::load!(
                        self.$pool,
                        prepared(
                            b::delivery_budgets
                                .filter(
                                    b::tat
                                        .gt(DbNow::now())
                                        .or(b::paused_until.gt(DbNow::now().nullable())),
                                )
                                .select((b::scope, b::tat, b::paused_until, DbClock::read())),
                        )
                    )?;
                    let Some(now) = refusing.as_slice().first().map(|r| r.3) else {
                        return Ok(None);
                    };
                    let budgets: Vec<$crate::outbox::BudgetState<'_>> = refusing
                        .iter()
                        .map(|(scope, tat, paused, _)| (scope.as_str(), tat.0, paused.map(|p| p.0)))
                        .collect();
                    Ok($crate::outbox::next_admission(&budgets, pace, now.0))
                }

                async fn busy_scopes(
                    &self,
                    within: Duration,
                ) -> Result<Vec<PauseScope>, RepositoryError> {
                    let scopes: Vec<String> = $crate::load!(
                        self.$pool,
                        b::delivery_budgets
                            .filter(
                                b::tat
                                    .gt(DbNow::minus(within))
                                    .or(b::paused_until.gt(DbNow::now().nullable())),
                            )
                            .select(b::scope)
                    )?;
                    Ok(scopes.iter().filter_map(|s| parse_scope(s)).collect())
                }

                async fn take_over_expired(
                    &self,
                    error: &str,
                    limit: u32,
                ) -> Result<Vec<OutboundRecord>, RepositoryError> {
                    let rows: Vec<OutboxRow> = $crate::with_conn!(self.$pool, conn, {
                        diesel_async::AsyncConnection::transaction(&mut conn, async |conn| {
                            let ids: Vec<DbId> = o::outbound_messages
                                .filter(o::status.eq(SENDING))
                                .filter(o::lease_until.lt(DbNow::now().nullable()))
                                .select(o::id)
                                .limit(i64::from(limit))
                                .load(conn)
                                .await?;
                            if ids.is_empty() {
                                return Ok(Vec::new());
                            }
                            diesel::update(
                                o::outbound_messages
                                    .filter(o::id.eq_any(&ids))
                                    .filter(o::status.eq(SENDING))
                                    .filter(o::lease_until.lt(DbNow::now().nullable())),
                            )
                            .set((
                                o::status.eq(QUEUED),
                                o::unconfirmed_since.eq(coalesce(
                                    o::unconfirmed_since,
                                    // A row claimed before attempted_at was recorded:
                                    // searched from when it was queued.
                                    coalesce(o::attempted_at, o::created_at.nullable()),
                                )),
                                o::next_attempt_at.eq(DbNow::now()),
                                o::last_error.eq(error),
                                o::lease_owner.eq(None::<String>),
                                o::lease_until.eq(None::<DbTime>),
                                o::updated_at.eq(DbNow::now()),
                            ))
                            .returning(OutboxRow::as_returning())
                            .get_results(conn)
                            .await
                        })
                        .await
                        .map_err(map_err)
                    })?;
                    records(rows)
                }

                async fn fail_connector(
                    &self,
                    connector: ConnectorId,
                    error: &str,
                ) -> Result<Vec<OutboundRecord>, RepositoryError> {
                    let rows: Vec<OutboxRow> = $crate::with_conn!(self.$pool, conn, {
                        diesel_async::AsyncConnection::transaction(&mut conn, async |conn| {
                            let ids: Vec<DbId> = o::outbound_messages
                                .filter(o::connector_id.eq(DbId::from(connector)))
                                .filter(o::status.eq(QUEUED))
                                .select(o::id)
                                .load(conn)
                                .await?;
                            let ended = end_queued(conn, &ids, Some(error), error).await?;
                            Ok::<_, diesel::result::Error>(ended)
                        })
                        .await
                        .map_err(map_err)
                    })?;
                    records(rows)
                }

                async fn expire(&self, limit: u32) -> Result<Vec<OutboundRecord>, RepositoryError> {
                    let rows: Vec<OutboxRow> = $crate::with_conn!(self.$pool, conn, {
                        diesel_async::AsyncConnection::transaction(&mut conn, async |conn| {
                            let ids: Vec<DbId> = o::outbound_messages
                                .filter(o::status.eq(QUEUED))
                                .filter(o::deadline_at.lt(DbNow::now()))
                                .select(o::id)
                                .limit(i64::from(limit))
                                .load(conn)
                                .await?;
                            if ids.is_empty() {
                                return Ok(Vec::new());
                            }
                            let ended = end_queued(conn, &ids, None, "deadline_exceeded").await?;
                            Ok::<_, diesel::result::Error>(ended)
                        })
                        .await
                        .map_err(map_err)
                    })?;
                    records(rows)
                }

                async fn get(
                    &self,
                    tenant: &TenantId,
                    id: MessageId,
                ) -> Result<Option<OutboundRecord>, RepositoryError> {
                    let row: Option<OutboxRow> = $crate::first!(
                        self.$pool,
                        o::outbound_messages
                            .filter(o::tenant_id.eq(tenant.as_str()))
                            .filter(o::id.eq(DbId(id.as_uuid())))
                            .select(OutboxRow::as_select())
                            .limit(1)
                    )?;
                    row.map(OutboundRecord::try_from).transpose()
                }

                async fn list(
                    &self,
                    tenant: &TenantId,
                    filter: &MessageFilter,
                    before: Option<(DateTime<Utc>, MessageId)>,
                    limit: u32,
                ) -> Result<Vec<OutboundRecord>, RepositoryError> {
                    let mut query = o::outbound_messages
                        .filter(o::tenant_id.eq(tenant.as_str()))
                        .select(OutboxRow::as_select())
                        .order((o::created_at.desc(), o::id.desc()))
                        .limit(i64::from(limit))
                        .into_boxed();
                    if let Some(connector) = filter.connector_id {
                        query = query.filter(o::connector_id.eq(DbId::from(connector)));
                    }
                    if !filter.statuses.is_empty() {
                        let names: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
                        query = query.filter(o::status.eq_any(names));
                    }
                    if let Some((at, id)) = before {
                        query = query.filter(
                            o::created_at.lt(DbTime(at)).or(o::created_at
                                .eq(DbTime(at))
                                .and(o::id.lt(DbId(id.as_uuid())))),
                        );
                    }
                    let rows: Vec<OutboxRow> = $crate::load!(self.$pool, query)?;
                    records(rows)
                }

                async fn cancel(
                    &self,
                    tenant: &TenantId,
                    id: MessageId,
                ) -> Result<Cancelled, RepositoryError> {
                    let mine = o::outbound_messages
                        .filter(o::tenant_id.eq(tenant.as_str()))
                        .filter(o::id.eq(DbId(id.as_uuid())));
                    let cancelled: Option<OutboxRow> = $crate::first!(
                        self.$pool,
                        diesel::update(
                            mine.filter(o::status.eq(QUEUED))
                                .filter(o::unconfirmed_since.is_null())
                        )
                        .set((
                            o::status.eq(MessageStatus::Cancelled.as_str()),
                            o::lease_owner.eq(None::<String>),
                            o::lease_until.eq(None::<DbTime>),
                            o::finished_at.eq(DbNow::now().nullable()),
                            o::updated_at.eq(DbNow::now()),
                        ))
                        .returning(OutboxRow::as_returning())
                    )?;
                    if let Some(row) = cancelled {
                        return OutboundRecord::try_from(row).map(Cancelled::Done);
                    }
                    Ok(match self.get(tenant, id).await? {
                        None => Cancelled::NotFound,
                        Some(r) if r.status == MessageStatus::Cancelled => Cancelled::Done(r),
                        Some(r) => Cancelled::TooLate(r),
                    })
                }

                async fn count_by_status(
                    &self,
                ) -> Result<Vec<(MessageStatus, u64)>, RepositoryError> {
                    let rows: Vec<(String, i64)> = $crate::load!(
                        self.$pool,
                        o::outbound_messages
                            .group_by(o::status)
                            .select((o::status, diesel::dsl::count_star()))
                    )?;
                    Ok(rows
                        .into_iter()
                        .filter_map(|(s, n)| {
                            MessageStatus::from_name(&s).map(|s| (s, u64::try_from(n).unwrap_or(0)))
                        })
                        .collect())
                }

                async fn purge_finished(
                    &self,
                    before: DateTime<Utc>,
                ) -> Result<u64, RepositoryError> {
                    let messages = $crate::execute!(
                        self.$pool,
                        diesel::delete(
                            o::outbound_messages.filter(o::finished_at.lt(DbTime(before))),
                        )
                    )?;
                    // Budgets idle since then are full again: a missing one is made full.
                    $crate::execute!(
                        self.$pool,
                        diesel::delete(
                            b::delivery_budgets
                                .filter(b::tat.lt(DbTime(before)))
                                .filter(
                                    b::paused_until
                                        .is_null()
                                        .or(b::paused_until.lt(Some(DbTime(before)))),
                                ),
                        )
                    )?;
                    Ok(messages)
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use connector_ports::PauseScope;

    use super::*;

    #[test]
    fn the_next_admission_is_the_earliest_refusing_budgets_counting_the_workspace() {
        use connector_domain::Rate;
        let pace = Pace {
            // One a second, bursts of two (a post is refused while tat runs 1 s ahead).
            channel: Rate::per_second(1.0, 2).unwrap(),
            workspace: Rate::per_second(100.0, 10).unwrap(),
        };
        let now = Utc::now();
        let secs = |s: i64| now + chrono::Duration::seconds(s);
        let ms = |d: Duration| d.as_millis();
        assert_eq!(next_admission(&[], &pace, now), None);
        // Spent but within its burst: admits now, so no wait is told.
        let within = [("channel:T1:C1", secs(1), None)];
        assert_eq!(next_admission(&within, &pace, now), None);
        // Refusing until tat - tolerance.
        let spent = [
            ("channel:T1:C1", secs(3), None),
            ("channel:T1:C2", secs(5), None),
        ];
        assert_eq!(next_admission(&spent, &pace, now).map(ms), Some(2000));
        // Its workspace paused longer: the workspace's end, for every channel of it.
        let paused = [
            ("channel:T1:C1", secs(3), None),
            ("workspace:T1", now, Some(secs(30))),
        ];
        assert_eq!(next_admission(&paused, &pace, now).map(ms), Some(30_000));
        // Another workspace's channel is not held by it.
        let other = [
            ("channel:T1:C1", secs(3), None),
            ("workspace:T1", now, Some(secs(30))),
            ("channel:T2:C1", secs(11), None),
        ];
        assert_eq!(next_admission(&other, &pace, now).map(ms), Some(10_000));
        // A channel paused by a 429: its pause.
        let channel_paused = [("channel:T1:C1", now, Some(secs(7)))];
        assert_eq!(
            next_admission(&channel_paused, &pace, now).map(ms),
            Some(7000)
        );
    }

    #[test]
    fn budget_scopes_read_back_as_written() {
        assert_eq!(
            parse_scope(&channel_scope("T1", "C9")),
            Some(PauseScope::Channel {
                team_id: "T1".into(),
                channel_id: ChannelId::new("C9"),
            })
        );
        assert_eq!(
            parse_scope(&workspace_scope("T1")),
            Some(PauseScope::Workspace {
                team_id: "T1".into()
            })
        );
        assert_eq!(parse_scope("channel:T1"), None);
        let (from, to) = channels_of("T1");
        for inside in [channel_scope("T1", "C1"), channel_scope("T1", "Czzzz")] {
            assert!(from <= inside && inside < to, "{inside}");
        }
        for outside in [
            channel_scope("T10", "C1"),
            channel_scope("T", "C1"),
            workspace_scope("T1"),
        ] {
            assert!(!(from <= outside && outside < to), "{outside}");
        }
        assert_eq!(parse_scope("other:T1"), None);
    }
}
