-- The outbox and its rate budgets; see migrations/postgres. Times are microseconds since the
-- epoch.
CREATE TABLE outbound_messages (
    id              TEXT    PRIMARY KEY,
    tenant_id       TEXT    NOT NULL,
    connector_id    TEXT    NOT NULL,
    team_id         TEXT    NOT NULL,
    channel_id      TEXT    NOT NULL,
    request_id      TEXT,
    fingerprint     TEXT    NOT NULL,
    body_json       TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    ts              TEXT,
    lease_owner     TEXT,
    lease_until     BIGINT,
    created_at      BIGINT  NOT NULL,
    next_attempt_at BIGINT  NOT NULL,
    deadline_at     BIGINT  NOT NULL,
    finished_at     BIGINT,
    updated_at      BIGINT  NOT NULL,
    UNIQUE (connector_id, request_id)
);

CREATE INDEX outbound_messages_open_idx ON outbound_messages (team_id, channel_id, created_at, id)
    WHERE status IN ('queued', 'sending');
CREATE INDEX outbound_messages_due_idx ON outbound_messages (next_attempt_at)
    WHERE status = 'queued';
CREATE INDEX outbound_messages_sending_idx ON outbound_messages (lease_until)
    WHERE status = 'sending';
CREATE INDEX outbound_messages_tenant_idx ON outbound_messages (tenant_id, created_at DESC, id DESC);
CREATE INDEX outbound_messages_finished_idx ON outbound_messages (finished_at)
    WHERE finished_at IS NOT NULL;

CREATE TABLE delivery_budgets (
    scope        TEXT   PRIMARY KEY,
    tat          BIGINT NOT NULL,
    paused_until BIGINT
);
