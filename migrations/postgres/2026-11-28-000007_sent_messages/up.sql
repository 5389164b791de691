-- Idempotent sends: one row per connector and caller-chosen request_id, claimed before Slack
-- is called ('in_flight') and finished with what happened ('sent', 'partially_sent' or
-- 'unknown': Slack's answer was lost). A claim whose send posted nothing is deleted. Rows
-- older than 24 hours no longer count and are purged by the periodic pass.
CREATE TABLE sent_messages (
    connector_id uuid        NOT NULL,
    request_id   text        NOT NULL,
    tenant_id    text        NOT NULL,
    fingerprint  text        NOT NULL,
    outcome      text        NOT NULL
        CHECK (outcome IN ('in_flight', 'sent', 'partially_sent', 'unknown')),
    channel_id   text,
    ts           text,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (connector_id, request_id)
);

CREATE INDEX sent_messages_created_idx ON sent_messages (created_at);
