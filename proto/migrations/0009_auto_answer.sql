-- 0009_auto_answer: an automatic case answer goes only to a party's contact on file, and the
-- audit says to whom and for which ticket; a resent lookup is audited once (issue 13, findings 4
-- and 15).
--
-- case_parties.email       a party's registered e-mail address (the case system's), next to the
--                          registered phone: where an automatic answer may go. NULL: none.
-- case_lookup_audit:
--   ticket_ref             the ticket an automatic answer belongs to (the router's lookups)
--   recipient_kind         'sms' | 'email': where the answer was sent, when it was
--   recipient_masked       the on-file contact it was sent to, masked like the verifier
--   request_sha256         SHA-256 of the request as received (its id included): a resend of
--                          one request is the same bytes, so a second audit row for it is
--                          refused by the unique index even when the resend reached another
--                          worker. NULL for rows written before this migration (which may hold
--                          the duplicates this fixes: the table is append-only, they stay).
ALTER TABLE case_parties
    ADD COLUMN email text CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$' AND length(email) <= 254);

ALTER TABLE case_lookup_audit
    ADD COLUMN ticket_ref       text CHECK (ticket_ref ~ '^[0-9]{10}$'),
    ADD COLUMN recipient_kind   text CHECK (recipient_kind IN ('sms', 'email')),
    ADD COLUMN recipient_masked text CHECK ((recipient_kind IS NULL) = (recipient_masked IS NULL)),
    ADD COLUMN request_sha256   text CHECK (request_sha256 ~ '^[0-9a-f]{64}$');
CREATE UNIQUE INDEX case_lookup_audit_request ON case_lookup_audit (request_sha256);
