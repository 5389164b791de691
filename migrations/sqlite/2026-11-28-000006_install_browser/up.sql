-- The browser an install is bound to, and the pinned workspace; see migrations/postgres.
ALTER TABLE oauth_states ADD COLUMN browser_hash TEXT;
ALTER TABLE oauth_states ADD COLUMN team_id TEXT;
