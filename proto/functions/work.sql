-- work.sql — the state changes of the work ledger that run inside a stage's own statements.
--
-- The ledger's protocol (claim with a lease, give back with backoff, dead after max_attempts)
-- is common/wasl_work.c's, shared by every stage through libwasl; what lives here are the two
-- changes a stage makes *inside* its batch statement: completing the claimed rows, fenced on
-- the lease, and enqueueing the next stage. SECURITY INVOKER.

-- wasl_work_complete — marks done the rows among p_ids still running under p_owner with a
-- lease that has not run out (the fence: a row whose lease expired may be another worker's by
-- now, and its results must not be committed twice).
--   p_ids    the work rows the caller claimed;  p_owner  the caller's owner name
-- Returns the ids completed (a subset of p_ids; none when every lease was lost). Callers join
-- their results on it, so only fenced rows change anything else.
-- Touches work (state, done_at, lease_until). Called by the classifier's and the router's
-- batch commits, from a CTE (read it fully: join on it), and by wasl_work_complete() in C.
CREATE OR REPLACE FUNCTION wasl_work_complete(p_ids bigint[], p_owner text)
RETURNS SETOF bigint
LANGUAGE sql VOLATILE AS $$
    UPDATE work
       SET state = 'done', done_at = now(), updated_at = now(), lease_until = NULL
     WHERE id = ANY (p_ids)
       AND state = 'running'
       AND owner = p_owner
       AND lease_until > now()
    RETURNING id
$$;

-- wasl_work_enqueue — adds work rows of stage p_stage, one per ticket, unless a row with the
-- same dedupe key exists (so a retried batch, or a replayed event, enqueues nothing twice).
--   p_tickets      the tickets;  p_stage  'classify', 'route'…
--   p_dedupe_keys  one per ticket, same order (NULL: 'ticket:<id>:<stage>')
-- Returns the rows inserted (work_id, ticket_id); a ticket whose key existed has none.
-- Touches work (insert). Called by intake's ticket creation (classify), the classifier's batch
-- commit (route), the desk's reopen (route, keyed by the reopen count) and wasl_work_enqueue()
-- in C. From a CTE: read its rows fully.
CREATE OR REPLACE FUNCTION wasl_work_enqueue(p_tickets bigint[], p_stage text,
                                             p_dedupe_keys text[])
RETURNS TABLE (work_id bigint, ticket_id bigint)
LANGUAGE sql VOLATILE AS $$
    INSERT INTO work (ticket_id, stage, dedupe_key)
    SELECT t.id, p_stage, coalesce(p_dedupe_keys[t.i], 'ticket:' || t.id || ':' || p_stage)
      FROM unnest(p_tickets) WITH ORDINALITY AS t(id, i)
     ORDER BY t.i
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id, ticket_id
$$;
