/* Unit tests for wasl_redis; those needing a server use WASL_TEST_REDIS_URL (skipped when unset).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "wasl_log.h"
#include "wasl_redis.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MS        1000
#define SHORT_TIMEOUT_MS  200
#define BLOCK_S           "3" /* BLPOP blocks longer than SHORT_TIMEOUT_MS */
#define KEY_TTL_S         "60"
#define UNREACHABLE_URL   "redis://127.0.0.1:1"
#define PAST_RECONNECT_MS (WASL_REDIS_RECONNECT_MS + 50)
#define URL_MAX           512

static const char *const ARABIC = "مرحبا بالعالم";

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

static const char *base_url_or_skip(void)
{
    const char *url = getenv("WASL_TEST_REDIS_URL");
    if (!url || !*url) {
        skip();
    }
    return url;
}

static wasl_redis_t *connect_or_skip(void)
{
    wasl_redis_t *redis = wasl_redis_new(base_url_or_skip(), TIMEOUT_MS);
    assert_non_null(redis);
    assert_true(wasl_redis_ok(redis));
    assert_string_equal(wasl_redis_error(redis), "");
    return redis;
}

/* The test server's URL with database `db` and, when `password` is set, that password
 * instead of the URL's own. */
static void make_url(char *out, const char *base, const char *password, int db)
{
    if (strncmp(base, "unix://", 7) == 0) {
        int path_len = (int)strcspn(base, "?");
        snprintf(out, URL_MAX, "%.*s?db=%d%s%s", path_len, base, db, password ? "&password=" : "",
                 password ? password : "");
        return;
    }
    assert_int_equal(strncmp(base, "redis://", 8), 0);
    const char *rest = base + 8;
    const char *at = strrchr(rest, '@');
    const char *hostport = at ? at + 1 : rest;
    int hostport_len = (int)strcspn(hostport, "/");
    int userinfo_len = at ? (int)(at - rest + 1) : 0;
    if (password) {
        snprintf(out, URL_MAX, "redis://:%s@%.*s/%d", password, hostport_len, hostport, db);
    } else {
        snprintf(out, URL_MAX, "redis://%.*s%.*s/%d", userinfo_len, rest, hostport_len, hostport,
                 db);
    }
}

/* A key of this test process, so that parallel runs do not collide. */
static void make_key(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "wasl:test_redis:%ld:%s", (long)getpid(), name);
}

static long long client_id(wasl_redis_t *redis)
{
    redisReply *reply = wasl_redis_cmd(redis, "CLIENT ID");
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_INTEGER);
    long long id = reply->integer;
    freeReplyObject(reply);
    return id;
}

static void assert_pong(wasl_redis_t *redis)
{
    redisReply *reply = wasl_redis_cmd(redis, "PING");
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    assert_string_equal(reply->str, "PONG");
    freeReplyObject(reply);
}

/* CLIENT KILL of the caller's own connection (SKIPME defaults to yes): answered, then the
 * server closes it. */
static void kill_own_connection(wasl_redis_t *redis)
{
    redisReply *reply = wasl_redis_cmd(redis, "CLIENT KILL ID %lld SKIPME no", client_id(redis));
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_INTEGER);
    assert_int_equal(reply->integer, 1);
    freeReplyObject(reply);
}

static void test_set_get_round_trip(void **state)
{
    (void)state;
    wasl_redis_t *redis = connect_or_skip();
    char key[128];
    make_key(key, sizeof key, "greeting");
    redisReply *reply = wasl_redis_cmd(redis, "SET %s %s EX " KEY_TTL_S, key, ARABIC);
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    assert_string_equal(reply->str, "OK");
    freeReplyObject(reply);
    reply = wasl_redis_cmd(redis, "GET %s", key);
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_STRING);
    assert_string_equal(reply->str, ARABIC);
    freeReplyObject(reply);

    /* Binary values (embedded NUL) through argv. */
    const char value[] = {'a', '\0', 'b'};
    const char *argv[] = {"SET", key, value, "EX", KEY_TTL_S};
    const size_t argvlen[] = {3, strlen(key), sizeof value, 2, strlen(KEY_TTL_S)};
    reply = wasl_redis_cmdargv(redis, 5, argv, argvlen);
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    reply = wasl_redis_cmd(redis, "GET %b", key, strlen(key));
    assert_non_null(reply);
    assert_int_equal(reply->len, sizeof value);
    assert_memory_equal(reply->str, value, sizeof value);
    freeReplyObject(reply);

    reply = wasl_redis_cmd(redis, "DEL %s", key);
    assert_non_null(reply);
    assert_int_equal(reply->integer, 1);
    freeReplyObject(reply);
    reply = wasl_redis_cmd(redis, "GET %s", key);
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_NIL);
    freeReplyObject(reply);
    wasl_redis_destroy(&redis);
    wasl_redis_destroy(&redis);
    assert_null(redis);
}

/* Three commands in one round trip come back in order, an error reply among them; a pipeline
 * that meets a closed connection gives no reply at all and drops it, like one command. */
static void test_pipeline(void **state)
{
    (void)state;
    wasl_redis_t *redis = connect_or_skip();
    char key[128];
    make_key(key, sizeof key, "pipelined");
    const char *set[] = {"SET", key, ARABIC, "EX", KEY_TTL_S};
    const char *bad[] = {"NOSUCHCOMMAND"};
    const char *get[] = {"GET", key};
    const int argcs[] = {5, 1, 2};
    const char *const *argvs[] = {set, bad, get};
    redisReply *replies[3];
    assert_int_equal(wasl_redis_pipeline(redis, 3, argcs, argvs, NULL, replies), 0);
    assert_int_equal(replies[0]->type, REDIS_REPLY_STATUS);
    assert_int_equal(replies[1]->type, REDIS_REPLY_ERROR);
    assert_int_equal(replies[2]->type, REDIS_REPLY_STRING);
    assert_string_equal(replies[2]->str, ARABIC);
    for (int i = 0; i < 3; i++) {
        freeReplyObject(replies[i]);
    }
    sleep_ms(PAST_RECONNECT_MS);
    kill_own_connection(redis);
    assert_int_equal(wasl_redis_pipeline(redis, 3, argcs, argvs, NULL, replies), -1);
    assert_null(replies[0]);
    assert_null(replies[2]);
    assert_string_not_equal(wasl_redis_error(redis), "");
    assert_pong(redis); /* reconnected */
    freeReplyObject(wasl_redis_cmd(redis, "DEL %s", key));
    wasl_redis_destroy(&redis);
}

static void test_error_reply_is_returned(void **state)
{
    (void)state;
    wasl_redis_t *redis = connect_or_skip();
    redisReply *reply = wasl_redis_cmd(redis, "NOSUCHCOMMAND %s", "x");
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(reply->str, "unknown command"));
    freeReplyObject(reply);

    char key[128];
    make_key(key, sizeof key, "not-a-number");
    reply = wasl_redis_cmd(redis, "SET %s abc EX " KEY_TTL_S, key);
    freeReplyObject(reply);
    reply = wasl_redis_cmd(redis, "INCR %s", key);
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(reply->str, "not an integer"));
    freeReplyObject(reply);

    /* An error reply is not a connection error: the connection is kept. */
    long long id = client_id(redis);
    assert_string_equal(wasl_redis_error(redis), "");
    assert_pong(redis);
    assert_int_equal(client_id(redis), id);
    freeReplyObject(wasl_redis_cmd(redis, "DEL %s", key));
    wasl_redis_destroy(&redis);
}

static void test_reconnect_after_client_kill(void **state)
{
    (void)state;
    wasl_redis_t *redis = connect_or_skip();
    long long first_id = client_id(redis);
    sleep_ms(PAST_RECONNECT_MS);
    kill_own_connection(redis);
    /* The next command meets the closed connection: NULL, dropped, not retried. */
    assert_null(wasl_redis_cmd(redis, "PING"));
    assert_string_not_equal(wasl_redis_error(redis), "");
    /* The one after reconnects at once, since the last attempt is old. */
    int64_t reconnect_started_ms = now_ms();
    assert_pong(redis);
    assert_string_equal(wasl_redis_error(redis), "");
    assert_int_not_equal(client_id(redis), first_id);

    /* Killed again right away: the reconnection waits for WASL_REDIS_RECONNECT_MS. */
    kill_own_connection(redis);
    assert_null(wasl_redis_cmd(redis, "PING"));
    if (now_ms() - reconnect_started_ms < WASL_REDIS_RECONNECT_MS) {
        assert_null(wasl_redis_cmd(redis, "PING"));
        assert_false(wasl_redis_ok(redis));
    }
    sleep_ms(PAST_RECONNECT_MS);
    assert_true(wasl_redis_ok(redis));
    assert_pong(redis);
    wasl_redis_destroy(&redis);
}

static void test_timeout_drops_connection(void **state)
{
    (void)state;
    wasl_redis_t *redis = wasl_redis_new(base_url_or_skip(), SHORT_TIMEOUT_MS);
    assert_non_null(redis);
    char key[128];
    make_key(key, sizeof key, "empty-list");
    int64_t started_ms = now_ms();
    assert_null(wasl_redis_cmd(redis, "BLPOP %s " BLOCK_S, key));
    assert_true(now_ms() - started_ms < 2 * SHORT_TIMEOUT_MS + WASL_REDIS_RECONNECT_MS);
    assert_string_not_equal(wasl_redis_error(redis), "");
    sleep_ms(PAST_RECONNECT_MS);
    assert_pong(redis);
    wasl_redis_destroy(&redis);
}

static void test_bad_urls(void **state)
{
    (void)state;
    const char *const bad[] = {
        "",
        "http://127.0.0.1:6379",
        "redis://",
        "redis://:6379",
        "redis://host:0",
        "redis://host:65536",
        "redis://host:port",
        "redis://host:",
        "redis://host/db",
        "redis://host/1/2",
        "redis://host/1@x",
        "redis://host/-1",
        "redis://host?db=1",
        "redis://user@host",
        "redis://:p%zz@host",
        "redis://:p%00@host",
        "redis://[::1",
        "redis://[::1]x",
        "unix://relative/path",
        "unix:///tmp/redis.sock?db=x",
        "unix:///tmp/redis.sock?color=blue",
        "unix:///tmp/redis.sock?db",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wasl_redis_t *redis = wasl_redis_new(bad[i], TIMEOUT_MS);
        if (redis) {
            fail_msg("accepted malformed URL \"%s\"", bad[i]);
        }
    }
    const char *const good[] = {
        "redis://localhost",
        "redis://localhost/",
        "redis://127.0.0.1:6380/15",
        "redis://:secret@127.0.0.1:6379/2",
        "redis://user:p%40ss%2Fword@[::1]:6380/0",
        "redis://:p@ss@127.0.0.1/1",
        "unix:///run/redis/redis.sock",
        "unix:///run/redis/redis.sock?db=3&password=s%26cret",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        wasl_redis_t *redis = wasl_redis_new(good[i], TIMEOUT_MS);
        if (!redis) {
            fail_msg("rejected valid URL \"%s\"", good[i]);
        }
        wasl_redis_destroy(&redis);
    }
}

static void test_unreachable_port(void **state)
{
    (void)state;
    wasl_redis_t *redis = wasl_redis_new(UNREACHABLE_URL, TIMEOUT_MS);
    assert_non_null(redis); /* lazy: a server that is down is not an error here */
    assert_null(wasl_redis_cmd(redis, "PING"));
    assert_non_null(strstr(wasl_redis_error(redis), "refused"));
    /* Deferred, then tried again. */
    assert_false(wasl_redis_ok(redis));
    const char *argv[] = {"PING"};
    assert_null(wasl_redis_cmdargv(redis, 1, argv, NULL));
    sleep_ms(PAST_RECONNECT_MS);
    assert_false(wasl_redis_ok(redis));
    assert_non_null(strstr(wasl_redis_error(redis), "refused"));
    wasl_redis_destroy(&redis);
}

static void test_wrong_password_fails_connect(void **state)
{
    (void)state;
    char url[URL_MAX];
    make_url(url, base_url_or_skip(), "wrong-password", 0);
    wasl_redis_t *redis = wasl_redis_new(url, TIMEOUT_MS);
    assert_non_null(redis);
    assert_null(wasl_redis_cmd(redis, "PING"));
    assert_non_null(strstr(wasl_redis_error(redis), "AUTH"));
    wasl_redis_destroy(&redis);
}

/* An ACL user (as Compose and Kubernetes give each daemon): AUTH with user and password from
 * the URL, confined to Wasl's keys without the dangerous commands; the wrong password fails. */
static void test_acl_user_from_url(void **state)
{
    (void)state;
    const char *base = base_url_or_skip();
    if (strncmp(base, "redis://", 8) != 0) {
        skip();
    }
    wasl_redis_t *admin = connect_or_skip();
    char user[64], url[URL_MAX], key[128];
    snprintf(user, sizeof user, "wasl_test_%ld", (long)getpid());
    redisReply *reply = wasl_redis_cmd(admin,
                                       "ACL SETUSER %s reset on >s3cret%%2F ~wasl:* &* "
                                       "+@all -@admin -@dangerous",
                                       user);
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    const char *rest = strrchr(base, '@') ? strrchr(base, '@') + 1 : base + 8;
    int hostport_len = (int)strcspn(rest, "/");
    /* The password is percent-encoded in the URL: "s3cret%2F" reaches Redis as "s3cret/". */
    snprintf(url, URL_MAX, "redis://%s:s3cret%%252F@%.*s/0", user, hostport_len, rest);
    wasl_redis_t *redis = wasl_redis_new(url, TIMEOUT_MS);
    assert_non_null(redis);
    make_key(key, sizeof key, "acl");
    reply = wasl_redis_cmd(redis, "SET %s v EX " KEY_TTL_S, key);
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    reply = wasl_redis_cmd(redis, "SET not-wasl v");
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(reply->str, "NOPERM"));
    freeReplyObject(reply);
    reply = wasl_redis_cmd(redis, "FLUSHALL");
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_ERROR);
    freeReplyObject(reply);
    wasl_redis_destroy(&redis);

    snprintf(url, URL_MAX, "redis://%s:wrong@%.*s/0", user, hostport_len, rest);
    redis = wasl_redis_new(url, TIMEOUT_MS);
    assert_non_null(redis);
    assert_null(wasl_redis_cmd(redis, "PING"));
    assert_non_null(strstr(wasl_redis_error(redis), "AUTH"));
    wasl_redis_destroy(&redis);
    freeReplyObject(wasl_redis_cmd(admin, "DEL %s", key));
    freeReplyObject(wasl_redis_cmd(admin, "ACL DELUSER %s", user));
    wasl_redis_destroy(&admin);
}

static void test_db_selection(void **state)
{
    (void)state;
    const char *base = base_url_or_skip();
    char url[URL_MAX], key[128];
    make_url(url, base, NULL, 2);
    make_key(key, sizeof key, "in-db-2");
    wasl_redis_t *in_db2 = wasl_redis_new(url, TIMEOUT_MS);
    assert_non_null(in_db2);
    redisReply *reply = wasl_redis_cmd(in_db2, "CLIENT INFO");
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_STRING);
    assert_non_null(strstr(reply->str, " db=2 "));
    freeReplyObject(reply);
    reply = wasl_redis_cmd(in_db2, "SET %s two EX " KEY_TTL_S, key);
    assert_non_null(reply);
    freeReplyObject(reply);

    /* Another connection finds the key in database 2. */
    make_url(url, base, NULL, 0);
    wasl_redis_t *other = wasl_redis_new(url, TIMEOUT_MS);
    assert_non_null(other);
    reply = wasl_redis_cmd(other, "EXISTS %s", key);
    assert_non_null(reply);
    assert_int_equal(reply->integer, 0);
    freeReplyObject(reply);
    reply = wasl_redis_cmd(other, "SELECT 2");
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    reply = wasl_redis_cmd(other, "GET %s", key);
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_STRING);
    assert_string_equal(reply->str, "two");
    freeReplyObject(reply);
    freeReplyObject(wasl_redis_cmd(in_db2, "DEL %s", key));
    wasl_redis_destroy(&other);
    wasl_redis_destroy(&in_db2);
}

int main(void)
{
    /* hiredis writes with write(2): a peer that closed first would raise SIGPIPE. Daemons
     * ignore it too (see wasl_signal). */
    signal(SIGPIPE, SIG_IGN);
    wasl_log_init("test_redis", WASL_LOG_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_round_trip),
        cmocka_unit_test(test_error_reply_is_returned),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_reconnect_after_client_kill),
        cmocka_unit_test(test_timeout_drops_connection),
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_unreachable_port),
        cmocka_unit_test(test_wrong_password_fails_connect),
        cmocka_unit_test(test_db_selection),
        cmocka_unit_test(test_acl_user_from_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
