-- Slack's own events; see migrations/postgres. Times are microseconds since the epoch.
ALTER TABLE connectors ADD COLUMN revoked_at BIGINT;
ALTER TABLE connectors ADD COLUMN default_channel_available BOOLEAN NOT NULL DEFAULT 1;

CREATE INDEX connectors_workspace_idx ON connectors (workspace_id, default_channel_id);

CREATE TABLE slack_events (
  event_id    TEXT   PRIMARY KEY,
  received_at BIGINT NOT NULL
);

CREATE INDEX slack_events_received_idx ON slack_events (received_at);
