//! The `slack_events` table (each Slack event acted on once), and the
//! [`SlackEventStore`](connector_ports::SlackEventStore) body each backend instantiates with
//! [`slack_event_store!`](crate::slack_event_store).

/// Implements [`SlackEventStore`](connector_ports::SlackEventStore) for `$repo`, whose field
/// `$pool` is a [`SqlPool`](crate::SqlPool).
#[macro_export]
macro_rules! slack_event_store {
    ($repo:ident . $pool:ident) => {
        mod __sql_slack_event_store {
            use super::$repo;
            use $crate::__private::ports::{RepositoryError, SlackEventStore};
            use $crate::__private::*;
            use $crate::schema::slack_events::dsl as e;

            #[async_trait]
            impl SlackEventStore for $repo {
                async fn record_event(
                    &self,
                    event_id: &str,
                    at: DateTime<Utc>,
                ) -> Result<bool, RepositoryError> {
                    // The primary key decides: one insert wins, across replicas.
                    $crate::execute!(
                        self.$pool,
                        diesel::insert_into(e::slack_events)
                            .values((e::event_id.eq(event_id), e::received_at.eq(DbTime(at))))
                            .on_conflict_do_nothing()
                    )
                    .map(|n| n == 1)
                }

                async fn forget_event(&self, event_id: &str) -> Result<(), RepositoryError> {
                    $crate::execute!(
                        self.$pool,
                        diesel::delete(e::slack_events.filter(e::event_id.eq(event_id)))
                    )
                    .map(|_| ())
                }

                async fn purge_events(
                    &self,
                    before: DateTime<Utc>,
                ) -> Result<u64, RepositoryError> {
                    $crate::execute!(
                        self.$pool,
                        diesel::delete(e::slack_events.filter(e::received_at.lt(DbTime(before))),)
                    )
                }
            }
        }
    };
}
