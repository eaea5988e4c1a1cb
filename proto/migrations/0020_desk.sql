-- 0020_desk: people sign in to the desk (issue 15), and the desk hears every committed change.
-- The design is docs/desk.md.

-- Who may sign in, and as what. The hash is libsodium's Argon2id string (crypto_pwhash_str); an
-- agent without one cannot sign in. Only waslctl (`agent passwd`) and the desk (a person changing
-- their own) write it, through wasl_agents_set_password (proto/functions/agents.sql); the other
-- daemons' roles cannot even read it (proto/grants.sql, the desk block).
ALTER TABLE agents
    ADD COLUMN password_hash       text
               CHECK (password_hash IS NULL OR password_hash LIKE '$argon2id$%'),
    ADD COLUMN role                text NOT NULL DEFAULT 'agent'
               CHECK (role IN ('agent', 'supervisor', 'admin')),
    ADD COLUMN password_changed_at timestamptz;

-- Live events: every state change already writes ticket_events or agent_events in its own
-- transaction (proto/functions/), so a trigger on those two tables sees every change of every
-- writer — router, intake, desk, waslctl — and NOTIFY is delivered at commit only, never for a
-- rolled-back change. The payload carries ids and kinds, no personal data (and stays far below
-- NOTIFY's 8000 bytes):
--   {"t":"ticket","id":<ticket>,"k":<kind>,"a":<agent|null>,"q":<queue|null>,"o":<offer|null>}
--   {"t":"agent","a":<agent>,"k":<kind>,"p":<presence|null>,"at":<ms since the epoch>}
-- SECURITY DEFINER: the agent and queue are looked up whatever the inserting role may read (the
-- classifier may not read offers); it reads two rows by primary key and writes nothing.
CREATE FUNCTION wasl_desk_notify() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    v_offer    bigint;
    v_agent    text;
    v_queue    text;
    v_assignee text;
    v_payload  jsonb;
BEGIN
    IF TG_TABLE_NAME = 'ticket_events' THEN
        IF jsonb_typeof(NEW.data -> 'offer') = 'number' THEN
            v_offer := (NEW.data ->> 'offer')::bigint;
        END IF;
        IF jsonb_typeof(NEW.data -> 'agent') = 'string' THEN
            v_agent := NEW.data ->> 'agent';
        ELSIF v_offer IS NOT NULL THEN
            SELECT o.agent_id INTO v_agent FROM offers o WHERE o.id = v_offer;
        END IF;
        SELECT t.queue, t.assignee INTO v_queue, v_assignee FROM tickets t WHERE t.id = NEW.ticket_id;
        v_payload := jsonb_build_object('t', 'ticket', 'id', NEW.ticket_id, 'k', NEW.kind,
                                        'a', coalesce(v_agent, v_assignee), 'q', v_queue,
                                        'o', v_offer);
    ELSE
        v_payload := jsonb_build_object('t', 'agent', 'a', NEW.agent_id, 'k', NEW.kind,
                                        'p', CASE WHEN NEW.kind = 'presence'
                                                  THEN NEW.data ->> 'to'
                                                  WHEN NEW.kind = 'presence.away' THEN 'away'
                                                  WHEN NEW.kind IN ('agent.removed',
                                                                    'presence.expired')
                                                  THEN 'offline'
                                             END,
                                        'at', floor(extract(epoch FROM NEW.at) * 1000)::bigint);
    END IF;
    PERFORM pg_notify('wasl_desk', v_payload::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER ticket_events_desk_notify AFTER INSERT ON ticket_events
    FOR EACH ROW EXECUTE FUNCTION wasl_desk_notify();
CREATE TRIGGER agent_events_desk_notify AFTER INSERT ON agent_events
    FOR EACH ROW EXECUTE FUNCTION wasl_desk_notify();
