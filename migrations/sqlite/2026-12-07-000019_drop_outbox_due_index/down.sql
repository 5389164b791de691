CREATE INDEX outbound_messages_due_idx ON outbound_messages (next_attempt_at)
    WHERE status = 'queued';
