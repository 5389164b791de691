-- Pending Slack installs: one row per GetOAuthV2URL, consumed (deleted) by the callback.
-- Only the SHA-256 of the state is kept, so a copy of this table cannot forge a callback.
CREATE TABLE oauth_states (
    state_hash      text        PRIMARY KEY,
    tenant_id       text        NOT NULL,
    name            text        NOT NULL,
    default_channel text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);

CREATE INDEX oauth_states_expires_idx ON oauth_states (expires_at);
