-- Slack's own events (Events API): an uninstalled app or revoked tokens mark every connector of
-- the workspace revoked (`revoked_at`; its token is deleted, a new one through UpdateConnector
-- brings it back); an archived or deleted default channel, or the bot removed from it, marks
-- the channel unavailable until it is back or the connector points elsewhere. Events already
-- handled are remembered by Slack's event_id (Slack retries deliveries), for a day.
ALTER TABLE connectors
  ADD COLUMN revoked_at TIMESTAMPTZ,
  ADD COLUMN default_channel_available BOOLEAN NOT NULL DEFAULT true;

CREATE INDEX connectors_workspace_idx ON connectors (workspace_id, default_channel_id);

CREATE TABLE slack_events (
  event_id    TEXT        PRIMARY KEY,
  received_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX slack_events_received_idx ON slack_events (received_at);
