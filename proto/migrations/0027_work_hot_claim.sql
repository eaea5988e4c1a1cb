-- 0027_work_hot_claim: claiming a work row no longer changes an indexed column, so the claim is
-- a HOT update, and a finished row is deleted (issue 16, docs/architecture.md → "Stage workers
-- and the work ledger"). Per contact (2 work rows), `make bench-cost`: work's index entries
-- ~16 → 6, its non-HOT updates 4 → 0 (2 HOT claims, 2 deletes), WAL 11.1 → 9.9 KB.
--
-- A claim used to move the row from 'pending' to 'running'. `state` is in the predicates of
-- both partial indexes (work_pending_idx, work_running_idx), and PostgreSQL makes an update HOT
-- only when no indexed column — key, expression or predicate — changes: every claim was a new
-- tuple version with an entry in work_pkey, work_dedupe_key_key and work_running_idx (3 per row),
-- its old entries left for vacuum to clear. Now a claimed row stays 'pending': the lease is owner
-- + lease_until (+ attempts), none of them indexed. A row is claimable when it is pending, due
-- (not_before <= now()) and not under a live lease (lease_until IS NULL OR lease_until < now());
-- the rows under a live lease are tested on the heap while walking work_pending_idx — few, at
-- most the workers' batches in flight, and a leased row's not_before is old, so the sweep's one
-- walk (oldest not_before first) meets the expired leases first, as its separate walk of
-- work_running_idx did. That index has nothing left to index and goes.
--
-- fillfactor 40: a HOT update needs room on the row's own page, and a stage claims a batch of up
-- to 128 rows inserted together, i.e. every row of a page at once, in one statement (its own
-- old versions cannot be pruned before it commits). Measured HOT claims per contact (of 2): 1.18
-- at fillfactor 80, 1.65–1.75 at 50, 2.0 at 40 and 30. The pages stay few: finished rows are
-- deleted (wasl_work_complete, proto/functions/work.sql — why that loses no guarantee is there),
-- so vacuum hands their space back to the next inserts; the table holds the open and dead rows.
--
-- Rows running when this runs become pending under the same owner and lease: their worker's
-- fenced completion still finds them (owner and live lease), and an expired one is claimable.
-- Rows already done stay, as history; 'done' stays a valid state for them.
UPDATE work SET state = 'pending' WHERE state = 'running';
ALTER TABLE work DROP CONSTRAINT work_state_check,
                 DROP CONSTRAINT work_check,
                 ADD CONSTRAINT work_state_check CHECK (state IN ('pending', 'done', 'dead')),
                 -- A leased row has both: the claim tests lease_until, the fence owner and lease.
                 ADD CONSTRAINT work_lease_check
                     CHECK (state <> 'pending' OR owner IS NULL OR lease_until IS NOT NULL);
DROP INDEX work_running_idx;
ALTER TABLE work SET (fillfactor = 40);
