//! The embedded mode: no database URL, no AWS. Metadata in SQLite, secrets encrypted in a
//! local directory, all under the data directory.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Command;

use connector_grpc_api::pb::{
    DeleteConnectorRequest, GetConnectorRequest, ListConnectorsRequest, SendMessageRequest,
};
use tonic::Code;

use crate::helpers::{TOKEN, create_request, double, embedded_settings, start, stop};

/// A temporary data directory removed when dropped.
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("sc-embedded-{}", uuid::Uuid::new_v4().simple())))
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn send(tenant: &str, id: &str, text: &str) -> SendMessageRequest {
    SendMessageRequest {
        tenant_id: tenant.into(),
        connector_id: id.into(),
        text: text.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_whole_lifecycle_runs_with_nothing_else_installed() {
    let data = DataDir::new();
    let slack = double().await;
    let mut running = start(embedded_settings(&data.0, &slack.api_base_url())).await;
    let client = &mut running.client;

    let created = client
        .create_connector(create_request("acme", "prod", TOKEN, "#alerts", "req-1"))
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(created.default_channel_id, "C0ALERTS01");
    let again = client
        .create_connector(create_request("acme", "prod", TOKEN, "#alerts", "req-1"))
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(again, created, "idempotent");
    let status = client
        .create_connector(create_request("acme", "prod", TOKEN, "#alerts", ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);

    client
        .send_message(send("acme", &created.id, "from embedded mode"))
        .await
        .unwrap();
    assert_eq!(slack.state().posted()[0].token, TOKEN);

    // The files are where docs/configuration.md says, private, and the token is not readable on disk.
    for file in ["connectors.sqlite3", "connectors.sqlite3-wal"] {
        let path = data.0.join(file);
        if file.ends_with("-wal") && !path.exists() {
            continue;
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let key_mode = std::fs::metadata(data.0.join("secrets.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    for entry in std::fs::read_dir(data.0.join("secrets")).unwrap() {
        let raw = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains(TOKEN));
    }

    client
        .delete_connector(DeleteConnectorRequest {
            tenant_id: "acme".into(),
            id: created.id.clone(),
        })
        .await
        .unwrap();
    let status = client
        .get_connector(GetConnectorRequest {
            tenant_id: "acme".into(),
            id: created.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let secrets_left = std::fs::read_dir(data.0.join("secrets"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".secret.json")
        })
        .count();
    assert_eq!(secrets_left, 0, "the secret was deleted with the connector");
    stop(running).await;
}

#[tokio::test]
async fn a_restarted_server_keeps_its_connectors_and_can_still_send() {
    let data = DataDir::new();
    let slack = double().await;
    let mut first = start(embedded_settings(&data.0, &slack.api_base_url())).await;
    let created = first
        .client
        .create_connector(create_request("acme", "prod", TOKEN, "alerts", ""))
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    stop(first).await;

    let mut second = start(embedded_settings(&data.0, &slack.api_base_url())).await;
    let listed = second
        .client
        .list_connectors(ListConnectorsRequest {
            tenant_id: "acme".into(),
            page_size: 10,
            page_token: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.connectors, vec![created.clone()]);
    second
        .client
        .send_message(send("acme", &created.id, "after a restart"))
        .await
        .unwrap();
    assert_eq!(slack.state().posted().len(), 1);
    stop(second).await;
}

#[tokio::test]
async fn rotate_key_runs_beside_a_serving_server_and_loses_nothing() {
    let data = DataDir::new();
    let slack = double().await;
    let settings = embedded_settings(&data.0, &slack.api_base_url());
    let mut running = start(settings).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            running
                .client
                .create_connector(create_request(
                    "acme",
                    &format!("c{i}"),
                    TOKEN,
                    "alerts",
                    "",
                ))
                .await
                .unwrap()
                .into_inner()
                .connector
                .unwrap()
                .id,
        );
    }
    let key_file = data.0.join("secrets.key");
    let before = std::fs::read_to_string(&key_file).unwrap();

    // The real binary, as an operator runs it, while the server keeps serving.
    let data_dir = data.0.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_connector-server"))
            .arg("rotate-key")
            .env_clear()
            .env("CONNECTOR__DATA_DIR", &data_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("key rotated") && stderr.contains("reencrypted=5"),
        "{stderr}"
    );
    let after = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(before, after);

    // The running server (which loaded the old keyring) still sends through every connector.
    for id in &ids {
        running
            .client
            .send_message(send("acme", id, "after rotation"))
            .await
            .unwrap();
    }
    assert_eq!(slack.state().posted().len(), 5);
    stop(running).await;
}

#[tokio::test]
async fn queued_delivery_runs_on_the_embedded_database_too() {
    use connector_grpc_api::pb::{Delivery, GetMessageRequest, MessageStatus};
    let data = DataDir::new();
    let slack = double().await;
    let mut running = start(embedded_settings(&data.0, &slack.api_base_url())).await;
    let client = &mut running.client;
    let c = client
        .create_connector(create_request("acme", "prod", TOKEN, "#alerts", ""))
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut m = send("acme", &c.id, &format!("queued {i}"));
        m.delivery = Delivery::Queued as i32;
        let answer = client.send_message(m).await.unwrap().into_inner();
        assert_eq!(answer.status, MessageStatus::Queued as i32);
        ids.push(answer.message_id);
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for id in &ids {
        loop {
            let m = client
                .get_message(GetMessageRequest {
                    tenant_id: "acme".into(),
                    message_id: id.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .message
                .unwrap();
            if m.status == MessageStatus::Sent as i32 {
                break;
            }
            assert!(std::time::Instant::now() < until, "never sent: {m:?}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let texts: Vec<String> = slack.state().posted().into_iter().map(|p| p.text).collect();
    let wanted: Vec<String> = (0..5).map(|i| format!("queued {i}")).collect();
    assert_eq!(texts, wanted);
    stop(running).await;
}
