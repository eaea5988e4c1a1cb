-- 0006_client_binding: what a client may act as, beyond its scopes (issue 13).
--
-- act_as       the agents an integration token may act for on the agent API (a desk app or a
--              CTI connector bound to its own agents). Empty: it acts for no agent.
-- role         the widest person-role the client carries: 'agent' (only act_as), 'supervisor'
--              (any agent, any queue: reassign, force presence), 'admin' (also manages agents).
--              NULL: none.
-- trusted_ani  a telephony client whose caller number (ANI) comes from the network, not from
--              the caller: only then does a phone number count as a verifier of a case party.
ALTER TABLE clients
    ADD COLUMN act_as      text[]  NOT NULL DEFAULT '{}'
        CHECK (cardinality(act_as) <= 64 AND length(array_to_string(act_as, ',')) <= 2000
               -- each an agent id (the agents API's rule): lower-case word, at most 64 bytes
               AND array_to_string(act_as, ',') ~ '^([a-z0-9][a-z0-9._-]{0,63}(,|$))*$'),
    ADD COLUMN role        text    CHECK (role IN ('agent', 'supervisor', 'admin')),
    ADD COLUMN trusted_ani boolean NOT NULL DEFAULT false
        CHECK (NOT trusted_ani OR kind = 'telephony');
