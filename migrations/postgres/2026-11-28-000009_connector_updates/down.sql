DROP INDEX connectors_pending_secret_version_idx;
ALTER TABLE connectors
  DROP COLUMN pending_secret_version,
  DROP COLUMN last_update_request_id,
  DROP COLUMN generation;
