-- notifications.sql — the state changes of the outbox (notifications).
--
-- States: pending → sent | dead | suppressed; dead → pending by an operator's redrive. A
-- notifier holds a pending row by its lease (owner, lease_until, attempts + 1: none indexed, so
-- the claim is a HOT update, migration 0028); a retry, a deferral or a give-back leaves it
-- pending and clears the owner. Every change by the notifier is fenced on its owner holding the
-- row (pending, owner = it). The lease, backoff and
-- send times are the ledger's own bookkeeping, on now() like the work ledger's (the
-- notifier's quiet hours have their own test clock). SECURITY INVOKER.
--
-- Rows by id. A statement that names its rows by id (the nudged claim, the fenced completion,
-- the notifier's fetch and marks) writes the state test as a CASE — `CASE state WHEN 'pending'
-- THEN … END` — never as `state = 'pending' AND …`. The two mean the same, but the second lets
-- PostgreSQL prove the predicate of the partial indexes on state (work_pending_idx,
-- notifications_due_idx; notifications_sending_idx before 0028), and it then chose to walk one
-- of them — every pending row of the table, with the dead index entries the churn leaves — and
-- filter by id, or, with `id = ANY` as a later key of the index, walk it once per id; a batch of
-- 128 ids cost 128 walks of the whole backlog, and the further a
-- stage fell behind, the slower each of its statements became (EXPLAIN in issue 16's notes;
-- `_bt_checkkeys` and `nocache_index_getattr` on top of PostgreSQL's profile). With the CASE only
-- the primary key can serve the statement: one probe per id, whatever waits. The sweeps, which
-- look for rows by state, keep the partial indexes.

-- wasl_notifications_enqueue — adds notifications unless one with the same dedupe key exists
-- (so a retried batch or a second resolve notifies nobody twice).
--   p_rows  jsonb array of {ticket_id, kind, channel, recipient, lang, template, params,
--           dedupe_key}; lang defaults to 'ar', params to {}
-- Returns the rows inserted (notification_id, ticket_id, channel, kind), in input order (a
-- function scan of the array); a duplicate key has none. Touches notifications (insert).
-- Called by the router's route commit (acks, case answers) and escalation (SLA alerts) and by
-- the desk's resolve (update and survey). From a CTE: read its rows fully.
CREATE OR REPLACE FUNCTION wasl_notifications_enqueue(p_rows jsonb)
RETURNS TABLE (notification_id bigint, ticket_id bigint, channel text, kind text)
LANGUAGE sql VOLATILE AS $$
    INSERT INTO notifications (ticket_id, kind, channel, recipient, lang, template, params,
                               dedupe_key)
    SELECT r.ticket_id, r.kind, r.channel, r.recipient, coalesce(r.lang, 'ar'), r.template,
           coalesce(r.params, '{}'), r.dedupe_key
      FROM jsonb_to_recordset(coalesce(p_rows, '[]'))
        AS r(ticket_id bigint, kind text, channel text, recipient text, lang text,
             template text, params jsonb, dedupe_key text)
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id, ticket_id, channel, kind
$$;

-- wasl_notifications_claim — leases due rows to p_owner for p_lease_s seconds, one attempt
-- more each: among p_ids (the bus's nudges) or, when p_ids is NULL, the sweep's oldest due
-- rows. Due: pending, next_attempt_at passed, and under no live lease (one that ran out: the
-- notifier that held it died between lease and mark). The lease is a HOT update (no indexed
-- column changes). The sweep is one ordered walk of notifications_due_idx that stops at
-- p_limit rows, filtering the few rows under a live lease on the heap; a leased row was due
-- when it was claimed, so an expired lease comes early.
-- Returns the ids claimed (at most p_limit). Touches notifications. Called by the notifier.
CREATE OR REPLACE FUNCTION wasl_notifications_claim(p_owner text, p_lease_s integer,
                                                    p_limit integer, p_ids bigint[])
RETURNS SETOF bigint
LANGUAGE sql VOLATILE AS $$
    WITH due AS (
        SELECT id FROM notifications
         WHERE p_ids IS NULL
           AND state = 'pending'
           AND next_attempt_at <= now()
           AND (lease_until IS NULL OR lease_until < now())
         ORDER BY next_attempt_at, id
         LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), nudged AS (
        SELECT id FROM notifications
         WHERE id = ANY (p_ids)
           AND CASE state WHEN 'pending'                   -- "Rows by id", above
               THEN next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now()) END
         ORDER BY id
         LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), c AS (
        SELECT id FROM due
        UNION ALL SELECT id FROM nudged
        LIMIT p_limit
    )
    UPDATE notifications n
       SET owner = p_owner,
           lease_until = now() + make_interval(secs => p_lease_s),
           attempts = n.attempts + 1, updated_at = now()
      FROM c
     WHERE n.id = c.id
    RETURNING n.id
$$;

-- wasl_notifications_sent — records that the provider took the notifications of p_batch, in one
-- statement for a notifier's whole batch (issue 16: one commit per batch instead of one per
-- message). Fenced on the owner, not on the lease's expiry: once the provider took a message,
-- recording that is right even late; a row another notifier re-claimed has another owner. An
-- email (record true) also becomes the ticket's outbound message, so that a reply threads back
-- by its Message-ID.
--   p_batch  jsonb array of {id, provider_id, provider_status (the provider's answer), segments
--            (SMS parts or null), message_id (the email's Message-ID without brackets, or null),
--            sender, body, subject (the outbound message as sent), record, channel (for the
--            history)}; an id given twice is recorded once
--   p_owner  the notifier's owner name
-- Returns the ids recorded; an id missing lost its fence.
-- Touches notifications, messages ('out'), ticket_events ('notification.sent').
-- Called by the notifier, once per batch after its sends.
DROP FUNCTION IF EXISTS wasl_notifications_sent(bigint, text, text, text, integer, text, text,
                                                text, text, boolean, text); -- the one-row form
CREATE OR REPLACE FUNCTION wasl_notifications_sent(p_batch jsonb, p_owner text)
RETURNS SETOF bigint
LANGUAGE sql VOLATILE AS $$
    WITH input AS (
        SELECT DISTINCT ON (x.id) x.*
          FROM jsonb_to_recordset(p_batch)
            AS x(id bigint, provider_id text, provider_status text, segments integer,
                 message_id text, sender text, body text, subject text, record boolean,
                 channel text)
         ORDER BY x.id
    ), s AS (
        UPDATE notifications n
           SET state = 'sent', provider_id = i.provider_id, provider_status = i.provider_status,
               segments = i.segments, message_id = i.message_id, sent_at = now(),
               updated_at = now(), lease_until = NULL, last_error = NULL
          FROM input i
         WHERE n.id = i.id
           AND CASE n.state WHEN 'pending' THEN n.owner = p_owner END -- "Rows by id", above
        RETURNING n.id, n.ticket_id, n.template
    ), m AS (
        INSERT INTO messages (ticket_id, direction, channel, external_id, sender, body, subject,
                              message_id)
        SELECT s.ticket_id, 'out', 'email', i.message_id, i.sender, i.body, i.subject,
               i.message_id
          FROM s
          JOIN input i ON i.id = s.id
         WHERE i.message_id IS NOT NULL
           AND s.ticket_id IS NOT NULL
           AND i.record
         ORDER BY s.id
        ON CONFLICT DO NOTHING
    ), e AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT s.ticket_id, 'notification.sent', 'notifier',
               jsonb_build_object('notification_id', s.id, 'template', s.template,
                                  'channel', i.channel, 'provider_id', i.provider_id,
                                  'segments', i.segments)
          FROM s
          JOIN input i ON i.id = s.id
         WHERE s.ticket_id IS NOT NULL
         ORDER BY s.id
    )
    SELECT id FROM s ORDER BY id
$$;

-- wasl_notifications_fail — a failed send: pending again after p_backoff_ms, or dead when
-- p_permanent or when it used its last attempt, with p_error as the reason.
-- Returns the new state ('pending' or 'dead'), no row when the fence was lost.
-- Touches notifications. Called by the notifier.
CREATE OR REPLACE FUNCTION wasl_notifications_fail(p_id bigint, p_owner text, p_error text,
                                                   p_backoff_ms double precision,
                                                   p_permanent boolean)
RETURNS SETOF text
LANGUAGE sql VOLATILE AS $$
    UPDATE notifications
       SET state = CASE WHEN p_permanent OR attempts >= max_attempts THEN 'dead'
                        ELSE 'pending' END,
           -- waiting again: nobody holds it (a dead row keeps who gave up on it)
           owner = CASE WHEN p_permanent OR attempts >= max_attempts THEN owner END,
           next_attempt_at = now() + make_interval(secs => p_backoff_ms / 1000),
           last_error = p_error, lease_until = NULL, updated_at = now()
     WHERE id = p_id
       AND CASE state WHEN 'pending' THEN owner = p_owner END -- "Rows by id", above
    RETURNING state
$$;

-- wasl_notifications_defer — puts a send off p_delay_s seconds (quiet hours, rate limit)
-- without using an attempt up; p_reason is kept as last_error.
-- Returns the id, no row when the fence was lost. Touches notifications. Called by the notifier.
CREATE OR REPLACE FUNCTION wasl_notifications_defer(p_id bigint, p_owner text,
                                                    p_delay_s integer, p_reason text)
RETURNS SETOF bigint
LANGUAGE sql VOLATILE AS $$
    UPDATE notifications
       SET attempts = greatest(attempts - 1, 0), owner = NULL,
           next_attempt_at = now() + make_interval(secs => p_delay_s), last_error = p_reason,
           lease_until = NULL, updated_at = now()
     WHERE id = p_id
       AND CASE state WHEN 'pending' THEN owner = p_owner END -- "Rows by id", above
    RETURNING id
$$;

-- wasl_notifications_suppress — never sends notification p_id (opted out, automatic mail…).
-- Returns the id, no row when the fence was lost. Touches notifications. Called by the notifier.
CREATE OR REPLACE FUNCTION wasl_notifications_suppress(p_id bigint, p_owner text, p_reason text)
RETURNS SETOF bigint
LANGUAGE sql VOLATILE AS $$
    UPDATE notifications
       SET state = 'suppressed', last_error = p_reason, lease_until = NULL, updated_at = now()
     WHERE id = p_id
       AND CASE state WHEN 'pending' THEN owner = p_owner END -- "Rows by id", above
    RETURNING id
$$;

-- wasl_notifications_release — gives claimed rows back at once on a stop (not an attempt),
-- rather than leaving them to wait for their lease to expire.
-- Returns the ids given back. Touches notifications. Called by the notifier.
CREATE OR REPLACE FUNCTION wasl_notifications_release(p_ids bigint[], p_owner text)
RETURNS SETOF bigint
LANGUAGE sql VOLATILE AS $$
    UPDATE notifications
       SET attempts = greatest(attempts - 1, 0), owner = NULL, lease_until = NULL,
           updated_at = now()
     WHERE id = ANY (p_ids)
       AND CASE state WHEN 'pending' THEN owner = p_owner END -- "Rows by id", above
    RETURNING id
$$;

-- wasl_notifications_redrive — an operator sends dead notifications again, from their first
-- attempt: those among p_ids, or every dead one when p_ids is NULL, of channel p_channel
-- (NULL: both). Returns the ids redriven. Touches notifications.
-- Called by `waslctl notify redrive`.
CREATE OR REPLACE FUNCTION wasl_notifications_redrive(p_ids bigint[], p_channel text)
RETURNS SETOF bigint
LANGUAGE sql VOLATILE AS $$
    UPDATE notifications
       SET state = 'pending', attempts = 0, next_attempt_at = now(), owner = NULL,
           lease_until = NULL, updated_at = now()
     WHERE state = 'dead'
       AND (p_ids IS NULL OR id = ANY (p_ids))
       AND (p_channel IS NULL OR channel = p_channel)
    RETURNING id
$$;

-- wasl_notifications_delivery_report — an SMS provider's delivery report for notification
-- p_id (or, without it, the one with provider id p_provider_id). A final report (delivered,
-- failed, rejected) is never replaced by an interim one that arrives late (buffered,
-- submitted): reports come in any order.
-- Returns the notification (notification_id, dlr_status as kept), no row when there is no SMS
-- notification with that id. Touches notifications (dlr_status, dlr_at).
-- Called by intake (GET|POST /v1/sms/dlr).
CREATE OR REPLACE FUNCTION wasl_notifications_delivery_report(p_id bigint, p_provider_id text,
                                                              p_status text)
RETURNS TABLE (notification_id bigint, dlr_status text)
LANGUAGE sql VOLATILE AS $$
    UPDATE notifications
       SET dlr_at = now(), updated_at = now(),
           dlr_status = CASE WHEN dlr_status IN ('delivered', 'failed', 'rejected')
                                  AND p_status NOT IN ('delivered', 'failed', 'rejected')
                             THEN dlr_status ELSE p_status END
     WHERE channel = 'sms'
       AND (id = p_id OR (p_id IS NULL AND provider_id = p_provider_id))
    RETURNING id, dlr_status
$$;
