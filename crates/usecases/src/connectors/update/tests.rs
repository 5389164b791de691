//! Unit tests of UpdateConnector against mocked ports: the mask, the conditions (etag,
//! request_id), the workspace check, and the order of a token replacement with each step
//! failing.

use connector_domain::{ChannelId, ChannelName, ConnectorState, WorkspaceId};
use connector_ports::{
    AuthIdentity, ChannelInfo, ChannelPage, ConnectorSecret, MockConnectors, MockSecretStore,
    MockSlackApi, RepositoryError, SecretStoreError,
};
use mockall::Sequence;

use super::*;
use crate::testing::{connector, ports};

const NEW_TOKEN: &str = "xoxb-1111-3333-replacement";

fn fields<'a>(mask: &'a [String]) -> UpdateFields<'a> {
    UpdateFields {
        tenant_id: "acme",
        id: "0192a8a0-0000-7000-8000-000000000001",
        update_mask: mask,
        ..UpdateFields::default()
    }
}

fn mask(paths: &[&str]) -> Vec<String> {
    paths.iter().map(|p| (*p).to_owned()).collect()
}

fn identity(team: &str) -> AuthIdentity {
    AuthIdentity {
        team_id: WorkspaceId::new(team),
        team_name: "Acme".into(),
        user_id: "U0BOT".into(),
        bot_id: Some("B0BOT".into()),
        app_id: Some("A0APP".into()),
    }
}

fn active() -> Connector {
    connector("acme", "prod", ConnectorState::Active)
}

fn cmd_for(c: &Connector, raw: UpdateFields<'_>) -> UpdateConnector {
    let id = c.id.to_string();
    UpdateConnector::parse(UpdateFields { id: &id, ..raw }).unwrap()
}

fn service(
    repo: MockConnectors,
    secrets: MockSecretStore,
    slack: MockSlackApi,
) -> ConnectorService {
    ConnectorService::new(ports(repo, secrets, slack))
}

/// The row as an update of `c` would return it.
fn applied(c: &Connector, update: &ConnectorUpdate) -> Connector {
    let mut out = c.clone();
    if let Some(n) = &update.name {
        out.name = n.clone();
    }
    if let Some((id, name)) = &update.default_channel {
        out.default_channel_id = id.clone();
        out.default_channel_name = name.clone();
    }
    out.generation += 1;
    out.last_update_request_id = update.request_id.clone();
    out
}

#[test]
fn the_mask_names_the_fields_and_an_empty_one_means_those_given() {
    let m = mask(&[]);
    let inferred = UpdateConnector::parse(UpdateFields {
        name: "renamed",
        ..fields(&m)
    })
    .unwrap();
    assert_eq!(inferred.name.unwrap().as_str(), "renamed");
    assert!(inferred.default_channel.is_none() && inferred.bot_token.is_none());

    let m = mask(&["default_channel"]);
    let only_channel = UpdateConnector::parse(UpdateFields {
        name: "ignored-not-in-mask",
        default_channel: "#ops",
        ..fields(&m)
    })
    .unwrap();
    assert!(only_channel.name.is_none());
    assert!(only_channel.default_channel.is_some());

    let m = mask(&["workspace_id"]);
    let e = UpdateConnector::parse(fields(&m)).unwrap_err();
    assert_eq!(e.field, "update_mask");
    assert!(e.to_string().contains("workspace_id"), "{e}");

    let m = mask(&[]);
    let e = UpdateConnector::parse(fields(&m)).unwrap_err();
    assert_eq!(e.field, "update_mask");

    // A masked field must be valid: `*` with no name is an empty name.
    let m = mask(&["*"]);
    let e = UpdateConnector::parse(UpdateFields {
        default_channel: "#ops",
        slack_bot_token: NEW_TOKEN,
        ..fields(&m)
    })
    .unwrap_err();
    assert_eq!(e.field, "name");

    let m = mask(&["slack_bot_token"]);
    let e = UpdateConnector::parse(UpdateFields {
        slack_bot_token: "not-a-token",
        ..fields(&m)
    })
    .unwrap_err();
    assert_eq!(e.field, "slack_bot_token");
    assert!(!e.to_string().contains("not-a-token"), "{e}");
}

#[tokio::test]
async fn a_stale_etag_is_aborted_before_anything_is_called() {
    let c = active();
    let mut repo = MockConnectors::default();
    let row = c.clone();
    repo.queries
        .expect_get_active()
        .returning(move |_, _| Ok(Some(row.clone())));
    let m = mask(&["name"]);
    let cmd = cmd_for(
        &c,
        UpdateFields {
            name: "renamed",
            etag: "g0",
            ..fields(&m)
        },
    );
    let e = service(repo, MockSecretStore::new(), MockSlackApi::new())
        .update(cmd)
        .await
        .unwrap_err();
    assert!(matches!(e, ConnectorError::Aborted { .. }), "{e:?}");
    assert!(e.to_string().contains("g1"), "names the current etag: {e}");
}

#[tokio::test]
async fn a_retry_of_an_applied_update_returns_the_connector_without_applying_it_again() {
    let mut c = active();
    c.generation = 2;
    c.last_update_request_id = Some(RequestId::parse("request_id", "upd-1").unwrap());
    let mut repo = MockConnectors::default();
    let row = c.clone();
    repo.queries
        .expect_get_active()
        .returning(move |_, _| Ok(Some(row.clone())));
    let m = mask(&["name"]);
    // Its etag was the one before the update: a retry is answered, not refused as stale.
    let cmd = cmd_for(
        &c,
        UpdateFields {
            name: "renamed",
            etag: "g1",
            request_id: "upd-1",
            ..fields(&m)
        },
    );
    let got = service(repo, MockSecretStore::new(), MockSlackApi::new())
        .update(cmd)
        .await
        .unwrap();
    assert_eq!(got, c);
}

#[tokio::test]
async fn a_token_of_another_workspace_is_refused_and_nothing_is_staged() {
    let c = active();
    let mut repo = MockConnectors::default();
    let row = c.clone();
    repo.queries
        .expect_get_active()
        .returning(move |_, _| Ok(Some(row.clone())));
    let mut slack = MockSlackApi::new();
    slack
        .expect_auth_test()
        .returning(|_| Ok(identity("T0OTHER")));
    let m = mask(&["slack_bot_token"]);
    let cmd = cmd_for(
        &c,
        UpdateFields {
            slack_bot_token: NEW_TOKEN,
            ..fields(&m)
        },
    );
    let e = service(repo, MockSecretStore::new(), slack)
        .update(cmd)
        .await
        .unwrap_err();
    match e {
        ConnectorError::FailedPrecondition { field, reason } => {
            assert_eq!(field, Some("slack_bot_token"));
            assert!(
                reason.contains("T0OTHER") && reason.contains("T0001"),
                "{reason}"
            );
            assert!(!reason.contains(NEW_TOKEN));
        }
        other => panic!("{other:?}"),
    }
}

/// A token replacement's mocks, in the order the steps must run; `fail` names the step that
/// fails.
fn replacement(c: &Connector, fail: Option<&str>) -> (MockConnectors, MockSecretStore) {
    let mut seq = Sequence::new();
    let mut repo = MockConnectors::default();
    let mut secrets = MockSecretStore::new();
    let row = c.clone();
    repo.queries
        .expect_get_active()
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_, _| Ok(Some(row.clone())));
    let stage_fails = fail == Some("stage");
    secrets
        .expect_stage()
        .withf(|_, s: &ConnectorSecret| s.bot_token.expose() == NEW_TOKEN && s.rotation.is_none())
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_, _| {
            if stage_fails {
                Err(SecretStoreError::Unavailable("down".into()))
            } else {
                Ok("v2".into())
            }
        });
    if stage_fails {
        return (repo, secrets);
    }
    let (row, update_fails) = (c.clone(), fail == Some("update"));
    repo.lifecycle
        .expect_update_active()
        .withf(|_, _, generation, u| {
            *generation == 1 && u.staged_secret_version.as_deref() == Some("v2")
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_, _, _, u| {
            if update_fails {
                Err(RepositoryError::Unavailable("down".into()))
            } else {
                Ok(Some(applied(&row, u)))
            }
        });
    if update_fails {
        return (repo, secrets);
    }
    let promote_fails = fail == Some("promote");
    secrets
        .expect_promote()
        .withf(|_, v| v == "v2")
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_, _| {
            if promote_fails {
                Err(SecretStoreError::Unavailable("down".into()))
            } else {
                Ok(true)
            }
        });
    if promote_fails {
        return (repo, secrets);
    }
    let clear_fails = fail == Some("clear");
    repo.reconciliation
        .expect_clear_pending_promotion()
        .withf(|_, v| v == "v2")
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_, _| {
            if clear_fails {
                Err(RepositoryError::Unavailable("down".into()))
            } else {
                Ok(true)
            }
        });
    (repo, secrets)
}

fn replace_token(c: &Connector) -> UpdateConnector {
    let m = mask(&["slack_bot_token"]);
    cmd_for(
        c,
        UpdateFields {
            slack_bot_token: NEW_TOKEN,
            ..fields(&m)
        },
    )
}

fn same_workspace() -> MockSlackApi {
    let mut slack = MockSlackApi::new();
    slack
        .expect_auth_test()
        .returning(|_| Ok(identity("T0001")));
    slack
}

#[tokio::test]
async fn a_token_replacement_stages_then_commits_then_promotes_then_clears() {
    let c = active();
    let (repo, secrets) = replacement(&c, None);
    let got = service(repo, secrets, same_workspace())
        .update(replace_token(&c))
        .await
        .unwrap();
    assert_eq!(got.generation, 2);
}

#[tokio::test]
async fn each_failing_step_of_a_token_replacement_is_reported_and_stops_the_next() {
    let c = active();
    for step in ["stage", "update", "promote"] {
        let (repo, secrets) = replacement(&c, Some(step));
        let e = service(repo, secrets, same_workspace())
            .update(replace_token(&c))
            .await
            .unwrap_err();
        if step == "promote" {
            assert!(matches!(e, ConnectorError::TokenNotYetCurrent), "{e:?}");
        } else {
            assert!(
                matches!(e, ConnectorError::Unavailable { .. }),
                "{step}: {e:?}"
            );
        }
    }
    // The last step is bookkeeping: the update stands.
    let (repo, secrets) = replacement(&c, Some("clear"));
    service(repo, secrets, same_workspace())
        .update(replace_token(&c))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_token_replacement_that_is_not_recorded_removes_the_version_it_staged() {
    let c = active();
    for lost_to in ["another update", "a taken name"] {
        let mut seq = Sequence::new();
        let mut repo = MockConnectors::default();
        let mut secrets = MockSecretStore::new();
        let row = c.clone();
        repo.queries
            .expect_get_active()
            .returning(move |_, _| Ok(Some(row.clone())));
        secrets
            .expect_stage()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok("v2".into()));
        let taken = lost_to == "a taken name";
        repo.lifecycle
            .expect_update_active()
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |_, _, _, _| {
                if taken {
                    Err(RepositoryError::DuplicateName)
                } else {
                    Ok(None)
                }
            });
        secrets
            .expect_discard()
            .withf(|_, v| v == "v2")
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(true));
        secrets.expect_promote().never();
        let e = service(repo, secrets, same_workspace())
            .update(replace_token(&c))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                ConnectorError::Aborted { .. } | ConnectorError::AlreadyExists { .. }
            ),
            "{lost_to}: {e:?}"
        );
    }
}

#[tokio::test]
async fn a_race_lost_to_another_update_is_aborted_and_to_a_delete_is_not_found() {
    for deleted in [false, true] {
        let c = active();
        let mut repo = MockConnectors::default();
        let mut now = c.clone();
        now.generation = 5;
        let first = c.clone();
        let mut reads = 0;
        repo.queries
            .expect_get_active()
            .times(2)
            .returning(move |_, _| {
                reads += 1;
                Ok(match (reads, deleted) {
                    (1, _) => Some(first.clone()),
                    (_, true) => None,
                    (_, false) => Some(now.clone()),
                })
            });
        repo.lifecycle
            .expect_update_active()
            .times(1)
            .returning(|_, _, _, _| Ok(None));
        let m = mask(&["name"]);
        let e = service(repo, MockSecretStore::new(), MockSlackApi::new())
            .update(cmd_for(
                &c,
                UpdateFields {
                    name: "renamed",
                    ..fields(&m)
                },
            ))
            .await
            .unwrap_err();
        if deleted {
            assert!(matches!(e, ConnectorError::NotFound { .. }), "{e:?}");
        } else {
            assert!(matches!(e, ConnectorError::Aborted { .. }), "{e:?}");
            assert!(e.to_string().contains("g5"), "{e}");
        }
    }
}

#[tokio::test]
async fn a_taken_name_is_already_exists() {
    let c = active();
    let mut repo = MockConnectors::default();
    let row = c.clone();
    repo.queries
        .expect_get_active()
        .returning(move |_, _| Ok(Some(row.clone())));
    repo.lifecycle
        .expect_update_active()
        .returning(|_, _, _, _| Err(RepositoryError::DuplicateName));
    let m = mask(&["name"]);
    let e = service(repo, MockSecretStore::new(), MockSlackApi::new())
        .update(cmd_for(
            &c,
            UpdateFields {
                name: "taken",
                ..fields(&m)
            },
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ConnectorError::AlreadyExists { ref name } if name == "taken"),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_new_channel_is_resolved_with_the_stored_token_unless_one_is_given() {
    let c = active();
    let mut repo = MockConnectors::default();
    let row = c.clone();
    repo.queries
        .expect_get_active()
        .returning(move |_, _| Ok(Some(row.clone())));
    let row = c.clone();
    repo.lifecycle
        .expect_update_active()
        .withf(|_, _, _, u| {
            u.default_channel == Some((ChannelId::new("C0000OPS"), ChannelName::new("ops")))
                && u.staged_secret_version.is_none()
                && u.name.is_none()
        })
        .returning(move |_, _, _, u| Ok(Some(applied(&row, u))));
    let mut secrets = MockSecretStore::new();
    secrets.expect_get().times(1).returning(|_| {
        Ok(ConnectorSecret::new(
            connector_domain::BotToken::parse("t", "xoxb-1111-2222-storedtoken").unwrap(),
        ))
    });
    let mut slack = MockSlackApi::new();
    slack
        .expect_list_channels()
        .withf(|t, _| t.expose() == "xoxb-1111-2222-storedtoken")
        .returning(|_, _| {
            Ok(ChannelPage {
                channels: vec![ChannelInfo {
                    id: ChannelId::new("C0000OPS"),
                    name: ChannelName::new("ops"),
                    is_archived: false,
                    is_member: true,
                    is_private: false,
                }],
                next_cursor: None,
            })
        });
    let m = mask(&["default_channel"]);
    let got = service(repo, secrets, slack)
        .update(cmd_for(
            &c,
            UpdateFields {
                default_channel: "#ops",
                ..fields(&m)
            },
        ))
        .await
        .unwrap();
    assert_eq!(got.default_channel_id.as_str(), "C0000OPS");
    assert_eq!(got.default_channel_name.as_str(), "ops");
}
