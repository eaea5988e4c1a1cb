/* wasl_work — the work ledger's protocol, shared by every stage: claim rows with a lease,
 * complete them fenced on the lease, retry with backoff, dead-letter with a reason. */
#include "wasl_work.h"
#include "wasl_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* The columns wasl_work_claim() and wasl_work_claim_stale() return. */
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
    PGresult *res = wasl_pg_query(
        pg,
        "SELECT work_id, ticket_id, attempts FROM wasl_work_claim($1, $2, $3::int, $4::bigint[])",
        4, params);
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
    PGresult *res = wasl_pg_query(pg,
                                  "SELECT work_id, ticket_id, attempts"
                                  "  FROM wasl_work_claim_stale($1, $2, $3::int, $4::int, $5::int)",
                                  5, params);
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

/* Gives rows back through wasl_work_fail() (proto/functions/work.sql), each with its backoff:
 * one statement for a whole batch. */
static int fail_rows(wasl_pg_t *pg, const int64_t *ids, const int64_t *backoff_ms, size_t n,
                     const char *owner, const char *error)
{
    char *arr = wasl_pg_bigint_array(ids, n);
    char *backoffs = wasl_pg_bigint_array(backoff_ms, n);
    if (!arr || !backoffs) {
        free(arr);
        free(backoffs);
        return -1;
    }
    const char *params[] = {arr, owner, error ? error : "unknown error", backoffs};
    PGresult *res = wasl_pg_query(
        pg, "SELECT work_id, state FROM wasl_work_fail($1::bigint[], $2, $3, $4::int[])", 4,
        params);
    free(arr);
    free(backoffs);
    if (!res) {
        return -1;
    }
    PQclear(res);
    return 0;
}

int wasl_work_fail(wasl_pg_t *pg, int64_t id, const char *owner, const char *error, int backoff_ms)
{
    int64_t backoff = backoff_ms;
    return fail_rows(pg, &id, &backoff, 1, owner, error);
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
    int64_t *ids = malloc((n + 1) * sizeof *ids);
    int64_t *backoffs = malloc((n + 1) * sizeof *backoffs);
    for (size_t i = 0; ids && backoffs && i < n; i++) {
        ids[i] = items[i].id;
        backoffs[i] = (int64_t)backoff_ms * items[i].attempts;
    }
    if (n && (!ids || !backoffs || fail_rows(pg, ids, backoffs, n, owner, why) < 0)) {
        /* The rows come back anyway when their lease runs out (the sweep). */
        wasl_warn("work: rows not given back; their lease will run out", "{s:s, s:i}", "stage",
                  stage, "rows", (int)n);
    }
    free(ids);
    free(backoffs);
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
