/* auth — intake's clients: bearer tokens and scopes (the clients table of common/wasl_clients,
 * shared with the desk), and what only machines use — HMAC signatures with replay protection,
 * query tokens — and the per-client rate limit's 429. */
#ifndef WASL_INTAKE_AUTH_H
#define WASL_INTAKE_AUTH_H

#include "intake.h"
#include "wasl_authz.h"
#include "wasl_clients.h"

/* The scopes and a client as a request sees it are the clients table's (common/wasl_clients),
 * under intake's names. */
typedef enum {
    INTAKE_SCOPE_REPORTS = WASL_SCOPE_REPORTS,
    INTAKE_SCOPE_CALLS = WASL_SCOPE_CALLS,
    INTAKE_SCOPE_SMS = WASL_SCOPE_SMS,
    INTAKE_SCOPE_EMAIL = WASL_SCOPE_EMAIL,
    INTAKE_SCOPE_TICKETS_READ = WASL_SCOPE_TICKETS_READ,
    INTAKE_SCOPE_CASES = WASL_SCOPE_CASES,
    INTAKE_SCOPE_TICKETS_READ_ALL = WASL_SCOPE_TICKETS_READ_ALL,
    INTAKE_SCOPE_ALL = WASL_SCOPE_ALL
} intake_scope_t;

typedef wasl_client_t intake_client_t;

typedef struct intake_auth intake_auth_t;

/* Loads the clients table (with the HMAC secrets) through wasl_clients, re-read every
 * cfg->clients_refresh_s. `cfg` is borrowed. NULL on allocation failure; a database that is down
 * is not a failure (requests get 503 until the first load). */
intake_auth_t *intake_auth_new(const intake_config_t *cfg);
void intake_auth_destroy(intake_auth_t **self_p);

/* Adds a client held in memory only, for an intake without a clients table: with an empty
 * cfg->pg_url intake_auth_new() reads no table, and this is how the fuzzer and unit tests give
 * it clients. `token` and `hmac_secret` (copied) may be NULL. Marks the clients loaded. Returns
 * 0, or -1 on allocation failure. */
int intake_auth_add_client(intake_auth_t *self, const intake_client_t *client, const char *token,
                           const char *hmac_secret);

/* What a request presents to be authenticated; everything borrowed. */
typedef struct {
    const char *authorization; /* Authorization header, or NULL */
    const char *signature;     /* X-Wasl-Signature, or NULL */
    const char *client_id;     /* X-Wasl-Client, or NULL */
    const char *query_token;   /* ?token= where the endpoint allows one, else NULL */
    const char *method;        /* the request's method */
    const char *path;          /* the request target's path exactly as sent (before '?') */
    const char *query;         /* the query exactly as sent, without '?'; "" when none */
} intake_credentials_t;

/* Returned by intake_auth_precheck() for a signed request whose body is still to come. */
#define INTAKE_AUTH_NEEDS_BODY 1

/* Authenticates what can be checked before the body is read (the headers). Bearer tokens and
 * query tokens are checked in full: 0 and *client filled. A signed request (X-Wasl-Signature)
 * has its header syntax, timestamp freshness, nonce and client checked: INTAKE_AUTH_NEEDS_BODY
 * when they pass (finish with intake_auth_check_signed() once the body is read). -1 with reply
 * set otherwise (401 unauthorized; 503 when the credentials cannot be checked yet).
 * Comparisons of secrets are constant-time. */
int intake_auth_precheck(intake_auth_t *self, const intake_credentials_t *cred,
                         intake_client_t *client, intake_reply_t *reply);

/* Verifies a signed request: the HMAC over the canonical request (intake_signature_mac) with
 * its body, then claims the nonce in Redis so that it is never accepted twice within the
 * signature's lifetime. Returns 0 with *client filled, or -1 with reply set (401; 503 when
 * Redis cannot record the nonce). */
int intake_auth_check_signed(intake_auth_t *self, const intake_credentials_t *cred,
                             const char *body, size_t len, intake_client_t *client,
                             intake_reply_t *reply);

/* ---- the signature itself (pure; shared by the server, the tests and the fuzzer) ---- */

#define INTAKE_SIG_HEADER_MAX 512 /* bytes of X-Wasl-Signature */
#define INTAKE_NONCE_MIN      8   /* characters of n= (A-Z a-z 0-9 _ -) */
#define INTAKE_NONCE_MAX      64
#define INTAKE_MAC_BYTES      32

typedef struct {
    long long t;                         /* unix seconds as sent */
    char nonce[INTAKE_NONCE_MAX + 1];    /* n= */
    unsigned char mac[INTAKE_MAC_BYTES]; /* v1= */
} intake_signature_t;

/* Parses "t=<unix seconds>,n=<nonce>,v1=<64 hex>" (any order, spaces after commas allowed,
 * unknown keys ignored so that a v2 can be added). Returns 0, or -1 on a missing, repeated or
 * malformed field (a timestamp that is not 1–12 decimal digits included). */
int intake_signature_parse(const char *header, intake_signature_t *out);

/* True when `t` is within max_age_s of `now` either way; never overflows, whatever t is. */
bool intake_signature_fresh(long long t, long long now, long max_age_s);

/* HMAC-SHA256 with `secret` over the canonical request:
 *   "WASL-HMAC-SHA256\n" METHOD "\n" path "\n" query "\n" t "\n" nonce "\n" hex(SHA-256(body))
 * where path and query are exactly as sent on the request line (query without '?', "" when
 * none) and t is the decimal timestamp as parsed. */
void intake_signature_mac(const char *secret, const char *method, const char *path,
                          const char *query, long long t, const char *nonce, const char *body,
                          size_t len, unsigned char out[INTAKE_MAC_BYTES]);

/* Counts one request against the client's per-second limit in Redis. Returns 0, or -1 with a
 * 429 and Retry-After in reply. When Redis is unreachable the request is let through (and
 * counted in wasl_intake_ratelimit_unavailable_total): availability over throttling. */
int intake_auth_rate(intake_auth_t *self, const intake_client_t *client, intake_reply_t *reply);

/* True once the clients were loaded at least once. */
bool intake_auth_ready(intake_auth_t *self, char *why, size_t cap);

/* The calling thread's Redis connection (made on first use; closed when the thread ends). */
struct wasl_redis *intake_auth_redis(intake_auth_t *self);

#endif
