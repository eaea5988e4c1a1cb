-- grants.sql — what each PostgreSQL role of Wasl may do: the one declarative place for it.
--
-- `waslctl migrate` applies this file after the numbered migrations, on every run and in the
-- same transaction, as the schema's owner (`wasl`). It first takes every privilege away from
-- the daemons' roles and then grants exactly what is listed here, so the file *is* the state:
-- delete a line and the privilege is gone at the next migrate. The roles themselves come from
-- proto/roles.sql (a DBA, once per cluster).
--
-- Adding a table or a column in a new migration? Add its grants below, in the section of each
-- role that reads or writes it (least privilege: the tables, and where it is cheap the columns,
-- that the role's SQL really uses), and extend tests/integration/test_privileges.py when the
-- table is append-only. Append-only tables (ticket_events, agent_events, case_lookup_audit; and
-- call_events, whose rows are never deleted) get INSERT and SELECT only, never UPDATE, DELETE
-- or TRUNCATE, and their triggers refuse those to everybody, the owner included.

DO $$
DECLARE
    missing text;
BEGIN
    SELECT string_agg(r, ', ') INTO missing
      FROM unnest(ARRAY['wasl_intake', 'wasl_classifier', 'wasl_router', 'wasl_notifier',
                        'wasl_caselookup', 'wasl_ctl', 'wasl_desk']) AS r
     WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'PostgreSQL roles missing: % (create them once per cluster with '
                        'proto/roles.sql, as a DBA or a role with CREATEROLE)', missing;
    END IF;
END;
$$;

-- Nobody but the owner creates objects in the schema (PostgreSQL 15 already says so; an
-- upgraded cluster may not).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO wasl_intake, wasl_classifier, wasl_router, wasl_notifier,
    wasl_caselookup, wasl_ctl, wasl_desk;

-- Start from nothing (column privileges go with the table's).
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC, wasl_intake, wasl_classifier,
    wasl_router, wasl_notifier, wasl_caselookup, wasl_ctl, wasl_desk;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC, wasl_intake, wasl_classifier,
    wasl_router, wasl_notifier, wasl_caselookup, wasl_ctl, wasl_desk;
-- The state-change functions (proto/functions/, applied just before this file) too: PostgreSQL
-- gives EXECUTE to PUBLIC on every new function. They run as their caller (SECURITY INVOKER),
-- so the table grants below still bound what a role can change; EXECUTE says which of the
-- documented changes a role is meant to make. Other functions (wasl_now, the triggers') keep
-- PUBLIC's EXECUTE: an index or a trigger may need them.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace = 'public'::regnamespace
                AND p.proname ~ '^wasl_(offers|agents|work|notifications|tickets)_' LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, wasl_intake, wasl_classifier, '
                       'wasl_router, wasl_notifier, wasl_caselookup, wasl_ctl, wasl_desk', f);
    END LOOP;
END;
$$;

-- ---- wasl_intake: the HTTP edge for machines (tickets, calls, SMS, email, DLRs, opt-outs) ---
-- The agent API moved to wasl-desk (issue 15): intake keeps no privilege on agents, offers,
-- agent_events or desk_idempotency, and none of their functions.
GRANT SELECT ON clients TO wasl_intake;
GRANT SELECT, INSERT, UPDATE ON tickets TO wasl_intake;
GRANT USAGE ON SEQUENCE ticket_ref_seq TO wasl_intake;
GRANT SELECT, INSERT ON ticket_events, messages, ticket_participants, work TO wasl_intake;
GRANT SELECT, INSERT ON call_events TO wasl_intake;
GRANT UPDATE (ticket_id) ON call_events TO wasl_intake; -- linking a call to its ticket
GRANT UPDATE (abandoned, abandoned_queue) ON call_events TO wasl_intake; -- call_abandoned's mark
GRANT SELECT, INSERT, UPDATE ON notifications TO wasl_intake; -- delivery reports
GRANT SELECT, INSERT, DELETE ON opt_outs TO wasl_intake;
GRANT SELECT, INSERT, UPDATE ON csat TO wasl_intake;           -- a later score replaces one

GRANT EXECUTE ON FUNCTION wasl_work_enqueue, wasl_notifications_enqueue,
    wasl_notifications_delivery_report, wasl_tickets_create TO wasl_intake;

-- ---- wasl_classifier: claims classify work, writes the classification ------------------------
GRANT SELECT, INSERT, UPDATE, DELETE ON work TO wasl_classifier; -- DELETE: a done row (0027)
GRANT SELECT ON tickets, messages TO wasl_classifier;
GRANT UPDATE (category, confidence, priority, language, entities, model_version, status,
              updated_at) ON tickets TO wasl_classifier;
GRANT INSERT ON ticket_events TO wasl_classifier;
GRANT EXECUTE ON FUNCTION wasl_work_claim, wasl_work_claim_stale, wasl_work_fail,
    wasl_work_complete, wasl_work_enqueue, wasl_tickets_classify TO wasl_classifier;

-- ---- wasl_router: routing, offers, timers, auto-answers --------------------------------------
GRANT SELECT, INSERT, UPDATE, DELETE ON work TO wasl_router; -- DELETE: a done row (0027)
GRANT SELECT, UPDATE ON tickets, agents TO wasl_router;
GRANT SELECT, INSERT, UPDATE ON offers TO wasl_router;
GRANT SELECT, INSERT ON ticket_events, agent_events, notifications TO wasl_router;
GRANT SELECT ON call_events TO wasl_router; -- a callback keeps the call's place in line
-- whether a ticket's phone came from a line trusted for caller ID (never the credentials)
GRANT SELECT (id, kind, trusted_ani) ON clients TO wasl_router;
GRANT EXECUTE ON FUNCTION wasl_offers_make, wasl_offers_expire, wasl_offers_withdraw,
    wasl_work_claim, wasl_work_claim_stale, wasl_work_fail, wasl_work_complete,
    wasl_work_enqueue, wasl_notifications_enqueue,
    wasl_agents_expire_presence, wasl_tickets_route, wasl_tickets_escalate,
    wasl_tickets_overflow, wasl_tickets_mark_staffing TO wasl_router;

-- ---- wasl_notifier: the outbox --------------------------------------------------------------
GRANT SELECT, UPDATE ON notifications TO wasl_notifier;
GRANT SELECT ON tickets, opt_outs TO wasl_notifier;
GRANT SELECT, INSERT ON messages TO wasl_notifier; -- the outbound copy with its Message-ID
GRANT INSERT ON ticket_events TO wasl_notifier;
GRANT EXECUTE ON FUNCTION wasl_notifications_claim, wasl_notifications_sent,
    wasl_notifications_fail, wasl_notifications_defer, wasl_notifications_suppress,
    wasl_notifications_release TO wasl_notifier;

-- ---- wasl_caselookup: reads the case replica, appends to its audit --------------------------
GRANT SELECT ON courts, circuits, cases, case_parties, case_hearings, case_updates
    TO wasl_caselookup;
GRANT SELECT, INSERT ON case_lookup_audit TO wasl_caselookup;

-- ---- wasl_ctl: waslctl's operator commands (client, agent, route, notify, report) ----------
GRANT SELECT, INSERT, UPDATE, DELETE ON clients TO wasl_ctl;
GRANT SELECT, INSERT, UPDATE ON agents TO wasl_ctl;
GRANT SELECT, UPDATE ON offers TO wasl_ctl;                -- removing an agent withdraws them
GRANT SELECT, INSERT ON agent_events, ticket_events TO wasl_ctl;
GRANT SELECT ON tickets, csat, call_events TO wasl_ctl;
GRANT SELECT, UPDATE ON notifications TO wasl_ctl;         -- `notify redrive`
GRANT EXECUTE ON FUNCTION wasl_agents_save, wasl_agents_remove, wasl_offers_withdraw,
    wasl_notifications_redrive TO wasl_ctl;

-- ---- wasl_desk: the desk, and the agent API it took over from intake, and no more -----------
GRANT SELECT, UPDATE ON tickets, offers TO wasl_desk;
GRANT SELECT, INSERT, UPDATE ON agents TO wasl_desk;
GRANT SELECT, INSERT ON ticket_events, agent_events, messages, work, notifications
    TO wasl_desk;
GRANT SELECT, INSERT, UPDATE, DELETE ON desk_idempotency TO wasl_desk;
GRANT EXECUTE ON FUNCTION wasl_offers_accept, wasl_offers_reject, wasl_offers_withdraw,
    wasl_agents_save, wasl_agents_remove, wasl_agents_set_presence, wasl_work_enqueue,
    wasl_notifications_enqueue, wasl_tickets_note, wasl_tickets_transfer,
    wasl_tickets_resolve, wasl_tickets_reopen, wasl_tickets_reply, wasl_tickets_assign
    TO wasl_desk;

-- ==== desk (issue 15, docs/desk.md): people's passwords and roles ============================
-- An agent's password hash is read and written by waslctl (`agent passwd`) and the desk (sign
-- in, a person changing their own) only: intake and the router keep their privileges on every
-- other column of agents, and cannot even read the hash (a leaked intake credential must not
-- give an offline guessing start). A column added to agents is listed here for them too.
REVOKE SELECT, UPDATE ON agents FROM wasl_intake, wasl_router;
GRANT SELECT (id, name, skills, languages, capacity, wrapup_s, enabled, presence, presence_until,
              idle_since, wrapup_until, created_at, updated_at, role)
    ON agents TO wasl_router;
GRANT UPDATE (name, skills, languages, capacity, wrapup_s, enabled, presence, presence_until,
              idle_since, wrapup_until, updated_at)
    ON agents TO wasl_router;
GRANT EXECUTE ON FUNCTION wasl_agents_set_password TO wasl_ctl, wasl_desk;

-- Integrations acting for agents on the desk (issue 15: the agent API moved from intake): the
-- desk reads bearer-token clients (common/wasl_clients) — never an HMAC secret, which only
-- intake's signatures need.
GRANT SELECT (id, scopes, token_sha256, rate_per_s, role, act_as, enabled) ON clients TO wasl_desk;

-- The supervisor's wallboard (services/desk/wallboard.c): abandoned calls and CSAT of the day.
GRANT SELECT ON csat, call_events TO wasl_desk;
GRANT EXECUTE ON FUNCTION wasl_tickets_csat, wasl_tickets_wrapup TO wasl_desk, wasl_ctl;

-- The screen pop (services/desk/calls.c, migration 0021): the desk reads a call's events and
-- the caller's tickets, and its one-click ticket for a call makes the ticket as intake would
-- (wasl_tickets_call_ticket: a new ticket row, its reference from the shared sequence, the
-- call's events linked to it).
GRANT INSERT ON tickets TO wasl_desk;
GRANT USAGE ON SEQUENCE ticket_ref_seq TO wasl_desk;
GRANT UPDATE (ticket_id) ON call_events TO wasl_desk;
GRANT EXECUTE ON FUNCTION wasl_tickets_of_phone, wasl_tickets_call_ticket TO wasl_desk;
