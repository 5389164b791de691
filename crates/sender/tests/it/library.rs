use std::time::Duration;

use connector_sender::{
    Error, FileAttachment, Message, SendError, Sender, SenderConfig, send_message,
};
use slack_double::Fault;

use crate::rig::{Rig, TOKEN};

#[tokio::test]
async fn send_message_posts_to_the_default_channel_with_the_connectors_token() {
    let rig = Rig::new().await;
    let id = rig.connector("acme", "prod", "#alerts").await;
    let sent = send_message(&rig.config, &id, "deploy 42 finished")
        .await
        .unwrap();
    assert_eq!(sent.channel.as_str(), "C0ALERTS01");
    let posted = rig.double.state().posted();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].text, "deploy 42 finished");
    assert_eq!(posted[0].channel, "C0ALERTS01");
    assert_eq!(posted[0].token, TOKEN);
    assert_eq!(posted[0].ts, sent.ts);
}

#[tokio::test]
async fn send_message_reuses_its_connection_and_token_cache() {
    let rig = Rig::new().await;
    let id = rig.connector("acme", "prod", "alerts").await;
    send_message(&rig.config, &id, "first").await.unwrap();
    // Remove the secret behind the cache's back: a second call that built a new Sender would
    // have to read it and fail; the reused one still has the token cached.
    delete_secret_directly(&rig, "acme", &id).await;
    send_message(&rig.config, &id, "second").await.unwrap();
    assert_eq!(rig.double.state().posted().len(), 2);

    // A different configuration does not share that Sender.
    let other = rig
        .config
        .clone()
        .with_token_cache_ttl(Duration::from_secs(1));
    let err = send_message(&other, &id, "third").await.unwrap_err();
    assert!(
        matches!(err, Error::Send(SendError::SecretMissing { .. })),
        "{err:?}"
    );
}

/// Deletes a connector's secret directly, behind the sender's back.
async fn delete_secret_directly(rig: &Rig, tenant: &str, id: &str) {
    use connector_adapters_aws::{AwsSecretStore, AwsSettings, StaticCredentials};
    use connector_domain::{ConnectorId, SecretPrefix, TenantId};
    use connector_ports::SecretStore as _;
    let store = AwsSecretStore::new(&AwsSettings {
        endpoint_url: Some(test_support::localstack_endpoint()),
        credentials: Some(StaticCredentials {
            access_key_id: "test".into(),
            secret_access_key: "test".to_owned().into(),
        }),
        ..AwsSettings::default()
    })
    .await;
    let name = SecretPrefix::parse("p", &rig.prefix).unwrap().secret_name(
        &TenantId::parse("t", tenant).unwrap(),
        ConnectorId::parse("id", id).unwrap(),
    );
    store.delete(&name).await.unwrap();
}

#[tokio::test]
async fn a_sender_threads_broadcasts_sends_blocks_and_uploads_files() {
    let rig = Rig::new().await;
    let id = rig.connector("acme", "prod", "alerts").await;
    let sender = Sender::connect(&rig.config).await.unwrap();
    let parent = sender.send(&id, "build 7 failed").await.unwrap();
    let reply = sender
        .send_with(
            &id,
            Message::from("log attached")
                .in_thread(parent.ts.clone())
                .broadcast()
                .with_blocks(r#"[{"type":"section","text":{"type":"mrkdwn","text":"*log*"}}]"#)
                .with_file(FileAttachment {
                    filename: "build.log".into(),
                    title: Some("Build log".into()),
                    content: b"error: linker failed\n".to_vec(),
                }),
        )
        .await
        .unwrap();
    let posted = rig.double.state().posted();
    assert_eq!(posted.len(), 2);
    assert_eq!(posted[1].thread_ts.as_deref(), Some(parent.ts.as_str()));
    assert!(posted[1].reply_broadcast);
    assert_eq!(posted[1].blocks.as_ref().unwrap()[0]["type"], "section");
    let files = rig.double.state().files();
    assert_eq!(files.len(), 1);
    assert_eq!(reply.file_ids, vec![files[0].id.clone()]);
    assert_eq!(files[0].content, b"error: linker failed\n");
    assert_eq!(files[0].channel, "C0ALERTS01");
    assert_eq!(files[0].thread_ts.as_deref(), Some(parent.ts.as_str()));
    assert_eq!(files[0].token, TOKEN);
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let rig = Rig::new().await;
    let id = rig.connector("acme", "prod", "alerts").await;
    let sender = Sender::connect(&rig.config).await.unwrap();
    rig.double.state().inject(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    sender.send(&id, "eventually").await.unwrap();
    assert_eq!(rig.double.state().calls("chat.postMessage"), 2);

    rig.double.state().inject(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after_secs: 600,
        },
        1,
    );
    let err = sender.send(&id, "not now").await.unwrap_err();
    assert!(
        matches!(err, Error::Send(SendError::RateLimited { retry_after: Some(d) }) if d == Duration::from_secs(600)),
        "{err:?}"
    );
}

#[tokio::test]
async fn unknown_and_deleted_connectors_fail_and_post_nothing() {
    let rig = Rig::new().await;
    let id = rig.connector("acme", "prod", "alerts").await;
    let sender = Sender::connect(&rig.config).await.unwrap();
    let err = sender
        .send(&uuid::Uuid::now_v7().to_string(), "x")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Send(SendError::ConnectorNotFound { .. })),
        "{err:?}"
    );

    sender.send(&id, "while it exists").await.unwrap();
    rig.service
        .delete(
            &connector_domain::TenantId::parse("t", "acme").unwrap(),
            id.parse().unwrap(),
        )
        .await
        .unwrap();
    let err = sender.send(&id, "after delete").await.unwrap_err();
    assert!(
        matches!(err, Error::Send(SendError::ConnectorNotFound { .. })),
        "{err:?}"
    );
    assert_eq!(rig.double.state().posted().len(), 1);

    let err = sender.send("not-a-uuid", "x").await.unwrap_err();
    assert!(
        matches!(&err, Error::Send(SendError::Invalid(v)) if v.field == "connector_id"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_tenant_scoped_sender_sees_only_its_tenant() {
    let rig = Rig::new().await;
    let theirs = rig.connector("globex", "prod", "alerts").await;
    let ours = rig.connector("acme", "prod", "alerts").await;
    let sender = Sender::connect(&rig.config.clone().with_tenant("acme"))
        .await
        .unwrap();
    sender.send(&ours, "ok").await.unwrap();
    let err = sender.send(&theirs, "x").await.unwrap_err();
    assert!(
        matches!(err, Error::Send(SendError::ConnectorNotFound { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn slack_side_problems_are_actionable() {
    let rig = Rig::new().await;
    let outside = rig.connector("acme", "outside", "outside").await;
    let sender = Sender::connect(&rig.config).await.unwrap();
    let err = sender.send(&outside, "x").await.unwrap_err();
    assert!(
        matches!(err, Error::Send(SendError::NotInChannel { .. })),
        "{err:?}"
    );

    let id = rig.connector("acme", "prod", "alerts").await;
    rig.double.state().revoke(TOKEN);
    let err = sender.send(&id, "x").await.unwrap_err();
    assert!(
        matches!(&err, Error::Send(SendError::TokenRevoked { code }) if code == "token_revoked"),
        "{err:?}"
    );
    assert!(!err.to_string().contains(TOKEN));
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable() {
    let config = SenderConfig::new("postgres://postgres@127.0.0.1:1/nope");
    let err = Sender::connect(&config).await.unwrap_err();
    assert!(
        matches!(err, Error::Send(SendError::Unavailable { .. })),
        "{err:?}"
    );
    let err = Sender::connect(&SenderConfig::new("mysql://x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
}

#[tokio::test]
async fn the_sender_works_against_an_embedded_server() {
    use connector_usecases::CreateConnector;

    let dir =
        std::env::temp_dir().join(format!("sender-embedded-{}", uuid::Uuid::new_v4().simple()));
    let double = slack_double::SlackDouble::start().await.unwrap();
    double.state().add_generated_workspace(
        "T0EMBED01",
        3,
        vec![slack_double::Channel::public("C0ALERTS01", "alerts")],
    );
    double.state().add_token(TOKEN, "T0EMBED01");

    // What an embedded connector-server does with CONNECTOR__DATA_DIR=dir.
    let config = SenderConfig::embedded(&dir).with_slack_api_base_url(double.api_base_url());
    let service =
        connector_app::Services::open(&config.parse().unwrap(), connector_app::Migrate::Apply)
            .await
            .unwrap()
            .connectors;
    let id = service
        .create(CreateConnector::parse("acme", "prod", TOKEN, "alerts", "").unwrap())
        .await
        .unwrap()
        .id
        .to_string();

    let sent = send_message(&config, &id, "from the embedded store")
        .await
        .unwrap();
    assert_eq!(sent.channel.as_str(), "C0ALERTS01");
    assert_eq!(double.state().posted()[0].token, TOKEN);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_request_id_posts_once_even_from_two_senders() {
    let rig = Rig::new().await;
    let id = rig.connector("acme", "prod", "alerts").await;
    let one = Sender::connect(&rig.config).await.unwrap();
    let two = Sender::connect(&rig.config).await.unwrap();
    let keyed = || {
        Message::from("deploy 9 finished")
            .with_request_id(connector_sender::RequestId::parse("request_id", "deploy-9").unwrap())
    };
    let (a, b) = tokio::join!(one.send_with(&id, keyed()), two.send_with(&id, keyed()));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.channel, a.ts), (b.channel, b.ts));
    assert_eq!(rig.double.state().posted().len(), 1);
}

#[tokio::test]
async fn a_sender_posts_elsewhere_then_updates_and_deletes_what_it_posted() {
    let rig = Rig::new().await;
    let id = rig.connector("acme", "prod", "#alerts").await;
    let sender = Sender::connect(&rig.config).await.unwrap();
    let elsewhere = connector_sender::ChannelRef::parse("channel", "C0000000003").unwrap();
    let started = sender
        .send_with(&id, Message::from("deploy started").to_channel(elsewhere))
        .await
        .unwrap();
    assert_eq!(started.channel.as_str(), "C0000000003");
    let updated = sender
        .update(
            &id,
            connector_sender::MessageEdit {
                channel: started.channel.clone(),
                ts: started.ts.clone(),
                text: "deploy finished".into(),
                blocks_json: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.ts, started.ts);
    let seen = rig.double.state().posted().pop().unwrap();
    assert_eq!((seen.text.as_str(), seen.edits), ("deploy finished", 1));
    sender
        .delete(&id, started.channel.as_str(), &started.ts)
        .await
        .unwrap();
    assert!(rig.double.state().posted().pop().unwrap().deleted);
    let err = sender
        .delete(&id, started.channel.as_str(), &started.ts)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Send(SendError::MessageNotFound { .. })),
        "{err:?}"
    );
}
