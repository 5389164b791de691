DROP INDEX connectors_token_expiry_idx;
ALTER TABLE connectors DROP COLUMN auth_status, DROP COLUMN token_expires_at, DROP COLUMN refresh_lease_until;
