-- Proof of landing (issue 24): each queued post carries its message ID in Slack's message
-- metadata. A post whose answer was lost, or whose replica stopped mid-post, is queued again
-- with unconfirmed_since (when the first attempt that may have posted it began): before it is
-- posted again, the channel's history since then is searched for it. Found: SENT. Searched
-- and absent: posted. Cannot be searched before the deadline: UNKNOWN, as before.
-- attempted_at: when the last attempt began (each claim sets it).
ALTER TABLE outbound_messages ADD COLUMN attempted_at timestamptz;
ALTER TABLE outbound_messages ADD COLUMN unconfirmed_since timestamptz;
