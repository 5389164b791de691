-- Rotating Slack tokens; see migrations/postgres. Times are microseconds since the epoch.
ALTER TABLE connectors ADD COLUMN auth_status TEXT NOT NULL DEFAULT 'ok'
    CHECK (auth_status IN ('ok', 'needs_reauthorization'));
ALTER TABLE connectors ADD COLUMN token_expires_at BIGINT;
ALTER TABLE connectors ADD COLUMN refresh_lease_until BIGINT;

CREATE INDEX connectors_token_expiry_idx
    ON connectors (token_expires_at) WHERE token_expires_at IS NOT NULL AND state = 'active';
