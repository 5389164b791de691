-- Connector metadata. The bot token is never stored here: it lives in the secret store under
-- a name derived from (tenant_id, id).
CREATE TABLE connectors (
    id                   uuid        PRIMARY KEY,
    tenant_id            text        NOT NULL,
    name                 text        NOT NULL,
    workspace_id         text        NOT NULL,
    default_channel_id   text        NOT NULL,
    default_channel_name text        NOT NULL,
    -- Lifecycle: 'creating' (row written, secret maybe), 'active' (both exist, visible to
    -- clients), 'deleting' (secret maybe, row goes last). The reconciler finishes rows left
    -- 'creating' or 'deleting' past a grace period.
    state                text        NOT NULL CHECK (state IN ('creating', 'active', 'deleting')),
    -- Optional idempotency key of the CreateConnector that made the row, scoped to the tenant.
    request_id           text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT connectors_tenant_name_key UNIQUE (tenant_id, name)
);

CREATE UNIQUE INDEX connectors_tenant_request_id_key
    ON connectors (tenant_id, request_id) WHERE request_id IS NOT NULL;

-- Listing: a tenant's active connectors in id (= creation, for UUIDv7) order.
CREATE INDEX connectors_tenant_active_idx
    ON connectors (tenant_id, id) WHERE state = 'active';

-- The reconciler's scan for unfinished rows.
CREATE INDEX connectors_unfinished_idx
    ON connectors (updated_at) WHERE state <> 'active';
