-- Proof of landing for immediate sends (issue 24): a keyed send's post carries a message ID in
-- Slack's message metadata, as queued posts do, and its claim keeps it. A repeat of a send whose
-- answer was lost (or whose replica stopped mid-send) searches the channel's history for it:
-- found, the repeat answers that message; searched and absent, the key is claimed again and
-- posted once. NULL: a send that carries no ID (a scheduled one, or one claimed before this).
ALTER TABLE sent_messages ADD COLUMN message_id uuid;
