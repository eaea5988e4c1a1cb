-- 0021_screen_pop: a call that rings for an agent pops on that agent's desk (issue 15, the
-- screen pop; docs/desk.md, "Screen pop").
--
-- A call event gets an id of its own, so that a notification can name it: call_events has no
-- single-column key (its idempotency key is (client, call_id, seq), migration 0011). Adding an
-- identity column rewrites the table once; the index serves the desk's reads by id.
ALTER TABLE call_events ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX call_events_id_key ON call_events (id);
-- The desk's GET /v1/me/calls: an agent's recent rings (and answers), newest first.
CREATE INDEX call_events_agent_idx ON call_events ((data ->> 'agent'), received_at DESC)
    WHERE event IN ('call.ringing', 'call.answered');

-- The pop. Intake records a call's events one at a time under the call's advisory lock
-- (services/intake/calls.c), so the check below sees every earlier event of the call. A ring
-- naming an agent pops; so does an answer naming an agent when that agent was neither rung nor
-- answered for this call before (a PBX that never sends call.ringing). A repeated event is not
-- inserted (ON CONFLICT DO NOTHING) and so pops nothing. The agent must look like an agent id
-- (agents.id's CHECK): PBXs put extensions in an answer's agent. The payload carries ids only,
-- never the caller's number: {"t":"call","a":<agent>,"id":<call_events.id>}; the desk reads
-- the rest (services/desk/calls.c). NOTIFY is delivered at commit only. The channel is the
-- desk's (0020).
CREATE FUNCTION wasl_call_pop_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    v_agent text := NEW.data ->> 'agent';
BEGIN
    IF v_agent IS NULL OR v_agent !~ '^[a-z0-9][a-z0-9._-]{0,63}$' THEN
        RETURN NULL;
    END IF;
    IF NEW.event = 'call.answered' AND EXISTS (
           SELECT 1 FROM call_events e
            WHERE e.call_id = NEW.call_id
              AND coalesce(e.client_id, '') = coalesce(NEW.client_id, '')
              AND e.event IN ('call.ringing', 'call.answered')
              AND e.data ->> 'agent' = v_agent
              AND e.id <> NEW.id) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('wasl_desk', jsonb_build_object('t', 'call', 'a', v_agent,
                                                      'id', NEW.id)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER call_events_screen_pop AFTER INSERT ON call_events
    FOR EACH ROW WHEN (NEW.event IN ('call.ringing', 'call.answered'))
    EXECUTE FUNCTION wasl_call_pop_notify();
