/* auth — intake's clients: bearer tokens (stored as SHA-256), HMAC signatures with replay
 * protection, scopes, and per-client rate limits in Redis. */
#ifndef WASL_INTAKE_AUTH_H
#define WASL_INTAKE_AUTH_H

#include "intake.h"
#include "wasl_authz.h"

typedef enum {
    INTAKE_SCOPE_REPORTS = 1 << 0,
    INTAKE_SCOPE_CALLS = 1 << 1,
    INTAKE_SCOPE_SMS = 1 << 2,
    INTAKE_SCOPE_EMAIL = 1 << 3,
    INTAKE_SCOPE_TICKETS_READ = 1 << 4,
    INTAKE_SCOPE_AGENTS = 1 << 5,
    INTAKE_SCOPE_CASES = 1 << 6,
    /* GET /v1/tickets/{ref} of any client's ticket (a desk, an ops tool); `tickets:read` alone
     * reads only the tickets the client itself created. Implies INTAKE_SCOPE_TICKETS_READ. */
    INTAKE_SCOPE_TICKETS_READ_ALL = 1 << 7,
    INTAKE_SCOPE_ALL = 0x7fffffff
} intake_scope_t;

/* The scope words of the clients table, in bit order; "*" means all. */
#define INTAKE_SCOPE_WORDS "reports,calls,sms,email,tickets:read,agents,cases,tickets:read:all"

/* Room for a client's act_as list, comma-joined (the clients table bounds it to 2000 bytes). */
#define INTAKE_ACT_AS_MAX 2048

/* A client as a request sees it: a copy, so a refresh of the table never changes it under the
 * request. */
typedef struct {
    char id[65];
    unsigned scopes;
    long rate_per_s;
    wasl_authz_role_t role; /* the widest person-role it carries (clients.role) */
    bool trusted_ani;       /* a telephony client whose caller numbers come from the network */
    char act_as[INTAKE_ACT_AS_MAX]; /* agents it may act for, comma-joined ("" = none) */
} intake_client_t;

typedef struct intake_auth intake_auth_t;

/* Loads the clients table and re-reads it every cfg->clients_refresh_s in a thread of its own.
 * `cfg` is borrowed. NULL on allocation failure; a database that is down is not a failure
 * (requests get 503 until the first load). */
intake_auth_t *intake_auth_new(const intake_config_t *cfg);
void intake_auth_destroy(intake_auth_t **self_p);

/* Authenticates a request: `authorization` (Bearer), or `signature` (X-Wasl-Signature) with
 * optional `client_id` (X-Wasl-Client), or `query_token` where the endpoint allows one. Returns
 * 0 and fills *client, or -1 with reply set (401 unauthorized; 503 when the credentials cannot
 * be checked). Comparisons of secrets are constant-time. */
int intake_auth_check(intake_auth_t *self, const char *authorization, const char *signature,
                      const char *client_id, const char *query_token, const char *body, size_t len,
                      intake_client_t *client, intake_reply_t *reply);

/* Counts one request against the client's per-second limit in Redis. Returns 0, or -1 with a
 * 429 and Retry-After in reply. When Redis is unreachable the request is let through (and
 * counted in wasl_intake_ratelimit_unavailable_total): availability over throttling. */
int intake_auth_rate(intake_auth_t *self, const intake_client_t *client, intake_reply_t *reply);

/* Parses a comma-separated scope list ("reports,sms" or "*") into bits; -1 on an unknown word.
 * "tickets:read:all" sets the tickets:read bit too. */
long intake_scopes_parse(const char *list);

/* True once the clients were loaded at least once. */
bool intake_auth_ready(intake_auth_t *self, char *why, size_t cap);

/* The calling thread's Redis connection (made on first use; closed when the thread ends). */
struct wasl_redis *intake_auth_redis(intake_auth_t *self);

#endif
