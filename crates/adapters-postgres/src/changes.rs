//! [`PgChangeFeed`]: the [`ConnectorChanges`] port on PostgreSQL's `LISTEN/NOTIFY`. Migration
//! 000008's trigger announces every update or delete of a connector row on channel
//! `connector_changes` at commit; the feed holds one connection of its own listening there
//! (named `connector-change-feed` in `pg_stat_activity`), reconnecting with backoff when it
//! breaks and telling its sink when it is lost and restored. [`PgEventFeed`] does the same for
//! appends to the inbound event log, on channel `inbound_events`.

use std::sync::Arc;
use std::time::Duration;

use connector_domain::ConnectorId;
use connector_ports::{ChangeSink, ConnectorChanges, EventNotices, EventSink};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use futures::StreamExt as _;

/// The channel the trigger notifies.
pub const CHANNEL: &str = "connector_changes";
/// The feed connection's `application_name`.
pub const APPLICATION_NAME: &str = "connector-change-feed";

/// A change feed on the database at a URL (which may hold a password: never logged).
#[derive(Clone)]
pub struct PgChangeFeed {
    url: Arc<str>,
}

impl std::fmt::Debug for PgChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgChangeFeed").finish_non_exhaustive()
    }
}

impl PgChangeFeed {
    /// A feed on the database `url` names.
    pub fn new(url: &str) -> Self {
        Self { url: url.into() }
    }
}

impl ConnectorChanges for PgChangeFeed {
    fn watch(&self, sink: Arc<dyn ChangeSink>) {
        let feed = Feed {
            url: self.url.clone(),
            channel: CHANNEL,
            application_name: APPLICATION_NAME,
            what: "the connector change feed",
        };
        let each = sink.clone();
        feed.run(
            Arc::new(ChangeStatus(sink)),
            Arc::new(
                move |payload: &str| match ConnectorId::parse("payload", payload) {
                    Ok(id) => each.changed(id),
                    Err(_) => tracing::warn!(payload = %payload,
                    "an unexpected notification on the connector change channel"),
                },
            ),
        );
    }
}

/// The channel inbound event appends are announced on (migration 000014's trigger).
pub const EVENT_CHANNEL: &str = "inbound_events";
/// The event feed connection's `application_name`.
pub const EVENT_APPLICATION_NAME: &str = "connector-event-feed";

/// [`EventNotices`] on PostgreSQL's `LISTEN/NOTIFY`: every append to `inbound_events` is
/// announced at commit with its tenant, so streams on every replica wake at once.
#[derive(Clone)]
pub struct PgEventFeed {
    url: Arc<str>,
}

impl std::fmt::Debug for PgEventFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEventFeed").finish_non_exhaustive()
    }
}

impl PgEventFeed {
    /// A feed on the database `url` names.
    pub fn new(url: &str) -> Self {
        Self { url: url.into() }
    }
}

impl EventNotices for PgEventFeed {
    fn watch(&self, sink: Arc<dyn EventSink>) {
        let feed = Feed {
            url: self.url.clone(),
            channel: EVENT_CHANNEL,
            application_name: EVENT_APPLICATION_NAME,
            what: "the inbound event feed",
        };
        let each = sink.clone();
        feed.run(
            Arc::new(EventStatus(sink)),
            Arc::new(move |tenant: &str| each.appended(tenant)),
        );
    }
}

/// A feed's lost and restored, told to an [`EventSink`].
struct EventStatus(Arc<dyn EventSink>);

impl FeedStatus for EventStatus {
    fn lost(&self) {
        self.0.lost();
    }
    fn restored(&self) {
        self.0.restored();
    }
}

/// What a feed tells besides its payloads.
trait FeedStatus: Send + Sync {
    fn lost(&self);
    fn restored(&self);
}

/// A feed's lost and restored, told to a [`ChangeSink`].
struct ChangeStatus(Arc<dyn ChangeSink>);

impl FeedStatus for ChangeStatus {
    fn lost(&self) {
        self.0.lost();
    }
    fn restored(&self) {
        self.0.restored();
    }
}

/// One `LISTEN` connection of its own on one channel, reconnecting with backoff.
struct Feed {
    url: Arc<str>,
    channel: &'static str,
    application_name: &'static str,
    what: &'static str,
}

impl Feed {
    /// Listens in a task of its own, handing each notification's payload to `each`.
    fn run(self, status: Arc<dyn FeedStatus>, each: Arc<dyn Fn(&str) + Send + Sync>) {
        tokio::spawn(async move {
            let first = Duration::from_millis(100);
            let mut backoff = first;
            loop {
                let started = std::time::Instant::now();
                match self.listen(status.as_ref(), each.as_ref()).await {
                    Ok(()) => tracing::warn!(
                        feed = self.what,
                        "a database feed's connection closed; reconnecting"
                    ),
                    Err(e) => tracing::warn!(feed = self.what, error = %e,
                        "a database feed cannot listen; retrying"),
                }
                status.lost();
                // A feed that listened for a while starts its backoff afresh.
                if started.elapsed() > Duration::from_secs(10) {
                    backoff = first;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
    }

    /// Listens until the connection ends; tells `status` once listening.
    async fn listen(
        &self,
        status: &dyn FeedStatus,
        each: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(), diesel::result::Error> {
        let mut conn = AsyncPgConnection::establish(&self.url)
            .await
            .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
        diesel::sql_query(format!(
            "SET application_name = '{}'",
            self.application_name
        ))
        .execute(&mut conn)
        .await?;
        diesel::sql_query(format!("LISTEN {}", self.channel))
            .execute(&mut conn)
            .await?;
        status.restored();
        let mut notifications = std::pin::pin!(conn.notifications_stream());
        while let Some(notification) = notifications.next().await {
            each(&notification?.payload);
        }
        Ok(())
    }
}
