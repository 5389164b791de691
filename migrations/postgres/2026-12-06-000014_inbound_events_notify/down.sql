DROP TRIGGER inbound_event_appended ON inbound_events;
DROP FUNCTION inbound_event_appended();
