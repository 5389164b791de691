//! [`PgChangeFeed`]: the [`ConnectorChanges`] port on PostgreSQL's `LISTEN/NOTIFY`. Migration
//! 000008's trigger announces every update or delete of a connector row on channel
//! `connector_changes` at commit; the feed holds one connection of its own listening there
//! (named `connector-change-feed` in `pg_stat_activity`), reconnecting with backoff when it
//! breaks and telling its sink when it is lost and restored.

use std::sync::Arc;
use std::time::Duration;

use connector_domain::ConnectorId;
use connector_ports::{ChangeSink, ConnectorChanges};
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
        let url = self.url.clone();
        tokio::spawn(async move {
            let first = Duration::from_millis(100);
            let mut backoff = first;
            loop {
                let started = std::time::Instant::now();
                match listen(&url, sink.as_ref()).await {
                    Ok(()) => tracing::warn!(
                        "the connector change feed's connection closed; reconnecting"
                    ),
                    Err(e) => tracing::warn!(error = %e,
                        "the connector change feed cannot listen; retrying"),
                }
                sink.lost();
                // A feed that listened for a while starts its backoff afresh.
                if started.elapsed() > Duration::from_secs(10) {
                    backoff = first;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
    }
}

/// Listens until the connection ends; tells `sink` once listening.
async fn listen(url: &str, sink: &dyn ChangeSink) -> Result<(), diesel::result::Error> {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
    diesel::sql_query(format!("SET application_name = '{APPLICATION_NAME}'"))
        .execute(&mut conn)
        .await?;
    diesel::sql_query(format!("LISTEN {CHANNEL}"))
        .execute(&mut conn)
        .await?;
    sink.restored();
    let mut notifications = std::pin::pin!(conn.notifications_stream());
    while let Some(notification) = notifications.next().await {
        let notification = notification?;
        match ConnectorId::parse("payload", &notification.payload) {
            Ok(id) => sink.changed(id),
            Err(_) => tracing::warn!(payload = %notification.payload,
                "an unexpected notification on the connector change channel"),
        }
    }
    Ok(())
}
