//! What people do in Slack, for the platform: every event Slack delivers is stored once per
//! connector it belongs to (the active connectors of its workspace whose bot is the app's that
//! the event was sent for), in the tenant's event log, before Slack's delivery is answered; the
//! platform reads the log in order and resumes by cursor.
//!
//! A connector whose token is another app's never gets this app's events; an event that belongs
//! to no connector is counted and dropped. A connector's own bot's messages are marked, and
//! left out of what is read unless asked for, so a bot never answers itself.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;

use connector_domain::{ConnectorId, PageSize, TenantId, ValidationError};
pub use connector_ports::InboundEvent;
use connector_ports::{CursorBounds, EventFilter, EventLog, NewInboundEvent, SlackEvent};

use crate::Ports;
use crate::error::ConnectorError;
use crate::runtime::{Sleep, Spawn};

mod bells;

pub use bells::{Bell, EventBells};

/// How long a following stream waits for its tenant's bell before it reads the log anyway (a
/// feed that lost its connection announces nothing; this bounds what that costs).
pub const FOLLOW_FALLBACK: Duration = Duration::from_secs(5);

/// Events a following stream reads from the log at a time (all it buffers).
const FOLLOW_PAGE: u32 = 100;

/// How long events are kept unless configured otherwise: a week.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Types a read may name at most, and the longest type name.
const MAX_TYPES: usize = 50;
const MAX_TYPE_LEN: usize = 64;

/// One page of a tenant's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    /// The events, oldest first.
    pub events: Vec<InboundEvent>,
    /// Where the next page starts (also when `events` is empty).
    pub next_cursor: i64,
}

/// What a read asks for, as a request states it.
#[derive(Debug, Clone, Default)]
pub struct EventQuery<'a> {
    /// Only these connectors (empty: all the tenant's).
    pub connector_ids: &'a [String],
    /// Only these types (empty: all).
    pub types: &'a [String],
    /// After this cursor (empty: from the oldest kept).
    pub after_cursor: &'a str,
    /// At most this many (0: the default).
    pub page_size: i32,
    /// Also the connectors' own bots' messages.
    pub include_own: bool,
}

/// Stores Slack's events in the tenant's logs and reads them back.
#[derive(Clone)]
pub struct InboundEvents {
    ports: Ports,
    log: Arc<dyn EventLog>,
    retention: Duration,
    bells: Arc<EventBells>,
    sleep: Sleep,
    streams: Arc<StreamSlots>,
    appends: Arc<Appends>,
}

/// Events waiting to be appended, and whether a writer is at work: deliveries that arrive
/// while one transaction commits go together in the next (a group commit), so a busy
/// tenant's appends are not one commit each, in single file behind its cursor's lock.
struct Appends {
    log: Arc<dyn EventLog>,
    spawn: Spawn,
    state: std::sync::Mutex<AppendQueue>,
}

#[derive(Default)]
struct AppendQueue {
    waiting: Vec<(
        Vec<NewInboundEvent>,
        futures::channel::oneshot::Sender<AppendResult>,
    )>,
    writing: bool,
}

type AppendResult = Result<Vec<InboundEvent>, connector_ports::RepositoryError>;

/// Events one transaction appends at most.
const MAX_APPEND_BATCH: usize = 500;

/// Events that may wait to be written before [`InboundEvents::append_soon`] waits for its
/// commit: a bound on the memory a log that falls behind costs.
pub const MAX_PENDING_EVENTS: usize = 2 * MAX_APPEND_BATCH;

impl Appends {
    /// Appends `records` with whatever else is waiting; the ones stored now (not redeliveries).
    async fn append(self: &Arc<Self>, records: Vec<NewInboundEvent>) -> AppendResult {
        self.enqueue(records).await.unwrap_or_else(|_| {
            Err(connector_ports::RepositoryError::Unavailable(
                "the event log's writer stopped before answering".into(),
            ))
        })
    }

    /// Puts `records` in line behind whatever waits (in this order) and starts the writer
    /// when none is at work; the answer comes when they are committed.
    fn enqueue(
        self: &Arc<Self>,
        records: Vec<NewInboundEvent>,
    ) -> futures::channel::oneshot::Receiver<AppendResult> {
        self.enqueue_counted(records).0
    }

    /// [`Self::enqueue`], and how many events wait to be written with these.
    fn enqueue_counted(
        self: &Arc<Self>,
        records: Vec<NewInboundEvent>,
    ) -> (futures::channel::oneshot::Receiver<AppendResult>, usize) {
        let (done, result) = futures::channel::oneshot::channel();
        let (start, pending) = {
            let mut q = self.lock();
            q.waiting.push((records, done));
            let pending = q.waiting.iter().map(|(r, _)| r.len()).sum::<usize>();
            (!std::mem::replace(&mut q.writing, true), pending)
        };
        if start {
            // On a task of its own: a delivery whose caller went away still gets written, and
            // everyone waiting gets an answer.
            let this = self.clone();
            (self.spawn)(Box::pin(async move { this.write().await }));
        }
        (result, pending)
    }

    /// Writes batches until nothing waits.
    async fn write(&self) {
        loop {
            let batch = {
                let mut q = self.lock();
                if q.waiting.is_empty() {
                    q.writing = false;
                    return;
                }
                let mut n = 0;
                let take = q
                    .waiting
                    .iter()
                    .take_while(|(r, _)| {
                        n += r.len();
                        n <= MAX_APPEND_BATCH || n == r.len()
                    })
                    .count()
                    .max(1);
                q.waiting.drain(..take).collect::<Vec<_>>()
            };
            let all: Vec<NewInboundEvent> =
                batch.iter().flat_map(|(r, _)| r.iter().cloned()).collect();
            let result = self.log.append_events(&all).await;
            // Each delivery gets what of its own was stored: an event stored once even when two
            // deliveries of it were in the batch.
            let mut stored: std::collections::HashMap<(ConnectorId, String), InboundEvent> =
                match &result {
                    Ok(appended) => appended
                        .iter()
                        .map(|e| ((e.event.connector_id, e.event.event_id.clone()), e.clone()))
                        .collect(),
                    Err(_) => Default::default(),
                };
            for (records, done) in batch {
                let answer = match &result {
                    Ok(_) => Ok(records
                        .iter()
                        .filter_map(|r| stored.remove(&(r.connector_id, r.event_id.clone())))
                        .collect()),
                    Err(e) => Err(match e {
                        connector_ports::RepositoryError::Unavailable(why) => {
                            connector_ports::RepositoryError::Unavailable(why.clone())
                        }
                        other => connector_ports::RepositoryError::Unknown(anyhow::anyhow!(
                            "appending to the event log: {other}"
                        )),
                    }),
                };
                let _ = done.send(answer);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AppendQueue> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Wakes the streams of every tenant with an event in `appended`, once each.
fn ring_tenants(bells: &EventBells, appended: &[InboundEvent]) {
    let mut rung: Vec<&str> = Vec::new();
    for e in appended {
        let tenant = e.event.tenant_id.as_str();
        if !rung.contains(&tenant) {
            bells.ring(tenant);
            rung.push(tenant);
        }
    }
}

/// Streams open per tenant on this replica, and how many one may hold.
#[derive(Debug, Default)]
struct StreamSlots {
    open: std::sync::Mutex<std::collections::HashMap<TenantId, usize>>,
    per_tenant: Option<usize>,
}

/// One open stream's slot, given back when the stream is dropped.
struct StreamSlot {
    slots: Arc<StreamSlots>,
    tenant: TenantId,
}

impl StreamSlots {
    fn take(self: &Arc<Self>, tenant: &TenantId) -> Result<StreamSlot, ConnectorError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(tenant.clone()).or_default();
        if let Some(max) = self.per_tenant
            && *n >= max
        {
            return Err(ConnectorError::QuotaExceeded {
                subject: "event streams",
                description: format!(
                    "tenant {tenant} has {max} StreamEvents streams open on this replica \
                     (CONNECTOR__EVENTS__MAX_STREAMS_PER_TENANT); close one, or read with ListEvents"
                ),
            });
        }
        *n += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            tenant: tenant.clone(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.tenant);
            }
        }
    }
}

impl std::fmt::Debug for InboundEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundEvents")
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl InboundEvents {
    /// Over the ports, appending to and reading from `log`; events are kept for `retention`;
    /// following streams wait with `sleep` when no bell rings; appends are written by a task
    /// `spawn` starts.
    pub fn new(
        ports: Ports,
        log: Arc<dyn EventLog>,
        retention: Duration,
        sleep: Sleep,
        spawn: Spawn,
    ) -> Self {
        Self {
            ports,
            appends: Arc::new(Appends {
                log: log.clone(),
                spawn,
                state: Default::default(),
            }),
            log,
            retention,
            bells: Arc::new(EventBells::default()),
            sleep,
            streams: Arc::new(StreamSlots::default()),
        }
    }

    /// The same, letting one tenant hold at most `max` streams on this replica (`None`: no
    /// limit); one more is `RESOURCE_EXHAUSTED`.
    pub fn with_stream_limit(mut self, max: Option<usize>) -> Self {
        self.streams = Arc::new(StreamSlots {
            open: Default::default(),
            per_tenant: max,
        });
        self
    }

    /// The tenants' bells: give them to the database's event feed, which rings them when
    /// another replica appends.
    pub fn bells(&self) -> Arc<EventBells> {
        self.bells.clone()
    }

    /// Stores `event` for every connector it belongs to; returns how many times it was stored
    /// now (0: it belongs to no connector, or this is a redelivery). Fails when the log could
    /// not be written: the delivery must then not be acknowledged, so Slack delivers it again.
    #[tracing::instrument(name = "usecase events.store", skip_all)]
    pub async fn store(&self, event: &SlackEvent) -> Result<usize, ConnectorError> {
        // Older connectors of the workspace may not say whose bot they are yet.
        crate::bots::backfill(&self.ports, Some(&event.team_id), 100).await?;
        let connectors = self
            .ports
            .connectors
            .workspaces
            .of_app(&event.team_id, &event.api_app_id)
            .await?;
        if connectors.is_empty() {
            return Ok(0);
        }
        let received_at = micros(self.ports.clock.utc());
        let d = &event.detail;
        let records: Vec<NewInboundEvent> = connectors
            .iter()
            .map(|c| NewInboundEvent {
                tenant_id: c.tenant_id.clone(),
                connector_id: c.id,
                event_type: d.event_type.clone(),
                event_id: event.event_id.clone(),
                team_id: event.team_id.to_string(),
                channel_id: d.channel_id.clone(),
                user_id: d.user_id.clone(),
                ts: d.ts.clone(),
                thread_ts: d.thread_ts.clone(),
                text: d.text.clone(),
                from_own_bot: c
                    .bot
                    .as_ref()
                    .is_some_and(|b| d.user_id.as_deref() == Some(b.bot_user_id.as_str())),
                payload_json: d.payload_json.clone(),
                received_at,
            })
            .collect();
        self.append(records).await
    }

    /// Appends `events` (Slack's, or the service's own: a queued message's status changes) to
    /// their tenants' logs and wakes the streams following them; a redelivery (the same
    /// connector and event ID) is stored once. Returns how many were stored now.
    pub async fn append(&self, events: Vec<NewInboundEvent>) -> Result<usize, ConnectorError> {
        if events.is_empty() {
            return Ok(0);
        }
        let appended = self.appends.append(events).await?;
        ring_tenants(&self.bells, &appended);
        Ok(appended.len())
    }

    /// Waits until every event this process put in line before the call is written (or
    /// could not be): for a graceful stop.
    pub async fn flush(&self) {
        // An empty batch waits its turn behind everything already in line.
        let _ = self.appends.append(Vec::new()).await;
    }

    /// Appends `events` without waiting for the commit while the log keeps up: they are in
    /// line (after every earlier append of this process, before every later one) when this
    /// returns, and a failure is logged. When more than [`MAX_PENDING_EVENTS`] wait to be
    /// written, it waits for this commit instead, so a log that falls behind slows its
    /// producers rather than holding their events in memory. For what the caller must not
    /// be held up by (a queued message's status changes: the outbox is their record).
    pub async fn append_soon(&self, events: Vec<NewInboundEvent>) {
        if events.is_empty() {
            return;
        }
        let (committed, pending) = self.appends.enqueue_counted(events);
        let bells = self.bells.clone();
        let settle = async move {
            match committed.await {
                Ok(Ok(appended)) => ring_tenants(&bells, &appended),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not add status changes to the event log");
                }
                Err(_) => tracing::warn!("the event log's writer stopped before answering"),
            }
        };
        if pending > MAX_PENDING_EVENTS {
            settle.await;
        } else {
            (self.appends.spawn)(Box::pin(settle));
        }
    }

    /// `tenant`'s events as `query` asks, after its cursor (empty: from now on), then each new
    /// one as it is stored, until the stream is dropped. Reads the log a page at a time as the
    /// consumer takes events, so a slow consumer costs a page of memory, never more; it waits
    /// on the tenant's bell (at most [`FOLLOW_FALLBACK`]) when it has caught up. A failed read
    /// ends the stream with the error (resume from the last cursor seen).
    #[tracing::instrument(name = "usecase events.follow", skip_all)]
    pub async fn follow(
        &self,
        tenant: &TenantId,
        query: &EventQuery<'_>,
    ) -> Result<
        impl Stream<Item = Result<InboundEvent, ConnectorError>> + Send + 'static,
        ConnectorError,
    > {
        let filter = filter_of(query)?;
        let after = parse_cursor(query.after_cursor)?;
        let slot = self.streams.take(tenant)?;
        // The bell first: an append after the bounds are read still rings it.
        let bell = self.bells.bell(tenant.as_str());
        let bounds = self.log.cursor_bounds(tenant).await?;
        let after = match after {
            Some(after) => {
                check_cursor(after, &bounds)?;
                after
            }
            None => bounds.last,
        };
        let state = Following {
            log: self.log.clone(),
            tenant: tenant.clone(),
            filter,
            after,
            buffer: VecDeque::new(),
            bell,
            sleep: self.sleep.clone(),
            _slot: slot,
        };
        Ok(futures::stream::unfold(Some(state), |state| async move {
            let mut s = state?;
            loop {
                if let Some(event) = s.buffer.pop_front() {
                    s.after = event.cursor;
                    return Some((Ok(event), Some(s)));
                }
                let seen = s.bell.times();
                match s
                    .log
                    .list_events(&s.tenant, &s.filter, Some(s.after), FOLLOW_PAGE)
                    .await
                {
                    Err(e) => return Some((Err(e.into()), None)),
                    Ok(page) if !page.is_empty() => s.buffer.extend(page),
                    Ok(_) => {
                        let rung = s.bell.rings_after(seen);
                        let _ = crate::runtime::within(&s.sleep, FOLLOW_FALLBACK, rung).await;
                    }
                }
            }
        }))
    }

    /// One page of `tenant`'s events as `query` asks. A cursor whose successors were purged
    /// is [`ConnectorError::OutOfRange`]; one never given out is invalid.
    #[tracing::instrument(name = "usecase events.list", skip_all)]
    pub async fn list(
        &self,
        tenant: &TenantId,
        query: &EventQuery<'_>,
    ) -> Result<EventPage, ConnectorError> {
        let filter = filter_of(query)?;
        let after = parse_cursor(query.after_cursor)?;
        let limit = PageSize::parse("page_size", query.page_size)?.get();
        let bounds = self.log.cursor_bounds(tenant).await?;
        if let Some(after) = after {
            check_cursor(after, &bounds)?;
        }
        let events = self.log.list_events(tenant, &filter, after, limit).await?;
        let next_cursor = match (events.last(), after) {
            (Some(last), _) => last.cursor,
            (None, Some(after)) => after,
            (None, None) => bounds.last,
        };
        Ok(EventPage {
            events,
            next_cursor,
        })
    }

    /// Deletes events older than the retention; returns how many.
    pub async fn purge_expired(&self) -> Result<u64, ConnectorError> {
        let before =
            self.ports.clock.utc() - chrono::Duration::from_std(self.retention).unwrap_or_default();
        Ok(self.log.purge_events_before(before).await?)
    }
}

/// A following stream's place.
struct Following {
    log: Arc<dyn EventLog>,
    tenant: TenantId,
    filter: EventFilter,
    after: i64,
    buffer: VecDeque<InboundEvent>,
    bell: Arc<Bell>,
    sleep: Sleep,
    /// Held while the stream lives.
    _slot: StreamSlot,
}

/// Times as both databases keep them: microseconds (so what is streamed at once equals what
/// is read back later).
fn micros(at: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

fn filter_of(query: &EventQuery<'_>) -> Result<EventFilter, ValidationError> {
    let connector_ids = query
        .connector_ids
        .iter()
        .map(|id| ConnectorId::parse("connector_ids", id))
        .collect::<Result<Vec<_>, _>>()?;
    if query.types.len() > MAX_TYPES {
        return Err(ValidationError::new(
            "types",
            format!("name at most {MAX_TYPES} types"),
        ));
    }
    if let Some(bad) = query.types.iter().find(|t| {
        t.is_empty()
            || t.len() > MAX_TYPE_LEN
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
    }) {
        return Err(ValidationError::new(
            "types",
            format!(
                "{bad:?} is not a Slack event type (letters, digits, '_' and '.', at most {MAX_TYPE_LEN})"
            ),
        ));
    }
    Ok(EventFilter {
        connector_ids,
        types: query.types.to_vec(),
        include_own: query.include_own,
    })
}

/// The cursor `value` (empty: none). Cursors are decimal sequence numbers, opaque to clients.
fn parse_cursor(value: &str) -> Result<Option<i64>, ValidationError> {
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse::<i64>()
        .ok()
        .filter(|c| *c >= 0)
        .map(Some)
        .ok_or_else(|| {
            ValidationError::new(
                "after_cursor",
                "is not a cursor this service gave out (give back an event's cursor or a next_cursor)",
            )
        })
}

fn check_cursor(after: i64, bounds: &CursorBounds) -> Result<(), ConnectorError> {
    if after > bounds.last {
        return Err(ValidationError::new(
            "after_cursor",
            "is not a cursor this service gave out (give back an event's cursor or a next_cursor)",
        )
        .into());
    }
    if bounds.lost_after(after) {
        return Err(ConnectorError::OutOfRange {
            field: "after_cursor",
            reason: "the events after this cursor are older than the retention and were \
                     purged; read again with an empty after_cursor (from the oldest kept)"
                .into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use connector_domain::{BotIdentity, ConnectorState, WorkspaceId};
    use connector_ports::{
        EventDetail, MockConnectors, MockEventLog, MockSecretStore, MockSlackApi, SlackEventKind,
    };

    use super::*;
    use crate::testing::{connector, ports};

    fn event(user: &str) -> SlackEvent {
        SlackEvent {
            event_id: "Ev1".into(),
            team_id: WorkspaceId::new("T0001"),
            api_app_id: "A0APP".into(),
            kind: SlackEventKind::Ignored("message".into()),
            detail: EventDetail {
                event_type: "message".into(),
                channel_id: Some("C1".into()),
                user_id: Some(user.into()),
                text: Some("hi".into()),
                payload_json: "{}".into(),
                ..EventDetail::default()
            },
        }
    }

    #[tokio::test]
    async fn an_event_is_stored_for_each_connector_of_the_app_and_marks_its_own_bot() {
        let (mut a, b) = (
            connector("acme", "a", ConnectorState::Active),
            connector("globex", "b", ConnectorState::Active),
        );
        a.bot = Some(BotIdentity {
            bot_user_id: "U0ABOT".into(),
            app_id: Some("A0APP".into()),
        });
        let (a_id, b_id) = (a.id, b.id);
        let mut repo = MockConnectors::default();
        repo.workspaces
            .expect_unidentified()
            .returning(|_, _| Ok(Vec::new()));
        repo.workspaces
            .expect_of_app()
            .withf(|w, app| w.as_str() == "T0001" && app == "A0APP")
            .returning(move |_, _| Ok(vec![a.clone(), b.clone()]));
        let mut log = MockEventLog::new();
        log.expect_append_events()
            .withf(move |events| {
                events.len() == 2
                    && events[0].connector_id == a_id
                    && events[0].tenant_id.as_str() == "acme"
                    && events[0].from_own_bot
                    && events[1].connector_id == b_id
                    && !events[1].from_own_bot
                    && events[1].received_at.timestamp_subsec_nanos() % 1000 == 0
            })
            .times(1)
            .returning(|events| {
                Ok(events
                    .iter()
                    .map(|e| InboundEvent {
                        cursor: 1,
                        event: e.clone(),
                    })
                    .collect())
            });
        let inbound = InboundEvents::new(
            ports(repo, MockSecretStore::new(), MockSlackApi::new()),
            Arc::new(log),
            DEFAULT_RETENTION,
            crate::testing::tokio_sleep(),
            crate::testing::tokio_spawn(),
        );
        assert_eq!(inbound.store(&event("U0ABOT")).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn an_event_for_no_connector_is_dropped() {
        let mut repo = MockConnectors::default();
        repo.workspaces
            .expect_unidentified()
            .returning(|_, _| Ok(Vec::new()));
        repo.workspaces
            .expect_of_app()
            .returning(|_, _| Ok(Vec::new()));
        let mut log = MockEventLog::new();
        log.expect_append_events().never();
        let inbound = InboundEvents::new(
            ports(repo, MockSecretStore::new(), MockSlackApi::new()),
            Arc::new(log),
            DEFAULT_RETENTION,
            crate::testing::tokio_sleep(),
            crate::testing::tokio_spawn(),
        );
        assert_eq!(inbound.store(&event("U1")).await.unwrap(), 0);
    }

    fn lister(bounds: CursorBounds) -> InboundEvents {
        let mut log = MockEventLog::new();
        log.expect_cursor_bounds().returning(move |_| Ok(bounds));
        log.expect_list_events()
            .returning(|_, _, _, _| Ok(Vec::new()));
        InboundEvents::new(
            ports(
                MockConnectors::default(),
                MockSecretStore::new(),
                MockSlackApi::new(),
            ),
            Arc::new(log),
            DEFAULT_RETENTION,
            crate::testing::tokio_sleep(),
            crate::testing::tokio_spawn(),
        )
    }

    #[tokio::test]
    async fn a_tenant_holds_at_most_its_streams_and_a_closed_one_frees_its_slot() {
        let acme = TenantId::parse("t", "acme").unwrap();
        let globex = TenantId::parse("t", "globex").unwrap();
        let inbound = lister(CursorBounds::default()).with_stream_limit(Some(2));
        let q = EventQuery::default();
        let first = inbound.follow(&acme, &q).await.unwrap();
        let _second = inbound.follow(&acme, &q).await.unwrap();
        let third = inbound.follow(&acme, &q).await.err().unwrap();
        assert!(
            matches!(
                third,
                ConnectorError::QuotaExceeded {
                    subject: "event streams",
                    ..
                }
            ),
            "{third:?}"
        );
        // Another tenant is not counted against acme.
        let _theirs = inbound.follow(&globex, &q).await.unwrap();
        drop(first);
        let _again = inbound.follow(&acme, &q).await.unwrap();
    }

    #[tokio::test]
    async fn cursors_are_checked_against_what_was_kept_and_given_out() {
        let acme = TenantId::parse("t", "acme").unwrap();
        let kept = lister(CursorBounds {
            oldest_kept: Some(40),
            last: 50,
        });
        let at = |cursor: &'static str| EventQuery {
            after_cursor: cursor,
            ..EventQuery::default()
        };
        // Resuming right before the oldest kept loses nothing; further back, events were purged.
        assert_eq!(kept.list(&acme, &at("39")).await.unwrap().next_cursor, 39);
        let e = kept.list(&acme, &at("12")).await.unwrap_err();
        assert!(
            matches!(
                e,
                ConnectorError::OutOfRange {
                    field: "after_cursor",
                    ..
                }
            ),
            "{e:?}"
        );
        for bad in ["51", "-1", "abc", "1.5"] {
            let e = kept.list(&acme, &at(bad)).await.unwrap_err();
            assert!(e.to_string().starts_with("after_cursor:"), "{bad}: {e}");
        }
        // Nothing yet, from the start: later events come after the newest ever given out.
        assert_eq!(kept.list(&acme, &at("")).await.unwrap().next_cursor, 50);
        let e = kept
            .list(
                &acme,
                &EventQuery {
                    types: &["message; DROP".into()],
                    ..EventQuery::default()
                },
            )
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with("types:"), "{e}");
        let e = kept
            .list(
                &acme,
                &EventQuery {
                    connector_ids: &["nope".into()],
                    ..EventQuery::default()
                },
            )
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with("connector_ids:"), "{e}");
    }
}
