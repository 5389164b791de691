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
    ConnectorSecret::new(BotToken::parse("t", token).unwrap())
}

test_support::secret_store_conformance!(async { ((), store().await) });

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
