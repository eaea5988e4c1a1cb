-- tickets.sql — the status changes of tickets after intake created them: routing, SLA
-- escalation, overflow, the staffing mark, and the desk's notes, transfers, resolutions and
-- reopenings (offer acceptance is wasl_offers_accept). Every change writes its ticket_events
-- row in the same statement. Domain times (routed_at, escalated_at, overflowed_at,
-- no_agent_since, resolved_at, wrap-up) use wasl_now(); updated_at stays now(). SECURITY
-- INVOKER. Called from one statement each, so a batch costs one round trip.

-- wasl_queue_staffed — whether an eligible agent is present for a waiting ticket of queue
-- p_queue with skills p_skills in language p_language: enabled, available or busy with a live
-- heartbeat, serving the queue and every skill, speaking the language (any agent for a ticket
-- without one or in 'mixed'). The overflow timer's condition, shared by wasl_tickets_route
-- (a ticket routed where nobody is present starts its timer at once) and
-- wasl_tickets_mark_staffing. Reads agents; changes nothing.
CREATE OR REPLACE FUNCTION wasl_queue_staffed(p_queue text, p_skills text[], p_language text)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1
                     FROM agents a
                    WHERE a.enabled
                      AND a.presence IN ('available', 'busy')
                      AND a.presence_until > wasl_now()
                      AND a.skills ? p_queue
                      AND a.skills ?& p_skills
                      AND (p_language IS NULL OR p_language = 'mixed'
                           OR p_language = ANY (a.languages)))
$$;

-- wasl_tickets_route — commits a batch of routing decisions, fenced on the work lease: only the
-- rows wasl_work_complete completes for p_owner change their ticket. A routed ticket gets its
-- queue, priority, skills, rule and SLA deadlines, keeps its place in line (a callback keeps the
-- call's first event, when it came earlier) and becomes 'routed' unless it moved on already;
-- routed where no eligible agent is present (wasl_queue_staffed, asked once per queue, skills
-- and language of the batch), its overflow timer starts now (no_agent_since), so that the
-- router's staffing pass need not run after every batch to find it; an
-- automatic answer changes nothing the ticket shows (its client cannot tell a party from a
-- stranger by its ticket), it only adds its event.
--   p_batch  jsonb array of {work_id, ticket_id, queue, priority, prio_rank, skills, rule,
--            fr_due, res_due (epoch seconds), event, notes (notifications: kind, channel,
--            recipient, lang, params), answered}
--   p_owner  the router's work owner name
-- Returns one row per notification enqueued, or one per committed work row without any
-- (notification_id, channel and kind NULL), in work-row order. A work row whose lease was lost
-- has no row.
-- Touches work (through wasl_work_complete), tickets, ticket_events ('routed',
-- 'auto_answered'), notifications (through wasl_notifications_enqueue; key
-- 'ticket:<id>:<kind>'). Called by the router's route stage.
CREATE OR REPLACE FUNCTION wasl_tickets_route(p_batch jsonb, p_owner text)
RETURNS TABLE (work_id bigint, notification_id bigint, channel text, ticket_id bigint,
               kind text)
LANGUAGE sql VOLATILE AS $$
    WITH input AS (
        SELECT *
          FROM jsonb_to_recordset(p_batch)
            AS x(work_id bigint, ticket_id bigint, queue text, priority text,
                 prio_rank smallint, skills text[], rule text, fr_due double precision,
                 res_due double precision, event jsonb, notes jsonb, answered boolean)
    ), clock AS MATERIALIZED (
        -- read once: in the SET list wasl_now() was computed twice for every ticket
        SELECT wasl_now() AS now
    ), done AS (
        SELECT id FROM wasl_work_complete(ARRAY(SELECT work_id FROM input), p_owner) AS id
    ), fenced AS MATERIALIZED (
        -- the decisions whose lease held: every write below reads these, and only these
        SELECT i.* FROM input i JOIN done d ON d.id = i.work_id
    ), groups AS MATERIALIZED (
        -- the batch's queue, skills and language, each once: with the filter below in the
        -- same query, PostgreSQL pushed it under the DISTINCT and asked wasl_queue_staffed
        -- for every ticket (16,000 calls for 16,000 tickets; pg_stat_statements)
        SELECT DISTINCT i.queue, i.skills, t.language
          FROM fenced i
          JOIN tickets t ON t.id = i.ticket_id
    ), unstaffed AS MATERIALIZED (
        -- once per group: inlined, it ran per ticket against every ticket (128 x 128)
        SELECT g.queue, g.skills, g.language
          FROM groups g
         WHERE NOT wasl_queue_staffed(g.queue, g.skills, g.language)
    ), upd AS (
        UPDATE tickets t
           SET queue = i.queue, priority = i.priority, prio_rank = i.prio_rank,
               skills = i.skills, route_rule = i.rule, routed_at = c.now,
               first_response_due = to_timestamp(i.fr_due),
               resolution_due = to_timestamp(i.res_due),
               waiting_since = coalesce(t.waiting_since,
                                        least(t.received_at,
                                              (SELECT min(c2.received_at)
                                                 FROM call_events c1
                                                 JOIN call_events c2
                                                   ON c2.call_id = c1.call_id
                                                  AND c2.client_id IS NOT DISTINCT FROM
                                                      c1.client_id
                                                WHERE c1.ticket_id = t.id))),
               no_agent_since = CASE WHEN t.status IN ('received', 'classified')
                                      AND EXISTS (SELECT 1
                                                    FROM unstaffed u
                                                   WHERE u.queue = i.queue
                                                     AND u.skills = i.skills
                                                     AND u.language IS NOT DISTINCT FROM
                                                         t.language)
                                     THEN c.now END,
               escalated_at = NULL, overflowed_at = NULL,
               updated_at = now(),
               status = CASE WHEN t.status IN ('received', 'classified') THEN 'routed'
                             ELSE t.status END
          FROM fenced i
         CROSS JOIN clock c
         WHERE t.id = i.ticket_id
        RETURNING t.id
    ), ev AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT i.ticket_id, 'routed', 'router', i.event FROM fenced i
    ), ack AS (
        SELECT a.*
          FROM wasl_notifications_enqueue((
                   SELECT jsonb_agg(jsonb_build_object(
                              'ticket_id', i.ticket_id, 'kind', n->>'kind',
                              'channel', n->>'channel', 'recipient', n->>'recipient',
                              'lang', n->>'lang', 'template', n->>'kind', 'params', n->'params',
                              'dedupe_key', 'ticket:' || i.ticket_id || ':' || (n->>'kind'))
                          ORDER BY i.work_id, n.ord)
                     FROM fenced i
                    CROSS JOIN jsonb_array_elements(CASE jsonb_typeof(i.notes)
                                                    WHEN 'array' THEN i.notes
                                                    ELSE '[]' END) WITH ORDINALITY AS n(n, ord)
               )) a
    ), aev AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT i.ticket_id, 'auto_answered', 'router', i.event->'auto_answer_detail'
          FROM fenced i
         WHERE i.answered
    )
    SELECT i.work_id, a.notification_id, a.channel, i.ticket_id, a.kind
      FROM fenced i
      LEFT JOIN ack a ON a.ticket_id = i.ticket_id
     ORDER BY i.work_id, a.notification_id
$$;

-- wasl_tickets_escalate — SLA breaches: up to p_limit waiting or assigned tickets whose first
-- response (while waiting) or resolution is overdue, not escalated yet, go one step up in
-- priority to the supervisor queue p_queue (skills p_skills), their live offer is withdrawn,
-- and an alert goes to p_alert (once per ticket and queue it breached in).
-- Returns one row per alert enqueued (notification_id, ticket_id, escalated: how many tickets
-- this call escalated), or one row (0, 0, escalated) when it enqueued none.
-- Touches tickets, offers and ticket_events (through wasl_offers_withdraw), ticket_events
-- ('escalated'), notifications (through wasl_notifications_enqueue). Called by the router.
CREATE OR REPLACE FUNCTION wasl_tickets_escalate(p_queue text, p_skills text[], p_alert text,
                                                 p_limit integer DEFAULT 500)
RETURNS TABLE (notification_id bigint, ticket_id bigint, escalated bigint)
LANGUAGE sql VOLATILE AS $$
    WITH c AS (
        SELECT id, ref, queue AS old_queue, priority AS old_priority, status, language,
               CASE WHEN status = 'routed' AND first_response_due <= wasl_now()
                    THEN 'first_response' ELSE 'resolution' END AS breach,
               CASE WHEN status = 'routed' AND first_response_due <= wasl_now()
                    THEN first_response_due ELSE resolution_due END AS due,
               greatest(coalesce(prio_rank, 2) - 1, 0) AS new_rank
          FROM tickets
         WHERE status IN ('routed', 'assigned')
           AND escalated_at IS NULL
           AND ((status = 'routed' AND first_response_due <= wasl_now())
                OR resolution_due <= wasl_now())
         ORDER BY id
         LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), up AS (
        UPDATE tickets t
           SET queue = p_queue, skills = p_skills, prio_rank = c.new_rank,
               priority = (ARRAY['urgent', 'high', 'normal', 'low'])[c.new_rank + 1],
               escalated_at = wasl_now(), no_agent_since = NULL, updated_at = now()
          FROM c
         WHERE t.id = c.id
        RETURNING t.id, t.priority
    ), wd AS (
        SELECT w.offer_id
          FROM wasl_offers_withdraw(ARRAY(SELECT id FROM c), NULL, 'escalated', 'router') w
    ), ev AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT c.id, 'escalated', 'router',
               jsonb_build_object('breach', c.breach, 'due', c.due, 'from', c.old_queue,
                                  'to', p_queue, 'priority_from', c.old_priority,
                                  'priority_to', u.priority, 'alert', p_alert)
          FROM c
          JOIN up u ON u.id = c.id
    ), al AS (
        SELECT a.notification_id, a.ticket_id
          FROM wasl_notifications_enqueue((
                   SELECT jsonb_agg(jsonb_build_object(
                              'ticket_id', c.id, 'kind', 'alert', 'channel', 'email',
                              'recipient', p_alert,
                              'lang', CASE WHEN c.language = 'en' THEN 'en' ELSE 'ar' END,
                              'template', 'sla_alert',
                              'params', jsonb_build_object(
                                  'ref', c.ref, 'queue', c.old_queue, 'priority', u.priority,
                                  'due', to_char(c.due AT TIME ZONE 'Asia/Riyadh',
                                                 'YYYY-MM-DD HH24:MI')),
                              'dedupe_key', 'ticket:' || c.id || ':sla:' || c.old_queue)
                          ORDER BY c.id)
                     FROM c
                     JOIN up u ON u.id = c.id
               )) a
    ), n AS (
        -- every CTE read in full, whatever the result's shape
        SELECT (SELECT count(*) FROM c) AS escalated,
               (SELECT count(*) FROM wd) AS withdrawn
    )
    SELECT al.notification_id, al.ticket_id, n.escalated FROM al, n
    UNION ALL
    SELECT 0, 0, n.escalated FROM n WHERE NOT EXISTS (SELECT 1 FROM al)
$$;

-- wasl_tickets_overflow — the overflow timer: up to p_limit waiting tickets that have had no
-- eligible agent for p_after_s seconds (no_agent_since, set by wasl_tickets_route and
-- wasl_tickets_mark_staffing), not overflowed or escalated yet and not already in p_queue, the
-- longest unstaffed first, move to the overflow queue p_queue (p_skills). Walks
-- tickets_overflow_idx (0025) from the oldest mark, so a call costs the due rows, not the
-- waiting ones; the limit keeps a queue that went unstaffed all at once from moving in one
-- statement (100,000 tickets took 15 s: the router's next call moves the rest).
-- Returns how many moved. Touches tickets, ticket_events ('overflowed'). Called by the router.
-- Until 0025 it had no p_limit: the old signature is dropped first (see wasl_tickets_resolve).
DO $$
BEGIN
    IF to_regprocedure('wasl_tickets_overflow(text, text[], double precision)') IS NOT NULL THEN
        DROP FUNCTION wasl_tickets_overflow(text, text[], double precision);
    END IF;
END;
$$;
CREATE OR REPLACE FUNCTION wasl_tickets_overflow(p_queue text, p_skills text[],
                                                 p_after_s double precision,
                                                 p_limit integer DEFAULT 500)
RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    WITH c AS (
        SELECT id, queue AS old_queue, no_agent_since
          FROM tickets
         WHERE status = 'routed'
           AND no_agent_since <= wasl_now() - make_interval(secs => p_after_s)
           AND queue <> p_queue
           AND overflowed_at IS NULL
           AND escalated_at IS NULL
         ORDER BY no_agent_since
         LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), ov AS (
        UPDATE tickets t
           SET queue = p_queue, skills = p_skills, overflowed_at = wasl_now(),
               no_agent_since = NULL, updated_at = now()
          FROM c
         WHERE t.id = c.id
        RETURNING t.id
    ), ev AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT c.id, 'overflowed', 'router',
               jsonb_build_object('from', c.old_queue, 'to', p_queue,
                                  'no_agent_since', c.no_agent_since, 'after_s', p_after_s)
          FROM c
    )
    SELECT count(*) FROM c
$$;

-- wasl_tickets_mark_staffing — starts the overflow timer (no_agent_since) of waiting tickets
-- for whose queue, skills and language no eligible agent is present (available or busy with a
-- live heartbeat), and stops it where one is again.
-- Returns how many tickets it marked or unmarked. Touches tickets. Called by the router.
CREATE OR REPLACE FUNCTION wasl_tickets_mark_staffing()
RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    WITH g AS (
        SELECT DISTINCT queue, skills, language FROM tickets WHERE status = 'routed'
    ), staffed AS (
        SELECT g.* FROM g WHERE wasl_queue_staffed(g.queue, g.skills, g.language)
    ), mark AS (
        UPDATE tickets t
           SET no_agent_since = wasl_now()
         WHERE t.status = 'routed'
           AND t.no_agent_since IS NULL
           AND NOT EXISTS (SELECT 1
                             FROM staffed s
                            WHERE s.queue = t.queue
                              AND s.skills = t.skills
                              AND s.language IS NOT DISTINCT FROM t.language)
        RETURNING t.id
    ), unmark AS (
        UPDATE tickets t
           SET no_agent_since = NULL
          FROM staffed s
         WHERE t.status = 'routed'
           AND t.no_agent_since IS NOT NULL
           AND s.queue = t.queue
           AND s.skills = t.skills
           AND s.language IS NOT DISTINCT FROM t.language
        RETURNING t.id
    )
    SELECT (SELECT count(*) FROM mark) + (SELECT count(*) FROM unmark)
$$;

-- The desk's ticket actions below share one shape of result, read by intake's ticket_change:
-- no row when there is no ticket p_ref; else (status: the ticket's status before, done:
-- non-NULL when the change was made, NULL when the status did not allow it). The caller
-- locked the ticket (FOR UPDATE) and checked who may act; p_agent is the acting agent and
-- p_client the API client, both kept in the history.

-- wasl_tickets_note — an agent's note in the ticket's history, whatever its status.
-- Touches ticket_events ('note'). Called by the desk (POST /v1/tickets/{ref}/notes).
CREATE OR REPLACE FUNCTION wasl_tickets_note(p_ref text, p_agent text, p_text text,
                                             p_client text)
RETURNS TABLE (status text, done bigint)
LANGUAGE sql VOLATILE AS $$
    WITH t AS (
        SELECT id, status FROM tickets WHERE ref = p_ref
    ), ev AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT t.id, 'note', p_agent, jsonb_build_object('text', p_text, 'client', p_client)
          FROM t
        RETURNING ticket_id
    )
    SELECT t.status, ev.ticket_id FROM t LEFT JOIN ev ON true
$$;

-- wasl_tickets_transfer — a waiting or assigned ticket goes to queue p_queue, waiting again
-- (unassigned, its overflow timer reset) at its place in line (waiting_since is kept); its
-- live offer is withdrawn. p_reason may be NULL.
-- Touches tickets, ticket_events ('transferred'), offers (through wasl_offers_withdraw).
-- Called by the desk (POST /v1/tickets/{ref}/transfer).
CREATE OR REPLACE FUNCTION wasl_tickets_transfer(p_ref text, p_agent text, p_queue text,
                                                 p_reason text, p_client text)
RETURNS TABLE (status text, done bigint)
LANGUAGE sql VOLATILE AS $$
    WITH c AS (
        SELECT id, status, queue AS old_queue, assignee FROM tickets WHERE ref = p_ref
        FOR UPDATE
    ), up AS (
        UPDATE tickets t
           SET queue = p_queue, skills = '{}', status = 'routed', assignee = NULL,
               no_agent_since = NULL, overflowed_at = NULL, updated_at = now()
          FROM c
         WHERE t.id = c.id
           AND c.status IN ('routed', 'assigned')
        RETURNING t.id
    ), wd AS (
        SELECT w.offer_id
          FROM up, wasl_offers_withdraw(ARRAY[up.id], NULL, 'transferred', p_agent) w
    ), ev AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT c.id, 'transferred', p_agent,
               jsonb_strip_nulls(jsonb_build_object('from', c.old_queue, 'to', p_queue,
                                                    'assignee_was', c.assignee,
                                                    'reason', p_reason, 'client', p_client))
          FROM c
          JOIN up ON up.id = c.id
    )
    SELECT c.status, up.id
      FROM c
      LEFT JOIN up ON true
     WHERE (SELECT count(*) FROM wd) >= 0
$$;

-- wasl_tickets_resolve — a waiting or assigned ticket is resolved with p_resolution and the
-- wrap-up (disposition) code p_wrapup (tickets.wrapup_code, migration 0022; NULL: none, as from
-- intake's agent API): its live offer is withdrawn, the resolving agent enters wrap-up (their
-- wrapup_s; they idle from its end), and the beneficiary's update and survey go to the outbox
-- (unless the ticket came from an automatic sender or has no contact), keyed per reopening so a
-- retry sends nothing twice. The caller checked that p_wrapup is one of its configured codes.
-- Touches tickets, agents (wrap-up), ticket_events ('resolved', with the wrap-up code),
-- offers (through wasl_offers_withdraw), notifications (through wasl_notifications_enqueue).
-- Called by the desk (POST /v1/tickets/{ref}/resolve).
-- Until 0022 it had four parameters: this file is applied on every `waslctl migrate`, and
-- CREATE OR REPLACE with a fifth would add a second function beside the old one (a call with
-- four arguments then being ambiguous), so the old signature is dropped first when it is there.
DO $$
BEGIN
    IF to_regprocedure('wasl_tickets_resolve(text, text, text, text)') IS NOT NULL THEN
        DROP FUNCTION wasl_tickets_resolve(text, text, text, text);
    END IF;
END;
$$;
CREATE OR REPLACE FUNCTION wasl_tickets_resolve(p_ref text, p_agent text, p_resolution text,
                                                p_client text, p_wrapup text DEFAULT NULL)
RETURNS TABLE (status text, done bigint)
LANGUAGE sql VOLATILE AS $$
    WITH c AS (
        SELECT id, ref, status, assignee, reopen_count, from_phone, from_email, language,
               auto_submitted
          FROM tickets
         WHERE ref = p_ref
        FOR UPDATE
    ), up AS (
        UPDATE tickets t
           SET status = 'resolved', resolved_at = wasl_now(), resolution = p_resolution,
               wrapup_code = p_wrapup, updated_at = now()
          FROM c
         WHERE t.id = c.id
           AND c.status IN ('routed', 'assigned')
        RETURNING t.id
    ), wd AS (
        SELECT w.offer_id
          FROM up, wasl_offers_withdraw(ARRAY[up.id], NULL, 'resolved', p_agent) w
    ), ag AS (
        UPDATE agents g
           SET wrapup_until = wasl_now() + make_interval(secs => g.wrapup_s),
               idle_since = wasl_now() + make_interval(secs => g.wrapup_s),
               updated_at = now()
          FROM up
         WHERE g.id = p_agent
        RETURNING g.wrapup_until
    ), ev AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT up.id, 'resolved', p_agent,
               jsonb_build_object('resolution', p_resolution, 'wrapup', p_wrapup,
                                  'wrapup_until', (SELECT wrapup_until FROM ag),
                                  'client', p_client)
          FROM up
    ), n AS (
        SELECT a.notification_id
          FROM wasl_notifications_enqueue((
                   SELECT jsonb_agg(jsonb_build_object(
                              'ticket_id', c.id, 'kind', k.kind,
                              'channel', CASE WHEN c.from_phone IS NOT NULL THEN 'sms'
                                              ELSE 'email' END,
                              'recipient', coalesce(c.from_phone, c.from_email),
                              'lang', CASE WHEN c.language = 'en' THEN 'en' ELSE 'ar' END,
                              'template', k.template, 'params', k.params,
                              'dedupe_key', 'ticket:' || c.id || ':' || k.template || ':'
                                            || (c.reopen_count + 1))
                          ORDER BY k.ord)
                     FROM c
                     JOIN up ON up.id = c.id
                    CROSS JOIN LATERAL (VALUES
                        (1, 'update', 'resolved',
                         jsonb_build_object('ref', c.ref, 'resolution', p_resolution)),
                        (2, 'survey', 'survey', jsonb_build_object('ref', c.ref)))
                        AS k(ord, kind, template, params)
                    WHERE coalesce(c.from_phone, c.from_email) IS NOT NULL
                      AND c.auto_submitted IS NULL
               )) a
    )
    SELECT c.status, up.id
      FROM c
      LEFT JOIN up ON true
     WHERE (SELECT count(*) FROM wd) + (SELECT count(*) FROM n) >= 0
$$;

-- wasl_tickets_reopen — a resolved or closed ticket is classified again and goes back to the
-- router (new SLA) at its original place in line, without its last wrap-up code (the history
-- keeps it); the route work row is keyed by the reopen count. p_reason may be NULL.
-- Touches tickets, work (through wasl_work_enqueue), ticket_events ('reopened').
-- Called by the desk (POST /v1/tickets/{ref}/reopen).
CREATE OR REPLACE FUNCTION wasl_tickets_reopen(p_ref text, p_agent text, p_reason text,
                                               p_client text)
RETURNS TABLE (status text, done bigint)
LANGUAGE sql VOLATILE AS $$
    WITH c AS (
        SELECT id, status FROM tickets WHERE ref = p_ref FOR UPDATE
    ), up AS (
        UPDATE tickets t
           SET status = 'classified', resolved_at = NULL, assignee = NULL, wrapup_code = NULL,
               reopen_count = t.reopen_count + 1, updated_at = now()
          FROM c
         WHERE t.id = c.id
           AND c.status IN ('resolved', 'closed')
        RETURNING t.id, t.reopen_count
    ), w AS (
        SELECT e.work_id
          FROM up,
               wasl_work_enqueue(ARRAY[up.id], 'route',
                                 ARRAY['ticket:' || up.id || ':route:reopen:' || up.reopen_count])
               e
    ), ev AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT up.id, 'reopened', p_agent,
               jsonb_strip_nulls(jsonb_build_object('reason', p_reason,
                                                    'count', up.reopen_count,
                                                    'client', p_client))
          FROM up
    )
    SELECT c.status, up.id
      FROM c
      LEFT JOIN up ON true
     WHERE (SELECT count(*) FROM w) >= 0
$$;

-- wasl_tickets_reply — an agent's reply to the beneficiary of a waiting or assigned ticket: one
-- 'update' notification (template 'reply', params {ref, text}) on the ticket's channel back
-- (SMS when it has a phone, else e-mail) in its language, keyed
-- 'ticket:<id>:reply:<reopen count>:<p_key>' so that the same key (the desk's Idempotency-Key,
-- or a hash of the agent and the text) sends once; a 'replied' event records the one that was
-- enqueued. The caller checked that the ticket has a contact and no automatic sender.
-- Returns no row when there is no ticket p_ref; else (status before, done: the ticket id when
-- the status allowed a reply — also for a duplicate key —, notification_id: the new
-- notification, NULL for a duplicate). Touches notifications (through
-- wasl_notifications_enqueue), ticket_events ('replied').
-- Called by the desk (POST /v1/tickets/{ref}/reply).
CREATE OR REPLACE FUNCTION wasl_tickets_reply(p_ref text, p_agent text, p_text text,
                                              p_key text, p_client text)
RETURNS TABLE (status text, done bigint, notification_id bigint)
LANGUAGE sql VOLATILE AS $$
    WITH c AS (
        SELECT id, ref, status, reopen_count, from_phone, from_email, language,
               status IN ('routed', 'assigned')
                   AND coalesce(from_phone, from_email) IS NOT NULL
                   AND auto_submitted IS NULL AS ok
          FROM tickets
         WHERE ref = p_ref
        FOR UPDATE
    ), n AS (
        SELECT a.notification_id, a.channel
          FROM wasl_notifications_enqueue((
                   SELECT jsonb_agg(jsonb_build_object(
                              'ticket_id', c.id, 'kind', 'update',
                              'channel', CASE WHEN c.from_phone IS NOT NULL THEN 'sms'
                                              ELSE 'email' END,
                              'recipient', coalesce(c.from_phone, c.from_email),
                              'lang', CASE WHEN c.language = 'en' THEN 'en' ELSE 'ar' END,
                              'template', 'reply',
                              'params', jsonb_build_object('ref', c.ref, 'text', p_text),
                              'dedupe_key', 'ticket:' || c.id || ':reply:' || c.reopen_count
                                            || ':' || p_key))
                     FROM c
                    WHERE c.ok
               )) a
    ), ev AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT c.id, 'replied', p_agent,
               jsonb_build_object('notification', n.notification_id, 'channel', n.channel,
                                  'text', p_text, 'client', p_client)
          FROM c, n
    )
    SELECT c.status, CASE WHEN c.ok THEN c.id END, (SELECT n.notification_id FROM n)
      FROM c
$$;

-- wasl_tickets_csat — satisfaction scores (survey replies in csat) received since p_since, by
-- the ticket's queue and assignee, with each queue's subtotal and the grand total in the same
-- pass (GROUPING SETS): queue and agent are '(all)' in a total, '-' when the ticket had none.
-- Columns: queue, agent, responses, average (two decimals), and the count of each score 1..5.
-- Reads csat and tickets; changes nothing (STABLE). Called by `waslctl report csat` (p_since
-- = now() - N days) and the desk's wallboard (p_since = the start of today), so both count
-- the same way.
CREATE OR REPLACE FUNCTION wasl_tickets_csat(p_since timestamptz)
RETURNS TABLE (queue text, agent text, responses bigint, average text, s1 bigint, s2 bigint,
               s3 bigint, s4 bigint, s5 bigint)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN grouping(t.queue) = 1 THEN '(all)' ELSE coalesce(t.queue, '-') END,
           CASE WHEN grouping(t.assignee) = 1 THEN '(all)' ELSE coalesce(t.assignee, '-') END,
           count(*), to_char(avg(c.score), 'FM0.00'),
           count(*) FILTER (WHERE c.score = 1), count(*) FILTER (WHERE c.score = 2),
           count(*) FILTER (WHERE c.score = 3), count(*) FILTER (WHERE c.score = 4),
           count(*) FILTER (WHERE c.score = 5)
      FROM csat c
      JOIN tickets t ON t.id = c.ticket_id
     WHERE c.received_at > p_since
     GROUP BY GROUPING SETS ((t.queue, t.assignee), (t.queue), ())
     ORDER BY grouping(t.queue), t.queue NULLS LAST, grouping(t.assignee), t.assignee NULLS LAST
$$;

-- wasl_tickets_of_phone — the beneficiary's tickets by their phone identity: tickets.from_phone
-- in E.164, the number intake threads SMS on (services/intake/sms.c). The open ones and those
-- changed in the last p_days days, newest change first, at most p_limit (capped at 50),
-- without p_except (the ticket being viewed; NULL: none). A NULL p_phone has none.
-- Returns (id, ref, status, category, subject, channel, updated_at, open, queue, assignee):
-- the last two let the caller decide, per ticket, whether the person it shows them to may
-- read it (wasl_authz; a subject is shown only then). Reads tickets; changes nothing
-- (STABLE). Called by the desk: the ticket view's "other tickets" and the screen pop's caller
-- tickets (services/desk/tickets.c, calls.c), so both find the same ones.
-- Its first form returned no queue and assignee; a result type cannot be replaced, so that
-- form is dropped first when it is there (this file is applied on every `waslctl migrate`).
DO $$
BEGIN
    IF to_regprocedure('wasl_tickets_of_phone(text, bigint, integer, integer)') IS NOT NULL
       AND pg_get_function_result(
               to_regprocedure('wasl_tickets_of_phone(text, bigint, integer, integer)'))
           NOT LIKE '%assignee%' THEN
        DROP FUNCTION wasl_tickets_of_phone(text, bigint, integer, integer);
    END IF;
END;
$$;
CREATE OR REPLACE FUNCTION wasl_tickets_of_phone(p_phone text, p_except bigint, p_days integer,
                                                 p_limit integer)
RETURNS TABLE (id bigint, ref text, status text, category text, subject text, channel text,
               updated_at timestamptz, open boolean, queue text, assignee text)
LANGUAGE sql STABLE AS $$
    SELECT t.id, t.ref, t.status, t.category, t.subject, t.channel, t.updated_at,
           t.status NOT IN ('resolved', 'closed'), t.queue, t.assignee
      FROM tickets t
     WHERE t.from_phone = p_phone
       AND t.id IS DISTINCT FROM p_except
       AND (t.status NOT IN ('resolved', 'closed')
            OR t.updated_at > now() - make_interval(days => greatest(p_days, 0)))
     ORDER BY t.updated_at DESC, t.id DESC
     LIMIT least(greatest(p_limit, 0), 50)
$$;

-- wasl_tickets_call_ticket — the desk's one-click ticket for a call that rang for agent
-- p_agent (the screen pop): the call's ticket, made assigned to p_agent at once, or the one the
-- call already has. The key is intake's for call tickets (channel 'phone', external_id the call
-- id, the telephony client's scope: wasl_idem_scope), taken under intake's lock of the call
-- ('call:<client>:<call id>', services/intake/calls.c), so a PBX's later call.note joins this
-- ticket and a concurrent one cannot make a second. A new ticket: reference p_ref (the caller
-- formats it from ticket_ref_seq, as intake does), subject p_subject or 'Phone call', the
-- caller's number p_from_phone (E.164 or NULL), p_text (or NULL) as its first inbound message,
-- status 'assigned' to p_agent with its first response now, history 'received' (actor
-- 'desk:<agent>') and 'assigned', the classify work row (the classifier still sets category
-- and priority; the router's route stage keeps an assigned ticket assigned and offers it to
-- nobody: dispatch offers 'routed' tickets only), and the call's events linked to it.
-- p_client is the telephony client the call belongs to; p_actor the desk's client name.
-- Returns one row (ticket_id, ref, created, assignee); no row when p_agent is no enabled agent.
-- plpgsql: the lock must come before the statements that read, each with its own snapshot.
-- Touches tickets, ticket_events ('received', 'assigned'), messages, work (through
-- wasl_work_enqueue), call_events (ticket_id). Called by the desk
-- (POST /v1/calls/{call_id}/ticket).
CREATE OR REPLACE FUNCTION wasl_tickets_call_ticket(p_client text, p_call_id text,
                                                    p_agent text, p_ref text,
                                                    p_from_phone text, p_subject text,
                                                    p_text text, p_actor text)
RETURNS TABLE (ticket_id bigint, ref text, created boolean, assignee text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_id       bigint;
    v_ref      text;
    v_assignee text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('call:' || p_client || ':' || p_call_id, 0));
    SELECT t.id, t.ref, t.assignee INTO v_id, v_ref, v_assignee
      FROM tickets t
     WHERE t.channel = 'phone' AND t.external_id = p_call_id
       AND wasl_idem_scope(t.channel, t.client_id) = wasl_idem_scope('phone', p_client);
    IF FOUND THEN
        RETURN QUERY SELECT v_id, v_ref, false, v_assignee;
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM agents g WHERE g.id = p_agent AND g.enabled) THEN
        RETURN;
    END IF;
    INSERT INTO tickets (ref, channel, external_id, client_id, subject, from_phone, status,
                         assignee, first_response_at)
    VALUES (p_ref, 'phone', p_call_id, p_client, coalesce(p_subject, 'Phone call'),
            p_from_phone, 'assigned', p_agent, wasl_now())
    RETURNING id INTO v_id;
    INSERT INTO ticket_events (ticket_id, kind, actor, data)
    VALUES (v_id, 'received', 'desk:' || p_agent,
            jsonb_build_object('channel', 'phone', 'client', p_client, 'call_id', p_call_id,
                               'call_kind', 'desk')),
           (v_id, 'assigned', p_agent,
            jsonb_build_object('agent', p_agent, 'call_id', p_call_id, 'client', p_actor));
    IF p_text IS NOT NULL THEN
        INSERT INTO messages (ticket_id, direction, channel, external_id, sender, subject, body,
                              client_id)
        VALUES (v_id, 'in', 'phone', p_call_id || ':desk', p_agent, p_subject, p_text,
                p_client);
    END IF;
    PERFORM wasl_work_enqueue(ARRAY[v_id], 'classify', NULL);
    UPDATE call_events e SET ticket_id = v_id
     WHERE e.call_id = p_call_id AND coalesce(e.client_id, '') = coalesce(p_client, '')
       AND e.ticket_id IS NULL;
    RETURN QUERY SELECT v_id, p_ref, true, p_agent;
END;
$$;

-- wasl_tickets_assign — a supervisor gives a waiting or assigned ticket to agent p_agent: its
-- live offers are withdrawn (reason 'reassigned'), it becomes 'assigned' to p_agent (its first
-- response marked now if it had none: taken by an agent, as wasl_offers_accept counts it), and
-- an 'assigned' event records {agent: the new assignee, by, from: the assignee before (or
-- none), reason, client} — 'agent' is what the desk's NOTIFY trigger names, so the new
-- assignee's open pages hear of it; the assignee before (when another agent) is told on the
-- same channel, by a notification of the trigger's shape with kind 'unassigned' (no history
-- row: the 'assigned' event's `from` says it), so their "my work" drops the ticket live. A
-- supervisor overrides: the agent's presence, capacity and
-- wrap-up are not checked, only that p_agent is an enabled agent (else done is NULL and nothing
-- changes); the caller checked that the actor may reassign. p_reason may be NULL.
-- Returns the shape of the desk's ticket actions above (status before, done).
-- Touches tickets, offers and ticket_events (through wasl_offers_withdraw), ticket_events
-- ('assigned'). Called by the desk (POST /v1/tickets/{ref}/assign, supervisors).
CREATE OR REPLACE FUNCTION wasl_tickets_assign(p_ref text, p_agent text, p_by text,
                                               p_reason text, p_client text)
RETURNS TABLE (status text, done bigint)
LANGUAGE sql VOLATILE AS $$
    WITH c AS (
        SELECT id, status, assignee FROM tickets WHERE ref = p_ref FOR UPDATE
    ), g AS (
        SELECT id FROM agents WHERE id = p_agent AND enabled
    ), wd AS (
        SELECT w.offer_id
          FROM c, g, wasl_offers_withdraw(ARRAY[c.id], NULL, 'reassigned', p_by) w
         WHERE c.status IN ('routed', 'assigned')
    ), up AS (
        UPDATE tickets t
           SET status = 'assigned', assignee = g.id,
               first_response_at = coalesce(t.first_response_at, wasl_now()),
               no_agent_since = NULL, updated_at = now()
          FROM c, g
         WHERE t.id = c.id
           AND c.status IN ('routed', 'assigned')
        RETURNING t.id
    ), ev AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT c.id, 'assigned', p_by,
               jsonb_strip_nulls(jsonb_build_object('agent', p_agent, 'by', p_by,
                                                    'from', c.assignee, 'reason', p_reason,
                                                    'client', p_client))
          FROM c
          JOIN up ON up.id = c.id
    ), told AS (
        SELECT pg_notify('wasl_desk',
                         jsonb_build_object('t', 'ticket', 'id', c.id, 'k', 'unassigned',
                                            'a', c.assignee)::text)
          FROM c
          JOIN up ON up.id = c.id
         WHERE c.assignee IS NOT NULL AND c.assignee <> p_agent
    )
    SELECT c.status, up.id
      FROM c
      LEFT JOIN up ON true
     WHERE (SELECT count(*) FROM wd) + (SELECT count(*) FROM told) >= 0
$$;

-- wasl_tickets_wrapup — resolutions by wrap-up (disposition) code since p_since: the tickets
-- resolved at or after p_since and still resolved or closed (a reopening takes one out), by
-- queue and tickets.wrapup_code (migration 0022), with each queue's subtotal and the grand
-- total in the same pass (GROUPING SETS): queue and code are '(all)' in a total, '-' when the
-- ticket had none (resolved by an integration without a code, or before 0022).
-- Columns: queue, code, resolved. Reads tickets; changes nothing (STABLE). Called by `waslctl
-- report wrapup` (p_since = now() - N days) and the desk's wallboard (p_since = the start of
-- today), so both count the same way (as wasl_tickets_csat does for CSAT).
CREATE OR REPLACE FUNCTION wasl_tickets_wrapup(p_since timestamptz)
RETURNS TABLE (queue text, code text, resolved bigint)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN grouping(t.queue) = 1 THEN '(all)' ELSE coalesce(t.queue, '-') END,
           CASE WHEN grouping(t.wrapup_code) = 1 THEN '(all)'
                ELSE coalesce(t.wrapup_code, '-') END,
           count(*)
      FROM tickets t
     WHERE t.resolved_at >= p_since AND t.status IN ('resolved', 'closed')
     GROUP BY GROUPING SETS ((t.queue, t.wrapup_code), (t.queue), ())
     ORDER BY grouping(t.queue), t.queue NULLS LAST, grouping(t.wrapup_code),
              t.wrapup_code NULLS LAST
$$;

-- wasl_tickets_create — intake's batch of contacts becomes tickets in one statement: each new
-- ticket with its 'received' event, its first inbound message and (unless it is an automatic
-- message, which is closed at once) its classify work row. Rows are inserted with ON CONFLICT
-- DO NOTHING on the idempotency key — (channel, the client's scope, external_id), where the
-- scope is the client except for email, whose Message-ID is global (wasl_idem_scope(),
-- migration 0011) — and the answer gives, in input order, each contact's ticket, new or
-- already there. A ticket that another transaction (or another client's row of this batch) was
-- inserting at the same moment is not visible to this statement's snapshot: its row comes back
-- with ticket_id NULL, and the caller retries that contact.
--   p_contacts  jsonb array of {idx (0…n-1), ref (a new reference from ticket_ref_seq),
--               channel, external_id, client_id, subject, body, lang, case_number, from_name,
--               from_phone, from_email, from_national_id, from_employee_id, received_at,
--               message_id, auto_submitted, claimed_ref, msg_external_id, sender, headers,
--               attachments, event_data}
-- Returns one row per contact, by idx: idx, ticket_id and ref (NULL: retry), created (a new
-- ticket) and work_id (its classify row, NULL when none was enqueued).
-- Touches tickets, ticket_events ('received'), messages ('in'), work (through
-- wasl_work_enqueue). Called by intake's writers (services/intake/writer.c), one statement per
-- batch in a transaction of its own.
-- Why plpgsql and a LATERAL lookup (issue 16, make bench-peer): a LANGUAGE sql function is
-- planned again on every call, and its generic plan (jsonb_to_recordset guessed at 100 rows)
-- found the existing tickets by hashing ALL of tickets — 64% of the statement's CPU with 1,800
-- tickets, growing with the table (7.4 ms a call at 4,800). plpgsql keeps the plan for the
-- session; the lookup is a LATERAL subquery with LIMIT 1 (so it is not flattened back into a
-- join), run only for a contact that was not inserted, through tickets_idem_key. Backend CPU per
-- one-contact call, same database, back to back: 7.4 ms before, 1.6 ms after (3.0 ms with the
-- lookup fixed and LANGUAGE sql kept).
CREATE OR REPLACE FUNCTION wasl_tickets_create(p_contacts jsonb)
RETURNS TABLE (idx integer, ticket_id bigint, ref text, created boolean, work_id bigint)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT *
          FROM jsonb_to_recordset(p_contacts)
            AS x(idx int, ref text, channel text, external_id text, client_id text,
                 subject text, body text, lang text, case_number text, from_name text,
                 from_phone text, from_email text, from_national_id text,
                 from_employee_id text, received_at timestamptz, message_id text,
                 auto_submitted text, claimed_ref text, msg_external_id text, sender text,
                 headers jsonb, attachments jsonb, event_data jsonb)
    ), ins AS (
        INSERT INTO tickets (ref, channel, external_id, client_id, subject, lang_declared,
                             case_number, from_name, from_phone, from_email, from_national_id,
                             from_employee_id, beneficiary_type, received_at, auto_submitted,
                             claimed_ref, status)
        SELECT ref, channel, external_id, client_id, subject, lang, case_number, from_name,
               from_phone, from_email, from_national_id, from_employee_id,
               CASE WHEN from_employee_id IS NULL THEN 'public' ELSE 'staff' END,
               coalesce(received_at, now()), auto_submitted, claimed_ref,
               CASE WHEN auto_submitted IS NULL THEN 'received' ELSE 'closed' END
          FROM input
         ORDER BY idx
        ON CONFLICT (channel, wasl_idem_scope(channel, client_id), external_id) DO NOTHING
        RETURNING id, channel, external_id, client_id
    ), created AS (
        SELECT input.*, ins.id AS ticket_id
          FROM input
          JOIN ins ON ins.channel = input.channel AND ins.external_id = input.external_id
                  AND ins.client_id IS NOT DISTINCT FROM input.client_id
    ), ev AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT ticket_id, 'received', 'intake',
               jsonb_strip_nulls(jsonb_build_object('channel', channel, 'client', client_id,
                                                    'auto_submitted', auto_submitted,
                                                    'claimed_ref', claimed_ref))
               || coalesce(event_data, '{}'::jsonb)
          FROM created
    ), msg AS (
        INSERT INTO messages (ticket_id, direction, channel, external_id, sender, subject, body,
                              headers, attachments, message_id, auto_submitted, client_id)
        SELECT ticket_id, 'in', channel, coalesce(msg_external_id, external_id),
               coalesce(sender, from_email, from_phone, from_name), subject, body,
               coalesce(headers, '{}'::jsonb), coalesce(attachments, '[]'::jsonb), message_id,
               auto_submitted, client_id
          FROM created
        ON CONFLICT DO NOTHING
    ), wk AS (
        SELECT w.work_id AS id, w.ticket_id
          FROM wasl_work_enqueue(ARRAY(SELECT ticket_id FROM created
                                        WHERE auto_submitted IS NULL ORDER BY idx),
                                 'classify', NULL) w
    )
    SELECT input.idx, coalesce(c.ticket_id, t.id), coalesce(c.ref, t.ref),
           c.ticket_id IS NOT NULL, wk.id
      FROM input
      LEFT JOIN created c USING (idx)
      LEFT JOIN wk ON wk.ticket_id = c.ticket_id
      LEFT JOIN LATERAL (
           SELECT t.id, t.ref
             FROM tickets t
            WHERE c.ticket_id IS NULL AND t.channel = input.channel
              AND wasl_idem_scope(t.channel, t.client_id)
                  = wasl_idem_scope(input.channel, input.client_id)
              AND t.external_id = input.external_id
            LIMIT 1) t ON true
     ORDER BY input.idx;
END
$$;

-- wasl_tickets_classify — commits a batch of the classifier's decisions, fenced on the work
-- lease: only the rows wasl_work_complete completes for p_owner change their ticket. A
-- classified ticket gets its category, confidence, priority, language, entities and model,
-- becomes 'classified' unless it moved on already, gets its 'classified' event, and its route
-- work row is enqueued (key 'ticket:<id>:route': a retried batch enqueues nothing twice).
--   p_batch  jsonb array of {work_id, ticket_id, category, confidence, priority, language,
--            entities, model, event}
--   p_owner  the classifier's work owner name
-- Returns one row per committed work row: work_id and route_work_id (NULL when the route row
-- existed already). A work row whose lease was lost has no row.
-- Touches work (through wasl_work_complete and wasl_work_enqueue), tickets, ticket_events
-- ('classified'). Called by the classifier (services/classifier/worker.c).
CREATE OR REPLACE FUNCTION wasl_tickets_classify(p_batch jsonb, p_owner text)
RETURNS TABLE (work_id bigint, route_work_id bigint)
LANGUAGE sql VOLATILE AS $$
    WITH input AS (
        SELECT *
          FROM jsonb_to_recordset(p_batch)
            AS x(work_id bigint, ticket_id bigint, category text, confidence real,
                 priority text, language text, entities jsonb, model text, event jsonb)
    ), done AS (
        SELECT id FROM wasl_work_complete(ARRAY(SELECT work_id FROM input), p_owner) AS id
    ), upd AS (
        UPDATE tickets t
           SET category = i.category, confidence = i.confidence, priority = i.priority,
               language = i.language, entities = i.entities, model_version = i.model,
               updated_at = now(),
               status = CASE WHEN t.status = 'received' THEN 'classified' ELSE t.status END
          FROM input i
          JOIN done d ON d.id = i.work_id
         WHERE t.id = i.ticket_id
        RETURNING t.id
    ), ev AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT i.ticket_id, 'classified', 'classifier', i.event
          FROM input i
          JOIN done d ON d.id = i.work_id
    ), nxt AS (
        SELECT n.work_id AS id, n.ticket_id
          FROM wasl_work_enqueue(ARRAY(SELECT i.ticket_id
                                         FROM input i
                                         JOIN done d ON d.id = i.work_id
                                        ORDER BY i.work_id), 'route', NULL) n
    )
    SELECT i.work_id, n.id
      FROM input i
      JOIN done d ON d.id = i.work_id
      LEFT JOIN nxt n ON n.ticket_id = i.ticket_id
     ORDER BY i.work_id
$$;
