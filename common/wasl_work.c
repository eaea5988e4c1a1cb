/* wasl_work — the work ledger's protocol, shared by every stage: claim rows with a lease,
 * complete them fenced on the lease, retry with backoff, dead-letter with a reason. */
#include "wasl_work.h"
#include "wasl_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* Rows that exhausted their attempts are buried first, then the rest is claimed: one statement,
 * one round trip, its own transaction. `cand` selects the candidate ids ($1 stage). */
#define CLAIM_SQL(cand)                                                                            \
    "WITH cand AS (" cand "), "                                                                    \
    "buried AS ("                                                                                  \
    "  UPDATE work w SET state = 'dead', owner = NULL, lease_until = NULL, updated_at = now(),"    \
    "    last_error = 'gave up after ' || w.attempts || ' attempts'"                               \
    "    || coalesce(' (last: ' || w.last_error || ')', '')"                                       \
    "  FROM cand WHERE w.id = cand.id AND w.attempts >= w.max_attempts RETURNING w.id"             \
    ") "                                                                                           \
    "UPDATE work w SET state = 'running', owner = $2, attempts = w.attempts + 1,"                  \
    "  lease_until = now() + make_interval(secs => $3::int), updated_at = now()"                   \
    " FROM cand WHERE w.id = cand.id AND w.attempts < w.max_attempts"                              \
    " RETURNING w.id, w.ticket_id, w.attempts"

/* A row is claimable when pending and due, or running with a lease that ran out. */
#define CLAIMABLE                                                                                  \
    "stage = $1 AND ((state = 'pending' AND not_before <= now())"                                  \
    " OR (state = 'running' AND lease_until < now()))"

static const char *const claim_ids_sql =
    CLAIM_SQL("SELECT id FROM work WHERE id = ANY($4::bigint[]) AND " CLAIMABLE
              " ORDER BY id FOR UPDATE SKIP LOCKED");

/* Two index walks, each stopping at $4 rows: the running rows whose lease ran out (first: the
 * oldest work), then the due pending rows in (stage, not_before, id) order. One condition with
 * OR between them made PostgreSQL collect and sort every due row of the stage to keep the
 * oldest few — ~70 ms per sweep with a backlog of 8,000 (3.5 ms this way), so the further a
 * stage fell behind, the slower it claimed. */
static const char *const claim_stale_sql =
    CLAIM_SQL("WITH expired AS ("
              "  SELECT id FROM work WHERE stage = $1 AND state = 'running' AND lease_until < now()"
              "  ORDER BY stage, lease_until LIMIT $4::int FOR UPDATE SKIP LOCKED"
              "), due AS ("
              "  SELECT id FROM work WHERE stage = $1 AND state = 'pending' AND not_before <= now()"
              "    AND created_at < now() - make_interval(secs => $5::int / 1000.0)"
              "  ORDER BY stage, not_before, id LIMIT $4::int FOR UPDATE SKIP LOCKED"
              ") SELECT id FROM expired UNION ALL SELECT id FROM due LIMIT $4::int");

/* The columns CLAIM_SQL returns. */
enum { CLAIM_ID, CLAIM_TICKET_ID, CLAIM_ATTEMPTS, CLAIM_NCOLS };

/* Reads the claimed rows into out (at most max) and frees res. Returns how many, or -1. */
static int read_claims(PGresult *res, wasl_work_item_t *out, size_t max)
{
    if (!wasl_pg_arity(res, CLAIM_NCOLS, "work claim")) {
        PQclear(res);
        return -1;
    }
    int n = PQntuples(res);
    int k = 0;
    for (int r = 0; r < n && (size_t)k < max; r++) {
        out[k].id = strtoll(PQgetvalue(res, r, CLAIM_ID), NULL, 10);
        out[k].ticket_id = strtoll(PQgetvalue(res, r, CLAIM_TICKET_ID), NULL, 10);
        out[k].attempts = atoi(PQgetvalue(res, r, CLAIM_ATTEMPTS));
        k++;
    }
    PQclear(res);
    return k;
}

int wasl_work_claim_ids(wasl_pg_t *pg, const char *stage, const char *owner, const int64_t *ids,
                        size_t n, int lease_s, wasl_work_item_t *out)
{
    if (n == 0) {
        return 0;
    }
    char *arr = wasl_pg_bigint_array(ids, n);
    if (!arr) {
        return -1;
    }
    char lease[16];
    snprintf(lease, sizeof lease, "%d", lease_s);
    const char *params[] = {stage, owner, lease, arr};
    PGresult *res = wasl_pg_query(pg, claim_ids_sql, 4, params);
    free(arr);
    return res ? read_claims(res, out, n) : -1;
}

int wasl_work_claim_stale(wasl_pg_t *pg, const char *stage, const char *owner, size_t limit,
                          int lease_s, int min_age_ms, wasl_work_item_t *out)
{
    char lease[16], lim[16], age[16];
    snprintf(lease, sizeof lease, "%d", lease_s);
    snprintf(lim, sizeof lim, "%zu", limit);
    snprintf(age, sizeof age, "%d", min_age_ms);
    const char *params[] = {stage, owner, lease, lim, age};
    PGresult *res = wasl_pg_query(pg, claim_stale_sql, 5, params);
    return res ? read_claims(res, out, limit) : -1;
}

int wasl_work_complete(wasl_pg_t *pg, int64_t id, const char *owner)
{
    char ids[24];
    snprintf(ids, sizeof ids, "{%lld}", (long long)id);
    const char *params[] = {ids, owner};
    PGresult *res =
        wasl_pg_query(pg, "SELECT id FROM wasl_work_complete($1::bigint[], $2) AS id", 2, params);
    if (!wasl_pg_arity(res, 1, "wasl_work_complete")) {
        PQclear(res);
        return -1;
    }
    int done = PQntuples(res) == 1;
    PQclear(res);
    return done;
}

int64_t wasl_work_enqueue(wasl_pg_t *pg, int64_t ticket_id, const char *stage,
                          const char *dedupe_key)
{
    char tid[24];
    snprintf(tid, sizeof tid, "{%lld}", (long long)ticket_id);
    char *keys = wasl_pg_text_array(&dedupe_key, 1);
    if (!keys) {
        return -1;
    }
    const char *params[] = {tid, stage, keys};
    PGresult *res = wasl_pg_query(
        pg, "SELECT work_id FROM wasl_work_enqueue($1::bigint[], $2, $3::text[])", 3, params);
    free(keys);
    if (!wasl_pg_arity(res, 1, "wasl_work_enqueue")) {
        PQclear(res);
        return -1;
    }
    int64_t id = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return id;
}

int wasl_work_fail(wasl_pg_t *pg, int64_t id, const char *owner, const char *error, int backoff_ms)
{
    char ids[24], backoff[16];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    snprintf(backoff, sizeof backoff, "%d", backoff_ms);
    const char *params[] = {ids, owner, error ? error : "unknown error", backoff};
    PGresult *res = wasl_pg_query(
        pg,
        "UPDATE work SET owner = NULL, lease_until = NULL, updated_at = now(), last_error = $3,"
        "  state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END,"
        "  not_before = now() + make_interval(secs => $4::int / 1000.0)"
        " WHERE id = $1 AND state = 'running' AND owner = $2",
        4, params);
    if (!res) {
        return -1;
    }
    PQclear(res);
    return 0;
}

int wasl_work_run_ids(wasl_pg_t *pg, const char *stage, const char *owner, int lease_s,
                      const int64_t *ids, size_t n, wasl_work_fn *fn, void *arg)
{
    wasl_work_item_t *items = malloc((n + 1) * sizeof *items);
    if (!items) {
        return -1;
    }
    int claimed = wasl_work_claim_ids(pg, stage, owner, ids, n, lease_s, items);
    int rc = claimed <= 0 ? claimed : fn(arg, items, (size_t)claimed);
    free(items);
    return rc;
}

int wasl_work_run_stale(wasl_pg_t *pg, const char *stage, const char *owner, int lease_s,
                        size_t limit, int min_age_ms, wasl_work_fn *fn, void *arg)
{
    wasl_work_item_t *items = malloc((limit + 1) * sizeof *items);
    if (!items) {
        return -1;
    }
    int claimed = wasl_work_claim_stale(pg, stage, owner, limit, lease_s, min_age_ms, items);
    if (claimed > 0) {
        wasl_debug("work: sweep claimed rows", "{s:s, s:i}", "stage", stage, "rows", claimed);
        if (fn(arg, items, (size_t)claimed) < 0) {
            claimed = -1;
        }
    }
    free(items);
    return claimed;
}

void wasl_work_give_back(wasl_pg_t *pg, const char *stage, const char *owner,
                         const wasl_work_item_t *items, size_t n, const char *why, int backoff_ms)
{
    wasl_warn("work: batch not committed; rows given back", "{s:s, s:i, s:s}", "stage", stage,
              "rows", (int)n, "error", why ? why : "unknown error");
    for (size_t i = 0; i < n; i++) {
        wasl_work_fail(pg, items[i].id, owner, why, backoff_ms * items[i].attempts);
    }
}

char *wasl_work_owner(const char *service, char *out, size_t cap)
{
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    unsigned int nonce = 0;
    if (getrandom(&nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce) {
        nonce = (unsigned int)getpid();
    }
    snprintf(out, cap, "%s@%s:%d:%08x", service, host, (int)getpid(), nonce);
    return out;
}
