//! The `oauth_states` table: pending installs, and the
//! [`OAuthStateStore`](connector_ports::OAuthStateStore) body each backend instantiates with
//! [`oauth_state_store!`](crate::oauth_state_store).

use connector_domain::{ConnectorName, TenantId, WorkspaceId};
use connector_ports::{PendingInstall, RepositoryError};
use diesel::prelude::*;

use crate::errors::corrupt;
use crate::types::DbTime;

/// One row of `oauth_states`.
#[derive(Queryable, Selectable)]
#[diesel(table_name = crate::schema::oauth_states)]
pub struct StateRow {
    tenant_id: String,
    name: String,
    default_channel: String,
    expires_at: DbTime,
    browser_hash: Option<String>,
    team_id: Option<String>,
}

impl TryFrom<StateRow> for PendingInstall {
    type Error = RepositoryError;
    fn try_from(r: StateRow) -> Result<Self, Self::Error> {
        let bad = |e: connector_domain::ValidationError| corrupt(format!("oauth state: {e}"));
        Ok(PendingInstall {
            tenant_id: TenantId::parse("tenant_id", &r.tenant_id).map_err(bad)?,
            name: ConnectorName::parse("name", &r.name).map_err(bad)?,
            default_channel: r.default_channel,
            expires_at: r.expires_at.0,
            team_id: r.team_id.map(WorkspaceId::new),
            browser_hash: r.browser_hash,
        })
    }
}

/// Implements [`OAuthStateStore`](connector_ports::OAuthStateStore) for `$repo`, whose field
/// `$pool` is a [`SqlPool`](crate::SqlPool).
#[macro_export]
macro_rules! oauth_state_store {
    ($repo:ident . $pool:ident) => {
        mod __sql_oauth_state_store {
            use super::$repo;
            use $crate::__private::domain::TenantId;
            use $crate::__private::ports::{OAuthStateStore, PendingInstall, RepositoryError};
            use $crate::__private::*;
            use $crate::oauth_states::StateRow;
            use $crate::schema::oauth_states::dsl as s;

            #[async_trait]
            impl OAuthStateStore for $repo {
                async fn save_state(
                    &self,
                    state_hash: &str,
                    pending: &PendingInstall,
                ) -> Result<(), RepositoryError> {
                    $crate::execute!(
                        self.$pool,
                        diesel::insert_into(s::oauth_states).values((
                            s::state_hash.eq(state_hash),
                            s::tenant_id.eq(pending.tenant_id.as_str()),
                            s::name.eq(pending.name.as_str()),
                            s::default_channel.eq(&pending.default_channel),
                            s::created_at.eq(DbNow::now()),
                            s::expires_at.eq(DbTime(pending.expires_at)),
                            s::team_id.eq(pending.team_id.as_ref().map(|t| t.as_str())),
                            s::browser_hash.eq(pending.browser_hash.as_deref()),
                        ))
                    )
                    .map(|_| ())
                }

                async fn take_state(
                    &self,
                    state_hash: &str,
                    browser_hash: &str,
                ) -> Result<Option<PendingInstall>, RepositoryError> {
                    let row: Option<StateRow> = $crate::first!(
                        self.$pool,
                        diesel::delete(
                            s::oauth_states
                                .filter(s::state_hash.eq(state_hash))
                                .filter(s::browser_hash.eq(browser_hash)),
                        )
                        .returning(StateRow::as_returning())
                    )?;
                    row.map(PendingInstall::try_from).transpose()
                }

                async fn bind_browser(
                    &self,
                    state_hash: &str,
                    browser_hash: &str,
                    now: DateTime<Utc>,
                ) -> Result<Option<PendingInstall>, RepositoryError> {
                    let row: Option<StateRow> = $crate::first!(
                        self.$pool,
                        diesel::update(
                            s::oauth_states
                                .filter(s::state_hash.eq(state_hash))
                                .filter(s::browser_hash.is_null())
                                .filter(s::expires_at.gt(DbTime(now))),
                        )
                        .set(s::browser_hash.eq(Some(browser_hash)))
                        .returning(StateRow::as_returning())
                    )?;
                    row.map(PendingInstall::try_from).transpose()
                }

                async fn count_states(
                    &self,
                    tenant: &TenantId,
                    now: DateTime<Utc>,
                ) -> Result<u64, RepositoryError> {
                    $crate::with_conn!(self.$pool, conn, {
                        let n: i64 = s::oauth_states
                            .filter(s::tenant_id.eq(tenant.as_str()))
                            .filter(s::expires_at.gt(DbTime(now)))
                            .count()
                            .get_result(&mut conn)
                            .await
                            .map_err(map_err)?;
                        Ok(u64::try_from(n).unwrap_or(0))
                    })
                }

                async fn purge_states(
                    &self,
                    before: DateTime<Utc>,
                ) -> Result<u64, RepositoryError> {
                    $crate::execute!(
                        self.$pool,
                        diesel::delete(s::oauth_states.filter(s::expires_at.lt(DbTime(before))),)
                    )
                }
            }
        }
    };
}
