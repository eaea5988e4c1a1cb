/* wasl_clients — the clients table as both HTTP edges read it (intake for machines, the desk for
 * integrations acting for agents): loaded and re-read in a thread of its own, bearer tokens
 * checked constant-time against their stored SHA-256, scopes, the binding (role, act_as) and the
 * per-client rate limit in Redis. What only intake uses (HMAC signatures, nonces, query tokens)
 * stays in services/intake/auth.c on top of this. docs/architecture.md, "Security". */
#ifndef WASL_CLIENTS_H
#define WASL_CLIENTS_H

#include "wasl_authz.h"
#include "wasl_redis.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    WASL_SCOPE_REPORTS = 1 << 0,
    WASL_SCOPE_CALLS = 1 << 1,
    WASL_SCOPE_SMS = 1 << 2,
    WASL_SCOPE_EMAIL = 1 << 3,
    WASL_SCOPE_TICKETS_READ = 1 << 4,
    WASL_SCOPE_AGENTS = 1 << 5, /* the agent API, on the desk since issue 15 */
    WASL_SCOPE_CASES = 1 << 6,
    /* GET /v1/tickets/{ref} of any client's ticket (a desk, an ops tool); `tickets:read` alone
     * reads only the tickets the client itself created. Implies WASL_SCOPE_TICKETS_READ. */
    WASL_SCOPE_TICKETS_READ_ALL = 1 << 7,
    WASL_SCOPE_ALL = 0x7fffffff
} wasl_scope_t;

/* The scope words of the clients table, in bit order; "*" means all. */
#define WASL_SCOPE_WORDS "reports,calls,sms,email,tickets:read,agents,cases,tickets:read:all"

/* Room for a client's act_as list, comma-joined (the clients table bounds it to 2000 bytes). */
#define WASL_CLIENT_ACT_AS_MAX 2048
/* clients.id is ^[a-z0-9][a-z0-9_-]{0,63}$. */
#define WASL_CLIENT_ID_BUF 65

/* A client as a request sees it: a copy, so a refresh of the table never changes it under the
 * request. */
typedef struct {
    char id[WASL_CLIENT_ID_BUF];
    unsigned scopes;
    long rate_per_s;
    wasl_authz_role_t role; /* the widest person-role it carries (clients.role) */
    bool trusted_ani;       /* a telephony client whose caller numbers come from the network */
    char act_as[WASL_CLIENT_ACT_AS_MAX]; /* agents it may act for, comma-joined ("" = none) */
} wasl_client_t;

typedef struct wasl_clients wasl_clients_t;

/* What a reader of the table loads: the desk reads no HMAC secret (its database role cannot:
 * proto/grants.sql), intake does. */
typedef enum {
    WASL_CLIENTS_TOKENS = 0,      /* bearer tokens only */
    WASL_CLIENTS_SECRETS = 1 << 0 /* also clients.hmac_secret and trusted_ani */
} wasl_clients_flags_t;

/* Loads the enabled clients of the database at `pg_url` (copied) and re-reads them every
 * `refresh_s` seconds in a thread of its own (every 0.5 s until the first load succeeds). With
 * pg_url NULL or "" no table is read and no thread started: clients come from wasl_clients_add
 * (the fuzzer, unit tests). `who` (a static string: "intake", "desk") prefixes the log lines.
 * NULL on allocation or thread failure; a database that is down is not a failure
 * (wasl_clients_loaded stays false until it answers). */
wasl_clients_t *wasl_clients_new(const char *pg_url, long refresh_s, unsigned flags,
                                 const char *who);
/* Stops the thread and frees everything (secrets zeroed). Safe on NULL and twice. */
void wasl_clients_destroy(wasl_clients_t **self_p);

/* Adds a client held in memory only (with pg_url "" there is no table). `token` and
 * `hmac_secret` (copied) may be NULL. Marks the clients loaded. 0, or -1 on allocation
 * failure. A later refresh from a table replaces it. */
int wasl_clients_add(wasl_clients_t *self, const wasl_client_t *client, const char *token,
                     const char *hmac_secret);

/* True once the clients were loaded at least once. */
bool wasl_clients_loaded(wasl_clients_t *self);

/* The client whose bearer token is `token`: its SHA-256 is compared with every client's in
 * constant time (no early exit), so the time taken says nothing about which bytes matched.
 * Returns true with *out filled, false (out untouched) for an unknown token. */
bool wasl_clients_bearer(wasl_clients_t *self, const char *token, wasl_client_t *out);

/* True when some client signs requests (has an HMAC secret) and, when `client_id` is not NULL,
 * that client is `client_id`. */
bool wasl_clients_signer(wasl_clients_t *self, const char *client_id);

/* Answers whether a request signed with `secret` is the one presented (the caller computes and
 * compares the MAC, constant-time). */
typedef bool(wasl_clients_mac_fn)(const char *secret, void *arg);

/* Tries every signing client (only `client_id` when not NULL) with `matches`, all of them
 * whatever the answers; true with *out the (last) matching client, false when none matched.
 * `matches` runs under the table's read lock and must not call back into `self`. */
bool wasl_clients_find_signer(wasl_clients_t *self, const char *client_id,
                              wasl_clients_mac_fn *matches, void *arg, wasl_client_t *out);

/* Parses a comma-separated scope list ("reports,sms", "{reports,sms}" as PostgreSQL prints an
 * array, or "*") into bits; -1 on an unknown word. "tickets:read:all" sets tickets:read too. */
long wasl_scopes_parse(const char *list);

/* Counts one request of `client` at unix second `now_s` against its per-second limit
 * (client->rate_per_s) in Redis under "wasl:rl:<client id>:<second>" — the same key on every
 * edge, so a client's budget is one whichever edge it calls. Returns 0 within the limit, 1 over
 * it (the caller answers 429 with Retry-After: 1), -1 when Redis cannot answer (the caller lets
 * the request through and counts it: availability over throttling). */
int wasl_clients_rate(wasl_redis_t *redis, const wasl_client_t *client, long long now_s);

#endif
