DROP INDEX connectors_unidentified_idx;
ALTER TABLE connectors DROP COLUMN bot_user_id;
ALTER TABLE connectors DROP COLUMN slack_app_id;
