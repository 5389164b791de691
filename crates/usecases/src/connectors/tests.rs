//! Unit tests of the use cases against mocked ports: every failing step of create and delete,
//! idempotency, validation and pagination.

use std::sync::Arc;

use connector_domain::{ChannelId, ChannelName, ConnectorState, PageToken, WorkspaceId};
use mockall::predicate::eq;

use super::*;
use connector_ports::{
    AuthIdentity, ChannelPage, MockConnectors, MockSecretStore, MockSlackApi, SecretStoreError,
    SlackError,
};

use crate::testing::connector;

const TOKEN: &str = "xoxb-1111-2222-abcdefgh";

fn cmd(name: &str, channel: &str, request_id: &str) -> CreateConnector {
    CreateConnector::parse("acme", name, TOKEN, channel, request_id).unwrap()
}

fn channel(id: &str, name: &str) -> ChannelInfo {
    ChannelInfo {
        id: ChannelId::new(id),
        name: ChannelName::new(name),
        is_archived: false,
        is_member: true,
        is_private: false,
    }
}

fn identity() -> AuthIdentity {
    AuthIdentity {
        team_id: WorkspaceId::new("T0001"),
        team_name: "Acme".into(),
        user_id: "U0BOT".into(),
        bot_id: Some("B0BOT".into()),
        app_id: Some("A0APP".into()),
    }
}

struct Mocks {
    repo: MockConnectors,
    secrets: MockSecretStore,
    slack: MockSlackApi,
}

impl Mocks {
    fn new() -> Self {
        Self {
            repo: MockConnectors::default(),
            secrets: MockSecretStore::new(),
            slack: MockSlackApi::new(),
        }
    }

    /// Slack accepts the token and `#alerts` is on the first page.
    fn slack_ok(mut self) -> Self {
        self.slack.expect_auth_test().returning(|_| Ok(identity()));
        self.slack.expect_list_channels().returning(|_, _| {
            Ok(ChannelPage {
                channels: vec![channel("C0000ALERT", "alerts")],
                next_cursor: None,
            })
        });
        self
    }

    /// The row insert echoes a `creating` connector.
    fn insert_ok(mut self) -> Self {
        self.repo
            .lifecycle
            .expect_insert_creating()
            .returning(|new| {
                Ok(Connector {
                    id: new.id,
                    tenant_id: new.tenant_id.clone(),
                    name: new.name.clone(),
                    workspace_id: new.workspace_id.clone(),
                    default_channel_id: new.default_channel_id.clone(),
                    default_channel_name: new.default_channel_name.clone(),
                    state: ConnectorState::Creating,
                    auth_status: connector_domain::AuthStatus::Ok,
                    created_at: chrono::Utc::now(),
                    updated_at: chrono::Utc::now(),
                    generation: 1,
                    default_channel_available: true,
                    last_update_request_id: None,
                    bot: new.bot.clone(),
                })
            });
        self
    }

    fn service(self) -> ConnectorService {
        ConnectorService::new(crate::testing::ports(self.repo, self.secrets, self.slack))
    }
}

fn activate_echo(repo: &mut MockConnectors) {
    repo.lifecycle.expect_mark_active().returning(|id| {
        let mut c = connector("acme", "prod", ConnectorState::Active);
        c.id = id;
        Ok(Some(c))
    });
}

// ------------------------------------------------------------------ create: the happy paths

#[tokio::test]
async fn create_resolves_a_name_across_pages_then_writes_row_secret_and_activates() {
    let mut m = Mocks::new();
    let mut seq = mockall::Sequence::new();
    m.slack
        .expect_auth_test()
        .withf(|t| t.expose() == TOKEN)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(identity()));
    m.slack
        .expect_list_channels()
        .with(mockall::predicate::always(), eq(None))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| {
            Ok(ChannelPage {
                channels: vec![channel("C0000GENRL", "general")],
                next_cursor: Some("page2".into()),
            })
        });
    m.slack
        .expect_list_channels()
        .with(mockall::predicate::always(), eq(Some("page2".to_string())))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| {
            Ok(ChannelPage {
                channels: vec![channel("C0000ALERT", "alerts")],
                next_cursor: Some("page3".into()),
            })
        });
    m.repo
        .lifecycle
        .expect_insert_creating()
        .withf(|n| {
            n.default_channel_id.as_str() == "C0000ALERT"
                && n.workspace_id.as_str() == "T0001"
                && n.name.as_str() == "prod"
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|new| {
            let mut c = connector("acme", "prod", ConnectorState::Creating);
            c.id = new.id;
            Ok(c)
        });
    m.secrets
        .expect_put()
        .withf(|name, secret, labels| {
            name.as_str() == format!("sc/acme/{}", labels.connector_id)
                && secret.bot_token.expose() == TOKEN
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(()));
    m.repo
        .lifecycle
        .expect_mark_active()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|id| {
            let mut c = connector("acme", "prod", ConnectorState::Active);
            c.id = id;
            Ok(Some(c))
        });
    let created = m
        .service()
        .create(cmd("prod", "#alerts", ""))
        .await
        .unwrap();
    assert_eq!(created.state, ConnectorState::Active);
}

#[tokio::test]
async fn create_checks_a_channel_id_with_conversations_info() {
    let mut m = Mocks::new().insert_ok();
    m.slack.expect_auth_test().returning(|_| Ok(identity()));
    m.slack.expect_list_channels().never();
    m.slack
        .expect_channel_info()
        .withf(|_, id| id.as_str() == "C0123ABCD")
        .times(1)
        .returning(|_, _| Ok(channel("C0123ABCD", "ops")));
    m.secrets.expect_put().returning(|_, _, _| Ok(()));
    activate_echo(&mut m.repo);
    m.service()
        .create(cmd("prod", "C0123ABCD", ""))
        .await
        .unwrap();
}

// ------------------------------------------------------------------ create: Slack says no

#[tokio::test]
async fn a_rejected_token_writes_nothing() {
    let mut m = Mocks::new();
    m.slack.expect_auth_test().returning(|_| {
        Err(SlackError::InvalidAuth {
            code: "token_revoked".into(),
        })
    });
    m.repo.lifecycle.expect_insert_creating().never();
    m.secrets.expect_put().never();
    let err = m
        .service()
        .create(cmd("prod", "alerts", ""))
        .await
        .unwrap_err();
    assert!(matches!(&err, ConnectorError::TokenRejected { code } if code == "token_revoked"));
    assert!(err.to_string().starts_with("slack_bot_token:"), "{err}");
}

#[tokio::test]
async fn a_channel_missing_from_every_page_writes_nothing() {
    let mut m = Mocks::new();
    m.slack.expect_auth_test().returning(|_| Ok(identity()));
    let mut calls = 0;
    m.slack
        .expect_list_channels()
        .times(3)
        .returning(move |_, _| {
            calls += 1;
            Ok(ChannelPage {
                channels: vec![channel(&format!("C000000{calls:02}"), &format!("c{calls}"))],
                next_cursor: (calls < 3).then(|| format!("cursor{calls}")),
            })
        });
    m.repo.lifecycle.expect_insert_creating().never();
    m.secrets.expect_put().never();
    let err = m
        .service()
        .create(cmd("prod", "alerts", ""))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ConnectorError::FailedPrecondition {
                field: Some("default_channel"),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("#alerts"), "{err}");
}

#[tokio::test]
async fn an_archived_channel_is_a_failed_precondition() {
    let mut m = Mocks::new();
    m.slack.expect_auth_test().returning(|_| Ok(identity()));
    m.slack.expect_channel_info().returning(|_, _| {
        let mut c = channel("C0123ABCD", "old");
        c.is_archived = true;
        Ok(c)
    });
    m.repo.lifecycle.expect_insert_creating().never();
    let err = m
        .service()
        .create(cmd("prod", "C0123ABCD", ""))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::FailedPrecondition { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("archived"), "{err}");
}

#[tokio::test]
async fn an_unknown_channel_id_is_a_failed_precondition() {
    let mut m = Mocks::new();
    m.slack.expect_auth_test().returning(|_| Ok(identity()));
    m.slack
        .expect_channel_info()
        .returning(|_, _| Err(SlackError::ChannelNotFound));
    m.repo.lifecycle.expect_insert_creating().never();
    let err = m
        .service()
        .create(cmd("prod", "C0123ABCD", ""))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::FailedPrecondition { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn slack_unreachable_is_unavailable() {
    let mut m = Mocks::new();
    m.slack
        .expect_auth_test()
        .returning(|_| Err(SlackError::Unavailable("connect timeout".into())));
    let err = m
        .service()
        .create(cmd("prod", "alerts", ""))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectorError::Unavailable {
                dependency: Dependency::Slack,
                ..
            }
        ),
        "{err:?}"
    );
}

// ------------------------------------------------------------------ create: storage failures

#[tokio::test]
async fn a_duplicate_name_is_already_exists_and_stores_no_secret() {
    let mut m = Mocks::new().slack_ok();
    m.repo
        .lifecycle
        .expect_insert_creating()
        .returning(|_| Err(RepositoryError::DuplicateName));
    m.secrets.expect_put().never();
    let err = m
        .service()
        .create(cmd("prod", "alerts", ""))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::AlreadyExists { ref name } if name == "prod"));
}

#[tokio::test]
async fn a_failed_secret_write_removes_the_secret_then_the_row() {
    let mut m = Mocks::new().slack_ok().insert_ok();
    let mut seq = mockall::Sequence::new();
    m.secrets
        .expect_put()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Err(SecretStoreError::Unavailable("timeout".into())));
    m.secrets
        .expect_delete()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    m.repo
        .lifecycle
        .expect_remove_creating()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    m.repo.lifecycle.expect_mark_active().never();
    let err = m
        .service()
        .create(cmd("prod", "alerts", ""))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectorError::Unavailable {
                dependency: Dependency::SecretStore,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_activation_whose_answer_was_lost_is_left_to_the_reconciler() {
    let mut m = Mocks::new().slack_ok().insert_ok();
    m.secrets.expect_put().returning(|_, _, _| Ok(()));
    m.repo
        .lifecycle
        .expect_mark_active()
        .returning(|_| Err(RepositoryError::Unavailable("connection reset".into())));
    // Read back: not active (or unreadable). Nothing is undone: it may have committed, and
    // the reconciler finishes a row left `creating`, secret first.
    m.repo
        .queries
        .expect_find_active()
        .times(1)
        .returning(|_| Ok(None));
    m.secrets.expect_delete().never();
    m.repo.lifecycle.expect_remove_creating().never();
    let err = m
        .service()
        .create(cmd("prod", "alerts", ""))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectorError::Unavailable {
                dependency: Dependency::Database,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_activation_that_committed_before_its_answer_was_lost_succeeds() {
    let mut m = Mocks::new().slack_ok().insert_ok();
    m.secrets.expect_put().returning(|_, _, _| Ok(()));
    m.repo
        .lifecycle
        .expect_mark_active()
        .returning(|_| Err(RepositoryError::Unavailable("connection reset".into())));
    m.repo
        .queries
        .expect_find_active()
        .times(1)
        .returning(|id| {
            let mut c = connector("acme", "prod", ConnectorState::Active);
            c.id = id;
            Ok(Some(c))
        });
    m.secrets.expect_delete().never();
    let created = m.service().create(cmd("prod", "alerts", "")).await.unwrap();
    assert_eq!(created.state, ConnectorState::Active);
}

#[tokio::test]
async fn a_create_taken_over_by_the_reconciler_is_aborted_and_undone() {
    let mut m = Mocks::new().slack_ok().insert_ok();
    m.secrets.expect_put().returning(|_, _, _| Ok(()));
    m.repo
        .lifecycle
        .expect_mark_active()
        .returning(|_| Ok(None));
    m.secrets.expect_delete().times(1).returning(|_| Ok(()));
    m.repo
        .lifecycle
        .expect_remove_creating()
        .times(1)
        .returning(|_| Ok(()));
    let err = m
        .service()
        .create(cmd("prod", "alerts", ""))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Aborted { .. }), "{err:?}");
}

#[tokio::test]
async fn when_the_undo_cannot_delete_the_secret_the_row_stays_for_the_reconciler() {
    let mut m = Mocks::new().slack_ok().insert_ok();
    m.secrets
        .expect_put()
        .returning(|_, _, _| Err(SecretStoreError::Unavailable("timeout".into())));
    m.secrets
        .expect_delete()
        .returning(|_| Err(SecretStoreError::Unavailable("timeout".into())));
    m.repo.lifecycle.expect_remove_creating().never();
    let err = m
        .service()
        .create(cmd("prod", "alerts", ""))
        .await
        .unwrap_err();
    // The secret store's outage is what the caller hears; the row is the reconciler's.
    assert!(matches!(err, ConnectorError::Unavailable { .. }), "{err:?}");
}

// ------------------------------------------------------------------ create: idempotency

#[tokio::test]
async fn a_repeated_request_id_returns_the_first_result_without_calling_slack() {
    let mut m = Mocks::new();
    let first = connector("acme", "prod", ConnectorState::Active);
    let expected = first.clone();
    m.repo
        .lifecycle
        .expect_find_by_request_id()
        .withf(|t, r| t.as_str() == "acme" && r.as_str() == "req-1")
        .return_once(move |_, _| Ok(Some(first)));
    m.slack.expect_auth_test().never();
    m.repo.lifecycle.expect_insert_creating().never();
    let got = m
        .service()
        .create(cmd("prod", "alerts", "req-1"))
        .await
        .unwrap();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_request_id_reused_for_another_name_is_invalid() {
    let mut m = Mocks::new();
    let first = connector("acme", "prod", ConnectorState::Active);
    m.repo
        .lifecycle
        .expect_find_by_request_id()
        .return_once(move |_, _| Ok(Some(first)));
    let err = m
        .service()
        .create(cmd("staging", "alerts", "req-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Invalid(v) if v.field == "request_id"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_request_id_still_being_created_is_aborted() {
    let mut m = Mocks::new();
    let first = connector("acme", "prod", ConnectorState::Creating);
    m.repo
        .lifecycle
        .expect_find_by_request_id()
        .return_once(move |_, _| Ok(Some(first)));
    let err = m
        .service()
        .create(cmd("prod", "alerts", "req-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Aborted { .. }), "{err:?}");
}

#[tokio::test]
async fn a_concurrent_twin_request_returns_the_winner() {
    let mut m = Mocks::new().slack_ok();
    let winner = connector("acme", "prod", ConnectorState::Active);
    let expected = winner.clone();
    let mut seq = mockall::Sequence::new();
    m.repo
        .lifecycle
        .expect_find_by_request_id()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(None));
    m.repo
        .lifecycle
        .expect_insert_creating()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Err(RepositoryError::DuplicateRequestId));
    m.repo
        .lifecycle
        .expect_find_by_request_id()
        .times(1)
        .in_sequence(&mut seq)
        .return_once(move |_, _| Ok(Some(winner)));
    m.secrets.expect_put().never();
    let got = m
        .service()
        .create(cmd("prod", "alerts", "req-1"))
        .await
        .unwrap();
    assert_eq!(got, expected);
}

// ------------------------------------------------------------------ validation

#[test]
fn create_validation_names_the_first_bad_field() {
    let cases = [
        (("", "n", TOKEN, "a", ""), "tenant_id"),
        (("t", "", TOKEN, "a", ""), "name"),
        (("t", "n", "", "a", ""), "slack_bot_token"),
        (
            ("t", "n", "xoxp-1234-5678-abcdefgh", "a", ""),
            "slack_bot_token",
        ),
        (("t", "n", TOKEN, "", ""), "default_channel"),
        (("t", "n", TOKEN, "Bad Name", ""), "default_channel"),
        (("t", "n", TOKEN, "a", "has space"), "request_id"),
    ];
    for ((t, n, tok, ch, r), field) in cases {
        let err = CreateConnector::parse(t, n, tok, ch, r).unwrap_err();
        assert_eq!(err.field, field, "{t:?} {n:?} {ch:?} {r:?}");
    }
}

#[tokio::test]
async fn get_is_scoped_by_tenant() {
    let mut m = Mocks::new();
    m.repo
        .queries
        .expect_get_active()
        .withf(|t, _| t.as_str() == "other")
        .returning(|_, _| Ok(None));
    let svc = m.service();
    let err = svc
        .get(&tenant("other"), ConnectorId::new_v7())
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::NotFound { .. }));
}

// ------------------------------------------------------------------ list

#[tokio::test]
async fn list_asks_for_one_extra_row_to_know_whether_there_is_a_next_page() {
    let rows: Vec<_> = (0..3)
        .map(|i| connector("acme", &format!("c{i}"), ConnectorState::Active))
        .collect();
    let second = rows[1].id;
    let mut m = Mocks::new();
    m.repo
        .queries
        .expect_list_active()
        .withf(|t, after, limit, status| {
            t.as_str() == "acme" && after.is_none() && *limit == 3 && status.is_none()
        })
        .return_once(move |_, _, _, _| Ok(rows));
    let page = m
        .service()
        .list(&tenant("acme"), 2, "", None)
        .await
        .unwrap();
    assert_eq!(page.connectors.len(), 2);
    assert_eq!(page.next, Some(PageToken { after: second }));
}

#[tokio::test]
async fn list_follows_the_page_token_and_ends_without_one() {
    let after = ConnectorId::new_v7();
    let tenant = connector_domain::TenantId::parse("tenant_id", "acme").unwrap();
    let token = PageToken { after }.encode(&tenant);
    let mut m = Mocks::new();
    m.repo
        .queries
        .expect_list_active()
        .withf(move |_, a, limit, status| {
            *a == Some(after) && *limit == 51 && *status == Some(ConnectorStatus::Revoked)
        })
        .returning(|_, _, _, _| Ok(vec![connector("acme", "last", ConnectorState::Active)]));
    let page = m
        .service()
        .list(&tenant, 0, &token, Some(ConnectorStatus::Revoked))
        .await
        .unwrap();
    assert_eq!(page.connectors.len(), 1);
    assert_eq!(page.next, None);
}

#[tokio::test]
async fn list_rejects_bad_page_arguments() {
    let svc = Mocks::new().service();
    let err = svc.list(&tenant("acme"), -5, "", None).await.unwrap_err();
    assert!(matches!(&err, ConnectorError::Invalid(v) if v.field == "page_size"));
    let err = svc
        .list(&tenant("acme"), 10, "bogus", None)
        .await
        .unwrap_err();
    assert!(matches!(&err, ConnectorError::Invalid(v) if v.field == "page_token"));
}

// ------------------------------------------------------------------ delete

#[tokio::test]
async fn delete_marks_then_removes_the_secret_then_the_row() {
    let mut m = Mocks::new();
    let row = connector("acme", "prod", ConnectorState::Deleting);
    let id = row.id;
    let mut seq = mockall::Sequence::new();
    m.repo
        .lifecycle
        .expect_mark_deleting()
        .withf(move |t, i| t.as_str() == "acme" && *i == id)
        .times(1)
        .in_sequence(&mut seq)
        .return_once(move |_, _| Ok(Some(row)));
    m.secrets
        .expect_delete()
        .withf(move |n| n.as_str() == format!("sc/acme/{id}"))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    m.repo
        .lifecycle
        .expect_remove_deleting()
        .with(eq(id))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    m.service().delete(&tenant("acme"), id).await.unwrap();
}

#[tokio::test]
async fn deleting_an_unknown_connector_is_not_found_and_touches_no_secret() {
    let mut m = Mocks::new();
    m.repo
        .lifecycle
        .expect_mark_deleting()
        .returning(|_, _| Ok(None));
    m.secrets.expect_delete().never();
    let err = m
        .service()
        .delete(&tenant("acme"), ConnectorId::new_v7())
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::NotFound { .. }));
}

#[tokio::test]
async fn a_failed_secret_delete_keeps_the_row_for_a_retry() {
    let mut m = Mocks::new();
    let row = connector("acme", "prod", ConnectorState::Deleting);
    let id = row.id;
    m.repo
        .lifecycle
        .expect_mark_deleting()
        .return_once(move |_, _| Ok(Some(row)));
    m.secrets
        .expect_delete()
        .returning(|_| Err(SecretStoreError::Unavailable("timeout".into())));
    m.repo.lifecycle.expect_remove_deleting().never();
    let err = m.service().delete(&tenant("acme"), id).await.unwrap_err();
    assert!(
        matches!(
            err,
            ConnectorError::Unavailable {
                dependency: Dependency::SecretStore,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_failed_row_removal_is_unavailable() {
    let mut m = Mocks::new();
    let row = connector("acme", "prod", ConnectorState::Deleting);
    let id = row.id;
    m.repo
        .lifecycle
        .expect_mark_deleting()
        .return_once(move |_, _| Ok(Some(row)));
    m.secrets.expect_delete().returning(|_| Ok(()));
    m.repo
        .lifecycle
        .expect_remove_deleting()
        .returning(|_| Err(RepositoryError::Unavailable("gone".into())));
    let err = m.service().delete(&tenant("acme"), id).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn channel_search_stops_at_the_page_cap_and_suggests_the_id() {
    let mut m = Mocks::new();
    m.slack.expect_auth_test().returning(|_| Ok(identity()));
    m.slack.expect_list_channels().times(3).returning(|_, _| {
        Ok(ChannelPage {
            channels: vec![channel("C0000OTHER", "other")],
            next_cursor: Some("more".into()),
        })
    });
    let service = m.service().with_channel_limits(
        ChannelLimits {
            max_pages: 3,
            deadline: Duration::from_secs(60),
        },
        crate::testing::tokio_sleep(),
    );
    let err = service
        .create(cmd("prod", "#alerts", ""))
        .await
        .unwrap_err();
    let shown = err.to_string();
    assert!(shown.starts_with("default_channel:"), "{shown}");
    assert!(shown.contains("give its ID"), "{shown}");
}

/// A Slack whose channel listing never answers.
struct SilentSlack;

#[async_trait::async_trait]
impl connector_ports::SlackApi for SilentSlack {
    async fn auth_test(&self, _: &connector_domain::BotToken) -> Result<AuthIdentity, SlackError> {
        Ok(identity())
    }
    async fn bot_app_id(
        &self,
        _: &connector_domain::BotToken,
        _: &str,
    ) -> Result<String, SlackError> {
        Ok("A0APP".into())
    }
    async fn list_channels(
        &self,
        _: &connector_domain::BotToken,
        _: Option<String>,
    ) -> Result<ChannelPage, SlackError> {
        futures::future::pending().await
    }
    async fn channel_info(
        &self,
        _: &connector_domain::BotToken,
        _: &ChannelId,
    ) -> Result<ChannelInfo, SlackError> {
        Err(SlackError::Unavailable("not used by this test".into()))
    }
    async fn post_message(
        &self,
        _: &connector_domain::BotToken,
        _: &connector_ports::OutgoingMessage,
    ) -> Result<connector_ports::PostedMessage, SlackError> {
        Err(SlackError::Unavailable("not used by this test".into()))
    }
    async fn find_post(
        &self,
        _: &connector_domain::BotToken,
        _: &connector_ports::PostLookup,
    ) -> Result<Option<connector_ports::PostedMessage>, SlackError> {
        Err(SlackError::Unavailable("not used by this test".into()))
    }
    async fn schedule_message(
        &self,
        _: &connector_domain::BotToken,
        _: &connector_ports::OutgoingMessage,
        _: i64,
    ) -> Result<connector_ports::ScheduledMessage, SlackError> {
        Err(SlackError::Unavailable("not used by this test".into()))
    }
    async fn delete_scheduled_message(
        &self,
        _: &connector_domain::BotToken,
        _: &ChannelId,
        _: &str,
    ) -> Result<(), SlackError> {
        Err(SlackError::Unavailable("not used by this test".into()))
    }
    async fn update_message(
        &self,
        _: &connector_domain::BotToken,
        _: &connector_domain::MessageEdit,
    ) -> Result<connector_ports::PostedMessage, SlackError> {
        Err(SlackError::Unavailable("not used by this test".into()))
    }
    async fn delete_message(
        &self,
        _: &connector_domain::BotToken,
        _: &ChannelId,
        _: &str,
    ) -> Result<(), SlackError> {
        Err(SlackError::Unavailable("not used by this test".into()))
    }
    async fn oauth_access(
        &self,
        _: &str,
        _: &secrecy::SecretString,
        _: &connector_ports::OAuthGrantRequest,
    ) -> Result<connector_ports::OAuthGrant, SlackError> {
        Err(SlackError::Unavailable("not used by this test".into()))
    }
    async fn upload_file(
        &self,
        _: &connector_domain::BotToken,
        _: &ChannelId,
        _: Option<String>,
        _: &connector_domain::FileAttachment,
    ) -> Result<connector_ports::UploadedFile, SlackError> {
        Err(SlackError::Unavailable("not used by this test".into()))
    }
}

#[tokio::test]
async fn channel_search_has_a_deadline_and_writes_nothing() {
    let repo = MockConnectors::default(); // no write expected
    let ports =
        crate::testing::ports_with_slack(repo, MockSecretStore::new(), Arc::new(SilentSlack));
    let service = ConnectorService::new(ports).with_channel_limits(
        ChannelLimits {
            max_pages: 100,
            deadline: Duration::from_millis(100),
        },
        crate::testing::tokio_sleep(),
    );
    let err = service
        .create(cmd("prod", "#alerts", ""))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectorError::Unavailable {
                dependency: Dependency::Slack,
                ..
            }
        ),
        "{err:?}"
    );
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse("tenant_id", name).unwrap()
}
