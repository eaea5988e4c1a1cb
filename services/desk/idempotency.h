/* idempotency — a desk state change sent with an `Idempotency-Key` happens once: the key is
 * claimed for its principal in the transaction that makes the change and keeps the reply there
 * (desk_idempotency, proto/migrations/0008), so a retry after a lost answer gets the first reply
 * and changes nothing. The same for people and tokens; a reply to the beneficiary is deduplicated
 * by its notification instead (wasl_tickets_reply), one mechanism per action. */
#ifndef WASL_DESK_IDEMPOTENCY_H
#define WASL_DESK_IDEMPOTENCY_H

#include "server.h"

#include <stddef.h>

/* A key is 1..128 of A-Z a-z 0-9 . _ : - (a UUID fits), counted for 24 hours. */
#define DESK_IDEMPOTENCY_KEY_MAX 128
#define DESK_IDEMPOTENCY_HEADER  "Idempotency-Key"

/* The request's Idempotency-Key: 0 with *key borrowed from the request (NULL when none), or -1
 * with a 400 invalid_idempotency_key naming the header. */
int desk_idempotency_key(const desk_req_t *req, const char **key, desk_reply_t *reply);

/* A state change inside an open transaction on req->db->pg: 0 with the reply (2xx) to commit,
 * -1 with the refusal in reply to roll back. */
typedef int(desk_txn_fn)(desk_req_t *req, void *arg, desk_reply_t *reply);

/* Runs `txn` in one transaction. With an Idempotency-Key (validated here) the key is first
 * claimed for req->principal.key_owner with the SHA-256 of `fields` (n strings, NULL distinct
 * from ""): a key already committed for the same fields answers its first reply and runs
 * nothing; for other fields 422 idempotency_key_reused; a concurrent request with the key waits
 * for the first to end. A refusal rolls its claim back too, so a retry is judged afresh.
 * Returns 0 when the change (or the replay) stands with reply set; -1 with reply set otherwise
 * (the refusal, 400 for a malformed key, 503 when the database fails). */
int desk_idempotency_run(desk_req_t *req, const char *const *fields, size_t n, desk_txn_fn *txn,
                         void *arg, desk_reply_t *reply);

#endif
