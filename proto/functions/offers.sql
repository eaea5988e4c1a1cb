-- offers.sql — the state changes of offers (a ticket offered to an agent with a lease).
--
-- State machine: offered → accepted | rejected | expired | withdrawn; a closed offer never
-- opens again (each function below changes only rows still 'offered'). Every change writes
-- its ticket_events row in the same statement. Domain times use wasl_now() (the router's test
-- clock); updated_at stays now(). SECURITY INVOKER (the default): the caller's grants apply.
-- Conventions of every file here: docs/architecture.md, "State changes".

-- wasl_offers_withdraw — takes back the live offers of some tickets and/or of one agent.
--   p_tickets  the tickets whose live offer goes (NULL: any ticket)
--   p_agent    the agent whose live offers go (NULL: any agent); both NULL withdraws nothing
--   p_reason   why ('escalated', 'transferred', 'resolved', 'agent removed', 'agent away'…)
--   p_actor    who, for the history ('router', a client id, an agent id, 'waslctl')
-- Returns one row per offer withdrawn (offer_id, ticket_id, agent_id); none is not an error.
-- Touches offers (state, answered_at, reason), ticket_events ('offer.withdrawn').
-- Called by wasl_agents_remove, wasl_agents_set_presence, wasl_agents_expire_presence,
-- wasl_tickets_transfer, wasl_tickets_resolve, the router's escalation.
-- From a CTE: read its rows fully (a SELECT CTE runs only as far as it is read).
CREATE OR REPLACE FUNCTION wasl_offers_withdraw(p_tickets bigint[], p_agent text,
                                                p_reason text, p_actor text)
RETURNS TABLE (offer_id bigint, ticket_id bigint, agent_id text)
LANGUAGE sql VOLATILE AS $$
    WITH wd AS (
        UPDATE offers o
           SET state = 'withdrawn', answered_at = wasl_now(), reason = p_reason
         WHERE o.state = 'offered'
           AND (p_tickets IS NOT NULL OR p_agent IS NOT NULL)
           AND (p_tickets IS NULL OR o.ticket_id = ANY (p_tickets))
           AND (p_agent IS NULL OR o.agent_id = p_agent)
        RETURNING o.id, o.ticket_id, o.agent_id
    ), ev AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT wd.ticket_id, 'offer.withdrawn', p_actor,
               jsonb_build_object('offer', wd.id, 'agent', wd.agent_id, 'reason', p_reason)
          FROM wd
    )
    SELECT id, ticket_id, agent_id FROM wd
$$;

-- wasl_offers_make — offers tickets to agents, leased for p_lease_s seconds.
--   p_offers   jsonb array of {ticket_id, agent, channel, explain} (explain: the decision,
--              kept in the 'offered' event)
--   p_router   the router instance making them (offers.offered_by)
--   p_lease_s  seconds the agent has to answer
-- Returns one row per offer made (offer_id, ticket_id, agent_id, expires_at). A ticket that
-- already has a live offer fails the whole call (offers_live_ticket_idx): the caller holds
-- the tickets locked and offers only those without one.
-- Touches offers (insert), ticket_events ('offered'). Called by the router's dispatch.
CREATE OR REPLACE FUNCTION wasl_offers_make(p_offers jsonb, p_router text,
                                            p_lease_s double precision)
RETURNS TABLE (offer_id bigint, ticket_id bigint, agent_id text, expires_at timestamptz)
LANGUAGE sql VOLATILE AS $$
    WITH input AS (
        SELECT *
          FROM jsonb_to_recordset(p_offers)
            AS x(ticket_id bigint, agent text, channel text, explain jsonb)
    ), ins AS (
        INSERT INTO offers (ticket_id, agent_id, channel, offered_by, expires_at)
        SELECT i.ticket_id, i.agent, i.channel, p_router,
               wasl_now() + make_interval(secs => p_lease_s)
          FROM input i
        RETURNING id, ticket_id, agent_id, expires_at
    ), ev AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT i.ticket_id, 'offered', 'router',
               coalesce(i.explain, '{}') || jsonb_build_object('offer', n.id,
                                                              'expires_at', n.expires_at)
          FROM input i
          JOIN ins n ON n.ticket_id = i.ticket_id
    )
    SELECT id, ticket_id, agent_id, expires_at FROM ins
$$;

-- wasl_offers_expire — closes the offers nobody answered in time; their agents go 'away' (an
-- agent who lets offers expire is not there, whatever the heartbeat says).
-- Returns one row per offer expired (offer_id, ticket_id, agent_id).
-- Touches offers, ticket_events ('offer.expired'), agents (presence), agent_events
-- ('presence.away'). Called by the router's dispatch round.
CREATE OR REPLACE FUNCTION wasl_offers_expire()
RETURNS TABLE (offer_id bigint, ticket_id bigint, agent_id text)
LANGUAGE sql VOLATILE AS $$
    WITH exp AS (
        UPDATE offers
           SET state = 'expired', answered_at = wasl_now(), reason = 'no answer'
         WHERE state = 'offered'
           AND expires_at <= wasl_now()
        RETURNING id, ticket_id, agent_id
    ), ev AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT exp.ticket_id, 'offer.expired', 'router',
               jsonb_build_object('offer', exp.id, 'agent', exp.agent_id)
          FROM exp
    ), away AS (
        UPDATE agents a
           SET presence = 'away', updated_at = now()
          FROM (SELECT DISTINCT exp.agent_id FROM exp) e
         WHERE a.id = e.agent_id
           AND a.presence = 'available'
        RETURNING a.id
    ), aev AS (
        INSERT INTO agent_events (agent_id, kind, actor, data)
        SELECT away.id, 'presence.away', 'router', '{"reason": "offer not answered"}'
          FROM away
    )
    SELECT id, ticket_id, agent_id FROM exp
$$;

-- wasl_offers_accept — agent p_agent takes offer p_offer: the offer is accepted and its
-- ticket assigned to them (first response now, unless there was one).
--   p_client  the API client acting, for the history
-- Returns one row when the offer was live, unexpired and p_agent's: ref is the ticket's
-- reference, or NULL when the ticket is no longer waiting ('routed') — then the caller rolls
-- back. No row: closed, expired, someone else's or no such offer (the caller says which).
-- Touches offers, tickets (status, assignee, first_response_at, no_agent_since), ticket_events
-- ('offer.accepted'). Called by the agent desk (intake: POST /v1/offers/{id}/accept).
CREATE OR REPLACE FUNCTION wasl_offers_accept(p_offer bigint, p_agent text, p_client text)
RETURNS TABLE (offer_id bigint, ref text)
LANGUAGE sql VOLATILE AS $$
    WITH o AS (
        UPDATE offers
           SET state = 'accepted', answered_at = wasl_now()
         WHERE id = p_offer
           AND agent_id = p_agent
           AND state = 'offered'
           AND expires_at > wasl_now()
        RETURNING id, ticket_id
    ), t AS (
        UPDATE tickets t
           SET status = 'assigned', assignee = p_agent,
               first_response_at = coalesce(t.first_response_at, wasl_now()),
               no_agent_since = NULL, updated_at = now()
          FROM o
         WHERE t.id = o.ticket_id
           AND t.status = 'routed'
        RETURNING t.id, t.ref
    ), ev AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT t.id, 'offer.accepted', p_agent,
               jsonb_build_object('offer', p_offer, 'agent', p_agent, 'client', p_client)
          FROM t
    )
    SELECT o.id, t.ref FROM o LEFT JOIN t ON true
$$;

-- wasl_offers_reject — agent p_agent declines offer p_offer (the router offers the ticket to
-- someone else, and not to them again for a while).
--   p_reason  the agent's words, or NULL;  p_client  the API client acting
-- Returns one row (offer_id, ticket_id) when the live offer was p_agent's; none otherwise
-- (an expired but not yet swept offer can still be rejected, as before).
-- Touches offers, ticket_events ('offer.rejected'). Called by the agent desk (intake).
CREATE OR REPLACE FUNCTION wasl_offers_reject(p_offer bigint, p_agent text, p_reason text,
                                              p_client text)
RETURNS TABLE (offer_id bigint, ticket_id bigint)
LANGUAGE sql VOLATILE AS $$
    WITH o AS (
        UPDATE offers
           SET state = 'rejected', answered_at = wasl_now(), reason = p_reason
         WHERE id = p_offer
           AND agent_id = p_agent
           AND state = 'offered'
        RETURNING id, ticket_id
    ), ev AS (
        INSERT INTO ticket_events (ticket_id, kind, actor, data)
        SELECT o.ticket_id, 'offer.rejected', p_agent,
               jsonb_strip_nulls(jsonb_build_object('offer', o.id, 'agent', p_agent,
                                                    'reason', p_reason, 'client', p_client))
          FROM o
    )
    SELECT id, ticket_id FROM o
$$;
