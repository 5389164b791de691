-- UpdateConnector's columns; see migrations/postgres.
ALTER TABLE connectors ADD COLUMN generation BIGINT NOT NULL DEFAULT 1;
ALTER TABLE connectors ADD COLUMN last_update_request_id TEXT;
ALTER TABLE connectors ADD COLUMN pending_secret_version TEXT;
