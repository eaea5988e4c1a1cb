/* wasl_session — people's sign-in on the desk: passwords, sessions in Redis, CSRF, throttling. */
#include "wasl_session.h"
#include "wasl_log.h"
#include "wasl_text.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_PREFIX "wasl:desk:s:"
#define AGENT_PREFIX   "wasl:desk:a:"
#define LF_AGENT       "wasl:desk:lf:a:"
#define LF_ADDR        "wasl:desk:lf:ip:"
#define KEY_MAX        192
#define NUM_BUF        24
/* Longest client address kept in a key: an IPv6 text form is at most 45 bytes. */
#define ADDR_MAX 64

/* Scripts run atomically in Redis, so a session is never half written and a refresh never
 * resurrects one that a concurrent logout deleted. */

/* KEYS: session, agent set. ARGV: agent, role, csrf, created_ms, ttl_ms, set_ttl_ms.
 * Drops the set's members that expired (a set lives as long as its newest session). */
static const char CREATE_LUA[] =
    "redis.call('HSET', KEYS[1], 'agent', ARGV[1], 'role', ARGV[2], 'csrf', ARGV[3],"
    "           'created_ms', ARGV[4])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
    "for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do\n"
    "  if redis.call('EXISTS', k) == 0 then redis.call('SREM', KEYS[2], k) end\n"
    "end\n"
    "redis.call('SADD', KEYS[2], KEYS[1])\n"
    "if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[6]) then\n"
    "  redis.call('PEXPIRE', KEYS[2], ARGV[6])\n"
    "end\n"
    "return 1\n";

/* KEYS: session. ARGV: now_ms, absolute_ms, idle_ms. Returns the fields, or nil. */
static const char GET_LUA[] =
    "local v = redis.call('HMGET', KEYS[1], 'agent', 'role', 'csrf', 'created_ms')\n"
    "if not v[1] or not v[4] then return nil end\n"
    "local left = tonumber(v[4]) + tonumber(ARGV[2]) - tonumber(ARGV[1])\n"
    "if left <= 0 then redis.call('DEL', KEYS[1]) return nil end\n"
    "redis.call('PEXPIRE', KEYS[1], math.min(left, tonumber(ARGV[3])))\n"
    "return v\n";

/* KEYS: agent set. Returns how many sessions were live. */
static const char DELETE_AGENT_LUA[] = "local n = 0\n"
                                       "for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
                                       "  n = n + redis.call('DEL', k)\n"
                                       "end\n"
                                       "redis.call('DEL', KEYS[1])\n"
                                       "return n\n";

/* KEYS: account counter (or ""), address counter. ARGV: account_max, addr_max, window_s.
 * Returns 0, or the seconds to wait. */
static const char CHECK_LUA[] =
    "for i, max in ipairs({tonumber(ARGV[1]), tonumber(ARGV[2])}) do\n"
    "  if KEYS[i] ~= '' and tonumber(redis.call('GET', KEYS[i]) or '0') >= max then\n"
    "    local ttl = redis.call('TTL', KEYS[i])\n"
    "    if ttl < 1 then ttl = tonumber(ARGV[3]) end\n"
    "    return ttl\n"
    "  end\n"
    "end\n"
    "return 0\n";

/* KEYS: account counter (or ""), address counter. ARGV: window_s. */
static const char FAIL_LUA[] = "for _, k in ipairs(KEYS) do\n"
                               "  if k ~= '' and redis.call('INCR', k) == 1 then\n"
                               "    redis.call('EXPIRE', k, ARGV[1])\n"
                               "  end\n"
                               "end\n"
                               "return 0\n";

/* ---- tokens --------------------------------------------------------------------------- */

int wasl_session_token_new(char out[WASL_SESSION_TOKEN_BUF])
{
    unsigned char raw[WASL_SESSION_TOKEN_BYTES];
    if (sodium_init() < 0) {
        return -1;
    }
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(out, WASL_SESSION_TOKEN_BUF, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    return 0;
}

bool wasl_session_token_valid(const char *token)
{
    if (!token || strlen(token) != WASL_SESSION_TOKEN_LEN) {
        return false;
    }
    for (const char *c = token; *c; c++) {
        bool ok = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
                  (*c >= '0' && *c <= '9') || *c == '-' || *c == '_';
        if (!ok) {
            return false;
        }
    }
    return true;
}

void wasl_session_key(const char *token, char out[WASL_SESSION_KEY_BUF])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)token, strlen(token));
    memcpy(out, SESSION_PREFIX, sizeof SESSION_PREFIX - 1);
    sodium_bin2hex(out + sizeof SESSION_PREFIX - 1,
                   WASL_SESSION_KEY_BUF - (sizeof SESSION_PREFIX - 1), digest, sizeof digest);
}

bool wasl_session_csrf_ok(const wasl_session_t *s, const char *presented)
{
    if (!presented || strlen(presented) != WASL_SESSION_TOKEN_LEN ||
        strlen(s->csrf) != WASL_SESSION_TOKEN_LEN) {
        return false;
    }
    return sodium_memcmp(s->csrf, presented, WASL_SESSION_TOKEN_LEN) == 0;
}

/* ---- Redis helpers -------------------------------------------------------------------- */

/* Runs a script with keys and args (all strings). The reply, or NULL on a connection error or
 * an error reply (logged with `what`). */
static redisReply *eval(wasl_redis_t *redis, const char *what, const char *script, int nkeys,
                        const char *const *keys, int nargs, const char *const *args)
{
    enum { EVAL_ARGV_MAX = 16 };
    char nk[NUM_BUF];
    snprintf(nk, sizeof nk, "%d", nkeys);
    const char *argv[EVAL_ARGV_MAX];
    size_t lens[EVAL_ARGV_MAX];
    int argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = script;
    argv[argc++] = nk;
    for (int i = 0; i < nkeys && argc < EVAL_ARGV_MAX; i++) {
        argv[argc++] = keys[i];
    }
    for (int i = 0; i < nargs && argc < EVAL_ARGV_MAX; i++) {
        argv[argc++] = args[i];
    }
    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    redisReply *reply = wasl_redis_cmdargv(redis, argc, argv, lens);
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        wasl_error("session: redis failed", "{s:s, s:s}", "op", what, "error",
                   reply ? reply->str : wasl_redis_error(redis));
        freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

static void agent_set_key(const char *agent, char out[KEY_MAX])
{
    snprintf(out, KEY_MAX, AGENT_PREFIX "%s", agent);
}

/* ---- sessions ------------------------------------------------------------------------- */

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

int wasl_session_create(wasl_redis_t *redis, const char *agent, const char *role,
                        const wasl_session_limits_t *limits, int64_t now_ms,
                        char token_out[WASL_SESSION_TOKEN_BUF], wasl_session_t *out)
{
    memset(out, 0, sizeof *out);
    if (strlen(agent) >= sizeof out->agent || strlen(role) >= sizeof out->role ||
        wasl_session_token_new(token_out) < 0 || wasl_session_token_new(out->csrf) < 0) {
        return -1;
    }
    snprintf(out->agent, sizeof out->agent, "%s", agent);
    snprintf(out->role, sizeof out->role, "%s", role);
    wasl_session_key(token_out, out->key);
    out->created_ms = now_ms;
    char set[KEY_MAX], created[NUM_BUF], ttl[NUM_BUF], set_ttl[NUM_BUF];
    agent_set_key(agent, set);
    snprintf(created, sizeof created, "%lld", (long long)now_ms);
    snprintf(ttl, sizeof ttl, "%lld",
             (long long)min64((int64_t)limits->idle_s * 1000, (int64_t)limits->absolute_s * 1000));
    snprintf(set_ttl, sizeof set_ttl, "%lld", (long long)limits->absolute_s * 1000);
    const char *keys[] = {out->key, set};
    const char *args[] = {agent, role, out->csrf, created, ttl, set_ttl};
    redisReply *reply = eval(redis, "create", CREATE_LUA, 2, keys, 6, args);
    if (!reply) {
        sodium_memzero(token_out, WASL_SESSION_TOKEN_BUF);
        return -1;
    }
    freeReplyObject(reply);
    return 0;
}

/* Copies a string element of an array reply; false when it is not one or does not fit. */
static bool copy_elem(const redisReply *arr, size_t i, char *out, size_t cap)
{
    const redisReply *e = arr->element[i];
    if (e->type != REDIS_REPLY_STRING || e->len >= cap) {
        return false;
    }
    memcpy(out, e->str, e->len);
    out[e->len] = '\0';
    return true;
}

int wasl_session_get(wasl_redis_t *redis, const char *token, const wasl_session_limits_t *limits,
                     int64_t now_ms, wasl_session_t *out)
{
    enum { F_AGENT, F_ROLE, F_CSRF, F_CREATED, F_N };
    memset(out, 0, sizeof *out);
    if (!wasl_session_token_valid(token)) {
        return 0;
    }
    wasl_session_key(token, out->key);
    char now[NUM_BUF], absolute[NUM_BUF], idle[NUM_BUF];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(absolute, sizeof absolute, "%lld", (long long)limits->absolute_s * 1000);
    snprintf(idle, sizeof idle, "%lld", (long long)limits->idle_s * 1000);
    const char *keys[] = {out->key};
    const char *args[] = {now, absolute, idle};
    redisReply *reply = eval(redis, "get", GET_LUA, 1, keys, 3, args);
    if (!reply) {
        return -1;
    }
    char created[NUM_BUF];
    int rc = 0;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == F_N &&
        copy_elem(reply, F_AGENT, out->agent, sizeof out->agent) &&
        copy_elem(reply, F_ROLE, out->role, sizeof out->role) &&
        copy_elem(reply, F_CSRF, out->csrf, sizeof out->csrf) &&
        copy_elem(reply, F_CREATED, created, sizeof created)) {
        out->created_ms = strtoll(created, NULL, 10);
        rc = 1;
    }
    freeReplyObject(reply);
    if (rc != 1) {
        char key[WASL_SESSION_KEY_BUF];
        memcpy(key, out->key, sizeof key);
        memset(out, 0, sizeof *out);
        memcpy(out->key, key, sizeof key);
    }
    return rc;
}

int wasl_session_delete(wasl_redis_t *redis, const char *agent, const char *key)
{
    char set[KEY_MAX];
    agent_set_key(agent, set);
    redisReply *reply = wasl_redis_cmd(redis, "DEL %s", key);
    bool ok = reply && reply->type == REDIS_REPLY_INTEGER;
    freeReplyObject(reply);
    if (ok) {
        reply = wasl_redis_cmd(redis, "SREM %s %s", set, key);
        ok = reply && reply->type == REDIS_REPLY_INTEGER;
        freeReplyObject(reply);
    }
    if (!ok) {
        wasl_error("session: redis failed", "{s:s, s:s}", "op", "delete", "error",
                   wasl_redis_error(redis));
    }
    return ok ? 0 : -1;
}

int wasl_session_delete_agent(wasl_redis_t *redis, const char *agent)
{
    char set[KEY_MAX];
    agent_set_key(agent, set);
    const char *keys[] = {set};
    redisReply *reply = eval(redis, "delete_agent", DELETE_AGENT_LUA, 1, keys, 0, NULL);
    if (!reply) {
        return -1;
    }
    int n = reply->type == REDIS_REPLY_INTEGER ? (int)reply->integer : -1;
    freeReplyObject(reply);
    return n;
}

/* ---- throttling ----------------------------------------------------------------------- */

static void throttle_keys(const char *agent, const char *addr, char a[KEY_MAX], char ip[KEY_MAX])
{
    if (agent) {
        snprintf(a, KEY_MAX, LF_AGENT "%s", agent);
    } else {
        a[0] = '\0';
    }
    snprintf(ip, KEY_MAX, LF_ADDR "%.*s", ADDR_MAX, addr ? addr : "-");
}

int wasl_session_throttle_check(wasl_redis_t *redis, const char *agent, const char *addr,
                                const wasl_session_throttle_t *t)
{
    char a[KEY_MAX], ip[KEY_MAX], amax[NUM_BUF], ipmax[NUM_BUF], window[NUM_BUF];
    throttle_keys(agent, addr, a, ip);
    snprintf(amax, sizeof amax, "%d", t->account_max);
    snprintf(ipmax, sizeof ipmax, "%d", t->addr_max);
    snprintf(window, sizeof window, "%d", t->window_s);
    const char *keys[] = {a, ip};
    const char *args[] = {amax, ipmax, window};
    redisReply *reply = eval(redis, "throttle_check", CHECK_LUA, 2, keys, 3, args);
    if (!reply) {
        return -1;
    }
    int wait_s = reply->type == REDIS_REPLY_INTEGER ? (int)reply->integer : -1;
    freeReplyObject(reply);
    return wait_s;
}

int wasl_session_throttle_fail(wasl_redis_t *redis, const char *agent, const char *addr,
                               const wasl_session_throttle_t *t)
{
    char a[KEY_MAX], ip[KEY_MAX], window[NUM_BUF];
    throttle_keys(agent, addr, a, ip);
    snprintf(window, sizeof window, "%d", t->window_s);
    const char *keys[] = {a, ip};
    const char *args[] = {window};
    redisReply *reply = eval(redis, "throttle_fail", FAIL_LUA, 2, keys, 1, args);
    freeReplyObject(reply);
    return reply ? 0 : -1;
}

int wasl_session_throttle_clear(wasl_redis_t *redis, const char *agent)
{
    char a[KEY_MAX], ip[KEY_MAX];
    throttle_keys(agent, NULL, a, ip);
    redisReply *reply = wasl_redis_cmd(redis, "DEL %s", a);
    bool ok = reply && reply->type == REDIS_REPLY_INTEGER;
    freeReplyObject(reply);
    return ok ? 0 : -1;
}

/* ---- passwords ------------------------------------------------------------------------ */

const char *wasl_password_policy(const char *pw, size_t len)
{
    if (len > WASL_PASSWORD_MAX_BYTES) {
        return "the password is longer than 128 bytes";
    }
    if (!wasl_utf8_valid(pw, len, false)) {
        return "the password is not valid UTF-8";
    }
    size_t chars = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)pw[i];
        if (c < 0x20 || c == 0x7f) {
            return "the password contains a control character";
        }
        chars += (c & 0xC0) != 0x80; /* count lead bytes: code points */
    }
    if (chars < WASL_PASSWORD_MIN_CHARS) {
        return "the password is shorter than 10 characters";
    }
    return NULL;
}

int wasl_password_hash(const char *pw, size_t len, char out[WASL_PASSWORD_HASH_BUF])
{
    _Static_assert(crypto_pwhash_STRBYTES <= WASL_PASSWORD_HASH_BUF, "hash buffer too small");
    if (sodium_init() < 0) {
        return -1;
    }
    return crypto_pwhash_str_alg(out, pw, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                 crypto_pwhash_MEMLIMIT_INTERACTIVE,
                                 crypto_pwhash_ALG_ARGON2ID13) == 0
               ? 0
               : -1;
}

static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static char dummy_hash[WASL_PASSWORD_HASH_BUF];

/* A hash of a random password nobody knows, with the same cost as real ones. */
static void dummy_init(void)
{
    char pw[WASL_SESSION_TOKEN_BUF];
    if (wasl_session_token_new(pw) < 0 || wasl_password_hash(pw, strlen(pw), dummy_hash) < 0) {
        dummy_hash[0] = '\0';
    }
    sodium_memzero(pw, sizeof pw);
}

bool wasl_password_verify(const char *hash, const char *pw, size_t len)
{
    static const char ARGON2ID[] = "$argon2id$";
    if (sodium_init() < 0) {
        return false;
    }
    bool real = hash && strncmp(hash, ARGON2ID, sizeof ARGON2ID - 1) == 0 &&
                strlen(hash) < crypto_pwhash_STRBYTES;
    if (!real) {
        pthread_once(&dummy_once, dummy_init);
        /* The answer is thrown away: only the work counts. */
        volatile int same = dummy_hash[0] ? crypto_pwhash_str_verify(dummy_hash, pw, len) : -1;
        (void)same;
        return false;
    }
    return crypto_pwhash_str_verify(hash, pw, len) == 0;
}
