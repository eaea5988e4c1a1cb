-- 0028_notifications_hot_claim: the outbox's claim no longer changes an indexed column, so it is
-- a HOT update, as the work ledger's since 0027 (issue 16, docs/architecture.md → "The work
-- ledger's claim and completion"). make bench-cost, per contact: notifications' non-HOT updates
-- 2 → 1.1 (0.9 of its 1 claim HOT), its index entries 3 → 2.1 in each of its five indexes (the
-- sixth gone), WAL of all tables 9.9 → 9.3 KB.
--
-- A claim moved the row from 'pending' to 'sending'; `state` is in the predicates of
-- notifications_due_idx and notifications_sending_idx, so every claim was a new tuple with an
-- entry in notifications_pkey, _dedupe_key_key, _ticket_idx and _sending_idx. Now a claimed row
-- stays 'pending', held by its lease (owner, lease_until, attempts: none indexed). Claimable:
-- pending, next_attempt_at passed, no live lease. Held by p_owner: pending with owner =
-- p_owner (the marks are fenced on the owner, not on the lease's expiry, as before), so every
-- change that puts a row back to waiting clears its owner (fail, defer, release; redrive did).
-- notifications_sending_idx goes: the sweep walks notifications_due_idx alone, oldest
-- next_attempt_at first, meeting expired leases early (a leased row was due when claimed).
-- The 'sent' mark still changes state and provider_id (indexed): not HOT, and it cannot be.
--
-- fillfactor 50: the notifier claims up to 64 rows the router inserted together, every row of
-- a page at once (see 0027 for the work ledger's 40). Sent rows stay (history), so this table
-- keeps its pages half full: the price of the HOT claim.
--
-- Rows waiting now lose the owner an earlier give-back left on them; rows being sent become
-- pending under the same owner and lease (their notifier's mark still finds them).
UPDATE notifications SET owner = NULL WHERE state = 'pending' AND owner IS NOT NULL;
UPDATE notifications SET state = 'pending' WHERE state = 'sending';
ALTER TABLE notifications
    DROP CONSTRAINT notifications_state_check,
    DROP CONSTRAINT notifications_check,
    ADD CONSTRAINT notifications_state_check
        CHECK (state IN ('pending', 'sent', 'dead', 'suppressed')),
    ADD CONSTRAINT notifications_lease_check
        CHECK (state <> 'pending' OR owner IS NULL OR lease_until IS NOT NULL);
DROP INDEX notifications_sending_idx;
ALTER TABLE notifications SET (fillfactor = 50);
