-- Every event appended to the inbound log is announced on channel `inbound_events`, payload
-- the tenant, at commit (PostgreSQL folds repeats within one transaction), so replicas wake
-- the streams following that tenant's log (StreamEvents) at once rather than polling.
CREATE FUNCTION inbound_event_appended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('inbound_events', NEW.tenant_id);
  RETURN NULL;
END
$$;

CREATE TRIGGER inbound_event_appended
AFTER INSERT ON inbound_events
FOR EACH ROW EXECUTE FUNCTION inbound_event_appended();
