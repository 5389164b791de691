-- Proof of landing for immediate sends; see migrations/postgres.
ALTER TABLE sent_messages ADD COLUMN message_id TEXT;
