-- offers.sql — wasl_offers_* (proto/functions/offers.sql): each function's edges.
-- Offers 1-3 go to amal (tickets 1-3), offer 4 to badr (ticket 4), leased 60 s.
SELECT count(*) AS made FROM wasl_offers_make(
    '[{"ticket_id": 1, "agent": "amal", "channel": "api", "explain": {"rule": "r1"}},
      {"ticket_id": 2, "agent": "amal", "channel": "api", "explain": {"rule": "r1"}},
      {"ticket_id": 3, "agent": "amal", "channel": "api", "explain": {"rule": "r1"}},
      {"ticket_id": 4, "agent": "badr", "channel": "api", "explain": {"rule": "r2"}}]',
    'router-1', 60);
SELECT ticket_id, kind, data->>'rule' AS rule, data ? 'offer' AND data ? 'expires_at' AS ids
  FROM ticket_events ORDER BY id;
SELECT expires_at - offered_at = interval '60 seconds' AS leased_60s FROM offers WHERE id = 1;

-- make: a second live offer for a ticket fails the call (one live offer per ticket).
SELECT count(*) FROM wasl_offers_make('[{"ticket_id": 1, "agent": "badr", "channel": "api",
                                         "explain": {}}]', 'router-1', 60);

-- withdraw: nothing named, nothing withdrawn.
SELECT count(*) AS none FROM wasl_offers_withdraw(NULL, NULL, 'x', 'test');
-- by ticket: only the live offer of ticket 2, with its event.
SELECT ticket_id, agent_id FROM wasl_offers_withdraw(ARRAY[2::bigint], NULL, 'escalated', 'router');
SELECT ticket_id, kind, actor, data - 'offer' AS data FROM ticket_events
 WHERE kind = 'offer.withdrawn' ORDER BY id;
-- again: already withdrawn, nothing happens (idempotent).
SELECT count(*) AS again FROM wasl_offers_withdraw(ARRAY[2::bigint], NULL, 'escalated', 'router');
-- by agent and ticket together: both must match.
SELECT count(*) AS mismatch FROM wasl_offers_withdraw(ARRAY[4::bigint], 'amal', 'x', 'test');
-- by agent: amal's remaining live offers (tickets 1 and 3), badr's untouched.
SELECT ticket_id FROM wasl_offers_withdraw(NULL, 'amal', 'agent removed', 'waslctl')
 ORDER BY ticket_id;
SELECT id, state, reason, answered_at IS NOT NULL AS answered FROM offers ORDER BY id;

-- reject: badr's offer 4; the wrong agent gets no row, a second reject neither.
SELECT count(*) AS wrong_agent FROM wasl_offers_reject(4, 'amal', NULL, 'desk');
SELECT offer_id, ticket_id FROM wasl_offers_reject(4, 'badr', 'busy with a call', 'desk');
SELECT count(*) AS again FROM wasl_offers_reject(4, 'badr', NULL, 'desk');
SELECT data - 'offer' AS data FROM ticket_events WHERE kind = 'offer.rejected';
-- a withdrawn offer cannot be rejected.
SELECT count(*) AS closed FROM wasl_offers_reject(1, 'amal', NULL, 'desk');

-- accept: a fresh offer of ticket 5 to dana (offer ids by \gset: a failed insert above used
-- one up).
SELECT offer_id AS o5 FROM wasl_offers_make('[{"ticket_id": 5, "agent": "dana",
                                         "channel": "api", "explain": {}}]', 'router-1', 60) \gset
SELECT count(*) AS wrong_agent FROM wasl_offers_accept(:o5, 'amal', 'desk');
SELECT offer_id = :o5 AS same, ref FROM wasl_offers_accept(:o5, 'dana', 'desk');
SELECT status, assignee, first_response_at IS NOT NULL AS responded FROM tickets WHERE id = 5;
SELECT actor, data - 'offer' AS data FROM ticket_events WHERE kind = 'offer.accepted';
SELECT count(*) AS again FROM wasl_offers_accept(:o5, 'dana', 'desk');
-- the ticket moved on (no longer routed): the offer row comes back with no ref (the desk
-- then rolls back; here the offer is put back by hand).
SELECT offer_id AS o3 FROM wasl_offers_make('[{"ticket_id": 3, "agent": "dana",
                                         "channel": "api", "explain": {}}]', 'router-1', 60) \gset
UPDATE tickets SET status = 'resolved' WHERE id = 3;
SELECT ref IS NULL AS ticket_moved FROM wasl_offers_accept(:o3, 'dana', 'desk');
UPDATE offers SET state = 'offered', answered_at = NULL WHERE id = :o3;

-- expire: on the router's clock. Not yet due: nothing; 61 s on, offer :o3 expires and dana
-- (available) goes away, with both events.
SELECT count(*) AS not_due FROM wasl_offers_expire();
SET wasl.clock_offset_s = 61;
SELECT offer_id, ticket_id, agent_id FROM wasl_offers_expire();
SELECT count(*) AS again FROM wasl_offers_expire();
RESET wasl.clock_offset_s;
SELECT id, presence FROM agents ORDER BY id;
SELECT agent_id, kind, data FROM agent_events ORDER BY id;
-- an expired offer can no longer be accepted.
SELECT count(*) AS expired FROM wasl_offers_accept(:o3, 'dana', 'desk');
