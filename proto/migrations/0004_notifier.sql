-- 0004_notifier: the notifier's side of the outbox: delivery reports, opt-outs, satisfaction.

-- Delivery reports from the SMS gateway (Kannel dlr-url) and the Message-ID of sent mail.
ALTER TABLE notifications
    ADD COLUMN dlr_status  text,
    ADD COLUMN dlr_at      timestamptz,
    ADD COLUMN message_id  text,
    ADD COLUMN urgent      boolean NOT NULL DEFAULT false;
CREATE INDEX notifications_provider_idx ON notifications (provider_id) WHERE provider_id IS NOT NULL;

-- A beneficiary who replied STOP / «إيقاف» gets nothing more on that channel and address
-- (alerts to staff are not affected: they are not sent to beneficiaries).
CREATE TABLE opt_outs (
    channel     text        NOT NULL CHECK (channel IN ('sms', 'email')),
    address     text        NOT NULL,
    source      text        NOT NULL DEFAULT 'reply',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, address)
);

-- Satisfaction scores (1..5) from survey replies, one per ticket (a later reply replaces it).
CREATE TABLE csat (
    ticket_id    bigint      PRIMARY KEY REFERENCES tickets (id),
    score        integer     NOT NULL CHECK (score BETWEEN 1 AND 5),
    channel      text        NOT NULL,
    sender       text,
    received_at  timestamptz NOT NULL DEFAULT now()
);
