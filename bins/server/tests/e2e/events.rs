//! Slack's Events API end to end: the Slack double makes things happen in the workspace and
//! delivers the events, signed, to the server's `POST /slack/events`; forged, stale, replayed,
//! oversized and unsigned deliveries change nothing.

use connector_grpc_api::pb::{
    self, ConnectorStatus, GetConnectorRequest, ListConnectorsRequest, SendMessageRequest,
    UpdateConnectorRequest,
};
use slack_double::{Happening, SlackDouble};
use tonic::Code;

use crate::helpers::{TEAM, TestApp, secret_value};

const SECRET: &str = "e2e-signing-secret";

async fn spawn() -> TestApp {
    let double = SlackDouble::start().await.unwrap();
    let app =
        TestApp::spawn_with_double(double, &[("CONNECTOR__SLACK__SIGNING_SECRET", SECRET)]).await;
    app.double.deliver_events_to(&events_url(&app), SECRET);
    app
}

fn events_url(app: &TestApp) -> String {
    format!("http://{}/slack/events", app.http_addr())
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

async fn status(app: &mut TestApp, id: &str) -> ConnectorStatus {
    get(app, id).await.status()
}

/// Sends through the connector; Slack's `chat.postMessage` calls before and after.
async fn send(app: &mut TestApp, id: &str) -> (Result<(), tonic::Status>, u64) {
    let before = app.double.state().calls("chat.postMessage");
    let answer = app
        .client
        .send_message(SendMessageRequest {
            tenant_id: "acme".into(),
            connector_id: id.into(),
            text: "event e2e".into(),
            ..Default::default()
        })
        .await
        .map(drop);
    (
        answer,
        app.double.state().calls("chat.postMessage") - before,
    )
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Posts `body` to the server's events URL with the given headers.
async fn post(app: &TestApp, body: &str, timestamp: Option<i64>, signature: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(events_url(app))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(ts) = timestamp {
        request = request.header("x-slack-request-timestamp", ts.to_string());
    }
    if let Some(sig) = signature {
        request = request.header("x-slack-signature", sig);
    }
    request.send().await.unwrap().status().as_u16()
}

fn archive_of(channel: &str, event_id: &str) -> String {
    serde_json::json!({
        "type": "event_callback", "team_id": TEAM, "api_app_id": slack_double::APP_ID,
        "event_id": event_id,
        "event": {"type": "channel_archive", "channel": channel, "user": "U1"},
    })
    .to_string()
}

#[tokio::test]
async fn only_signed_fresh_deliveries_are_read() {
    let mut app = spawn().await;
    let c = app.create("acme", "prod", "#alerts").await;
    let sign = |ts: i64, body: &str| slack_double::events::sign(SECRET, ts, body.as_bytes());

    // Slack's URL check.
    let check = r#"{"token":"t","challenge":"ch4llenge","type":"url_verification"}"#;
    let answer = reqwest::Client::new()
        .post(events_url(&app))
        .header("x-slack-request-timestamp", now().to_string())
        .header("x-slack-signature", sign(now(), check))
        .body(check)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(
        answer.json::<serde_json::Value>().await.unwrap()["challenge"],
        "ch4llenge"
    );

    let body = archive_of("C0ALERTS01", "EvForged01");
    let ts = now();
    let forged = slack_double::events::sign("another-secret", ts, body.as_bytes());
    assert_eq!(post(&app, &body, Some(ts), Some(&forged)).await, 401);
    let stale = now() - 6 * 60;
    assert_eq!(
        post(&app, &body, Some(stale), Some(&sign(stale, &body))).await,
        401
    );
    assert_eq!(post(&app, &body, None, Some(&sign(ts, &body))).await, 401);
    assert_eq!(post(&app, &body, Some(ts), None).await, 401);
    // Signed for one body, sent with another.
    let other = archive_of("C0ALERTS01", "EvForged02");
    assert_eq!(
        post(&app, &other, Some(ts), Some(&sign(ts, &body))).await,
        401
    );
    // Larger than the HTTP listener takes (CONNECTOR__HTTP__MAX_BODY_BYTES, 16 KiB).
    let padding = "x".repeat(20 * 1024);
    let oversized = serde_json::json!({
        "type": "event_callback", "team_id": TEAM, "api_app_id": slack_double::APP_ID,
        "event_id": "EvBig",
        "event": {"type": "channel_archive", "channel": "C0ALERTS01", "pad": padding},
    })
    .to_string();
    assert_eq!(
        post(&app, &oversized, Some(ts), Some(&sign(ts, &oversized))).await,
        413
    );
    assert_eq!(
        status(&mut app, &c.id).await,
        ConnectorStatus::Active,
        "nothing changed"
    );

    // The same delivery, signed: acted on.
    assert_eq!(
        post(&app, &body, Some(ts), Some(&sign(ts, &body))).await,
        200
    );
    assert_eq!(
        status(&mut app, &c.id).await,
        ConnectorStatus::DefaultChannelUnavailable
    );
    app.stop().await;

    // A server without a signing secret does not take events at all.
    let mut plain = TestApp::spawn().await;
    let ts = now();
    assert_eq!(
        post(&plain, &body, Some(ts), Some(&sign(ts, &body))).await,
        404
    );
    let c = plain.create("acme", "prod", "#alerts").await;
    assert_eq!(status(&mut plain, &c.id).await, ConnectorStatus::Active);
    plain.stop().await;
}

#[tokio::test]
async fn an_uninstall_revokes_every_connector_of_the_workspace_until_a_new_token() {
    let mut app = spawn().await;
    let a = app.create("acme", "prod", "#alerts").await;
    let b = app.create("globex", "prod", "#alerts").await;
    assert!(send(&mut app, &a.id).await.0.is_ok());

    let deliveries = app
        .double
        .trigger(Happening::Uninstall {
            team_id: TEAM.into(),
        })
        .await;
    assert_eq!(
        deliveries.iter().map(|d| d.status).collect::<Vec<_>>(),
        vec![200, 200]
    );
    assert_eq!(status(&mut app, &a.id).await, ConnectorStatus::Revoked);
    let globex = app
        .client
        .get_connector(GetConnectorRequest {
            tenant_id: "globex".into(),
            id: b.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(globex.status(), ConnectorStatus::Revoked, "every tenant's");
    for (tenant, id) in [("acme", &a.id), ("globex", &b.id)] {
        assert_eq!(
            secret_value(&app.secret_name(tenant, id)).await,
            None,
            "the token was deleted"
        );
    }
    let (answer, slack_calls) = send(&mut app, &a.id).await;
    let status_ = answer.unwrap_err();
    assert_eq!(status_.code(), Code::FailedPrecondition, "{status_:?}");
    assert!(status_.message().contains("revoked"), "{status_:?}");
    assert_eq!(slack_calls, 0, "refused without calling Slack");
    let revoked = app
        .client
        .list_connectors(ListConnectorsRequest {
            tenant_id: "acme".into(),
            status: ConnectorStatus::Revoked as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .connectors;
    assert_eq!(
        revoked.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&a.id]
    );

    // Reinstalled: the new token brings the connector back.
    const NEW: &str = "xoxb-1000-2000-afterreinstall";
    app.double.state().add_token(NEW, TEAM);
    let back = app
        .client
        .update_connector(UpdateConnectorRequest {
            tenant_id: "acme".into(),
            id: a.id.clone(),
            slack_bot_token: NEW.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(back.status(), ConnectorStatus::Active);
    assert!(send(&mut app, &a.id).await.0.is_ok());
    assert_eq!(app.double.state().posted().pop().unwrap().token, NEW);
    app.stop().await;
}

/// A workspace where a tenant also runs its own Slack app: another app's bot, its own token.
const OTHER_APP_TOKEN: &str = "xoxb-1000-3000-anotherappsbot";

fn other_app() -> slack_double::BotOf {
    slack_double::BotOf {
        app_id: "A0OTHERAPP".into(),
        bot_user_id: "U0OTHERBOT".into(),
        bot_id: "B0OTHERBOT".into(),
    }
}

#[tokio::test]
async fn workspace_events_touch_only_this_apps_connectors() {
    let mut app = spawn().await;
    app.double
        .state()
        .add_token_of_app(OTHER_APP_TOKEN, TEAM, other_app());
    let ours = app.create("acme", "prod", "#alerts").await;
    let theirs = app
        .client
        .create_connector(crate::helpers::create_request(
            "acme",
            "own-app",
            OTHER_APP_TOKEN,
            "#alerts",
            "",
        ))
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    // A connector made before bots were recorded: the service learns its bot when its
    // workspace's next event comes.
    let legacy = app.create("acme", "legacy", "#alerts").await;
    app.db
        .execute(&format!(
            "UPDATE connectors SET slack_app_id = NULL, bot_user_id = NULL WHERE id = '{}'",
            legacy.id
        ))
        .await
        .unwrap();

    // Another app's bot named in this app's tokens_revoked: nothing of ours is revoked.
    let delivery = app
        .double
        .deliver_event(
            TEAM,
            serde_json::json!({"type": "tokens_revoked",
                "tokens": {"oauth": [], "bot": ["U0OTHERBOT"]}}),
        )
        .await;
    assert_eq!(delivery.status, 200);
    for c in [&ours, &theirs, &legacy] {
        assert_eq!(
            status(&mut app, &c.id).await,
            ConnectorStatus::Active,
            "{}",
            c.name
        );
    }
    let learned: Vec<(String, String)> = app
        .db
        .query_pairs(&format!(
            "SELECT coalesce(slack_app_id, ''), coalesce(bot_user_id, '') FROM connectors \
             WHERE id IN ('{}', '{}', '{}') ORDER BY name",
            ours.id, theirs.id, legacy.id
        ))
        .await
        .unwrap();
    assert_eq!(
        learned,
        vec![
            (slack_double::APP_ID.to_owned(), "U0BOTUSER1".to_owned()),
            ("A0OTHERAPP".to_owned(), "U0OTHERBOT".to_owned()),
            (slack_double::APP_ID.to_owned(), "U0BOTUSER1".to_owned()),
        ],
        "legacy, own-app, prod: recorded at create, learned for the older row"
    );

    // This app's channel event leaves the other app's connector alone.
    app.double
        .trigger(Happening::Archive {
            channel: ours.default_channel_id.clone(),
        })
        .await;
    assert_eq!(
        status(&mut app, &ours.id).await,
        ConnectorStatus::DefaultChannelUnavailable
    );
    assert_eq!(status(&mut app, &theirs.id).await, ConnectorStatus::Active);
    app.double
        .trigger(Happening::Unarchive {
            channel: ours.default_channel_id.clone(),
        })
        .await;

    // This app uninstalled: its connectors are revoked, the other app's keeps sending.
    app.double
        .trigger(Happening::Uninstall {
            team_id: TEAM.into(),
        })
        .await;
    assert_eq!(status(&mut app, &ours.id).await, ConnectorStatus::Revoked);
    assert_eq!(status(&mut app, &legacy.id).await, ConnectorStatus::Revoked);
    assert_eq!(status(&mut app, &theirs.id).await, ConnectorStatus::Active);
    assert!(
        secret_value(&app.secret_name("acme", &theirs.id))
            .await
            .is_some(),
        "the other app's token is kept"
    );
    let (answer, calls) = send(&mut app, &theirs.id).await;
    answer.unwrap();
    assert_eq!(calls, 1);
    assert_eq!(
        app.double.state().posted().pop().unwrap().token,
        OTHER_APP_TOKEN
    );
    app.stop().await;
}

#[tokio::test]
async fn channel_events_follow_the_default_channel_and_replays_change_nothing() {
    let mut app = spawn().await;
    let c = app.create("acme", "prod", "#alerts").await;
    let archive = |channel: &str| Happening::Archive {
        channel: channel.into(),
    };

    // Another channel's events do not touch it.
    app.double.trigger(archive("C0000000001")).await;
    assert_eq!(status(&mut app, &c.id).await, ConnectorStatus::Active);

    let archived = app.double.trigger(archive("C0ALERTS01")).await;
    assert_eq!(archived[0].status, 200);
    assert_eq!(
        status(&mut app, &c.id).await,
        ConnectorStatus::DefaultChannelUnavailable
    );
    let (answer, slack_calls) = send(&mut app, &c.id).await;
    assert_eq!(answer.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(slack_calls, 0);
    let unavailable = app
        .client
        .list_connectors(ListConnectorsRequest {
            tenant_id: "acme".into(),
            status: ConnectorStatus::DefaultChannelUnavailable as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .connectors;
    assert_eq!(unavailable.len(), 1);

    app.double
        .trigger(Happening::Unarchive {
            channel: "C0ALERTS01".into(),
        })
        .await;
    assert_eq!(status(&mut app, &c.id).await, ConnectorStatus::Active);
    assert!(send(&mut app, &c.id).await.0.is_ok());

    // Slack retries the archive's delivery: acknowledged, and nothing changes.
    assert_eq!(app.double.redeliver(&archived[0], 1).await, 200);
    assert_eq!(status(&mut app, &c.id).await, ConnectorStatus::Active);

    app.double
        .trigger(Happening::Rename {
            channel: "C0ALERTS01".into(),
            name: "alerts-renamed".into(),
        })
        .await;
    let renamed = get(&mut app, &c.id).await;
    assert_eq!(renamed.default_channel_name, "alerts-renamed");
    assert_eq!(renamed.default_channel_id, "C0ALERTS01");

    // The bot removed from the channel, then invited back.
    app.double
        .trigger(Happening::RemoveBot {
            channel: "C0ALERTS01".into(),
        })
        .await;
    assert_eq!(
        status(&mut app, &c.id).await,
        ConnectorStatus::DefaultChannelUnavailable
    );
    app.double
        .trigger(Happening::InviteBot {
            channel: "C0ALERTS01".into(),
        })
        .await;
    assert_eq!(status(&mut app, &c.id).await, ConnectorStatus::Active);

    // Deleted: unavailable until the connector points elsewhere.
    app.double
        .trigger(Happening::Delete {
            channel: "C0ALERTS01".into(),
        })
        .await;
    assert_eq!(
        status(&mut app, &c.id).await,
        ConnectorStatus::DefaultChannelUnavailable
    );
    let moved = app
        .client
        .update_connector(UpdateConnectorRequest {
            tenant_id: "acme".into(),
            id: c.id.clone(),
            default_channel: "#private-ops".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(moved.status(), ConnectorStatus::Active);
    assert!(send(&mut app, &c.id).await.0.is_ok());
    app.stop().await;
}

fn list_events(tenant: &str, after: &str) -> pb::ListEventsRequest {
    pb::ListEventsRequest {
        tenant_id: tenant.into(),
        after_cursor: after.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn what_people_do_in_slack_is_stored_once_per_connector_and_read_by_cursor() {
    let mut app = spawn().await;
    app.double
        .state()
        .add_token_of_app(OTHER_APP_TOKEN, TEAM, other_app());
    let acme = app.create("acme", "prod", "#alerts").await;
    let globex = app.create("globex", "ops", "#alerts").await;
    let other = app
        .client
        .create_connector(crate::helpers::create_request(
            "acme",
            "own-app",
            OTHER_APP_TOKEN,
            "#alerts",
            "",
        ))
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    let empty = app
        .client
        .list_events(list_events("acme", ""))
        .await
        .unwrap()
        .into_inner();
    assert!(empty.events.is_empty());
    assert_eq!(empty.next_cursor, "0");

    // Slack's shapes: a mention in a thread, the bot's own message, a reaction.
    let mention = app
        .double
        .deliver_event(
            TEAM,
            serde_json::json!({"type": "app_mention", "user": "U0SOMEONE",
                "text": "<@U0BOTUSER1> deploy?", "ts": "1700000001.000100",
                "thread_ts": "1700000000.000100", "channel": "C0ALERTS01",
                "event_ts": "1700000001.000100"}),
        )
        .await;
    assert_eq!(mention.status, 200);
    // Slack's retry of the same delivery is stored once.
    assert_eq!(app.double.redeliver(&mention, 1).await, 200);
    app.double
        .deliver_event(
            TEAM,
            serde_json::json!({"type": "message", "user": "U0BOTUSER1", "bot_id": "B0BOT00001",
                "text": "deploy finished", "ts": "1700000002.000100", "channel": "C0ALERTS01"}),
        )
        .await;
    app.double
        .deliver_event(
            TEAM,
            serde_json::json!({"type": "reaction_added", "user": "U0SOMEONE",
                "reaction": "eyes", "item": {"type": "message", "channel": "C0ALERTS01",
                "ts": "1700000002.000100"}, "event_ts": "1700000003.000100"}),
        )
        .await;

    let page = app
        .client
        .list_events(list_events("acme", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        page.events
            .iter()
            .map(|e| (e.r#type.as_str(), e.connector_id.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("app_mention", acme.id.as_str()),
            ("reaction_added", acme.id.as_str())
        ],
        "once each, the bot's own message left out, nothing for the other app's connector"
    );
    let m = &page.events[0];
    assert_eq!(
        (
            m.event_id.as_str(),
            m.team_id.as_str(),
            m.channel_id.as_str(),
            m.user_id.as_str(),
            m.ts.as_str(),
            m.thread_ts.as_str(),
            m.text.as_str()
        ),
        (
            mention.event_id.as_str(),
            TEAM,
            "C0ALERTS01",
            "U0SOMEONE",
            "1700000001.000100",
            "1700000000.000100",
            "<@U0BOTUSER1> deploy?"
        )
    );
    assert!(m.received_at.is_some());
    let payload: serde_json::Value = serde_json::from_str(&m.payload_json).unwrap();
    assert_eq!(payload["event_ts"], "1700000001.000100");
    assert_eq!(
        page.events[1].ts, "1700000002.000100",
        "the reacted-to message"
    );
    assert!(
        other.id != acme.id,
        "the other app's connector exists and received nothing"
    );

    // With its own messages, and resumed after a cursor: nothing lost, nothing repeated.
    let all = app
        .client
        .list_events(pb::ListEventsRequest {
            include_own_messages: true,
            ..list_events("acme", "")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.events.len(), 3);
    let cursors: Vec<i64> = all
        .events
        .iter()
        .map(|e| e.cursor.parse().unwrap())
        .collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
    let rest = app
        .client
        .list_events(pb::ListEventsRequest {
            include_own_messages: true,
            ..list_events("acme", &all.events[0].cursor)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.events, all.events[1..].to_vec());
    assert_eq!(rest.next_cursor, all.next_cursor);
    let types = app
        .client
        .list_events(pb::ListEventsRequest {
            types: vec!["reaction_added".into()],
            ..list_events("acme", "")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(types.events.len(), 1);

    // Each tenant reads its own: globex's connector got the same events, under its cursors.
    let theirs = app
        .client
        .list_events(list_events("globex", ""))
        .await
        .unwrap()
        .into_inner();
    assert!(theirs.events.iter().all(|e| e.connector_id == globex.id));
    assert_eq!(theirs.events.len(), 2);
    let foreign = app
        .client
        .list_events(pb::ListEventsRequest {
            connector_ids: vec![globex.id.clone()],
            ..list_events("acme", "")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        foreign.events.is_empty(),
        "another tenant's connector: nothing"
    );

    // A cursor never given out names its field.
    let bad = app
        .client
        .list_events(list_events("acme", "999999"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert!(bad.message().starts_with("after_cursor:"), "{bad:?}");
    app.stop().await;
}

#[tokio::test]
async fn button_clicks_and_slash_commands_are_stored_with_what_answers_them() {
    let mut app = spawn().await;
    let c = app.create("acme", "prod", "#alerts").await;
    // A click on a button of a message the connector posted (Slack's block_actions shape).
    let click = app
        .double
        .deliver_interaction(
            TEAM,
            "U0SOMEONE",
            serde_json::json!({
                "type": "block_actions",
                "container": {"type": "message", "message_ts": "1700000005.000100",
                    "channel_id": "C0ALERTS01", "is_ephemeral": false},
                "channel": {"id": "C0ALERTS01", "name": "alerts"},
                "message": {"type": "message", "ts": "1700000005.000100", "text": "deploy?"},
                "actions": [{"action_id": "approve", "block_id": "b1", "type": "button",
                    "value": "yes", "action_ts": "1700000006.000200"}],
            }),
        )
        .await;
    assert_eq!(click.status, 200);
    // Delivered twice: stored once.
    assert_eq!(app.double.redeliver(&click, 1).await, 200);
    let command = app
        .double
        .deliver_command(TEAM, "C0ALERTS01", "U0SOMEONE", "/deploy", "api v2")
        .await;
    assert_eq!(command.status, 200);

    let page = app
        .client
        .list_events(list_events("acme", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.events.len(), 2, "{:?}", page.events);
    let (b, s) = (&page.events[0], &page.events[1]);
    assert_eq!(
        (
            b.r#type.as_str(),
            b.connector_id.as_str(),
            b.event_id.as_str()
        ),
        ("block_actions", c.id.as_str(), click.event_id.as_str())
    );
    assert_eq!(
        (b.channel_id.as_str(), b.user_id.as_str(), b.ts.as_str()),
        ("C0ALERTS01", "U0SOMEONE", "1700000005.000100")
    );
    let payload: serde_json::Value = serde_json::from_str(&b.payload_json).unwrap();
    assert_eq!(payload["actions"][0]["action_id"], "approve");
    assert!(
        payload["response_url"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    assert!(payload["trigger_id"].as_str().is_some());
    assert!(
        payload.get("token").is_none(),
        "the verification token is not passed on"
    );
    assert_eq!(
        (s.r#type.as_str(), s.text.as_str(), s.user_id.as_str()),
        ("slash_command", "api v2", "U0SOMEONE")
    );
    let fields: serde_json::Value = serde_json::from_str(&s.payload_json).unwrap();
    assert_eq!(fields["command"], "/deploy");
    assert!(fields["response_url"].as_str().is_some() && fields.get("token").is_none());

    // Unsigned, or signed for another body: refused, nothing stored.
    let forged = reqwest::Client::new()
        .post(format!("http://{}/slack/commands", app.http_addr()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("team_id=T0E2ETEST&api_app_id=A0DOUBLE01&command=%2Fx")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    let again = app
        .client
        .list_events(list_events("acme", &page.next_cursor))
        .await
        .unwrap()
        .into_inner();
    assert!(again.events.is_empty());

    // What the double's admin API makes people do arrives the same way.
    for happening in [
        Happening::Mention {
            channel: "C0ALERTS01".into(),
            user: "U0SOMEONE".into(),
            text: "status?".into(),
        },
        Happening::Click {
            channel: "C0ALERTS01".into(),
            ts: "1700000005.000100".into(),
            user: "U0SOMEONE".into(),
            action_id: "ack".into(),
            value: "1".into(),
        },
        Happening::Command {
            channel: "C0ALERTS01".into(),
            user: "U0SOMEONE".into(),
            command: "/status".into(),
            text: String::new(),
        },
    ] {
        let delivered = app.double.trigger(happening).await;
        assert_eq!(
            delivered.iter().map(|d| d.status).collect::<Vec<_>>(),
            vec![200]
        );
    }
    let later = app
        .client
        .list_events(list_events("acme", &page.next_cursor))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        later
            .events
            .iter()
            .map(|e| e.r#type.as_str())
            .collect::<Vec<_>>(),
        vec!["app_mention", "block_actions", "slash_command"]
    );
    app.stop().await;
}

async fn mention(app: &TestApp, text: &str) -> slack_double::Delivery {
    let d = app
        .double
        .deliver_event(
            TEAM,
            serde_json::json!({"type": "app_mention", "user": "U0SOMEONE", "text": text,
                "ts": "1700000001.000100", "channel": "C0ALERTS01"}),
        )
        .await;
    assert_eq!(d.status, 200);
    d
}

async fn next(stream: &mut tonic::Streaming<pb::StreamEventsResponse>) -> pb::InboundEvent {
    tokio::time::timeout(std::time::Duration::from_secs(3), stream.message())
        .await
        .expect("an event within 3 s")
        .unwrap()
        .expect("the stream goes on")
        .event
        .unwrap()
}

#[tokio::test]
async fn a_stream_replays_then_follows_and_ends_cleanly_when_the_server_drains() {
    let mut app = spawn().await;
    app.create("acme", "prod", "#alerts").await;
    mention(&app, "one").await;
    let open = |after: &str| pb::StreamEventsRequest {
        tenant_id: "acme".into(),
        after_cursor: after.into(),
        ..Default::default()
    };
    let mut live = app
        .client
        .stream_events(open(""))
        .await
        .unwrap()
        .into_inner();
    let mut replay = app
        .client
        .stream_events(open("0"))
        .await
        .unwrap()
        .into_inner();
    let one = next(&mut replay).await;
    assert_eq!(one.text, "one", "replayed from the log");

    let sent = std::time::Instant::now();
    mention(&app, "two").await;
    let two = next(&mut live).await;
    assert_eq!(
        two.text, "two",
        "from now on: only what came after it opened"
    );
    assert!(
        sent.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(next(&mut replay).await, two);

    // Resumed after the last cursor seen: nothing lost, nothing repeated.
    let mut resumed = app
        .client
        .stream_events(open(&one.cursor))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut resumed).await, two);

    // Another tenant's stream sees none of it; a bad cursor names its field.
    let bad = app
        .client
        .stream_events(pb::StreamEventsRequest {
            after_cursor: "x".into(),
            ..open("")
        })
        .await
        .unwrap_err();
    assert!(bad.message().starts_with("after_cursor:"), "{bad:?}");

    // Draining ends open streams cleanly (no error): clients resume elsewhere.
    app.stop().await;
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), live.message())
        .await
        .expect("the stream ends when the server drains");
    assert!(matches!(end, Ok(None)), "{end:?}");
}

#[tokio::test]
async fn an_event_stored_on_one_replica_reaches_streams_on_another_and_resumes_after_a_restart() {
    let mut a = spawn().await;
    a.create("acme", "prod", "#alerts").await;
    // A second replica on the same database, secrets and Slack; Slack delivers only to `a`.
    let replica = || {
        crate::common::config(
            a.server_env(),
            &[("CONNECTOR__SLACK__SIGNING_SECRET", SECRET)],
        )
    };
    let mut b = crate::helpers::start(replica()).await;
    let mut on_b = b
        .client
        .stream_events(pb::StreamEventsRequest {
            tenant_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let sent = std::time::Instant::now();
    mention(&a, "to a, seen on b").await;
    let first = next(&mut on_b).await;
    let took = sent.elapsed();
    assert_eq!(first.text, "to a, seen on b");
    assert!(
        took < std::time::Duration::from_secs(1),
        "woken by the database's notification, not the 5 s fallback: {took:?}"
    );

    // b restarts; meanwhile a stores two more; a new replica resumes after the last cursor
    // seen: both, in order, once.
    crate::helpers::stop(b).await;
    mention(&a, "while b was down 1").await;
    mention(&a, "while b was down 2").await;
    let mut c = crate::helpers::start(replica()).await;
    let mut resumed = c
        .client
        .stream_events(pb::StreamEventsRequest {
            tenant_id: "acme".into(),
            after_cursor: first.cursor.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut resumed).await.text, "while b was down 1");
    assert_eq!(next(&mut resumed).await.text, "while b was down 2");
    let listed = c
        .client
        .list_events(list_events("acme", &first.cursor))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.events.len(), 2, "nothing repeated");
    crate::helpers::stop(c).await;
    a.stop().await;
}

#[tokio::test]
async fn a_slow_reader_holds_back_no_one_and_misses_nothing() {
    let mut app = spawn().await;
    app.create("acme", "prod", "#alerts").await;
    let open = || pb::StreamEventsRequest {
        tenant_id: "acme".into(),
        ..Default::default()
    };
    // Opened together; the slow one is not read until the end, while more than its
    // connection's flow-control window (64 KiB) piles up behind it.
    let mut slow = app.client.stream_events(open()).await.unwrap().into_inner();
    let mut fast = app.client.stream_events(open()).await.unwrap().into_inner();
    let filler = "x".repeat(3000);
    let n = 100;
    for i in 0..n {
        mention(&app, &format!("{i} {filler}")).await;
    }
    for i in 0..n {
        let e = next(&mut fast).await;
        assert!(
            e.text.starts_with(&format!("{i} ")),
            "fast reader, event {i}"
        );
    }
    let mut last = 0i64;
    for i in 0..n {
        let e = next(&mut slow).await;
        assert!(
            e.text.starts_with(&format!("{i} ")),
            "slow reader, event {i}"
        );
        let cursor: i64 = e.cursor.parse().unwrap();
        assert!(cursor > last, "in order, once");
        last = cursor;
    }
    app.stop().await;
}
