/* lookup — wasl-caselookup's work: verify the caller against the case's parties, answer with
 * the case's status and next hearing (and, for an automatic answer, the party's contact on
 * file), count failures and lock out, cache, audit every lookup before answering, and answer a
 * resent request once (dedup.h). */
#ifndef WASL_CASELOOKUP_LOOKUP_H
#define WASL_CASELOOKUP_LOOKUP_H

#include "wasl_hijri.h"
#include "wasl_proto.h"
#include "wasl_zmq.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CASELOOKUP_ADMIN_PORT 9105

typedef struct {
    const char *pg_url;
    const char *redis_url;
    const char *bus;
    long redis_timeout_ms;
    bool cache;        /* false: every lookup reads PostgreSQL (benchmarks, debugging) */
    long cache_ttl_s;  /* how long a case stays in Redis (changes also drop it) */
    long max_failures; /* failures per caller within window_s before a lockout */
    long window_s;
    long lock_s;            /* how long a locked-out caller waits */
    long case_max_failures; /* failures on one case (all callers) before the case is locked */
    long batch_max;         /* most requests answered per audit commit */
    int digits;             /* wasl_digits_t for Arabic text and speech */
} lookup_config_t;

/* The case as cached: what a reply needs plus SHA-256 hashes of the parties' verifiers. */
typedef struct lookup_case lookup_case_t;

/* ---- pure parts (unit-tested without a database) ---------------------------------------- */

/* Parses the cached/queried JSON of a case (see lookup.c, case_sql). NULL when malformed. */
lookup_case_t *lookup_case_parse(const char *json);
void lookup_case_destroy(lookup_case_t **self_p);
/* True when `verifier_sha256_hex` (64 hex chars) is one of the parties' verifiers. */
bool lookup_case_has_verifier(const lookup_case_t *c, const char *verifier_sha256_hex);
/* Hex SHA-256 of "kind:value"; out needs 65 bytes. */
void lookup_verifier_hash(const char *kind, const char *value, char out[65]);

/* Fills a found reply `r` (fields owned by the message) from the case at time `now_s`.
 * Returns 0, or -1 on allocation failure or a date outside the Umm al-Qura table (logged;
 * the caller answers `error`). */
int lookup_render_found(const lookup_case_t *c, int64_t now_s, wasl_digits_t digits,
                        wasl_msg_case_lookup_reply_t *r);
/* Fills the one reply given for an unknown case and for a case of someone else, identical in
 * every byte for the same request_id. Returns 0 or -1 (allocation). */
int lookup_render_denied(wasl_msg_case_lookup_reply_t *r);
int lookup_render_locked(wasl_msg_case_lookup_reply_t *r, long retry_after_s);

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
