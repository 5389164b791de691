-- Static API keys: only the SHA-256 of each key's secret part is kept. tenant_id NULL means
-- the key acts for every tenant (each request then names its tenant).
CREATE TABLE api_keys (
    id          uuid        PRIMARY KEY,
    secret_hash text        NOT NULL,
    tenant_id   text,
    scopes      text        NOT NULL,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
