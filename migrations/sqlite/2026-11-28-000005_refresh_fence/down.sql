ALTER TABLE connectors DROP COLUMN refresh_fence;
