-- Whose bot each connector's token is (issue 22, item 4): Slack's app ID and the bot user, so
-- a workspace's events (an uninstall, revoked tokens, channel changes) act only on connectors
-- of the app that sent them, and `tokens_revoked` only on the bot users it names. Rows made
-- before keep NULLs until the service learns them again from Slack (lazily: on the next event
-- of their workspace, or the reconciler's pass). `slack_app_id` stays NULL when Slack would
-- not say (a token without `users:read`); such rows are left alone by every workspace event.
ALTER TABLE connectors
  ADD COLUMN slack_app_id TEXT,
  ADD COLUMN bot_user_id TEXT;

CREATE INDEX connectors_unidentified_idx ON connectors (workspace_id) WHERE bot_user_id IS NULL;
