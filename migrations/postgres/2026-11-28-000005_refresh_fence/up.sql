-- The fencing value of the current token-refresh lease: only its holder may renew it or
-- record the refresh's outcome.
ALTER TABLE connectors ADD COLUMN refresh_fence bigint;
