-- Pending Slack installs; see migrations/postgres. Times are microseconds since the epoch.
CREATE TABLE oauth_states (
    state_hash      TEXT   PRIMARY KEY NOT NULL,
    tenant_id       TEXT   NOT NULL,
    name            TEXT   NOT NULL,
    default_channel TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);

CREATE INDEX oauth_states_expires_idx ON oauth_states (expires_at);
