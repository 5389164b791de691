-- No statement reads outbound_messages by next_attempt_at alone: the claim walks each
-- channel's open messages (outbound_messages_open_idx) and checks its head's next_attempt_at.
-- The index was written on every enqueue and every change of status, and its newest page was
-- a hot spot shared by every enqueue.
DROP INDEX outbound_messages_due_idx;
