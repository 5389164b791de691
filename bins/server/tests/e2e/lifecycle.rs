use connector_grpc_api::pb::{DeleteConnectorRequest, GetConnectorRequest, ListConnectorsRequest};
use tonic::Code;

use crate::helpers::{TEAM, TOKEN, TestApp, create_request, secret_value};

#[tokio::test]
async fn create_get_list_delete_then_everything_is_gone() {
    let mut app = TestApp::spawn().await;

    let created = app.create("acme", "prod alerts", "#alerts").await;
    assert_eq!(created.tenant_id, "acme");
    assert_eq!(created.name, "prod alerts");
    assert_eq!(created.workspace_id, TEAM);
    assert_eq!(
        created.default_channel_id, "C0ALERTS01",
        "found after 1500 other channels"
    );
    assert_eq!(created.default_channel_name, "alerts");
    assert!(created.create_time.is_some() && created.update_time.is_some());
    assert_eq!(
        created.status,
        connector_grpc_api::pb::ConnectorStatus::Active as i32
    );
    let id = uuid::Uuid::parse_str(&created.id).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(
        created.id,
        id.hyphenated().to_string(),
        "canonical lowercase"
    );
    assert_eq!(
        app.double.state().calls("conversations.list"),
        2,
        "#alerts is on the second page"
    );

    // The token is in Secrets Manager under the connector's own name, and nowhere else.
    let secret_name = app.secret_name("acme", &created.id);
    let stored = secret_value(&secret_name).await.expect("secret exists");
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["bot_token"], TOKEN);
    assert_eq!(
        app.db.row_state(id).await.unwrap().as_deref(),
        Some("active")
    );

    let got = app
        .client
        .get_connector(GetConnectorRequest {
            tenant_id: "acme".into(),
            id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(got, created);

    let listed = app
        .client
        .list_connectors(ListConnectorsRequest {
            tenant_id: "acme".into(),
            page_size: 0,
            page_token: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.connectors, vec![created.clone()]);
    assert_eq!(listed.next_page_token, "");

    app.client
        .delete_connector(DeleteConnectorRequest {
            tenant_id: "acme".into(),
            id: created.id.clone(),
        })
        .await
        .unwrap();

    let err = app
        .client
        .get_connector(GetConnectorRequest {
            tenant_id: "acme".into(),
            id: created.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        secret_value(&secret_name).await,
        None,
        "secret force-deleted"
    );
    assert_eq!(app.db.row_state(id).await.unwrap(), None, "row removed");

    // Deleting again is NOT_FOUND and changes nothing.
    let err = app
        .client
        .delete_connector(DeleteConnectorRequest {
            tenant_id: "acme".into(),
            id: created.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // The name is free again at once (no recovery window on the secret).
    let again = app.create("acme", "prod alerts", "alerts").await;
    assert_ne!(again.id, created.id);
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_request_id_returns_the_first_connector() {
    let mut app = TestApp::spawn().await;
    let first = app
        .client
        .create_connector(create_request("acme", "prod", TOKEN, "alerts", "req-42"))
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    let auth_calls = app.double.state().calls("auth.test");
    let second = app
        .client
        .create_connector(create_request("acme", "prod", TOKEN, "alerts", "req-42"))
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(
        app.double.state().calls("auth.test"),
        auth_calls,
        "no second Slack round"
    );

    // The key is scoped to the tenant.
    let other = app
        .client
        .create_connector(create_request("globex", "prod", TOKEN, "alerts", "req-42"))
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_ne!(other.id, first.id);
    app.stop().await;
}

#[tokio::test]
async fn listing_pages_through_a_tenants_connectors_only() {
    let mut app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.create("acme", &format!("c{i}"), "C0ALERTS01").await.id);
    }
    app.create("globex", "theirs", "alerts").await;

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = app
            .client
            .list_connectors(ListConnectorsRequest {
                tenant_id: "acme".into(),
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.connectors.len() <= 2);
        seen.extend(page.connectors.into_iter().map(|c| c.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ids, "every connector once, oldest first");
    assert_eq!(pages, 3);

    // A page token of one tenant is not accepted for another.
    let page = app
        .client
        .list_connectors(ListConnectorsRequest {
            tenant_id: "acme".into(),
            page_size: 1,
            page_token: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let err = app
        .client
        .list_connectors(ListConnectorsRequest {
            tenant_id: "globex".into(),
            page_size: 1,
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_token"), "{}", err.message());
    app.stop().await;
}

#[tokio::test]
async fn another_tenants_connector_is_not_found_and_untouched() {
    let mut app = TestApp::spawn().await;
    let created = app.create("acme", "prod", "alerts").await;
    for tenant in ["globex", "acme2"] {
        let err = app
            .client
            .get_connector(GetConnectorRequest {
                tenant_id: tenant.into(),
                id: created.id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        let err = app
            .client
            .delete_connector(DeleteConnectorRequest {
                tenant_id: tenant.into(),
                id: created.id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }
    assert!(
        secret_value(&app.secret_name("acme", &created.id))
            .await
            .is_some()
    );
    app.client
        .get_connector(GetConnectorRequest {
            tenant_id: "acme".into(),
            id: created.id,
        })
        .await
        .unwrap();
    app.stop().await;
}
