/* dedup — one answer per request across caselookup workers: claims, stored answers, liveness. */
#include "dedup.h"
#include "wasl_log.h"
#include "wasl_pii.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_PREFIX   "wasl:cl:req:"
#define ALIVE_PREFIX "wasl:cl:alive:"
#define OWNER_MAX    128
/* A worker's liveness key lives ALIVE_TTL_MS and is refreshed every ALIVE_EVERY_MS by a thread
 * that never waits on PostgreSQL: a worker blocked in a slow commit stays alive (its resends
 * wait for its answer), a killed or stopped one is taken over within ALIVE_TTL_MS — inside the
 * router's patience (2 × 700 ms) and intake's (3 × 1 s). */
#define ALIVE_TTL_MS   1000
#define ALIVE_EVERY_MS 250
/* A claim outlives its worker's liveness only as a safety net: a live worker whose loop is
 * stuck this long loses its requests to the others. */
#define PENDING_TTL_MS 30000
/* How long an answer is kept for resends: a client resends within (retries + 1) × timeout,
 * a few seconds; the rest is margin for a slow bus. */
#define DONE_TTL_MS 60000

/* Per request: GET; no claim → claim it (N); another request's hash (C); answered → the answer
 * (D…); claimed by this worker earlier in the batch, or by a live one → wait (P); claimed by a
 * worker whose liveness key is gone → take it over (N). KEYS: the requests' keys. ARGV: pending
 * ttl (ms), this worker, the liveness key prefix, then each request's hash. The value is the
 * hash, then 'P' and the owner, or 'D' and the answer's bytes. */
static const char *const claim_lua =
    "local out = {} for i = 1, #KEYS do "
    "local fp = ARGV[3 + i] local mine = fp .. 'P' .. ARGV[2] "
    "local v = redis.call('GET', KEYS[i]) "
    "if not v then redis.call('SET', KEYS[i], mine, 'PX', ARGV[1]) out[i] = 'N' "
    "elseif string.sub(v, 1, 64) ~= fp then out[i] = 'C' "
    "elseif string.sub(v, 65, 65) == 'D' then out[i] = 'D' .. string.sub(v, 66) "
    "elseif string.sub(v, 66) ~= ARGV[2] and "
    "  redis.call('EXISTS', ARGV[3] .. string.sub(v, 66)) == 0 then "
    "  redis.call('SET', KEYS[i], mine, 'PX', ARGV[1]) out[i] = 'N' "
    "else out[i] = 'P' end end return out";

/* KEYS: the requests' keys. ARGV: done ttl (ms), then each new value. */
static const char *const store_lua =
    "for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1 + i], 'PX', ARGV[1]) end "
    "return #KEYS";

/* Drops a claim only while it is still this worker's. KEYS: keys. ARGV: each claim's value. */
static const char *const release_lua =
    "local n = 0 for i = 1, #KEYS do if redis.call('GET', KEYS[i]) == ARGV[i] then "
    "redis.call('DEL', KEYS[i]) n = n + 1 end end return n";

struct dedup {
    char owner[OWNER_MAX];
    char alive_key[OWNER_MAX + sizeof ALIVE_PREFIX];
    wasl_redis_t *alive_redis; /* the liveness thread's own connection */
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping; /* under lock */
};

static void *alive_loop(void *arg)
{
    dedup_t *self = arg;
    pthread_mutex_lock(&self->lock);
    while (!self->stopping) {
        pthread_mutex_unlock(&self->lock);
        char ttl[24];
        snprintf(ttl, sizeof ttl, "%d", ALIVE_TTL_MS);
        redisReply *r = wasl_redis_cmd(self->alive_redis, "SET %s 1 PX %s", self->alive_key, ttl);
        if (r) {
            freeReplyObject(r);
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)ALIVE_EVERY_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&self->lock);
        while (!self->stopping) {
            if (pthread_cond_timedwait(&self->wake, &self->lock, &until) == ETIMEDOUT) {
                break;
            }
        }
    }
    pthread_mutex_unlock(&self->lock);
    /* Gone now, not ALIVE_TTL_MS later: a clean stop hands its claims over at once. */
    redisReply *r = wasl_redis_cmd(self->alive_redis, "DEL %s", self->alive_key);
    if (r) {
        freeReplyObject(r);
    }
    return NULL;
}

dedup_t *dedup_new(const char *redis_url, int timeout_ms, const char *owner)
{
    assert(redis_url && owner);
    dedup_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    snprintf(self->owner, sizeof self->owner, "%s", owner);
    snprintf(self->alive_key, sizeof self->alive_key, ALIVE_PREFIX "%s", owner);
    self->alive_redis = wasl_redis_new(redis_url, timeout_ms);
    if (!self->alive_redis) {
        goto error;
    }
    if (pthread_create(&self->thread, NULL, alive_loop, self) != 0) {
        wasl_error("caselookup: cannot start the liveness thread", NULL);
        goto error;
    }
    self->started = true;
    return self;
error:
    dedup_destroy(&self);
    return NULL;
}

void dedup_destroy(dedup_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    dedup_t *self = *self_p;
    if (self->started) {
        pthread_mutex_lock(&self->lock);
        self->stopping = true;
        pthread_cond_signal(&self->wake);
        pthread_mutex_unlock(&self->lock);
        pthread_join(self->thread, NULL);
    }
    wasl_redis_destroy(&self->alive_redis);
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

void dedup_ids(const char *request_id, const void *body, size_t len, char *key, char *fp)
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    char hex[DEDUP_FP_LEN + 1];
    /* The key hashes the id: ids are the sender's text, keys stay short and printable. */
    crypto_hash_sha256(digest, (const unsigned char *)request_id, strlen(request_id));
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    snprintf(key, DEDUP_KEY_MAX, KEY_PREFIX "%.40s", hex);
    /* The request carries the verifier (a national ID or phone) and the fingerprint is kept in
     * Redis and in the audit: a bare SHA-256 of it would give the ID back to anyone who hashes
     * the request with each of the 10^10 IDs. Keyed (wasl_pii), it cannot be enumerated. */
    wasl_pii_hash_bytes(body, len, fp);
}

/* An EVAL of `script` over n keys with `nhead` leading ARGV and one ARGV per key (args[i],
 * arg_lens[i] or strlen), built into e (its arrays freed by eval_free; `numkeys` is the
 * caller's buffer, 24 bytes). 0, or -1 when out of memory. */
typedef struct {
    int argc;
    const char **argv;
    size_t *lens;
} eval_t;

static void eval_free(eval_t *e)
{
    free(e->argv);
    free(e->lens);
    e->argv = NULL;
    e->lens = NULL;
}

static int eval_build(eval_t *e, char *numkeys, const char *script, size_t n,
                      const char *const *keys, size_t nhead, const char *const *head,
                      const char *const *args, const size_t *arg_lens)
{
    size_t argc = 3 + 2 * n + nhead;
    const char **argv = calloc(argc, sizeof *argv);
    size_t *lens = calloc(argc, sizeof *lens);
    e->argc = (int)argc;
    e->argv = argv;
    e->lens = lens;
    if (!argv || !lens) {
        eval_free(e);
        return -1;
    }
    snprintf(numkeys, 24, "%zu", n);
    argv[0] = "EVAL";
    argv[1] = script;
    argv[2] = numkeys;
    size_t a = 3;
    for (size_t i = 0; i < n; i++) {
        argv[a++] = keys[i];
    }
    for (size_t i = 0; i < nhead; i++) {
        argv[a++] = head[i];
    }
    for (size_t i = 0; i < n; i++) {
        lens[a] = arg_lens ? arg_lens[i] : strlen(args[i]);
        argv[a++] = args[i];
    }
    for (size_t i = 0; i < a; i++) {
        if (!lens[i]) {
            lens[i] = strlen(argv[i]);
        }
    }
    return 0;
}

/* Runs `script` as eval_build builds it; the reply (caller frees) or NULL. */
static redisReply *eval_keys(wasl_redis_t *redis, const char *script, size_t n,
                             const char *const *keys, size_t nhead, const char *const *head,
                             const char *const *args, const size_t *arg_lens)
{
    eval_t e;
    char numkeys[24];
    if (eval_build(&e, numkeys, script, n, keys, nhead, head, args, arg_lens) < 0) {
        return NULL;
    }
    redisReply *r = wasl_redis_cmdargv(redis, e.argc, e.argv, e.lens);
    eval_free(&e);
    return r;
}

int dedup_claim(dedup_t *self, wasl_redis_t *redis, size_t n, const char *const *keys,
                const char *const *fps, dedup_state_t *states, char **answers, size_t *answer_lens)
{
    return dedup_claim_with(self, redis, n, keys, fps, states, answers, answer_lens, 0, NULL, NULL);
}

/* The claim script and, when argc > 0, the caller's command, in one round trip. The claim's
 * reply (caller frees) or NULL; *with gets the other reply (NULL when Redis did not answer). */
static redisReply *claim_round_trip(dedup_t *self, wasl_redis_t *redis, size_t n,
                                    const char *const *keys, const char *const *fps, int argc,
                                    const char *const *argv, redisReply **with)
{
    char ttl[24], numkeys[24];
    snprintf(ttl, sizeof ttl, "%d", PENDING_TTL_MS);
    const char *head[] = {ttl, self->owner, ALIVE_PREFIX};
    eval_t e;
    if (eval_build(&e, numkeys, claim_lua, n, keys, 3, head, fps, NULL) < 0) {
        return NULL;
    }
    redisReply *replies[2] = {NULL, NULL};
    const int argcs[] = {e.argc, argc};
    const char *const *argvs[] = {e.argv, argv};
    const size_t *lens[] = {e.lens, NULL};
    wasl_redis_pipeline(redis, argc > 0 ? 2 : 1, argcs, argvs, lens, replies);
    eval_free(&e);
    if (argc > 0) {
        *with = replies[1];
    }
    return replies[0];
}

int dedup_claim_with(dedup_t *self, wasl_redis_t *redis, size_t n, const char *const *keys,
                     const char *const *fps, dedup_state_t *states, char **answers,
                     size_t *answer_lens, int argc, const char *const *argv, redisReply **with)
{
    assert(self && redis && keys && fps && states && answers && answer_lens);
    assert(argc == 0 || (argv && with));
    if (argc > 0) {
        *with = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        states[i] = DEDUP_NEW;
        answers[i] = NULL;
        answer_lens[i] = 0;
    }
    if (n == 0) {
        return 0;
    }
    redisReply *r = claim_round_trip(self, redis, n, keys, fps, argc, argv, with);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        wasl_warn("caselookup: request claims failed; answering without deduplication", "{s:s}",
                  "error", r && r->type == REDIS_REPLY_ERROR ? r->str : wasl_redis_error(redis));
        if (r) {
            freeReplyObject(r);
        }
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[i];
        char c = e->type == REDIS_REPLY_STRING && e->len > 0 ? e->str[0] : 'N';
        if (c == 'P') {
            states[i] = DEDUP_PENDING;
        } else if (c == 'C') {
            states[i] = DEDUP_CONFLICT;
        } else if (c == 'D') {
            /* Kept sealed (dedup_store): open it. One that does not open (another key, or out of
             * memory) is not answered from: the request is refused like a conflict. */
            answers[i] = wasl_pii_open_bytes(e->str + 1, e->len - 1, &answer_lens[i]);
            states[i] = answers[i] ? DEDUP_DONE : DEDUP_CONFLICT;
        }
    }
    freeReplyObject(r);
    return 0;
}

int dedup_store(dedup_t *self, wasl_redis_t *redis, size_t n, const char *const *keys,
                const char *const *fps, const char *const *answers, const size_t *answer_lens)
{
    assert(self && redis && keys && fps && answers && answer_lens);
    if (n == 0) {
        return 0;
    }
    char **values = calloc(n, sizeof *values);
    size_t *lens = calloc(n, sizeof *lens);
    int rc = -1;
    if (!values || !lens) {
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        /* Sealed: an answer carries the case and, for an automatic answer, the party's phone
         * or e-mail on file, and Redis is readable by every daemon. */
        size_t slen = 0;
        unsigned char *sealed = wasl_pii_seal_bytes(answers[i], answer_lens[i], &slen);
        if (!sealed) {
            goto done;
        }
        lens[i] = DEDUP_FP_LEN + 1 + slen;
        if (!(values[i] = malloc(lens[i]))) {
            free(sealed);
            goto done;
        }
        memcpy(values[i], fps[i], DEDUP_FP_LEN);
        values[i][DEDUP_FP_LEN] = 'D';
        memcpy(values[i] + DEDUP_FP_LEN + 1, sealed, slen);
        free(sealed);
    }
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%d", DONE_TTL_MS);
    const char *head[] = {ttl};
    redisReply *r =
        eval_keys(redis, store_lua, n, keys, 1, head, (const char *const *)values, lens);
    rc = r && r->type == REDIS_REPLY_INTEGER ? 0 : -1;
    if (r) {
        freeReplyObject(r);
    }
done:
    if (rc < 0) {
        wasl_warn("caselookup: answers not kept for resends", "{s:s, s:i}", "error",
                  wasl_redis_error(redis), "requests", (int)n);
    }
    for (size_t i = 0; values && i < n; i++) {
        free(values[i]);
    }
    free(values);
    free(lens);
    return rc;
}

int dedup_release(dedup_t *self, wasl_redis_t *redis, size_t n, const char *const *keys,
                  const char *const *fps)
{
    assert(self && redis && keys && fps);
    if (n == 0) {
        return 0;
    }
    char **values = calloc(n, sizeof *values);
    int rc = -1;
    if (!values) {
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = DEDUP_FP_LEN + 1 + strlen(self->owner) + 1;
        if (!(values[i] = malloc(len))) {
            goto done;
        }
        snprintf(values[i], len, "%.64sP%s", fps[i], self->owner);
    }
    redisReply *r =
        eval_keys(redis, release_lua, n, keys, 0, NULL, (const char *const *)values, NULL);
    rc = r && r->type == REDIS_REPLY_INTEGER ? 0 : -1;
    if (r) {
        freeReplyObject(r);
    }
done:
    for (size_t i = 0; values && i < n; i++) {
        free(values[i]);
    }
    free(values);
    return rc;
}
