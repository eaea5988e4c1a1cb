/* wasl_work — the work ledger's protocol, shared by every stage: claim rows with a lease,
 * complete them fenced on the lease, retry with backoff, dead-letter with a reason. */
#ifndef WASL_WORK_H
#define WASL_WORK_H

#include "wasl_pg.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t id;
    int64_t ticket_id;
    int attempts; /* including this claim */
} wasl_work_item_t;

/* Claims, for `owner` and `lease_s` seconds, the rows of `stage` among ids[0..n) that are
 * pending, due and under no live lease (an expired one: a worker died). A claimed row stays
 * 'pending': the lease (owner, lease_until) is what holds it, so the claim writes no index
 * entry (a HOT update, migration 0027). Rows past their
 * max_attempts are moved to 'dead' with the reason instead (wasl_work_claim() in
 * proto/functions/work.sql). Commits on its own (the claim must be visible to other workers
 * before the work starts). Writes at most n items into out and
 * returns how many, or -1 on a database error. */
int wasl_work_claim_ids(wasl_pg_t *pg, const char *stage, const char *owner, const int64_t *ids,
                        size_t n, int lease_s, wasl_work_item_t *out);

/* The sweep: claims up to `limit` rows of `stage` that are pending and due and either
 * unleased and at least `min_age_ms` old (younger ones are probably on their way through the
 * bus) or under an expired lease, oldest first (wasl_work_claim_stale() in
 * proto/functions/work.sql). Same return as above. */
int wasl_work_claim_stale(wasl_pg_t *pg, const char *stage, const char *owner, size_t limit,
                          int lease_s, int min_age_ms, wasl_work_item_t *out);

/* Inside the caller's transaction: marks the row done if, and only if, it is still held by
 * `owner` under an unexpired lease (wasl_work_complete() in proto/functions/work.sql, which
 * a stage's batch statement calls itself). Returns 1 when it was (commit the results), 0 when
 * the lease was lost (roll back: another worker owns it now), -1 on a database error. */
int wasl_work_complete(wasl_pg_t *pg, int64_t id, const char *owner);

/* Inside the caller's transaction: inserts the next stage's row for a ticket unless the same
 * dedupe key exists (NULL: "ticket:<id>:<stage>"), through wasl_work_enqueue() in
 * proto/functions/work.sql. Returns the new row's id, 0 when it already existed, -1 on error. */
int64_t wasl_work_enqueue(wasl_pg_t *pg, int64_t ticket_id, const char *stage,
                          const char *dedupe_key);

/* On its own: gives a claimed row back after a failure, due again after `backoff_ms`; a row
 * that has used its attempts becomes 'dead' with `error` as its reason. Fenced on owner
 * (wasl_work_fail() in proto/functions/work.sql). Returns 0, or -1 on a database error. */
int wasl_work_fail(wasl_pg_t *pg, int64_t id, const char *owner, const char *error, int backoff_ms);

/* ---- running a stage: claim, process, give back on failure ---------------------------- */

/* What a stage does with rows it claimed: commits its results fenced on the lease. Returns how
 * many it committed, or -1 when the batch failed (the rows are then given back). */
typedef int(wasl_work_fn)(void *arg, const wasl_work_item_t *items, size_t n);

/* Claims the rows of `stage` among ids[0..n) (nudged by the bus) and runs fn on those claimed.
 * Returns fn's result (0 when none was claimed), or -1 when the claim itself failed. */
int wasl_work_run_ids(wasl_pg_t *pg, const char *stage, const char *owner, int lease_s,
                      const int64_t *ids, size_t n, wasl_work_fn *fn, void *arg);

/* The sweep: claims one batch (at most `limit`) of stale rows and runs fn on it. Returns how
 * many rows were claimed (a full batch means there is a backlog: call again soon), or -1 when
 * the claim or fn failed. */
int wasl_work_run_stale(wasl_pg_t *pg, const char *stage, const char *owner, int lease_s,
                        size_t limit, int min_age_ms, wasl_work_fn *fn, void *arg);

/* After a failed batch: gives every row back in one statement, due again after `backoff_ms`
 * times its attempts (dead with `why` after its last attempt). Logs one warning naming the
 * stage (two when the rows could not be given back: their leases then run out). */
void wasl_work_give_back(wasl_pg_t *pg, const char *stage, const char *owner,
                         const wasl_work_item_t *items, size_t n, const char *why, int backoff_ms);

/* A stable, unique owner name for this process: "<service>@<host>:<pid>:<random>". Writes
 * into out (cap bytes) and returns it. */
char *wasl_work_owner(const char *service, char *out, size_t cap);

#endif
