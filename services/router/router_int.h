/* router_int — what the router's files share: the object (its connections, the rules, the
 * agents buffer of the dispatch round, the metrics) and the helpers every job uses. Private to
 * services/router/: route.c (claim → decide → commit, auto-answer), dispatch.c (offer rounds),
 * timers.c (presence, staffing, overflow, escalation, stats) and router.c (lifecycle, loop). */
#ifndef WASL_ROUTER_ROUTER_INT_H
#define WASL_ROUTER_ROUTER_INT_H

#include "router.h"
#include "wasl_clock.h"
#include "select.h"
#include "wasl_metrics.h"
#include "wasl_pg.h"
#include "wasl_rpc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define OWNER_MAX  128
#define AGENTS_MAX 5000
#define LIST_SEP   ","

/* Auto-answer: how long one lookup may take, how many more tries, how long to stop asking
 * after caselookup failed to answer. */
#define AUTO_ANSWER_TIMEOUT_MS 700
#define AUTO_ANSWER_RETRIES    1
#define AUTO_ANSWER_BACKOFF_MS 10000
/* Lookups sent at once, each answered within AUTO_ANSWER_TIMEOUT_MS: a batch of 512 (the
 * default since issue 16) asks in chunks as batches of 128 did, so a busy caselookup is not
 * handed more at once than before. At most WASL_RPC_MANY_MAX. */
#define AUTO_ANSWER_CHUNK 128

/* Working a backlog, the queue gauges (a read of every waiting ticket) are refreshed this many
 * times less often than WASL_ROUTER_STATS_MS. */
#define STATS_BEHIND_X 6

struct router {
    const router_config_t *cfg;
    rules_t *rules;
    wasl_pg_t *pg;
    zsock_t *pull;
    zsock_t *push; /* notify stage */
    char owner[OWNER_MAX];
    atomic_bool db_ok;
    select_agent_t *agents;
    wasl_rpc_t *rpc;           /* to caselookup, when auto-answer is on */
    int64_t rpc_down_until_ms; /* after a failed lookup, answer nothing for a while */
    int64_t last_staffing_ms;  /* this router's last staffing pass (timers.c) */
    char staffing_digest[40];  /* who was present at that pass (md5 hex) */
    wasl_counter_t *auto_answered, *auto_declined;
    wasl_counter_t *bad_messages, *lost, *failed, *routed, *offered, *expired, *escalated,
        *overflowed, *presence_expired, *notify_sent, *notify_failed;
    wasl_histogram_t *batch_seconds, *dispatch_seconds, *timers_seconds;
};

/* Publishes notify.requested (the outbox row's id: the notifier reads the row) for an outbox
 * row just committed (router.c). A failed send is counted; the row stands and the notifier's
 * sweep sends it. */
void router_publish_notification(router_t *self, int64_t id);

/* wasl_pg_arity() for a result the router then drops: whether *res (a statement's result, or
 * NULL when it failed) has the `ncols` columns its reader expects, read by the enum next to
 * its SQL. A result of another shape (the SQL and its enum disagree) is logged with `what`,
 * cleared and set to NULL, so it is never read by number. */
bool router_checked(PGresult **res, int ncols, const char *what);

/* Inside the caller's open transaction (the route batch's commit, route.c): the offer round
 * of router_dispatch() — lock the agents who can take work, read them, offer the waiting
 * tickets in order — under a savepoint, so a failed round is rolled back alone and the batch's
 * decisions still commit. Observes wasl_router_dispatch_seconds. Returns how many offers it
 * wrote (counted by the caller once committed), 0 when the round failed and was rolled back,
 * -1 when the transaction itself is lost (roll back). */
int router_offer_round(router_t *self);

/* Queue depth, oldest waiting age, SLA attainment and offer outcomes, as gauges (timers.c). */
void router_refresh_stats(router_t *self);

#endif
