//! The [`SecretStore`] conformance suite: every implementation must pass each of these.
//!
//! Run it with [`secret_store_conformance!`](crate::secret_store_conformance), giving an async
//! expression that yields `(guard, store)`. Names get a fresh random prefix per case, so stores
//! shared between tests (one LocalStack) do not interfere.

use connector_domain::{BotToken, ConnectorId, SecretName, SecretPrefix, TenantId};
use connector_ports::{ConnectorSecret, SecretLabels, SecretStore, SecretStoreError};

/// A fresh secret name (random prefix) of a new connector of `tenant`, with its labels.
pub fn fresh_name(tenant: &str) -> (SecretName, SecretLabels) {
    let tenant = TenantId::parse("tenant_id", tenant).unwrap();
    let id = ConnectorId::new_v7();
    let prefix = SecretPrefix::parse(
        "prefix",
        &format!("conformance-{}/", uuid::Uuid::new_v4().simple()),
    )
    .unwrap();
    (
        prefix.secret_name(&tenant, id),
        SecretLabels {
            tenant_id: tenant,
            connector_id: id,
        },
    )
}

/// A non-rotating secret holding `token`.
pub fn secret(token: &str) -> ConnectorSecret {
    ConnectorSecret::new(BotToken::parse("t", token).unwrap())
}

/// Conformance case: write, read, overwrite, delete, and write again under the same name.
pub async fn put_get_delete_round_trip<S: SecretStore>(store: &S) {
    let (name, labels) = fresh_name("acme");
    store
        .put(&name, &secret("xoxb-1111-2222-first"), &labels)
        .await
        .unwrap();
    assert_eq!(
        store.get(&name).await.unwrap().bot_token.expose(),
        "xoxb-1111-2222-first"
    );
    store
        .put(&name, &secret("xoxb-1111-2222-second"), &labels)
        .await
        .unwrap();
    assert_eq!(
        store.get(&name).await.unwrap().bot_token.expose(),
        "xoxb-1111-2222-second"
    );
    store.delete(&name).await.unwrap();
    assert!(matches!(
        store.get(&name).await,
        Err(SecretStoreError::NotFound)
    ));
    // No recovery window: the name is usable again at once.
    store
        .put(&name, &secret("xoxb-1111-2222-third"), &labels)
        .await
        .unwrap();
    assert_eq!(
        store.get(&name).await.unwrap().bot_token.expose(),
        "xoxb-1111-2222-third"
    );
    store.delete(&name).await.unwrap();
}

/// Conformance case: deleting what is not there succeeds.
pub async fn deleting_a_missing_secret_succeeds<S: SecretStore>(store: &S) {
    let (name, _) = fresh_name("acme");
    store.delete(&name).await.unwrap();
    store.delete(&name).await.unwrap();
}

/// Conformance case: reading what is not there is `NotFound`.
pub async fn getting_a_missing_secret_is_not_found<S: SecretStore>(store: &S) {
    let (name, _) = fresh_name("acme");
    assert!(matches!(
        store.get(&name).await,
        Err(SecretStoreError::NotFound)
    ));
}

/// Conformance case: secrets of different connectors never mix.
pub async fn each_name_keeps_its_own_value<S: SecretStore>(store: &S) {
    let (a, la) = fresh_name("acme");
    let (b, lb) = fresh_name("acme");
    store
        .put(&a, &secret("xoxb-1111-2222-aaaaaaaa"), &la)
        .await
        .unwrap();
    store
        .put(&b, &secret("xoxb-1111-2222-bbbbbbbb"), &lb)
        .await
        .unwrap();
    assert_eq!(
        store.get(&a).await.unwrap().bot_token.expose(),
        "xoxb-1111-2222-aaaaaaaa"
    );
    assert_eq!(
        store.get(&b).await.unwrap().bot_token.expose(),
        "xoxb-1111-2222-bbbbbbbb"
    );
    store.delete(&a).await.unwrap();
    assert_eq!(
        store.get(&b).await.unwrap().bot_token.expose(),
        "xoxb-1111-2222-bbbbbbbb"
    );
    store.delete(&b).await.unwrap();
}

/// Conformance case: a staged version is invisible until promoted, promotion is atomic and
/// idempotent, a version is promoted only once, and an unknown version promotes nothing.
pub async fn a_staged_version_is_current_only_once_promoted<S: SecretStore>(store: &S) {
    let (name, labels) = fresh_name("acme");
    store
        .put(&name, &secret("xoxb-1111-2222-original"), &labels)
        .await
        .unwrap();
    let v = store
        .stage(&name, &secret("xoxb-1111-2222-replaced"))
        .await
        .unwrap();
    assert!(!v.is_empty());
    assert_eq!(
        store.get(&name).await.unwrap().bot_token.expose(),
        "xoxb-1111-2222-original",
        "staged is not current"
    );
    assert!(!store.promote(&name, "0123456789abcdef").await.unwrap());
    assert!(store.promote(&name, &v).await.unwrap());
    assert_eq!(
        store.get(&name).await.unwrap().bot_token.expose(),
        "xoxb-1111-2222-replaced"
    );
    assert!(!store.promote(&name, &v).await.unwrap(), "promoted once");
    assert_eq!(
        store.get(&name).await.unwrap().bot_token.expose(),
        "xoxb-1111-2222-replaced"
    );

    // Two staged versions: the one promoted wins, whichever was staged last.
    let a = store
        .stage(&name, &secret("xoxb-1111-2222-stageda"))
        .await
        .unwrap();
    let b = store
        .stage(&name, &secret("xoxb-1111-2222-stagedb"))
        .await
        .unwrap();
    assert_ne!(a, b);
    assert!(store.promote(&name, &a).await.unwrap());
    assert_eq!(
        store.get(&name).await.unwrap().bot_token.expose(),
        "xoxb-1111-2222-stageda"
    );
    store.delete(&name).await.unwrap();
}

/// Conformance case: a staged version discarded (its update failed) is gone from what is
/// staged and never became current, and the current version is never discarded. (Whether a
/// discarded version could still be promoted is left to the store: the service promotes only
/// versions a row records, and discards only versions none does.)
pub async fn a_discarded_staged_version_is_never_promoted<S: SecretStore>(store: &S) {
    let (name, labels) = fresh_name("acme");
    store
        .put(&name, &secret("xoxb-1111-2222-original"), &labels)
        .await
        .unwrap();
    let failed = store
        .stage(&name, &secret("xoxb-1111-2222-failedupdate"))
        .await
        .unwrap();
    assert!(store.discard(&name, &failed).await.unwrap());
    assert!(!store.discard(&name, &failed).await.unwrap(), "once");
    let prefix_of_name = name.as_str().rsplitn(3, '/').nth(2).unwrap().to_owned() + "/";
    let prefix = SecretPrefix::parse("prefix", &prefix_of_name).unwrap();
    assert!(
        store
            .staged_versions(
                &prefix,
                chrono::Utc::now() + chrono::Duration::minutes(5),
                10
            )
            .await
            .unwrap()
            .is_empty(),
        "no longer staged"
    );
    assert_eq!(
        store.get(&name).await.unwrap().bot_token.expose(),
        "xoxb-1111-2222-original"
    );
    let kept = store
        .stage(&name, &secret("xoxb-1111-2222-promoted"))
        .await
        .unwrap();
    assert!(store.promote(&name, &kept).await.unwrap());
    assert!(!store.discard(&name, &kept).await.unwrap(), "current stays");
    assert_eq!(
        store.get(&name).await.unwrap().bot_token.expose(),
        "xoxb-1111-2222-promoted"
    );
    store.delete(&name).await.unwrap();
    assert!(
        !store.discard(&name, &kept).await.unwrap(),
        "gone with the secret"
    );
}

/// Conformance case: staged versions are listed by the prefix their secrets are named under
/// and by age, until promoted or discarded.
pub async fn staged_versions_are_listed_by_prefix_and_age<S: SecretStore>(store: &S) {
    let prefix = SecretPrefix::parse(
        "prefix",
        &format!("conformance-{}/", uuid::Uuid::new_v4().simple()),
    )
    .unwrap();
    let other = SecretPrefix::parse(
        "prefix",
        &format!("conformance-{}/", uuid::Uuid::new_v4().simple()),
    )
    .unwrap();
    let tenant = TenantId::parse("tenant_id", "acme").unwrap();
    let (a, b, elsewhere) = (
        ConnectorId::new_v7(),
        ConnectorId::new_v7(),
        ConnectorId::new_v7(),
    );
    let labels = |id| SecretLabels {
        tenant_id: tenant.clone(),
        connector_id: id,
    };
    for (p, id) in [(&prefix, a), (&prefix, b), (&other, elsewhere)] {
        store
            .put(
                &p.secret_name(&tenant, id),
                &secret("xoxb-1111-2222-current"),
                &labels(id),
            )
            .await
            .unwrap();
    }
    let staged_a = store
        .stage(
            &prefix.secret_name(&tenant, a),
            &secret("xoxb-1111-2222-stageda"),
        )
        .await
        .unwrap();
    let staged_b = store
        .stage(
            &prefix.secret_name(&tenant, b),
            &secret("xoxb-1111-2222-stagedb"),
        )
        .await
        .unwrap();
    store
        .stage(
            &other.secret_name(&tenant, elsewhere),
            &secret("xoxb-1111-2222-other"),
        )
        .await
        .unwrap();
    let soon = chrono::Utc::now() + chrono::Duration::minutes(5);
    let mut listed: Vec<(ConnectorId, String)> = store
        .staged_versions(&prefix, soon, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            assert_eq!(s.tenant_id, tenant);
            (s.connector_id, s.version)
        })
        .collect();
    listed.sort();
    let mut want = vec![(a, staged_a.clone()), (b, staged_b.clone())];
    want.sort();
    assert_eq!(listed, want, "this prefix's staged versions only");
    assert!(
        store
            .staged_versions(
                &prefix,
                chrono::Utc::now() - chrono::Duration::hours(1),
                100
            )
            .await
            .unwrap()
            .is_empty(),
        "none staged an hour ago"
    );
    assert_eq!(
        store.staged_versions(&prefix, soon, 1).await.unwrap().len(),
        1
    );
    assert!(
        store
            .promote(&prefix.secret_name(&tenant, a), &staged_a)
            .await
            .unwrap()
    );
    assert!(
        store
            .discard(&prefix.secret_name(&tenant, b), &staged_b)
            .await
            .unwrap()
    );
    assert!(
        store
            .staged_versions(&prefix, soon, 100)
            .await
            .unwrap()
            .is_empty()
    );
    for (p, id) in [(&prefix, a), (&prefix, b), (&other, elsewhere)] {
        store.delete(&p.secret_name(&tenant, id)).await.unwrap();
    }
}

/// Conformance case: there is nothing to stage onto a missing secret, and deleting a secret
/// takes its staged versions with it.
pub async fn staging_needs_the_secret_and_dies_with_it<S: SecretStore>(store: &S) {
    let (name, labels) = fresh_name("acme");
    assert!(matches!(
        store.stage(&name, &secret("xoxb-1111-2222-nothing")).await,
        Err(SecretStoreError::NotFound)
    ));
    store
        .put(&name, &secret("xoxb-1111-2222-original"), &labels)
        .await
        .unwrap();
    let v = store
        .stage(&name, &secret("xoxb-1111-2222-orphaned"))
        .await
        .unwrap();
    store.delete(&name).await.unwrap();
    assert!(!store.promote(&name, &v).await.unwrap());
    assert!(matches!(
        store.get(&name).await,
        Err(SecretStoreError::NotFound)
    ));
}
