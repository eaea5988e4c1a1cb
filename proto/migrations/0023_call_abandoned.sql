-- 0023_call_abandoned: intake's decision that a call was abandoned, kept on the call's end.
--
-- Whether a call was abandoned is decided once, by intake's call_abandoned()
-- (services/intake/call_decide.c: the end's cause says so, or in the generic CTI form, which has
-- no such cause, the call waited in a queue and nobody answered). Intake marks the end's row in
-- the transaction that records it, with the queue the call last named, and the desk's
-- wallboard counts the marks, so the rule is not written a second time in SQL. `data` stays
-- what the PBX sent: the mark is a derived fact, like ticket_id, in columns of its own that
-- intake alone may update (proto/grants.sql).
ALTER TABLE call_events ADD COLUMN abandoned boolean NOT NULL DEFAULT false;
ALTER TABLE call_events ADD COLUMN abandoned_queue text
    CHECK (abandoned_queue IS NULL OR octet_length(abandoned_queue) BETWEEN 1 AND 200);
-- The wallboard's count of today's abandoned calls per queue.
CREATE INDEX call_events_abandoned_idx ON call_events (abandoned_queue, received_at)
    WHERE abandoned;
