/* Unit tests for wasl_work — the work ledger's protocol — against a real, migrated PostgreSQL
 * named by WASL_TEST_PG_URL (skipped when unset; tests/integration/test_c_helpers.py runs it
 * against a fresh database that `waslctl migrate` set up). Each test uses its own stage, so the
 * tests share the database without seeing each other's rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "wasl_log.h"
#include "wasl_pg.h"
#include "wasl_work.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEASE_S     30
#define ITEMS_MAX   8
#define BACKOFF_MS  60000
#define MAX_ATTEMPT 8 /* the table's default max_attempts */

static wasl_pg_t *pg_connect_or_skip(void)
{
    const char *url = getenv("WASL_TEST_PG_URL");
    if (!url || !*url) {
        skip();
    }
    wasl_pg_t *pg = wasl_pg_new(url);
    assert_non_null(pg);
    assert_true(wasl_pg_ok(pg));
    return pg;
}

/* Runs a statement that must succeed and frees its result. */
static void exec_ok(wasl_pg_t *pg, const char *sql, int n, const char *const *params)
{
    PGresult *res = wasl_pg_query(pg, sql, n, params);
    assert_non_null(res);
    PQclear(res);
}

/* A new ticket (the next free reference, so that a second run on the same database, say under
 * valgrind after ASan, does not collide); returns its id. */
static int64_t new_ticket(wasl_pg_t *pg)
{
    PGresult *res = wasl_pg_query(pg,
                                  "INSERT INTO tickets (ref, channel, external_id)"
                                  " SELECT r, 'api', 'work-' || r FROM (SELECT (coalesce(max(ref),"
                                  "   '2700000000')::bigint + 1)::text AS r FROM tickets) n"
                                  " RETURNING id",
                                  0, NULL);
    assert_non_null(res);
    int64_t id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return id;
}

/* A pending row of `stage` for a new ticket; returns its id. */
static int64_t new_row(wasl_pg_t *pg, const char *stage)
{
    int64_t id = wasl_work_enqueue(pg, new_ticket(pg), stage, NULL);
    assert_true(id > 0);
    return id;
}

/* Makes row id's lease run out, as when its worker died. */
static void expire_lease(wasl_pg_t *pg, int64_t id)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    const char *p[] = {ids};
    exec_ok(pg, "UPDATE work SET lease_until = now() - interval '1 s' WHERE id = $1::bigint", 1, p);
}

/* The row's state, owner ("" for none), attempts and whether it is due now. */
typedef struct {
    char state[16];
    char owner[64];
    int attempts;
    bool due;
    bool has_error;
} row_t;

static row_t get_row(wasl_pg_t *pg, int64_t id)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    const char *p[] = {ids};
    PGresult *res = wasl_pg_query(pg,
                                  "SELECT state, coalesce(owner, ''), attempts,"
                                  " not_before <= now(), last_error IS NOT NULL"
                                  " FROM work WHERE id = $1::bigint",
                                  1, p);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 1);
    row_t r = {.attempts = atoi(PQgetvalue(res, 0, 2)),
               .due = strcmp(PQgetvalue(res, 0, 3), "t") == 0,
               .has_error = strcmp(PQgetvalue(res, 0, 4), "t") == 0};
    snprintf(r.state, sizeof r.state, "%s", PQgetvalue(res, 0, 0));
    snprintf(r.owner, sizeof r.owner, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    return r;
}

/* Whether row id still exists (a completed row is deleted). */
static bool row_exists(wasl_pg_t *pg, int64_t id)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    const char *p[] = {ids};
    PGresult *res = wasl_pg_query(pg, "SELECT 1 FROM work WHERE id = $1::bigint", 1, p);
    assert_non_null(res);
    bool found = PQntuples(res) == 1;
    PQclear(res);
    return found;
}

static void test_enqueue_dedupes(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    int64_t tid = new_ticket(pg);
    int64_t id = wasl_work_enqueue(pg, tid, "enq", NULL);
    assert_true(id > 0);
    assert_int_equal(wasl_work_enqueue(pg, tid, "enq", NULL), 0); /* same default key */
    char key[64];
    snprintf(key, sizeof key, "ticket:%lld:enq:reopen:1", (long long)tid);
    int64_t keyed = wasl_work_enqueue(pg, tid, "enq", key);
    assert_true(keyed > id);
    assert_int_equal(wasl_work_enqueue(pg, tid, "enq", key), 0);
    row_t r = get_row(pg, id);
    assert_string_equal(r.state, "pending");
    assert_int_equal(r.attempts, 0);
    wasl_pg_destroy(&pg);
}

static void test_claim_ids(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    int64_t ids[4] = {new_row(pg, "cids"), new_row(pg, "cids"), new_row(pg, "cids"), 999999999};
    int64_t other = new_row(pg, "cids_other");
    wasl_work_item_t out[ITEMS_MAX];
    /* Only the stage's rows among the ids: the unknown id and the other stage's row are not. */
    int64_t with_other[] = {ids[0], ids[1], ids[2], ids[3], other};
    assert_int_equal(wasl_work_claim_ids(pg, "cids", "o1", with_other, 5, LEASE_S, out), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(out[i].id, ids[i]);
        assert_int_equal(out[i].attempts, 1);
        assert_true(out[i].ticket_id > 0);
        row_t r = get_row(pg, ids[i]);
        assert_string_equal(r.state, "pending"); /* held by its lease, not by its state */
        assert_string_equal(r.owner, "o1");
    }
    assert_string_equal(get_row(pg, other).state, "pending");
    /* Running under a live lease: nobody else claims them. */
    assert_int_equal(wasl_work_claim_ids(pg, "cids", "o2", ids, 3, LEASE_S, out), 0);
    assert_int_equal(wasl_work_claim_ids(pg, "cids", "o2", ids, 0, LEASE_S, out), 0);
    wasl_pg_destroy(&pg);
}

static void test_claim_stale_min_age_and_expired_lease(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    int64_t id = new_row(pg, "stale");
    wasl_work_item_t out[ITEMS_MAX];
    /* Younger than the minimum age: probably on its way through the bus, not claimed. */
    assert_int_equal(wasl_work_claim_stale(pg, "stale", "o1", ITEMS_MAX, LEASE_S, 3600000, out), 0);
    assert_int_equal(wasl_work_claim_stale(pg, "stale", "o1", ITEMS_MAX, LEASE_S, 0, out), 1);
    assert_int_equal(out[0].id, id);
    /* Claimed with a live lease: the sweep leaves it. */
    assert_int_equal(wasl_work_claim_stale(pg, "stale", "o2", ITEMS_MAX, LEASE_S, 0, out), 0);
    /* Its worker died (the lease ran out): the next sweep takes it over, one attempt more. */
    expire_lease(pg, id);
    assert_int_equal(wasl_work_claim_stale(pg, "stale", "o2", ITEMS_MAX, LEASE_S, 0, out), 1);
    assert_int_equal(out[0].attempts, 2);
    assert_string_equal(get_row(pg, id).owner, "o2");
    wasl_pg_destroy(&pg);
}

static void test_complete_is_fenced_on_owner_and_lease(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    int64_t id = new_row(pg, "fence");
    int64_t expiring = new_row(pg, "fence");
    int64_t ids[] = {id, expiring};
    wasl_work_item_t out[ITEMS_MAX];
    assert_int_equal(wasl_work_claim_ids(pg, "fence", "o1", ids, 2, LEASE_S, out), 2);
    assert_int_equal(wasl_work_complete(pg, id, "o2"), 0); /* not its owner */
    assert_string_equal(get_row(pg, id).owner, "o1");
    assert_int_equal(wasl_work_complete(pg, id, "o1"), 1);
    assert_false(row_exists(pg, id));                      /* done: deleted */
    assert_int_equal(wasl_work_complete(pg, id, "o1"), 0); /* already done */
    expire_lease(pg, expiring);
    assert_int_equal(wasl_work_complete(pg, expiring, "o1"), 0); /* the fence is lost */
    row_t r = get_row(pg, expiring);
    assert_string_equal(r.state, "pending");
    assert_string_equal(r.owner, "o1");
    /* Another worker takes it over; the first one's completion still commits nothing. */
    assert_int_equal(wasl_work_claim_ids(pg, "fence", "o2", &expiring, 1, LEASE_S, out), 1);
    assert_int_equal(wasl_work_complete(pg, expiring, "o1"), 0);
    assert_int_equal(wasl_work_complete(pg, expiring, "o2"), 1);
    wasl_pg_destroy(&pg);
}

static void test_fail_backs_off_and_is_fenced(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    int64_t id = new_row(pg, "fail");
    wasl_work_item_t out[ITEMS_MAX];
    assert_int_equal(wasl_work_claim_ids(pg, "fail", "o1", &id, 1, LEASE_S, out), 1);
    /* Another owner's failure changes nothing. */
    assert_int_equal(wasl_work_fail(pg, id, "o2", "not mine", BACKOFF_MS), 0);
    assert_string_equal(get_row(pg, id).owner, "o1");
    assert_false(get_row(pg, id).has_error);
    assert_int_equal(wasl_work_fail(pg, id, "o1", "model timeout", BACKOFF_MS), 0);
    row_t r = get_row(pg, id);
    assert_string_equal(r.state, "pending");
    assert_string_equal(r.owner, "");
    assert_false(r.due); /* backing off */
    assert_true(r.has_error);
    /* Not due: neither a nudge nor the sweep claims it before its backoff ends. */
    assert_int_equal(wasl_work_claim_ids(pg, "fail", "o1", &id, 1, LEASE_S, out), 0);
    assert_int_equal(wasl_work_claim_stale(pg, "fail", "o1", ITEMS_MAX, LEASE_S, 0, out), 0);
    wasl_pg_destroy(&pg);
}

static void test_dead_after_max_attempts(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    int64_t id = new_row(pg, "dead");
    wasl_work_item_t out[ITEMS_MAX];
    /* Each claim is an attempt; a failure with no backoff makes it due again at once. */
    for (int i = 1; i <= MAX_ATTEMPT; i++) {
        assert_int_equal(wasl_work_claim_ids(pg, "dead", "o1", &id, 1, LEASE_S, out), 1);
        assert_int_equal(out[0].attempts, i);
        assert_int_equal(wasl_work_fail(pg, id, "o1", "boom", 0), 0);
    }
    row_t r = get_row(pg, id);
    assert_string_equal(r.state, "dead"); /* the last failure buried it, with its reason */
    assert_true(r.has_error);
    assert_int_equal(wasl_work_claim_ids(pg, "dead", "o1", &id, 1, LEASE_S, out), 0);

    /* A row whose worker died on its last attempt is buried by the next claim, not run. */
    int64_t last = new_row(pg, "dead");
    for (int i = 1; i <= MAX_ATTEMPT; i++) {
        assert_int_equal(wasl_work_claim_ids(pg, "dead", "o1", &last, 1, LEASE_S, out), 1);
        expire_lease(pg, last);
    }
    assert_int_equal(wasl_work_claim_stale(pg, "dead", "o2", ITEMS_MAX, LEASE_S, 0, out), 0);
    r = get_row(pg, last);
    assert_string_equal(r.state, "dead");
    assert_true(r.has_error);
    wasl_pg_destroy(&pg);
}

/* Two workers at once: a row another transaction holds locked (a worker in the middle of its
 * claim) is skipped, not waited for, by the nudged claim and by the sweep; once the lock is gone
 * the row is claimable again. */
static void test_claim_skips_locked_rows(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    wasl_pg_t *other = pg_connect_or_skip();
    int64_t ids[] = {new_row(pg, "skip"), new_row(pg, "skip")};
    char locked[24];
    snprintf(locked, sizeof locked, "%lld", (long long)ids[0]);
    const char *p[] = {locked};
    /* Without SKIP LOCKED the claim would wait: fail instead of hanging. */
    exec_ok(pg, "SET lock_timeout = '2s'", 0, NULL);
    exec_ok(other, "BEGIN", 0, NULL);
    exec_ok(other, "SELECT id FROM work WHERE id = $1::bigint FOR UPDATE", 1, p);
    wasl_work_item_t out[ITEMS_MAX];
    assert_int_equal(wasl_work_claim_ids(pg, "skip", "o1", ids, 2, LEASE_S, out), 1);
    assert_int_equal(out[0].id, ids[1]);
    assert_int_equal(wasl_work_claim_stale(pg, "skip", "o1", ITEMS_MAX, LEASE_S, 0, out), 0);
    exec_ok(other, "ROLLBACK", 0, NULL);
    assert_int_equal(wasl_work_claim_stale(pg, "skip", "o1", ITEMS_MAX, LEASE_S, 0, out), 1);
    assert_int_equal(out[0].id, ids[0]);
    /* Done with both: a second run on the same database (valgrind after ASan) starts clean. */
    assert_int_equal(wasl_work_complete(pg, ids[0], "o1"), 1);
    assert_int_equal(wasl_work_complete(pg, ids[1], "o1"), 1);
    exec_ok(pg, "RESET lock_timeout", 0, NULL);
    wasl_pg_destroy(&other);
    wasl_pg_destroy(&pg);
}

/* A stage's fn: counts the rows it was given and returns `rc` (or the count when rc is 0). */
typedef struct {
    size_t calls, rows;
    int rc;
} stage_t;

static int stage_fn(void *arg, const wasl_work_item_t *items, size_t n)
{
    stage_t *s = arg;
    (void)items;
    s->calls++;
    s->rows += n;
    return s->rc ? s->rc : (int)n;
}

static void test_run_ids_and_give_back(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    int64_t ids[] = {new_row(pg, "run"), new_row(pg, "run")};
    stage_t s = {0};
    assert_int_equal(wasl_work_run_ids(pg, "run", "o1", LEASE_S, ids, 2, stage_fn, &s), 2);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.rows, 2);
    /* Nothing claimable: fn is not called. */
    assert_int_equal(wasl_work_run_ids(pg, "run", "o1", LEASE_S, ids, 2, stage_fn, &s), 0);
    assert_int_equal(s.calls, 1);

    int64_t more[] = {new_row(pg, "run"), new_row(pg, "run")};
    stage_t failing = {.rc = -1};
    assert_int_equal(wasl_work_run_ids(pg, "run", "o1", LEASE_S, more, 2, stage_fn, &failing), -1);
    wasl_work_item_t items[] = {{.id = more[0], .attempts = 1}, {.id = more[1], .attempts = 1}};
    wasl_work_give_back(pg, "run", "o1", items, 2, "batch failed", BACKOFF_MS);
    for (int i = 0; i < 2; i++) {
        row_t r = get_row(pg, more[i]);
        assert_string_equal(r.state, "pending");
        assert_false(r.due);
        assert_true(r.has_error);
    }
    wasl_pg_destroy(&pg);
}

static void test_run_stale_takes_one_batch_at_a_time(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    for (int i = 0; i < 3; i++) {
        new_row(pg, "sweep");
    }
    stage_t s = {0};
    assert_int_equal(wasl_work_run_stale(pg, "sweep", "o1", LEASE_S, 2, 0, stage_fn, &s), 2);
    assert_int_equal(wasl_work_run_stale(pg, "sweep", "o1", LEASE_S, 2, 0, stage_fn, &s), 1);
    assert_int_equal(wasl_work_run_stale(pg, "sweep", "o1", LEASE_S, 2, 0, stage_fn, &s), 0);
    assert_int_equal(s.calls, 2);
    assert_int_equal(s.rows, 3);
    new_row(pg, "sweep");
    stage_t failing = {.rc = -1};
    assert_int_equal(wasl_work_run_stale(pg, "sweep", "o1", LEASE_S, 2, 0, stage_fn, &failing), -1);
    wasl_pg_destroy(&pg);
}

static void test_owner_name(void **state)
{
    (void)state;
    char a[128], b[128];
    wasl_work_owner("router", a, sizeof a);
    wasl_work_owner("router", b, sizeof b);
    assert_memory_equal(a, "router@", 7);
    assert_string_not_equal(a, b); /* two handles of one process never share a lease */
}

int main(void)
{
    wasl_log_init("test_work", WASL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enqueue_dedupes),
        cmocka_unit_test(test_claim_ids),
        cmocka_unit_test(test_claim_stale_min_age_and_expired_lease),
        cmocka_unit_test(test_complete_is_fenced_on_owner_and_lease),
        cmocka_unit_test(test_claim_skips_locked_rows),
        cmocka_unit_test(test_fail_backs_off_and_is_fenced),
        cmocka_unit_test(test_dead_after_max_attempts),
        cmocka_unit_test(test_run_ids_and_give_back),
        cmocka_unit_test(test_run_stale_takes_one_batch_at_a_time),
        cmocka_unit_test(test_owner_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
