DROP TABLE inbound_events;
DROP TABLE event_cursors;
