-- Proof of landing; see migrations/postgres. Times are microseconds since the epoch.
ALTER TABLE outbound_messages ADD COLUMN attempted_at BIGINT;
ALTER TABLE outbound_messages ADD COLUMN unconfirmed_since BIGINT;
