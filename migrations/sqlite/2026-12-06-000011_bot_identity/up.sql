-- Whose bot each connector's token is; see migrations/postgres.
ALTER TABLE connectors ADD COLUMN slack_app_id TEXT;
ALTER TABLE connectors ADD COLUMN bot_user_id TEXT;

CREATE INDEX connectors_unidentified_idx ON connectors (workspace_id) WHERE bot_user_id IS NULL;
