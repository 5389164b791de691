//! Who may call: API keys created with `connector-server api-key`, scopes allowing exactly
//! their RPCs, the tenant taken from the key, revocation, and the loopback-only default.

use std::process::Command;

use connector_grpc_api::pb::{self, connector_service_client::ConnectorServiceClient};
use tonic::transport::Channel as GrpcChannel;
use tonic::{Code, Request};

use crate::helpers::{TOKEN, TestApp, create_request};

/// `connector-server api-key …` against the test app's database, as an operator runs it.
fn api_key_cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_connector-server"))
        .env_clear()
        .env("CONNECTOR__DATABASE__URL", app.db.url())
        .env(
            "CONNECTOR__AWS__ENDPOINT_URL",
            test_support::localstack_endpoint(),
        )
        .env("CONNECTOR__AWS__ACCESS_KEY_ID", "test")
        .env("CONNECTOR__AWS__SECRET_ACCESS_KEY", "test")
        .env("CONNECTOR__LOG__FILTER", "warn")
        .arg("api-key")
        .args(args)
        .output()
        .unwrap()
}

/// Creates a key and returns it, as printed (the only line on stdout).
fn create_key(app: &TestApp, args: &[&str]) -> String {
    let out = api_key_cli(app, &[&["create"], args].concat());
    assert!(
        out.status.success(),
        "api-key create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("ck_"), "{key}");
    key
}

fn with_key<T>(key: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

async fn create(
    client: &mut ConnectorServiceClient<GrpcChannel>,
    key: &str,
    tenant: &str,
    name: &str,
) -> Result<pb::Connector, tonic::Status> {
    client
        .create_connector(with_key(
            key,
            create_request(tenant, name, TOKEN, "#alerts", ""),
        ))
        .await
        .map(|r| r.into_inner().connector.unwrap())
}

async fn get(
    client: &mut ConnectorServiceClient<GrpcChannel>,
    key: &str,
    tenant: &str,
    id: &str,
) -> Result<pb::Connector, tonic::Status> {
    client
        .get_connector(with_key(
            key,
            pb::GetConnectorRequest {
                tenant_id: tenant.into(),
                id: id.into(),
            },
        ))
        .await
        .map(|r| r.into_inner().connector.unwrap())
}

async fn send(
    client: &mut ConnectorServiceClient<GrpcChannel>,
    key: &str,
    tenant: &str,
    id: &str,
) -> Result<pb::SendMessageResponse, tonic::Status> {
    client
        .send_message(with_key(
            key,
            pb::SendMessageRequest {
                tenant_id: tenant.into(),
                connector_id: id.into(),
                text: "from a scoped key".into(),
                ..Default::default()
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

fn assert_code<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, says: &str) {
    let status = r.unwrap_err();
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(says),
        "{:?} does not say {says:?}",
        status.message()
    );
}

#[tokio::test]
async fn api_keys_bind_the_tenant_and_each_scope_allows_exactly_its_rpcs() {
    let app = TestApp::spawn_with(&[("CONNECTOR__AUTH__MODE", "api_key")]).await;
    let writer = create_key(
        &app,
        &[
            "--tenant",
            "acme",
            "--scope",
            "connectors:write",
            "--scope",
            "connectors:read",
        ],
    );
    let sender = create_key(&app, &["--tenant", "acme", "--scope", "messages:send"]);
    let platform = create_key(
        &app,
        &[
            "--all-tenants",
            "--scope",
            "connectors:read",
            "--name",
            "platform",
        ],
    );
    let mut client = app.client.clone();

    // No credentials, a wrong scheme, a forged key: UNAUTHENTICATED, never echoing the key.
    assert_code(
        client
            .list_connectors(pb::ListConnectorsRequest::default())
            .await,
        Code::Unauthenticated,
        "missing credentials",
    );
    let forged = format!("{}x", &sender[..sender.len() - 1]);
    let r = get(
        &mut client,
        &forged,
        "",
        "0192f5e4-8f4c-7a8e-9c3d-5b2a1e0f9d7c",
    )
    .await;
    let status = r.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        !status.message().contains(&forged[10..]),
        "{}",
        status.message()
    );
    assert_code(
        get(&mut client, "xoxb-not-a-key", "", "x").await,
        Code::Unauthenticated,
        "not an API key",
    );

    // The writer creates for its tenant, naming it or not.
    let c = create(&mut client, &writer, "", "prod").await.unwrap();
    assert_eq!(c.tenant_id, "acme");
    let c2 = create(&mut client, &writer, "acme", "staging")
        .await
        .unwrap();
    assert_eq!(c2.tenant_id, "acme");
    assert_eq!(get(&mut client, &writer, "", &c.id).await.unwrap().id, c.id);

    // Another tenant is PERMISSION_DENIED, and nothing is written.
    assert_code(
        create(&mut client, &writer, "globex", "prod").await,
        Code::PermissionDenied,
        "tenant",
    );

    // The sender key only sends.
    send(&mut client, &sender, "", &c.id).await.unwrap();
    assert_code(
        get(&mut client, &sender, "", &c.id).await,
        Code::PermissionDenied,
        "connectors:read",
    );
    assert_code(
        create(&mut client, &sender, "", "other").await,
        Code::PermissionDenied,
        "connectors:write",
    );
    assert_code(
        client
            .delete_connector(with_key(
                &sender,
                pb::DeleteConnectorRequest {
                    tenant_id: String::new(),
                    id: c.id.clone(),
                },
            ))
            .await,
        Code::PermissionDenied,
        "connectors:write",
    );
    assert_code(
        send(&mut client, &writer, "", &c.id).await,
        Code::PermissionDenied,
        "messages:send",
    );

    // A key for every tenant must name one, and reads any.
    assert_code(
        get(&mut client, &platform, "", &c.id).await,
        Code::InvalidArgument,
        "tenant_id",
    );
    assert_eq!(
        get(&mut client, &platform, "acme", &c.id).await.unwrap().id,
        c.id
    );
    assert_code(
        get(&mut client, &platform, "globex", &c.id).await,
        Code::NotFound,
        "not found",
    );
    let listed = client
        .list_connectors(with_key(
            &platform,
            pb::ListConnectorsRequest {
                tenant_id: "acme".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.connectors.len(), 2);

    // The listing shows IDs, tenants, scopes and names, never a key.
    let out = api_key_cli(&app, &["list"]);
    let listing = String::from_utf8(out.stdout).unwrap();
    assert_eq!(listing.lines().count(), 4, "{listing}");
    assert!(listing.contains("platform"), "{listing}");
    assert!(
        !listing.contains(&sender[3..]),
        "a key appeared in the listing"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_key_stops_working_at_once() {
    let app = TestApp::spawn_with(&[("CONNECTOR__AUTH__MODE", "api_key")]).await;
    let key = create_key(&app, &["--tenant", "acme", "--scope", "connectors:read"]);
    let mut client = app.client.clone();
    let listed = client
        .list_connectors(with_key(&key, pb::ListConnectorsRequest::default()))
        .await;
    assert!(listed.is_ok(), "{listed:?}");
    let id = key.strip_prefix("ck_").unwrap().split('_').next().unwrap();
    let out = api_key_cli(&app, &["revoke", id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_code(
        client
            .list_connectors(with_key(&key, pb::ListConnectorsRequest::default()))
            .await,
        Code::Unauthenticated,
        "revoked",
    );
    // Revoking again says so.
    let out = api_key_cli(&app, &["revoke", id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already revoked"));
    // A bad scope is refused by the CLI, naming it.
    let out = api_key_cli(
        &app,
        &["create", "--tenant", "acme", "--scope", "connectors:admin"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("connectors:admin"));
    app.stop().await;
}

#[tokio::test]
async fn only_messages_manage_changes_messages_and_a_grant_adds_it() {
    let app = TestApp::spawn_with(&[("CONNECTOR__AUTH__MODE", "api_key")]).await;
    let admin = create_key(
        &app,
        &[
            "--tenant",
            "acme",
            "--scope",
            "connectors:write",
            "--scope",
            "connectors:read",
        ],
    );
    // A key as every key made before messages:manage existed: it may send.
    let sender = create_key(&app, &["--tenant", "acme", "--scope", "messages:send"]);
    let mut client = app.client.clone();
    let c = create(&mut client, &admin, "", "prod").await.unwrap();
    let sent = send(&mut client, &sender, "", &c.id).await.unwrap();
    let update = |key: &str| {
        with_key(
            key,
            pb::UpdateMessageRequest {
                connector_id: c.id.clone(),
                channel_id: sent.channel_id.clone(),
                ts: sent.ts.clone(),
                text: "rewritten".into(),
                ..Default::default()
            },
        )
    };
    let delete = |key: &str| {
        with_key(
            key,
            pb::DeleteMessageRequest {
                connector_id: c.id.clone(),
                channel_id: sent.channel_id.clone(),
                ts: sent.ts.clone(),
                ..Default::default()
            },
        )
    };
    let cancel = |key: &str| {
        with_key(
            key,
            pb::CancelScheduledMessageRequest {
                connector_id: c.id.clone(),
                channel_id: sent.channel_id.clone(),
                scheduled_message_id: "Q0NOTHING1".into(),
                ..Default::default()
            },
        )
    };
    assert_code(
        client.update_message(update(&sender)).await,
        Code::PermissionDenied,
        "messages:manage",
    );
    assert_code(
        client.delete_message(delete(&sender)).await,
        Code::PermissionDenied,
        "messages:manage",
    );
    assert_code(
        client.cancel_scheduled_message(cancel(&sender)).await,
        Code::PermissionDenied,
        "messages:manage",
    );
    assert_eq!(app.double.state().calls("chat.update"), 0);
    assert_eq!(app.double.state().posted()[0].text, "from a scoped key");
    assert_code(
        client
            .list_events(with_key(&sender, pb::ListEventsRequest::default()))
            .await,
        Code::PermissionDenied,
        "events:read",
    );

    // An explicit grant adds the right; the key keeps the ones it had.
    let id = sender
        .strip_prefix("ck_")
        .unwrap()
        .split('_')
        .next()
        .unwrap();
    let out = api_key_cli(&app, &["grant", id, "--scope", "messages:manage"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("messages:send messages:manage"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    client.update_message(update(&sender)).await.unwrap();
    assert_eq!(app.double.state().posted()[0].text, "rewritten");
    assert!(send(&mut client, &sender, "", &c.id).await.is_ok());
    client.delete_message(delete(&sender)).await.unwrap();
    // Granting a revoked or unknown key is refused.
    assert!(api_key_cli(&app, &["revoke", id]).status.success());
    let out = api_key_cli(&app, &["grant", id, "--scope", "messages:manage"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("revoked"));
    app.stop().await;
}

#[tokio::test]
async fn without_authentication_only_loopback_is_served() {
    let out = Command::new(env!("CARGO_BIN_EXE_connector-server"))
        .env_clear()
        .env("CONNECTOR__GRPC__LISTEN_ADDR", "0.0.0.0:0")
        .env(
            "CONNECTOR__DATA_DIR",
            std::env::temp_dir().join("sc-never-created"),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CONNECTOR__GRPC__LISTEN_ADDR"), "{err}");
    assert!(err.contains("CONNECTOR__AUTH__MODE"), "{err}");
}

/// A `/proc/{pid}/status` figure, in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn unauthenticated_large_requests_are_refused_before_their_bodies_are_read() {
    // The server in a process of its own, so its memory is its own.
    let app = TestApp::spawn().await;
    let key = create_key(&app, &["--tenant", "acme", "--scope", "connectors:read"]);
    let grpc = format!("127.0.0.1:{}", crate::oauth::free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_connector-server"))
        .env_clear()
        .envs(app.server_env())
        .env("CONNECTOR__GRPC__LISTEN_ADDR", &grpc)
        .env("CONNECTOR__AUTH__MODE", "api_key")
        .env("CONNECTOR__LOG__FILTER", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut client = None;
    for _ in 0..100 {
        if let Ok(c) = ConnectorServiceClient::connect(format!("http://{grpc}")).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let client = client.expect("the server process did not start");
    let get = |tenant: String| pb::GetConnectorRequest {
        tenant_id: tenant,
        id: "00000000-0000-7000-8000-000000000000".into(),
    };
    // Warm up: one authenticated call.
    let found = client
        .clone()
        .get_connector(with_key(&key, get("acme".into())))
        .await
        .unwrap_err();
    assert_eq!(found.code(), tonic::Code::NotFound, "{found:?}");
    let before = proc_kib(pid, "VmRSS:");

    // 40 unauthenticated 10 MiB calls at once, an authenticated one served meanwhile.
    // Within what a SendMessage may carry (1 MiB + 10 MiB), so only the layer refuses it.
    let huge = "a".repeat(10 * 1024 * 1024);
    let calls: Vec<_> = (0..40)
        .map(|_| {
            let (mut client, huge) = (client.clone(), huge.clone());
            tokio::spawn(async move { client.get_connector(get(huge)).await.unwrap_err() })
        })
        .collect();
    let served = client
        .clone()
        .get_connector(with_key(&key, get("acme".into())))
        .await
        .unwrap_err();
    assert_eq!(served.code(), tonic::Code::NotFound, "{served:?}");
    for call in calls {
        let refused = call.await.unwrap();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    }
    let peak = proc_kib(pid, "VmHWM:");
    assert!(
        peak.saturating_sub(before) < 64 * 1024,
        "the server's memory grew by {} KiB",
        peak.saturating_sub(before)
    );
    // Authenticated, an oversized request of another method is refused at the small limit.
    let too_big = client
        .clone()
        .get_connector(with_key(&key, get(huge)))
        .await
        .unwrap_err();
    assert_eq!(too_big.code(), tonic::Code::OutOfRange, "{too_big:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    app.stop().await;
}
