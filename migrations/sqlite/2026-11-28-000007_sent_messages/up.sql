-- Idempotent sends; see migrations/postgres. Times are microseconds since the epoch.
CREATE TABLE sent_messages (
    connector_id TEXT   NOT NULL,
    request_id   TEXT   NOT NULL,
    tenant_id    TEXT   NOT NULL,
    fingerprint  TEXT   NOT NULL,
    outcome      TEXT   NOT NULL
        CHECK (outcome IN ('in_flight', 'sent', 'partially_sent', 'unknown')),
    channel_id   TEXT,
    ts           TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (connector_id, request_id)
);

CREATE INDEX sent_messages_created_idx ON sent_messages (created_at);
