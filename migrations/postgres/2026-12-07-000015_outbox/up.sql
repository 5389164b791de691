-- The outbox (issue 24): messages SendMessage queued (DELIVERY_QUEUED), posted by any
-- replica's delivery worker in order per (team_id, channel_id), paced by delivery_budgets.
--
-- status: 'queued' (waiting: its turn, its channel's pace, or next_attempt_at), 'sending'
-- (a worker holds it until lease_until and is posting it now), then one of 'sent', 'failed',
-- 'unknown' (the post reached Slack, its answer was lost: never posted again), 'cancelled'.
-- A channel's next message is claimed only when no earlier one (created_at, id) is queued or
-- sending. A 'sending' row whose lease passed belongs to a replica that stopped mid-post.
-- (connector_id, request_id) is unique: a repeated queued send answers the first message.
CREATE TABLE outbound_messages (
    id              uuid        PRIMARY KEY,
    tenant_id       text        NOT NULL,
    connector_id    uuid        NOT NULL,
    team_id         text        NOT NULL,
    channel_id      text        NOT NULL,
    request_id      text,
    fingerprint     text        NOT NULL,
    body_json       text        NOT NULL,
    status          text        NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    ts              text,
    lease_owner     text,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    deadline_at     timestamptz NOT NULL,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL,
    UNIQUE (connector_id, request_id)
);

-- A channel's open messages in order (the head of each channel's queue).
CREATE INDEX outbound_messages_open_idx ON outbound_messages (team_id, channel_id, created_at, id)
    WHERE status IN ('queued', 'sending');
-- What is due.
CREATE INDEX outbound_messages_due_idx ON outbound_messages (next_attempt_at)
    WHERE status = 'queued';
-- Leases to take over.
CREATE INDEX outbound_messages_sending_idx ON outbound_messages (lease_until)
    WHERE status = 'sending';
-- A tenant's messages, newest first (ListMessages).
CREATE INDEX outbound_messages_tenant_idx ON outbound_messages (tenant_id, created_at DESC, id DESC);
-- Finished messages to purge.
CREATE INDEX outbound_messages_finished_idx ON outbound_messages (finished_at)
    WHERE finished_at IS NOT NULL;

-- One rate budget per scope ('channel:<team>:<channel>', 'workspace:<team>') shared by every
-- replica: a GCRA whose theoretical arrival time is tat (a post is allowed while tat is at most
-- the burst's tolerance ahead of now), and a pause Slack asked for with a 429's Retry-After.
CREATE TABLE delivery_budgets (
    scope        text        PRIMARY KEY,
    tat          timestamptz NOT NULL,
    paused_until timestamptz
);
