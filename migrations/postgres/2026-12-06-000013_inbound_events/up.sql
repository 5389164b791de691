-- The inbound event log (issue 23): what people do in Slack (messages, mentions, reactions,
-- button clicks, slash commands), one row per connector it belongs to, with a cursor that
-- increases per tenant. An append takes the tenant's next cursor from event_cursors in the
-- same transaction as the insert, so the row lock orders commits: a reader that saw cursor N
-- never finds a smaller one later. A redelivery (same connector and event ID) is stored once.
-- Rows older than the retention are purged; event_cursors keeps each tenant's sequence going.
CREATE TABLE event_cursors (
    tenant_id   text   PRIMARY KEY,
    last_cursor bigint NOT NULL
);

CREATE TABLE inbound_events (
    tenant_id    text        NOT NULL,
    cursor       bigint      NOT NULL,
    connector_id uuid        NOT NULL,
    event_type   text        NOT NULL,
    event_id     text        NOT NULL,
    team_id      text        NOT NULL,
    channel_id   text,
    user_id      text,
    ts           text,
    thread_ts    text,
    text         text,
    from_own_bot boolean     NOT NULL,
    payload_json text        NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, cursor),
    UNIQUE (connector_id, event_id)
);

CREATE INDEX inbound_events_received_idx ON inbound_events (received_at);
