/* auth — intake's authentication on top of the shared clients table (common/wasl_clients): bearer
 * and query tokens, HMAC signatures with replay protection, and the rate limit's 429. */
#include "auth.h"
#include "wasl_log.h"
#include "wasl_metrics.h"
#include "wasl_redis.h"

#include <assert.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* A nonce is remembered for longer than a timestamp stays fresh either way (±max age). */
#define REPLAY_MEMORY_FACTOR 2
/* The first line of the canonical request: names the scheme so that a v2 cannot collide. */
#define SIG_SCHEME "WASL-HMAC-SHA256"
/* Digits of a signature's timestamp: unix seconds until the year 33658, far from overflow. */
#define SIG_T_DIGITS_MAX 12
#define RETRY_AFTER_S    2
#define SHA256_BYTES     32

struct intake_auth {
    const intake_config_t *cfg;
    wasl_clients_t *clients;
    pthread_key_t redis_key;
    wasl_counter_t *refused;
    wasl_counter_t *rl_unavailable;
    wasl_counter_t *limited;
};

static void redis_free(void *p)
{
    wasl_redis_t *r = p;
    wasl_redis_destroy(&r);
}

intake_auth_t *intake_auth_new(const intake_config_t *cfg)
{
    if (sodium_init() < 0) {
        return NULL;
    }
    intake_auth_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->cfg = cfg;
    if (pthread_key_create(&self->redis_key, redis_free) != 0) {
        free(self);
        return NULL;
    }
    self->refused = wasl_counter("wasl_intake_auth_refused_total",
                                 "Requests refused for missing, bad, expired or replayed "
                                 "credentials",
                                 NULL);
    self->limited =
        wasl_counter("wasl_intake_rate_limited_total", "Requests refused by rate limits", NULL);
    self->rl_unavailable = wasl_counter("wasl_intake_ratelimit_unavailable_total",
                                        "Requests let through because Redis was unreachable", NULL);
    self->clients =
        wasl_clients_new(cfg->pg_url, cfg->clients_refresh_s, WASL_CLIENTS_SECRETS, "intake");
    if (!self->clients) {
        intake_auth_destroy(&self);
        return NULL;
    }
    return self;
}

int intake_auth_add_client(intake_auth_t *self, const intake_client_t *client, const char *token,
                           const char *hmac_secret)
{
    return wasl_clients_add(self->clients, client, token, hmac_secret);
}

void intake_auth_destroy(intake_auth_t **self_p)
{
    assert(self_p);
    intake_auth_t *self = *self_p;
    if (!self) {
        return;
    }
    wasl_clients_destroy(&self->clients);
    /* The main thread's own Redis handle, if it made one; other threads' go with them. */
    wasl_redis_t *r = pthread_getspecific(self->redis_key);
    redis_free(r);
    pthread_key_delete(self->redis_key);
    free(self);
    *self_p = NULL;
}

struct wasl_redis *intake_auth_redis(intake_auth_t *self)
{
    wasl_redis_t *r = pthread_getspecific(self->redis_key);
    if (!r) {
        r = wasl_redis_new(self->cfg->redis_url, (int)self->cfg->redis_timeout_ms);
        if (r) {
            pthread_setspecific(self->redis_key, r);
        }
    }
    return r;
}

static int refuse(intake_auth_t *self, intake_reply_t *reply, const char *why)
{
    wasl_counter_inc(self->refused);
    intake_error(reply, 401, "unauthorized", NULL, "%s", why);
    return -1;
}

/* Bearer: constant-time against every client's stored SHA-256 (wasl_clients_bearer). */
static int check_bearer(intake_auth_t *self, const char *token, intake_client_t *client,
                        intake_reply_t *reply)
{
    return wasl_clients_bearer(self->clients, token, client)
               ? 0
               : refuse(self, reply, "unknown bearer token");
}

static bool nonce_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

int intake_signature_parse(const char *header, intake_signature_t *out)
{
    memset(out, 0, sizeof *out);
    if (!header || strlen(header) > INTAKE_SIG_HEADER_MAX) {
        return -1;
    }
    bool has_t = false, has_n = false, has_v1 = false;
    for (const char *p = header; *p;) {
        while (*p == ' ') {
            p++;
        }
        size_t item = strcspn(p, ",");
        const char *eq = memchr(p, '=', item);
        if (!eq) {
            return -1;
        }
        size_t klen = (size_t)(eq - p);
        const char *v = eq + 1;
        size_t vlen = item - klen - 1;
        while (vlen > 0 && v[vlen - 1] == ' ') {
            vlen--;
        }
        if (klen == 1 && p[0] == 't') {
            /* Digits only, at most 12 (year 33658): no sign, no spaces, and no value that
             * could overflow later arithmetic. */
            if (has_t || vlen == 0 || vlen > SIG_T_DIGITS_MAX) {
                return -1;
            }
            long long t = 0;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9') {
                    return -1;
                }
                t = t * 10 + (v[i] - '0');
            }
            out->t = t;
            has_t = true;
        } else if (klen == 1 && p[0] == 'n') {
            if (has_n || vlen < INTAKE_NONCE_MIN || vlen > INTAKE_NONCE_MAX) {
                return -1;
            }
            for (size_t i = 0; i < vlen; i++) {
                if (!nonce_char(v[i])) {
                    return -1;
                }
            }
            memcpy(out->nonce, v, vlen);
            out->nonce[vlen] = '\0';
            has_n = true;
        } else if (klen == 2 && p[0] == 'v' && p[1] == '1') {
            size_t binlen = 0;
            if (has_v1 || vlen != 2 * INTAKE_MAC_BYTES ||
                sodium_hex2bin(out->mac, INTAKE_MAC_BYTES, v, vlen, NULL, &binlen, NULL) != 0 ||
                binlen != INTAKE_MAC_BYTES) {
                return -1;
            }
            has_v1 = true;
        }
        p += item + (p[item] == ',');
    }
    return has_t && has_n && has_v1 ? 0 : -1;
}

bool intake_signature_fresh(long long t, long long now, long max_age_s)
{
    /* Compared without subtracting t: t may be anything a client sent. */
    return t >= now - max_age_s && t <= now + max_age_s;
}

static void mac_part(crypto_auth_hmacsha256_state *st, const char *text, bool newline)
{
    crypto_auth_hmacsha256_update(st, (const unsigned char *)text, strlen(text));
    if (newline) {
        crypto_auth_hmacsha256_update(st, (const unsigned char *)"\n", 1);
    }
}

void intake_signature_mac(const char *secret, const char *method, const char *path,
                          const char *query, long long t, const char *nonce, const char *body,
                          size_t len, unsigned char out[INTAKE_MAC_BYTES])
{
    unsigned char digest[SHA256_BYTES];
    char digest_hex[2 * SHA256_BYTES + 1];
    crypto_hash_sha256(digest, (const unsigned char *)body, len);
    sodium_bin2hex(digest_hex, sizeof digest_hex, digest, sizeof digest);
    char tbuf[32];
    snprintf(tbuf, sizeof tbuf, "%lld", t);
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    mac_part(&st, SIG_SCHEME, true);
    mac_part(&st, method, true);
    mac_part(&st, path, true);
    mac_part(&st, query ? query : "", true);
    mac_part(&st, tbuf, true);
    mac_part(&st, nonce, true);
    mac_part(&st, digest_hex, false);
    crypto_auth_hmacsha256_final(&st, out);
}

/* The header checks that need no body: syntax, freshness, and a client that signs. */
static int precheck_signature(intake_auth_t *self, const intake_credentials_t *cred,
                              intake_signature_t *sig, intake_reply_t *reply)
{
    if (intake_signature_parse(cred->signature, sig) < 0) {
        return refuse(self, reply,
                      "X-Wasl-Signature must be t=<unix seconds>,n=<nonce: 8-64 of A-Za-z0-9_->,"
                      "v1=<64 hex>");
    }
    if (!intake_signature_fresh(sig->t, (long long)time(NULL), self->cfg->sig_max_age_s)) {
        return refuse(self, reply, "the signature's timestamp is too old (or in the future)");
    }
    return wasl_clients_signer(self->clients, cred->client_id)
               ? 0
               : refuse(self, reply, "no such client signs requests");
}

/* 503 unless the clients were loaded at least once. */
static int require_loaded(intake_auth_t *self, intake_reply_t *reply)
{
    if (!wasl_clients_loaded(self->clients)) {
        intake_error(reply, 503, "unavailable", NULL, "credentials are not loaded yet; retry");
        reply->retry_after_s = RETRY_AFTER_S;
        return -1;
    }
    return 0;
}

int intake_auth_precheck(intake_auth_t *self, const intake_credentials_t *cred,
                         intake_client_t *client, intake_reply_t *reply)
{
    if (require_loaded(self, reply) < 0) {
        return -1;
    }
    if (cred->authorization) {
        if (strncasecmp(cred->authorization, "Bearer ", 7) != 0 || !cred->authorization[7]) {
            return refuse(self, reply, "Authorization must be \"Bearer <token>\"");
        }
        return check_bearer(self, cred->authorization + 7, client, reply);
    }
    if (cred->signature) {
        intake_signature_t sig;
        return precheck_signature(self, cred, &sig, reply) < 0 ? -1 : INTAKE_AUTH_NEEDS_BODY;
    }
    if (cred->query_token && *cred->query_token) {
        return check_bearer(self, cred->query_token, client, reply);
    }
    return refuse(self, reply, "credentials required: Authorization: Bearer, or X-Wasl-Signature");
}

/* A signed request and what it presented, for mac_matches. */
typedef struct {
    const intake_credentials_t *cred;
    const intake_signature_t *sig;
    const char *body;
    size_t len;
} signed_request_t;

/* Whether the request was signed with `secret` (constant-time comparison). */
static bool mac_matches(const char *secret, void *arg)
{
    const signed_request_t *sr = arg;
    unsigned char expect[INTAKE_MAC_BYTES];
    intake_signature_mac(secret, sr->cred->method, sr->cred->path, sr->cred->query, sr->sig->t,
                         sr->sig->nonce, sr->body, sr->len, expect);
    return sodium_memcmp(expect, sr->sig->mac, INTAKE_MAC_BYTES) == 0;
}

int intake_auth_check_signed(intake_auth_t *self, const intake_credentials_t *cred,
                             const char *body, size_t len, intake_client_t *client,
                             intake_reply_t *reply)
{
    intake_signature_t sig;
    if (!cred->signature) {
        return refuse(self, reply, "X-Wasl-Signature is required");
    }
    if (require_loaded(self, reply) < 0) {
        return -1;
    }
    /* Checked again: the clock moved while the body arrived, and a client may have gone. */
    if (precheck_signature(self, cred, &sig, reply) < 0) {
        return -1;
    }
    signed_request_t sr = {cred, &sig, body, len};
    if (!wasl_clients_find_signer(self->clients, cred->client_id, mac_matches, &sr, client)) {
        return refuse(self, reply, "the signature does not match");
    }
    /* Replay: the first use of a nonce claims it for the client in Redis, for longer than a
     * timestamp stays fresh; any later use of it is refused, whatever else it signs. */
    wasl_redis_t *r = intake_auth_redis(self);
    redisReply *rep = r ? wasl_redis_cmd(r, "SET wasl:sig:%s:%s 1 NX EX %ld", client->id, sig.nonce,
                                         self->cfg->sig_max_age_s * REPLAY_MEMORY_FACTOR)
                        : NULL;
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        if (rep) {
            freeReplyObject(rep);
        }
        intake_error(reply, 503, "unavailable", NULL,
                     "signatures cannot be checked for replay right now; retry");
        reply->retry_after_s = RETRY_AFTER_S;
        return -1;
    }
    bool fresh = rep->type == REDIS_REPLY_STATUS;
    freeReplyObject(rep);
    return fresh ? 0 : refuse(self, reply, "this nonce was already used (replay)");
}

int intake_auth_rate(intake_auth_t *self, const intake_client_t *client, intake_reply_t *reply)
{
    int over = wasl_clients_rate(intake_auth_redis(self), client, (long long)time(NULL));
    if (over < 0) {
        wasl_counter_inc(self->rl_unavailable);
        return 0;
    }
    if (over == 0) {
        return 0;
    }
    wasl_counter_inc(self->limited);
    intake_error(reply, 429, "rate_limited", NULL,
                 "more than %ld requests per second from this client", client->rate_per_s);
    reply->retry_after_s = 1;
    return -1;
}

bool intake_auth_ready(intake_auth_t *self, char *why, size_t cap)
{
    bool loaded = wasl_clients_loaded(self->clients);
    if (!loaded) {
        snprintf(why, cap, "clients not loaded");
    }
    return loaded;
}
