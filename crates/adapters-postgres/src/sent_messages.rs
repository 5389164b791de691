//! [`SentMessageStore`] over the `sent_messages` table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_ports::{RepositoryError, SendKey, SendOutcome, SendRecord, SentMessageStore};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::repository::{PgConnectorRepository, anyhow_error, map_err};
use crate::schema::sent_messages::dsl as s;

#[derive(Queryable, Selectable)]
#[diesel(table_name = crate::schema::sent_messages, check_for_backend(diesel::pg::Pg))]
struct RecordRow {
    fingerprint: String,
    outcome: String,
    channel_id: Option<String>,
    ts: Option<String>,
    created_at: DateTime<Utc>,
}

impl TryFrom<RecordRow> for SendRecord {
    type Error = RepositoryError;
    fn try_from(r: RecordRow) -> Result<Self, Self::Error> {
        let outcome =
            SendOutcome::from_columns(&r.outcome, r.channel_id, r.ts).ok_or_else(|| {
                RepositoryError::Unknown(anyhow_error(format!(
                    "corrupt sent_messages row: outcome {:?}",
                    r.outcome
                )))
            })?;
        Ok(SendRecord {
            outcome,
            fingerprint: r.fingerprint,
            created_at: r.created_at,
        })
    }
}

/// How many times a claim is tried when the row it conflicted with vanished before it could
/// be read (released by its send, or expired).
const CLAIM_ATTEMPTS: usize = 3;

#[async_trait]
impl SentMessageStore for PgConnectorRepository {
    async fn claim_send(
        &self,
        key: &SendKey,
        fingerprint: &str,
        now: DateTime<Utc>,
        expired_before: DateTime<Utc>,
    ) -> Result<Option<SendRecord>, RepositoryError> {
        let id = key.connector_id.as_uuid();
        let request_id = key.request_id.as_str();
        self.timed(async {
            let mut conn = self.conn().await?;
            for _ in 0..CLAIM_ATTEMPTS {
                diesel::delete(
                    s::sent_messages
                        .filter(s::connector_id.eq(id))
                        .filter(s::request_id.eq(request_id))
                        .filter(s::created_at.lt(expired_before)),
                )
                .execute(&mut conn)
                .await
                .map_err(map_err)?;
                let claimed = diesel::insert_into(s::sent_messages)
                    .values((
                        s::connector_id.eq(id),
                        s::request_id.eq(request_id),
                        s::tenant_id.eq(key.tenant_id.as_str()),
                        s::fingerprint.eq(fingerprint),
                        s::outcome.eq(SendOutcome::InFlight.to_columns().0),
                        s::created_at.eq(now),
                        s::updated_at.eq(now),
                    ))
                    .on_conflict_do_nothing()
                    .execute(&mut conn)
                    .await
                    .map_err(map_err)?;
                if claimed == 1 {
                    return Ok(None);
                }
                let existing: Option<RecordRow> = s::sent_messages
                    .filter(s::connector_id.eq(id))
                    .filter(s::request_id.eq(request_id))
                    .select(RecordRow::as_select())
                    .first(&mut conn)
                    .await
                    .optional()
                    .map_err(map_err)?;
                if let Some(row) = existing {
                    return row.try_into().map(Some);
                }
            }
            Err(RepositoryError::Unavailable(
                "the send's request_id record kept changing; retry".into(),
            ))
        })
        .await
    }

    async fn finish_send(
        &self,
        key: &SendKey,
        outcome: &SendOutcome,
    ) -> Result<(), RepositoryError> {
        let (outcome, channel, ts) = outcome.to_columns();
        self.timed(async {
            let mut conn = self.conn().await?;
            diesel::update(
                s::sent_messages
                    .filter(s::connector_id.eq(key.connector_id.as_uuid()))
                    .filter(s::request_id.eq(key.request_id.as_str())),
            )
            .set((
                s::outcome.eq(outcome),
                s::channel_id.eq(channel),
                s::ts.eq(ts),
                s::updated_at.eq(Utc::now()),
            ))
            .execute(&mut conn)
            .await
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn release_send(&self, key: &SendKey) -> Result<(), RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            diesel::delete(
                s::sent_messages
                    .filter(s::connector_id.eq(key.connector_id.as_uuid()))
                    .filter(s::request_id.eq(key.request_id.as_str()))
                    .filter(s::outcome.eq(SendOutcome::InFlight.to_columns().0)),
            )
            .execute(&mut conn)
            .await
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn find_send(&self, key: &SendKey) -> Result<Option<SendRecord>, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let row: Option<RecordRow> = s::sent_messages
                .filter(s::connector_id.eq(key.connector_id.as_uuid()))
                .filter(s::request_id.eq(key.request_id.as_str()))
                .select(RecordRow::as_select())
                .first(&mut conn)
                .await
                .optional()
                .map_err(map_err)?;
            row.map(SendRecord::try_from).transpose()
        })
        .await
    }

    async fn purge_sends(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let n = diesel::delete(s::sent_messages.filter(s::created_at.lt(before)))
                .execute(&mut conn)
                .await
                .map_err(map_err)?;
            Ok(n as u64)
        })
        .await
    }
}
