/* lookup — wasl-caselookup's work: verify the caller against the case's parties, answer with
 * the case's status and next hearing (and, for an automatic answer, the party's contact on
 * file), count failures and lock out, cache, audit every lookup before answering, and answer a
 * resent request once (dedup.h). */
#ifndef WASL_CASELOOKUP_LOOKUP_H
#define WASL_CASELOOKUP_LOOKUP_H

#include "wasl_hijri.h"
#include "wasl_proto.h"
#include "wasl_zmq.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CASELOOKUP_ADMIN_PORT 9105

typedef struct {
    const char *pg_url;
    const char *redis_url;
    const char *bus;
    long redis_timeout_ms;
    bool cache;       /* false: every lookup reads PostgreSQL (benchmarks, debugging) */
    long cache_ttl_s; /* how long a case stays in Redis (changes also drop it) */
    /* Failure budgets within window_s, each locked for lock_s once spent (lookup.c). */
    long max_failures;        /* per verifier (national ID or phone), across every channel */
    long line_max_failures;   /* per caller line (a trusted ANI) */
    long client_max_failures; /* per asking client, when no caller line is known */
    long case_max_failures;   /* per case, all callers together */
    long window_s;
    long lock_s;
    long batch_max; /* most requests answered per audit commit */
    int digits;     /* wasl_digits_t for Arabic text and speech */
} lookup_config_t;

/* The case as cached: what a reply needs plus keyed hashes (wasl_pii_hash) of the parties'
 * verifiers. */
typedef struct lookup_case lookup_case_t;

/* ---- pure parts (unit-tested without a database) ---------------------------------------- */

/* Parses the cached/queried JSON of a case (see lookup.c, case_sql). NULL when malformed. */
lookup_case_t *lookup_case_parse(const char *json);
/* Drops one reference (the case is freed with the last) and NULLs the caller's pointer. */
void lookup_case_destroy(lookup_case_t **self_p);
/* One more reference to `c` (returned), dropped by lookup_case_destroy. Not thread-safe: one
 * thread holds a case and its references. */
lookup_case_t *lookup_case_ref(lookup_case_t *c);
/* True when `verifier_hash_hex` (64 hex chars, lookup_verifier_hash) is one of the parties'
 * verifiers. */
bool lookup_case_has_verifier(const lookup_case_t *c, const char *verifier_hash_hex);
/* The keyed hash of "kind:value" (wasl_pii_hash: the PII key must be set); out needs 65 bytes. */
void lookup_verifier_hash(const char *kind, const char *value, char out[65]);
/* Replaces the "verifiers" of a case row as PostgreSQL gives it ("kind:value" strings) by their
 * keyed hashes, in place. Returns 0, or -1 when a verifier is malformed or on allocation
 * failure (the row is then not to be used). */
int lookup_case_key_verifiers(json_t *doc);

/* Fills a found reply `r` (fields owned by the message) from the case at time `now_s`.
 * Returns 0, or -1 on allocation failure or a date outside the Umm al-Qura table (logged;
 * the caller answers `error`). */
int lookup_render_found(const lookup_case_t *c, int64_t now_s, wasl_digits_t digits,
                        wasl_msg_case_lookup_reply_t *r);
/* Fills the one reply given for an unknown case and for a case of someone else, identical in
 * every byte for the same request_id. Returns 0 or -1 (allocation). */
int lookup_render_denied(wasl_msg_case_lookup_reply_t *r);
int lookup_render_locked(wasl_msg_case_lookup_reply_t *r, long retry_after_s);
/* Why a lookup is denied before the budgets judge it, or NULL when the verifier (its keyed
 * hash `vhash`) is a party of case `c`: "bad_request" when the request is not `well_formed`
 * (verifier kind or case number), "no_case" when there is no such case (`c` NULL),
 * "not_party" otherwise. Static strings, for the audit. */
const char *lookup_denial_reason(bool well_formed, const lookup_case_t *c, const char *vhash);
/* Fills the reply for a verdict the budgets let through: the case when `reason` is NULL, else
 * the one denial, whatever the reason and whatever `c` (which may be the case of someone
 * else). Returns 0 or -1 as the render functions above. */
int lookup_render_verdict(const char *reason, const lookup_case_t *c, int64_t now_s,
                          wasl_digits_t digits, wasl_msg_case_lookup_reply_t *r);

/* ---- the daemon ------------------------------------------------------------------------- */
typedef struct lookup lookup_t;

/* Connects to the bus's worker side (cfg->bus) and prepares PostgreSQL and Redis lazily.
 * `cfg` and `zmq` are borrowed. NULL (logged) on failure. */
lookup_t *lookup_new(const lookup_config_t *cfg, wasl_zmq_t *zmq);
void lookup_destroy(lookup_t **self_p);
/* Serves until a stop signal. */
void lookup_run(lookup_t *self);
/* wasl_admin readiness: PostgreSQL and Redis both answered recently. */
bool lookup_ready(void *self, char *why, size_t cap);

#endif
