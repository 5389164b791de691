-- Static API keys; see migrations/postgres. Times are microseconds since the epoch.
CREATE TABLE api_keys (
    id          TEXT   PRIMARY KEY NOT NULL,
    secret_hash TEXT   NOT NULL,
    tenant_id   TEXT,
    scopes      TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
