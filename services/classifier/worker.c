/* worker — the classifier's work: take ticket.received nudges and stale classify rows, classify,
 * commit the decision fenced on the lease, and pass the ticket on to the router. */
#include "worker.h"
#include "wasl_clock.h"
#include "wasl_entities.h"
#include "wasl_log.h"
#include "wasl_metrics.h"
#include "wasl_pg.h"
#include "wasl_proto.h"
#include "wasl_signal.h"
#include "wasl_work.h"

#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OWNER_MAX 128

/* The tickets behind claimed rows: the first inbound message is what the contact said. */
static const char *const fetch_sql =
    "SELECT w.id, t.id, t.ref, t.channel, coalesce(t.subject, ''),"
    "  coalesce((SELECT m.body FROM messages m WHERE m.ticket_id = t.id AND m.direction = 'in'"
    "            ORDER BY m.id LIMIT 1), '')"
    " FROM work w JOIN tickets t ON t.id = w.ticket_id"
    " WHERE w.id = ANY($1::bigint[]) AND w.owner = $2 ORDER BY w.id";

/* Every decision of a batch in one statement, fenced on the lease: wasl_tickets_classify()
 * (proto/functions/tickets.sql) completes the rows this owner still holds, commits their
 * decisions and enqueues their route rows. */
static const char *const commit_sql =
    "SELECT work_id, route_work_id FROM wasl_tickets_classify($1::jsonb, $2)";

/* The columns of commit_sql. */
enum { COMMIT_WORK_ID, COMMIT_ROUTE_WORK_ID, COMMIT_NCOLS };

typedef struct {
    int64_t work_id, ticket_id, route_work_id;
    char ref[16], channel[16];
    wasl_classification_t c;
    json_t *entities;
    bool committed;
} decision_t;

struct worker {
    const worker_config_t *cfg;
    wasl_model_t *model;
    wasl_pg_t *pg;
    zsock_t *pull;
    zsock_t *push;
    char owner[OWNER_MAX];
    wasl_features_t features;
    atomic_bool db_ok;
    int64_t last_sweep_ms;
    wasl_counter_t *bad_messages, *lost, *failed, *published, *publish_failed, *triaged;
    wasl_histogram_t *batch_seconds;
    wasl_gauge_t *model_loaded;
};

static void set_model_gauge(worker_t *self)
{
    char labels[160];
    snprintf(labels, sizeof labels, "version=\"%s\"", wasl_model_version(self->model));
    wasl_gauge_set(self->model_loaded, 0);
    self->model_loaded = wasl_gauge("wasl_classifier_model_info",
                                    "The loaded model (1 for the current version)", labels);
    wasl_gauge_set(self->model_loaded, 1);
}

worker_t *worker_new(const worker_config_t *cfg, wasl_zmq_t *zmq)
{
    worker_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->cfg = cfg;
    atomic_init(&self->db_ok, false);
    wasl_work_owner("classifier", self->owner, sizeof self->owner);
    char err[512];
    self->model = wasl_model_load(cfg->model_path, err, sizeof err);
    if (!self->model) {
        wasl_error("classifier: cannot load the model (train one with waslctl classifier train)",
                   "{s:s}", "error", err);
        goto error;
    }
    self->pg = wasl_pg_new(cfg->pg_url);
    if (self->pg) {
        wasl_pg_set_sync_commit(self->pg, cfg->pg_sync_commit);
    }
    if (!self->pg) {
        goto error;
    }
    if (cfg->bus && *cfg->bus) {
        char *in = wasl_bus_endpoints(cfg->bus, cfg->bus_stages, "classify", WASL_BUS_PULL);
        char *out = wasl_bus_endpoints(cfg->bus, cfg->bus_stages, "route", WASL_BUS_PUSH);
        if (in && out) {
            self->pull = wasl_zmq_connect(zmq, ZMQ_PULL, in);
            self->push = wasl_zmq_connect(zmq, ZMQ_PUSH, out);
        } else {
            wasl_error("classifier: WASL_BUS or WASL_BUS_STAGES unusable (needs classify and "
                       "route stages)",
                       "{s:s}", "bus", cfg->bus);
        }
        free(in);
        free(out);
        if (!self->pull || !self->push) {
            goto error;
        }
        zsock_set_sndtimeo(self->push, 0); /* never block on the bus: the work row stands */
    }
    self->bad_messages = wasl_counter("wasl_classifier_bad_messages_total",
                                      "Bus messages that failed to decode (logged, dropped)", NULL);
    self->lost = wasl_counter("wasl_classifier_lease_lost_total",
                              "Decisions not committed because another worker owned the row", NULL);
    self->failed = wasl_counter("wasl_classifier_failures_total",
                                "Batches given back after a database error", NULL);
    self->published = wasl_counter("wasl_classifier_published_total",
                                   "ticket.classified messages sent to the bus", NULL);
    self->publish_failed = wasl_counter("wasl_classifier_publish_failures_total",
                                        "ticket.classified not sent (the route row stands)", NULL);
    self->triaged = wasl_counter("wasl_classifier_triage_total",
                                 "Tickets sent to triage for low confidence", NULL);
    self->batch_seconds =
        wasl_histogram("wasl_classifier_batch_seconds", "Time to classify and commit one batch",
                       NULL, wasl_latency_buckets_s, wasl_latency_buckets_n);
    self->model_loaded = wasl_gauge("wasl_classifier_model_info", "The loaded model", NULL);
    set_model_gauge(self);
    return self;
error:
    worker_destroy(&self);
    return NULL;
}

void worker_destroy(worker_t **self_p)
{
    assert(self_p);
    worker_t *self = *self_p;
    if (!self) {
        return;
    }
    zsock_destroy(&self->pull);
    zsock_destroy(&self->push);
    wasl_pg_destroy(&self->pg);
    wasl_model_destroy(&self->model);
    wasl_features_clear(&self->features);
    free(self);
    *self_p = NULL;
}

int worker_reload(worker_t *self, const char *path)
{
    char err[512];
    wasl_model_t *m = wasl_model_load(path, err, sizeof err);
    if (!m) {
        wasl_error("classifier: reload failed; keeping the current model", "{s:s, s:s}", "error",
                   err, "current", wasl_model_version(self->model));
        return -1;
    }
    wasl_info("classifier: model reloaded", "{s:s, s:s}", "from", wasl_model_version(self->model),
              "to", wasl_model_version(m));
    wasl_model_destroy(&self->model);
    self->model = m;
    set_model_gauge(self);
    return 0;
}

/* Classifies the fetched rows into decisions[]; returns how many. */
static size_t decide(worker_t *self, PGresult *res, decision_t *d)
{
    size_t n = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        decision_t *x = &d[n];
        memset(x, 0, sizeof *x);
        x->work_id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        x->ticket_id = strtoll(PQgetvalue(res, r, 1), NULL, 10);
        snprintf(x->ref, sizeof x->ref, "%s", PQgetvalue(res, r, 2));
        snprintf(x->channel, sizeof x->channel, "%s", PQgetvalue(res, r, 3));
        const char *subject = PQgetvalue(res, r, 4), *body = PQgetvalue(res, r, 5);
        size_t slen = strlen(subject), blen = strlen(body);
        char *text = malloc(slen + blen + 2);
        if (!text) {
            continue;
        }
        memcpy(text, subject, slen);
        text[slen] = '\n';
        memcpy(text + slen + 1, body, blen + 1);
        if (wasl_classify(self->model, text, slen + 1 + blen, &self->features, &x->c) < 0) {
            /* Text from the database is UTF-8; only memory can fail here. */
            free(text);
            continue;
        }
        x->entities = wasl_entities_extract(text, slen + 1 + blen, self->cfg->default_country);
        free(text);
        if (!x->entities) {
            x->entities = json_object();
        }
        n++;
    }
    return n;
}

static json_t *decision_json(const worker_t *self, const decision_t *x)
{
    json_t *probs = json_object();
    for (int c = 0; c < WASL_CATEGORY_COUNT; c++) {
        json_object_set_new(probs, wasl_categories[c],
                            json_real(round(x->c.probs[c] * 1000) / 1000));
    }
    json_t *event =
        json_pack("{s:s, s:s, s:f, s:s, s:s, s:s, s:s, s:o}", "category", x->c.category,
                  "model_category", x->c.model_category, "confidence", x->c.confidence, "priority",
                  x->c.priority, "priority_reason", x->c.priority_reason, "language", x->c.lang,
                  "model", wasl_model_version(self->model), "probabilities", probs);
    if (x->c.triage_reason[0]) {
        json_object_set_new(event, "triage_reason", json_string(x->c.triage_reason));
    }
    return json_pack("{s:I, s:I, s:s, s:f, s:s, s:s, s:O, s:s, s:o}", "work_id",
                     (json_int_t)x->work_id, "ticket_id", (json_int_t)x->ticket_id, "category",
                     x->c.category, "confidence", x->c.confidence, "priority", x->c.priority,
                     "language", x->c.lang, "entities", x->entities, "model",
                     wasl_model_version(self->model), "event", event);
}

/* Sends ticket.classified for a committed decision: the route row, which the router claims
 * and reads from PostgreSQL. */
static void publish(worker_t *self, const decision_t *x)
{
    if (!self->push || !x->route_work_id) {
        return;
    }
    wasl_msg_t *msg = wasl_msg_new(WASL_MSG_TICKET_CLASSIFIED);
    wasl_msg_error_t err;
    if (msg) {
        msg->u.ticket_classified.work_id = (uint64_t)x->route_work_id;
    }
    if (msg && wasl_msg_send(msg, self->push, &err) == 0) {
        wasl_counter_inc(self->published);
    } else {
        wasl_counter_inc(self->publish_failed);
    }
    wasl_msg_destroy(&msg);
}

/* Reads the tickets behind the claimed rows and classifies them into d[] (room for n).
 * Returns how many decisions, or -1 on a database or allocation error. */
static int fetch_and_decide(worker_t *self, const wasl_work_item_t *items, size_t n, decision_t *d)
{
    int64_t *ids = malloc(n * sizeof *ids);
    if (!ids) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        ids[i] = items[i].id;
    }
    char *arr = wasl_pg_bigint_array(ids, n);
    free(ids);
    const char *fp[] = {arr, self->owner};
    PGresult *res = arr ? wasl_pg_query(self->pg, fetch_sql, 2, fp) : NULL;
    free(arr);
    if (!res) {
        return -1;
    }
    size_t nd = decide(self, res, d);
    PQclear(res);
    return (int)nd;
}

/* Commits the decisions in one fenced statement and marks each one the fence let through,
 * with its route row. Returns 0, or -1 on a database or allocation error. */
static int commit_decisions(worker_t *self, decision_t *d, size_t nd)
{
    json_t *input = json_array();
    for (size_t i = 0; i < nd; i++) {
        json_array_append_new(input, decision_json(self, &d[i]));
    }
    char *param = json_dumps(input, JSON_COMPACT);
    json_decref(input);
    if (!param) {
        return -1;
    }
    const char *cp[] = {param, self->owner};
    wasl_pg_stmt_t stmt = {.sql = commit_sql, .nparams = 2, .params = cp};
    PGresult *out = NULL;
    int rc = wasl_pg_batch(self->pg, &stmt, 1, &out);
    free(param);
    if (rc < 0) {
        return -1;
    }
    if (!wasl_pg_arity(out, COMMIT_NCOLS, "wasl_tickets_classify")) {
        PQclear(out);
        return -1;
    }
    for (int r = 0; r < PQntuples(out); r++) {
        int64_t wid = strtoll(PQgetvalue(out, r, COMMIT_WORK_ID), NULL, 10);
        for (size_t i = 0; i < nd; i++) {
            if (d[i].work_id == wid) {
                d[i].committed = true;
                d[i].route_work_id =
                    PQgetisnull(out, r, COMMIT_ROUTE_WORK_ID)
                        ? 0
                        : strtoll(PQgetvalue(out, r, COMMIT_ROUTE_WORK_ID), NULL, 10);
            }
        }
    }
    PQclear(out);
    return 0;
}

/* After COMMIT: counts each decision and passes the committed ones on to the router. Returns
 * how many were committed (the others lost their lease to another worker). */
static int announce(worker_t *self, const decision_t *d, size_t nd)
{
    int committed = 0;
    for (size_t i = 0; i < nd; i++) {
        if (!d[i].committed) {
            wasl_counter_inc(self->lost);
            continue;
        }
        committed++;
        if (strcmp(d[i].c.category, WASL_CATEGORY_TRIAGE) == 0) {
            wasl_counter_inc(self->triaged);
        }
        char labels[96];
        snprintf(labels, sizeof labels, "category=\"%s\"", d[i].c.category);
        wasl_counter_inc(
            wasl_counter("wasl_classifier_classified_total", "Tickets classified", labels));
        publish(self, &d[i]);
        wasl_debug("classifier: classified", "{s:s, s:s, s:f, s:s}", "ref", d[i].ref, "category",
                   d[i].c.category, "confidence", d[i].c.confidence, "priority", d[i].c.priority);
    }
    return committed;
}

/* Classifies and commits rows this worker has claimed; on a database error gives them back. */
static int process_claimed(worker_t *self, const wasl_work_item_t *items, size_t n)
{
    if (n == 0) {
        return 0;
    }
    int64_t t0 = wasl_clock_ms();
    decision_t *d = calloc(n, sizeof *d);
    int committed = -1;
    int nd = d ? fetch_and_decide(self, items, n, d) : -1;
    if (nd >= 0 && commit_decisions(self, d, (size_t)nd) == 0) {
        committed = announce(self, d, (size_t)nd);
        wasl_histogram_observe(self->batch_seconds, (double)(wasl_clock_ms() - t0) / 1000.0);
    }
    atomic_store(&self->db_ok, committed >= 0);
    if (committed < 0) {
        /* Give the rows back with a backoff; after max_attempts they are dead letters with
         * this reason. */
        wasl_counter_inc(self->failed);
        wasl_work_give_back(self->pg, "classify", self->owner, items, n, wasl_pg_error(self->pg),
                            (int)self->cfg->retry_backoff_ms);
    }
    for (size_t i = 0; d && i < n; i++) {
        json_decref(d[i].entities);
    }
    free(d);
    return committed;
}

static int process_batch(void *arg, const wasl_work_item_t *items, size_t n)
{
    return process_claimed(arg, items, n);
}

int worker_process_ids(worker_t *self, const int64_t *work_ids, size_t n)
{
    int rc = wasl_work_run_ids(self->pg, "classify", self->owner, (int)self->cfg->lease_s, work_ids,
                               n, process_batch, self);
    if (rc < 0) {
        atomic_store(&self->db_ok, false);
    }
    return rc;
}

int worker_sweep(worker_t *self)
{
    /* One batch per call: the loop comes back at once when it was full, so that fresh nudges
     * are served between batches of a backlog. */
    int rc = wasl_work_run_stale(self->pg, "classify", self->owner, (int)self->cfg->lease_s,
                                 (size_t)self->cfg->batch_max, (int)self->cfg->sweep_min_age_ms,
                                 process_batch, self);
    atomic_store(&self->db_ok, rc >= 0);
    return rc;
}

int worker_run(worker_t *self)
{
    size_t max = (size_t)self->cfg->batch_max;
    int64_t *ids = malloc(max * sizeof *ids);
    if (!ids) {
        return -1;
    }
    self->last_sweep_ms = 0; /* sweep first: rows may have waited while no worker ran */
    while (!wasl_signal_stopping()) {
        if (wasl_signal_take_reload()) {
            worker_reload(self, self->cfg->model_path);
        }
        int64_t wait = self->last_sweep_ms + self->cfg->sweep_ms - wasl_clock_ms();
        size_t n = 0;
        if (self->pull) {
            zmq_pollitem_t item = {zsock_resolve(self->pull), 0, ZMQ_POLLIN, 0};
            int rc = zmq_poll(&item, 1, wait > 0 ? (long)wait : 0);
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
                if (!msg || msg->type != WASL_MSG_TICKET_RECEIVED) {
                    wasl_counter_inc(self->bad_messages);
                    wasl_warn("classifier: bad message on the classify stage; dropped",
                              "{s:s, s:s}", "error", msg ? "unexpected type" : err.message, "field",
                              msg ? "type" : err.field);
                    wasl_msg_destroy(&msg);
                    continue;
                }
                ids[n++] = (int64_t)msg->u.ticket_received.work_id;
                wasl_msg_destroy(&msg);
            }
        } else if (wait > 0) {
            wasl_signal_wait((int)wait);
        }
        if (n > 0) {
            worker_process_ids(self, ids, n);
        }
        if (wasl_clock_ms() - self->last_sweep_ms >= self->cfg->sweep_ms) {
            int swept = worker_sweep(self);
            /* A full batch means a backlog: sweep again right after the next poll. */
            self->last_sweep_ms = swept == (int)self->cfg->batch_max ? 0 : wasl_clock_ms();
        }
    }
    free(ids);
    return 0;
}

bool worker_ready(void *arg, char *why, size_t cap)
{
    worker_t *self = arg;
    if (!atomic_load(&self->db_ok)) {
        snprintf(why, cap, "PostgreSQL does not answer");
        return false;
    }
    return true;
}
