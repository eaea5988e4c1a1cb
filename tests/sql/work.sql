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

-- complete: four held rows of stage 'route' (ids by \gset: a skipped insert uses one up): a, b
-- and c held by w1 with a live lease, d by w2 with a lease that ran out; e pending, unleased.
-- A held row is 'pending' with an owner and a lease (migration 0027).
INSERT INTO work (ticket_id, stage, dedupe_key, state, owner, lease_until, attempts)
VALUES (1, 'route', 'a', 'pending', 'w1', now() + interval '30 s', 1),
       (2, 'route', 'b', 'pending', 'w1', now() + interval '30 s', 1),
       (3, 'route', 'c', 'pending', 'w1', now() + interval '30 s', 1),
       (4, 'route', 'd', 'pending', 'w2', now() - interval '1 s', 1);
INSERT INTO work (ticket_id, stage, dedupe_key) VALUES (5, 'route', 'e');
SELECT max(id) FILTER (WHERE dedupe_key = 'a') AS a, max(id) FILTER (WHERE dedupe_key = 'b') AS b,
       max(id) FILTER (WHERE dedupe_key = 'c') AS c, max(id) FILTER (WHERE dedupe_key = 'd') AS d,
       max(id) FILTER (WHERE dedupe_key = 'e') AS e
  FROM work \gset
-- another owner's rows: none completed (the fence).
SELECT count(*) AS other_owner FROM wasl_work_complete(ARRAY[:a, :b]::bigint[], 'w2');
-- the owner's own: only those named, and a completed row is gone (deleted: no index entry).
SELECT done.id IN (:a, :b) AS named FROM wasl_work_complete(ARRAY[:a, :b]::bigint[], 'w1') AS done(id);
-- already done: nothing (idempotent).
SELECT count(*) AS again FROM wasl_work_complete(ARRAY[:a, :b]::bigint[], 'w1');
-- an expired lease: the fence is lost, nothing completed.
SELECT count(*) AS lease_lost FROM wasl_work_complete(ARRAY[:d]::bigint[], 'w2');
-- a pending row (never claimed) and an unknown id: nothing.
SELECT count(*) AS not_held FROM wasl_work_complete(ARRAY[:e, 999999]::bigint[], 'w1');
SELECT dedupe_key, state, owner, lease_until IS NULL AS no_lease
  FROM work WHERE stage = 'route' AND length(dedupe_key) = 1 ORDER BY 1;
-- from a CTE, as the stages' batch commits use it: only fenced rows go on.
WITH done AS (
    SELECT id FROM wasl_work_complete(ARRAY[:c, :d]::bigint[], 'w1') AS id
)
SELECT w.dedupe_key, done.id IS NOT NULL AS committed
  FROM (VALUES (:c, 'c'), (:d, 'd')) AS w(id, dedupe_key) LEFT JOIN done ON done.id = w.id
 ORDER BY 1;
-- a completed row's key is free again, and the other keys still stop a repeated trigger (the
-- stages never enqueue a finished row's key again: proto/functions/work.sql, wasl_work_complete).
SELECT ticket_id FROM wasl_work_enqueue(ARRAY[1, 5]::bigint[], 'route', ARRAY['a', 'e']);

-- claim: a fresh stage 'claimtest' with pending rows p1 (due), p2 (due, used 7 of 8 attempts),
-- p3 (due later: backing off), x1 (held by w9 with a live lease), x2 (held by w9, lease ran
-- out), g1 (due, used all its attempts), o1 (another stage's, due).
INSERT INTO work (ticket_id, stage, dedupe_key, state, owner, lease_until, attempts, not_before,
                  created_at, last_error)
VALUES (1, 'claimtest', 'p1', 'pending', NULL, NULL, 0, now(), now() - interval '1 min', NULL),
       (2, 'claimtest', 'p2', 'pending', NULL, NULL, 7, now(), now() - interval '1 min', 'boom'),
       (3, 'claimtest', 'p3', 'pending', NULL, NULL, 1, now() + interval '1 h',
        now() - interval '1 min', 'later'),
       (4, 'claimtest', 'x1', 'pending', 'w9', now() + interval '30 s', 1, now(),
        now() - interval '1 min', NULL),
       (5, 'claimtest', 'x2', 'pending', 'w9', now() - interval '1 s', 1, now(),
        now() - interval '1 min', NULL),
       (1, 'claimtest', 'g1', 'pending', NULL, NULL, 8, now(), now() - interval '1 min', 'again'),
       (2, 'othertest', 'o1', 'pending', NULL, NULL, 0, now(), now() - interval '1 min', NULL);
SELECT max(id) FILTER (WHERE dedupe_key = 'p1') AS p1, max(id) FILTER (WHERE dedupe_key = 'p2') AS p2,
       max(id) FILTER (WHERE dedupe_key = 'p3') AS p3, max(id) FILTER (WHERE dedupe_key = 'x1') AS x1,
       max(id) FILTER (WHERE dedupe_key = 'x2') AS x2, max(id) FILTER (WHERE dedupe_key = 'g1') AS g1,
       max(id) FILTER (WHERE dedupe_key = 'o1') AS o1
  FROM work \gset
-- by ids: the due ones and the expired lease are claimed, one attempt more; the backing-off,
-- the live lease, the other stage's and an unknown id are not; g1 is buried with its reason.
-- The claim is a HOT update (no indexed column changes): the transaction's own statistics
-- count every lease among the HOT updates (the burial changes state: not HOT).
BEGIN;
-- (pending counts of earlier transactions may not be flushed yet: count this one's difference)
SELECT n_tup_upd AS upd0, n_tup_hot_upd AS hot0
  FROM pg_stat_xact_user_tables WHERE relname = 'work' \gset
SELECT w.dedupe_key, c.ticket_id, c.attempts
  FROM wasl_work_claim('claimtest', 'w1', 30,
                       ARRAY[:p1, :p2, :p3, :x1, :x2, :g1, :o1, 999999]::bigint[]) c
  JOIN work w ON w.id = c.work_id ORDER BY 1;
SELECT n_tup_upd - :upd0 AS updated, n_tup_hot_upd - :hot0 AS hot
  FROM pg_stat_xact_user_tables WHERE relname = 'work';
COMMIT;
SELECT dedupe_key, state, owner, lease_until > now() AS leased, last_error
  FROM work WHERE stage IN ('claimtest', 'othertest') ORDER BY dedupe_key;
-- claimed already (live lease): nothing; an empty batch: nothing.
SELECT count(*) AS again FROM wasl_work_claim('claimtest', 'w2', 30, ARRAY[:p1]::bigint[]);
SELECT count(*) AS empty FROM wasl_work_claim('claimtest', 'w2', 30, '{}');

-- fail: w1 gives p1 and p2 back with their own backoff: p1 pending again, due later; p2 has used
-- its 8th attempt and is dead with the reason. Another owner's give-back changes nothing.
SELECT count(*) AS not_mine FROM wasl_work_fail(ARRAY[:x2]::bigint[], 'w2', 'nope', '{0}');
SELECT w.dedupe_key, f.state
  FROM wasl_work_fail(ARRAY[:p1, :p2]::bigint[], 'w1', 'db down', ARRAY[60000, 0]) f
  JOIN work w ON w.id = f.work_id ORDER BY 1;
SELECT dedupe_key, state, owner, not_before > now() + interval '59 s' AS backing_off, last_error
  FROM work WHERE dedupe_key IN ('p1', 'p2', 'x2') ORDER BY 1;
-- a NULL reason still says something (a dead row must).
SELECT w.dedupe_key, f.state
  FROM wasl_work_fail(ARRAY[:x2]::bigint[], 'w1', NULL, '{0}') f JOIN work w ON w.id = f.work_id;
SELECT last_error FROM work WHERE dedupe_key = 'x2';

-- the sweep: oldest not_before first, at most p_limit: a row whose lease ran out (its worker
-- died; it was due long before it was claimed, so it comes early) and the unleased due rows old
-- enough; a row under a live lease is passed over, and an unleased row younger than
-- p_min_age_ms waits for its nudge.
UPDATE work SET owner = 'w9', lease_until = now() - interval '1 s', attempts = 1,
       not_before = now() - interval '1 min' WHERE id = :x1;
UPDATE work SET not_before = now() - interval '1 s' WHERE id IN (:p1, :p3);
INSERT INTO work (ticket_id, stage, dedupe_key, owner, lease_until, not_before)
VALUES (5, 'claimtest', 'live', 'w8', now() + interval '30 s', now() - interval '2 min');
INSERT INTO work (ticket_id, stage, dedupe_key) VALUES (4, 'claimtest', 'young');
SELECT w.dedupe_key, c.attempts
  FROM wasl_work_claim_stale('claimtest', 'w3', 30, 2, 10000) c
  JOIN work w ON w.id = c.work_id ORDER BY c.work_id = :x1 DESC, 1;
SELECT w.dedupe_key FROM wasl_work_claim_stale('claimtest', 'w3', 30, 10, 10000) c
  JOIN work w ON w.id = c.work_id ORDER BY 1;
SELECT count(*) AS nothing_left FROM wasl_work_claim_stale('claimtest', 'w3', 30, 10, 10000);
SELECT w.dedupe_key FROM wasl_work_claim_stale('claimtest', 'w3', 30, 10, 0) c
  JOIN work w ON w.id = c.work_id ORDER BY 1;
SELECT dedupe_key, state, owner FROM work WHERE stage = 'claimtest' ORDER BY 1;
