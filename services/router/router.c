/* router — the wasl-router object: its lifecycle (rules, PostgreSQL, the bus, the metrics), the
 * loop that runs each job in turn (route.c, dispatch.c, timers.c), reload and readiness. */
#include "router_int.h"
#include "wasl_domain.h"
#include "wasl_log.h"
#include "wasl_proto.h"
#include "wasl_signal.h"
#include "wasl_work.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

char *router_conninfo(const char *pg_url, long clock_offset_s)
{
    size_t cap = strlen(pg_url) + 96;
    char *s = malloc(cap);
    if (!s) {
        return NULL;
    }
    if (clock_offset_s == 0) {
        snprintf(s, cap, "%s", pg_url);
    } else if (strstr(pg_url, "://")) {
        snprintf(s, cap, "%s%soptions=-c%%20wasl.clock_offset_s%%3D%ld", pg_url,
                 strchr(pg_url, '?') ? "&" : "?", clock_offset_s);
    } else {
        snprintf(s, cap, "%s options='-c wasl.clock_offset_s=%ld'", pg_url, clock_offset_s);
    }
    return s;
}

const char *router_category_label(const char *category, const char *lang)
{
    /* The words live in wasl_domain, shared with the notifier; an unknown code reads as a
     * general inquiry, as it always has. */
    const char *label = wasl_category_label(category, lang);
    return label ? label : wasl_category_label("general_inquiry", lang);
}

/* The bus: PULL route nudges, PUSH notify.requested, and the caselookup client when
 * auto-answer is on. 0, or -1 (logged) when the endpoints are unusable or a socket fails. */
static int connect_bus(router_t *self, const router_config_t *cfg, wasl_zmq_t *zmq)
{
    char *in = wasl_bus_endpoints(cfg->bus, cfg->bus_stages, "route", WASL_BUS_PULL);
    char *out = wasl_bus_endpoints(cfg->bus, cfg->bus_stages, "notify", WASL_BUS_PUSH);
    if (in && out) {
        self->pull = wasl_zmq_connect(zmq, ZMQ_PULL, in);
        self->push = wasl_zmq_connect(zmq, ZMQ_PUSH, out);
    } else {
        wasl_error("router: WASL_BUS or WASL_BUS_STAGES unusable (needs route and notify)", "{s:s}",
                   "bus", cfg->bus);
    }
    free(in);
    free(out);
    if (!self->pull || !self->push) {
        return -1;
    }
    zsock_set_sndtimeo(self->push, 0); /* never block on the bus: the outbox row stands */
    if (cfg->auto_answer) {
        char *rpc = wasl_bus_endpoints(cfg->bus, cfg->bus_stages, NULL, WASL_BUS_RPC_CLIENT);
        self->rpc =
            rpc ? wasl_rpc_new(zmq, rpc, AUTO_ANSWER_TIMEOUT_MS, AUTO_ANSWER_RETRIES) : NULL;
        free(rpc);
        if (!self->rpc) {
            return -1;
        }
    }
    return 0;
}

/* The router's counters and histograms (registered once; the registry owns them). */
static void register_metrics(router_t *self)
{
    self->auto_answered =
        wasl_counter("wasl_router_auto_answered_total",
                     "Case inquiries answered by caselookup (self-service)", NULL);
    self->auto_declined = wasl_counter("wasl_router_auto_answer_declined_total",
                                       "Auto-answers not given (not verified, locked, caselookup "
                                       "unavailable): routed to an agent",
                                       NULL);
    self->bad_messages = wasl_counter("wasl_router_bad_messages_total",
                                      "Bus messages that failed to decode (logged, dropped)", NULL);
    self->lost = wasl_counter("wasl_router_lease_lost_total",
                              "Decisions not committed because another worker owned the row", NULL);
    self->failed = wasl_counter("wasl_router_failures_total",
                                "Batches given back after a database error", NULL);
    self->routed = wasl_counter("wasl_router_routed_total", "Tickets routed", NULL);
    self->offered = wasl_counter("wasl_router_offers_made_total", "Offers made to agents", NULL);
    self->expired =
        wasl_counter("wasl_router_offers_expired_total", "Offers that expired unanswered", NULL);
    self->escalated =
        wasl_counter("wasl_router_escalations_total", "Tickets escalated on an SLA breach", NULL);
    self->overflowed =
        wasl_counter("wasl_router_overflows_total", "Tickets moved to the overflow queue", NULL);
    self->presence_expired = wasl_counter("wasl_router_presence_expired_total",
                                          "Agents set offline after their heartbeat stopped", NULL);
    self->notify_sent =
        wasl_counter("wasl_router_notify_published_total", "notify.requested messages sent", NULL);
    self->notify_failed = wasl_counter("wasl_router_notify_publish_failures_total",
                                       "notify.requested not sent (the outbox row stands)", NULL);
    self->batch_seconds =
        wasl_histogram("wasl_router_batch_seconds", "Time to route and commit one batch", NULL,
                       wasl_latency_buckets_s, wasl_latency_buckets_n);
    self->dispatch_seconds =
        wasl_histogram("wasl_router_dispatch_seconds", "Time of one dispatch round (offers)", NULL,
                       wasl_latency_buckets_s, wasl_latency_buckets_n);
    /* Its count says a round ran: tests wait for one before asserting that nothing happened. */
    self->timers_seconds =
        wasl_histogram("wasl_router_timers_seconds",
                       "Time of one timers round (presence, staffing, escalation, overflow)", NULL,
                       wasl_latency_buckets_s, wasl_latency_buckets_n);
}

router_t *router_new(const router_config_t *cfg, wasl_zmq_t *zmq)
{
    router_t *self = calloc(1, sizeof *self);
    char *conninfo = NULL;
    if (!self) {
        return NULL;
    }
    self->cfg = cfg;
    atomic_init(&self->db_ok, false);
    wasl_work_owner("router", self->owner, sizeof self->owner);
    char err[512];
    self->rules = rules_load(cfg->rules_path, err, sizeof err);
    if (!self->rules) {
        wasl_error("router: invalid rules file", "{s:s}", "error", err);
        goto error;
    }
    self->agents = calloc(AGENTS_MAX, sizeof *self->agents);
    conninfo = router_conninfo(cfg->pg_url, cfg->clock_offset_s);
    if (!self->agents || !conninfo || !(self->pg = wasl_pg_new(conninfo))) {
        goto error;
    }
    wasl_pg_set_sync_commit(self->pg, cfg->pg_sync_commit);
    if (cfg->bus && *cfg->bus && connect_bus(self, cfg, zmq) < 0) {
        goto error;
    }
    free(conninfo);
    register_metrics(self);
    return self;
error:
    free(conninfo);
    router_destroy(&self);
    return NULL;
}

void router_destroy(router_t **self_p)
{
    assert(self_p);
    router_t *self = *self_p;
    if (!self) {
        return;
    }
    zsock_destroy(&self->pull);
    zsock_destroy(&self->push);
    wasl_rpc_destroy(&self->rpc);
    wasl_pg_destroy(&self->pg);
    rules_destroy(&self->rules);
    free(self->agents);
    free(self);
    *self_p = NULL;
}

static void reload(router_t *self)
{
    char err[512];
    rules_t *r = rules_load(self->cfg->rules_path, err, sizeof err);
    if (!r) {
        wasl_error("router: reload refused; keeping the current rules", "{s:s}", "error", err);
        return;
    }
    rules_destroy(&self->rules);
    self->rules = r;
    wasl_info("router: rules reloaded", "{s:s}", "file", self->cfg->rules_path);
}

void router_publish_notification(router_t *self, int64_t id)
{
    if (!self->push || id <= 0) {
        return;
    }
    wasl_msg_t *msg = wasl_msg_new(WASL_MSG_NOTIFY_REQUESTED);
    if (!msg) {
        return;
    }
    msg->u.notify_requested.notification_id = (uint64_t)id;
    wasl_msg_error_t err;
    wasl_counter_inc(wasl_msg_send(msg, self->push, &err) == 0 ? self->notify_sent
                                                               : self->notify_failed);
    wasl_msg_destroy(&msg);
}

/* ---- the loop -------------------------------------------------------------------------------- */

static size_t read_nudges(router_t *self, int64_t *ids, size_t max, long wait_ms)
{
    size_t n = 0;
    zmq_pollitem_t item = {zsock_resolve(self->pull), 0, ZMQ_POLLIN, 0};
    int rc = zmq_poll(&item, 1, wait_ms > 0 ? wait_ms : 0);
    while (rc > 0 && n < max) {
        zmq_msg_t frame;
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, zsock_resolve(self->pull), ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&frame);
            break;
        }
        wasl_msg_error_t err;
        wasl_msg_t *msg = wasl_msg_decode(zmq_msg_data(&frame), zmq_msg_size(&frame), &err);
        zmq_msg_close(&frame);
        if (!msg || msg->type != WASL_MSG_TICKET_CLASSIFIED) {
            wasl_counter_inc(self->bad_messages);
            wasl_warn("router: bad message on the route stage; dropped", "{s:s, s:s}", "error",
                      msg ? "unexpected type" : err.message, "field", msg ? "type" : err.field);
            wasl_msg_destroy(&msg);
            continue;
        }
        ids[n++] = (int64_t)msg->u.ticket_classified.work_id;
        wasl_msg_destroy(&msg);
    }
    return n;
}

int router_run(router_t *self)
{
    size_t max = (size_t)self->cfg->batch_max;
    int64_t *ids = malloc(max * sizeof *ids);
    if (!ids) {
        return -1;
    }
    /* The gauges read every ticket of the last 24 hours (0.3 s with 200,000 waiting): not
     * before the first WASL_ROUTER_STATS_MS, so a router started on a backlog routes first. */
    int64_t last_sweep = 0, last_dispatch = 0, last_timers = 0, last_stats = wasl_clock_ms();
    while (!wasl_signal_stopping()) {
        if (wasl_signal_take_reload()) {
            reload(self);
        }
        int64_t now = wasl_clock_ms();
        int64_t next = last_sweep + self->cfg->sweep_ms;
        if (last_dispatch + self->cfg->dispatch_ms < next) {
            next = last_dispatch + self->cfg->dispatch_ms;
        }
        if (last_timers + self->cfg->timers_ms < next) {
            next = last_timers + self->cfg->timers_ms;
        }
        long wait = (long)(next - now);
        size_t n = 0;
        if (self->pull) {
            n = read_nudges(self, ids, max, wait);
        } else if (wait > 0) {
            wasl_signal_wait((int)wait);
        }
        /* Working a backlog (a full batch: more is waiting), the rounds keep their cadence and
         * the next batch is claimed at once; a router that caught up offers its new tickets in
         * the batch's own commit (route.c). A dispatch round after every full batch took a
         * fifth of the router's time (issue 16). */
        bool behind = false;
        if (n > 0) {
            router_route_ids(self, ids, n);
            behind = n == max;
        }
        now = wasl_clock_ms();
        if (now - last_sweep >= self->cfg->sweep_ms) {
            int swept = router_sweep(self);
            last_sweep = swept == (int)self->cfg->batch_max ? 0 : now;
            behind = behind || swept == (int)self->cfg->batch_max;
        }
        if (now - last_timers >= self->cfg->timers_ms) {
            router_timers(self);
            last_timers = now;
        }
        if (now - last_dispatch >= self->cfg->dispatch_ms) {
            router_dispatch(self);
            last_dispatch = wasl_clock_ms();
        }
        /* The gauges read every waiting ticket: behind, at most every STATS_BEHIND_x rounds. */
        if (now - last_stats >= self->cfg->stats_ms * (behind ? STATS_BEHIND_X : 1)) {
            router_refresh_stats(self);
            last_stats = now;
        }
    }
    free(ids);
    return 0;
}

bool router_checked(PGresult **res, int ncols, const char *what)
{
    if (wasl_pg_arity(*res, ncols, what)) {
        return true;
    }
    PQclear(*res);
    *res = NULL;
    return false;
}

bool router_ready(void *arg, char *why, size_t cap)
{
    router_t *self = arg;
    if (!atomic_load(&self->db_ok)) {
        snprintf(why, cap, "PostgreSQL does not answer");
        return false;
    }
    return true;
}
