//! Whose bot a token is ([`BotIdentity`]): learned from Slack when a token is given (create,
//! install, token replacement), and lazily for connectors made before it was recorded, so that
//! a workspace's events are acted on only for connectors of the app that sent them.

use connector_domain::{BotIdentity, BotToken, WorkspaceId};
use connector_ports::{AuthIdentity, SecretStoreError, SlackError};

use crate::Ports;
use crate::error::ConnectorError;

/// The bot `me` (the token's `auth.test`) describes. The app comes from `known_app` (an OAuth
/// install's `oauth.v2.access` says it), else `auth.test`, else `bots.info`; a token without
/// the scope `bots.info` needs (`users:read`) or a bot Slack does not know leaves it unknown,
/// which keeps the connector out of every workspace event rather than failing the call.
pub(crate) async fn identify(
    ports: &Ports,
    token: &BotToken,
    me: &AuthIdentity,
    known_app: Option<String>,
) -> Result<BotIdentity, SlackError> {
    let mut app_id = known_app.or_else(|| me.app_id.clone());
    if app_id.is_none()
        && let Some(bot_id) = &me.bot_id
    {
        app_id = match ports.slack.bot_app_id(token, bot_id).await {
            Ok(app) => Some(app),
            Err(SlackError::MissingScope { .. }) => {
                tracing::warn!(team_id = %me.team_id, bot_user_id = %me.user_id,
                    "the token lacks users:read, so its Slack app is unknown: workspace events \
                     (an uninstall, revoked tokens, channel changes) will not act on its connector");
                None
            }
            Err(SlackError::Api { code }) if code == "bot_not_found" => None,
            Err(e) => return Err(e),
        };
    }
    Ok(BotIdentity {
        bot_user_id: me.user_id.clone(),
        app_id,
    })
}

/// Learns the bots of up to `limit` connectors (of `workspace`, or any) made before bots were
/// recorded; returns how many were recorded. A connector whose token Slack refuses, or whose
/// secret is gone, is skipped (its token serves no app any more); an outage of Slack or of a
/// store fails the whole call, so that what asked (an event Slack will retry, the reconciler's
/// next pass) asks again.
pub(crate) async fn backfill(
    ports: &Ports,
    workspace: Option<&WorkspaceId>,
    limit: u32,
) -> Result<u64, ConnectorError> {
    let rows = ports
        .connectors
        .workspaces
        .unidentified(workspace, limit)
        .await?;
    let mut recorded = 0;
    for row in rows {
        let token = match ports.secrets.get(&ports.secret_name(&row)).await {
            Ok(secret) => secret.bot_token,
            Err(SecretStoreError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        let learned = match ports.slack.auth_test(&token).await {
            Ok(me) => identify(ports, &token, &me, None).await,
            Err(e) => Err(e),
        };
        let bot = match learned {
            Ok(bot) => bot,
            Err(SlackError::InvalidAuth { code }) => {
                tracing::info!(connector_id = %row.id, code = %code,
                    "Slack refuses the token of a connector whose bot is unknown; left as it is");
                continue;
            }
            Err(e) => return Err(ConnectorError::from_slack("slack_bot_token", e)),
        };
        if ports.connectors.workspaces.record_bot(row.id, &bot).await? {
            recorded += 1;
        }
    }
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use connector_domain::ConnectorState;
    use connector_ports::{ConnectorSecret, MockConnectors, MockSecretStore, MockSlackApi};

    use super::*;
    use crate::testing::{connector, ports};

    fn me(app_id: Option<&str>) -> AuthIdentity {
        AuthIdentity {
            team_id: WorkspaceId::new("T0001"),
            team_name: "Acme".into(),
            user_id: "U0BOT".into(),
            bot_id: Some("B0BOT".into()),
            app_id: app_id.map(str::to_owned),
        }
    }

    fn token() -> BotToken {
        BotToken::parse("t", "xoxb-1111-2222-abc").unwrap()
    }

    #[tokio::test]
    async fn the_app_is_taken_from_what_is_known_before_asking_slack() {
        let mut slack = MockSlackApi::new();
        slack.expect_bot_app_id().never();
        let p = ports(MockConnectors::default(), MockSecretStore::new(), slack);
        let bot = identify(&p, &token(), &me(None), Some("A0INSTALL".into()))
            .await
            .unwrap();
        assert_eq!(bot.app_id.as_deref(), Some("A0INSTALL"));
        let bot = identify(&p, &token(), &me(Some("A0AUTH")), None)
            .await
            .unwrap();
        assert_eq!(bot.app_id.as_deref(), Some("A0AUTH"));
        assert_eq!(bot.bot_user_id, "U0BOT");
    }

    #[tokio::test]
    async fn bots_info_names_the_app_and_a_missing_scope_leaves_it_unknown() {
        let mut slack = MockSlackApi::new();
        let mut answers = vec![
            Err(SlackError::Unavailable("down".into())),
            Err(SlackError::MissingScope {
                needed: "users:read".into(),
            }),
            Ok("A0BOTSINFO".to_owned()),
        ];
        slack
            .expect_bot_app_id()
            .withf(|_, bot| bot == "B0BOT")
            .times(3)
            .returning(move |_, _| answers.pop().unwrap());
        let p = ports(MockConnectors::default(), MockSecretStore::new(), slack);
        let first = identify(&p, &token(), &me(None), None).await.unwrap();
        assert_eq!(first.app_id.as_deref(), Some("A0BOTSINFO"));
        let second = identify(&p, &token(), &me(None), None).await.unwrap();
        assert_eq!(second.app_id, None);
        // An outage is not "unknown": the caller fails and is retried.
        assert!(matches!(
            identify(&p, &token(), &me(None), None).await,
            Err(SlackError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn backfill_records_each_learnable_bot_and_skips_refused_tokens() {
        let (a, b, gone) = (
            connector("acme", "a", ConnectorState::Active),
            connector("acme", "b", ConnectorState::Active),
            connector("acme", "gone", ConnectorState::Active),
        );
        let (a_id, b_id) = (a.id, b.id);
        let mut repo = MockConnectors::default();
        repo.workspaces
            .expect_unidentified()
            .withf(|w, limit| w.is_some_and(|w| w.as_str() == "T0001") && *limit == 50)
            .return_once(move |_, _| Ok(vec![a, b, gone]));
        repo.workspaces
            .expect_record_bot()
            .withf(move |id, bot| *id == a_id && bot.is_of_app("A0AUTH"))
            .times(1)
            .returning(|_, _| Ok(true));
        let mut secrets = MockSecretStore::new();
        secrets.expect_get().returning(move |name| {
            if name.to_string().contains(&b_id.to_string()) {
                Ok(ConnectorSecret::new(
                    BotToken::parse("t", "xoxb-1111-2222-refused").unwrap(),
                ))
            } else if name.to_string().contains(&a_id.to_string()) {
                Ok(ConnectorSecret::new(token()))
            } else {
                Err(SecretStoreError::NotFound)
            }
        });
        let mut slack = MockSlackApi::new();
        slack.expect_auth_test().returning(|t| {
            if t.expose().ends_with("refused") {
                Err(SlackError::InvalidAuth {
                    code: "token_revoked".into(),
                })
            } else {
                Ok(me(Some("A0AUTH")))
            }
        });
        let p = ports(repo, secrets, slack);
        assert_eq!(
            backfill(&p, Some(&WorkspaceId::new("T0001")), 50)
                .await
                .unwrap(),
            1
        );
    }
}
