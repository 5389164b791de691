//! Every status code of the contract's table, from a bad input or a failing dependency.

use connector_grpc_api::pb::{CreateConnectorRequest, GetConnectorRequest, ListConnectorsRequest};
use slack_double::Fault;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::helpers::{TOKEN, TestApp, create_request};

async fn create_err(app: &mut TestApp, req: CreateConnectorRequest) -> tonic::Status {
    app.client.create_connector(req).await.unwrap_err()
}

#[tokio::test]
async fn invalid_fields_are_invalid_argument_naming_the_field() {
    let mut app = TestApp::spawn().await;
    let long = "x".repeat(200);
    let cases = [
        (create_request("", "n", TOKEN, "alerts", ""), "tenant_id"),
        (create_request("a/b", "n", TOKEN, "alerts", ""), "tenant_id"),
        (create_request("acme", "", TOKEN, "alerts", ""), "name"),
        (create_request("acme", &long, TOKEN, "alerts", ""), "name"),
        (
            create_request("acme", "n", "", "alerts", ""),
            "slack_bot_token",
        ),
        (
            create_request("acme", "n", "xoxp-user-token-123", "alerts", ""),
            "slack_bot_token",
        ),
        (
            create_request("acme", "n", TOKEN, "", ""),
            "default_channel",
        ),
        (
            create_request("acme", "n", TOKEN, "Not A Channel", ""),
            "default_channel",
        ),
        (
            create_request("acme", "n", TOKEN, "alerts", "has spaces"),
            "request_id",
        ),
    ];
    for (req, field) in cases {
        let status = create_err(&mut app, req).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            status.message().starts_with(field),
            "{field}: {}",
            status.message()
        );
        let details = status.get_error_details();
        assert_eq!(
            details.bad_request().unwrap().field_violations[0].field,
            field
        );
        assert!(!status.message().contains(TOKEN));
    }
    assert_eq!(
        app.double.state().calls("auth.test"),
        0,
        "nothing reached Slack"
    );

    let status = app
        .client
        .get_connector(GetConnectorRequest {
            tenant_id: "acme".into(),
            id: "not-a-uuid".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("id"), "{}", status.message());

    let status = app
        .client
        .list_connectors(ListConnectorsRequest {
            tenant_id: "acme".into(),
            page_size: -1,
            page_token: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("page_size"),
        "{}",
        status.message()
    );
    app.stop().await;
}

#[tokio::test]
async fn tokens_slack_rejects_are_invalid_argument() {
    let mut app = TestApp::spawn().await;
    let unknown = "xoxb-9999-9999-notknowntoslack";
    let status = create_err(&mut app, create_request("acme", "n", unknown, "alerts", "")).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("invalid_auth"),
        "{}",
        status.message()
    );
    assert!(!status.message().contains(unknown));

    app.double.state().revoke(TOKEN);
    let status = create_err(&mut app, create_request("acme", "n", TOKEN, "alerts", "")).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("token_revoked"),
        "{}",
        status.message()
    );
    app.stop().await;
}

#[tokio::test]
async fn unusable_channels_are_failed_precondition_and_store_nothing() {
    let mut app = TestApp::spawn().await;
    for channel in [
        "#no-such-channel",
        "C0MISSING01",
        "C0ARCHIVE1",
        "old-alerts",
    ] {
        let status = create_err(&mut app, create_request("acme", "n", TOKEN, channel, "")).await;
        assert_eq!(
            status.code(),
            Code::FailedPrecondition,
            "{channel}: {status:?}"
        );
        assert!(
            status.message().starts_with("default_channel"),
            "{channel}: {}",
            status.message()
        );
    }
    let listed = app
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
    assert!(listed.connectors.is_empty());
    // A private channel the bot is in is found by name.
    app.create("acme", "private", "private-ops").await;
    app.stop().await;
}

#[tokio::test]
async fn a_duplicate_name_is_already_exists() {
    let mut app = TestApp::spawn().await;
    app.create("acme", "prod", "alerts").await;
    let status = create_err(
        &mut app,
        create_request("acme", "prod", TOKEN, "alerts", ""),
    )
    .await;
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(status.message().contains("prod"), "{}", status.message());
    app.stop().await;
}

#[tokio::test]
async fn slack_failing_is_unavailable_and_rate_limits_are_resource_exhausted() {
    let mut app = TestApp::spawn().await;
    app.double
        .state()
        .inject("auth.test", Fault::ServerError { status: 503 }, 100);
    let status = create_err(&mut app, create_request("acme", "n", TOKEN, "alerts", "")).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("Slack"), "{}", status.message());
    // A fixed text and an incident ID; the HTTP detail stays in the log.
    assert!(
        status.message().contains("(incident "),
        "{}",
        status.message()
    );
    assert!(!status.message().contains("503"), "{}", status.message());
    assert!(
        !status.message().contains("127.0.0.1"),
        "{}",
        status.message()
    );

    let mut app = TestApp::spawn().await;
    app.double.state().inject(
        "conversations.list",
        Fault::RateLimited {
            retry_after_secs: 600,
        },
        1,
    );
    let status = create_err(&mut app, create_request("acme", "n", TOKEN, "alerts", "")).await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        status.get_error_details().retry_info().unwrap().retry_delay,
        Some(std::time::Duration::from_secs(600))
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_secret_store_is_unavailable_and_leaves_no_row() {
    let mut app =
        TestApp::spawn_with(&[("CONNECTOR__AWS__ENDPOINT_URL", "http://127.0.0.1:1")]).await;
    let status = create_err(&mut app, create_request("acme", "n", TOKEN, "alerts", "")).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("secret store"),
        "{}",
        status.message()
    );
    // No AWS error chain, no endpoint: a fixed text and an incident ID.
    assert!(
        status.message().contains("(incident "),
        "{}",
        status.message()
    );
    for detail in ["127.0.0.1", "dispatch", "connect", "error"] {
        assert!(!status.message().contains(detail), "{}", status.message());
    }
    // The compensation could not delete the secret either, so the row stays for the
    // reconciler, invisible to clients.
    let listed = app
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
    assert!(listed.connectors.is_empty());
    app.stop().await;
}
