ALTER TABLE sent_messages DROP COLUMN message_id;
