/* wasl_admin — each daemon's small HTTP port: /healthz, /readyz and Prometheus /metrics. */
#ifndef WASL_ADMIN_H
#define WASL_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

typedef struct wasl_admin wasl_admin_t;

/* Readiness: returns true when the daemon can do its work; otherwise writes a short reason
 * into why (cap bytes). Called from the HTTP thread: it must be thread-safe and quick. */
typedef bool(wasl_admin_ready_fn)(void *arg, char *why, size_t cap);

/* Starts the admin server on bind:port (port 0 picks a free one) in its own thread.
 * `service` is borrowed. Returns NULL (and logs why) when the port cannot be bound. */
wasl_admin_t *wasl_admin_new(const char *service, const char *bind, int port);

/* The port actually bound. */
int wasl_admin_port(const wasl_admin_t *self);

/* Installs the readiness check; without one /readyz answers like /healthz. */
void wasl_admin_set_ready(wasl_admin_t *self, wasl_admin_ready_fn *fn, void *arg);

/* Marks the daemon as draining: /readyz answers 503 "draining" from now on. */
void wasl_admin_set_draining(wasl_admin_t *self);

/* Stops the server; safe twice; NULLs the caller's pointer. */
void wasl_admin_destroy(wasl_admin_t **self_p);

#endif
