/* auth — intake's clients: bearer tokens (stored as SHA-256), HMAC signatures with replay
 * protection, scopes, and per-client rate limits in Redis. */
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

#define SHA256_BYTES 32
/* A nonce is remembered for longer than a timestamp stays fresh either way (±max age). */
#define REPLAY_MEMORY_FACTOR 2
/* The first line of the canonical request: names the scheme so that a v2 cannot collide. */
#define SIG_SCHEME "WASL-HMAC-SHA256"
/* Digits of a signature's timestamp: unix seconds until the year 33658, far from overflow. */
#define SIG_T_DIGITS_MAX     12
#define RETRY_AFTER_S        2
#define REFRESH_WAIT_STEP_MS 100

typedef struct {
    intake_client_t pub;
    bool has_token;
    unsigned char token_sha256[SHA256_BYTES];
    char *hmac_secret; /* NULL when the client signs nothing */
} client_entry_t;

typedef struct {
    client_entry_t *entries;
    size_t n;
} client_set_t;

struct intake_auth {
    const intake_config_t *cfg;
    pthread_rwlock_t lock;
    client_set_t set;
    bool loaded;
    pthread_t refresher;
    bool refresher_running;
    atomic_bool stopping;
    pthread_key_t redis_key;
    wasl_counter_t *refused;
    wasl_counter_t *rl_unavailable;
    wasl_counter_t *limited;
};

static const char *const scope_words[] = {"reports",      "calls",  "sms",   "email",
                                          "tickets:read", "agents", "cases", "tickets:read:all"};

long intake_scopes_parse(const char *list)
{
    long bits = 0;
    char *copy = strdup(list ? list : "");
    if (!copy) {
        return -1;
    }
    char *save = NULL;
    for (char *w = strtok_r(copy, ", {}", &save); w; w = strtok_r(NULL, ", {}", &save)) {
        if (strcmp(w, "*") == 0) {
            bits = INTAKE_SCOPE_ALL;
            continue;
        }
        size_t i;
        for (i = 0; i < sizeof scope_words / sizeof scope_words[0]; i++) {
            if (strcmp(w, scope_words[i]) == 0) {
                bits |= 1L << i;
                break;
            }
        }
        if (i == sizeof scope_words / sizeof scope_words[0]) {
            free(copy);
            return -1;
        }
    }
    free(copy);
    if (bits & INTAKE_SCOPE_TICKETS_READ_ALL) {
        bits |= INTAKE_SCOPE_TICKETS_READ; /* the wider read includes the narrow one */
    }
    return bits;
}

static void set_free(client_set_t *set)
{
    for (size_t i = 0; i < set->n; i++) {
        if (set->entries[i].hmac_secret) {
            sodium_memzero(set->entries[i].hmac_secret, strlen(set->entries[i].hmac_secret));
            free(set->entries[i].hmac_secret);
        }
    }
    free(set->entries);
    set->entries = NULL;
    set->n = 0;
}

/* Reads the enabled clients; returns 0 and swaps them in, or -1 leaving the old set. */
static int load_clients(intake_auth_t *self, wasl_pg_t *pg)
{
    PGresult *res = wasl_pg_query(pg,
                                  "SELECT id, scopes::text, token_sha256, hmac_secret, rate_per_s, "
                                  "role, trusted_ani, array_to_string(act_as, ',') "
                                  "FROM clients WHERE enabled ORDER BY id",
                                  0, NULL);
    if (!res) {
        return -1;
    }
    client_set_t set = {0};
    int n = PQntuples(res);
    set.entries = calloc((size_t)(n ? n : 1), sizeof *set.entries);
    if (!set.entries) {
        PQclear(res);
        return -1;
    }
    for (int r = 0; r < n; r++) {
        client_entry_t *e = &set.entries[set.n];
        snprintf(e->pub.id, sizeof e->pub.id, "%s", PQgetvalue(res, r, 0));
        long scopes = intake_scopes_parse(PQgetvalue(res, r, 1));
        if (scopes < 0) {
            wasl_warn("intake: client has an unknown scope; ignored", "{s:s, s:s}", "client",
                      e->pub.id, "scopes", PQgetvalue(res, r, 1));
            continue;
        }
        e->pub.scopes = (unsigned)scopes;
        e->pub.rate_per_s = strtol(PQgetvalue(res, r, 4), NULL, 10);
        e->pub.role = wasl_authz_role_parse(PQgetisnull(res, r, 5) ? NULL : PQgetvalue(res, r, 5));
        e->pub.trusted_ani = PQgetvalue(res, r, 6)[0] == 't';
        if ((size_t)PQgetlength(res, r, 7) >= sizeof e->pub.act_as) {
            wasl_warn("intake: client's act_as list is too long; ignored", "{s:s}", "client",
                      e->pub.id);
            continue;
        }
        memcpy(e->pub.act_as, PQgetvalue(res, r, 7), (size_t)PQgetlength(res, r, 7) + 1);
        if (!PQgetisnull(res, r, 2)) {
            e->has_token = sodium_hex2bin(e->token_sha256, sizeof e->token_sha256,
                                          PQgetvalue(res, r, 2), 64, NULL, NULL, NULL) == 0;
        }
        if (!PQgetisnull(res, r, 3)) {
            e->hmac_secret = strdup(PQgetvalue(res, r, 3));
        }
        set.n++;
    }
    PQclear(res);
    pthread_rwlock_wrlock(&self->lock);
    client_set_t old = self->set;
    self->set = set;
    bool first = !self->loaded;
    self->loaded = true;
    pthread_rwlock_unlock(&self->lock);
    set_free(&old);
    if (first) {
        wasl_info("intake: clients loaded", "{s:i}", "clients", (int)set.n);
    }
    return 0;
}

static void *refresher_thread(void *arg)
{
    intake_auth_t *self = arg;
    wasl_pg_t *pg = wasl_pg_new(self->cfg->pg_url);
    while (pg && !atomic_load(&self->stopping)) {
        /* Until the first load succeeds, retry quickly; then at the configured period. */
        load_clients(self, pg);
        pthread_rwlock_rdlock(&self->lock);
        bool loaded = self->loaded;
        pthread_rwlock_unlock(&self->lock);
        long wait_ms = loaded ? self->cfg->clients_refresh_s * 1000 : 500;
        for (long waited = 0; waited < wait_ms && !atomic_load(&self->stopping);
             waited += REFRESH_WAIT_STEP_MS) {
            struct timespec ts = {0, REFRESH_WAIT_STEP_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    wasl_pg_destroy(&pg);
    return NULL;
}

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
    pthread_rwlock_init(&self->lock, NULL);
    atomic_init(&self->stopping, false);
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
    if (!cfg->pg_url || !*cfg->pg_url) {
        return self; /* clients come from intake_auth_add_client() */
    }
    if (pthread_create(&self->refresher, NULL, refresher_thread, self) != 0) {
        intake_auth_destroy(&self);
        return NULL;
    }
    self->refresher_running = true;
    return self;
}

int intake_auth_add_client(intake_auth_t *self, const intake_client_t *client, const char *token,
                           const char *hmac_secret)
{
    char *secret = hmac_secret ? strdup(hmac_secret) : NULL;
    if (hmac_secret && !secret) {
        return -1;
    }
    pthread_rwlock_wrlock(&self->lock);
    client_entry_t *grown = realloc(self->set.entries, (self->set.n + 1) * sizeof *grown);
    if (!grown) {
        pthread_rwlock_unlock(&self->lock);
        free(secret);
        return -1;
    }
    self->set.entries = grown;
    client_entry_t *e = &grown[self->set.n++];
    memset(e, 0, sizeof *e);
    e->pub = *client;
    e->hmac_secret = secret;
    if (token) {
        crypto_hash_sha256(e->token_sha256, (const unsigned char *)token, strlen(token));
        e->has_token = true;
    }
    self->loaded = true;
    pthread_rwlock_unlock(&self->lock);
    return 0;
}

void intake_auth_destroy(intake_auth_t **self_p)
{
    assert(self_p);
    intake_auth_t *self = *self_p;
    if (!self) {
        return;
    }
    atomic_store(&self->stopping, true);
    if (self->refresher_running) {
        pthread_join(self->refresher, NULL);
    }
    /* The main thread's own Redis handle, if it made one; other threads' go with them. */
    wasl_redis_t *r = pthread_getspecific(self->redis_key);
    redis_free(r);
    pthread_key_delete(self->redis_key);
    set_free(&self->set);
    pthread_rwlock_destroy(&self->lock);
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

/* Bearer: compares the token's SHA-256 with every client's, in constant time per entry. */
static int check_bearer(intake_auth_t *self, const char *token, intake_client_t *client,
                        intake_reply_t *reply)
{
    unsigned char digest[SHA256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)token, strlen(token));
    int found = -1;
    pthread_rwlock_rdlock(&self->lock);
    for (size_t i = 0; i < self->set.n; i++) {
        const client_entry_t *e = &self->set.entries[i];
        if (e->has_token && sodium_memcmp(digest, e->token_sha256, SHA256_BYTES) == 0) {
            found = (int)i;
            *client = e->pub;
        }
    }
    pthread_rwlock_unlock(&self->lock);
    return found >= 0 ? 0 : refuse(self, reply, "unknown bearer token");
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
    bool signer = false;
    pthread_rwlock_rdlock(&self->lock);
    for (size_t i = 0; i < self->set.n && !signer; i++) {
        const client_entry_t *e = &self->set.entries[i];
        signer = e->hmac_secret && (!cred->client_id || strcmp(cred->client_id, e->pub.id) == 0);
    }
    pthread_rwlock_unlock(&self->lock);
    return signer ? 0 : refuse(self, reply, "no such client signs requests");
}

/* 503 unless the clients were loaded at least once. */
static int require_loaded(intake_auth_t *self, intake_reply_t *reply)
{
    pthread_rwlock_rdlock(&self->lock);
    bool loaded = self->loaded;
    pthread_rwlock_unlock(&self->lock);
    if (!loaded) {
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
    int found = -1;
    pthread_rwlock_rdlock(&self->lock);
    for (size_t i = 0; i < self->set.n; i++) {
        const client_entry_t *e = &self->set.entries[i];
        if (!e->hmac_secret || (cred->client_id && strcmp(cred->client_id, e->pub.id) != 0)) {
            continue;
        }
        unsigned char expect[INTAKE_MAC_BYTES];
        intake_signature_mac(e->hmac_secret, cred->method, cred->path, cred->query, sig.t,
                             sig.nonce, body, len, expect);
        if (sodium_memcmp(expect, sig.mac, INTAKE_MAC_BYTES) == 0) {
            found = (int)i;
            *client = e->pub;
        }
    }
    pthread_rwlock_unlock(&self->lock);
    if (found < 0) {
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

/* Increments the client's counter for this second; expires with the window. */
static const char *const rate_script = "local n = redis.call('INCR', KEYS[1]) "
                                       "if n == 1 then redis.call('EXPIRE', KEYS[1], 2) end "
                                       "return n";

int intake_auth_rate(intake_auth_t *self, const intake_client_t *client, intake_reply_t *reply)
{
    wasl_redis_t *r = intake_auth_redis(self);
    redisReply *rep = r ? wasl_redis_cmd(r, "EVAL %s 1 wasl:rl:%s:%lld", rate_script, client->id,
                                         (long long)time(NULL))
                        : NULL;
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        if (rep) {
            freeReplyObject(rep);
        }
        wasl_counter_inc(self->rl_unavailable);
        return 0;
    }
    long long n = rep->integer;
    freeReplyObject(rep);
    if (n <= client->rate_per_s) {
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
    pthread_rwlock_rdlock(&self->lock);
    bool loaded = self->loaded;
    pthread_rwlock_unlock(&self->lock);
    if (!loaded) {
        snprintf(why, cap, "clients not loaded");
    }
    return loaded;
}
