-- UpdateConnector: a generation that moves with every update (the etag), the request ID of
-- the last update (a retried update is answered, not refused as stale), and the secret
-- version a token replacement staged: recorded here before the secret store makes it current,
-- so the row is the commit point and the reconciler finishes a promotion an updater left.
ALTER TABLE connectors
  ADD COLUMN generation BIGINT NOT NULL DEFAULT 1,
  ADD COLUMN last_update_request_id TEXT,
  ADD COLUMN pending_secret_version TEXT;

CREATE INDEX connectors_pending_secret_version_idx ON connectors (updated_at)
  WHERE pending_secret_version IS NOT NULL;
