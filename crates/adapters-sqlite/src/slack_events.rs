//! [`SlackEventStore`] over the `slack_events` table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_ports::{RepositoryError, SlackEventStore};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::repository::{SqliteConnectorRepository, map_err, micros};
use crate::schema::slack_events::dsl as e;

#[async_trait]
impl SlackEventStore for SqliteConnectorRepository {
    async fn record_event(
        &self,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            // The primary key decides: one insert wins, across replicas.
            let n = diesel::insert_into(e::slack_events)
                .values((e::event_id.eq(event_id), e::received_at.eq(micros(at))))
                .on_conflict_do_nothing()
                .execute(&mut conn)
                .await
                .map_err(map_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn forget_event(&self, event_id: &str) -> Result<(), RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            diesel::delete(e::slack_events.filter(e::event_id.eq(event_id)))
                .execute(&mut conn)
                .await
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn purge_events(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let n = diesel::delete(e::slack_events.filter(e::received_at.lt(micros(before))))
                .execute(&mut conn)
                .await
                .map_err(map_err)?;
            Ok(n as u64)
        })
        .await
    }
}
