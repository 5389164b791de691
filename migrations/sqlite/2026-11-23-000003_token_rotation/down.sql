DROP INDEX connectors_token_expiry_idx;
ALTER TABLE connectors DROP COLUMN refresh_lease_until;
ALTER TABLE connectors DROP COLUMN token_expires_at;
ALTER TABLE connectors DROP COLUMN auth_status;
