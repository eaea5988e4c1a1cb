-- 0024_queue_upkeep: the queue-like tables are vacuumed by how many rows died, not by how big
-- they are, and work loses an index no query reads (issue 16, docs/architecture.md → "Indexes
-- of the hot path").
--
-- work, notifications, offers and tickets are updated several times per contact, and none of
-- those updates can be HOT (each changes a column an index or a partial index's predicate
-- names: state, lease_until, status, updated_at), so every update leaves a dead entry in every
-- index. With the default scale factor (0.2 of the table) a table that only grows is vacuumed
-- less and less often, and the claim walks (work_running_idx, notifications_sending_idx) and the
-- router's scans (tickets_waiting_idx, tickets_sla_idx) read the dead entries again and again.
-- Measured with tests/bench/e2e's stack at 1,000 reports/s for 20 s (shared 2-core machine):
-- n_dead_tup at the end 41,004 / 20,500 / 30,021 (work / notifications / tickets) → 1,102 / 974
-- / 442, tuples read per contact 870 → 260, table growth per contact 0.74 / 0.77 / 1.07 KB →
-- 0.39 / 0.46 / 0.61 KB. A fixed threshold of 2,000 dead rows, vacuum without the cost delay
-- (these tables' dead index entries cost more than the vacuum's I/O), and vacuum after
-- inserts too (the visibility map keeps index-only scans and the next vacuum cheap).
-- autovacuum_naptime is the server's (deploy/stack.sh starts PostgreSQL with 5 s; see
-- docs/operations.md for other installs): per table, only the thresholds can be set.
ALTER TABLE work SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
                      autovacuum_vacuum_cost_delay = 0,
                      autovacuum_vacuum_insert_scale_factor = 0,
                      autovacuum_vacuum_insert_threshold = 5000);
ALTER TABLE notifications SET (autovacuum_vacuum_scale_factor = 0,
                               autovacuum_vacuum_threshold = 2000,
                               autovacuum_vacuum_cost_delay = 0,
                               autovacuum_vacuum_insert_scale_factor = 0,
                               autovacuum_vacuum_insert_threshold = 5000);
ALTER TABLE offers SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
                        autovacuum_vacuum_cost_delay = 0);
ALTER TABLE tickets SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
                         autovacuum_vacuum_cost_delay = 0);

-- work (ticket_id): no statement of any program reads work by ticket (the stages claim by id or
-- by the partial indexes; tickets are never deleted, so the foreign key needs no index either),
-- yet every insert and every (non-HOT) update wrote an entry: 6 per contact.
DROP INDEX IF EXISTS work_ticket_idx;
