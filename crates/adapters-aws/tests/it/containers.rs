//! The Secrets Manager store on an emulator of its own, in a container: the conformance suite,
//! and the emulator frozen mid-traffic.

use std::time::{Duration, Instant};

use connector_adapters_aws::{AwsSecretStore, AwsSettings, StaticCredentials};
use connector_domain::{BotToken, ConnectorId, SecretPrefix, TenantId};
use connector_ports::{ConnectorSecret, SecretLabels, SecretStore as _, SecretStoreError};
use test_support::containers::SecretsContainer;

async fn store_on(endpoint: &str, operation_timeout: Duration) -> AwsSecretStore {
    AwsSecretStore::new(&AwsSettings {
        endpoint_url: Some(endpoint.to_owned()),
        credentials: Some(StaticCredentials {
            access_key_id: "test".into(),
            secret_access_key: "test".to_owned().into(),
        }),
        operation_timeout,
        ..AwsSettings::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_on_an_emulator_of_its_own() {
    let emulator = SecretsContainer::start().await.unwrap();
    test_support::secret_store_conformance_in_sequence!(async {
        (
            (),
            store_on(emulator.endpoint(), Duration::from_secs(10)).await,
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_store_is_unavailable_and_its_return_needs_no_restart() {
    let emulator = SecretsContainer::start().await.unwrap();
    let store = store_on(emulator.endpoint(), Duration::from_secs(2)).await;
    let tenant = TenantId::parse("tenant_id", "acme").unwrap();
    let id = ConnectorId::new_v7();
    let name = SecretPrefix::parse("prefix", "containers/")
        .unwrap()
        .secret_name(&tenant, id);
    let secret = ConnectorSecret::new(BotToken::parse("t", "xoxb-1-2-frozen").unwrap());
    let labels = SecretLabels {
        tenant_id: tenant,
        connector_id: id,
    };
    store.put(&name, &secret, &labels).await.unwrap();

    emulator.pause().await.unwrap();
    let started = Instant::now();
    let err = store.get(&name).await.unwrap_err();
    assert!(matches!(err, SecretStoreError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the operation timeout"
    );
    assert!(!format!("{err:?}").contains("xoxb-"));

    emulator.unpause().await.unwrap();
    let started = Instant::now();
    loop {
        match store.get(&name).await {
            Ok(got) => {
                assert_eq!(got.bot_token.expose(), "xoxb-1-2-frozen");
                break;
            }
            Err(e) if started.elapsed() > Duration::from_secs(15) => {
                panic!("not recovered: {e:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_store_is_unavailable_and_served_again_once_restarted() {
    let emulator = SecretsContainer::start().await.unwrap();
    let store = store_on(emulator.endpoint(), Duration::from_secs(2)).await;
    let tenant = TenantId::parse("tenant_id", "acme").unwrap();
    let id = ConnectorId::new_v7();
    let name = SecretPrefix::parse("prefix", "stopped/")
        .unwrap()
        .secret_name(&tenant, id);
    let secret = ConnectorSecret::new(BotToken::parse("t", "xoxb-1-2-stopped").unwrap());
    let labels = SecretLabels {
        tenant_id: tenant,
        connector_id: id,
    };

    emulator.stop().await.unwrap();
    let err = store.put(&name, &secret, &labels).await.unwrap_err();
    assert!(matches!(err, SecretStoreError::Unavailable(_)), "{err:?}");

    emulator.start_again().await.unwrap();
    let started = Instant::now();
    loop {
        match store.put(&name, &secret, &labels).await {
            Ok(()) => break,
            Err(e) if started.elapsed() > Duration::from_secs(30) => {
                panic!("not served again: {e:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
    assert_eq!(
        store.get(&name).await.unwrap().bot_token.expose(),
        "xoxb-1-2-stopped"
    );
}
