-- Every change to a connector's row (deleted, its state, its auth status, its token's expiry
-- after a refresh or a replacement) is announced on channel `connector_changes`, payload the
-- connector's ID, at commit. Replicas LISTEN and drop what they cached about it.
CREATE FUNCTION connector_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('connector_changes', OLD.id::text);
  RETURN NULL;
END
$$;

CREATE TRIGGER connector_changed
AFTER UPDATE OR DELETE ON connectors
FOR EACH ROW EXECUTE FUNCTION connector_changed();
