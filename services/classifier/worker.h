/* worker — the classifier's work: take ticket.received nudges and stale classify rows, classify,
 * commit the decision fenced on the lease, and pass the ticket on to the router. */
#ifndef WASL_CLASSIFIER_WORKER_H
#define WASL_CLASSIFIER_WORKER_H

#include "wasl_classify.h"
#include "wasl_zmq.h"

#include <stdbool.h>

#define CLASSIFIER_ADMIN_PORT 9102

typedef struct {
    const char *pg_url;
    bool pg_sync_commit; /* WASL_PG_SYNC_COMMIT */
    const char *bus;
    const char *bus_stages;
    const char *model_path;
    const char *default_country;
    long lease_s;
    long sweep_ms;
    long sweep_min_age_ms;
    long batch_max;
    long retry_backoff_ms;
} worker_config_t;

typedef struct worker worker_t;

/* Loads the model, connects to the bus (PULL classify, PUSH route). `cfg` and `zmq` are
 * borrowed. NULL (logged) when the model cannot be loaded or a socket cannot be made. */
worker_t *worker_new(const worker_config_t *cfg, wasl_zmq_t *zmq);
void worker_destroy(worker_t **self_p);

/* Runs until a stop signal: nudges as they come, the sweep every sweep_ms, a model reload on
 * SIGHUP (between batches, so no message is lost). Returns 0. */
int worker_run(worker_t *self);

/* Loads `path` and swaps it in; on failure keeps the current model. 0 or -1 (logged). */
int worker_reload(worker_t *self, const char *path);

/* Claims the nudged rows among work_ids and classifies and commits them. Returns how many were
 * committed, or -1 on a database error (the rows are given back for a retry). */
int worker_process_ids(worker_t *self, const int64_t *work_ids, size_t n);
/* Claims one batch of stale rows (no nudge came) and processes it. Returns how many were
 * claimed, or -1 on a database error. */
int worker_sweep(worker_t *self);

/* Readiness: a model is loaded and the last database round trip worked. */
bool worker_ready(void *self, char *why, size_t cap);

#endif
