-- work.sql — wasl_work_* (proto/functions/work.sql): each function's edges.
\pset null '∅'

-- enqueue: default keys, then the same tickets again (nothing: the keys exist).
SELECT work_id, ticket_id FROM wasl_work_enqueue(ARRAY[1, 2]::bigint[], 'classify', NULL);
SELECT count(*) AS again FROM wasl_work_enqueue(ARRAY[1, 2]::bigint[], 'classify', NULL);
-- keys given, one per ticket (the desk's reopen); a key already there is skipped alone.
SELECT ticket_id FROM wasl_work_enqueue(ARRAY[3, 1]::bigint[], 'route',
                                        ARRAY['ticket:3:route:reopen:1', 'ticket:1:classify']);
SELECT ticket_id, stage, state, dedupe_key FROM work ORDER BY id;
-- an empty batch, and a ticket that does not exist (the foreign key refuses it).
SELECT count(*) AS empty FROM wasl_work_enqueue('{}', 'route', NULL);
SELECT count(*) FROM wasl_work_enqueue(ARRAY[999]::bigint[], 'route', NULL);
-- from a CTE of the statement that creates the ticket (intake's batch insert does this).
WITH t AS (
    INSERT INTO tickets (ref, channel, external_id) VALUES ('2600000099', 'api', 'cte-1')
    RETURNING id
), wk AS (
    SELECT w.* FROM wasl_work_enqueue(ARRAY(SELECT id FROM t), 'classify', NULL) w
)
SELECT (SELECT count(*) FROM wk) AS enqueued;
SELECT t.ref, w.stage FROM work w JOIN tickets t ON t.id = w.ticket_id WHERE t.ref = '2600000099';

-- complete: four running rows of stage 'route' (ids by \gset: a skipped insert uses one up):
-- a, b and c claimed by w1 with a live lease, d by w2 with a lease that ran out; e pending.
INSERT INTO work (ticket_id, stage, dedupe_key, state, owner, lease_until, attempts)
VALUES (1, 'route', 'a', 'running', 'w1', now() + interval '30 s', 1),
       (2, 'route', 'b', 'running', 'w1', now() + interval '30 s', 1),
       (3, 'route', 'c', 'running', 'w1', now() + interval '30 s', 1),
       (4, 'route', 'd', 'running', 'w2', now() - interval '1 s', 1);
INSERT INTO work (ticket_id, stage, dedupe_key) VALUES (5, 'route', 'e');
SELECT max(id) FILTER (WHERE dedupe_key = 'a') AS a, max(id) FILTER (WHERE dedupe_key = 'b') AS b,
       max(id) FILTER (WHERE dedupe_key = 'c') AS c, max(id) FILTER (WHERE dedupe_key = 'd') AS d,
       max(id) FILTER (WHERE dedupe_key = 'e') AS e
  FROM work \gset
-- another owner's rows: none completed (the fence).
SELECT count(*) AS other_owner FROM wasl_work_complete(ARRAY[:a, :b]::bigint[], 'w2');
-- the owner's own: only those named.
SELECT w.dedupe_key FROM wasl_work_complete(ARRAY[:a, :b]::bigint[], 'w1') AS done(id)
  JOIN work w USING (id) ORDER BY 1;
-- already done: nothing (idempotent).
SELECT count(*) AS again FROM wasl_work_complete(ARRAY[:a, :b]::bigint[], 'w1');
-- an expired lease: the fence is lost, nothing completed.
SELECT count(*) AS lease_lost FROM wasl_work_complete(ARRAY[:d]::bigint[], 'w2');
-- a pending row (never claimed) and an unknown id: nothing.
SELECT count(*) AS not_running FROM wasl_work_complete(ARRAY[:e, 999999]::bigint[], 'w1');
SELECT dedupe_key, state, owner, lease_until IS NULL AS no_lease, done_at IS NOT NULL AS done
  FROM work WHERE stage = 'route' AND length(dedupe_key) = 1 ORDER BY 1;
-- from a CTE, as the stages' batch commits use it: only fenced rows go on.
WITH done AS (
    SELECT id FROM wasl_work_complete(ARRAY[:c, :d]::bigint[], 'w1') AS id
)
SELECT w.dedupe_key, done.id IS NOT NULL AS committed
  FROM work w LEFT JOIN done ON done.id = w.id WHERE w.id IN (:c, :d) ORDER BY 1;
