ALTER TABLE connectors DROP COLUMN pending_secret_version;
ALTER TABLE connectors DROP COLUMN last_update_request_id;
ALTER TABLE connectors DROP COLUMN generation;
