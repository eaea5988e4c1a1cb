/* Unit tests for wasl_session: tokens, CSRF, password policy and hashing without a server; the
 * sessions and the throttle against the Redis of WASL_TEST_REDIS_URL (skipped when unset). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "wasl_log.h"
#include "wasl_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TIMEOUT_MS 1000
#define NOW_MS     1800000000000LL /* a fixed wall clock: expiry is decided from it */

static const wasl_session_limits_t LIMITS = {.idle_s = 1800, .absolute_s = 43200};
static const wasl_session_throttle_t THROTTLE = {.account_max = 5, .addr_max = 30, .window_s = 900};

static wasl_redis_t *connect_or_skip(void)
{
    const char *url = getenv("WASL_TEST_REDIS_URL");
    if (!url || !*url) {
        skip();
    }
    wasl_redis_t *redis = wasl_redis_new(url, TIMEOUT_MS);
    assert_non_null(redis);
    assert_true(wasl_redis_ok(redis));
    return redis;
}

/* An agent id of this process, so that parallel runs do not collide. */
static void agent_name(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "t%ld-%s", (long)getpid(), name);
}

static long long integer_cmd(wasl_redis_t *redis, const char *fmt, const char *arg)
{
    redisReply *reply = wasl_redis_cmd(redis, fmt, arg);
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_INTEGER);
    long long n = reply->integer;
    freeReplyObject(reply);
    return n;
}

/* ---- without a server ------------------------------------------------------------------ */

static void test_token_shape_and_key(void **state)
{
    (void)state;
    char a[WASL_SESSION_TOKEN_BUF], b[WASL_SESSION_TOKEN_BUF];
    assert_int_equal(wasl_session_token_new(a), 0);
    assert_int_equal(wasl_session_token_new(b), 0);
    assert_int_equal(strlen(a), WASL_SESSION_TOKEN_LEN);
    assert_true(wasl_session_token_valid(a));
    assert_string_not_equal(a, b);
    char key[WASL_SESSION_KEY_BUF];
    wasl_session_key(a, key);
    assert_int_equal(strlen(key), 12 + 64);
    assert_int_equal(strncmp(key, "wasl:desk:s:", 12), 0);
    assert_null(strstr(key, a));
    /* SHA-256("abc"), the FIPS 180-2 example. */
    wasl_session_key("abc", key);
    assert_string_equal(key + 12,
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_false(wasl_session_token_valid(NULL));
    assert_false(wasl_session_token_valid(""));
    assert_false(wasl_session_token_valid("abc"));
    char bad[WASL_SESSION_TOKEN_BUF];
    memcpy(bad, a, sizeof bad);
    bad[5] = '+'; /* base64, not base64url */
    assert_false(wasl_session_token_valid(bad));
    bad[5] = '\'';
    assert_false(wasl_session_token_valid(bad));
}

static void test_csrf_compare(void **state)
{
    (void)state;
    wasl_session_t s = {0};
    assert_int_equal(wasl_session_token_new(s.csrf), 0);
    char other[WASL_SESSION_TOKEN_BUF];
    memcpy(other, s.csrf, sizeof other);
    assert_true(wasl_session_csrf_ok(&s, other));
    other[WASL_SESSION_TOKEN_LEN - 1] ^= 1;
    assert_false(wasl_session_csrf_ok(&s, other));
    assert_false(wasl_session_csrf_ok(&s, NULL));
    assert_false(wasl_session_csrf_ok(&s, ""));
    other[10] = '\0';
    assert_false(wasl_session_csrf_ok(&s, other));
    wasl_session_t empty = {0};
    assert_false(wasl_session_csrf_ok(&empty, ""));
}

static void test_password_policy(void **state)
{
    (void)state;
    assert_null(wasl_password_policy("correct horse", 13));
    assert_non_null(wasl_password_policy("short-pw1", 9));
    /* Ten Arabic letters are twenty bytes and ten characters: accepted; nine are not. */
    const char *ten = "كلمةمرورطو";
    assert_int_equal(strlen(ten), 20);
    assert_null(wasl_password_policy(ten, strlen(ten)));
    assert_non_null(wasl_password_policy(ten, strlen(ten) - 2));
    char longpw[WASL_PASSWORD_MAX_BYTES + 2];
    memset(longpw, 'x', sizeof longpw);
    assert_null(wasl_password_policy(longpw, WASL_PASSWORD_MAX_BYTES));
    assert_non_null(wasl_password_policy(longpw, WASL_PASSWORD_MAX_BYTES + 1));
    assert_non_null(wasl_password_policy("line\nbreak-pw", 13));
    assert_non_null(wasl_password_policy("nul\0in-the-middle", 17));
    assert_non_null(wasl_password_policy("\xff\xfe-not-utf8-at-all", 19));
}

static void test_password_hash_verify(void **state)
{
    (void)state;
    const char *pw = "كلمة مرور جيدة 2026";
    char hash[WASL_PASSWORD_HASH_BUF];
    assert_int_equal(wasl_password_hash(pw, strlen(pw), hash), 0);
    assert_int_equal(strncmp(hash, "$argon2id$", 10), 0);
    assert_null(strstr(hash, "2026"));
    assert_true(wasl_password_verify(hash, pw, strlen(pw)));
    assert_false(wasl_password_verify(hash, pw, strlen(pw) - 1));
    assert_false(wasl_password_verify(hash, "wrong password", 14));
    /* No hash (an unknown account, an agent without a password) and garbage: false. */
    assert_false(wasl_password_verify(NULL, pw, strlen(pw)));
    assert_false(wasl_password_verify("", pw, strlen(pw)));
    assert_false(wasl_password_verify("$2y$10$notargon", pw, strlen(pw)));
    /* A second hash of the same password differs (its own salt). */
    char again[WASL_PASSWORD_HASH_BUF];
    assert_int_equal(wasl_password_hash(pw, strlen(pw), again), 0);
    assert_string_not_equal(hash, again);
}

/* ---- against Redis --------------------------------------------------------------------- */

static void test_create_get_round_trip(void **state)
{
    (void)state;
    wasl_redis_t *redis = connect_or_skip();
    char agent[64];
    agent_name(agent, sizeof agent, "hala");
    char token[WASL_SESSION_TOKEN_BUF];
    wasl_session_t made;
    assert_int_equal(wasl_session_create(redis, agent, "supervisor", &LIMITS, NOW_MS, token, &made),
                     0);
    assert_true(wasl_session_token_valid(token));
    assert_true(wasl_session_token_valid(made.csrf));
    assert_string_not_equal(token, made.csrf);
    /* The token is stored nowhere: not as a key, not in the hash. */
    assert_int_equal(integer_cmd(redis, "EXISTS wasl:desk:s:%s", token), 0);
    redisReply *all = wasl_redis_cmd(redis, "HGETALL %s", made.key);
    assert_non_null(all);
    assert_int_equal(all->type, REDIS_REPLY_ARRAY);
    assert_int_equal(all->elements, 8);
    for (size_t i = 0; i < all->elements; i++) {
        assert_null(strstr(all->element[i]->str, token));
    }
    freeReplyObject(all);
    long long ttl = integer_cmd(redis, "PTTL %s", made.key);
    assert_true(ttl > 0 && ttl <= LIMITS.idle_s * 1000LL);
    redisReply *member = wasl_redis_cmd(redis, "SISMEMBER wasl:desk:a:%s %s", agent, made.key);
    assert_non_null(member);
    assert_int_equal(member->integer, 1);
    freeReplyObject(member);

    wasl_session_t got;
    assert_int_equal(wasl_session_get(redis, token, &LIMITS, NOW_MS + 1000, &got), 1);
    assert_string_equal(got.agent, agent);
    assert_string_equal(got.role, "supervisor");
    assert_string_equal(got.csrf, made.csrf);
    assert_string_equal(got.key, made.key);
    assert_int_equal(got.created_ms, NOW_MS);
    /* A different token, a malformed one: no session. */
    char other[WASL_SESSION_TOKEN_BUF];
    assert_int_equal(wasl_session_token_new(other), 0);
    assert_int_equal(wasl_session_get(redis, other, &LIMITS, NOW_MS, &got), 0);
    assert_string_equal(got.agent, "");
    assert_int_equal(wasl_session_get(redis, "x' OR 1", &LIMITS, NOW_MS, &got), 0);
    assert_int_equal(wasl_session_delete_agent(redis, agent), 1);
    wasl_redis_destroy(&redis);
}

static void test_idle_refresh_and_absolute_limit(void **state)
{
    (void)state;
    wasl_redis_t *redis = connect_or_skip();
    char agent[64];
    agent_name(agent, sizeof agent, "idle");
    char token[WASL_SESSION_TOKEN_BUF];
    wasl_session_t s;
    assert_int_equal(wasl_session_create(redis, agent, "agent", &LIMITS, NOW_MS, token, &s), 0);
    /* Use refreshes the idle timeout. */
    redisReply *r = wasl_redis_cmd(redis, "PEXPIRE %s 5000", s.key);
    freeReplyObject(r);
    wasl_session_t got;
    assert_int_equal(wasl_session_get(redis, token, &LIMITS, NOW_MS + 60000, &got), 1);
    long long ttl = integer_cmd(redis, "PTTL %s", s.key);
    assert_true(ttl > LIMITS.idle_s * 1000LL - 5000 && ttl <= LIMITS.idle_s * 1000LL);
    /* Near the absolute limit the TTL is what is left of it, not the idle timeout. */
    int64_t near = NOW_MS + LIMITS.absolute_s * 1000LL - 700;
    assert_int_equal(wasl_session_get(redis, token, &LIMITS, near, &got), 1);
    ttl = integer_cmd(redis, "PTTL %s", s.key);
    assert_true(ttl > 0 && ttl <= 700);
    /* Past it: gone, and deleted. */
    assert_int_equal(
        wasl_session_get(redis, token, &LIMITS, NOW_MS + LIMITS.absolute_s * 1000LL, &got), 0);
    assert_int_equal(integer_cmd(redis, "EXISTS %s", s.key), 0);
    /* An idle session expires by itself: its key's TTL, checked with a short one. */
    wasl_session_limits_t short_idle = {.idle_s = 1, .absolute_s = 43200};
    assert_int_equal(wasl_session_create(redis, agent, "agent", &short_idle, NOW_MS, token, &s), 0);
    ttl = integer_cmd(redis, "PTTL %s", s.key);
    assert_true(ttl > 0 && ttl <= 1000);
    wasl_session_delete_agent(redis, agent);
    wasl_redis_destroy(&redis);
}

static void test_delete_one_and_all(void **state)
{
    (void)state;
    wasl_redis_t *redis = connect_or_skip();
    char agent[64], other[64];
    agent_name(agent, sizeof agent, "many");
    agent_name(other, sizeof other, "other");
    char t1[WASL_SESSION_TOKEN_BUF], t2[WASL_SESSION_TOKEN_BUF], t3[WASL_SESSION_TOKEN_BUF],
        t4[WASL_SESSION_TOKEN_BUF];
    wasl_session_t s1, s2, s3, s4, got;
    assert_int_equal(wasl_session_create(redis, agent, "agent", &LIMITS, NOW_MS, t1, &s1), 0);
    assert_int_equal(wasl_session_create(redis, agent, "agent", &LIMITS, NOW_MS, t2, &s2), 0);
    assert_int_equal(wasl_session_create(redis, agent, "agent", &LIMITS, NOW_MS, t3, &s3), 0);
    assert_int_equal(wasl_session_create(redis, other, "agent", &LIMITS, NOW_MS, t4, &s4), 0);
    /* Sign out: that session only. */
    assert_int_equal(wasl_session_delete(redis, agent, s1.key), 0);
    assert_int_equal(wasl_session_get(redis, t1, &LIMITS, NOW_MS, &got), 0);
    assert_int_equal(wasl_session_get(redis, t2, &LIMITS, NOW_MS, &got), 1);
    /* Everywhere: the agent's two others, not another agent's. */
    assert_int_equal(wasl_session_delete_agent(redis, agent), 2);
    assert_int_equal(wasl_session_get(redis, t2, &LIMITS, NOW_MS, &got), 0);
    assert_int_equal(wasl_session_get(redis, t3, &LIMITS, NOW_MS, &got), 0);
    assert_int_equal(wasl_session_get(redis, t4, &LIMITS, NOW_MS, &got), 1);
    assert_int_equal(wasl_session_delete_agent(redis, agent), 0);
    /* The set forgets expired sessions when a new one is made. */
    assert_int_equal(wasl_session_create(redis, agent, "agent", &LIMITS, NOW_MS, t1, &s1), 0);
    redisReply *r = wasl_redis_cmd(redis, "DEL %s", s1.key);
    freeReplyObject(r);
    assert_int_equal(wasl_session_create(redis, agent, "agent", &LIMITS, NOW_MS, t2, &s2), 0);
    assert_int_equal(integer_cmd(redis, "SCARD wasl:desk:a:%s", agent), 1);
    wasl_session_delete_agent(redis, agent);
    wasl_session_delete_agent(redis, other);
    wasl_redis_destroy(&redis);
}

static void test_throttle_per_account_and_address(void **state)
{
    (void)state;
    wasl_redis_t *redis = connect_or_skip();
    char agent[64], addr[64], addr2[64];
    agent_name(agent, sizeof agent, "guessed");
    snprintf(addr, sizeof addr, "192.0.2.%ld", (long)(getpid() % 250));
    snprintf(addr2, sizeof addr2, "2001:db8::%lx", (long)getpid());
    assert_int_equal(wasl_session_throttle_clear(redis, agent), 0);
    redisReply *r = wasl_redis_cmd(redis, "DEL wasl:desk:lf:ip:%s wasl:desk:lf:ip:%s", addr, addr2);
    freeReplyObject(r);
    for (int i = 0; i < THROTTLE.account_max; i++) {
        assert_int_equal(wasl_session_throttle_check(redis, agent, addr, &THROTTLE), 0);
        assert_int_equal(wasl_session_throttle_fail(redis, agent, addr, &THROTTLE), 0);
    }
    /* The account is throttled from any address, for what is left of the window. */
    int wait_s = wasl_session_throttle_check(redis, agent, addr2, &THROTTLE);
    assert_true(wait_s > 0 && wait_s <= THROTTLE.window_s);
    /* The address is not (5 < 30): another account may try from it. */
    assert_int_equal(wasl_session_throttle_check(redis, NULL, addr, &THROTTLE), 0);
    /* A success clears the account, not the address. */
    assert_int_equal(wasl_session_throttle_clear(redis, agent), 0);
    assert_int_equal(wasl_session_throttle_check(redis, agent, addr, &THROTTLE), 0);
    /* The address: past its own limit, whatever the account. */
    wasl_session_throttle_t tight = {.account_max = 100, .addr_max = 3, .window_s = 60};
    for (int i = 0; i < tight.addr_max; i++) {
        assert_int_equal(wasl_session_throttle_fail(redis, NULL, addr2, &tight), 0);
    }
    wait_s = wasl_session_throttle_check(redis, agent, addr2, &tight);
    assert_true(wait_s > 0 && wait_s <= tight.window_s);
    /* (addr has 5 failures: over this limit too.) */
    assert_true(wasl_session_throttle_check(redis, agent, addr, &tight) > 0);
    assert_int_equal(wasl_session_throttle_check(redis, agent, "198.51.100.7", &tight), 0);
    r = wasl_redis_cmd(redis, "DEL wasl:desk:lf:ip:%s wasl:desk:lf:ip:%s", addr, addr2);
    freeReplyObject(r);
    wasl_redis_destroy(&redis);
}

static void test_redis_down_fails_closed(void **state)
{
    (void)state;
    wasl_redis_t *redis = wasl_redis_new("redis://127.0.0.1:1", 200);
    assert_non_null(redis);
    char token[WASL_SESSION_TOKEN_BUF];
    wasl_session_t s;
    assert_int_equal(wasl_session_create(redis, "hala", "agent", &LIMITS, NOW_MS, token, &s), -1);
    assert_int_equal(wasl_session_token_new(token), 0);
    assert_int_equal(wasl_session_get(redis, token, &LIMITS, NOW_MS, &s), -1);
    assert_int_equal(wasl_session_throttle_check(redis, "hala", "127.0.0.1", &THROTTLE), -1);
    assert_int_equal(wasl_session_delete_agent(redis, "hala"), -1);
    wasl_redis_destroy(&redis);
}

int main(void)
{
    wasl_log_init("test_session", WASL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_shape_and_key),
        cmocka_unit_test(test_csrf_compare),
        cmocka_unit_test(test_password_policy),
        cmocka_unit_test(test_password_hash_verify),
        cmocka_unit_test(test_create_get_round_trip),
        cmocka_unit_test(test_idle_refresh_and_absolute_limit),
        cmocka_unit_test(test_delete_one_and_all),
        cmocka_unit_test(test_throttle_per_account_and_address),
        cmocka_unit_test(test_redis_down_fails_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
