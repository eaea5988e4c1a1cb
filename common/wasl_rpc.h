/* wasl_rpc — a request/reply client that never hangs: the Lazy Pirate pattern (ZeroMQ guide,
 * ch. 4) over a REQ socket to the bus's client port. */
#ifndef WASL_RPC_H
#define WASL_RPC_H

#include "wasl_proto.h"
#include "wasl_zmq.h"

#include <stddef.h>

typedef struct wasl_rpc wasl_rpc_t;

#define WASL_RPC_TIMEOUT_MS_DEFAULT 800
#define WASL_RPC_RETRIES_DEFAULT    2

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

/* How many tries were retries, over the life of this client (tests, metrics). */
unsigned long wasl_rpc_retries(const wasl_rpc_t *self);

#endif
