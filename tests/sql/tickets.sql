-- tickets.sql — wasl_tickets_* (proto/functions/tickets.sql): each function's edges.
-- Tickets 1-5 are routed in 'general' (setup.sql); amal, badr and dana serve it.
\pset null '∅'

-- route: work rows for tickets 1 and 2 claimed by r1 (live lease), ticket 3's by r1 with a
-- lease that ran out (its decision must change nothing). Ticket 1 gets an ack by SMS.
UPDATE tickets SET status = 'classified', waiting_since = NULL WHERE id IN (1, 2, 3);
INSERT INTO work (ticket_id, stage, dedupe_key, state, owner, lease_until, attempts)
VALUES (1, 'route', 'r:1', 'pending', 'r1', now() + interval '30 s', 1),
       (2, 'route', 'r:2', 'pending', 'r1', now() + interval '30 s', 1),
       (3, 'route', 'r:3', 'pending', 'r1', now() - interval '1 s', 1);
SELECT max(id) FILTER (WHERE dedupe_key = 'r:1') AS w1,
       max(id) FILTER (WHERE dedupe_key = 'r:2') AS w2,
       max(id) FILTER (WHERE dedupe_key = 'r:3') AS w3 FROM work \gset
SELECT jsonb_build_array(
    jsonb_build_object('work_id', :w1, 'ticket_id', 1, 'queue', 'billing', 'priority', 'high',
        'prio_rank', 1, 'skills', '{}'::text[], 'rule', 'r-billing', 'fr_due', 1.0e9,
        'res_due', 2.0e9, 'event', '{"rule": "r-billing"}'::jsonb, 'answered', false,
        'notes', '[{"kind": "ack", "channel": "sms", "recipient": "+966500000001",
                    "lang": "ar", "params": {"ref": "2600000001"}}]'::jsonb),
    jsonb_build_object('work_id', :w2, 'ticket_id', 2, 'queue', 'general',
        'priority', 'normal', 'prio_rank', 2, 'skills', '{}'::text[], 'rule', 'default',
        'fr_due', 1.0e9, 'res_due', 2.0e9, 'event', '{"rule": "default",
        "auto_answer_detail": {"outcome": "answered"}}'::jsonb, 'answered', true, 'notes', NULL),
    jsonb_build_object('work_id', :w3, 'ticket_id', 3, 'queue', 'billing',
        'priority', 'urgent', 'prio_rank', 0, 'skills', '{}'::text[], 'rule', 'x',
        'fr_due', 1.0e9, 'res_due', 2.0e9, 'event', '{}'::jsonb, 'answered', false,
        'notes', '[{"kind": "ack", "channel": "sms", "recipient": "+966500000003"}]'::jsonb))
    AS batch \gset
SELECT work_id = :w1 AS w1, notification_id IS NOT NULL AS notified, channel, ticket_id, kind
  FROM wasl_tickets_route(:'batch', 'r1');
SELECT id, status, queue, priority, route_rule, routed_at IS NOT NULL AS routed,
       waiting_since IS NOT NULL AS in_line
  FROM tickets WHERE id IN (1, 2, 3) ORDER BY id;
SELECT dedupe_key, state FROM work WHERE dedupe_key LIKE 'r:%' ORDER BY 1;
-- routed where nobody present serves the queue ('billing'), the overflow timer starts at once;
-- in 'general' (amal, badr and dana) it does not; ticket 3's lost lease changed nothing.
SELECT id, queue, no_agent_since IS NOT NULL AS unstaffed FROM tickets
 WHERE id IN (1, 2, 3) ORDER BY id;
SELECT ticket_id, kind, data FROM ticket_events ORDER BY id;
SELECT ticket_id, kind, template, dedupe_key FROM notifications ORDER BY id;
-- the same batch again: every lease is spent, nothing changes, nothing is notified twice.
SELECT count(*) AS again FROM wasl_tickets_route(:'batch', 'r1');
SELECT count(*) AS notifications FROM notifications;

-- note: any status; an unknown reference has no row.
SELECT * FROM wasl_tickets_note('2600000001', 'amal', 'called back', 'desk');
SELECT count(*) AS unknown FROM wasl_tickets_note('2699999999', 'amal', 'x', 'desk');
SELECT actor, data FROM ticket_events WHERE kind = 'note';

-- transfer: ticket 4 (offered to badr) to 'billing'; its offer withdrawn, place kept.
SELECT count(*) FROM wasl_offers_make('[{"ticket_id": 4, "agent": "badr", "channel": "api",
    "explain": {}}]', 'router-1', 60);
UPDATE tickets SET waiting_since = '2026-01-01 00:00+00' WHERE id = 4;
SELECT * FROM wasl_tickets_transfer('2600000004', 'amal', 'billing', 'wrong queue', 'desk');
SELECT status, queue, assignee, waiting_since = '2026-01-01 00:00+00' AS kept_place
  FROM tickets WHERE id = 4;
SELECT state, reason FROM offers WHERE ticket_id = 4;
SELECT kind, actor, data - 'offer' AS data FROM ticket_events
 WHERE ticket_id = 4 AND kind IN ('transferred', 'offer.withdrawn') ORDER BY id;
-- wrong state: a resolved ticket cannot be transferred (status given, done NULL).
UPDATE tickets SET status = 'resolved' WHERE id = 5;
SELECT * FROM wasl_tickets_transfer('2600000005', 'amal', 'billing', NULL, 'desk');

-- resolve: ticket 4, assigned to dana (wrap-up 30 s): resolved, wrap-up, update and survey.
UPDATE tickets SET status = 'assigned', assignee = 'dana' WHERE id = 4;
-- The desk's wrap-up code goes into its column and the 'resolved' event (no note any more).
SELECT * FROM wasl_tickets_resolve('2600000004', 'dana', 'refund sent', 'desk', 'referred');
SELECT status, resolution, wrapup_code, resolved_at IS NOT NULL AS resolved
  FROM tickets WHERE id = 4;
SELECT kind, data->>'wrapup' AS wrapup, data->>'resolution' AS resolution FROM ticket_events
 WHERE ticket_id = 4 AND kind IN ('resolved', 'note') ORDER BY id;
SELECT wrapup_until - wasl_now() BETWEEN interval '29 s' AND interval '30 s' AS wrapping_up
  FROM agents WHERE id = 'dana';
SELECT kind, template, channel, recipient, params, dedupe_key FROM notifications
 WHERE ticket_id = 4 ORDER BY id;
-- already resolved: 409's shape, nothing new.
SELECT * FROM wasl_tickets_resolve('2600000004', 'dana', 'again', 'desk');
SELECT count(*) AS notifications FROM notifications WHERE ticket_id = 4;

-- reopen: a routed ticket cannot be; the resolved ticket 4 can, once per reopening.
SELECT * FROM wasl_tickets_reopen('2600000001', 'amal', NULL, 'desk');
SELECT * FROM wasl_tickets_reopen('2600000004', 'amal', 'customer called', 'desk');
SELECT status, reopen_count, assignee, resolved_at, wrapup_code FROM tickets WHERE id = 4;
SELECT stage, state, dedupe_key FROM work WHERE ticket_id = 4;
SELECT * FROM wasl_tickets_reopen('2600000004', 'amal', NULL, 'desk');
-- resolved again after the reopening: a new update and survey (keyed by the count).
UPDATE tickets SET status = 'assigned' WHERE id = 4;
SELECT * FROM wasl_tickets_resolve('2600000004', 'dana', 'done again', 'desk');
SELECT dedupe_key FROM notifications WHERE ticket_id = 4 ORDER BY id;
-- Without a code (intake's four arguments): none kept. A code out of shape is refused.
SELECT wrapup_code IS NULL AS no_code FROM tickets WHERE id = 4;
UPDATE tickets SET status = 'assigned' WHERE id = 4;
SELECT * FROM wasl_tickets_resolve('2600000004', 'dana', 'x', 'desk', 'Not A Code');
UPDATE tickets SET status = 'resolved' WHERE id = 4;
-- The old four-argument signature is gone (no second function beside the new one).
SELECT count(*) AS resolve_functions FROM pg_proc WHERE proname = 'wasl_tickets_resolve';

-- staffing: the 'billing' tickets (1, 4 reopened is 'classified') have no agent serving
-- 'billing'; ticket 2 in 'general' is served. Ticket 1 was marked when routed, so the pass
-- has nothing to change, and nothing more the second time (idempotent).
SELECT wasl_tickets_mark_staffing() AS changed;
SELECT id, queue, no_agent_since IS NOT NULL AS unstaffed FROM tickets
 WHERE status = 'routed' ORDER BY id;
SELECT wasl_tickets_mark_staffing() AS again;
-- badr serves billing now: the mark goes.
UPDATE agents SET skills = skills || '{"billing": 5}' WHERE id = 'badr';
SELECT wasl_tickets_mark_staffing() AS changed;
SELECT id, no_agent_since IS NOT NULL AS unstaffed FROM tickets WHERE id = 1;

-- overflow: unstaffed for 120 s on the router's clock moves to 'overflow'; not before.
UPDATE agents SET skills = skills - 'billing' WHERE id = 'badr';
SELECT wasl_tickets_mark_staffing() AS changed;
SELECT wasl_tickets_overflow('overflow', ARRAY['senior'], 120) AS not_yet;
SET wasl.clock_offset_s = 121;
-- at most p_limit a call: none with 0, then the one due.
SELECT wasl_tickets_overflow('overflow', ARRAY['senior'], 120, 0) AS limited;
SELECT wasl_tickets_overflow('overflow', ARRAY['senior'], 120) AS moved;
SELECT wasl_tickets_overflow('overflow', ARRAY['senior'], 120) AS again;
RESET wasl.clock_offset_s;
SELECT id, queue, skills, overflowed_at IS NOT NULL AS overflowed, no_agent_since
  FROM tickets WHERE id = 1;
SELECT data - 'no_agent_since' AS data FROM ticket_events WHERE kind = 'overflowed';

-- escalate: nothing due yet (first response due in an hour); two hours on, the routed
-- tickets breach their first response, go up one step to 'supervisors' with an alert each,
-- and ticket 2's live offer is withdrawn.
SELECT count(*) FROM wasl_offers_make('[{"ticket_id": 2, "agent": "amal", "channel": "api",
    "explain": {}}]', 'router-1', 60);
UPDATE tickets SET first_response_due = now() + interval '1 hour',
       resolution_due = now() + interval '1 day' WHERE id IN (1, 2);
SELECT * FROM wasl_tickets_escalate('supervisors', ARRAY[]::text[], 'ops@example.org');
SET wasl.clock_offset_s = 7200;
SELECT notification_id IS NOT NULL AS alerted, ticket_id, escalated
  FROM wasl_tickets_escalate('supervisors', ARRAY[]::text[], 'ops@example.org')
 ORDER BY ticket_id;
SELECT * FROM wasl_tickets_escalate('supervisors', ARRAY[]::text[], 'ops@example.org');
RESET wasl.clock_offset_s;
SELECT id, queue, priority, escalated_at IS NOT NULL AS escalated FROM tickets
 WHERE id IN (1, 2) ORDER BY id;
SELECT state, reason FROM offers WHERE ticket_id = 2 ORDER BY id;
SELECT ticket_id, recipient, template, params->>'queue' AS queue, dedupe_key
  FROM notifications WHERE kind = 'alert' ORDER BY ticket_id;

-- reply: one 'update' on the ticket's channel in its language with the text and reference; the
-- same key again enqueues nothing and records nothing; a resolved ticket takes no reply; no
-- ticket, no row.
SELECT status, done, notification_id IS NOT NULL AS sent
  FROM wasl_tickets_reply('2600000002', 'amal', 'سيتم التواصل معكم {ref}', 'k1', 'desk');
SELECT status, done, notification_id IS NOT NULL AS sent
  FROM wasl_tickets_reply('2600000002', 'amal', 'سيتم التواصل معكم {ref}', 'k1', 'desk');
SELECT kind, channel, recipient, lang, template, params, dedupe_key
  FROM notifications WHERE template = 'reply';
SELECT kind, actor, data - 'notification' AS data FROM ticket_events
 WHERE kind = 'replied';
SELECT * FROM wasl_tickets_reply('2600000004', 'amal', 'x', 'k2', 'desk');
SELECT * FROM wasl_tickets_reply('2699999999', 'amal', 'x', 'k3', 'desk');

-- csat: replies since p_since by queue and agent, the queue's subtotal and the grand total;
-- an older reply is not counted.
UPDATE tickets SET assignee = 'amal' WHERE id = 3;
INSERT INTO csat (ticket_id, score, channel, received_at) VALUES
    (3, 5, 'sms', now()), (4, 2, 'sms', now()), (5, 4, 'sms', now() - interval '2 days');
SELECT * FROM wasl_tickets_csat(now() - interval '1 day');
SELECT * FROM wasl_tickets_csat(now() + interval '1 minute');

-- of_phone: the caller's open tickets and those changed in the last 30 days, newest change
-- first, without the one being viewed; a resolved ticket older than the window, another
-- number's and a NULL number find nothing.
INSERT INTO tickets (ref, channel, external_id, status, from_phone, subject, updated_at)
VALUES ('2600000201', 'sms', 'p-1', 'assigned', '+966555000111', 'open', now() - interval '60 days'),
       ('2600000202', 'sms', 'p-2', 'resolved', '+966555000111', 'recent', now() - interval '2 days'),
       ('2600000203', 'sms', 'p-3', 'closed', '+966555000111', 'old', now() - interval '40 days'),
       ('2600000204', 'sms', 'p-4', 'routed', '+966555000111', 'newest', now()),
       ('2600000205', 'sms', 'p-5', 'routed', '+966555000222', 'other', now());
SELECT ref, status, subject, open FROM wasl_tickets_of_phone('+966555000111', NULL, 30, 10);
SELECT ref FROM wasl_tickets_of_phone('+966555000111',
    (SELECT id FROM tickets WHERE ref = '2600000204'), 30, 1);
SELECT count(*) AS none FROM wasl_tickets_of_phone(NULL, NULL, 30, 10);

-- call_ticket: a call that rang for amal gets its ticket, assigned to her at once, with its
-- classify work and the call's events linked; the same call again returns it (created f);
-- another client's call with the same id is another call; a call rung for nobody who is an
-- agent gets no row.
INSERT INTO call_events (call_id, seq, event, data, client_id)
VALUES ('c-1', 1, 'call.started', '{"from": "0555000111"}', 'pbx'),
       ('c-1', 2, 'call.ringing', '{"agent": "amal"}', 'pbx');
SELECT ref, created, assignee FROM wasl_tickets_call_ticket('pbx', 'c-1', 'amal', '2600000101',
    '+966555000111', NULL, 'يسأل عن الجلسة', 'desk');
SELECT ref, created, assignee FROM wasl_tickets_call_ticket('pbx', 'c-1', 'amal', '2600000102',
    '+966555000111', 'x', 'x', 'desk');
SELECT ref, channel, external_id, client_id, subject, status, assignee, from_phone,
       first_response_at IS NOT NULL AS responded
  FROM tickets WHERE external_id = 'c-1';
SELECT e.kind, e.actor, e.data FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id
 WHERE t.ref = '2600000101' ORDER BY e.id;
SELECT m.direction, m.channel, m.sender, m.body FROM messages m JOIN tickets t
    ON t.id = m.ticket_id WHERE t.ref = '2600000101';
SELECT w.stage, w.state FROM work w JOIN tickets t ON t.id = w.ticket_id
 WHERE t.ref = '2600000101';
SELECT seq, ticket_id = (SELECT id FROM tickets WHERE ref = '2600000101') AS linked
  FROM call_events WHERE call_id = 'c-1' ORDER BY seq;
SELECT ref, created FROM wasl_tickets_call_ticket('pbx-2', 'c-1', 'badr', '2600000103', NULL,
    NULL, NULL, 'desk');
SELECT count(*) AS messages FROM messages m JOIN tickets t ON t.id = m.ticket_id
 WHERE t.ref = '2600000103';
SELECT count(*) AS no_agent FROM wasl_tickets_call_ticket('pbx', 'c-2', 'zed', '2600000104',
    NULL, NULL, NULL, 'desk');
SELECT count(*) AS none FROM tickets WHERE external_id = 'c-2';

-- assign: a supervisor (sara) gives ticket 3, offered to badr, to dana: badr's offer is
-- withdrawn, the ticket is dana's, the history says who and from whom; then from dana to amal
-- (from: dana). A disabled agent, a resolved ticket: nothing changes (done NULL); no ticket,
-- no row.
UPDATE tickets SET status = 'routed', assignee = NULL, first_response_at = NULL WHERE id = 3;
UPDATE agents SET wrapup_until = NULL, idle_since = now() - interval '1 hour' WHERE id = 'badr';
SELECT count(*) AS offered
  FROM wasl_offers_make('[{"ticket_id": 3, "agent": "badr", "channel": "api", "explain": {}}]',
                        'router-test', 60);
SELECT * FROM wasl_tickets_assign('2600000003', 'dana', 'sara', 'badr is in a meeting', 'desk');
SELECT status, assignee, first_response_at IS NOT NULL AS taken FROM tickets WHERE id = 3;
SELECT agent_id, state, reason FROM offers WHERE ticket_id = 3 ORDER BY id;
SELECT * FROM wasl_tickets_assign('2600000003', 'amal', 'sara', NULL, 'desk');
SELECT kind, actor, data - 'offer' AS data FROM ticket_events
 WHERE ticket_id = 3 AND kind IN ('assigned', 'offer.withdrawn') ORDER BY id;
UPDATE agents SET enabled = false WHERE id = 'badr';
SELECT * FROM wasl_tickets_assign('2600000003', 'badr', 'sara', NULL, 'desk');
SELECT * FROM wasl_tickets_assign('2600000003', 'ghost', 'sara', NULL, 'desk');
UPDATE agents SET enabled = true WHERE id = 'badr';
SELECT * FROM wasl_tickets_assign('2600000004', 'amal', 'sara', NULL, 'desk');
SELECT * FROM wasl_tickets_assign('2699999999', 'amal', 'sara', NULL, 'desk');
SELECT status, assignee FROM tickets WHERE id IN (3, 4) ORDER BY id;

-- wrapup: resolutions since p_since by queue and code, the queue's subtotal and the grand
-- total; one without a code is '-'; an older one and a reopened one are not counted.
UPDATE tickets SET status = 'resolved', resolved_at = wasl_now(), wrapup_code = 'referred',
       queue = 'general' WHERE id IN (1, 2);
UPDATE tickets SET status = 'resolved', resolved_at = wasl_now(), wrapup_code = NULL,
       queue = 'general' WHERE id = 3;
UPDATE tickets SET status = 'resolved', resolved_at = wasl_now() - interval '3 days',
       wrapup_code = 'answered' WHERE id = 5;
UPDATE tickets SET status = 'classified', resolved_at = NULL WHERE id = 4;
SELECT * FROM wasl_tickets_wrapup(wasl_now() - interval '1 day');
SELECT * FROM wasl_tickets_wrapup(wasl_now() + interval '1 minute');

-- create: intake's batch. Two new contacts (one automatic: closed, no classify row), a copy of
-- an existing ticket (its ticket back, not created), an email whose Message-ID another client
-- already used (email ids are global: the same ticket).
SELECT idx, ticket_id IS NOT NULL AS has_ticket, ref, created, work_id IS NOT NULL AS has_work
  FROM wasl_tickets_create('[
  {"idx": 0, "ref": "2600000901", "channel": "api", "external_id": "cr-1", "client_id": "crm",
   "subject": "s1", "body": "b1", "from_phone": "+966500000201", "event_data": {"x": 1}},
  {"idx": 1, "ref": "2600000902", "channel": "email", "external_id": "m-1@x", "client_id": "mail",
   "subject": "s2", "body": "b2", "from_email": "a@x.sa", "auto_submitted": "auto-replied"},
  {"idx": 2, "ref": "2600000903", "channel": "api", "external_id": "ext-1", "body": "again"}
]') ORDER BY idx;
SELECT t.ref, t.status, t.beneficiary_type, t.client_id,
       (SELECT count(*) FROM messages m WHERE m.ticket_id = t.id AND m.direction = 'in') AS msgs,
       (SELECT data FROM ticket_events e WHERE e.ticket_id = t.id AND e.kind = 'received') AS ev,
       (SELECT string_agg(stage, ',') FROM work w WHERE w.ticket_id = t.id) AS work
  FROM tickets t WHERE t.ref IN ('2600000901', '2600000902') ORDER BY 1;
SELECT idx, ref, created, work_id IS NOT NULL AS has_work FROM wasl_tickets_create('[
  {"idx": 0, "ref": "2600000904", "channel": "api", "external_id": "cr-1", "client_id": "crm",
   "body": "copy"},
  {"idx": 1, "ref": "2600000905", "channel": "email", "external_id": "m-1@x", "client_id": "other",
   "body": "same mail"},
  {"idx": 2, "ref": "2600000906", "channel": "api", "external_id": "cr-1", "client_id": "other",
   "body": "cr-1 of another client"}
]') ORDER BY idx;
SELECT count(*) AS empty FROM wasl_tickets_create('[]');

-- classify: two claimed classify rows under 'cl-1' (one with a live lease, one whose lease ran
-- out: another classifier may own it now) and their decisions: only the fenced one commits —
-- ticket, event, route row; the same batch again commits nothing more (done already).
SELECT id AS cr1 FROM tickets WHERE ref = '2600000901' \gset
SELECT id AS cr6 FROM tickets WHERE ref = '2600000906' \gset
UPDATE work SET owner = 'cl-1', attempts = 1,
       lease_until = CASE WHEN ticket_id = :cr1 THEN now() + interval '30 s'
                          ELSE now() - interval '1 s' END
 WHERE ticket_id IN (:cr1, :cr6) AND stage = 'classify';
SELECT max(id) FILTER (WHERE ticket_id = :cr1) AS w1, max(id) FILTER (WHERE ticket_id = :cr6) AS w6
  FROM work WHERE stage = 'classify' \gset
\set batch '[{"work_id": ' :w1 ', "ticket_id": ' :cr1 ', "category": "case_inquiry", "confidence": 0.9, "priority": "high", "language": "ar", "entities": {"case": "1"}, "model": "m1", "event": {"category": "case_inquiry"}}, {"work_id": ' :w6 ', "ticket_id": ' :cr6 ', "category": "complaint", "confidence": 0.5, "priority": "low", "language": "en", "entities": {}, "model": "m1", "event": {}}]'
SELECT work_id = :w1 AS first, route_work_id IS NOT NULL AS routed
  FROM wasl_tickets_classify(:'batch', 'cl-1');
SELECT ref, status, category, priority, language, entities, model_version,
       (SELECT count(*) FROM ticket_events e WHERE e.ticket_id = t.id AND e.kind = 'classified')
           AS events,
       (SELECT string_agg(stage || ':' || state, ',' ORDER BY w.id) FROM work w
         WHERE w.ticket_id = t.id) AS work
  FROM tickets t WHERE id IN (:cr1, :cr6) ORDER BY 1;
SELECT count(*) AS again FROM wasl_tickets_classify(:'batch', 'cl-1');
-- another owner: nothing.
UPDATE work SET lease_until = now() + interval '30 s' WHERE id = :w6;
SELECT count(*) AS other_owner FROM wasl_tickets_classify(:'batch', 'cl-2');
-- its owner, now with a live lease: committed.
SELECT work_id = :w6 AS sixth, route_work_id IS NOT NULL AS routed
  FROM wasl_tickets_classify(:'batch', 'cl-1');
