-- The fencing value of the current token-refresh lease; see migrations/postgres.
ALTER TABLE connectors ADD COLUMN refresh_fence BIGINT;
