//! Static API keys: created (the key shown once), listed, revoked, and turned back into the
//! [`Principal`] they stand for.
//!
//! A key reads `ck_<id>_<secret>`: 32 hex digits of a random ID, then 43 characters of
//! URL-safe base64 (256 random bits). Only the SHA-256 of the secret is stored; a key is found
//! by its ID and its secret compared in constant time, so neither the lookup nor the compare
//! tells an attacker how much of a guess was right.

use std::sync::Arc;

use base64::Engine as _;
use connector_domain::{ApiKeyId, Principal, Scopes, TenantGrant, TenantId, ValidationError};
use connector_ports::{ApiKeyRecord, ApiKeyStore};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

use crate::hex;
use crate::runtime::Clock;

use crate::error::ConnectorError;

/// The prefix every key starts with, so secret scanners and people can recognise one.
pub const KEY_PREFIX: &str = "ck_";

/// Why a bearer credential that looks like an API key was not accepted. Never carries the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejected {
    /// It is not of the form `ck_<id>_<secret>`.
    #[error("the API key is malformed (expected ck_<id>_<secret>)")]
    Malformed,
    /// No key has this ID, or the secret does not match.
    #[error("the API key is not valid")]
    Unknown,
    /// The key was revoked.
    #[error("the API key was revoked")]
    Revoked,
}

/// A key as `api-key create` prints it: the only time the secret is shown.
#[derive(Debug)]
pub struct CreatedKey {
    /// The full key to hand to the caller.
    pub key: SecretString,
    /// What was stored.
    pub record: ApiKeyRecord,
}

/// A key to create, parsed: whom it stands for, what it may do, what people call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// One tenant, or every tenant.
    pub tenants: TenantGrant,
    /// What it may do.
    pub scopes: Scopes,
    /// A label for people (at most 128 characters).
    pub name: String,
}

impl NewApiKey {
    /// Parses the raw fields: `tenant` (`None`: every tenant), scope names, a name; an error
    /// names the field.
    pub fn parse(
        tenant: Option<&str>,
        scopes: &[String],
        name: &str,
    ) -> Result<Self, ValidationError> {
        let tenants = match tenant {
            Some(t) => TenantGrant::One(TenantId::parse("tenant", t)?),
            None => TenantGrant::All,
        };
        let scopes = Scopes::parse_names("scope", scopes.iter().map(String::as_str))?;
        if name.chars().count() > 128 {
            return Err(ValidationError::new(
                "name",
                "must be at most 128 characters",
            ));
        }
        Ok(Self {
            tenants,
            scopes,
            name: name.to_owned(),
        })
    }
}

/// The API key use cases.
#[derive(Clone)]
pub struct ApiKeys {
    store: Arc<dyn ApiKeyStore>,
    clock: Arc<dyn Clock>,
    unknown: Arc<UnknownIds>,
}

/// Key IDs the store said it does not have, for a while: a caller guessing keys costs a
/// hash-map lookup, not a database query. Bounded; IDs are random, so a key created later
/// never has one of these.
#[derive(Default)]
struct UnknownIds(std::sync::Mutex<std::collections::HashMap<ApiKeyId, std::time::Instant>>);

impl UnknownIds {
    /// How long an unknown ID is remembered.
    const TTL: std::time::Duration = std::time::Duration::from_secs(60);
    /// IDs remembered at most; past it, the oldest half is dropped.
    const MAX: usize = 10_000;

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<ApiKeyId, std::time::Instant>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn known_unknown(&self, id: ApiKeyId, now: std::time::Instant) -> bool {
        self.lock().get(&id).is_some_and(|until| *until > now)
    }

    fn remember(&self, id: ApiKeyId, now: std::time::Instant) {
        let mut ids = self.lock();
        if ids.len() >= Self::MAX {
            ids.retain(|_, until| *until > now);
            if ids.len() >= Self::MAX {
                ids.clear();
            }
        }
        ids.insert(id, now + Self::TTL);
    }
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys").finish_non_exhaustive()
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Equal in time independent of where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ApiKeys {
    /// The use cases over `store`.
    pub fn new(store: Arc<dyn ApiKeyStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            unknown: Arc::default(),
        }
    }

    /// Creates `key`.
    pub async fn create(&self, key: NewApiKey) -> Result<CreatedKey, ConnectorError> {
        let id = ApiKeyId::new_random();
        let secret =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let now = self.clock.utc();
        let record = ApiKeyRecord {
            id,
            secret_hash: hex(&digest(&secret)),
            tenants: key.tenants,
            scopes: key.scopes,
            name: key.name,
            // Stores keep microseconds; so does the record, so what is returned is what is read.
            created_at: chrono::DateTime::from_timestamp_micros(now.timestamp_micros())
                .unwrap_or(now),
            revoked_at: None,
        };
        self.store.insert_api_key(&record).await?;
        Ok(CreatedKey {
            key: SecretString::from(format!("{KEY_PREFIX}{id}_{secret}")),
            record,
        })
    }

    /// Every key (hashes only), oldest first.
    pub async fn list(&self) -> Result<Vec<ApiKeyRecord>, ConnectorError> {
        Ok(self.store.list_api_keys().await?)
    }

    /// Revokes key `id`; NOT_FOUND when there is no such active key.
    pub async fn revoke(&self, id: ApiKeyId) -> Result<(), ConnectorError> {
        if self.store.revoke_api_key(id, self.clock.utc()).await? {
            Ok(())
        } else {
            Err(ConnectorError::NotFound {
                id: format!("API key {id} (or it is already revoked)"),
            })
        }
    }

    /// Adds `scopes` to active key `id` (keys made before a scope existed get it only this
    /// way); answers the key's scopes now. NOT_FOUND when there is no such active key.
    pub async fn grant(&self, id: ApiKeyId, scopes: Scopes) -> Result<Scopes, ConnectorError> {
        let not_found = || ConnectorError::NotFound {
            id: format!("API key {id} (or it is revoked)"),
        };
        let key = self
            .store
            .find_api_key(id)
            .await?
            .filter(|k| k.revoked_at.is_none())
            .ok_or_else(not_found)?;
        let granted = scopes.iter().fold(key.scopes, Scopes::with);
        if self.store.set_api_key_scopes(id, granted).await? {
            Ok(granted)
        } else {
            Err(not_found())
        }
    }

    /// Whether `credential` has the form of an API key (as opposed to a JWT).
    pub fn looks_like_key(credential: &str) -> bool {
        credential.starts_with(KEY_PREFIX)
    }

    /// The caller `key` stands for.
    pub async fn authenticate(
        &self,
        key: &SecretString,
    ) -> Result<Result<Principal, KeyRejected>, ConnectorError> {
        let Some((id, secret)) = key
            .expose_secret()
            .strip_prefix(KEY_PREFIX)
            .and_then(|rest| rest.split_once('_'))
        else {
            return Ok(Err(KeyRejected::Malformed));
        };
        let Ok(id) = ApiKeyId::parse("key", id) else {
            return Ok(Err(KeyRejected::Malformed));
        };
        // What create makes: 32 random bytes, URL-safe base64 without padding.
        let well_formed = secret.len() == 43
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Ok(Err(KeyRejected::Malformed));
        }
        let now = self.clock.now();
        if self.unknown.known_unknown(id, now) {
            return Ok(Err(KeyRejected::Unknown));
        }
        let Some(record) = self.store.find_api_key(id).await? else {
            self.unknown.remember(id, now);
            return Ok(Err(KeyRejected::Unknown));
        };
        if !constant_time_eq(
            hex(&digest(secret)).as_bytes(),
            record.secret_hash.as_bytes(),
        ) {
            return Ok(Err(KeyRejected::Unknown));
        }
        if record.revoked_at.is_some() {
            return Ok(Err(KeyRejected::Revoked));
        }
        Ok(Ok(Principal {
            subject: format!("api-key:{}", record.id),
            tenants: record.tenants,
            scopes: record.scopes,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use connector_domain::Scope;
    use connector_ports::MockApiKeyStore;

    use super::*;

    fn store_keeping_what_is_inserted() -> (MockApiKeyStore, Arc<Mutex<Vec<ApiKeyRecord>>>) {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let mut store = MockApiKeyStore::new();
        let k = kept.clone();
        store.expect_insert_api_key().returning(move |r| {
            k.lock().unwrap().push(r.clone());
            Ok(())
        });
        let k = kept.clone();
        store
            .expect_find_api_key()
            .returning(move |id| Ok(k.lock().unwrap().iter().find(|r| r.id == id).cloned()));
        (store, kept)
    }

    /// A clock stopped at one wall-clock time.
    struct Stopped(chrono::DateTime<chrono::Utc>);

    impl crate::Clock for Stopped {
        fn now(&self) -> std::time::Instant {
            std::time::Instant::now()
        }
        fn utc(&self) -> chrono::DateTime<chrono::Utc> {
            self.0
        }
    }

    #[tokio::test]
    async fn creation_and_revocation_times_come_from_the_injected_clock() {
        let (mut store, kept) = store_keeping_what_is_inserted();
        let at = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        store
            .expect_revoke_api_key()
            .withf(move |_, when| *when == at)
            .returning(|_, _| Ok(true));
        let keys = ApiKeys::new(Arc::new(store), Arc::new(Stopped(at)));
        let created = keys
            .create(NewApiKey::parse(None, &["messages:send".into()], "clock").unwrap())
            .await
            .unwrap();
        assert_eq!(created.record.created_at, at);
        assert_eq!(kept.lock().unwrap()[0].created_at, at);
        keys.revoke(created.record.id).await.unwrap();
    }

    #[tokio::test]
    async fn a_created_key_authenticates_as_its_tenant_and_scopes_and_only_its_hash_is_kept() {
        let (store, kept) = store_keeping_what_is_inserted();
        let keys = ApiKeys::new(Arc::new(store), Arc::new(crate::SystemClock));
        let created = keys
            .create(NewApiKey::parse(Some("acme"), &["messages:send".into()], "ci").unwrap())
            .await
            .unwrap();
        let key = created.key.expose_secret().to_owned();
        assert!(key.starts_with("ck_"), "{key}");
        let stored = kept.lock().unwrap()[0].clone();
        assert!(!stored.secret_hash.is_empty());
        assert!(!key.contains(&stored.secret_hash));
        // The secret is everything after the ID; URL-safe base64 may itself contain '_'.
        let (_, secret) = key[KEY_PREFIX.len()..].split_once('_').unwrap();
        assert_eq!(secret.len(), 43, "{key}");
        assert!(!format!("{stored:?}").contains(secret));

        let p = keys.authenticate(&created.key).await.unwrap().unwrap();
        assert_eq!(
            p.tenants,
            TenantGrant::One(TenantId::parse("t", "acme").unwrap())
        );
        assert!(p.scopes.contains(Scope::MessagesSend));
        assert!(!p.scopes.contains(Scope::ConnectorsRead));
        assert_eq!(p.subject, format!("api-key:{}", stored.id));

        // One character off in the secret: not valid.
        let mut wrong = key.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(
            keys.authenticate(&SecretString::from(wrong)).await.unwrap(),
            Err(KeyRejected::Unknown)
        );
        for malformed in ["ck_", "ck_nothex_abc", "xoxb-123", "ck_0123"] {
            assert_eq!(
                keys.authenticate(&SecretString::from(malformed.to_owned()))
                    .await
                    .unwrap(),
                Err(KeyRejected::Malformed),
                "{malformed}"
            );
        }
    }

    #[tokio::test]
    async fn a_revoked_key_is_refused_and_bad_input_names_the_field() {
        let (store, kept) = store_keeping_what_is_inserted();
        let keys = ApiKeys::new(Arc::new(store), Arc::new(crate::SystemClock));
        let created = keys
            .create(NewApiKey::parse(None, &["connectors:read".into()], "").unwrap())
            .await
            .unwrap();
        kept.lock().unwrap()[0].revoked_at = Some(chrono::Utc::now());
        assert_eq!(
            keys.authenticate(&created.key).await.unwrap(),
            Err(KeyRejected::Revoked)
        );
        let err = NewApiKey::parse(Some("acme"), &["connectors:admin".into()], "").unwrap_err();
        assert_eq!(err.field, "scope", "{err}");
        let err = NewApiKey::parse(Some("a b"), &["messages:send".into()], "").unwrap_err();
        assert_eq!(err.field, "tenant", "{err}");
        let err = NewApiKey::parse(None, &["messages:send".into()], &"n".repeat(129)).unwrap_err();
        assert_eq!(err.field, "name", "{err}");
    }

    #[tokio::test]
    async fn guessed_keys_cost_the_database_once_and_malformed_ones_never() {
        let mut store = MockApiKeyStore::new();
        store.expect_find_api_key().times(1).returning(|_| Ok(None));
        let keys = ApiKeys::new(Arc::new(store), Arc::new(crate::SystemClock));
        let id = ApiKeyId::new_random();
        let guess = SecretString::from(format!("{KEY_PREFIX}{id}_{}", "a".repeat(43)));
        for _ in 0..5 {
            assert_eq!(
                keys.authenticate(&guess).await.unwrap(),
                Err(KeyRejected::Unknown)
            );
        }
        for malformed in [
            format!("{KEY_PREFIX}{id}_short"),
            format!("{KEY_PREFIX}{id}_{}", "!".repeat(43)),
            format!("{KEY_PREFIX}not-an-id_{}", "a".repeat(43)),
        ] {
            assert_eq!(
                keys.authenticate(&SecretString::from(malformed))
                    .await
                    .unwrap(),
                Err(KeyRejected::Malformed)
            );
        }
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
