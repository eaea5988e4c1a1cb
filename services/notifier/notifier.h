/* notifier — the outbox worker: claims due notification rows with a lease, renders, governs,
 * sends through the providers and records the outcome fenced on the lease. */
#ifndef WASL_NOTIFIER_NOTIFIER_H
#define WASL_NOTIFIER_NOTIFIER_H

#include "governor.h"
#include "provider.h"
#include "wasl_zmq.h"

#include <stdbool.h>
#include <stdint.h>

#define NOTIFIER_ADMIN_PORT 9104

typedef struct {
    const char *pg_url;
    bool pg_sync_commit; /* WASL_PG_SYNC_COMMIT */
    const char *redis_url;
    const char *bus;
    const char *bus_stages;
    const char *templates_dir;
    long lease_s;
    long sweep_ms;
    long batch_max;
    long retry_base_ms; /* first retry after about this long, doubling per attempt */
    long retry_max_ms;  /* ceiling of the backoff */
    long quiet_start_h; /* Riyadh hours [start, end) without non-urgent SMS; equal: none */
    long quiet_end_h;
    long clock_s; /* a fixed "now" (Unix seconds) for quiet hours, for tests; 0: real */
    governor_limits_t limits;
    sms_config_t sms;
    mail_config_t mail;
} notifier_config_t;

typedef struct notifier notifier_t;

/* Loads and checks the templates (a bad template is a start-up error), connects to the bus
 * (PULL notify). `cfg` and `zmq` are borrowed. NULL (logged) on failure. */
notifier_t *notifier_new(const notifier_config_t *cfg, wasl_zmq_t *zmq);
void notifier_destroy(notifier_t **self_p);

/* Runs until a stop signal: nudged rows as they come, the sweep every sweep_ms. Returns 0. */
int notifier_run(notifier_t *self);

/* Claims the given rows (or, with n == 0, a batch of due ones) and sends them. Returns how many
 * rows were claimed, or -1 on a database error. */
int notifier_process(notifier_t *self, const int64_t *ids, size_t n);

/* The delay before retry number `attempt` (1-based): base·2^(attempt-1) capped at max, with
 * "equal jitter" (a random point in its upper half) so that a gateway outage does not end in a
 * synchronized burst. */
long notifier_backoff_ms(long base_ms, long max_ms, int attempt);

/* Readiness: the last database round trip worked. */
bool notifier_ready(void *self, char *why, size_t cap);

#endif
