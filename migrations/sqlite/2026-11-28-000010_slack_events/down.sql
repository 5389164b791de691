DROP TABLE slack_events;
DROP INDEX connectors_workspace_idx;
ALTER TABLE connectors DROP COLUMN default_channel_available;
ALTER TABLE connectors DROP COLUMN revoked_at;
