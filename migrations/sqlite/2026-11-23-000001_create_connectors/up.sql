-- Connector metadata for the embedded mode; the same semantics as migrations/postgres.
-- Timestamps are microseconds since the Unix epoch (UTC); IDs are canonical UUID text, whose
-- lexicographic order is their creation order for UUIDv7.
CREATE TABLE connectors (
    id                   TEXT    PRIMARY KEY NOT NULL,
    tenant_id            TEXT    NOT NULL,
    name                 TEXT    NOT NULL,
    workspace_id         TEXT    NOT NULL,
    default_channel_id   TEXT    NOT NULL,
    default_channel_name TEXT    NOT NULL,
    state                TEXT    NOT NULL CHECK (state IN ('creating', 'active', 'deleting')),
    request_id           TEXT,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE UNIQUE INDEX connectors_tenant_request_id_key
    ON connectors (tenant_id, request_id) WHERE request_id IS NOT NULL;

CREATE INDEX connectors_tenant_active_idx
    ON connectors (tenant_id, id) WHERE state = 'active';

CREATE INDEX connectors_unfinished_idx
    ON connectors (updated_at) WHERE state <> 'active';
