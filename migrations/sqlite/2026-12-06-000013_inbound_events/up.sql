-- The inbound event log; see migrations/postgres. Times are microseconds since the epoch.
CREATE TABLE event_cursors (
    tenant_id   TEXT   PRIMARY KEY,
    last_cursor BIGINT NOT NULL
);

CREATE TABLE inbound_events (
    tenant_id    TEXT    NOT NULL,
    cursor       BIGINT  NOT NULL,
    connector_id TEXT    NOT NULL,
    event_type   TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    team_id      TEXT    NOT NULL,
    channel_id   TEXT,
    user_id      TEXT,
    ts           TEXT,
    thread_ts    TEXT,
    text         TEXT,
    from_own_bot BOOLEAN NOT NULL,
    payload_json TEXT    NOT NULL,
    received_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, cursor),
    UNIQUE (connector_id, event_id)
);

CREATE INDEX inbound_events_received_idx ON inbound_events (received_at);
