-- agents.sql — wasl_agents_* (proto/functions/agents.sql): each function's edges.
\pset null '∅'

-- save, new agent, nothing optional given: the table's defaults.
SELECT wasl_agents_save('hala', 'Hala', '{"general": 3}', NULL, NULL, NULL, 'waslctl') AS created;
SELECT skills, languages, capacity, wrapup_s, enabled, presence FROM agents WHERE id = 'hala';
-- save, existing agent, every field given.
SELECT wasl_agents_save('hala', 'Hala A.', '{"general": 4, "vip": 2}', '["ar", "en"]',
                        '{"phone": 2, "email": 5}', 45, 'desk-client') AS created;
SELECT name, skills, languages, capacity, wrapup_s FROM agents WHERE id = 'hala';
-- save, existing agent, capacity/languages/wrap-up absent: they keep their values (the desk
-- PUT without capacity used to reset it to the default).
SELECT wasl_agents_save('hala', 'Hala A.', '{"general": 4}', NULL, NULL, NULL, 'desk-client')
    AS created;
SELECT skills, languages, capacity, wrapup_s FROM agents WHERE id = 'hala';
SELECT agent_id, kind, actor, data FROM agent_events ORDER BY id;
-- save refuses what the table refuses (a malformed id).
SELECT wasl_agents_save('Bad Id', 'X', '{}', NULL, NULL, NULL, 'waslctl');

-- set_presence: unknown agent, no row.
SELECT count(*) AS unknown FROM wasl_agents_set_presence('nobody', 'available', 60, 'c');
-- hala was offline: available starts her idling, with an event.
UPDATE agents SET idle_since = now() - interval '1 day' WHERE id = 'hala';
SELECT presence, presence_until - wasl_now() BETWEEN interval '59 s' AND interval '60 s'
       AS ttl, was
  FROM wasl_agents_set_presence('hala', 'available', 60, 'c');
SELECT idle_since > now() - interval '1 minute' AS idling_now FROM agents WHERE id = 'hala';
-- a heartbeat that changes nothing: no event, idle_since kept.
UPDATE agents SET idle_since = now() - interval '1 hour' WHERE id = 'hala';
SELECT presence, was FROM wasl_agents_set_presence('hala', 'available', 60, 'c');
SELECT idle_since < now() - interval '59 minutes' AS kept FROM agents WHERE id = 'hala';
SELECT count(*) AS presence_events FROM agent_events WHERE kind = 'presence';
-- an expired heartbeat counts as offline: was 'offline', idling starts again.
UPDATE agents SET presence_until = now() - interval '1 s' WHERE id = 'hala';
SELECT presence, was FROM wasl_agents_set_presence('hala', 'available', 60, 'c');
-- away withdraws her live offers (and only hers), reason 'agent away'.
SELECT count(*) FROM wasl_offers_make('[{"ticket_id": 1, "agent": "hala", "channel": "api",
    "explain": {}}, {"ticket_id": 2, "agent": "amal", "channel": "api", "explain": {}}]',
    'router-1', 60);
SELECT presence, presence_until IS NOT NULL AS until, was
  FROM wasl_agents_set_presence('hala', 'away', 60, 'c');
SELECT ticket_id, agent_id, state, reason FROM offers ORDER BY id;
SELECT ticket_id, actor, data - 'offer' AS data FROM ticket_events
 WHERE kind = 'offer.withdrawn';
-- offline: no expiry.
SELECT presence, presence_until, was FROM wasl_agents_set_presence('hala', 'offline', 60, 'c');
SELECT data FROM agent_events WHERE kind = 'presence' ORDER BY id;

-- remove: an enabled agent with a live offer; then again (none left); then an unknown one.
SELECT count(*) FROM wasl_offers_make('[{"ticket_id": 3, "agent": "badr", "channel": "api",
    "explain": {}}]', 'router-1', 60);
SELECT wasl_agents_remove('badr', 'waslctl') AS removed;
SELECT enabled, presence, presence_until FROM agents WHERE id = 'badr';
SELECT ticket_id, state, reason FROM offers WHERE agent_id = 'badr';
SELECT actor, data - 'offer' AS data FROM ticket_events
 WHERE kind = 'offer.withdrawn' AND ticket_id = 3;
SELECT wasl_agents_remove('badr', 'waslctl') AS again;
SELECT wasl_agents_remove('nobody', 'waslctl') AS unknown;
SELECT count(*) AS presence_of_removed FROM wasl_agents_set_presence('badr', 'available', 60, 'c');
-- saving a removed agent enables it again.
SELECT wasl_agents_save('badr', 'Badr', NULL, NULL, NULL, NULL, 'waslctl') AS created;
SELECT enabled, skills FROM agents WHERE id = 'badr';
SELECT kind, actor FROM agent_events WHERE agent_id = 'badr' ORDER BY id;

-- expire_presence: amal's heartbeat ran out (with a live offer), dana's did not, hala is
-- offline already: only amal goes offline, with her offer withdrawn.
SELECT count(*) FROM wasl_offers_make('[{"ticket_id": 4, "agent": "amal", "channel": "api",
    "explain": {}}]', 'router-1', 60);
UPDATE agents SET presence_until = now() - interval '1 s' WHERE id = 'amal';
SELECT * FROM wasl_agents_expire_presence() AS gone;
SELECT count(*) AS again FROM wasl_agents_expire_presence();
SELECT id, presence FROM agents WHERE id IN ('amal', 'dana', 'hala') ORDER BY id;
SELECT ticket_id, state, reason FROM offers WHERE agent_id = 'amal' ORDER BY id;
SELECT actor, data - 'offer' AS data FROM ticket_events
 WHERE kind = 'offer.withdrawn' AND ticket_id = 4;
-- on the router's clock: an hour and a minute on, dana's heartbeat has run out too.
SET wasl.clock_offset_s = 3660;
SELECT * FROM wasl_agents_expire_presence() AS gone;
RESET wasl.clock_offset_s;

-- set_password (proto/migrations/0020_desk.sql): a hash and a role; then cleared; an unknown
-- or removed agent is not changed; a hash that is not Argon2id is refused by the table.
SELECT wasl_agents_set_password('amal', '$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA',
                                'supervisor', 'waslctl') AS changed;
SELECT role, password_hash IS NOT NULL AS has_hash, password_changed_at IS NOT NULL AS changed_at
  FROM agents WHERE id = 'amal';
SELECT wasl_agents_set_password('amal', NULL, NULL, 'amal') AS cleared;
SELECT role, password_hash FROM agents WHERE id = 'amal';
SELECT kind, actor, data FROM agent_events WHERE kind = 'agent.password' ORDER BY id;
SELECT wasl_agents_set_password('nobody', NULL, 'admin', 'waslctl') AS unknown;
SELECT wasl_agents_remove('dana', 'waslctl') AS removed;
SELECT wasl_agents_set_password('dana', NULL, 'admin', 'waslctl') AS removed_agent;
SELECT wasl_agents_set_password('amal', 'plaintext', NULL, 'waslctl');
SELECT wasl_agents_set_password('amal', NULL, 'root', 'waslctl');
