//! The `inbound_events` and `event_cursors` tables (what people do in Slack, in each tenant's
//! order), and the [`EventLog`](connector_ports::EventLog) body each backend instantiates with
//! [`event_log!`](crate::event_log!).

use connector_domain::{ConnectorId, TenantId};
use connector_ports::{InboundEvent, NewInboundEvent, RepositoryError};
use diesel::prelude::*;

use crate::errors::corrupt;
use crate::types::{DbId, DbTime};

/// One row of `inbound_events`.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = crate::schema::inbound_events)]
pub struct EventRow {
    tenant_id: String,
    cursor: i64,
    connector_id: DbId,
    event_type: String,
    event_id: String,
    team_id: String,
    channel_id: Option<String>,
    user_id: Option<String>,
    ts: Option<String>,
    thread_ts: Option<String>,
    text: Option<String>,
    from_own_bot: bool,
    payload_json: String,
    received_at: DbTime,
}

impl TryFrom<EventRow> for InboundEvent {
    type Error = RepositoryError;
    fn try_from(r: EventRow) -> Result<Self, Self::Error> {
        Ok(InboundEvent {
            cursor: r.cursor,
            event: NewInboundEvent {
                tenant_id: TenantId::parse("tenant_id", &r.tenant_id)
                    .map_err(|e| corrupt(format!("inbound event {}: {e}", r.cursor)))?,
                connector_id: ConnectorId::from_uuid(r.connector_id.0),
                event_type: r.event_type,
                event_id: r.event_id,
                team_id: r.team_id,
                channel_id: r.channel_id,
                user_id: r.user_id,
                ts: r.ts,
                thread_ts: r.thread_ts,
                text: r.text,
                from_own_bot: r.from_own_bot,
                payload_json: r.payload_json,
                received_at: r.received_at.0,
            },
        })
    }
}

/// An event already in the log: its connector and Slack's ID (a backend's
/// `stored_event_keys` returns these).
#[derive(Debug, Clone, QueryableByName)]
pub struct EventKey {
    /// The connector it belongs to.
    #[diesel(sql_type = crate::types::Id)]
    pub connector_id: DbId,
    /// Slack's event (or envelope) ID.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub event_id: String,
}

/// The rows `rows` hold, as events.
pub fn events(rows: Vec<EventRow>) -> Result<Vec<InboundEvent>, RepositoryError> {
    rows.into_iter().map(InboundEvent::try_from).collect()
}

/// The `inbound_events` row of `event` at `cursor`, as the values of an `INSERT` (for a
/// backend's `insert_events` that writes row by row).
#[macro_export]
macro_rules! inbound_event_values {
    ($cursor:expr, $event:expr) => {{
        use $crate::__private::*;
        use $crate::schema::inbound_events::dsl as e;
        let event: &$crate::__private::ports::NewInboundEvent = $event;
        (
            e::tenant_id.eq(event.tenant_id.as_str()),
            e::cursor.eq($cursor),
            e::connector_id.eq(DbId::from(event.connector_id)),
            e::event_type.eq(event.event_type.as_str()),
            e::event_id.eq(event.event_id.as_str()),
            e::team_id.eq(event.team_id.as_str()),
            e::channel_id.eq(event.channel_id.as_deref()),
            e::user_id.eq(event.user_id.as_deref()),
            e::ts.eq(event.ts.as_deref()),
            e::thread_ts.eq(event.thread_ts.as_deref()),
            e::text.eq(event.text.as_deref()),
            e::from_own_bot.eq(event.from_own_bot),
            e::payload_json.eq(event.payload_json.as_str()),
            e::received_at.eq(DbTime(event.received_at)),
        )
    }};
}

/// Implements [`EventLog`](connector_ports::EventLog) for `$repo`, whose field `$pool` is a
/// [`SqlPool`](crate::SqlPool). `$repo` provides, each used inside the append's transaction:
/// `async fn stored_event_keys(conn, &[(DbId, &str)]) -> QueryResult<Vec<EventKey>>`, which
/// of those (connector, event ID) pairs the log holds already, by index probes whatever the
/// log's size; and `async fn insert_events(conn, &[(i64, &NewInboundEvent)]) ->
/// QueryResult<()>`, writing a batch's rows at their cursors the backend's fastest way.
#[macro_export]
macro_rules! event_log {
    ($repo:ident . $pool:ident) => {
        mod __sql_event_log {
            use super::$repo;
            use $crate::__private::domain::TenantId;
            use $crate::__private::ports::{
                CursorBounds, EventFilter, EventLog, InboundEvent, NewInboundEvent, RepositoryError,
            };
            use $crate::__private::*;
            use $crate::event_log::{EventKey, EventRow, events};
            use $crate::schema::event_cursors::dsl as c;
            use $crate::schema::inbound_events::dsl as e;

            #[async_trait]
            impl EventLog for $repo {
                async fn append_events(
                    &self,
                    new: &[NewInboundEvent],
                ) -> Result<Vec<InboundEvent>, RepositoryError> {
                    let mut appended = Vec::with_capacity(new.len());
                    // One transaction per tenant: its cursor row stays locked until its events
                    // are committed, so cursors become visible in order, and they have no gaps
                    // (redeliveries are left out before cursors are given).
                    let mut tenants: Vec<&str> = Vec::new();
                    for event in new {
                        if !tenants.contains(&event.tenant_id.as_str()) {
                            tenants.push(event.tenant_id.as_str());
                        }
                    }
                    for tenant in tenants {
                        let batch: Vec<&NewInboundEvent> = new
                            .iter()
                            .filter(|e| e.tenant_id.as_str() == tenant)
                            .collect();
                        let stored = $crate::with_conn!(self.$pool, conn, {
                            diesel_async::AsyncConnection::transaction(&mut conn, async |conn| {
                                // The cursor first: a write, so SQLite takes its write lock at
                                // once (waiting its busy timeout) rather than failing to upgrade
                                // a read; PostgreSQL locks the tenant's row.
                                let last: i64 = prepared(
                                    diesel::insert_into(c::event_cursors)
                                        .values((c::tenant_id.eq(tenant), c::last_cursor.eq(0_i64)))
                                        .on_conflict(c::tenant_id)
                                        .do_update()
                                        .set(c::last_cursor.eq(c::last_cursor))
                                        .returning(c::last_cursor),
                                )
                                .get_result(conn)
                                .await?;
                                let keys: Vec<(DbId, &str)> = batch
                                    .iter()
                                    .map(|e| (DbId::from(e.connector_id), e.event_id.as_str()))
                                    .collect();
                                // Under the lock no other append of this tenant runs, and an
                                // event's connector is the tenant's: what is here is all there is.
                                let stored: Vec<EventKey> =
                                    <$repo>::stored_event_keys(conn, &keys).await?;
                                let mut seen: std::collections::HashSet<(DbId, &str)> = stored
                                    .iter()
                                    .map(|k| (k.connector_id, k.event_id.as_str()))
                                    .collect();
                                let fresh: Vec<(i64, &NewInboundEvent)> = batch
                                    .iter()
                                    .copied()
                                    .filter(|e| {
                                        seen.insert((
                                            DbId::from(e.connector_id),
                                            e.event_id.as_str(),
                                        ))
                                    })
                                    .zip(last + 1..)
                                    .map(|(e, cursor)| (cursor, e))
                                    .collect();
                                if fresh.is_empty() {
                                    return Ok(Vec::new());
                                }
                                // The backend's own way: one statement for the batch where it can.
                                <$repo>::insert_events(conn, &fresh).await?;
                                prepared(
                                    diesel::update(
                                        c::event_cursors.filter(c::tenant_id.eq(tenant)),
                                    )
                                    .set(c::last_cursor.eq(last + fresh.len() as i64)),
                                )
                                .execute(conn)
                                .await?;
                                Ok::<_, diesel::result::Error>(
                                    fresh
                                        .into_iter()
                                        .map(|(cursor, event)| InboundEvent {
                                            cursor,
                                            event: event.clone(),
                                        })
                                        .collect::<Vec<_>>(),
                                )
                            })
                            .await
                            .map_err(map_err)
                        })?;
                        appended.extend(stored);
                    }
                    Ok(appended)
                }

                async fn list_events(
                    &self,
                    tenant: &TenantId,
                    filter: &EventFilter,
                    after: Option<i64>,
                    limit: u32,
                ) -> Result<Vec<InboundEvent>, RepositoryError> {
                    let connectors: Vec<DbId> = filter
                        .connector_ids
                        .iter()
                        .copied()
                        .map(DbId::from)
                        .collect();
                    let any_connector = connectors.is_empty();
                    let any_type = filter.types.is_empty();
                    let rows: Vec<EventRow> = $crate::load!(
                        self.$pool,
                        e::inbound_events
                            .filter(e::tenant_id.eq(tenant.as_str()))
                            .filter(e::cursor.gt(after.unwrap_or(0)))
                            .filter(
                                any_connector
                                    .into_sql::<Bool>()
                                    .or(e::connector_id.eq_any(&connectors)),
                            )
                            .filter(
                                any_type
                                    .into_sql::<Bool>()
                                    .or(e::event_type.eq_any(&filter.types))
                            )
                            .filter(
                                filter
                                    .include_own
                                    .into_sql::<Bool>()
                                    .or(e::from_own_bot.eq(false))
                            )
                            .order(e::cursor.asc())
                            .limit(i64::from(limit))
                            .select(EventRow::as_select())
                    )?;
                    events(rows)
                }

                async fn cursor_bounds(
                    &self,
                    tenant: &TenantId,
                ) -> Result<CursorBounds, RepositoryError> {
                    let oldest_kept: Option<i64> = $crate::first!(
                        self.$pool,
                        e::inbound_events
                            .filter(e::tenant_id.eq(tenant.as_str()))
                            .select(diesel::dsl::min(e::cursor))
                    )?
                    .flatten();
                    let last: Option<i64> = $crate::first!(
                        self.$pool,
                        c::event_cursors
                            .filter(c::tenant_id.eq(tenant.as_str()))
                            .select(c::last_cursor)
                    )?;
                    Ok(CursorBounds {
                        oldest_kept,
                        last: last.unwrap_or(0),
                    })
                }

                async fn purge_events_before(
                    &self,
                    before: DateTime<Utc>,
                ) -> Result<u64, RepositoryError> {
                    // The cursors stay: a tenant's next event continues its sequence.
                    $crate::execute!(
                        self.$pool,
                        diesel::delete(e::inbound_events.filter(e::received_at.lt(DbTime(before))))
                    )
                }
            }
        }
    };
}
