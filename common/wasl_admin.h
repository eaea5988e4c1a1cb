/* wasl_admin — each daemon's small HTTP port: /healthz, /readyz and Prometheus /metrics, and
 * the systemd notifications (READY, STOPPING, WATCHDOG) that go with them. */
#ifndef WASL_ADMIN_H
#define WASL_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

typedef struct wasl_admin wasl_admin_t;

/* Readiness: returns true when the daemon can do its work; otherwise writes a short reason
 * into why (cap bytes). Called from the HTTP thread: it must be thread-safe and quick. */
typedef bool(wasl_admin_ready_fn)(void *arg, char *why, size_t cap);

/* Starts the admin server on bind:port (port 0 picks a free one) in its own thread.
 * `service` is borrowed. Returns NULL (and logs why) when the port cannot be bound.
 * Under systemd with WatchdogSec= (sd_watchdog_enabled), also starts a thread that sends
 * WATCHDOG=1 every half period while GET /healthz on this port answers 200. Without
 * NOTIFY_SOCKET every systemd notification in this module is a no-op. */
wasl_admin_t *wasl_admin_new(const char *service, const char *bind, int port);

/* The port actually bound. */
int wasl_admin_port(const wasl_admin_t *self);

/* Installs the readiness check; without one (fn NULL) /readyz answers like /healthz. The first
 * call also tells systemd the daemon has started (READY=1 and a STATUS= line): call it once
 * every component is up. */
void wasl_admin_set_ready(wasl_admin_t *self, wasl_admin_ready_fn *fn, void *arg);

/* Marks the daemon as draining: /readyz answers 503 "draining" from now on, and systemd is
 * told STOPPING=1 (once). */
void wasl_admin_set_draining(wasl_admin_t *self);

/* Stops the server; safe twice; NULLs the caller's pointer. */
void wasl_admin_destroy(wasl_admin_t **self_p);

#endif
