-- work.sql — the state changes of the work ledger that run inside a stage's own statements.
--
-- The ledger's protocol (claim with a lease, give back with backoff, dead after max_attempts)
-- is common/wasl_work.c's, shared by every stage through libwasl; what lives here are the two
-- changes a stage makes *inside* its batch statement: completing the claimed rows, fenced on
-- the lease, and enqueueing the next stage. SECURITY INVOKER.
--
-- One open state (migration 0027). A row waiting for a worker and a row a worker holds are both
-- 'pending'; the worker's hold is its lease: owner, lease_until and attempts, none of them
-- indexed, so the claim is a HOT update (no index entry, no dead entry for vacuum). A row is
-- claimable when it is pending, due (not_before <= now()) and under no live lease
-- (lease_until IS NULL OR lease_until < now()); it is held by p_owner when it is pending with
-- owner = p_owner and lease_until > now() (the fence). A finished row is deleted (see
-- wasl_work_complete), a buried one is 'dead' and stays, with its reason; both leave
-- work_pending_idx. ('done' is left in the CHECK for the rows finished before 0027.)
--
-- Rows by id. A statement that names its rows by id (the nudged claim, the fenced completion,
-- the notifier's fetch and marks) writes the state test as a CASE — `CASE state WHEN 'pending'
-- THEN … END` — never as `state = 'pending' AND …`. The two mean the same, but the second lets
-- PostgreSQL prove the predicate of the partial indexes on state (work_pending_idx,
-- notifications_due_idx, notifications_sending_idx), and it then chose to walk one of them —
-- every pending or sending row of the table, with the dead index entries the churn leaves — and
-- filter by id, or, with `id = ANY` as a later key of the index, walk it once per id; a batch
-- of 128 ids cost 128 walks of the whole backlog, and the further a stage fell behind, the
-- slower each of its statements became (EXPLAIN in issue 16's notes; `_bt_checkkeys` and
-- `nocache_index_getattr` on top of PostgreSQL's profile). With the CASE only
-- the primary key can serve the statement: one probe per id, whatever waits. The sweeps, which
-- look for rows by state, keep the partial indexes.

-- wasl_work_complete — deletes the rows among p_ids still held by p_owner: pending, with
-- p_owner's lease not yet run out (the fence: a row whose lease expired may be another worker's
-- by now, and its results must not be committed twice).
--   p_ids    the work rows the caller claimed;  p_owner  the caller's owner name
-- Returns the ids completed (a subset of p_ids; none when every lease was lost). Callers join
-- their results on it, so only fenced rows change anything else.
-- Why a delete (migration 0027): an update to 'done' changed `state`, so it was never HOT — a new
-- tuple and an entry in work_pkey and work_dedupe_key_key per row, and done rows kept growing the
-- table and the unique index that every enqueue probes. A delete writes no index entry. Nothing
-- reads a finished row: the stages read rows they hold, the sweeps pending ones, ops and tests the
-- ticket's history (ticket_events: 'classified', 'routed'…) and the dead rows, which stay. Its
-- dedupe key goes with it, and no trigger can come again for it: a classify row is enqueued
-- only with its new ticket (intake's create, the desk's call), a route row only by the fenced
-- completion of the ticket's one classify row (this function lets one completion through per
-- row, and the row is gone after it) or by a reopen, keyed by the reopen count, which grows
-- under the ticket's lock. A replayed nudge finds no row to claim, as it found a done one.
-- Touches work (delete). Called by the classifier's and the router's batch commits, from a CTE
-- (read it fully: join on it), and by wasl_work_complete() in C.
CREATE OR REPLACE FUNCTION wasl_work_complete(p_ids bigint[], p_owner text)
RETURNS SETOF bigint
LANGUAGE sql VOLATILE AS $$
    DELETE FROM work
     WHERE id = ANY (p_ids)
       -- The fence as a CASE, not "state = 'pending' AND …": see "Rows by id" at the top.
       AND CASE state WHEN 'pending' THEN owner = p_owner AND lease_until > now() END
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

-- wasl_work_claim — leases to p_owner, for p_lease_s seconds and one attempt more each, the rows
-- of stage p_stage among p_ids that are claimable (pending, due, under no live lease: a
-- worker's lease that ran out means it died). A claimable row that has used its max_attempts is
-- buried instead: dead, with the reason. Rows another worker holds locked are skipped (SKIP
-- LOCKED), so two workers nudged about the same rows never wait on each other. The lease is a
-- HOT update (no indexed column changes: "One open state" at the top). One statement: the
-- burial is a CTE (it runs to completion though nothing reads it). The one home of the lease
-- and the burial: the sweep (wasl_work_claim_stale) finds its rows and leases them through this.
--   p_stage  'classify', 'route'…;  p_owner  the worker's owner name;  p_lease_s  the lease
--   p_ids    work row ids (another stage's, unknown, held, done or dead ones are not claimed)
-- Returns the rows claimed (work_id, ticket_id, attempts — including this claim).
-- Touches work (owner, lease_until, attempts, updated_at; a buried row's state, last_error).
-- Called on its own transaction (the claim must be visible before the work starts) by every
-- stage, through wasl_work_claim_ids() in common/wasl_work.c, and by wasl_work_claim_stale.
CREATE OR REPLACE FUNCTION wasl_work_claim(p_stage text, p_owner text, p_lease_s integer,
                                           p_ids bigint[])
RETURNS TABLE (work_id bigint, ticket_id bigint, attempts integer)
LANGUAGE sql VOLATILE AS $$
    WITH cand AS (
        SELECT id
          FROM work
         WHERE id = ANY (p_ids)
           AND stage = p_stage
           AND CASE state WHEN 'pending'             -- "Rows by id", above
               THEN not_before <= now() AND (lease_until IS NULL OR lease_until < now()) END
         ORDER BY id
           FOR UPDATE SKIP LOCKED
    ), buried AS (
        UPDATE work w
           SET state = 'dead', owner = NULL, lease_until = NULL, updated_at = now(),
               last_error = 'gave up after ' || w.attempts || ' attempts'
                            || coalesce(' (last: ' || w.last_error || ')', '')
          FROM cand
         WHERE w.id = cand.id
           AND w.attempts >= w.max_attempts
        RETURNING w.id
    )
    UPDATE work w
       SET owner = p_owner, attempts = w.attempts + 1,
           lease_until = now() + make_interval(secs => p_lease_s), updated_at = now()
      FROM cand
     WHERE w.id = cand.id
       AND w.attempts < w.max_attempts
    RETURNING w.id, w.ticket_id, w.attempts
$$;

-- wasl_work_claim_stale — the sweep: leases, through wasl_work_claim, up to p_limit claimable
-- rows of stage p_stage that nobody nudged about: rows whose lease ran out (a worker died) and
-- unleased rows at least p_min_age_ms old (younger ones are probably on their way through the
-- bus), oldest not_before first. One walk of work_pending_idx that stops at p_limit rows, the
-- rows it picks locked (SKIP LOCKED: two sweeps take different rows); the rows under a live lease
-- it passes are few (the batches in flight) and a leased row's not_before is old, so the expired
-- leases come first. The walk must stay an ordered walk of the index: one condition with OR
-- between two index ranges once made PostgreSQL collect and sort every due row of the stage to
-- keep the oldest few (~70 ms per sweep with a backlog of 8,000).
--   p_stage, p_owner, p_lease_s  as wasl_work_claim;  p_limit  at most this many rows
--   p_min_age_ms  the age an unleased row must have
-- Returns the rows claimed (work_id, ticket_id, attempts), at most p_limit.
-- Touches work, as wasl_work_claim. Called on its own transaction by every stage's sweep,
-- through wasl_work_claim_stale() in common/wasl_work.c.
CREATE OR REPLACE FUNCTION wasl_work_claim_stale(p_stage text, p_owner text,
                                                 p_lease_s integer, p_limit integer,
                                                 p_min_age_ms integer)
RETURNS TABLE (work_id bigint, ticket_id bigint, attempts integer)
LANGUAGE sql VOLATILE AS $$
    SELECT c.work_id, c.ticket_id, c.attempts
      FROM wasl_work_claim(p_stage, p_owner, p_lease_s, ARRAY(
               SELECT id
                 FROM work
                WHERE stage = p_stage
                  AND state = 'pending'
                  AND not_before <= now()
                  AND (lease_until < now()
                       OR (lease_until IS NULL
                           AND created_at < now() - make_interval(secs => p_min_age_ms / 1000.0)))
                ORDER BY stage, not_before, id
                LIMIT p_limit
                  FOR UPDATE SKIP LOCKED)) c
$$;

-- wasl_work_fail — gives claimed rows back after a failure: unleased and due after their
-- backoff, or dead (p_error as the reason) when they have used their last attempt. Fenced on
-- p_owner still holding the row (its lease may have run out, but nobody re-claimed it): a row
-- another worker re-claimed is not touched.
--   p_ids         the rows;  p_owner  the caller's owner name
--   p_error       why, kept as last_error (NULL: 'unknown error')
--   p_backoff_ms  one per row, same order (a stage backs off longer after each attempt)
-- Returns the rows given back (work_id, state: 'pending' or 'dead').
-- Touches work (state, owner, lease_until, not_before, last_error). Called on its own
-- transaction by wasl_work_fail() and wasl_work_give_back() in common/wasl_work.c.
CREATE OR REPLACE FUNCTION wasl_work_fail(p_ids bigint[], p_owner text, p_error text,
                                          p_backoff_ms integer[])
RETURNS TABLE (work_id bigint, state text)
LANGUAGE sql VOLATILE AS $$
    UPDATE work w
       SET owner = NULL, lease_until = NULL, updated_at = now(),
           last_error = coalesce(p_error, 'unknown error'),
           state = CASE WHEN w.attempts >= w.max_attempts THEN 'dead' ELSE 'pending' END,
           not_before = now() + make_interval(secs => coalesce(f.backoff_ms, 0) / 1000.0)
      FROM unnest(p_ids, p_backoff_ms) AS f(id, backoff_ms)
     WHERE w.id = f.id
       AND CASE w.state WHEN 'pending' THEN w.owner = p_owner END -- "Rows by id", above
    RETURNING w.id, w.state
$$;
