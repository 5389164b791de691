//! Per-tenant quotas: connectors, pending installs and request rate, each answered with
//! RESOURCE_EXHAUSTED and its details, other tenants unaffected.

use connector_grpc_api::pb;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::helpers::{TOKEN, TestApp, create_request};
use crate::oauth::app_with_oauth_and;

#[tokio::test]
async fn a_tenant_at_its_connector_quota_cannot_create_more_and_others_can() {
    let mut app =
        TestApp::spawn_with(&[("CONNECTOR__QUOTAS__MAX_CONNECTORS_PER_TENANT", "2")]).await;
    app.create("acme", "one", "alerts").await;
    app.create("acme", "two", "alerts").await;
    let status = app
        .client
        .create_connector(create_request("acme", "three", TOKEN, "alerts", ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().starts_with("connectors:"),
        "{}",
        status.message()
    );
    let quota = status.get_error_details().quota_failure().cloned().unwrap();
    assert_eq!(quota.violations[0].subject, "connectors");
    // Nothing was written, not even a secret.
    assert_eq!(app.double.state().calls("auth.test"), 2);
    app.create("globex", "one", "alerts").await;
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_at_its_pending_install_quota_gets_no_more_links() {
    let (mut app, _) = app_with_oauth_and(
        false,
        "600",
        &[("CONNECTOR__QUOTAS__MAX_PENDING_INSTALLS_PER_TENANT", "2")],
    )
    .await;
    let url = |tenant: &str, name: &str| pb::GetOAuthV2urlRequest {
        tenant_id: tenant.into(),
        name: name.into(),
        default_channel: "#alerts".into(),
        ..Default::default()
    };
    for name in ["a", "b"] {
        app.client
            .get_o_auth_v2url(url("acme", name))
            .await
            .unwrap();
    }
    let status = app
        .client
        .get_o_auth_v2url(url("acme", "c"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().starts_with("pending installs:"),
        "{}",
        status.message()
    );
    app.client
        .get_o_auth_v2url(url("globex", "a"))
        .await
        .unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_over_its_request_rate_is_told_when_to_retry_and_others_are_served() {
    let mut app = TestApp::spawn_with(&[
        ("CONNECTOR__QUOTAS__REQUESTS_PER_SECOND_PER_TENANT", "1"),
        ("CONNECTOR__QUOTAS__REQUEST_BURST_PER_TENANT", "3"),
    ])
    .await;
    let list = |tenant: &str| pb::ListConnectorsRequest {
        tenant_id: tenant.into(),
        ..Default::default()
    };
    for _ in 0..3 {
        app.client.list_connectors(list("acme")).await.unwrap();
    }
    let status = app.client.list_connectors(list("acme")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let retry = status.get_error_details().retry_info().cloned().unwrap();
    assert!(retry.retry_delay.unwrap() <= std::time::Duration::from_secs(1));
    app.client.list_connectors(list("globex")).await.unwrap();
    app.stop().await;
}
