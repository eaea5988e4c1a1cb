-- 0001_core: tickets, their history, their messages, the work ledger and the notification outbox.
-- PostgreSQL is the source of truth (docs/architecture.md, "Delivery"): every hop between daemons
-- is a row here first; ZeroMQ only carries nudges.

-- A refusal used by append-only tables (history and audit must never be rewritten).
CREATE FUNCTION wasl_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TABLE tickets (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- 2-digit year + 7-digit sequence + Verhoeff check digit.
    ref               text        NOT NULL UNIQUE CHECK (ref ~ '^[0-9]{10}$'),
    channel           text        NOT NULL CHECK (channel IN ('web', 'api', 'email', 'sms', 'phone')),
    -- The source's own id (API external_id, email Message-ID, SMS id, call id): with the
    -- channel, the idempotency key of intake.
    external_id       text        NOT NULL CHECK (length(external_id) BETWEEN 1 AND 998),
    status            text        NOT NULL DEFAULT 'received'
                      CHECK (status IN ('received', 'classified', 'routed', 'assigned',
                                        'answered', 'resolved', 'closed')),
    subject           text,
    lang_declared     text,
    -- Classification.
    category          text,
    confidence        real        CHECK (confidence BETWEEN 0 AND 1),
    priority          text        CHECK (priority IN ('urgent', 'high', 'normal', 'low')),
    language          text        CHECK (language IN ('ar', 'en', 'mixed')),
    entities          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    model_version     text,
    -- Routing.
    queue             text,
    assignee          text,
    first_response_due timestamptz,
    resolution_due    timestamptz,
    -- The beneficiary as they identified themselves (phone in E.164).
    beneficiary_type  text        NOT NULL DEFAULT 'public' CHECK (beneficiary_type IN ('public', 'staff')),
    from_name         text,
    from_phone        text        CHECK (from_phone ~ '^\+[1-9][0-9]{6,14}$'),
    from_email        text,
    from_national_id  text,
    from_employee_id  text,
    case_number       text,
    received_at       timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    resolved_at       timestamptz,
    UNIQUE (channel, external_id)
);
-- Threading an SMS or an email into the beneficiary's recent ticket.
CREATE INDEX tickets_from_phone_idx ON tickets (from_phone, updated_at DESC) WHERE from_phone IS NOT NULL;
CREATE INDEX tickets_from_email_idx ON tickets (lower(from_email), updated_at DESC) WHERE from_email IS NOT NULL;
-- Queue views: open tickets of a queue.
CREATE INDEX tickets_queue_idx ON tickets (queue, status) WHERE status NOT IN ('resolved', 'closed');

-- History and audit of every ticket: append-only.
CREATE TABLE ticket_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id  bigint      NOT NULL REFERENCES tickets (id),
    at         timestamptz NOT NULL DEFAULT now(),
    kind       text        NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]*$'),
    actor      text        NOT NULL, -- a daemon ("intake", "classifier"…) or an agent id
    data       jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX ticket_events_ticket_idx ON ticket_events (ticket_id, id);
CREATE TRIGGER ticket_events_append_only BEFORE UPDATE OR DELETE ON ticket_events
    FOR EACH ROW EXECUTE FUNCTION wasl_append_only();
CREATE TRIGGER ticket_events_no_truncate BEFORE TRUNCATE ON ticket_events
    FOR EACH STATEMENT EXECUTE FUNCTION wasl_append_only();

-- Inbound and outbound text of a ticket, as received or sent (never normalized).
CREATE TABLE messages (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id    bigint      NOT NULL REFERENCES tickets (id),
    direction    text        NOT NULL CHECK (direction IN ('in', 'out')),
    channel      text        NOT NULL CHECK (channel IN ('web', 'api', 'email', 'sms', 'phone', 'agent')),
    external_id  text,        -- Message-ID, SMS id, (call_id, seq)…: dedupes repeated deliveries
    sender       text,
    subject      text,
    body         text        NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    attachments  jsonb       NOT NULL DEFAULT '[]'::jsonb, -- metadata only: name, type, size, sha256
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel, direction, external_id)
);
CREATE INDEX messages_ticket_idx ON messages (ticket_id, id);

-- The work ledger: one row per ticket per pipeline stage. A stage's worker claims a row with a
-- lease (FOR UPDATE SKIP LOCKED), commits its result, marks the row done and inserts the next
-- stage's row in one transaction fenced on (state, owner, lease). Stale leases are re-claimed;
-- after max_attempts the row is dead and must say why.
CREATE TABLE work (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id     bigint      NOT NULL REFERENCES tickets (id),
    stage         text        NOT NULL CHECK (stage ~ '^[a-z][a-z0-9_]*$'),
    state         text        NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'running', 'done', 'dead')),
    owner         text,
    lease_until   timestamptz,
    attempts      integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts  integer     NOT NULL DEFAULT 8 CHECK (max_attempts > 0),
    not_before    timestamptz NOT NULL DEFAULT now(), -- retry backoff
    last_error    text,
    -- One row per trigger: e.g. 'ticket:42:classify:1'. A repeated trigger inserts nothing.
    dedupe_key    text        NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    done_at       timestamptz,
    CHECK (state <> 'running' OR (owner IS NOT NULL AND lease_until IS NOT NULL)),
    CHECK (state <> 'dead' OR last_error IS NOT NULL)
);
CREATE INDEX work_pending_idx ON work (stage, not_before, id) WHERE state = 'pending';
CREATE INDEX work_running_idx ON work (stage, lease_until) WHERE state = 'running';
CREATE INDEX work_ticket_idx ON work (ticket_id);

-- The outbox of SMS and email. A notifier leases a row before sending and records the
-- provider's id after; the dedupe key makes each trigger send once.
CREATE TABLE notifications (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id        bigint      REFERENCES tickets (id),
    kind             text        NOT NULL CHECK (kind IN ('ack', 'update', 'case_answer', 'survey', 'alert')),
    channel          text        NOT NULL CHECK (channel IN ('sms', 'email')),
    recipient        text        NOT NULL,
    lang             text        NOT NULL DEFAULT 'ar' CHECK (lang IN ('ar', 'en')),
    template         text        NOT NULL,
    params           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    dedupe_key       text        NOT NULL UNIQUE,
    state            text        NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'sending', 'sent', 'dead', 'suppressed')),
    owner            text,
    lease_until      timestamptz,
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer     NOT NULL DEFAULT 6 CHECK (max_attempts > 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    provider_id      text,
    provider_status  text,
    segments         integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    CHECK (state <> 'sending' OR (owner IS NOT NULL AND lease_until IS NOT NULL)),
    CHECK (state <> 'dead' OR last_error IS NOT NULL),
    CHECK (state <> 'sent' OR sent_at IS NOT NULL)
);
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX notifications_sending_idx ON notifications (lease_until) WHERE state = 'sending';
CREATE INDEX notifications_ticket_idx ON notifications (ticket_id);
