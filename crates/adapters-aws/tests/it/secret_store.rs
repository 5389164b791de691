use std::time::Duration;

use connector_adapters_aws::{AwsSecretStore, AwsSettings, StaticCredentials};
use connector_domain::{BotToken, ConnectorId, SecretPrefix, TenantId};
use connector_ports::{ConnectorSecret, SecretLabels, SecretStore, SecretStoreError};

async fn store() -> AwsSecretStore {
    let endpoint = test_support::require_localstack().await.unwrap();
    AwsSecretStore::new(&AwsSettings {
        endpoint_url: Some(endpoint),
        credentials: Some(StaticCredentials {
            access_key_id: "test".into(),
            secret_access_key: "test".to_owned().into(),
        }),
        ..AwsSettings::default()
    })
    .await
}

fn names() -> (connector_domain::SecretName, SecretLabels) {
    let tenant = TenantId::parse("tenant_id", "acme").unwrap();
    let id = ConnectorId::new_v7();
    let prefix = SecretPrefix::parse("prefix", "it-tests/").unwrap();
    (
        prefix.secret_name(&tenant, id),
        SecretLabels {
            tenant_id: tenant,
            connector_id: id,
        },
    )
}

fn secret(token: &str) -> ConnectorSecret {
    ConnectorSecret {
        bot_token: BotToken::parse("t", token).unwrap(),
    }
}

#[tokio::test]
async fn put_get_delete_round_trip() {
    let store = store().await;
    let (name, labels) = names();
    store
        .put(&name, &secret("xoxb-1111-2222-first"), &labels)
        .await
        .unwrap();
    let got = store.get(&name).await.unwrap();
    assert_eq!(got.bot_token.expose(), "xoxb-1111-2222-first");

    // Writing again replaces the value.
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
    // Deleted at once, without a recovery window: the name can be used again right away.
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

#[tokio::test]
async fn deleting_a_missing_secret_succeeds() {
    let store = store().await;
    let (name, _) = names();
    store.delete(&name).await.unwrap();
}

#[tokio::test]
async fn getting_a_missing_secret_is_not_found() {
    let store = store().await;
    let (name, _) = names();
    assert!(matches!(
        store.get(&name).await,
        Err(SecretStoreError::NotFound)
    ));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable() {
    let store = AwsSecretStore::new(&AwsSettings {
        endpoint_url: Some("http://127.0.0.1:1".into()),
        credentials: Some(StaticCredentials {
            access_key_id: "test".into(),
            secret_access_key: "test".to_owned().into(),
        }),
        operation_timeout: Duration::from_secs(2),
        max_attempts: 1,
        ..AwsSettings::default()
    })
    .await;
    let (name, labels) = names();
    let err = store
        .put(&name, &secret("xoxb-1111-2222-never"), &labels)
        .await
        .unwrap_err();
    assert!(matches!(err, SecretStoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("xoxb-1111-2222-never"));
}
