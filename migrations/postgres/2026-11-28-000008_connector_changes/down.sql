DROP TRIGGER connector_changed ON connectors;
DROP FUNCTION connector_changed();
