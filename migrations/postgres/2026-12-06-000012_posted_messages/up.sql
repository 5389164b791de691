-- What each connector posted or scheduled (issue 22, item 5): UpdateMessage, DeleteMessage and
-- CancelScheduledMessage act only on a message recorded here for the connector they name, so
-- one tenant cannot change another's messages even where both connectors share a bot. `ts` is
-- the message's ts, or a scheduled message's Q… ID. Rows older than the edit window are
-- purged by the periodic pass; messages sent before this migration cannot be changed through
-- the service.
CREATE TABLE posted_messages (
    connector_id uuid        NOT NULL,
    channel_id   text        NOT NULL,
    ts           text        NOT NULL,
    tenant_id    text        NOT NULL,
    posted_at    timestamptz NOT NULL,
    PRIMARY KEY (connector_id, channel_id, ts)
);

CREATE INDEX posted_messages_posted_idx ON posted_messages (posted_at);
