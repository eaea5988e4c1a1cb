/* governor — quiet hours and Redis rate limits for outgoing notifications. */
#include "governor.h"
#include "wasl_log.h"
#include "wasl_pii.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_S   (24 * 3600)
#define KEY_MAX 256

struct governor {
    wasl_redis_t *redis;
    governor_limits_t limits;
};

long governor_quiet_wait_s(time_t now, int start_h, int end_h)
{
    if (start_h == end_h) {
        return 0;
    }
    long local = (long)((now + GOVERNOR_RIYADH_OFFSET_S) % DAY_S);
    if (local < 0) {
        local += DAY_S;
    }
    long start = (long)start_h * 3600, end = (long)end_h * 3600;
    bool inside = start < end ? (local >= start && local < end) : (local >= start || local < end);
    if (!inside) {
        return 0;
    }
    long wait = end - local;
    return wait > 0 ? wait : wait + DAY_S;
}

governor_t *governor_new(wasl_redis_t *redis, const governor_limits_t *limits)
{
    assert(limits);
    governor_t *self = calloc(1, sizeof *self);
    if (self) {
        self->redis = redis;
        self->limits = *limits;
    }
    return self;
}

void governor_destroy(governor_t **self_p)
{
    assert(self_p);
    free(*self_p);
    *self_p = NULL;
}

/* Counts one more in each key's fixed window; when any is over its limit, undoes the counts
 * and returns the longest TTL left. KEYS: the budgets; ARGV: max1, window1, max2, window2… */
static const char *const take_lua =
    "local wait = 0\n"
    "for i, k in ipairs(KEYS) do\n"
    "  local n = redis.call('INCR', k)\n"
    "  local w = tonumber(ARGV[2 * i])\n"
    "  if n == 1 then redis.call('EXPIRE', k, w) end\n"
    "  if n > tonumber(ARGV[2 * i - 1]) then\n"
    "    local ttl = redis.call('TTL', k)\n"
    "    if ttl < 1 then ttl = 1 end\n"
    "    if ttl > wait then wait = ttl end\n"
    "  end\n"
    "end\n"
    "if wait > 0 then for _, k in ipairs(KEYS) do redis.call('DECR', k) end end\n"
    "return wait\n";

long governor_take(governor_t *self, const char *channel, const char *recipient, int64_t ticket_id,
                   bool *redis_down)
{
    assert(self && channel && recipient);
    if (redis_down) {
        *redis_down = false;
    }
    const governor_limits_t *l = &self->limits;
    if (!self->redis) {
        return 0;
    }
    char k1[KEY_MAX], k2[KEY_MAX], a[4][24];
    const char *argv[9];
    size_t argc = 0, nkeys = 0;
    const char *keys[2];
    const long *vals[2][2];
    if (l->recipient_max > 0) {
        /* The key names the recipient by a keyed hash: Redis keys are visible to anyone with
         * access to Redis, phone numbers and addresses are personal data, and a bare hash of a
         * phone is reversed by hashing every number. */
        char hex[WASL_PII_HASH_BUF];
        wasl_pii_hash("recipient", recipient, hex);
        snprintf(k1, sizeof k1, "wasl:notify:rcpt:%s:%.32s", channel, hex);
        keys[nkeys] = k1;
        vals[nkeys][0] = &l->recipient_max;
        vals[nkeys][1] = &l->recipient_window_s;
        nkeys++;
    }
    if (l->ticket_max > 0 && ticket_id > 0) {
        snprintf(k2, sizeof k2, "wasl:notify:ticket:%lld", (long long)ticket_id);
        keys[nkeys] = k2;
        vals[nkeys][0] = &l->ticket_max;
        vals[nkeys][1] = &l->ticket_window_s;
        nkeys++;
    }
    if (nkeys == 0) {
        return 0;
    }
    char nk[8];
    snprintf(nk, sizeof nk, "%zu", nkeys);
    argv[argc++] = "EVAL";
    argv[argc++] = take_lua;
    argv[argc++] = nk;
    for (size_t i = 0; i < nkeys; i++) {
        argv[argc++] = keys[i];
    }
    for (size_t i = 0; i < nkeys; i++) {
        snprintf(a[2 * i], sizeof a[0], "%ld", *vals[i][0]);
        snprintf(a[2 * i + 1], sizeof a[0], "%ld", *vals[i][1]);
        argv[argc++] = a[2 * i];
        argv[argc++] = a[2 * i + 1];
    }
    redisReply *r = wasl_redis_cmdargv(self->redis, (int)argc, argv, NULL);
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        if (redis_down) {
            *redis_down = true;
        }
        wasl_debug("notifier: rate limit not checked (Redis)", "{s:s}", "error",
                   r && r->type == REDIS_REPLY_ERROR ? r->str : wasl_redis_error(self->redis));
        if (r) {
            freeReplyObject(r);
        }
        return 0;
    }
    long wait = (long)r->integer;
    freeReplyObject(r);
    return wait;
}
