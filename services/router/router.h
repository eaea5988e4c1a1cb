/* router — wasl-router's work: route classified tickets by the rules (queue, priority, SLA),
 * offer waiting tickets to agents with a lease, expire offers and presence, escalate on SLA
 * breach and overflow unstaffed queues. Every timer is a column in PostgreSQL. */
#ifndef WASL_ROUTER_ROUTER_H
#define WASL_ROUTER_ROUTER_H

#include "rules.h"
#include "wasl_zmq.h"

#include <stdbool.h>
#include <stdint.h>

#define ROUTER_ADMIN_PORT 9103

typedef struct {
    const char *pg_url;
    bool pg_sync_commit; /* WASL_PG_SYNC_COMMIT */
    const char *bus;
    const char *bus_stages;
    const char *rules_path;
    bool auto_answer; /* ask caselookup (with auto_answer: true in the rules file) */
    long lease_s;
    long sweep_ms;
    long sweep_min_age_ms;
    long batch_max;
    long retry_backoff_ms;
    long dispatch_ms;
    long dispatch_max; /* tickets considered per dispatch round */
    long timers_ms;
    long staffing_ms; /* the staffing pass and the overflow timer read every waiting ticket */
    long stats_ms;
    long reoffer_after_s; /* an agent who declined a ticket is not offered it again before */
    long clock_offset_s;  /* tests: shifts the router's clock in PostgreSQL */
} router_config_t;

typedef struct router router_t;

/* Loads the rules, connects to the bus (PULL route, PUSH notify). Borrowed arguments. NULL
 * (logged, with file:line) when the rules are invalid or a socket cannot be made. */
router_t *router_new(const router_config_t *cfg, wasl_zmq_t *zmq);
void router_destroy(router_t **self_p);

/* Runs until a stop signal. SIGHUP reloads the rules file (a bad file keeps the current one). */
int router_run(router_t *self);

/* One pass of each job; each returns how many rows it changed, or -1 on a database error. */
int router_route_ids(router_t *self, const int64_t *work_ids, size_t n);
int router_sweep(router_t *self);
int router_dispatch(router_t *self);
int router_timers(router_t *self);

bool router_ready(void *self, char *why, size_t cap);

/* The conninfo with the clock offset as a session setting (caller frees). */
char *router_conninfo(const char *pg_url, long clock_offset_s);

/* The label of a category for the beneficiary's acknowledgement (Arabic or English). */
const char *router_category_label(const char *category, const char *lang);

#endif
