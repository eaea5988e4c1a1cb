-- agents.sql — the state changes of agents: their record, presence and wrap-up.
--
-- Agents are disabled, never deleted (their history refers to them). Every change writes its
-- agent_events row in the same statement. Domain times (presence_until, idle_since,
-- wrapup_until) use wasl_now(); updated_at stays now(). SECURITY INVOKER.

-- wasl_agents_save — creates or updates agent p_id and enables it. The one rule for every
-- caller: a field given as NULL keeps its value on update and takes the column's default
-- (proto/migrations/0003_router.sql) on insert. So a desk PUT without "capacity" no longer
-- resets the agent's capacity, and `waslctl agent add` without --languages keeps them.
--   p_name       required;  p_skills  jsonb object queue/skill → level, or NULL
--   p_languages  jsonb array of "ar"/"en", or NULL;  p_capacity  jsonb object, or NULL
--   p_wrapup_s   seconds, or NULL;  p_actor  who, for the history (client id, 'waslctl')
-- Returns true when the agent was created, false when it existed.
-- Touches agents, agent_events ('agent.saved', with the skills given).
-- Called by the agent desk (intake: PUT /v1/agents/{id}) and `waslctl agent add`.
-- plpgsql: the insert lets the table's defaults fill what was not given, the update then
-- applies what was, which one statement cannot do without restating the defaults here.
CREATE OR REPLACE FUNCTION wasl_agents_save(p_id text, p_name text, p_skills jsonb,
                                            p_languages jsonb, p_capacity jsonb,
                                            p_wrapup_s integer, p_actor text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    created boolean;
BEGIN
    INSERT INTO agents (id, name)
    VALUES (p_id, p_name)
    ON CONFLICT (id) DO NOTHING;
    created := FOUND;
    UPDATE agents
       SET name = p_name,
           skills = coalesce(p_skills, skills),
           languages = CASE WHEN p_languages IS NULL THEN languages
                            ELSE ARRAY(SELECT jsonb_array_elements_text(p_languages)) END,
           capacity = coalesce(p_capacity, capacity),
           wrapup_s = coalesce(p_wrapup_s, wrapup_s),
           enabled = true,
           updated_at = now()
     WHERE id = p_id;
    INSERT INTO agent_events (agent_id, kind, actor, data)
    VALUES (p_id, 'agent.saved', p_actor, jsonb_build_object('skills', p_skills));
    RETURN created;
END;
$$;

-- wasl_agents_remove — disables agent p_id, sets it offline and withdraws its live offers.
--   p_actor  who, for the agent's and the tickets' history
-- Returns true when an enabled agent was removed, false when there was none.
-- Touches agents, agent_events ('agent.removed'), and through wasl_offers_withdraw offers and
-- ticket_events. Called by the agent desk (DELETE /v1/agents/{id}) and `waslctl agent remove`.
CREATE OR REPLACE FUNCTION wasl_agents_remove(p_id text, p_actor text)
RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    WITH up AS (
        UPDATE agents
           SET enabled = false, presence = 'offline', presence_until = NULL, updated_at = now()
         WHERE id = p_id
           AND enabled
        RETURNING id
    ), ev AS (
        INSERT INTO agent_events (agent_id, kind, actor, data)
        SELECT up.id, 'agent.removed', p_actor, '{}'
          FROM up
    ), wd AS (
        SELECT w.offer_id
          FROM up, wasl_offers_withdraw(NULL, up.id, 'agent removed', p_actor) w
    )
    SELECT EXISTS (SELECT 1 FROM up) AND (SELECT count(*) FROM wd) >= 0
$$;

-- wasl_agents_set_presence — agent p_id's heartbeat or presence change.
--   p_state  'available' | 'busy' | 'away' | 'offline'
--   p_ttl_s  seconds the presence holds without another heartbeat (ignored for 'offline')
--   p_client the API client, for the history
-- An agent becoming available (from anything else, an expired heartbeat included) starts
-- idling now: longest-idle first. Any state but 'available' withdraws the agent's live offers
-- (reason 'agent <state>'). A change is recorded; a heartbeat that changes nothing is not.
-- Returns one row (presence, presence_until, was: the effective presence before) when p_id is
-- an enabled agent, none otherwise. The caller locks the agent row first when it must.
-- Touches agents, agent_events ('presence'), and through wasl_offers_withdraw offers and
-- ticket_events. Called by the agent desk (PUT /v1/agents/{id}/presence).
CREATE OR REPLACE FUNCTION wasl_agents_set_presence(p_id text, p_state text, p_ttl_s integer,
                                                    p_client text)
RETURNS TABLE (presence text, presence_until timestamptz, was text)
LANGUAGE sql VOLATILE AS $$
    WITH old AS (
        SELECT a.presence, a.presence_until IS NULL OR a.presence_until <= wasl_now() AS expired
          FROM agents a
         WHERE a.id = p_id
           AND a.enabled
        FOR UPDATE
    ), up AS (
        UPDATE agents a
           SET presence = p_state,
               presence_until = CASE WHEN p_state = 'offline' THEN NULL
                                     ELSE wasl_now() + make_interval(secs => p_ttl_s) END,
               idle_since = CASE WHEN p_state = 'available'
                                      AND (o.expired OR o.presence <> 'available')
                                 THEN wasl_now()
                                 ELSE a.idle_since END,
               updated_at = now()
          FROM old o
         WHERE a.id = p_id
        RETURNING a.id, a.presence, a.presence_until,
                  CASE WHEN o.expired THEN 'offline' ELSE o.presence END AS was
    ), ev AS (
        INSERT INTO agent_events (agent_id, kind, actor, data)
        SELECT p_id, 'presence', p_id,
               jsonb_build_object('from', up.was, 'to', p_state, 'client', p_client)
          FROM up
         WHERE up.was <> p_state
    ), wd AS (
        SELECT w.offer_id
          FROM up,
               wasl_offers_withdraw(NULL, CASE WHEN p_state <> 'available' THEN up.id END,
                                    'agent ' || p_state, p_id) w
    )
    SELECT up.presence, up.presence_until, up.was
      FROM up
     WHERE (SELECT count(*) FROM wd) >= 0
$$;

-- wasl_agents_expire_presence — heartbeats that stopped: every agent whose presence ran out
-- (presence_until passed, on the router's clock) is set offline and its live offers go to
-- someone else.
-- Returns the ids of the agents set offline.
-- Touches agents, agent_events ('presence.expired'), and through wasl_offers_withdraw offers
-- and ticket_events (reason 'agent offline'). Called by the router's timers.
CREATE OR REPLACE FUNCTION wasl_agents_expire_presence()
RETURNS SETOF text
LANGUAGE sql VOLATILE AS $$
    WITH gone AS (
        UPDATE agents
           SET presence = 'offline', updated_at = now()
         WHERE presence <> 'offline'
           AND (presence_until IS NULL OR presence_until <= wasl_now())
        RETURNING id
    ), ev AS (
        INSERT INTO agent_events (agent_id, kind, actor, data)
        SELECT gone.id, 'presence.expired', 'router', '{}'
          FROM gone
    ), wd AS (
        SELECT w.offer_id
          FROM gone, wasl_offers_withdraw(NULL, gone.id, 'agent offline', 'router') w
    )
    SELECT gone.id FROM gone WHERE (SELECT count(*) FROM wd) >= 0
$$;

-- wasl_agents_set_password — sets (or clears) agent p_id's sign-in password and, when given,
-- its role. Every session of the agent must then be ended by the caller (they live in Redis:
-- wasl_session_delete_agent), so a changed password locks out whoever knew the old one.
--   p_hash   an Argon2id string from wasl_password_hash (common/wasl_session.h), or NULL: the
--            agent can no longer sign in
--   p_role   'agent' | 'supervisor' | 'admin', or NULL: kept
--   p_actor  who, for the history ('waslctl', or the agent itself from the desk)
-- Returns true when p_id is an enabled agent (and was changed), false otherwise.
-- Touches agents (password_hash, password_changed_at, role), agent_events ('agent.password',
-- with the role; never the hash). Called by `waslctl agent passwd` and `waslctl agent add
-- --password-file`.
CREATE OR REPLACE FUNCTION wasl_agents_set_password(p_id text, p_hash text, p_role text,
                                                    p_actor text)
RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    WITH up AS (
        UPDATE agents
           SET password_hash = p_hash,
               password_changed_at = now(),
               role = coalesce(p_role, role),
               updated_at = now()
         WHERE id = p_id
           AND enabled
        RETURNING id, role
    ), ev AS (
        INSERT INTO agent_events (agent_id, kind, actor, data)
        SELECT up.id, 'agent.password', p_actor,
               jsonb_build_object('role', up.role, 'cleared', p_hash IS NULL)
          FROM up
    )
    SELECT EXISTS (SELECT 1 FROM up)
$$;
