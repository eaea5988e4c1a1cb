/* wasl_clients — the clients table as both HTTP edges read it (see wasl_clients.h). */
#include "wasl_clients.h"
#include "wasl_log.h"
#include "wasl_pg.h"

#include <assert.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHA256_BYTES 32
/* Until the first load succeeds the table is retried this often (requests get 503 meanwhile). */
#define FIRST_LOAD_RETRY_MS  500
#define REFRESH_WAIT_STEP_MS 100

typedef struct {
    wasl_client_t pub;
    bool has_token;
    unsigned char token_sha256[SHA256_BYTES];
    char *hmac_secret; /* NULL when the client signs nothing */
} client_entry_t;

typedef struct {
    client_entry_t *entries;
    size_t n;
} client_set_t;

struct wasl_clients {
    char *pg_url;
    long refresh_s;
    unsigned flags;
    const char *who;
    pthread_rwlock_t lock;
    client_set_t set;
    bool loaded;
    pthread_t refresher;
    bool refresher_running;
    atomic_bool stopping;
};

static const char *const scope_words[] = {"reports",      "calls",  "sms",   "email",
                                          "tickets:read", "agents", "cases", "tickets:read:all"};

long wasl_scopes_parse(const char *list)
{
    long bits = 0;
    char *copy = strdup(list ? list : "");
    if (!copy) {
        return -1;
    }
    char *save = NULL;
    for (char *w = strtok_r(copy, ", {}", &save); w; w = strtok_r(NULL, ", {}", &save)) {
        if (strcmp(w, "*") == 0) {
            bits = WASL_SCOPE_ALL;
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
    if (bits & WASL_SCOPE_TICKETS_READ_ALL) {
        bits |= WASL_SCOPE_TICKETS_READ; /* the wider read includes the narrow one */
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

/* The columns both readings return, in this order (checked with wasl_pg_arity). The desk's role
 * may read no secret: its statement returns NULL and false in their place. */
enum { C_ID, C_SCOPES, C_TOKEN, C_SECRET, C_RATE, C_ROLE, C_TRUSTED_ANI, C_ACT_AS, C_NCOLS };
// clang-format off
static const char LOAD_WITH_SECRETS[] =
    "SELECT id, scopes::text, token_sha256, hmac_secret, rate_per_s,"
    "       role, trusted_ani, array_to_string(act_as, ',')"
    "  FROM clients"
    " WHERE enabled"
    " ORDER BY id";
static const char LOAD_TOKENS[] =
    "SELECT id, scopes::text, token_sha256, NULL::text, rate_per_s,"
    "       role, false, array_to_string(act_as, ',')"
    "  FROM clients"
    " WHERE enabled"
    "   AND token_sha256 IS NOT NULL"
    " ORDER BY id";
// clang-format on

/* One row into `e`: 0, or -1 when the row is unusable (logged; the client is left out). */
static int read_entry(const wasl_clients_t *self, PGresult *res, int r, client_entry_t *e)
{
    snprintf(e->pub.id, sizeof e->pub.id, "%s", PQgetvalue(res, r, C_ID));
    long scopes = wasl_scopes_parse(PQgetvalue(res, r, C_SCOPES));
    if (scopes < 0) {
        wasl_warn("clients: a client has an unknown scope; ignored", "{s:s, s:s, s:s}", "edge",
                  self->who, "client", e->pub.id, "scopes", PQgetvalue(res, r, C_SCOPES));
        return -1;
    }
    if ((size_t)PQgetlength(res, r, C_ACT_AS) >= sizeof e->pub.act_as) {
        wasl_warn("clients: a client's act_as list is too long; ignored", "{s:s, s:s}", "edge",
                  self->who, "client", e->pub.id);
        return -1;
    }
    e->pub.scopes = (unsigned)scopes;
    e->pub.rate_per_s = strtol(PQgetvalue(res, r, C_RATE), NULL, 10);
    e->pub.role =
        wasl_authz_role_parse(PQgetisnull(res, r, C_ROLE) ? NULL : PQgetvalue(res, r, C_ROLE));
    e->pub.trusted_ani = PQgetvalue(res, r, C_TRUSTED_ANI)[0] == 't';
    memcpy(e->pub.act_as, PQgetvalue(res, r, C_ACT_AS), (size_t)PQgetlength(res, r, C_ACT_AS) + 1);
    if (!PQgetisnull(res, r, C_TOKEN)) {
        e->has_token = sodium_hex2bin(e->token_sha256, sizeof e->token_sha256,
                                      PQgetvalue(res, r, C_TOKEN), 64, NULL, NULL, NULL) == 0;
    }
    if (!PQgetisnull(res, r, C_SECRET) &&
        !(e->hmac_secret = strdup(PQgetvalue(res, r, C_SECRET)))) {
        return -1;
    }
    return 0;
}

/* Reads the enabled clients; returns 0 and swaps them in, or -1 leaving the old set. */
static int load_clients(wasl_clients_t *self, wasl_pg_t *pg)
{
    PGresult *res = wasl_pg_query(
        pg, (self->flags & WASL_CLIENTS_SECRETS) ? LOAD_WITH_SECRETS : LOAD_TOKENS, 0, NULL);
    if (!wasl_pg_arity(res, C_NCOLS, "clients")) {
        PQclear(res);
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
        if (read_entry(self, res, r, e) == 0) {
            set.n++;
        } else {
            free(e->hmac_secret);
            memset(e, 0, sizeof *e);
        }
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
        wasl_info("clients loaded", "{s:s, s:i}", "edge", self->who, "clients", (int)set.n);
    }
    return 0;
}

static void *refresher_thread(void *arg)
{
    wasl_clients_t *self = arg;
    wasl_pg_t *pg = wasl_pg_new(self->pg_url);
    while (pg && !atomic_load(&self->stopping)) {
        load_clients(self, pg);
        long wait_ms = wasl_clients_loaded(self) ? self->refresh_s * 1000 : FIRST_LOAD_RETRY_MS;
        for (long waited = 0; waited < wait_ms && !atomic_load(&self->stopping);
             waited += REFRESH_WAIT_STEP_MS) {
            struct timespec ts = {0, REFRESH_WAIT_STEP_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    wasl_pg_destroy(&pg);
    return NULL;
}

wasl_clients_t *wasl_clients_new(const char *pg_url, long refresh_s, unsigned flags,
                                 const char *who)
{
    if (sodium_init() < 0) {
        return NULL;
    }
    wasl_clients_t *self = calloc(1, sizeof *self);
    if (!self || !(self->pg_url = strdup(pg_url ? pg_url : ""))) {
        free(self);
        return NULL;
    }
    self->refresh_s = refresh_s > 0 ? refresh_s : 1;
    self->flags = flags;
    self->who = who ? who : "";
    pthread_rwlock_init(&self->lock, NULL);
    atomic_init(&self->stopping, false);
    if (!*self->pg_url) {
        return self; /* clients come from wasl_clients_add() */
    }
    if (pthread_create(&self->refresher, NULL, refresher_thread, self) != 0) {
        wasl_clients_destroy(&self);
        return NULL;
    }
    self->refresher_running = true;
    return self;
}

void wasl_clients_destroy(wasl_clients_t **self_p)
{
    assert(self_p);
    wasl_clients_t *self = *self_p;
    if (!self) {
        return;
    }
    atomic_store(&self->stopping, true);
    if (self->refresher_running) {
        pthread_join(self->refresher, NULL);
    }
    set_free(&self->set);
    pthread_rwlock_destroy(&self->lock);
    free(self->pg_url);
    free(self);
    *self_p = NULL;
}

int wasl_clients_add(wasl_clients_t *self, const wasl_client_t *client, const char *token,
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

bool wasl_clients_loaded(wasl_clients_t *self)
{
    pthread_rwlock_rdlock(&self->lock);
    bool loaded = self->loaded;
    pthread_rwlock_unlock(&self->lock);
    return loaded;
}

bool wasl_clients_bearer(wasl_clients_t *self, const char *token, wasl_client_t *out)
{
    unsigned char digest[SHA256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)token, strlen(token));
    bool found = false;
    pthread_rwlock_rdlock(&self->lock);
    for (size_t i = 0; i < self->set.n; i++) {
        const client_entry_t *e = &self->set.entries[i];
        if (e->has_token && sodium_memcmp(digest, e->token_sha256, SHA256_BYTES) == 0) {
            found = true;
            *out = e->pub;
        }
    }
    pthread_rwlock_unlock(&self->lock);
    sodium_memzero(digest, sizeof digest);
    return found;
}

bool wasl_clients_signer(wasl_clients_t *self, const char *client_id)
{
    bool signer = false;
    pthread_rwlock_rdlock(&self->lock);
    for (size_t i = 0; i < self->set.n && !signer; i++) {
        const client_entry_t *e = &self->set.entries[i];
        signer = e->hmac_secret && (!client_id || strcmp(client_id, e->pub.id) == 0);
    }
    pthread_rwlock_unlock(&self->lock);
    return signer;
}

bool wasl_clients_find_signer(wasl_clients_t *self, const char *client_id,
                              wasl_clients_mac_fn *matches, void *arg, wasl_client_t *out)
{
    bool found = false;
    pthread_rwlock_rdlock(&self->lock);
    for (size_t i = 0; i < self->set.n; i++) {
        const client_entry_t *e = &self->set.entries[i];
        if (!e->hmac_secret || (client_id && strcmp(client_id, e->pub.id) != 0)) {
            continue;
        }
        if (matches(e->hmac_secret, arg)) {
            found = true;
            *out = e->pub;
        }
    }
    pthread_rwlock_unlock(&self->lock);
    return found;
}

/* Increments the client's counter for this second; expires with the window. */
static const char *const rate_script = "local n = redis.call('INCR', KEYS[1]) "
                                       "if n == 1 then redis.call('EXPIRE', KEYS[1], 2) end "
                                       "return n";

int wasl_clients_rate(wasl_redis_t *redis, const wasl_client_t *client, long long now_s)
{
    redisReply *rep =
        redis ? wasl_redis_cmd(redis, "EVAL %s 1 wasl:rl:%s:%lld", rate_script, client->id, now_s)
              : NULL;
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        if (rep) {
            freeReplyObject(rep);
        }
        return -1;
    }
    long long n = rep->integer;
    freeReplyObject(rep);
    return n <= client->rate_per_s ? 0 : 1;
}
