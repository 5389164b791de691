-- Rotating Slack tokens: when the current token expires (a copy of the secret's expires_at, so
-- the refresher can find due tokens without reading every secret), who holds the right to
-- refresh it (a lease, so that one replica refreshes at a time), and whether the last refresh
-- failed so a person must reinstall.
ALTER TABLE connectors
    ADD COLUMN auth_status text NOT NULL DEFAULT 'ok'
        CHECK (auth_status IN ('ok', 'needs_reauthorization')),
    ADD COLUMN token_expires_at timestamptz,
    ADD COLUMN refresh_lease_until timestamptz;

CREATE INDEX connectors_token_expiry_idx
    ON connectors (token_expires_at) WHERE token_expires_at IS NOT NULL AND state = 'active';
