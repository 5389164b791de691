//! The verifier against a local identity provider over HTTP: every check a resource server
//! makes, key rotation at the issuer, and the bound on refetches.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use connector_adapters_jwt::{JwtRejected, JwtSettings, JwtVerifier};
use connector_domain::{Scope, TenantGrant, TenantId};
use jsonwebtoken::Algorithm;
use secrecy::SecretString;
use serde_json::json;
use test_support::issuer::{AUDIENCE, LocalIssuer};

fn settings(issuer: &LocalIssuer) -> JwtSettings {
    JwtSettings {
        min_refetch_interval: Duration::ZERO,
        ..JwtSettings::new(issuer.jwks_url(), issuer.issuer(), AUDIENCE)
    }
}

async fn verify(v: &JwtVerifier, token: &str) -> Result<connector_domain::Principal, JwtRejected> {
    v.verify(&SecretString::from(token.to_owned()))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_valid_token_names_its_subject_tenant_and_scopes() {
    let issuer = LocalIssuer::start().await.unwrap();
    let v = JwtVerifier::new(settings(&issuer)).unwrap();
    let p = verify(&v, &issuer.token("svc-ci", "acme", "openid messages:send"))
        .await
        .unwrap();
    assert_eq!(p.subject, "jwt:svc-ci");
    assert_eq!(
        p.tenants,
        TenantGrant::One(TenantId::parse("t", "acme").unwrap())
    );
    assert!(p.scopes.contains(Scope::MessagesSend));
    assert!(!p.scopes.contains(Scope::ConnectorsRead));

    // `*` alone grants nothing: without a platform claim configured, or without it in the
    // token, it is refused.
    let mut claims = issuer.claims("platform", "*", "");
    claims["scope"] = json!(["connectors:read", "connectors:write"]);
    assert!(matches!(
        verify(&v, &issuer.sign("k1", &claims)).await,
        Err(JwtRejected::BadClaim(_))
    ));
    let platform = JwtVerifier::new(JwtSettings {
        platform_claim: Some("platform".into()),
        ..settings(&issuer)
    })
    .unwrap();
    assert!(matches!(
        verify(&platform, &issuer.sign("k1", &claims)).await,
        Err(JwtRejected::BadClaim(_))
    ));
    // With it, `*` grants every tenant; scopes may come as an array (`scp`-style).
    claims["platform"] = json!(true);
    let p = verify(&platform, &issuer.sign("k1", &claims))
        .await
        .unwrap();
    assert_eq!(p.tenants, TenantGrant::All);
    assert!(p.scopes.contains(Scope::ConnectorsWrite));

    // ES256 keys work too.
    issuer.add_key("es", Algorithm::ES256);
    let p = verify(
        &v,
        &issuer.sign("es", &issuer.claims("svc", "acme", "messages:send")),
    )
    .await
    .unwrap();
    assert_eq!(p.subject, "jwt:svc");
}

#[tokio::test]
async fn every_check_refuses_what_it_should_and_says_which() {
    let issuer = LocalIssuer::start().await.unwrap();
    let v = JwtVerifier::new(settings(&issuer)).unwrap();
    let now = chrono::Utc::now().timestamp();
    let with = |patch: serde_json::Value| {
        let mut c = issuer.claims("svc", "acme", "messages:send");
        for (k, val) in patch.as_object().unwrap() {
            c[k] = val.clone();
        }
        c
    };
    let cases = [
        (
            issuer.sign("k1", &with(json!({"exp": now - 120}))),
            JwtRejected::Expired,
        ),
        (
            issuer.sign("k1", &with(json!({"nbf": now + 120}))),
            JwtRejected::NotYetValid,
        ),
        (
            issuer.sign("k1", &with(json!({"iss": "https://evil.example"}))),
            JwtRejected::WrongIssuer,
        ),
        (
            issuer.sign("k1", &with(json!({"aud": "another-api"}))),
            JwtRejected::WrongAudience,
        ),
        (
            issuer.unsigned(&with(json!({}))),
            JwtRejected::Algorithm("none".into()),
        ),
        (
            issuer.hmac_with_public_key("k1", &with(json!({}))),
            JwtRejected::Algorithm("HS256".into()),
        ),
        (
            issuer.sign("k1", &with(json!({"tenant_id": null}))),
            JwtRejected::MissingClaim("tenant_id".into()),
        ),
        (
            issuer.sign("k1", &with(json!({"tenant_id": "a b"}))),
            JwtRejected::BadClaim("tenant_id".into()),
        ),
        ("not.a.jwt".to_owned(), JwtRejected::Malformed),
    ];
    for (token, expected) in cases {
        let got = verify(&v, &token).await.unwrap_err();
        assert_eq!(got, expected, "{token}");
        assert!(
            !got.to_string().contains(&token),
            "the message echoes the token"
        );
    }
    // A token within the leeway is still fine.
    verify(&v, &issuer.sign("k1", &with(json!({"exp": now - 5}))))
        .await
        .unwrap();

    // A signature made with another key under the same kid does not verify.
    let other = LocalIssuer::start().await.unwrap();
    let mut forged = other.claims("svc", "acme", "messages:send");
    forged["iss"] = json!(issuer.issuer());
    let got = verify(&v, &other.sign("k1", &forged)).await.unwrap_err();
    assert_eq!(got, JwtRejected::BadSignature);
}

#[tokio::test]
async fn a_rotated_key_is_fetched_and_a_removed_one_stops_working() {
    let issuer = LocalIssuer::start().await.unwrap();
    let v = JwtVerifier::new(settings(&issuer)).unwrap();
    let old = issuer.token("svc", "acme", "messages:send");
    verify(&v, &old).await.unwrap();
    assert_eq!(issuer.fetches(), 1);

    // The issuer rotates: a new key appears, the old one is withdrawn.
    issuer.add_key("k2", Algorithm::EdDSA);
    issuer.remove_key("k1");
    let new = issuer.sign("k2", &issuer.claims("svc", "acme", "messages:send"));
    verify(&v, &new).await.unwrap();
    assert_eq!(issuer.fetches(), 2, "the unknown kid triggered one refetch");
    assert_eq!(verify(&v, &old).await.unwrap_err(), JwtRejected::UnknownKey);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_at_most_once_per_interval() {
    let issuer = LocalIssuer::start().await.unwrap();
    let v = std::sync::Arc::new(
        JwtVerifier::new(JwtSettings {
            min_refetch_interval: Duration::from_secs(60),
            ..JwtSettings::new(issuer.jwks_url(), issuer.issuer(), AUDIENCE)
        })
        .unwrap(),
    );
    verify(&v, &issuer.token("svc", "acme", "messages:send"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        issuer.add_key(&format!("made-up-{i}"), Algorithm::EdDSA);
        let token = issuer.sign(
            &format!("made-up-{i}"),
            &issuer.claims("svc", "acme", "messages:send"),
        );
        let v = v.clone();
        tasks.push(tokio::spawn(async move {
            v.verify(&SecretString::from(token)).await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap_err(), JwtRejected::UnknownKey);
    }
    assert_eq!(issuer.fetches(), 1, "no refetch within the interval");
}

#[tokio::test]
async fn an_unreachable_issuer_is_unavailable_not_a_bad_token() {
    let issuer = LocalIssuer::start().await.unwrap();
    let token = issuer.token("svc", "acme", "messages:send");
    let v = JwtVerifier::new(JwtSettings {
        jwks_url: "http://127.0.0.1:1/.well-known/jwks.json".into(),
        ..settings(&issuer)
    })
    .unwrap();
    let err = v.verify(&SecretString::from(token)).await.unwrap_err();
    assert!(err.to_string().contains("cannot be fetched"), "{err}");
}

#[tokio::test]
async fn cached_keys_expire_when_refetching_them_keeps_failing() {
    let issuer = LocalIssuer::start().await.unwrap();
    let v = JwtVerifier::new(JwtSettings {
        refresh_every: Duration::from_millis(100),
        min_refetch_interval: Duration::ZERO,
        keys_max_age: Duration::from_millis(600),
        ..settings(&issuer)
    })
    .unwrap();
    let token = issuer.token("svc", "acme", "messages:send");
    verify(&v, &token).await.unwrap();
    // The issuer goes down: the cached keys still serve for a while...
    issuer.set_down(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    verify(&v, &token).await.unwrap();
    // ...but not forever.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let err = v
        .verify(&SecretString::from(token.clone()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("older than"), "{err}");
    // Back up: fetched again, accepted again.
    issuer.set_down(false);
    verify(&v, &token).await.unwrap();
}
