-- Immediate sends with a request_id are recorded in the outbox too (issue 24), already final
-- (sent, failed or unknown), so GetMessage answers for every send that has a request_id.
-- delivery: 'queued' rows are worked by the delivery workers; 'immediate' rows only record
-- what an immediate send did and are never claimed (they are never queued or sending).
ALTER TABLE outbound_messages ADD COLUMN delivery TEXT NOT NULL DEFAULT 'queued';
