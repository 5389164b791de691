//! UpdateConnector through the generated client: each field alone and all together (seen in
//! what the server answers, in what a send does, and in the secret store), and every refusal
//! changing nothing.

use connector_grpc_api::pb::{
    self, GetConnectorRequest, SendMessageRequest, UpdateConnectorRequest,
};
use prost_types::FieldMask;
use tonic::Code;

use crate::helpers::{TEAM, TOKEN, TestApp, secret_value};

const NEW: &str = "xoxb-1000-2000-replacement1";
const NEWER: &str = "xoxb-1000-2000-replacement2";
const OTHER: &str = "xoxb-9000-9000-otherworkspace";

fn update(id: &str, paths: &[&str]) -> UpdateConnectorRequest {
    UpdateConnectorRequest {
        tenant_id: "acme".into(),
        id: id.into(),
        update_mask: Some(FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
        ..Default::default()
    }
}

async fn get(app: &mut TestApp, id: &str) -> pb::Connector {
    app.client
        .get_connector(GetConnectorRequest {
            tenant_id: "acme".into(),
            id: id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap()
}

/// Sends through the connector; the channel and token the double saw it posted with.
async fn send(app: &mut TestApp, id: &str) -> (String, String) {
    app.client
        .send_message(SendMessageRequest {
            tenant_id: "acme".into(),
            connector_id: id.into(),
            text: "after the update".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let last = app.double.state().posted().pop().unwrap();
    (last.channel, last.token)
}

async fn stored_token(app: &TestApp, id: &str) -> String {
    let raw = secret_value(&app.secret_name("acme", id)).await.unwrap();
    serde_json::from_str::<serde_json::Value>(&raw).unwrap()["bot_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn each_field_alone_and_all_together() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "#alerts").await;
    assert_eq!(c.etag, "g1");
    // The server caches the token now.
    assert_eq!(
        send(&mut app, &c.id).await,
        ("C0ALERTS01".into(), TOKEN.into())
    );

    let renamed = app
        .client
        .update_connector(UpdateConnectorRequest {
            name: "renamed".into(),
            ..update(&c.id, &["name"])
        })
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(renamed.name, "renamed");
    assert_eq!(renamed.etag, "g2");
    assert_eq!(renamed.default_channel_id, c.default_channel_id);
    assert_eq!(renamed.workspace_id, c.workspace_id);
    assert_eq!(renamed.create_time, c.create_time);
    assert_eq!(get(&mut app, &c.id).await, renamed);

    let moved = app
        .client
        .update_connector(UpdateConnectorRequest {
            default_channel: "#private-ops".into(),
            ..update(&c.id, &["default_channel"])
        })
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(moved.default_channel_id, "G0PRIVATE1");
    assert_eq!(moved.default_channel_name, "private-ops");
    assert_eq!(moved.name, "renamed");
    assert_eq!(send(&mut app, &c.id).await.0, "G0PRIVATE1");

    // A new token: used at once by the server that cached the old one, which can then be
    // revoked without a send failing.
    app.double.state().add_token(NEW, TEAM);
    let retokened = app
        .client
        .update_connector(UpdateConnectorRequest {
            slack_bot_token: NEW.into(),
            ..update(&c.id, &["slack_bot_token"])
        })
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(retokened.etag, "g4");
    assert_eq!(stored_token(&app, &c.id).await, NEW);
    app.double.state().revoke(TOKEN);
    assert_eq!(
        send(&mut app, &c.id).await,
        ("G0PRIVATE1".into(), NEW.into())
    );

    // Everything at once, the mask left empty: every field given.
    app.double.state().add_token(NEWER, TEAM);
    let all = app
        .client
        .update_connector(UpdateConnectorRequest {
            name: "all-at-once".into(),
            default_channel: "C0ALERTS01".into(),
            slack_bot_token: NEWER.into(),
            etag: "g4".into(),
            ..update(&c.id, &[])
        })
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(
        (
            all.name.as_str(),
            all.default_channel_name.as_str(),
            all.etag.as_str()
        ),
        ("all-at-once", "alerts", "g5")
    );
    assert_eq!(stored_token(&app, &c.id).await, NEWER);
    assert_eq!(
        send(&mut app, &c.id).await,
        ("C0ALERTS01".into(), NEWER.into())
    );
    app.stop().await;
}

#[tokio::test]
async fn refusals_change_nothing_and_a_retry_is_answered() {
    let mut app = TestApp::spawn().await;
    let c = app.create("acme", "prod", "#alerts").await;
    app.create("acme", "taken", "#alerts").await;
    app.double
        .state()
        .add_generated_workspace("T0OTHER01", 2, Vec::new());
    app.double.state().add_token(OTHER, "T0OTHER01");

    let refused = |code: Code, field: &'static str| {
        move |r: Result<tonic::Response<pb::UpdateConnectorResponse>, tonic::Status>| {
            let status = r.unwrap_err();
            assert_eq!(status.code(), code, "{status:?}");
            assert!(
                status.message().contains(field),
                "{field} not named: {status:?}"
            );
            assert!(
                !status.message().contains(OTHER),
                "token echoed: {status:?}"
            );
        }
    };
    let r = app
        .client
        .update_connector(UpdateConnectorRequest {
            slack_bot_token: OTHER.into(),
            ..update(&c.id, &["slack_bot_token"])
        })
        .await;
    refused(Code::FailedPrecondition, "slack_bot_token")(r);
    let r = app
        .client
        .update_connector(UpdateConnectorRequest {
            name: "renamed".into(),
            etag: "g7".into(),
            ..update(&c.id, &["name"])
        })
        .await;
    refused(Code::Aborted, "etag")(r);
    let r = app
        .client
        .update_connector(UpdateConnectorRequest {
            name: "taken".into(),
            ..update(&c.id, &["name"])
        })
        .await;
    refused(Code::AlreadyExists, "name")(r);
    let r = app
        .client
        .update_connector(UpdateConnectorRequest {
            default_channel: "#old-alerts".into(),
            ..update(&c.id, &["default_channel"])
        })
        .await;
    refused(Code::FailedPrecondition, "default_channel")(r);
    let r = app
        .client
        .update_connector(update(&c.id, &["workspace_id"]))
        .await;
    refused(Code::InvalidArgument, "update_mask")(r);
    let r = app.client.update_connector(update(&c.id, &[])).await;
    refused(Code::InvalidArgument, "update_mask")(r);
    let r = app.client.update_connector(update(&c.id, &["name"])).await;
    refused(Code::InvalidArgument, "name")(r);
    let r = app
        .client
        .update_connector(UpdateConnectorRequest {
            name: "renamed".into(),
            ..update("0192a8a0-0000-7000-8000-00000000abcd", &["name"])
        })
        .await;
    refused(Code::NotFound, "connector")(r);
    let r = app
        .client
        .update_connector(UpdateConnectorRequest {
            tenant_id: "globex".into(),
            name: "renamed".into(),
            ..update(&c.id, &["name"])
        })
        .await;
    refused(Code::NotFound, "connector")(r);

    let unchanged = get(&mut app, &c.id).await;
    assert_eq!(unchanged, c, "a refusal changed the connector");
    assert_eq!(stored_token(&app, &c.id).await, TOKEN);

    // An update with a request_id, then its retry (as after a lost answer): the retry is
    // answered with the connector, neither applied twice nor refused for its old etag.
    let once = UpdateConnectorRequest {
        name: "renamed".into(),
        etag: "g1".into(),
        request_id: "rename-1".into(),
        ..update(&c.id, &["name"])
    };
    let first = app
        .client
        .update_connector(once.clone())
        .await
        .unwrap()
        .into_inner();
    let again = app
        .client
        .update_connector(once)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(get(&mut app, &c.id).await.etag, "g2");
    app.stop().await;
}
