//! JWT bearer authentication through the generated client: an OIDC-style issuer (keys made
//! per test, JWKS over HTTP), every check a resource server makes, key rotation, the tenant
//! from a configurable claim, and JWTs beside API keys.

use jsonwebtoken::Algorithm;
use serde_json::json;
use test_support::issuer::{AUDIENCE, LocalIssuer};
use tonic::{Code, Request};

use crate::helpers::{TOKEN, TestApp, create_request};
use connector_grpc_api::pb;

fn bearer<T>(credential: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {credential}").parse().unwrap(),
    );
    request
}

async fn app_for(issuer: &LocalIssuer, mode: &str, extra: &[(&str, &str)]) -> TestApp {
    let (url, iss) = (issuer.jwks_url(), issuer.issuer());
    let mut env = vec![
        ("CONNECTOR__AUTH__MODE", mode),
        ("CONNECTOR__AUTH__JWKS_URL", url.as_str()),
        ("CONNECTOR__AUTH__ISSUER", iss.as_str()),
        ("CONNECTOR__AUTH__AUDIENCE", AUDIENCE),
        ("CONNECTOR__AUTH__JWKS_MIN_REFETCH_SECS", "0"),
    ];
    env.extend_from_slice(extra);
    TestApp::spawn_with(&env).await
}

fn expect(r: Result<impl std::fmt::Debug, tonic::Status>, code: Code, says: &str) {
    let s = r.unwrap_err();
    assert_eq!(s.code(), code, "{s:?}");
    assert!(
        s.message().contains(says),
        "{:?} does not say {says:?}",
        s.message()
    );
}

#[tokio::test]
async fn tokens_are_verified_and_bind_the_tenant_and_scopes() {
    let issuer = LocalIssuer::start().await.unwrap();
    let app = app_for(&issuer, "jwt", &[]).await;
    let mut client = app.client.clone();
    let admin = issuer.token("svc-admin", "acme", "connectors:read connectors:write");

    let created = client
        .create_connector(bearer(
            &admin,
            create_request("", "prod", TOKEN, "#alerts", ""),
        ))
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(created.tenant_id, "acme");
    let get = |id: &str| pb::GetConnectorRequest {
        tenant_id: String::new(),
        id: id.into(),
    };
    client
        .get_connector(bearer(&admin, get(&created.id)))
        .await
        .unwrap();

    // Another tenant, a missing scope.
    expect(
        client
            .create_connector(bearer(
                &admin,
                create_request("globex", "x", TOKEN, "#alerts", ""),
            ))
            .await,
        Code::PermissionDenied,
        "tenant",
    );
    expect(
        client
            .send_message(bearer(
                &admin,
                pb::SendMessageRequest {
                    connector_id: created.id.clone(),
                    text: "no".into(),
                    ..Default::default()
                },
            ))
            .await,
        Code::PermissionDenied,
        "messages:send",
    );

    // Every check of the token, through the API.
    let now = chrono::Utc::now().timestamp();
    let with = |patch: serde_json::Value| {
        let mut c = issuer.claims("svc-admin", "acme", "connectors:read");
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    for (token, says) in [
        (
            issuer.sign("k1", &with(json!({"exp": now - 120}))),
            "expired",
        ),
        (
            issuer.sign("k1", &with(json!({"nbf": now + 120}))),
            "not valid yet",
        ),
        (
            issuer.sign("k1", &with(json!({"iss": "https://evil.example"}))),
            "issuer",
        ),
        (
            issuer.sign("k1", &with(json!({"aud": "other-api"}))),
            "audience",
        ),
        (issuer.unsigned(&with(json!({}))), "algorithm none"),
        (
            issuer.hmac_with_public_key("k1", &with(json!({}))),
            "algorithm HS256",
        ),
        (
            "ck_0123456789abcdef0123456789abcdef_x".to_owned(),
            "API keys are not accepted",
        ),
    ] {
        let r = client.get_connector(bearer(&token, get(&created.id))).await;
        let s = r.unwrap_err();
        assert_eq!(s.code(), Code::Unauthenticated, "{says}: {s:?}");
        assert!(
            s.message().contains(says),
            "{:?} does not say {says:?}",
            s.message()
        );
        assert!(
            !s.message().contains(&token),
            "the message echoes the token"
        );
    }
    expect(
        client.get_connector(get(&created.id)).await,
        Code::Unauthenticated,
        "missing credentials",
    );

    // The issuer rotates its key: the new one is fetched, the old one stops working.
    issuer.add_key("k2", Algorithm::ES256);
    issuer.remove_key("k1");
    let rotated = issuer.sign("k2", &issuer.claims("svc-admin", "acme", "connectors:read"));
    client
        .get_connector(bearer(&rotated, get(&created.id)))
        .await
        .unwrap();
    expect(
        client.get_connector(bearer(&admin, get(&created.id))).await,
        Code::Unauthenticated,
        "does not publish",
    );
    app.stop().await;
}

#[tokio::test]
async fn the_tenant_claim_is_configurable_and_api_keys_work_beside_jwts() {
    let issuer = LocalIssuer::start().await.unwrap();
    let app = app_for(
        &issuer,
        "jwt_or_api_key",
        &[("CONNECTOR__AUTH__TENANT_CLAIM", "org_id")],
    )
    .await;
    let mut client = app.client.clone();

    // Clerk-style: the tenant is the organisation.
    let mut claims = issuer.claims("user_2abc", "ignored", "connectors:write connectors:read");
    claims["org_id"] = json!("org_acme");
    let org_token = issuer.sign("k1", &claims);
    let created = client
        .create_connector(bearer(
            &org_token,
            create_request("", "prod", TOKEN, "#alerts", ""),
        ))
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(created.tenant_id, "org_acme");
    // Without the configured claim, the token is refused, naming it.
    let token = issuer.token("user_2abc", "acme", "connectors:read");
    expect(
        client
            .list_connectors(bearer(&token, pb::ListConnectorsRequest::default()))
            .await,
        Code::Unauthenticated,
        "org_id",
    );

    // An API key of the same tenant works on the same server.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_connector-server"))
        .env_clear()
        .env("CONNECTOR__DATABASE__URL", app.db.url())
        .env(
            "CONNECTOR__AWS__ENDPOINT_URL",
            test_support::localstack_endpoint(),
        )
        .env("CONNECTOR__AWS__ACCESS_KEY_ID", "test")
        .env("CONNECTOR__AWS__SECRET_ACCESS_KEY", "test")
        .env("CONNECTOR__LOG__FILTER", "warn")
        .args([
            "api-key",
            "create",
            "--tenant",
            "org_acme",
            "--scope",
            "messages:send",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    client
        .send_message(bearer(
            &key,
            pb::SendMessageRequest {
                connector_id: created.id.clone(),
                text: "sent with an API key".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_identity_provider_is_unavailable() {
    let issuer = LocalIssuer::start().await.unwrap();
    let token = issuer.token("svc", "acme", "connectors:read");
    let iss = issuer.issuer();
    let app = TestApp::spawn_with(&[
        ("CONNECTOR__AUTH__MODE", "jwt"),
        (
            "CONNECTOR__AUTH__JWKS_URL",
            "http://127.0.0.1:1/.well-known/jwks.json",
        ),
        ("CONNECTOR__AUTH__ISSUER", iss.as_str()),
        ("CONNECTOR__AUTH__AUDIENCE", AUDIENCE),
    ])
    .await;
    let mut client = app.client.clone();
    expect(
        client
            .list_connectors(bearer(&token, pb::ListConnectorsRequest::default()))
            .await,
        Code::Unavailable,
        "identity provider",
    );
    app.stop().await;
}
