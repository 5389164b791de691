use std::time::{Duration, Instant};

use connector_adapters_slack::{HttpSlackApi, SlackSettings};
use connector_domain::{BotToken, ChannelId};
use connector_ports::{OutgoingMessage, PostLookup, PostMetadata, SlackApi, SlackError};
use slack_double::{Channel, Fault, SlackDouble};

const TOKEN: &str = "xoxb-1111-2222-integration";

async fn setup(channels: usize) -> (SlackDouble, HttpSlackApi, BotToken) {
    let double = SlackDouble::start().await.unwrap();
    let mut extra = vec![Channel::public("C0ALERTS01", "alerts")];
    extra.push(Channel {
        is_archived: true,
        ..Channel::public("C0OLD00001", "old")
    });
    extra.push(Channel {
        is_member: false,
        ..Channel::public("C0NOTMEMBR", "outside")
    });
    extra.push(Channel {
        is_private: true,
        ..Channel::public("G0PRIVATE1", "secret-ops")
    });
    double
        .state()
        .add_generated_workspace("T0TEST001", channels, extra);
    double.state().add_token(TOKEN, "T0TEST001");
    let api = HttpSlackApi::new(SlackSettings {
        api_base_url: double.api_base_url(),
        initial_backoff: Duration::from_millis(20),
        ..SlackSettings::default()
    })
    .unwrap();
    (double, api, BotToken::parse("t", TOKEN).unwrap())
}

#[tokio::test]
async fn auth_test_yields_the_team() {
    let (_double, api, token) = setup(0).await;
    let me = api.auth_test(&token).await.unwrap();
    assert_eq!(me.team_id.as_str(), "T0TEST001");
    // Whose bot it is: auth.test names the bot, bots.info its app (Slack's published shapes).
    assert_eq!(me.bot_id.as_deref(), Some(slack_double::BOT_ID));
    assert_eq!(
        me.app_id, None,
        "auth.test's schema does not promise the app"
    );
    assert_eq!(
        api.bot_app_id(&token, slack_double::BOT_ID).await.unwrap(),
        slack_double::APP_ID
    );
    let unknown = api.bot_app_id(&token, "B0NOBODY").await.unwrap_err();
    assert!(
        matches!(&unknown, SlackError::Api { code } if code == "bot_not_found"),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn listing_follows_cursors_across_more_than_a_thousand_channels() {
    let (double, api, token) = setup(2500).await;
    let mut cursor = None;
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let page = api.list_channels(&token, cursor.take()).await.unwrap();
        pages += 1;
        names.extend(page.channels.into_iter().map(|c| c.name.to_string()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3, "1000 a page");
    assert_eq!(double.state().calls("conversations.list"), 3);
    assert_eq!(
        names.len(),
        2500 + 3,
        "archived excluded, private member channel included"
    );
    assert!(names.contains(&"alerts".to_owned()));
    assert!(names.contains(&"secret-ops".to_owned()));
    assert!(!names.contains(&"old".to_owned()));
}

#[tokio::test]
async fn rate_limits_are_waited_out_then_succeed() {
    let (double, api, token) = setup(0).await;
    double.state().inject(
        "auth.test",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    let started = Instant::now();
    api.auth_test(&token).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(double.state().calls("auth.test"), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_fails_at_once_as_rate_limited() {
    let (double, api, token) = setup(0).await;
    double.state().inject(
        "auth.test",
        Fault::RateLimited {
            retry_after_secs: 120,
        },
        1,
    );
    let started = Instant::now();
    let err = api.auth_test(&token).await.unwrap_err();
    assert!(
        matches!(err, SlackError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(120)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let (double, api, token) = setup(0).await;
    double
        .state()
        .inject("auth.test", Fault::ServerError { status: 503 }, 2);
    api.auth_test(&token).await.unwrap();
    assert_eq!(double.state().calls("auth.test"), 3);
}

#[tokio::test]
async fn persistent_server_errors_become_unavailable() {
    let (double, api, token) = setup(0).await;
    double
        .state()
        .inject("auth.test", Fault::ServerError { status: 502 }, 50);
    let err = api.auth_test(&token).await.unwrap_err();
    assert!(matches!(err, SlackError::Unavailable(_)), "{err:?}");
    assert_eq!(double.state().calls("auth.test"), 5, "max_attempts");
}

#[tokio::test]
async fn slow_answers_time_out_within_the_deadline() {
    let (double, _, token) = setup(0).await;
    let api = HttpSlackApi::new(SlackSettings {
        api_base_url: double.api_base_url(),
        request_timeout: Duration::from_millis(200),
        deadline: Duration::from_millis(700),
        initial_backoff: Duration::from_millis(10),
        ..SlackSettings::default()
    })
    .unwrap();
    double
        .state()
        .inject("auth.test", Fault::Delay { millis: 2000 }, 10);
    let started = Instant::now();
    let err = api.auth_test(&token).await.unwrap_err();
    assert!(matches!(err, SlackError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn revoked_and_unknown_tokens_are_invalid_auth() {
    let (double, api, token) = setup(0).await;
    double.state().revoke(TOKEN);
    let err = api.auth_test(&token).await.unwrap_err();
    assert!(
        matches!(&err, SlackError::InvalidAuth { code } if code == "token_revoked"),
        "{err:?}"
    );
    assert!(!err.to_string().contains(TOKEN));

    let other = BotToken::parse("t", "xoxb-9999-9999-unknown").unwrap();
    let err = api.auth_test(&other).await.unwrap_err();
    assert!(
        matches!(&err, SlackError::InvalidAuth { code } if code == "invalid_auth"),
        "{err:?}"
    );
}

#[tokio::test]
async fn channel_info_and_its_errors() {
    let (_double, api, token) = setup(0).await;
    let info = api
        .channel_info(&token, &ChannelId::new("C0ALERTS01"))
        .await
        .unwrap();
    assert_eq!(info.name.as_str(), "alerts");
    let old = api
        .channel_info(&token, &ChannelId::new("C0OLD00001"))
        .await
        .unwrap();
    assert!(old.is_archived);
    let err = api
        .channel_info(&token, &ChannelId::new("C0MISSING1"))
        .await
        .unwrap_err();
    assert!(matches!(err, SlackError::ChannelNotFound), "{err:?}");
}

#[tokio::test]
async fn posting_lands_in_the_channel_with_the_token() {
    let (double, api, token) = setup(0).await;
    let posted = api
        .post_message(
            &token,
            &OutgoingMessage {
                channel: ChannelId::new("C0ALERTS01"),
                text: "disk full".into(),
                thread_ts: None,
                reply_broadcast: false,
                blocks_json: None,
                unfurl_links: None,
                unfurl_media: None,
                metadata: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(posted.channel.as_str(), "C0ALERTS01");
    let seen = double.state().posted();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].text, "disk full");
    assert_eq!(seen[0].token, TOKEN);
    assert_eq!(seen[0].ts, posted.ts);

    let err = api
        .post_message(
            &token,
            &OutgoingMessage {
                channel: ChannelId::new("C0NOTMEMBR"),
                text: "x".into(),
                thread_ts: None,
                reply_broadcast: false,
                blocks_json: None,
                unfurl_links: None,
                unfurl_media: None,
                metadata: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SlackError::NotInChannel), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_slack_is_unavailable() {
    let api = HttpSlackApi::new(SlackSettings {
        api_base_url: "http://127.0.0.1:1/api/".into(),
        deadline: Duration::from_secs(2),
        initial_backoff: Duration::from_millis(10),
        ..SlackSettings::default()
    })
    .unwrap();
    let token = BotToken::parse("t", TOKEN).unwrap();
    let err = api.auth_test(&token).await.unwrap_err();
    assert!(matches!(err, SlackError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn thread_replies_and_blocks_reach_slack() {
    let (double, api, token) = setup(0).await;
    let parent = api
        .post_message(
            &token,
            &OutgoingMessage {
                channel: ChannelId::new("C0ALERTS01"),
                text: "parent".into(),
                thread_ts: None,
                reply_broadcast: false,
                blocks_json: Some(
                    r#"[{"type":"section","text":{"type":"mrkdwn","text":"*hi*"}}]"#.into(),
                ),
                unfurl_links: None,
                unfurl_media: None,
                metadata: None,
            },
        )
        .await
        .unwrap();
    api.post_message(
        &token,
        &OutgoingMessage {
            channel: ChannelId::new("C0ALERTS01"),
            text: "reply".into(),
            thread_ts: Some(parent.ts.clone()),
            reply_broadcast: true,
            blocks_json: None,
            unfurl_links: None,
            unfurl_media: None,
            metadata: None,
        },
    )
    .await
    .unwrap();
    let seen = double.state().posted();
    assert_eq!(seen[0].blocks.as_ref().unwrap()[0]["type"], "section");
    assert_eq!(seen[1].thread_ts.as_deref(), Some(parent.ts.as_str()));
    assert!(seen[1].reply_broadcast);
}

#[tokio::test]
async fn files_are_uploaded_in_three_steps_and_shared() {
    let (double, api, token) = setup(0).await;
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let uploaded = api
        .upload_file(
            &token,
            &ChannelId::new("C0ALERTS01"),
            Some("1700000000.000001".into()),
            &connector_domain::FileAttachment {
                filename: "report.bin".into(),
                title: Some("Nightly report".into()),
                content: content.clone(),
            },
        )
        .await
        .unwrap();
    let files = double.state().files();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].id, uploaded.id);
    assert_eq!(files[0].content, content, "bytes arrive intact");
    assert_eq!(files[0].title, "Nightly report");
    assert_eq!(files[0].channel, "C0ALERTS01");
    assert_eq!(files[0].thread_ts.as_deref(), Some("1700000000.000001"));
    assert_eq!(files[0].token, TOKEN);
    assert_eq!(double.state().calls("files.getUploadURLExternal"), 1);
    assert_eq!(double.state().calls("files.completeUploadExternal"), 1);

    let err = api
        .upload_file(
            &token,
            &ChannelId::new("C0NOTMEMBR"),
            None,
            &connector_domain::FileAttachment {
                filename: "x.txt".into(),
                title: None,
                content: b"x".to_vec(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SlackError::NotInChannel), "{err:?}");
}

#[tokio::test]
async fn oauth_access_exchanges_codes_and_refresh_tokens_once_each() {
    use connector_ports::{OAuthGrantRequest, SlackApi as _};
    use secrecy::{ExposeSecret as _, SecretString};
    use slack_double::OAuthApp;

    let (double, api, _) = setup(0).await;
    double.state().set_oauth_app(OAuthApp {
        client_id: "111.222".into(),
        client_secret: "app-secret".into(),
        team_id: "T0TEST001".into(),
        rotation: true,
        deny: false,
    });
    // The browser part: the double's authorize page redirects with a code.
    let redirect = "http://127.0.0.1:9/slack/oauth/callback";
    let location = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!(
            "http://{}/oauth/v2/authorize?client_id=111.222&scope=chat:write&redirect_uri={redirect}&state=s1",
            double.addr()
        ))
        .send()
        .await
        .unwrap()
        .headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let code = location
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    assert!(location.ends_with("state=s1"), "{location}");

    let secret = SecretString::from("app-secret".to_owned());
    let grant_for = |code: &str| OAuthGrantRequest::Code {
        code: code.to_owned(),
        redirect_uri: redirect.to_owned(),
    };
    let grant = api
        .oauth_access("111.222", &secret, &grant_for(&code))
        .await
        .unwrap();
    assert_eq!(grant.team_id.as_str(), "T0TEST001");
    assert!(grant.access_token.expose().starts_with("xoxe.xoxb-"));
    assert_eq!(grant.expires_in, Some(43_200));
    let refresh = grant.refresh_token.unwrap();
    // The granted token works.
    api.auth_test(&grant.access_token).await.unwrap();

    // A code works once.
    let err = api
        .oauth_access("111.222", &secret, &grant_for(&code))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SlackError::InvalidAuth { code } if code == "invalid_code"),
        "{err:?}"
    );

    // A refresh token works once too.
    let again = OAuthGrantRequest::Refresh {
        refresh_token: refresh.clone(),
    };
    let renewed = api.oauth_access("111.222", &secret, &again).await.unwrap();
    assert_ne!(
        renewed.refresh_token.unwrap().expose_secret(),
        refresh.expose_secret()
    );
    let err = api
        .oauth_access("111.222", &secret, &again)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SlackError::InvalidAuth { code } if code == "invalid_refresh_token"),
        "{err:?}"
    );
    assert_eq!(double.state().refreshes(), 1);

    let wrong = SecretString::from("not-the-secret".to_owned());
    let err = api
        .oauth_access("111.222", &wrong, &again)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SlackError::InvalidAuth { code } if code == "bad_client_secret"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_post_left_unanswered_is_outcome_unknown_and_not_repeated() {
    let (double, _, token) = setup(0).await;
    let api = HttpSlackApi::new(SlackSettings {
        api_base_url: double.api_base_url(),
        request_timeout: Duration::from_millis(200),
        deadline: Duration::from_secs(5),
        initial_backoff: Duration::from_millis(10),
        ..SlackSettings::default()
    })
    .unwrap();
    double
        .state()
        .inject("chat.postMessage", Fault::AnswerLate { millis: 1_000 }, 1);
    let err = api
        .post_message(
            &token,
            &OutgoingMessage {
                channel: ChannelId::new("C0ALERTS01"),
                text: "landed, answer lost".into(),
                thread_ts: None,
                reply_broadcast: false,
                blocks_json: None,
                unfurl_links: None,
                unfurl_media: None,
                metadata: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SlackError::OutcomeUnknown(_)), "{err:?}");
    assert_eq!(double.state().calls("chat.postMessage"), 1, "never retried");
    assert_eq!(double.state().posted().len(), 1, "Slack did act on it");
    // A read that times out is still retried and, when it keeps failing, unavailable.
    double
        .state()
        .inject("auth.test", Fault::AnswerLate { millis: 1_000 }, 2);
    api.auth_test(&token).await.unwrap();
    assert_eq!(double.state().calls("auth.test"), 3);
}

#[tokio::test]
async fn a_post_answered_2xx_but_unreadable_is_outcome_unknown() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // A "Slack" that accepts the post and answers 200 with a body that is not JSON.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let body = "<html>proxy</html>";
            let _ = s
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
        }
    });
    let api = HttpSlackApi::new(SlackSettings {
        api_base_url: format!("http://{addr}/api/"),
        ..SlackSettings::default()
    })
    .unwrap();
    let token = BotToken::parse("t", TOKEN).unwrap();
    let err = api
        .post_message(
            &token,
            &OutgoingMessage {
                channel: ChannelId::new("C0ALERTS01"),
                text: "maybe".into(),
                thread_ts: None,
                reply_broadcast: false,
                blocks_json: None,
                unfurl_links: None,
                unfurl_media: None,
                metadata: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SlackError::OutcomeUnknown(_)), "{err:?}");
    let err = api.auth_test(&token).await.unwrap_err();
    assert!(matches!(err, SlackError::Unknown(_)), "{err:?}");
}

fn marked(channel: &str, text: &str, id: &str, thread_ts: Option<String>) -> OutgoingMessage {
    OutgoingMessage {
        channel: ChannelId::new(channel),
        text: text.into(),
        thread_ts,
        reply_broadcast: false,
        blocks_json: None,
        unfurl_links: None,
        unfurl_media: None,
        metadata: Some(PostMetadata {
            event_type: "slack_connector_message".into(),
            payload: vec![("message_id".into(), id.into())],
        }),
    }
}

fn lookup(
    channel: &str,
    id: &str,
    thread_ts: Option<String>,
    since: chrono::DateTime<chrono::Utc>,
) -> PostLookup {
    PostLookup {
        channel: ChannelId::new(channel),
        thread_ts,
        oldest: since,
        event_type: "slack_connector_message".into(),
        key: "message_id".into(),
        value: id.into(),
    }
}

#[tokio::test]
async fn a_post_is_found_in_history_by_its_metadata_across_pages_and_in_threads() {
    let (double, api, token) = setup(0).await;
    let since = chrono::Utc::now() - chrono::Duration::seconds(5);
    let wanted = api
        .post_message(&token, &marked("C0ALERTS01", "the one", "m-wanted", None))
        .await
        .unwrap();
    // 450 later posts: the wanted one is on the third page of 200, newest first.
    for i in 0..450 {
        api.post_message(
            &token,
            &marked("C0ALERTS01", "noise", &format!("m-{i}"), None),
        )
        .await
        .unwrap();
    }
    let found = api
        .find_post(&token, &lookup("C0ALERTS01", "m-wanted", None, since))
        .await
        .unwrap();
    assert_eq!(found.map(|p| p.ts), Some(wanted.ts.clone()));
    assert_eq!(double.state().calls("conversations.history"), 3);

    // Searched to the end and absent.
    let absent = api
        .find_post(&token, &lookup("C0ALERTS01", "m-never", None, since))
        .await
        .unwrap();
    assert_eq!(absent, None);
    // Older than `oldest`: not searched.
    let later = chrono::Utc::now() + chrono::Duration::seconds(60);
    let none = api
        .find_post(&token, &lookup("C0ALERTS01", "m-wanted", None, later))
        .await
        .unwrap();
    assert_eq!(none, None);

    // A reply is looked for in its thread (conversations.replies), not in the channel.
    let reply = api
        .post_message(
            &token,
            &marked("C0ALERTS01", "reply", "m-reply", Some(wanted.ts.clone())),
        )
        .await
        .unwrap();
    assert_eq!(
        api.find_post(&token, &lookup("C0ALERTS01", "m-reply", None, since))
            .await
            .unwrap(),
        None,
        "a reply is not in the channel's history"
    );
    let in_thread = api
        .find_post(
            &token,
            &lookup("C0ALERTS01", "m-reply", Some(wanted.ts), since),
        )
        .await
        .unwrap();
    assert_eq!(in_thread.map(|p| p.ts), Some(reply.ts));
}

#[tokio::test]
async fn history_that_cannot_be_read_says_why() {
    let (double, api, token) = setup(0).await;
    let since = chrono::Utc::now();
    let outside = api
        .find_post(&token, &lookup("C0NOTMEMBR", "m-1", None, since))
        .await
        .unwrap_err();
    assert!(matches!(outside, SlackError::NotInChannel), "{outside:?}");
    double.state().inject(
        "conversations.history",
        Fault::SlackError {
            code: "missing_scope".into(),
        },
        1,
    );
    let scope = api
        .find_post(&token, &lookup("C0ALERTS01", "m-1", None, since))
        .await
        .unwrap_err();
    assert!(
        matches!(scope, SlackError::MissingScope { .. }),
        "{scope:?}"
    );
}
