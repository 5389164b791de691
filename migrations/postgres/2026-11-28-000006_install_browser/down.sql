ALTER TABLE oauth_states DROP COLUMN team_id;
ALTER TABLE oauth_states DROP COLUMN browser_hash;
