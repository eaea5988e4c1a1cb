-- 0002_intake: the clients of the HTTP edge, ticket reference numbers, call events, threading.

-- Each client (telephony front end, email gateway, SMS gateway, web portal, agent desk) has its
-- own credential and scopes. Bearer tokens are stored as SHA-256 (they are random, 256 bits:
-- a slow hash adds nothing); HMAC secrets must be kept as given to verify signatures.
CREATE TABLE clients (
    id            text        PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name          text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('telephony', 'email_gateway', 'sms_gateway',
                                                       'web_portal', 'agent_desk', 'api', 'ops')),
    scopes        text[]      NOT NULL,
    token_sha256  text        UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    hmac_secret   text        CHECK (length(hmac_secret) >= 32),
    rate_per_s    integer     NOT NULL DEFAULT 500 CHECK (rate_per_s > 0),
    enabled       boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (token_sha256 IS NOT NULL OR hmac_secret IS NOT NULL)
);

-- The 7-digit part of ticket references. Intake takes values in blocks; gaps are harmless.
CREATE SEQUENCE ticket_ref_seq AS bigint MINVALUE 1 MAXVALUE 9999999 CYCLE;

ALTER TABLE tickets
    ADD COLUMN client_id      text,
    -- Why this contact must never be acknowledged (auto-reply, bounce…), or NULL.
    ADD COLUMN auto_submitted text,
    -- A reference the sender claimed (email subject) but was not allowed to thread into.
    ADD COLUMN claimed_ref    text;

ALTER TABLE messages
    ADD COLUMN message_id     text, -- RFC 5322 Message-ID, for In-Reply-To/References threading
    ADD COLUMN auto_submitted text;
CREATE INDEX messages_message_id_idx ON messages (message_id) WHERE message_id IS NOT NULL;

-- Who may write into a ticket by email or SMS: the beneficiary's address and number, and every
-- address the ticket's mail went to.
CREATE TABLE ticket_participants (
    ticket_id  bigint NOT NULL REFERENCES tickets (id),
    kind       text   NOT NULL CHECK (kind IN ('email', 'phone')),
    address    text   NOT NULL, -- lower-cased email, or E.164 phone
    PRIMARY KEY (ticket_id, kind, address)
);
CREATE INDEX ticket_participants_address_idx ON ticket_participants (kind, address);

-- Telephony events, idempotent by (call_id, seq). The live call session is in Redis; this is
-- the durable record a session can be rebuilt from.
CREATE TABLE call_events (
    call_id     text        NOT NULL CHECK (length(call_id) BETWEEN 1 AND 128),
    seq         integer     NOT NULL CHECK (seq >= 0),
    event       text        NOT NULL,
    data        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    client_id   text,
    ticket_id   bigint      REFERENCES tickets (id),
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, seq)
);
