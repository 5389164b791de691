//! Unit tests of sending: the token cache and its TTL, invalidation on rejected tokens,
//! deleted connectors, long text, files and partial delivery, against mocked ports.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connector_domain::{ConnectorState, FileAttachment};

use super::*;
use connector_ports::{
    ConnectorSecret, MockConnectors, MockSecretStore, MockSlackApi, PostedMessage,
    SecretStoreError, UploadedFile,
};

use crate::runtime::SystemClock;
use crate::testing::{MemorySends, connector, ports, tokio_sleep, tokio_spawn};

const TOKEN: &str = "xoxb-1111-2222-cachedtoken";
const NEW_TOKEN: &str = "xoxb-1111-2222-rotatedtoken";

fn secret(token: &str) -> ConnectorSecret {
    ConnectorSecret::new(BotToken::parse("t", token).unwrap())
}

/// A clock the test moves by hand.
#[derive(Default)]
struct ManualClock {
    start: Option<Instant>,
    offset_ms: AtomicU64,
}

impl ManualClock {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Some(Instant::now()),
            offset_ms: AtomicU64::new(0),
        })
    }
    fn advance(&self, d: Duration) {
        self.offset_ms
            .fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start.unwrap() + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
    fn utc(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

struct Rig {
    repo: MockConnectors,
    secrets: MockSecretStore,
    slack: MockSlackApi,
    row: Connector,
}

impl Rig {
    fn new() -> Self {
        let row = connector("acme", "prod", ConnectorState::Active);
        let mut repo = MockConnectors::default();
        let r = row.clone();
        repo.queries
            .expect_find_active()
            .returning(move |_| Ok(Some(r.clone())));
        let r = row.clone();
        repo.queries
            .expect_get_active()
            .returning(move |t, _| Ok((t.as_str() == "acme").then(|| r.clone())));
        Self {
            repo,
            secrets: MockSecretStore::new(),
            slack: MockSlackApi::new(),
            row,
        }
    }

    fn sender(self, clock: Arc<dyn Clock>) -> (MessageSender, ConnectorId) {
        let id = self.row.id;
        (
            sender(
                self.repo,
                self.secrets,
                self.slack,
                TokenCache::new(Duration::from_secs(300), clock),
            ),
            id,
        )
    }
}

/// A sender over mocks; the refresher has no Slack app, so it never refreshes.
pub(crate) fn sender(
    repo: MockConnectors,
    secrets: MockSecretStore,
    slack: MockSlackApi,
    tokens: TokenCache,
) -> MessageSender {
    sender_with_sends(
        repo,
        secrets,
        slack,
        tokens,
        Arc::new(MemorySends::default()),
    )
}

/// Like [`sender`], recording idempotent sends in `sends`.
fn sender_with_sends(
    repo: MockConnectors,
    secrets: MockSecretStore,
    slack: MockSlackApi,
    tokens: TokenCache,
    sends: Arc<MemorySends>,
) -> MessageSender {
    sender_sleeping(repo, secrets, slack, tokens, sends, tokio_sleep())
}

/// Like [`sender_with_sends`], waiting with `sleep`.
pub(crate) fn sender_sleeping(
    repo: MockConnectors,
    secrets: MockSecretStore,
    slack: MockSlackApi,
    tokens: TokenCache,
    sends: Arc<MemorySends>,
    sleep: crate::runtime::Sleep,
) -> MessageSender {
    let ports = ports(repo, secrets, slack);
    let refresher = crate::refresh::TokenRefresher::new(
        ports.clone(),
        None,
        crate::refresh::RefreshSettings::default(),
        sleep.clone(),
        tokio_spawn(),
    );
    MessageSender::new(ports, tokens, refresher, sends, sleep, tokio_spawn())
}

fn posted(ts: &str) -> PostedMessage {
    PostedMessage {
        channel: ChannelId::new("C0000ALERT"),
        ts: ts.into(),
    }
}

#[tokio::test]
async fn a_warm_cache_skips_the_secret_store_until_the_ttl_passes() {
    let mut rig = Rig::new();
    rig.secrets
        .expect_get()
        .times(2)
        .returning(|_| Ok(secret(TOKEN)));
    rig.slack
        .expect_post_message()
        .withf(|t, m| t.expose() == TOKEN && m.channel.as_str() == "C0000ALERT")
        .times(3)
        .returning(|_, _| Ok(posted("1.1")));
    let clock = ManualClock::new();
    let (sender, id) = rig.sender(clock.clone());
    sender.send(None, id, &Message::from("a")).await.unwrap();
    sender.send(None, id, &Message::from("b")).await.unwrap();
    clock.advance(Duration::from_secs(301));
    sender.send(None, id, &Message::from("c")).await.unwrap();
}

#[tokio::test]
async fn a_deleted_connector_never_sends_even_with_a_cached_token() {
    let row = connector("acme", "prod", ConnectorState::Active);
    let id = row.id;
    let mut repo = MockConnectors::default();
    let mut calls = 0;
    repo.queries.expect_find_active().returning(move |_| {
        calls += 1;
        Ok((calls == 1).then(|| row.clone()))
    });
    let mut secrets = MockSecretStore::new();
    secrets
        .expect_get()
        .times(1)
        .returning(|_| Ok(secret(TOKEN)));
    let mut slack = MockSlackApi::new();
    slack
        .expect_post_message()
        .times(1)
        .returning(|_, _| Ok(posted("1.1")));
    let sender = sender(
        repo,
        secrets,
        slack,
        TokenCache::new(Duration::from_secs(300), Arc::new(SystemClock)),
    );
    sender.send(None, id, &Message::from("a")).await.unwrap();
    assert_eq!(sender.token_cache().len(), 1);
    let err = sender
        .send(None, id, &Message::from("b"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SendError::ConnectorNotFound { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn tenant_scoping_hides_other_tenants_connectors_before_they_take_a_slot() {
    let mut rig = Rig::new();
    rig.slack.expect_post_message().never();
    let (sender, id) = rig.sender(Arc::new(SystemClock));
    let sender = sender.with_limits(SendLimits::default(), 1);
    // The owner's one slot is busy: a stranger still hears "not found", never "busy", and
    // takes nothing.
    let held = sender.in_flight.take(id).unwrap();
    let other = TenantId::parse("t", "globex").unwrap();
    let err = sender
        .send(Some(&other), id, &Message::from("a"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SendError::ConnectorNotFound { .. }),
        "{err:?}"
    );
    drop(held);
    assert!(
        sender.in_flight.take(id).is_some(),
        "the slot is free again"
    );
}

#[tokio::test]
async fn a_rejected_cached_token_is_replaced_by_the_stored_one_and_retried_once() {
    let mut rig = Rig::new();
    let mut stored = vec![secret(NEW_TOKEN), secret(TOKEN)];
    rig.secrets
        .expect_get()
        .times(2)
        .returning(move |_| Ok(stored.pop().unwrap()));
    rig.slack
        .expect_post_message()
        .withf(|t, _| t.expose() == TOKEN)
        .times(2)
        .returning({
            let mut n = 0;
            move |_, _| {
                n += 1;
                if n == 1 {
                    Ok(posted("1.1"))
                } else {
                    Err(SlackError::InvalidAuth {
                        code: "token_expired".into(),
                    })
                }
            }
        });
    rig.slack
        .expect_post_message()
        .withf(|t, _| t.expose() == NEW_TOKEN)
        .times(1)
        .returning(|_, _| Ok(posted("1.2")));
    let (sender, id) = rig.sender(Arc::new(SystemClock));
    sender
        .send(None, id, &Message::from("warm up"))
        .await
        .unwrap();
    let sent = sender.send(None, id, &Message::from("b")).await.unwrap();
    assert_eq!(sent.ts, "1.2");
    assert_eq!(
        sender.token_cache().get(id).unwrap().expose(),
        NEW_TOKEN,
        "the fresh token is cached"
    );
}

#[tokio::test]
async fn a_revoked_token_is_dropped_from_the_cache_and_reported() {
    let mut rig = Rig::new();
    rig.secrets
        .expect_get()
        .times(2)
        .returning(|_| Ok(secret(TOKEN)));
    rig.slack.expect_post_message().returning({
        let mut n = 0;
        move |_, _| {
            n += 1;
            if n == 1 {
                Ok(posted("1.1"))
            } else {
                Err(SlackError::InvalidAuth {
                    code: "token_revoked".into(),
                })
            }
        }
    });
    let (sender, id) = rig.sender(Arc::new(SystemClock));
    sender
        .send(None, id, &Message::from("warm up"))
        .await
        .unwrap();
    let err = sender
        .send(None, id, &Message::from("b"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SendError::TokenRevoked { code } if code == "token_revoked"),
        "{err:?}"
    );
    assert!(sender.token_cache().get(id).is_none());
}

#[tokio::test]
async fn a_missing_secret_is_reported_as_such() {
    let mut rig = Rig::new();
    rig.secrets
        .expect_get()
        .returning(|_| Err(SecretStoreError::NotFound));
    rig.slack.expect_post_message().never();
    let (sender, id) = rig.sender(Arc::new(SystemClock));
    let err = sender
        .send(None, id, &Message::from("a"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::SecretMissing { .. }), "{err:?}");
}

#[tokio::test]
async fn invalid_messages_touch_nothing() {
    let mut rig = Rig::new();
    rig.secrets.expect_get().never();
    rig.slack.expect_post_message().never();
    let (sender, id) = rig.sender(Arc::new(SystemClock));
    let err = sender.send(None, id, &Message::from("")).await.unwrap_err();
    assert!(
        matches!(&err, SendError::Invalid(v) if v.field == "text"),
        "{err:?}"
    );
}

#[tokio::test]
async fn long_text_continues_in_the_thread_of_the_first_part() {
    let mut rig = Rig::new();
    rig.secrets.expect_get().returning(|_| Ok(secret(TOKEN)));
    let mut seq = mockall::Sequence::new();
    rig.slack
        .expect_post_message()
        .withf(|_, m| m.thread_ts.is_none() && m.text.chars().count() == MAX_TEXT_CHARS)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(posted("100.1")));
    rig.slack
        .expect_post_message()
        .withf(|_, m| m.thread_ts.as_deref() == Some("100.1"))
        .times(2)
        .in_sequence(&mut seq)
        .returning({
            let mut n = 1;
            move |_, _| {
                n += 1;
                Ok(posted(&format!("100.{n}")))
            }
        });
    let (sender, id) = rig.sender(Arc::new(SystemClock));
    let text = "x".repeat(MAX_TEXT_CHARS * 2 + 5);
    let sent = sender.send(None, id, &Message::from(text)).await.unwrap();
    assert_eq!(sent.ts, "100.1");
    assert_eq!(sent.continuation_ts, vec!["100.2", "100.3"]);
}

#[tokio::test]
async fn files_follow_the_message_and_a_failed_upload_reports_what_landed() {
    let mut rig = Rig::new();
    rig.secrets.expect_get().returning(|_| Ok(secret(TOKEN)));
    rig.slack
        .expect_post_message()
        .returning(|_, _| Ok(posted("5.5")));
    rig.slack
        .expect_upload_file()
        .withf(|_, ch, thread, f| {
            ch.as_str() == "C0000ALERT" && thread.is_none() && f.filename == "a.txt"
        })
        .times(1)
        .returning(|_, _, _, _| Ok(UploadedFile { id: "F1".into() }));
    rig.slack
        .expect_upload_file()
        .withf(|_, _, _, f| f.filename == "b.txt")
        .times(1)
        .returning(|_, _, _, _| Err(SlackError::Unavailable("reset".into())));
    let (sender, id) = rig.sender(Arc::new(SystemClock));
    let file = |name: &str| FileAttachment {
        filename: name.into(),
        title: None,
        content: b"data".to_vec(),
    };
    let err = sender
        .send(
            None,
            id,
            &Message::from("report")
                .with_file(file("a.txt"))
                .with_file(file("b.txt")),
        )
        .await
        .unwrap_err();
    match err {
        SendError::PartiallySent { sent, error } => {
            assert_eq!(sent.ts, "5.5");
            assert_eq!(sent.file_ids, vec!["F1"]);
            assert!(matches!(*error, SendError::Unavailable { .. }));
        }
        other => panic!("expected PartiallySent, got {other:?}"),
    }
}

#[tokio::test]
async fn slack_errors_become_actionable_variants() {
    type IsExpected = fn(&SendError) -> bool;
    let cases: Vec<(SlackError, IsExpected)> = vec![
        (SlackError::NotInChannel, |e| {
            matches!(e, SendError::NotInChannel { .. })
        }),
        (SlackError::IsArchived, |e| {
            matches!(e, SendError::ChannelArchived { .. })
        }),
        (SlackError::ChannelNotFound, |e| {
            matches!(e, SendError::ChannelNotFound { .. })
        }),
        (SlackError::RateLimited { retry_after: None }, |e| {
            matches!(e, SendError::RateLimited { .. })
        }),
        (
            SlackError::Api {
                code: "invalid_blocks".into(),
            },
            |e| matches!(e, SendError::Slack { .. }),
        ),
    ];
    for (slack_err, check) in cases {
        let mut rig = Rig::new();
        rig.secrets.expect_get().returning(|_| Ok(secret(TOKEN)));
        let mut once = Some(slack_err);
        rig.slack
            .expect_post_message()
            .returning(move |_, _| Err(once.take().unwrap()));
        let (sender, id) = rig.sender(Arc::new(SystemClock));
        let err = sender
            .send(None, id, &Message::from("a"))
            .await
            .unwrap_err();
        assert!(check(&err), "{err:?}");
    }
}

#[test]
fn the_cache_is_bounded_and_can_be_turned_off() {
    let clock = ManualClock::new();
    let cache = TokenCache::new(Duration::from_secs(1), clock.clone());
    for _ in 0..TokenCache::MAX_ENTRIES {
        cache.insert(ConnectorId::new_v7(), BotToken::parse("t", TOKEN).unwrap());
    }
    assert_eq!(cache.len(), TokenCache::MAX_ENTRIES);
    clock.advance(Duration::from_secs(2));
    cache.insert(ConnectorId::new_v7(), BotToken::parse("t", TOKEN).unwrap());
    assert_eq!(cache.len(), 1, "expired entries were swept");

    let off = TokenCache::new(Duration::ZERO, clock);
    let id = ConnectorId::new_v7();
    off.insert(id, BotToken::parse("t", TOKEN).unwrap());
    assert!(off.get(id).is_none());
}

#[test]
fn each_connector_has_a_bounded_number_of_sends_in_flight() {
    let in_flight = InFlight {
        limit: 2,
        counts: Mutex::new(HashMap::new()),
    };
    let a = ConnectorId::new_v7();
    let b = ConnectorId::new_v7();
    let first = in_flight.take(a).unwrap();
    let _second = in_flight.take(a).unwrap();
    assert!(
        in_flight.take(a).is_none(),
        "a third send of the same connector"
    );
    assert!(
        in_flight.take(b).is_some(),
        "another connector is not affected"
    );
    drop(first);
    assert!(
        in_flight.take(a).is_some(),
        "a finished send gives its place back"
    );
}

#[tokio::test]
async fn text_beyond_the_configured_parts_is_refused_before_slack_is_called() {
    let rig = Rig::new();
    // No Slack expectation: a call would fail the test.
    let sender = sender(
        rig.repo,
        rig.secrets,
        MockSlackApi::new(),
        TokenCache::new(Duration::from_secs(60), Arc::new(SystemClock)),
    )
    .with_limits(
        SendLimits {
            max_text_parts: 1,
            max_blocks_bytes: 1024,
        },
        4,
    );
    let err = sender
        .send(
            None,
            rig.row.id,
            &Message::from("x".repeat(MAX_TEXT_CHARS + 1)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SendError::Invalid(v) if v.field == "text"),
        "{err:?}"
    );
}

mod idempotent {
    //! Sends with a `request_id`: posted once, repeats answered from the record.

    use super::*;
    use connector_domain::RequestId;
    use connector_ports::{SendKey, SendOutcome};

    fn keyed(text: &str, key: &str) -> Message {
        Message::from(text).with_request_id(RequestId::parse("request_id", key).unwrap())
    }

    fn rig_posting(times: usize, results: Vec<Result<PostedMessage, SlackError>>) -> Rig {
        let mut rig = Rig::new();
        rig.secrets.expect_get().returning(|_| Ok(secret(TOKEN)));
        let mut results = results.into_iter();
        rig.slack
            .expect_post_message()
            .times(times)
            .returning(move |_, _| results.next().unwrap());
        rig
    }

    fn build(rig: Rig, sends: Arc<MemorySends>) -> (MessageSender, ConnectorId) {
        let id = rig.row.id;
        (
            sender_with_sends(
                rig.repo,
                rig.secrets,
                rig.slack,
                TokenCache::new(Duration::from_secs(300), Arc::new(SystemClock)),
                sends,
            ),
            id,
        )
    }

    fn key_of(id: ConnectorId, key: &str) -> SendKey {
        SendKey {
            tenant_id: TenantId::parse("tenant_id", "acme").unwrap(),
            connector_id: id,
            request_id: RequestId::parse("request_id", key).unwrap(),
        }
    }

    #[tokio::test]
    async fn a_repeated_key_returns_the_first_result_without_posting_again() {
        let rig = rig_posting(2, vec![Ok(posted("1.1")), Ok(posted("2.2"))]);
        let (sender, id) = build(rig, Arc::default());
        let first = sender.send(None, id, &keyed("deploy", "k1")).await.unwrap();
        let again = sender.send(None, id, &keyed("deploy", "k1")).await.unwrap();
        assert_eq!((first.ts.as_str(), again.ts.as_str()), ("1.1", "1.1"));
        assert_eq!(again.channel, first.channel);
        // Another key, or no key, posts.
        let other = sender.send(None, id, &keyed("deploy", "k2")).await.unwrap();
        assert_eq!(other.ts, "2.2");
    }

    #[tokio::test]
    async fn a_keyed_send_runs_on_a_task_of_its_own_and_a_plain_one_in_the_callers_future() {
        // The test's body is not a task: inside a spawned one, tokio names the task.
        assert!(tokio::task::try_id().is_none());
        let mut rig = Rig::new();
        rig.secrets.expect_get().returning(|_| Ok(secret(TOKEN)));
        let on_a_task = Arc::new(Mutex::new(Vec::new()));
        let seen = on_a_task.clone();
        rig.slack
            .expect_post_message()
            .times(2)
            .returning(move |_, _| {
                seen.lock().unwrap().push(tokio::task::try_id().is_some());
                Ok(posted("1.1"))
            });
        let (sender, id) = build(rig, Arc::default());
        sender.send(None, id, &keyed("deploy", "k1")).await.unwrap();
        sender
            .send(None, id, &Message::from("deploy"))
            .await
            .unwrap();
        assert_eq!(*on_a_task.lock().unwrap(), vec![true, false]);
    }

    #[tokio::test]
    async fn a_key_reused_for_another_message_is_refused_naming_the_field() {
        let rig = rig_posting(1, vec![Ok(posted("1.1"))]);
        let (sender, id) = build(rig, Arc::default());
        sender.send(None, id, &keyed("deploy", "k1")).await.unwrap();
        let err = sender
            .send(None, id, &keyed("something else", "k1"))
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::RequestIdReused { .. }), "{err:?}");
        assert!(err.to_string().starts_with("request_id:"), "{err}");
    }

    /// Posts once with a lost answer (`OutcomeUnknown`), then as `then` says; the message IDs
    /// the posts carried in their metadata are kept in the returned list.
    fn rig_losing_the_first_answer(
        then: Vec<Result<PostedMessage, SlackError>>,
    ) -> (Rig, Arc<Mutex<Vec<String>>>) {
        let mut rig = Rig::new();
        rig.secrets.expect_get().returning(|_| Ok(secret(TOKEN)));
        let marks = Arc::new(Mutex::new(Vec::new()));
        let seen = marks.clone();
        let mut results = std::iter::once(Err(SlackError::OutcomeUnknown(
            "chat.postMessage: timed out".into(),
        )))
        .chain(then);
        rig.slack.expect_post_message().returning(move |_, m| {
            let meta = m.metadata.as_ref().expect("a keyed post carries its ID");
            assert_eq!(meta.event_type, "slack_connector_message");
            assert_eq!(meta.payload[0].0, "message_id");
            seen.lock().unwrap().push(meta.payload[0].1.clone());
            results.next().expect("posted more often than expected")
        });
        (rig, marks)
    }

    /// Moves the record of `key` back by `by`, as if its answer had been lost that long ago.
    fn age(sends: &MemorySends, id: ConnectorId, key: &str, by: chrono::Duration) {
        let mut records = sends.records.lock().unwrap();
        let r = records.get_mut(&(id, key.to_owned())).unwrap();
        r.created_at -= by;
        r.updated_at -= by;
    }

    #[tokio::test]
    async fn a_lost_answer_is_unavailable_and_its_repeat_waits_for_the_history_to_tell() {
        let (rig, marks) = rig_losing_the_first_answer(vec![]);
        let sends = Arc::new(MemorySends::default());
        let (sender, id) = build(rig, sends.clone());
        let err = sender.send(None, id, &keyed("x", "k1")).await.unwrap_err();
        assert!(matches!(err, SendError::OutcomeUnknown { .. }), "{err:?}");
        assert!(err.to_string().contains("may have been posted"), "{err}");
        // At once: a request still on its way may land yet. Not posted again.
        let err = sender.send(None, id, &keyed("x", "k1")).await.unwrap_err();
        match err {
            SendError::EarlierOutcomeUnsettled { retry_after, .. } => {
                assert!(
                    retry_after > Duration::ZERO && retry_after <= Duration::from_secs(10),
                    "{retry_after:?}"
                );
            }
            other => panic!("expected EarlierOutcomeUnsettled, got {other:?}"),
        }
        let record = sends.find_send(&key_of(id, "k1")).await.unwrap().unwrap();
        assert_eq!(record.outcome, SendOutcome::Unknown);
        assert_eq!(
            record.message_id.map(|m| m.to_string()),
            marks.lock().unwrap().first().cloned(),
            "the record keeps the ID the post carried"
        );
        assert_eq!(marks.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_repeat_after_a_lost_answer_answers_the_message_the_history_shows() {
        let (mut rig, marks) = rig_losing_the_first_answer(vec![]);
        let looked_for = Arc::new(Mutex::new(None));
        let seen = looked_for.clone();
        rig.slack
            .expect_find_post()
            .times(1)
            .returning(move |_, l| {
                *seen.lock().unwrap() = Some(l.value.clone());
                Ok(Some(posted("7.7")))
            });
        let sends = Arc::new(MemorySends::default());
        let (sender, id) = build(rig, sends.clone());
        sender.send(None, id, &keyed("x", "k1")).await.unwrap_err();
        age(&sends, id, "k1", chrono::Duration::seconds(11));
        let sent = sender.send(None, id, &keyed("x", "k1")).await.unwrap();
        assert_eq!(sent.ts, "7.7");
        assert_eq!(
            *looked_for.lock().unwrap(),
            marks.lock().unwrap().first().cloned()
        );
        let record = sends.find_send(&key_of(id, "k1")).await.unwrap().unwrap();
        assert!(
            matches!(&record.outcome, SendOutcome::Sent { ts, .. } if ts == "7.7"),
            "{record:?}"
        );
        // Settled: the next repeat answers from the record, without Slack.
        let again = sender.send(None, id, &keyed("x", "k1")).await.unwrap();
        assert_eq!(again.ts, "7.7");
        assert_eq!(marks.lock().unwrap().len(), 1, "never posted again");
    }

    #[tokio::test]
    async fn a_repeat_after_a_lost_answer_posts_it_once_when_the_history_shows_it_absent() {
        let (mut rig, marks) = rig_losing_the_first_answer(vec![Ok(posted("8.8"))]);
        rig.slack
            .expect_find_post()
            .times(1)
            .returning(|_, _| Ok(None));
        let sends = Arc::new(MemorySends::default());
        let (sender, id) = build(rig, sends.clone());
        sender.send(None, id, &keyed("x", "k1")).await.unwrap_err();
        age(&sends, id, "k1", chrono::Duration::seconds(11));
        let sent = sender.send(None, id, &keyed("x", "k1")).await.unwrap();
        assert_eq!(sent.ts, "8.8");
        let again = sender.send(None, id, &keyed("x", "k1")).await.unwrap();
        assert_eq!(again.ts, "8.8");
        let marks = marks.lock().unwrap();
        assert_eq!(marks.len(), 2, "posted again once");
        assert_eq!(marks[0], marks[1], "as the same message");
    }

    #[tokio::test]
    async fn a_lost_answer_stays_unknown_when_the_history_cannot_be_read() {
        let (mut rig, marks) = rig_losing_the_first_answer(vec![]);
        rig.slack.expect_find_post().times(1).returning(|_, _| {
            Err(SlackError::MissingScope {
                needed: "channels:history".into(),
            })
        });
        let sends = Arc::new(MemorySends::default());
        let (sender, id) = build(rig, sends.clone());
        sender.send(None, id, &keyed("x", "k1")).await.unwrap_err();
        age(&sends, id, "k1", chrono::Duration::seconds(11));
        let err = sender.send(None, id, &keyed("x", "k1")).await.unwrap_err();
        assert!(
            matches!(err, SendError::EarlierOutcomeUnknown { .. }),
            "{err:?}"
        );
        assert_eq!(marks.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_outcome_is_recorded_through_a_database_restart() {
        let rig = rig_posting(2, vec![Ok(posted("1.1")), Err(SlackError::NotInChannel)]);
        let sends = Arc::new(MemorySends::default());
        sends
            .failing_writes
            .store(3, std::sync::atomic::Ordering::SeqCst);
        let (sender, id) = build(rig, sends.clone());
        sender.send(None, id, &keyed("x", "k1")).await.unwrap();
        let record = sends.find_send(&key_of(id, "k1")).await.unwrap().unwrap();
        assert!(
            matches!(record.outcome, SendOutcome::Sent { .. }),
            "{record:?}"
        );
        // A release goes through the same way.
        sends
            .failing_writes
            .store(2, std::sync::atomic::Ordering::SeqCst);
        sender.send(None, id, &keyed("y", "k2")).await.unwrap_err();
        assert!(sends.find_send(&key_of(id, "k2")).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_send_that_certainly_posted_nothing_can_be_retried() {
        let rig = rig_posting(2, vec![Err(SlackError::NotInChannel), Ok(posted("3.3"))]);
        let sends = Arc::new(MemorySends::default());
        let (sender, id) = build(rig, sends.clone());
        let err = sender.send(None, id, &keyed("x", "k1")).await.unwrap_err();
        assert!(matches!(err, SendError::NotInChannel { .. }), "{err:?}");
        assert!(sends.find_send(&key_of(id, "k1")).await.unwrap().is_none());
        let sent = sender.send(None, id, &keyed("x", "k1")).await.unwrap();
        assert_eq!(sent.ts, "3.3");
    }

    #[tokio::test]
    async fn a_repeat_waits_for_the_first_send_in_flight_and_gets_its_result() {
        let rig = rig_posting(0, vec![]);
        let sends = Arc::new(MemorySends::default());
        let (sender, id) = build(rig, sends.clone());
        let key = key_of(id, "k1");
        let now = chrono::Utc::now();
        let fp = fingerprint(&keyed("x", "k1"));
        assert!(
            sends
                .claim_send(&key, &fp, None, now, now - chrono::Duration::days(1))
                .await
                .unwrap()
                .is_none()
        );
        let finisher = {
            let sends = sends.clone();
            let key = key.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                sends
                    .finish_send(
                        &key,
                        &SendOutcome::Sent {
                            channel: ChannelId::new("C0000ALERT"),
                            ts: "9.9".into(),
                        },
                    )
                    .await
                    .unwrap();
            })
        };
        let sent = sender.send(None, id, &keyed("x", "k1")).await.unwrap();
        assert_eq!(sent.ts, "9.9");
        finisher.await.unwrap();
    }

    #[tokio::test]
    async fn an_abandoned_claim_and_a_partial_send_are_refused_not_reposted() {
        let rig = rig_posting(0, vec![]);
        let sends = Arc::new(MemorySends::default());
        let (sender, id) = build(rig, sends.clone());
        let fp = fingerprint(&keyed("x", "old"));
        let long_ago = chrono::Utc::now() - chrono::Duration::minutes(10);
        sends
            .claim_send(
                &key_of(id, "old"),
                &fp,
                None,
                long_ago,
                long_ago - chrono::Duration::days(1),
            )
            .await
            .unwrap();
        let err = sender.send(None, id, &keyed("x", "old")).await.unwrap_err();
        assert!(
            matches!(err, SendError::EarlierOutcomeUnknown { .. }),
            "{err:?}"
        );

        let fp = fingerprint(&keyed("x", "part"));
        let now = chrono::Utc::now();
        let key = key_of(id, "part");
        sends
            .claim_send(&key, &fp, None, now, now - chrono::Duration::days(1))
            .await
            .unwrap();
        sends
            .finish_send(
                &key,
                &SendOutcome::PartiallySent {
                    channel: ChannelId::new("C0000ALERT"),
                    ts: "4.4".into(),
                },
            )
            .await
            .unwrap();
        let err = sender
            .send(None, id, &keyed("x", "part"))
            .await
            .unwrap_err();
        match err {
            SendError::EarlierPartiallySent { ts, .. } => assert_eq!(ts, "4.4"),
            other => panic!("expected EarlierPartiallySent, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn keys_expire_after_the_window_and_are_purged() {
        let rig = rig_posting(1, vec![Ok(posted("5.5"))]);
        let sends = Arc::new(MemorySends::default());
        let (sender, id) = build(rig, sends.clone());
        let fp = fingerprint(&keyed("x", "k1"));
        let old = chrono::Utc::now() - chrono::Duration::hours(25);
        sends
            .claim_send(
                &key_of(id, "k1"),
                &fp,
                None,
                old,
                old - chrono::Duration::days(1),
            )
            .await
            .unwrap();
        sends
            .finish_send(
                &key_of(id, "k1"),
                &SendOutcome::Sent {
                    channel: ChannelId::new("C0000ALERT"),
                    ts: "1.0".into(),
                },
            )
            .await
            .unwrap();
        // A day later the key is free again.
        let sent = sender.send(None, id, &keyed("x", "k1")).await.unwrap();
        assert_eq!(sent.ts, "5.5");
        sends
            .claim_send(
                &key_of(id, "k2"),
                &fp,
                None,
                old,
                old - chrono::Duration::days(1),
            )
            .await
            .unwrap();
        assert_eq!(sender.purge_expired().await.unwrap(), 1);
    }

    #[test]
    fn the_fingerprint_covers_every_part_of_the_message_but_not_its_key() {
        let base = keyed("x", "k1");
        let same = keyed("x", "k2");
        assert_eq!(fingerprint(&base), fingerprint(&same));
        for other in [
            keyed("y", "k1"),
            keyed("x", "k1").in_thread("1.1"),
            keyed("x", "k1").with_blocks("[]"),
            keyed("x", "k1").with_file(FileAttachment {
                filename: "a".into(),
                title: None,
                content: b"1".to_vec(),
            }),
        ] {
            assert_ne!(fingerprint(&base), fingerprint(&other));
        }
    }
}

mod queued {
    use connector_domain::{Delivery, MessageStatus};
    use connector_ports::{Enqueued, MockOutbox, NewOutboundMessage, OutboundRecord};

    use super::*;
    use crate::send::queued::DeliverySettings;

    /// What the outbox stores for `m`, as it answers an enqueue.
    fn stored(m: &NewOutboundMessage) -> OutboundRecord {
        OutboundRecord {
            id: m.id,
            tenant_id: m.tenant_id.clone(),
            connector_id: m.connector_id,
            team_id: m.team_id.clone(),
            channel_id: m.channel_id.clone(),
            request_id: m.request_id.clone(),
            delivery: Delivery::Queued,
            fingerprint: m.fingerprint.clone(),
            body_json: m.body_json.clone(),
            status: MessageStatus::Queued,
            attempts: 0,
            last_error: None,
            ts: None,
            created_at: chrono::Utc::now(),
            next_attempt_at: m.not_before,
            deadline: m.deadline,
            finished_at: None,
            attempted_at: None,
            unconfirmed_since: None,
        }
    }

    #[tokio::test]
    async fn only_a_message_due_now_wakes_the_delivery_worker() {
        let mut outbox = MockOutbox::new();
        outbox
            .expect_enqueue()
            .times(2)
            .returning(|m| Ok(Enqueued::New(stored(m))));
        let (sender, id) = Rig::new().sender(Arc::new(SystemClock));
        let sender = sender.with_outbox(Arc::new(outbox), DeliverySettings::default());
        let bell = sender.queue.as_ref().unwrap().bell.clone();

        let later = chrono::Utc::now() + chrono::Duration::minutes(5);
        sender
            .enqueue(None, id, &Message::from("later").post_at(later))
            .await
            .unwrap();
        // Scheduled: the worker's poll finds it when it is due; a claim now would find nothing.
        assert_eq!(bell.times(), 0);

        sender
            .enqueue(None, id, &Message::from("now"))
            .await
            .unwrap();
        assert_eq!(bell.times(), 1);
    }
}
