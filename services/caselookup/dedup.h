/* dedup — wasl-caselookup answers each request once, whichever worker a resend reaches.
 *
 * wasl_rpc resends a request that was not answered in time, on a new socket, so the bus may
 * hand the resend to another worker while the first is still on it. Each request is claimed in
 * Redis under its request id before it is looked up: the claim holds the SHA-256 of the request's
 * bytes and the claiming worker; once answered (after the audit commit), the claim becomes the
 * answer itself, kept a short while. A resend then gets that answer byte for byte, counts no
 * second failure and writes no second audit row. A resend that finds the request still being
 * worked on waits (parked) for the answer — unless the claiming worker is gone (its liveness key,
 * refreshed by a thread of its own, has expired), in which case the request is taken over. */
#ifndef WASL_CASELOOKUP_DEDUP_H
#define WASL_CASELOOKUP_DEDUP_H

#include "wasl_redis.h"

#include <stdbool.h>
#include <stddef.h>

/* The Redis key of a request and the hex SHA-256 of its bytes. */
#define DEDUP_KEY_MAX 80
#define DEDUP_FP_LEN  64

typedef enum {
    DEDUP_NEW,      /* claimed by this worker now: look it up, then dedup_store or dedup_release */
    DEDUP_PENDING,  /* another live worker (or this one, earlier in the batch) is on it: wait */
    DEDUP_DONE,     /* answered already: send the stored answer */
    DEDUP_CONFLICT, /* the id was used by a different request: answer neither with the other's */
} dedup_state_t;

typedef struct dedup dedup_t;

/* A deduplicator for worker `owner` (borrowed, copied). Starts the liveness thread on its own
 * Redis connection to `redis_url` (`timeout_ms` per command). NULL (logged) on failure. */
dedup_t *dedup_new(const char *redis_url, int timeout_ms, const char *owner);
/* Stops the liveness thread (its key then expires and this worker's claims can be taken over).
 * Safe twice; NULLs the caller's pointer. */
void dedup_destroy(dedup_t **self_p);

/* Fills `key` (DEDUP_KEY_MAX bytes) from the request id and `fp` (DEDUP_FP_LEN + 1 bytes, the
 * keyed hash wasl_pii_hash_bytes: the PII key must be set) from the `len` bytes of the request
 * as received. */
void dedup_ids(const char *request_id, const void *body, size_t len, char *key, char *fp);

/* Claims the `n` requests in one Redis round trip on `redis` (the caller's connection; the
 * caller's thread). states[i] says what to do with each; for DEDUP_DONE answers[i] is a malloc'd
 * copy of the stored answer (answer_lens[i] bytes) the caller frees, else NULL. Returns 0, or
 * -1 when Redis did not answer (logged): nothing is claimed, every state is DEDUP_NEW (the
 * lookup then runs without deduplication; the audit's unique request hash still refuses a
 * second row). */
int dedup_claim(dedup_t *self, wasl_redis_t *redis, size_t n, const char *const *keys,
                const char *const *fps, dedup_state_t *states, char **answers, size_t *answer_lens);

/* The same, with one more command of the caller (`argc` arguments `argv`, borrowed) in the
 * same round trip (pipelined after the claims): caselookup reads its cached cases with it.
 * *with gets that command's reply (the caller frees it), NULL when Redis did not answer. With
 * argc 0 this is dedup_claim. */
int dedup_claim_with(dedup_t *self, wasl_redis_t *redis, size_t n, const char *const *keys,
                     const char *const *fps, dedup_state_t *states, char **answers,
                     size_t *answer_lens, int argc, const char *const *argv, redisReply **with);

/* Replaces the claims of `n` answered requests by their answers (answers[i], answer_lens[i]
 * bytes, borrowed), for resends to find. Returns 0, or -1 (logged; a resend then finds the claim
 * and, once it expires, looks the request up again). */
int dedup_store(dedup_t *self, wasl_redis_t *redis, size_t n, const char *const *keys,
                const char *const *fps, const char *const *answers, const size_t *answer_lens);

/* Drops this worker's claims of `n` requests that were not answered (the audit failed), so a
 * resend looks them up again at once. Returns 0 or -1 (logged). */
int dedup_release(dedup_t *self, wasl_redis_t *redis, size_t n, const char *const *keys,
                  const char *const *fps);

#endif
