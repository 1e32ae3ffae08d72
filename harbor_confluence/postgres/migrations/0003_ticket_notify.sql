-- Live changes: every insert or update of a ticket (a change of state, an approval, a
-- claim) is announced on the channel harbor_tickets, delivered when its transaction
-- commits, as {"id": ..., "state": ...}.  A trigger, so a change made by hand is
-- announced too (and then refused by the seals when anyone acts on it).

CREATE FUNCTION harbor_ticket_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('harbor_tickets',
                      json_build_object('id', NEW.id, 'state', NEW.state)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER harbor_tickets_notify
    AFTER INSERT OR UPDATE ON harbor_tickets
    FOR EACH ROW EXECUTE FUNCTION harbor_ticket_notify();
