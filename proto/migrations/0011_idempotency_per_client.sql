-- 0011_idempotency_per_client: an idempotency key belongs to the client that sent it (issue 13,
-- finding 9). Two portals that both send external_id "web-1" get two tickets; a client can no
-- longer land on another client's ticket — or call — by guessing its id.
--
-- Which channels are global. An email's Message-ID names the message itself, worldwide
-- (RFC 5322 §3.6.4): the same message arriving through two mail gateways (two MX hosts, an
-- MTA's retry through a backup MX) is one contact, so email stays keyed on the Message-ID
-- alone. Every other source id is local to the system that made it: a PBX's call id
-- ("1701234567.42"), an SMS gateway's message id, a portal's external_id. Those are keyed on
-- the client. (The same SMS reaching us through two gateways would carry two gateway ids
-- anyway; it joins the number's open ticket by threading, it does not open a second one.)
--
-- The rule lives here, once: wasl_idem_scope() is part of each key, and intake's statements
-- name it in their ON CONFLICT targets and lookups.
--
-- Running it in production. CREATE UNIQUE INDEX blocks writes to the table (not reads) while it
-- builds. On a large table prepare everything first, outside any transaction and without
-- blocking anyone: create the function below and the messages column exactly as written here
-- (adding a NULL column rewrites nothing), then
--   CREATE UNIQUE INDEX CONCURRENTLY tickets_idem_key
--       ON tickets (channel, wasl_idem_scope(channel, client_id), external_id);
--   CREATE UNIQUE INDEX CONCURRENTLY messages_idem_key
--       ON messages (channel, direction, wasl_idem_scope(channel, client_id), external_id);
--   CREATE UNIQUE INDEX CONCURRENTLY call_events_idem_key
--       ON call_events (coalesce(client_id, ''), call_id, seq);
-- and run `waslctl migrate`: it finds all of that and only swaps the constraints (a brief
-- exclusive lock each). A failed concurrent build leaves an INVALID index behind; this
-- migration refuses to adopt one. Intakes of the previous version name the old key in
-- ON CONFLICT: during the deploy their ticket statements fail and they answer 503, which the
-- gateways retry against the new version — nothing acknowledged is lost.
-- Rows written before the upgrade keep an empty client scope: a retry that straddles the
-- upgrade opens a second ticket rather than finding the first.

CREATE OR REPLACE FUNCTION wasl_idem_scope(channel text, client_id text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN channel = 'email' THEN '' ELSE coalesce(client_id, '') END $$;

-- Refuse an index a failed CREATE INDEX CONCURRENTLY left behind (IF NOT EXISTS would take it).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE c.relname IN ('tickets_idem_key', 'messages_idem_key',
                                   'call_events_idem_key')
                 AND NOT i.indisvalid) THEN
        RAISE EXCEPTION 'an idempotency index exists but is INVALID (a failed concurrent '
                        'build): DROP it and run waslctl migrate again';
    END IF;
END
$$;

CREATE UNIQUE INDEX IF NOT EXISTS tickets_idem_key
    ON tickets (channel, wasl_idem_scope(channel, client_id), external_id);
ALTER TABLE tickets DROP CONSTRAINT tickets_channel_external_id_key;

-- The messages row carries its client too: an SMS gateway's retry finds its own message, and
-- two gateways' equal ids are two messages (adding a NULL column rewrites nothing).
ALTER TABLE messages ADD COLUMN IF NOT EXISTS client_id text;
CREATE UNIQUE INDEX IF NOT EXISTS messages_idem_key
    ON messages (channel, direction, wasl_idem_scope(channel, client_id), external_id);
ALTER TABLE messages DROP CONSTRAINT messages_channel_direction_external_id_key;

-- A call's events are the telephony client's own: another client's events for the same call
-- id are another call.
CREATE UNIQUE INDEX IF NOT EXISTS call_events_idem_key
    ON call_events (coalesce(client_id, ''), call_id, seq);
ALTER TABLE call_events DROP CONSTRAINT call_events_pkey;
