-- 0008_desk_idempotency: agent actions made idempotent by a client-supplied key (issue 13).
--
-- A desk action (note, transfer, resolve, reopen, offer accept/reject, presence, agent changes)
-- sent with an `Idempotency-Key` header claims (client_id, key) in the same transaction as the
-- action and records the reply there, so a retry after a lost answer — a 503 from the deadline
-- reaper while the commit went through — returns the first reply and changes nothing.
--
-- fingerprint  SHA-256 of the validated request (action, target, fields): the same key with a
--              different request is refused.
-- status/reply the committed reply. Both are written by the transaction that inserted the row,
--              so a row other transactions can see always has them.
-- created_at   retention: a key counts for 24 hours (intake's DESK_KEY_RETENTION_H); expired
--              rows are ignored and removed a few at a time by the next keyed actions.
CREATE TABLE desk_idempotency (
    client_id   text        NOT NULL,
    key         text        NOT NULL CHECK (key ~ '^[A-Za-z0-9._:-]{1,128}$'),
    fingerprint bytea       NOT NULL CHECK (length(fingerprint) = 32),
    status      smallint    CHECK (status BETWEEN 200 AND 299),
    reply       json,   -- json, not jsonb: replayed byte for byte, keys in their order
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, key)
);
CREATE INDEX desk_idempotency_created_idx ON desk_idempotency (created_at);
