-- The sweep fails queued messages past their deadline every second: an index of the queued
-- ones by deadline keeps that a probe, not a scan of the backlog (90 ms at 50,000 queued).
CREATE INDEX outbound_messages_deadline_idx ON outbound_messages (deadline_at)
  WHERE status = 'queued';
