ALTER TABLE outbound_messages DROP COLUMN unconfirmed_since;
ALTER TABLE outbound_messages DROP COLUMN attempted_at;
