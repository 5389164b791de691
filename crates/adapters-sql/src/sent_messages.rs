//! The `sent_messages` table (idempotent sends), and the
//! [`SentMessageStore`](connector_ports::SentMessageStore) body each backend instantiates with
//! [`sent_message_store!`](crate::sent_message_store).

use connector_domain::MessageId;
use connector_ports::{RepositoryError, SendOutcome, SendRecord};
use diesel::prelude::*;

use crate::errors::corrupt;
use crate::types::{DbId, DbTime};

/// How many times a claim is tried when the row it conflicted with vanished before it could
/// be read (released by its send, or expired).
pub const CLAIM_ATTEMPTS: usize = 3;

/// One row of `sent_messages`, as a repeat reads it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = crate::schema::sent_messages)]
pub struct RecordRow {
    fingerprint: String,
    outcome: String,
    channel_id: Option<String>,
    ts: Option<String>,
    created_at: DbTime,
    updated_at: DbTime,
    message_id: Option<DbId>,
}

impl TryFrom<RecordRow> for SendRecord {
    type Error = RepositoryError;
    fn try_from(r: RecordRow) -> Result<Self, Self::Error> {
        let outcome = SendOutcome::from_columns(&r.outcome, r.channel_id, r.ts)
            .ok_or_else(|| corrupt(format!("sent_messages outcome {:?}", r.outcome)))?;
        Ok(SendRecord {
            outcome,
            fingerprint: r.fingerprint,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            message_id: r.message_id.map(|id| MessageId::from_uuid(id.0)),
        })
    }
}

/// Implements [`SentMessageStore`](connector_ports::SentMessageStore) for `$repo`, whose field
/// `$pool` is a [`SqlPool`](crate::SqlPool).
#[macro_export]
macro_rules! sent_message_store {
    ($repo:ident . $pool:ident) => {
        mod __sql_sent_message_store {
            use super::$repo;
            use $crate::__private::domain::{ChannelId, ConnectorId, MessageId};
            use $crate::__private::ports::{
                PostedRecord, RepositoryError, SendKey, SendOutcome, SendRecord, SentMessageStore,
            };
            use $crate::__private::*;
            use $crate::schema::posted_messages::dsl as p;
            use $crate::schema::sent_messages::dsl as s;
            use $crate::sent_messages::{CLAIM_ATTEMPTS, RecordRow};

            #[async_trait]
            impl SentMessageStore for $repo {
                async fn claim_send(
                    &self,
                    key: &SendKey,
                    fingerprint: &str,
                    message_id: Option<MessageId>,
                    now: DateTime<Utc>,
                    expired_before: DateTime<Utc>,
                ) -> Result<Option<SendRecord>, RepositoryError> {
                    let id = DbId::from(key.connector_id);
                    let request_id = key.request_id.as_str();
                    $crate::with_conn!(self.$pool, conn, {
                        for _ in 0..CLAIM_ATTEMPTS {
                            diesel::delete(
                                s::sent_messages
                                    .filter(s::connector_id.eq(id))
                                    .filter(s::request_id.eq(request_id))
                                    .filter(s::created_at.lt(DbTime(expired_before))),
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
                                    s::created_at.eq(DbTime(now)),
                                    s::updated_at.eq(DbTime(now)),
                                    s::message_id.eq(message_id.map(|m| DbId(m.as_uuid()))),
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
                }

                async fn finish_send(
                    &self,
                    key: &SendKey,
                    outcome: &SendOutcome,
                ) -> Result<(), RepositoryError> {
                    let (outcome, channel, ts) = outcome.to_columns();
                    // Once per keyed send: prepared, not planned on each call.
                    $crate::execute!(
                        self.$pool,
                        prepared(
                            diesel::update(
                                s::sent_messages
                                    .filter(s::connector_id.eq(DbId::from(key.connector_id)))
                                    .filter(s::request_id.eq(key.request_id.as_str())),
                            )
                            .set((
                                s::outcome.eq(outcome),
                                s::channel_id.eq(channel),
                                s::ts.eq(ts),
                                s::updated_at.eq(DbNow::now()),
                            ))
                        )
                    )
                    .map(|_| ())
                }

                async fn retake_send(
                    &self,
                    key: &SendKey,
                    seen: &SendRecord,
                    now: DateTime<Utc>,
                ) -> Result<bool, RepositoryError> {
                    let n = $crate::execute!(
                        self.$pool,
                        diesel::update(
                            s::sent_messages
                                .filter(s::connector_id.eq(DbId::from(key.connector_id)))
                                .filter(s::request_id.eq(key.request_id.as_str()))
                                .filter(s::outcome.eq(seen.outcome.to_columns().0))
                                .filter(s::created_at.eq(DbTime(seen.created_at))),
                        )
                        .set((
                            s::outcome.eq(SendOutcome::InFlight.to_columns().0),
                            s::channel_id.eq(None::<String>),
                            s::ts.eq(None::<String>),
                            s::created_at.eq(DbTime(now)),
                            s::updated_at.eq(DbTime(now)),
                        ))
                    )?;
                    Ok(n == 1)
                }

                async fn release_send(&self, key: &SendKey) -> Result<(), RepositoryError> {
                    $crate::execute!(
                        self.$pool,
                        diesel::delete(
                            s::sent_messages
                                .filter(s::connector_id.eq(DbId::from(key.connector_id)))
                                .filter(s::request_id.eq(key.request_id.as_str()))
                                .filter(s::outcome.eq(SendOutcome::InFlight.to_columns().0)),
                        )
                    )
                    .map(|_| ())
                }

                async fn find_send(
                    &self,
                    key: &SendKey,
                ) -> Result<Option<SendRecord>, RepositoryError> {
                    let row: Option<RecordRow> = $crate::first!(
                        self.$pool,
                        s::sent_messages
                            .filter(s::connector_id.eq(DbId::from(key.connector_id)))
                            .filter(s::request_id.eq(key.request_id.as_str()))
                            .select(RecordRow::as_select())
                            .limit(1)
                    )?;
                    row.map(SendRecord::try_from).transpose()
                }

                async fn purge_sends(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError> {
                    $crate::execute!(
                        self.$pool,
                        diesel::delete(s::sent_messages.filter(s::created_at.lt(DbTime(before))),)
                    )
                }

                async fn record_posted(
                    &self,
                    posted: &[PostedRecord],
                    at: DateTime<Utc>,
                ) -> Result<(), RepositoryError> {
                    $crate::with_conn!(self.$pool, conn, {
                        // A batch of sends' records: one transaction, one commit.
                        diesel_async::AsyncConnection::transaction(&mut conn, async |conn| {
                            for m in posted {
                                diesel::insert_into(p::posted_messages)
                                    .values((
                                        p::connector_id.eq(DbId::from(m.connector_id)),
                                        p::channel_id.eq(m.channel.as_str()),
                                        p::ts.eq(m.ts.as_str()),
                                        p::tenant_id.eq(m.tenant_id.as_str()),
                                        p::posted_at.eq(DbTime(at)),
                                    ))
                                    .on_conflict_do_nothing()
                                    .execute(conn)
                                    .await?;
                            }
                            Ok::<_, diesel::result::Error>(())
                        })
                        .await
                        .map_err(map_err)
                    })
                }

                async fn was_posted(
                    &self,
                    connector: ConnectorId,
                    channel: &ChannelId,
                    ts: &str,
                ) -> Result<bool, RepositoryError> {
                    let found: Option<String> = $crate::first!(
                        self.$pool,
                        p::posted_messages
                            .filter(p::connector_id.eq(DbId::from(connector)))
                            .filter(p::channel_id.eq(channel.as_str()))
                            .filter(p::ts.eq(ts))
                            .select(p::ts)
                            .limit(1)
                    )?;
                    Ok(found.is_some())
                }

                async fn forget_posted(
                    &self,
                    connector: ConnectorId,
                    channel: &ChannelId,
                    ts: &str,
                ) -> Result<(), RepositoryError> {
                    $crate::execute!(
                        self.$pool,
                        diesel::delete(
                            p::posted_messages
                                .filter(p::connector_id.eq(DbId::from(connector)))
                                .filter(p::channel_id.eq(channel.as_str()))
                                .filter(p::ts.eq(ts)),
                        )
                    )
                    .map(|_| ())
                }

                async fn purge_posted(
                    &self,
                    before: DateTime<Utc>,
                ) -> Result<u64, RepositoryError> {
                    $crate::execute!(
                        self.$pool,
                        diesel::delete(p::posted_messages.filter(p::posted_at.lt(DbTime(before))))
                    )
                }
            }
        }
    };
}
