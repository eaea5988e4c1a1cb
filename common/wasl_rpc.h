/* wasl_rpc — a request/reply client that never hangs: the Lazy Pirate pattern (ZeroMQ guide,
 * ch. 4) over a REQ socket to the bus's client port, and a batch form over a DEALER socket. */
#ifndef WASL_RPC_H
#define WASL_RPC_H

#include "wasl_proto.h"
#include "wasl_zmq.h"

#include <stddef.h>

typedef struct wasl_rpc wasl_rpc_t;

#define WASL_RPC_TIMEOUT_MS_DEFAULT 800
#define WASL_RPC_RETRIES_DEFAULT    2
/* The most requests one wasl_rpc_call_many may carry (the router's largest batch). */
#define WASL_RPC_MANY_MAX 4096

/* A client for `endpoints` (comma-separated; e.g. wasl_bus_endpoints(…, WASL_BUS_RPC_CLIENT)).
 * Each try waits `timeout_ms` for the reply; after a timeout the socket is closed (dropping the
 * late reply with it) and reopened, and the request is sent again, up to `retries` more times.
 * `zmq` is borrowed and must outlive the client. NULL (logged) on failure. One thread at a time
 * may use a client (it owns a ZeroMQ socket). */
wasl_rpc_t *wasl_rpc_new(wasl_zmq_t *zmq, const char *endpoints, int timeout_ms, int retries);
/* Safe twice; NULLs the caller's pointer. */
void wasl_rpc_destroy(wasl_rpc_t **self_p);

/* Sends `len` bytes of `req` (borrowed) and waits for one reply. Returns 0 with *reply a
 * malloc'd buffer of *reply_len bytes that the caller frees; -1 when every try timed out or the
 * socket could not be made (*reply NULL). Worst case it returns after
 * (retries + 1) * timeout_ms. Handlers must be idempotent: a request may run more than once. */
int wasl_rpc_call(wasl_rpc_t *self, const void *req, size_t len, char **reply, size_t *reply_len);

/* The same for messages: encodes `req` (borrowed), decodes the reply. Returns a new message
 * the caller owns, or NULL on timeout, on an encoding error or on an undecodable reply (each
 * logged). */
wasl_msg_t *wasl_rpc_request(wasl_rpc_t *self, const wasl_msg_t *req);

/* Sends the `n` requests (each `lens[i]` bytes of `reqs[i]`, borrowed) at once and collects
 * the replies, matched by a tag frame to their request whatever the order they come back in.
 * Each try waits at most `timeout_ms`; the requests still unanswered are sent again, up to
 * `retries` more times. A late reply to an earlier try of this call still answers its request
 * (the request is the same); replies to earlier calls and duplicates are ignored and counted
 * (wasl_rpc_stale). Returns how many were answered: replies[i] is then a malloc'd buffer of
 * reply_lens[i] bytes that the caller frees; unanswered ones are NULL with length 0. Worst case
 * it returns after (retries + 1) * timeout_ms. 1 <= n <= WASL_RPC_MANY_MAX (asserted). The
 * servers must reply with the envelope they received (every frame before the body), as the
 * bus's workers do; handlers must be idempotent. */
int wasl_rpc_call_many(wasl_rpc_t *self, size_t n, const void *const *reqs, const size_t *lens,
                       char **replies, size_t *reply_lens);

/* The same for messages: encodes each of `reqs` (borrowed), decodes each reply into
 * replies[i] (a new message the caller owns; NULL when unanswered, not encodable or not
 * decodable, each logged). Returns how many replies[i] are set. */
int wasl_rpc_request_many(wasl_rpc_t *self, size_t n, const wasl_msg_t *const *reqs,
                          wasl_msg_t **replies);

/* The longest request id wasl_rpc_request_id makes, with its NUL (the proto's request_id
 * max=64 plus one). */
#define WASL_RPC_REQUEST_ID_MAX 65
/* The longest prefix it takes. */
#define WASL_RPC_REQUEST_ID_PREFIX_MAX 24

/* Writes into `out` (WASL_RPC_REQUEST_ID_MAX bytes) a request id unique across every sender and
 * restart: `prefix` (at most WASL_RPC_REQUEST_ID_PREFIX_MAX bytes, e.g. "router" or "api"),
 * '-', then 128 random bits in hex. Workers deduplicate resends by it (a resend carries the same
 * id and bytes), so ids that two senders could both make — a clock and a per-process counter —
 * are not enough: the second request would be taken for a resend of the first. Returns 0, or -1
 * when the kernel gave no randomness (logged; `out` is then empty). */
int wasl_rpc_request_id(const char *prefix, char *out);

/* How many tries were retries (for wasl_rpc_call_many, one per request sent again), over the
 * life of this client (tests, metrics). */
unsigned long wasl_rpc_retries(const wasl_rpc_t *self);

/* How many replies wasl_rpc_call_many ignored: replies to an earlier call, duplicates, or
 * frames not shaped as a tagged reply (tests, metrics). */
unsigned long wasl_rpc_stale(const wasl_rpc_t *self);

#endif
