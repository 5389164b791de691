DROP TABLE slack_events;
DROP INDEX connectors_workspace_idx;
ALTER TABLE connectors DROP COLUMN default_channel_available, DROP COLUMN revoked_at;
