-- 0003_router: agents and their presence, offers with a lease, and the routing state of tickets.
-- Presence lives here, not in Redis: an offer must be made in the same transaction that checks
-- the agent is present and has capacity, or an expired heartbeat could still receive one.

CREATE TABLE agents (
    id              text        PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    name            text        NOT NULL,
    -- Queue or skill name → level 1..10 (higher is better matched).
    skills          jsonb       NOT NULL DEFAULT '{}'::jsonb
                    CHECK (jsonb_typeof(skills) = 'object'),
    languages       text[]      NOT NULL DEFAULT '{ar}',
    -- Channel → tickets at once (offers count too).
    capacity        jsonb       NOT NULL
                    DEFAULT '{"phone": 1, "email": 3, "sms": 3, "web": 3, "api": 3}'::jsonb
                    CHECK (jsonb_typeof(capacity) = 'object'),
    wrapup_s        integer     NOT NULL DEFAULT 30 CHECK (wrapup_s BETWEEN 0 AND 3600),
    enabled         boolean     NOT NULL DEFAULT true,
    presence        text        NOT NULL DEFAULT 'offline'
                    CHECK (presence IN ('available', 'busy', 'away', 'offline')),
    -- Without a heartbeat before this instant the agent is offline, whatever `presence` says.
    presence_until  timestamptz,
    -- Longest-idle first: when the agent last finished (or became available).
    idle_since      timestamptz NOT NULL DEFAULT now(),
    wrapup_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agent_events (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id  text        NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    kind      text        NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]*$'),
    actor     text        NOT NULL,
    data      jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX agent_events_agent_idx ON agent_events (agent_id, id);
CREATE TRIGGER agent_events_append_only BEFORE UPDATE OR DELETE ON agent_events
    FOR EACH ROW EXECUTE FUNCTION wasl_append_only();

-- An offer of a ticket to an agent, leased until expires_at.
CREATE TABLE offers (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id    bigint      NOT NULL REFERENCES tickets (id),
    agent_id     text        NOT NULL REFERENCES agents (id),
    state        text        NOT NULL DEFAULT 'offered'
                 CHECK (state IN ('offered', 'accepted', 'rejected', 'expired', 'withdrawn')),
    channel      text        NOT NULL,
    offered_by   text        NOT NULL, -- the router instance
    offered_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    answered_at  timestamptz,
    reason       text,
    CHECK (state = 'offered' OR answered_at IS NOT NULL)
);
-- One live offer per ticket, whatever number of routers run.
CREATE UNIQUE INDEX offers_live_ticket_idx ON offers (ticket_id) WHERE state = 'offered';
CREATE INDEX offers_live_agent_idx ON offers (agent_id) WHERE state = 'offered';
CREATE INDEX offers_expiry_idx ON offers (expires_at) WHERE state = 'offered';
CREATE INDEX offers_ticket_idx ON offers (ticket_id, id);

ALTER TABLE tickets
    -- 0 urgent … 3 low: the first key of the waiting order.
    ADD COLUMN prio_rank         smallint CHECK (prio_rank BETWEEN 0 AND 3),
    ADD COLUMN skills            text[]   NOT NULL DEFAULT '{}',
    ADD COLUMN route_rule        text,
    ADD COLUMN routed_at         timestamptz,
    -- The caller's place in line: the first contact's time, kept across callbacks, transfers
    -- and reopening (the third key of the order, after the SLA deadline).
    ADD COLUMN waiting_since     timestamptz,
    -- Overflow timer: since when no eligible agent was present.
    ADD COLUMN no_agent_since    timestamptz,
    ADD COLUMN escalated_at      timestamptz,
    ADD COLUMN overflowed_at     timestamptz,
    ADD COLUMN first_response_at timestamptz,
    ADD COLUMN resolution        text,
    ADD COLUMN reopen_count      integer  NOT NULL DEFAULT 0;
CREATE INDEX tickets_waiting_idx ON tickets (prio_rank, first_response_due, waiting_since, id)
    WHERE status = 'routed';
CREATE INDEX tickets_assignee_idx ON tickets (assignee) WHERE status = 'assigned';
CREATE INDEX tickets_sla_idx ON tickets (first_response_due, resolution_due)
    WHERE status IN ('routed', 'assigned') AND escalated_at IS NULL;

-- The router's clock: now(), shifted by the session setting wasl.clock_offset_s when a test
-- sets it (WASL_ROUTER_CLOCK_OFFSET_S); SLA and overflow timers compare against it.
CREATE FUNCTION wasl_now() RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT now() + coalesce(nullif(current_setting('wasl.clock_offset_s', true), ''),
                            '0')::double precision * interval '1 second'
$$;

-- A callback keeps the caller's place: the router looks up the call's first event by ticket.
CREATE INDEX call_events_ticket_idx ON call_events (ticket_id) WHERE ticket_id IS NOT NULL;
