-- An install is bound to the browser that opened its link: the SHA-256 of a nonce kept in
-- that browser's cookie. team_id pins the workspace the install must land in, if asked.
ALTER TABLE oauth_states ADD COLUMN browser_hash text;
ALTER TABLE oauth_states ADD COLUMN team_id text;
