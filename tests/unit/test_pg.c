/* Unit tests for wasl_pg against a real PostgreSQL named by WASL_TEST_PG_URL (skipped when unset).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "wasl_log.h"
#include "wasl_pg.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* An address where nothing listens: connect() is refused at once. */
#define UNREACHABLE_URL    "postgresql://127.0.0.1:1/postgres"
#define UNREACHABLE_KEYVAL "host=127.0.0.1 port=1 dbname=postgres"
/* Waited after a connection attempt so that the next one is not deferred by the rate limit. */
#define PAST_RECONNECT_MS   (WASL_PG_RECONNECT_MS + 50)
#define SQLSTATE_CONN_LOST  "08006"
#define SQLSTATE_NO_CONNECT "08001"
#define SQLSTATE_UNIQUE     "23505"
#define SQLSTATE_SYNTAX     "42601"
#define SQLSTATE_TXN_FAILED "25P02"

static const char *const ARABIC = "مرحبا بالعالم"; /* 13 characters, 25 bytes */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* A connected handle on the test server; skips the test when none is configured. */
static wasl_pg_t *pg_connect_or_skip(void)
{
    const char *url = getenv("WASL_TEST_PG_URL");
    if (!url || !*url) {
        skip();
    }
    wasl_pg_t *pg = wasl_pg_new(url);
    assert_non_null(pg);
    assert_true(wasl_pg_ok(pg));
    assert_non_null(wasl_pg_conn(pg));
    return pg;
}

/* Runs a one-value query and checks its text. */
static void assert_scalar(wasl_pg_t *pg, const char *sql, const char *expected)
{
    PGresult *res = wasl_pg_query(pg, sql, 0, NULL);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 1);
    assert_string_equal(PQgetvalue(res, 0, 0), expected);
    PQclear(res);
}

static void assert_exec_add_one(wasl_pg_t *pg, const char *in, const char *expected)
{
    const char *params[] = {in};
    PGresult *res = wasl_pg_exec(pg, "add_one", 1, params);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), expected);
    assert_string_equal(wasl_pg_error(pg), "");
    PQclear(res);
}

/* Terminates the handle's own backend: that call fails as a lost connection. */
static void kill_own_backend(wasl_pg_t *pg)
{
    assert_int_equal(wasl_pg_command(pg, "SELECT pg_terminate_backend(pg_backend_pid())"), -1);
    assert_string_equal(wasl_pg_sqlstate(pg), SQLSTATE_CONN_LOST);
    assert_string_not_equal(wasl_pg_error(pg), "");
    assert_null(wasl_pg_conn(pg));
}

static void assert_idle(wasl_pg_t *pg)
{
    PGconn *conn = wasl_pg_conn(pg);
    assert_non_null(conn);
    assert_int_equal(PQtransactionStatus(conn), PQTRANS_IDLE);
    assert_int_equal(PQpipelineStatus(conn), PQ_PIPELINE_OFF);
}

static void test_connect_and_query(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    const char *params[] = {"41"};
    PGresult *res = wasl_pg_query(pg, "SELECT $1::int + 1 AS answer", 1, params);
    assert_non_null(res);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "42");
    assert_string_equal(wasl_pg_error(pg), "");
    assert_string_equal(wasl_pg_sqlstate(pg), "");
    PQclear(res);
    assert_int_equal(wasl_pg_command(pg, "SET TIME ZONE 'Asia/Riyadh'"), 0);
    assert_scalar(pg, "SHOW client_encoding", "UTF8");
    /* The program's name is the fallback application_name (for pg_stat_activity). */
    if (!getenv("PGAPPNAME") && !strstr(getenv("WASL_TEST_PG_URL"), "application_name")) {
        assert_scalar(pg, "SHOW application_name", "test_pg");
    }

    /* A statement error is reported, and the handle stays usable. */
    assert_null(wasl_pg_query(pg, "SELEC 1", 0, NULL));
    assert_string_equal(wasl_pg_sqlstate(pg), SQLSTATE_SYNTAX);
    assert_non_null(strstr(wasl_pg_error(pg), "syntax error"));
    assert_int_equal(wasl_pg_command(pg, ""), -1); /* an empty query is an error too */
    assert_scalar(pg, "SELECT 'still usable'", "still usable");

    wasl_pg_destroy(&pg);
    wasl_pg_destroy(&pg);
    assert_null(pg);
}

static void test_prepare_rejects_bad_sql(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    assert_int_equal(wasl_pg_prepare(pg, "add_one", "SELECT $1::int + 1"), 0);
    assert_int_equal(wasl_pg_prepare(pg, "add_one", "SELECT $1::int + 1"), 0); /* idempotent */
    assert_int_equal(wasl_pg_prepare(pg, "add_one", "SELECT $1::int + 2"), -1);
    assert_int_equal(wasl_pg_prepare(pg, "bad", "SELEC $1"), -1);
    assert_string_equal(wasl_pg_sqlstate(pg), SQLSTATE_SYNTAX);
    /* A rejected statement is not registered. */
    assert_null(wasl_pg_exec(pg, "bad", 0, NULL));
    assert_non_null(strstr(wasl_pg_error(pg), "unknown prepared statement"));
    assert_exec_add_one(pg, "1", "2");
    wasl_pg_destroy(&pg);
}

static void test_prepared_statement_survives_reconnect(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    assert_int_equal(wasl_pg_prepare(pg, "add_one", "SELECT $1::int + 1"), 0);
    assert_exec_add_one(pg, "1", "2");
    int first_pid = PQbackendPID(wasl_pg_conn(pg));

    sleep_ms(PAST_RECONNECT_MS);
    kill_own_backend(pg);
    /* The next call reconnects at once (the last attempt is old) and re-prepares. */
    int64_t reconnect_started_ms = now_ms();
    assert_exec_add_one(pg, "7", "8");
    assert_int_not_equal(PQbackendPID(wasl_pg_conn(pg)), first_pid);

    /* Killed again right away: the reconnection waits for WASL_PG_RECONNECT_MS. */
    kill_own_backend(pg);
    if (now_ms() - reconnect_started_ms < WASL_PG_RECONNECT_MS) {
        assert_null(wasl_pg_exec(pg, "add_one", 1, (const char *const[]){"1"}));
        assert_non_null(strstr(wasl_pg_error(pg), "not connected (next attempt in"));
        assert_string_equal(wasl_pg_sqlstate(pg), SQLSTATE_NO_CONNECT);
        assert_false(wasl_pg_ok(pg));
    }
    sleep_ms(PAST_RECONNECT_MS);
    assert_exec_add_one(pg, "9", "10");
    wasl_pg_destroy(&pg);
}

static void test_unreachable_server(void **state)
{
    (void)state;
    const char *const urls[] = {UNREACHABLE_URL, UNREACHABLE_KEYVAL};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        wasl_pg_t *pg = wasl_pg_new(urls[i]);
        assert_non_null(pg); /* lazy: a database that is down is not an error here */
        assert_false(wasl_pg_ok(pg));
        assert_non_null(strstr(wasl_pg_error(pg), "port 1"));
        assert_string_equal(wasl_pg_sqlstate(pg), SQLSTATE_NO_CONNECT);
        assert_null(wasl_pg_conn(pg));
        /* The next attempt is deferred; calls fail fast. */
        assert_false(wasl_pg_ok(pg));
        assert_non_null(strstr(wasl_pg_error(pg), "not connected (next attempt in"));
        /* Registered while down: prepared at the next connect. */
        assert_int_equal(wasl_pg_prepare(pg, "one", "SELECT 1"), 0);
        assert_null(wasl_pg_exec(pg, "one", 0, NULL));
        assert_null(wasl_pg_query(pg, "SELECT 1", 0, NULL));
        assert_int_equal(wasl_pg_command(pg, "SELECT 1"), -1);
        assert_int_equal(wasl_pg_begin(pg), -1);
        assert_int_equal(wasl_pg_commit(pg), -1);
        assert_int_equal(wasl_pg_rollback(pg), 0);
        PGresult *results[1] = {(PGresult *)&results}; /* garbage the batch must clear */
        wasl_pg_stmt_t stmt = {.name = "one"};
        assert_int_equal(wasl_pg_batch(pg, &stmt, 1, results), -1);
        assert_null(results[0]);
        assert_string_not_equal(wasl_pg_error(pg), "");
        sleep_ms(PAST_RECONNECT_MS);
        assert_false(wasl_pg_ok(pg));
        assert_non_null(strstr(wasl_pg_error(pg), "port 1"));
        wasl_pg_destroy(&pg);
    }
}

static void test_begin_commit_rollback(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    assert_int_equal(wasl_pg_command(pg, "CREATE TEMP TABLE t (id int PRIMARY KEY)"), 0);
    assert_int_equal(wasl_pg_prepare(pg, "ins", "INSERT INTO t VALUES ($1)"), 0);
    const char *one[] = {"1"}, *two[] = {"2"};

    assert_int_equal(wasl_pg_rollback(pg), 0); /* nothing open */
    assert_int_equal(wasl_pg_begin(pg), 0);
    PQclear(wasl_pg_exec(pg, "ins", 1, one));
    assert_int_equal(PQtransactionStatus(wasl_pg_conn(pg)), PQTRANS_INTRANS);
    assert_int_equal(wasl_pg_rollback(pg), 0);
    assert_scalar(pg, "SELECT count(*) FROM t", "0");

    assert_int_equal(wasl_pg_begin(pg), 0);
    PGresult *res = wasl_pg_exec(pg, "ins", 1, one);
    assert_non_null(res);
    assert_string_equal(PQcmdTuples(res), "1");
    PQclear(res);
    assert_int_equal(wasl_pg_commit(pg), 0);
    assert_scalar(pg, "SELECT count(*) FROM t", "1");

    /* A failed transaction cannot be committed. */
    assert_int_equal(wasl_pg_begin(pg), 0);
    PQclear(wasl_pg_exec(pg, "ins", 1, two));
    assert_null(wasl_pg_exec(pg, "ins", 1, one));
    assert_string_equal(wasl_pg_sqlstate(pg), SQLSTATE_UNIQUE);
    assert_null(wasl_pg_query(pg, "SELECT 1", 0, NULL));
    assert_string_equal(wasl_pg_sqlstate(pg), SQLSTATE_TXN_FAILED);
    assert_int_equal(wasl_pg_commit(pg), -1);
    assert_non_null(strstr(wasl_pg_error(pg), "rolled back"));
    assert_idle(pg);
    assert_int_equal(wasl_pg_rollback(pg), 0);
    assert_scalar(pg, "SELECT count(*) FROM t", "1");
    wasl_pg_destroy(&pg);
}

static void test_lost_transaction_fails_until_rollback(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    assert_int_equal(wasl_pg_prepare(pg, "add_one", "SELECT $1::int + 1"), 0);
    sleep_ms(PAST_RECONNECT_MS);
    assert_int_equal(wasl_pg_begin(pg), 0);
    kill_own_backend(pg);

    /* Never silently continue in autocommit on a new connection. */
    sleep_ms(PAST_RECONNECT_MS);
    assert_null(wasl_pg_exec(pg, "add_one", 1, (const char *const[]){"1"}));
    assert_non_null(strstr(wasl_pg_error(pg), "wasl_pg_rollback"));
    assert_int_equal(wasl_pg_command(pg, "SELECT 1"), -1);
    assert_int_equal(wasl_pg_commit(pg), -1);
    assert_int_equal(wasl_pg_begin(pg), -1);
    wasl_pg_stmt_t stmt = {.sql = "SELECT 1"};
    assert_int_equal(wasl_pg_batch(pg, &stmt, 1, NULL), -1);

    assert_int_equal(wasl_pg_rollback(pg), 0);
    assert_exec_add_one(pg, "1", "2");
    assert_idle(pg);
    wasl_pg_destroy(&pg);
}

static void test_batch_commits_all(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    assert_int_equal(wasl_pg_command(pg, "CREATE TEMP TABLE t (id int PRIMARY KEY, note text)"), 0);
    assert_int_equal(wasl_pg_prepare(pg, "ins", "INSERT INTO t VALUES ($1, $2) RETURNING id"), 0);
    const char *p1[] = {"1", "one"}, *p2[] = {"2", NULL}, *p3[] = {"3", ARABIC};
    const wasl_pg_stmt_t stmts[] = {
        {.name = "ins", .nparams = 2, .params = p1},
        {.sql = "INSERT INTO t VALUES ($1, $2) RETURNING id", .nparams = 2, .params = p2},
        {.name = "ins", .nparams = 2, .params = p3},
    };
    PGresult *results[3];
    assert_int_equal(wasl_pg_batch(pg, stmts, 3, results), 0);
    for (int i = 0; i < 3; i++) {
        assert_non_null(results[i]);
        assert_int_equal(PQresultStatus(results[i]), PGRES_TUPLES_OK);
        assert_int_equal(atoi(PQgetvalue(results[i], 0, 0)), i + 1);
        PQclear(results[i]);
    }
    assert_idle(pg);
    assert_scalar(pg, "SELECT count(*) FROM t", "3");

    /* Results may be discarded. */
    const char *p4[] = {"4", "four"};
    const wasl_pg_stmt_t more[] = {{.name = "ins", .nparams = 2, .params = p4},
                                   {.sql = "UPDATE t SET note = 'x' WHERE id < 3"}};
    assert_int_equal(wasl_pg_batch(pg, more, 2, NULL), 0);
    assert_scalar(pg, "SELECT string_agg(coalesce(note, '-'), ',' ORDER BY id) FROM t",
                  "x,x,مرحبا بالعالم,four");
    assert_int_equal(wasl_pg_batch(pg, NULL, 0, NULL), 0);
    wasl_pg_destroy(&pg);
}

/* More than libpq's 64 kB output threshold, and more results than a socket buffer holds:
 * the pipeline must write and read concurrently. */
#define LARGE_BATCH 5000

static void test_batch_large(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    assert_int_equal(wasl_pg_command(pg, "CREATE TEMP TABLE t (id int PRIMARY KEY, body text)"), 0);
    assert_int_equal(wasl_pg_prepare(pg, "ins", "INSERT INTO t VALUES ($1, $2) RETURNING body"), 0);
    wasl_pg_stmt_t *stmts = calloc(LARGE_BATCH, sizeof *stmts);
    char(*ids)[16] = calloc(LARGE_BATCH, sizeof *ids);
    const char **params = calloc(2 * LARGE_BATCH, sizeof *params);
    PGresult **results = calloc(LARGE_BATCH, sizeof *results);
    assert_true(stmts && ids && params && results);
    for (int i = 0; i < LARGE_BATCH; i++) {
        snprintf(ids[i], sizeof ids[i], "%d", i);
        params[2 * i] = ids[i];
        params[2 * i + 1] = ARABIC;
        stmts[i] = (wasl_pg_stmt_t){.name = "ins", .nparams = 2, .params = &params[2 * i]};
    }
    assert_int_equal(wasl_pg_batch(pg, stmts, LARGE_BATCH, results), 0);
    for (int i = 0; i < LARGE_BATCH; i++) {
        assert_string_equal(PQgetvalue(results[i], 0, 0), ARABIC);
        PQclear(results[i]);
    }
    assert_scalar(pg, "SELECT count(*) = 5000 FROM t", "t");
    assert_idle(pg);
    free(results);
    free(params);
    free(ids);
    free(stmts);
    wasl_pg_destroy(&pg);
}

static void test_batch_failure_commits_none(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    assert_int_equal(wasl_pg_command(pg, "CREATE TEMP TABLE t (id int PRIMARY KEY)"), 0);
    assert_int_equal(wasl_pg_prepare(pg, "ins", "INSERT INTO t VALUES ($1)"), 0);
    const char *one[] = {"1"}, *two[] = {"2"}, *three[] = {"3"};
    const wasl_pg_stmt_t dup[] = {
        {.name = "ins", .nparams = 1, .params = one},
        {.name = "ins", .nparams = 1, .params = two},
        {.name = "ins", .nparams = 1, .params = one},
        {.name = "ins", .nparams = 1, .params = three},
    };
    PGresult *results[4];
    assert_int_equal(wasl_pg_batch(pg, dup, 4, results), -1);
    assert_string_equal(wasl_pg_sqlstate(pg), SQLSTATE_UNIQUE);
    assert_non_null(strstr(wasl_pg_error(pg), "batch statement 2 (ins)"));
    for (int i = 0; i < 4; i++) {
        assert_null(results[i]);
    }
    assert_idle(pg);
    assert_scalar(pg, "SELECT count(*) FROM t", "0");

    /* A failure at COMMIT (a deferred constraint) commits nothing either. */
    assert_int_equal(wasl_pg_command(pg, "CREATE TEMP TABLE d (id int UNIQUE DEFERRABLE "
                                         "INITIALLY DEFERRED)"),
                     0);
    const wasl_pg_stmt_t deferred[] = {
        {.sql = "INSERT INTO d VALUES ($1)", .nparams = 1, .params = one},
        {.sql = "INSERT INTO d VALUES ($1)", .nparams = 1, .params = one},
    };
    assert_int_equal(wasl_pg_batch(pg, deferred, 2, results), -1);
    assert_string_equal(wasl_pg_sqlstate(pg), SQLSTATE_UNIQUE);
    assert_non_null(strstr(wasl_pg_error(pg), "batch (COMMIT)"));
    assert_null(results[0]);
    assert_null(results[1]);
    assert_idle(pg);
    assert_scalar(pg, "SELECT count(*) FROM d", "0");

    /* Unknown statements and open transactions are refused before anything is sent. */
    const wasl_pg_stmt_t unknown[] = {{.name = "nope"}};
    assert_int_equal(wasl_pg_batch(pg, unknown, 1, results), -1);
    assert_non_null(strstr(wasl_pg_error(pg), "unknown prepared statement"));
    assert_int_equal(wasl_pg_begin(pg), 0);
    assert_int_equal(wasl_pg_batch(pg, dup + 1, 1, NULL), -1);
    assert_int_equal(wasl_pg_rollback(pg), 0);

    /* The handle stays usable. */
    assert_int_equal(wasl_pg_batch(pg, dup + 1, 3, NULL), 0);
    assert_scalar(pg, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3");
    wasl_pg_destroy(&pg);
}

static void test_batch_connection_lost(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    /* A real table (a temporary one would vanish with the session), private to this process. */
    char create[128], insert[128], count[128], drop[128];
    snprintf(create, sizeof create, "CREATE TABLE wasl_test_pg_%d (id int)", (int)getpid());
    snprintf(insert, sizeof insert, "INSERT INTO wasl_test_pg_%d VALUES ($1)", (int)getpid());
    snprintf(count, sizeof count, "SELECT count(*) FROM wasl_test_pg_%d", (int)getpid());
    snprintf(drop, sizeof drop, "DROP TABLE wasl_test_pg_%d", (int)getpid());
    assert_int_equal(wasl_pg_command(pg, create), 0);
    const char *one[] = {"1"}, *two[] = {"2"};
    const wasl_pg_stmt_t stmts[] = {
        {.sql = insert, .nparams = 1, .params = one},
        {.sql = "SELECT pg_terminate_backend(pg_backend_pid())"},
        {.sql = insert, .nparams = 1, .params = two},
    };
    PGresult *results[3];
    sleep_ms(PAST_RECONNECT_MS);
    assert_int_equal(wasl_pg_batch(pg, stmts, 3, results), -1);
    /* The pipeline reads the server's FATAL report (57P01) before the end of the stream. */
    assert_non_null(strstr(wasl_pg_error(pg), "batch statement 1"));
    assert_string_not_equal(wasl_pg_sqlstate(pg), "");
    for (int i = 0; i < 3; i++) {
        assert_null(results[i]);
    }
    assert_null(wasl_pg_conn(pg));
    /* Not inside a caller's transaction: the next call just reconnects. */
    assert_scalar(pg, count, "0");
    assert_idle(pg);
    assert_int_equal(wasl_pg_command(pg, drop), 0);
    wasl_pg_destroy(&pg);
}

static void test_batch_prepares_on_fresh_connection(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    const char *create = "CREATE TEMP TABLE t (id int PRIMARY KEY)";
    assert_int_equal(wasl_pg_command(pg, create), 0);
    assert_int_equal(wasl_pg_prepare(pg, "ins", "INSERT INTO t VALUES ($1)"), 0);
    sleep_ms(PAST_RECONNECT_MS);
    kill_own_backend(pg);
    /* The temporary table went with the session, so "ins" fails to prepare on reconnect (a
     * warning); once the table exists again, the batch prepares it before its pipeline. */
    assert_int_equal(wasl_pg_command(pg, create), 0);
    const char *one[] = {"1"}, *two[] = {"2"};
    const wasl_pg_stmt_t stmts[] = {{.name = "ins", .nparams = 1, .params = one},
                                    {.name = "ins", .nparams = 1, .params = two}};
    assert_int_equal(wasl_pg_batch(pg, stmts, 2, NULL), 0);
    assert_scalar(pg, "SELECT count(*) FROM t", "2");
    wasl_pg_destroy(&pg);
}

/* Off for a stage: every connection, the first and a reconnected one, commits without waiting
 * for the WAL flush; a handle left alone keeps the server's setting. */
static void test_sync_commit_off_survives_reconnect(void **state)
{
    (void)state;
    const char *url = getenv("WASL_TEST_PG_URL");
    if (!url || !*url) {
        skip();
    }
    wasl_pg_t *pg = wasl_pg_new(url);
    assert_non_null(pg);
    wasl_pg_set_sync_commit(pg, false);
    assert_scalar(pg, "SHOW synchronous_commit", "off");
    sleep_ms(PAST_RECONNECT_MS);
    kill_own_backend(pg);
    assert_scalar(pg, "SHOW synchronous_commit", "off");
    wasl_pg_destroy(&pg);

    pg = pg_connect_or_skip(); /* the server's own setting, not one of this session */
    assert_scalar(
        pg, "SELECT source <> 'session' FROM pg_settings WHERE name = 'synchronous_commit'", "t");
    wasl_pg_destroy(&pg);
}

static void test_bigint_array_literal(void **state)
{
    (void)state;
    char *s = wasl_pg_bigint_array(NULL, 0);
    assert_string_equal(s, "{}");
    free(s);
    const int64_t ids[] = {1, -2, INT64_MAX, INT64_MIN};
    s = wasl_pg_bigint_array(ids, 4);
    assert_string_equal(s, "{1,-2,9223372036854775807,-9223372036854775808}");
    free(s);
}

static void test_text_array_literal(void **state)
{
    (void)state;
    char *s = wasl_pg_text_array(NULL, 0);
    assert_string_equal(s, "{}");
    free(s);
    const char *items[] = {"a", "b,c", NULL, "q\"uote", "back\\slash"};
    s = wasl_pg_text_array(items, 5);
    assert_string_equal(s, "{\"a\",\"b,c\",NULL,\"q\\\"uote\",\"back\\\\slash\"}");
    free(s);
}

/* What PostgreSQL reads from the literal is each element as it was: separators, quotes,
 * braces, blanks, the word NULL, an empty string, Arabic and a real NULL. */
static void test_text_array_round_trip(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    const char *items[] = {"a,b", "{x}", " pad ", "NULL", "", "q\"u\\o", ARABIC, NULL};
    const size_t n = sizeof items / sizeof *items;
    char *arr = wasl_pg_text_array(items, n);
    assert_non_null(arr);
    const char *params[] = {arr};
    PGresult *res = wasl_pg_query(
        pg, "SELECT x, x IS NULL FROM unnest($1::text[]) WITH ORDINALITY AS u(x, i) ORDER BY i", 1,
        params);
    free(arr);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), (int)n);
    for (size_t i = 0; i < n; i++) {
        if (items[i]) {
            assert_string_equal(PQgetvalue(res, (int)i, 0), items[i]);
            assert_string_equal(PQgetvalue(res, (int)i, 1), "f");
        } else {
            assert_string_equal(PQgetvalue(res, (int)i, 1), "t");
        }
    }
    PQclear(res);
    wasl_pg_destroy(&pg);
}

static void test_arity_check(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    PGresult *res = wasl_pg_query(pg, "SELECT 1, 2", 0, NULL);
    assert_true(wasl_pg_arity(res, 2, "two columns"));
    assert_false(wasl_pg_arity(res, 3, "two columns, three expected"));
    assert_false(wasl_pg_arity(res, 1, "two columns, one expected"));
    assert_false(wasl_pg_arity(NULL, 0, "no result"));
    PQclear(res);
    wasl_pg_destroy(&pg);
}

static void test_params_null_and_arabic(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_connect_or_skip();
    const char *params[] = {NULL, ARABIC};
    PGresult *res = wasl_pg_query(
        pg, "SELECT $1::text IS NULL, $2::text, length($2::text), octet_length($2::text)", 2,
        params);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    assert_string_equal(PQgetvalue(res, 0, 1), ARABIC);
    assert_string_equal(PQgetvalue(res, 0, 2), "13");
    assert_int_equal(atoi(PQgetvalue(res, 0, 3)), strlen(ARABIC));
    PQclear(res);

    assert_int_equal(wasl_pg_command(pg, "CREATE TEMP TABLE m (id int, body text, extra text)"), 0);
    assert_int_equal(wasl_pg_prepare(pg, "ins_m", "INSERT INTO m VALUES ($1, $2, $3)"), 0);
    assert_int_equal(wasl_pg_prepare(pg, "get_m", "SELECT body, extra FROM m WHERE id = $1"), 0);
    const char *row[] = {"1", ARABIC, NULL};
    res = wasl_pg_exec(pg, "ins_m", 3, row);
    assert_non_null(res);
    PQclear(res);
    res = wasl_pg_exec(pg, "get_m", 1, row);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 1);
    assert_string_equal(PQgetvalue(res, 0, 0), ARABIC);
    assert_true(PQgetisnull(res, 0, 1));
    PQclear(res);
    wasl_pg_destroy(&pg);
}

int main(void)
{
    wasl_log_init("test_pg", WASL_LOG_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_and_query),
        cmocka_unit_test(test_prepare_rejects_bad_sql),
        cmocka_unit_test(test_prepared_statement_survives_reconnect),
        cmocka_unit_test(test_unreachable_server),
        cmocka_unit_test(test_begin_commit_rollback),
        cmocka_unit_test(test_lost_transaction_fails_until_rollback),
        cmocka_unit_test(test_batch_commits_all),
        cmocka_unit_test(test_batch_large),
        cmocka_unit_test(test_batch_failure_commits_none),
        cmocka_unit_test(test_batch_connection_lost),
        cmocka_unit_test(test_batch_prepares_on_fresh_connection),
        cmocka_unit_test(test_params_null_and_arabic),
        cmocka_unit_test(test_sync_commit_off_survives_reconnect),
        cmocka_unit_test(test_bigint_array_literal),
        cmocka_unit_test(test_text_array_literal),
        cmocka_unit_test(test_text_array_round_trip),
        cmocka_unit_test(test_arity_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
