/* test_clients — the clients table both edges read (common/wasl_clients): scope words, bearer
 * lookup and the binding it carries, signers, and — against the servers of WASL_TEST_PG_URL (a
 * migrated database) and WASL_TEST_REDIS_URL, skipped when unset — loading the table with and
 * without secrets, and the per-second rate limit. */
#include "wasl_clients.h"
#include "wasl_clock.h"
#include "wasl_pg.h"

#include <setjmp.h>
#include <stdarg.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define LOAD_WAIT_MS 10000
/* A stored token hash that is no token's we present. */
#define LOAD_TOKEN_SHA "d3f0d71c2e4d9c6a4ce1d1a65eb0b2bb1d61b3d6b36c9ff3a6ca3e1b0a7e6d8f"

static void test_scope_words(void **state)
{
    (void)state;
    long own = wasl_scopes_parse("reports,tickets:read");
    assert_true(own & WASL_SCOPE_TICKETS_READ);
    assert_false(own & WASL_SCOPE_TICKETS_READ_ALL);
    long all = wasl_scopes_parse("tickets:read:all");
    assert_true(all & WASL_SCOPE_TICKETS_READ);
    assert_true(all & WASL_SCOPE_TICKETS_READ_ALL);
    assert_true(wasl_scopes_parse("*") & WASL_SCOPE_AGENTS);
    assert_int_equal(wasl_scopes_parse("tickets:read:any"), -1);
    assert_int_equal(wasl_scopes_parse("{agents,cases}"), WASL_SCOPE_AGENTS | WASL_SCOPE_CASES);
    assert_int_equal(wasl_scopes_parse(""), 0);
    assert_int_equal(wasl_scopes_parse(NULL), 0);
}

static wasl_clients_t *two_clients(void)
{
    wasl_clients_t *c = wasl_clients_new("", 60, WASL_CLIENTS_TOKENS, "test");
    assert_non_null(c);
    assert_false(wasl_clients_loaded(c));
    wasl_client_t app = {.id = "app-a",
                         .scopes = WASL_SCOPE_AGENTS,
                         .rate_per_s = 5,
                         .role = WASL_AUTHZ_ROLE_AGENT,
                         .act_as = "aisha,huda"};
    wasl_client_t gw = {.id = "gw", .scopes = WASL_SCOPE_SMS, .rate_per_s = 100};
    assert_int_equal(wasl_clients_add(c, &app, "token-of-app", NULL), 0);
    assert_int_equal(wasl_clients_add(c, &gw, NULL, "a-secret-of-thirty-two-bytes-or-more"), 0);
    assert_true(wasl_clients_loaded(c));
    return c;
}

/* A token finds its client and the binding it carries (a copy); anything else finds nothing. */
static void test_bearer_finds_its_client_only(void **state)
{
    (void)state;
    wasl_clients_t *c = two_clients();
    wasl_client_t out = {.id = "untouched"};
    assert_true(wasl_clients_bearer(c, "token-of-app", &out));
    assert_string_equal(out.id, "app-a");
    assert_int_equal(out.role, WASL_AUTHZ_ROLE_AGENT);
    assert_string_equal(out.act_as, "aisha,huda");
    assert_int_equal(out.scopes, WASL_SCOPE_AGENTS);
    static const char *const wrong[] = {"token-of-ap", "token-of-app ", "", "TOKEN-OF-APP",
                                        "a-secret-of-thirty-two-bytes-or-more"};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        wasl_client_t none = {.id = "untouched"};
        assert_false(wasl_clients_bearer(c, wrong[i], &none));
        assert_string_equal(none.id, "untouched");
    }
    wasl_clients_destroy(&c);
    assert_null(c);
    wasl_clients_destroy(&c); /* twice is fine */
}

static bool secret_is(const char *secret, void *arg)
{
    return strcmp(secret, arg) == 0;
}

static void test_signers(void **state)
{
    (void)state;
    wasl_clients_t *c = two_clients();
    assert_true(wasl_clients_signer(c, NULL));
    assert_true(wasl_clients_signer(c, "gw"));
    assert_false(wasl_clients_signer(c, "app-a")); /* a token only */
    assert_false(wasl_clients_signer(c, "nobody"));
    wasl_client_t out = {0};
    char right[] = "a-secret-of-thirty-two-bytes-or-more", wrong[] = "another";
    assert_true(wasl_clients_find_signer(c, NULL, secret_is, right, &out));
    assert_string_equal(out.id, "gw");
    assert_false(wasl_clients_find_signer(c, NULL, secret_is, wrong, &out));
    assert_false(wasl_clients_find_signer(c, "app-a", secret_is, right, &out));
    wasl_clients_destroy(&c);
}

static wasl_pg_t *pg_or_skip(void)
{
    const char *url = getenv("WASL_TEST_PG_URL");
    if (!url || !*url) {
        skip();
    }
    wasl_pg_t *pg = wasl_pg_new(url);
    assert_non_null(pg);
    return pg;
}

static void wait_loaded(wasl_clients_t *c)
{
    int64_t until = wasl_clock_ms() + LOAD_WAIT_MS;
    while (!wasl_clients_loaded(c) && wasl_clock_ms() < until) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_true(wasl_clients_loaded(c));
}

/* The table as each edge reads it: enabled clients only; the binding; the desk's reading (no
 * secrets) knows no signer and leaves out a client that has no token. */
static void test_load_from_the_table(void **state)
{
    (void)state;
    wasl_pg_t *pg = pg_or_skip();
    // clang-format off
    const char *rows[] = {LOAD_TOKEN_SHA};
    PGresult *res = wasl_pg_query(pg,
        "INSERT INTO clients (id, name, kind, scopes, token_sha256, rate_per_s, role, act_as)"
        "     VALUES ('load-app', 'L', 'agent_desk', '{agents}', $1, 7, 'supervisor',"
        "             '{aisha,badr}'),"
        "            ('load-off', 'O', 'agent_desk', '{agents}',"
        "             encode(sha256('off-token'::bytea), 'hex'), 7, NULL, '{}')",
        1, rows);
    // clang-format on
    assert_non_null(res);
    PQclear(res);
    res = wasl_pg_query(pg, "UPDATE clients SET enabled = false WHERE id = 'load-off'", 0, NULL);
    assert_non_null(res);
    PQclear(res);
    res = wasl_pg_query(pg,
                        "INSERT INTO clients (id, name, kind, scopes, hmac_secret)"
                        " VALUES ('load-gw', 'G', 'sms_gateway', '{sms}',"
                        "         'a-secret-of-thirty-two-bytes-or-more')",
                        0, NULL);
    assert_non_null(res);
    PQclear(res);
    for (unsigned flags = 0; flags <= WASL_CLIENTS_SECRETS; flags++) {
        wasl_clients_t *c = wasl_clients_new(getenv("WASL_TEST_PG_URL"), 60, flags, "test");
        assert_non_null(c);
        wait_loaded(c);
        wasl_client_t out = {0};
        /* The stored hash above is not of "load-token": found only through the real token. */
        assert_false(wasl_clients_bearer(c, "off-token", &out)); /* disabled */
        assert_int_equal(wasl_clients_signer(c, "load-gw"), flags == WASL_CLIENTS_SECRETS);
        wasl_clients_destroy(&c);
    }
    /* A token that hashes to the stored value is found, with its binding. */
    res =
        wasl_pg_query(pg,
                      "UPDATE clients SET token_sha256 = encode(sha256('load-token'::bytea), 'hex')"
                      " WHERE id = 'load-app'",
                      0, NULL);
    assert_non_null(res);
    PQclear(res);
    wasl_clients_t *c = wasl_clients_new(getenv("WASL_TEST_PG_URL"), 60, 0, "test");
    wait_loaded(c);
    wasl_client_t out = {0};
    assert_true(wasl_clients_bearer(c, "load-token", &out));
    assert_string_equal(out.id, "load-app");
    assert_int_equal(out.role, WASL_AUTHZ_ROLE_SUPERVISOR);
    assert_string_equal(out.act_as, "aisha,badr");
    assert_int_equal(out.rate_per_s, 7);
    wasl_clients_destroy(&c);
    res = wasl_pg_query(pg, "DELETE FROM clients WHERE id LIKE 'load-%'", 0, NULL);
    PQclear(res);
    wasl_pg_destroy(&pg);
}

/* Over rate_per_s in one second: 1; Redis gone: -1 (the caller lets it through). */
static void test_rate_limit(void **state)
{
    (void)state;
    const char *url = getenv("WASL_TEST_REDIS_URL");
    if (!url || !*url) {
        skip();
    }
    wasl_redis_t *r = wasl_redis_new(url, 500);
    assert_non_null(r);
    char id[WASL_CLIENT_ID_BUF];
    snprintf(id, sizeof id, "rate-%ld", (long)time(NULL));
    wasl_client_t c = {.rate_per_s = 3};
    snprintf(c.id, sizeof c.id, "%s", id);
    long long second = 1000000000LL + (long long)(wasl_clock_ms() % 1000000);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wasl_clients_rate(r, &c, second), 0);
    }
    assert_int_equal(wasl_clients_rate(r, &c, second), 1);
    assert_int_equal(wasl_clients_rate(r, &c, second + 1), 0); /* a new second */
    assert_int_equal(wasl_clients_rate(NULL, &c, second), -1);
    wasl_redis_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scope_words), cmocka_unit_test(test_bearer_finds_its_client_only),
        cmocka_unit_test(test_signers),     cmocka_unit_test(test_load_from_the_table),
        cmocka_unit_test(test_rate_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
