//! The `api_keys` table, and the [`ApiKeyStore`](connector_ports::ApiKeyStore) body each
//! backend instantiates with [`api_key_store!`](crate::api_key_store).

use connector_domain::ApiKeyId;
use connector_ports::{ApiKeyRecord, RepositoryError};
use diesel::prelude::*;

use crate::types::{DbId, DbTime};

/// One row of `api_keys`.
#[derive(Queryable, Selectable)]
#[diesel(table_name = crate::schema::api_keys)]
pub struct ApiKeyRow {
    id: DbId,
    secret_hash: String,
    tenant_id: Option<String>,
    scopes: String,
    name: String,
    created_at: DbTime,
    revoked_at: Option<DbTime>,
}

impl TryFrom<ApiKeyRow> for ApiKeyRecord {
    type Error = RepositoryError;
    fn try_from(r: ApiKeyRow) -> Result<Self, Self::Error> {
        ApiKeyRecord::from_columns(
            ApiKeyId::from_uuid(r.id.0),
            r.secret_hash,
            r.tenant_id.as_deref(),
            &r.scopes,
            r.name,
            r.created_at.0,
            r.revoked_at.map(|t| t.0),
        )
    }
}

/// Implements [`ApiKeyStore`](connector_ports::ApiKeyStore) for `$repo`, whose field `$pool`
/// is a [`SqlPool`](crate::SqlPool).
#[macro_export]
macro_rules! api_key_store {
    ($repo:ident . $pool:ident) => {
        mod __sql_api_key_store {
            use super::$repo;
            use $crate::__private::domain::ApiKeyId;
            use $crate::__private::ports::{ApiKeyRecord, ApiKeyStore, RepositoryError};
            use $crate::__private::*;
            use $crate::api_keys::ApiKeyRow;
            use $crate::schema::api_keys::dsl as k;

            #[async_trait]
            impl ApiKeyStore for $repo {
                async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), RepositoryError> {
                    $crate::execute!(
                        self.$pool,
                        diesel::insert_into(k::api_keys).values((
                            k::id.eq(DbId::from(key.id)),
                            k::secret_hash.eq(&key.secret_hash),
                            k::tenant_id.eq(key.tenant_column()),
                            k::scopes.eq(key.scopes_column()),
                            k::name.eq(&key.name),
                            k::created_at.eq(DbTime(key.created_at)),
                            k::revoked_at.eq(key.revoked_at.map(DbTime)),
                        ))
                    )
                    .map(|_| ())
                }

                async fn find_api_key(
                    &self,
                    id: ApiKeyId,
                ) -> Result<Option<ApiKeyRecord>, RepositoryError> {
                    let row: Option<ApiKeyRow> = $crate::first!(
                        self.$pool,
                        k::api_keys
                            .filter(k::id.eq(DbId::from(id)))
                            .select(ApiKeyRow::as_select())
                            .limit(1)
                    )?;
                    row.map(ApiKeyRecord::try_from).transpose()
                }

                async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, RepositoryError> {
                    let rows: Vec<ApiKeyRow> = $crate::load!(
                        self.$pool,
                        k::api_keys
                            .order((k::created_at.asc(), k::id.asc()))
                            .select(ApiKeyRow::as_select())
                    )?;
                    rows.into_iter().map(ApiKeyRecord::try_from).collect()
                }

                async fn revoke_api_key(
                    &self,
                    id: ApiKeyId,
                    at: DateTime<Utc>,
                ) -> Result<bool, RepositoryError> {
                    $crate::execute!(
                        self.$pool,
                        diesel::update(
                            k::api_keys
                                .filter(k::id.eq(DbId::from(id)))
                                .filter(k::revoked_at.is_null()),
                        )
                        .set(k::revoked_at.eq(Some(DbTime(at))))
                    )
                    .map(|n| n == 1)
                }

                async fn set_api_key_scopes(
                    &self,
                    id: ApiKeyId,
                    scopes: $crate::__private::domain::Scopes,
                ) -> Result<bool, RepositoryError> {
                    $crate::execute!(
                        self.$pool,
                        diesel::update(
                            k::api_keys
                                .filter(k::id.eq(DbId::from(id)))
                                .filter(k::revoked_at.is_null()),
                        )
                        .set(k::scopes.eq(scopes.to_string()))
                    )
                    .map(|n| n == 1)
                }
            }
        }
    };
}
