-- What each connector posted or scheduled; see migrations/postgres. Times are microseconds
-- since the epoch.
CREATE TABLE posted_messages (
    connector_id TEXT   NOT NULL,
    channel_id   TEXT   NOT NULL,
    ts           TEXT   NOT NULL,
    tenant_id    TEXT   NOT NULL,
    posted_at    BIGINT NOT NULL,
    PRIMARY KEY (connector_id, channel_id, ts)
);

CREATE INDEX posted_messages_posted_idx ON posted_messages (posted_at);
