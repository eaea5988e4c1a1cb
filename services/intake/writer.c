/* writer — group commit: HTTP threads hand contacts to writer threads, which commit many per
 * transaction, answer each request only after COMMIT, and nudge the classifier over the bus. */
#include "writer.h"

#include "handlers.h"
#include "wasl_clock.h"
#include "wasl_log.h"
#include "wasl_metrics.h"
#include "wasl_proto.h"
#include "wasl_ref.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Ticket references: sequence values are taken from PostgreSQL this many at a time. */
#define REF_BLOCK 256
/* Riyadh is UTC+3 all year (no daylight saving): the reference's year is the local year. */
#define RIYADH_UTC_OFFSET_S (3 * 3600)
/* How often an idle writer checks that PostgreSQL still answers, and the reaper's period. */
#define WRITER_PROBE_MS  1000
#define REAPER_PERIOD_MS 50
/* A contact whose ticket a concurrent transaction was creating is retried this often. */
#define JOB_MAX_ATTEMPTS 10
/* Seconds a client is told to wait after a 503. */
#define RETRY_AFTER_S 2

enum { JOB_PENDING = 0, JOB_DONE = 1 };

/* One statement creates every ticket of a batch, with its event, message and classify row:
 * wasl_tickets_create() (proto/functions/tickets.sql). The contacts travel as one JSON array;
 * the answer gives, in input order, each contact's ticket — new or already there (the
 * idempotency key) — or a NULL ticket when another transaction was inserting the same one at
 * that moment: that contact is retried. */
static const char *const create_sql = "SELECT idx, ticket_id, ref, created, work_id"
                                      "  FROM wasl_tickets_create($1::jsonb)";

/* The columns of create_sql. */
enum { CREATE_IDX, CREATE_TICKET_ID, CREATE_REF, CREATE_CREATED, CREATE_WORK_ID, CREATE_NCOLS };

#define CREATE_STMT "intake_create"

struct intake_writer {
    intake_writers_t *pool;
    pthread_t thread;
    int index;
    wasl_pg_t *pg;
    zsock_t *bus; /* PUSH to the classify stage, or NULL without a bus */
    uint32_t refs[REF_BLOCK];
    size_t nrefs;
    int64_t *publish; /* work rows to nudge the classifier about once the transaction committed */
    size_t npublish, publish_cap;
};

struct intake_writers {
    const intake_config_t *cfg;
    wasl_zmq_t *zmq;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    intake_job_t *head, *tail; /* queue */
    size_t queued;
    intake_job_t *all; /* every job not yet released by the pool (for the reaper) */
    bool stopping;
    atomic_bool pg_up;
    pthread_t reaper;
    bool reaper_running;
    intake_writer_t *writers;
    size_t nwriters;
    wasl_gauge_t *queue_depth;
    wasl_histogram_t *batch_size;
    wasl_histogram_t *commit_seconds;
    wasl_counter_t *publish_failed;
    wasl_counter_t *published;
    wasl_counter_t *unavailable;
    wasl_counter_t *retried;
};

/* ---- jobs ------------------------------------------------------------------------------ */

intake_job_t *intake_job_new(intake_job_kind_t kind, const char *endpoint, int64_t deadline_ms)
{
    intake_job_t *job = calloc(1, sizeof *job);
    if (!job) {
        return NULL;
    }
    job->kind = kind;
    job->endpoint = endpoint;
    job->deadline_ms = deadline_ms;
    atomic_init(&job->state, JOB_PENDING);
    atomic_init(&job->refs, 1);
    return job;
}

void intake_job_release(intake_job_t **job_p)
{
    assert(job_p);
    intake_job_t *job = *job_p;
    *job_p = NULL;
    if (!job || atomic_fetch_sub(&job->refs, 1) != 1) {
        return;
    }
    intake_contact_clear(&job->contact);
    if (job->arg_free) {
        job->arg_free(job->arg);
    }
    json_decref(job->reply.body);
    free(job);
}

/* Finishes a job with `reply` (whose body it takes) unless someone finished it first; returns
 * true when this call won. */
static bool job_finish(intake_job_t *job, intake_reply_t *reply)
{
    int expected = JOB_PENDING;
    if (!atomic_compare_exchange_strong(&job->state, &expected, JOB_DONE)) {
        json_decref(reply->body);
        reply->body = NULL;
        return false;
    }
    job->reply = *reply;
    reply->body = NULL;
    if (job->on_done) {
        job->on_done(job);
    }
    return true;
}

static bool job_done(const intake_job_t *job)
{
    return atomic_load(&((intake_job_t *)job)->state) != JOB_PENDING;
}

static void job_unavailable(intake_writers_t *pool, intake_job_t *job, const char *why)
{
    intake_reply_t r = {0};
    intake_error(&r, 503, "unavailable", NULL,
                 "the ticket store is unavailable (%s); nothing was "
                 "stored, retry",
                 why);
    r.retry_after_s = RETRY_AFTER_S;
    if (job_finish(job, &r)) {
        wasl_counter_inc(pool->unavailable);
    }
}

/* Removes the pool's reference to a job it has finished with. */
static void pool_release(intake_writers_t *pool, intake_job_t *job)
{
    pthread_mutex_lock(&pool->lock);
    if (job->all_prev) {
        job->all_prev->all_next = job->all_next;
    } else {
        pool->all = job->all_next;
    }
    if (job->all_next) {
        job->all_next->all_prev = job->all_prev;
    }
    pthread_mutex_unlock(&pool->lock);
    intake_job_release(&job);
}

int intake_writers_submit(intake_writers_t *self, intake_job_t *job)
{
    pthread_mutex_lock(&self->lock);
    if (self->stopping) {
        pthread_mutex_unlock(&self->lock);
        return -1;
    }
    atomic_fetch_add(&job->refs, 1);
    job->next = NULL;
    if (self->tail) {
        self->tail->next = job;
    } else {
        self->head = job;
    }
    self->tail = job;
    self->queued++;
    job->all_prev = NULL;
    job->all_next = self->all;
    if (self->all) {
        self->all->all_prev = job;
    }
    self->all = job;
    wasl_gauge_set(self->queue_depth, (double)self->queued);
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    return 0;
}

/* Puts jobs back at the head of the queue (a retry). */
static void requeue(intake_writers_t *pool, intake_job_t **jobs, size_t n)
{
    pthread_mutex_lock(&pool->lock);
    for (size_t i = n; i-- > 0;) {
        jobs[i]->next = pool->head;
        pool->head = jobs[i];
        if (!pool->tail) {
            pool->tail = jobs[i];
        }
        pool->queued++;
    }
    pthread_cond_signal(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
}

/* ---- ticket creation -------------------------------------------------------------------- */

/* Refills the writer's block of reference sequence values. */
static int refill_refs(intake_writer_t *w)
{
    char count[16];
    snprintf(count, sizeof count, "%d", REF_BLOCK);
    const char *params[] = {count};
    PGresult *res = wasl_pg_query(
        w->pg, "SELECT nextval('ticket_ref_seq') FROM generate_series(1, $1::int)", 1, params);
    if (!res) {
        return -1;
    }
    int n = PQntuples(res);
    w->nrefs = 0;
    for (int i = n - 1; i >= 0 && w->nrefs < REF_BLOCK; i--) {
        w->refs[w->nrefs++] = (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10);
    }
    PQclear(res);
    return w->nrefs ? 0 : -1;
}

/* Formats the next ticket reference into out. */
static int next_ref(intake_writer_t *w, char out[WASL_REF_LEN + 1])
{
    if (w->nrefs == 0 && refill_refs(w) < 0) {
        return -1;
    }
    time_t now = time(NULL) + RIYADH_UTC_OFFSET_S;
    struct tm tm;
    gmtime_r(&now, &tm);
    return wasl_ref_format((tm.tm_year + 1900) % 100, w->refs[--w->nrefs], out);
}

static void set_str(json_t *obj, const char *key, const char *value)
{
    if (value) {
        json_object_set_new(obj, key, json_string(value));
    }
}

static json_t *contact_json(const intake_contact_t *c, int idx, const char *ref)
{
    json_t *o = json_object();
    json_object_set_new(o, "idx", json_integer(idx));
    set_str(o, "ref", ref);
    set_str(o, "channel", c->channel);
    set_str(o, "external_id", c->external_id);
    set_str(o, "client_id", c->client_id);
    set_str(o, "subject", c->subject);
    set_str(o, "body", c->body);
    set_str(o, "lang", c->lang);
    set_str(o, "case_number", c->case_number);
    set_str(o, "from_name", c->from_name);
    set_str(o, "from_phone", c->from_phone);
    set_str(o, "from_email", c->from_email);
    set_str(o, "from_national_id", c->from_national_id);
    set_str(o, "from_employee_id", c->from_employee_id);
    set_str(o, "received_at", c->received_at);
    set_str(o, "message_id", c->message_id);
    set_str(o, "auto_submitted", c->auto_submitted);
    set_str(o, "claimed_ref", c->claimed_ref);
    set_str(o, "msg_external_id", c->msg_external_id);
    set_str(o, "sender", c->sender);
    if (c->headers) {
        json_object_set(o, "headers", c->headers);
    }
    if (c->attachments) {
        json_object_set(o, "attachments", c->attachments);
    }
    if (c->event_data) {
        json_object_set(o, "event_data", c->event_data);
    }
    return o;
}

/* Builds the JSON parameter for create_sql; NULL on allocation or reference failure. */
static char *contacts_param(intake_writer_t *w, intake_contact_t *const *contacts, size_t n)
{
    json_t *arr = json_array();
    if (!arr) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        char ref[WASL_REF_LEN + 1];
        if (next_ref(w, ref) < 0) {
            json_decref(arr);
            return NULL;
        }
        json_array_append_new(arr, contact_json(contacts[i], (int)i, ref));
    }
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return text;
}

/* Reads create_sql's rows into out[]; returns how many contacts got a ticket (the others,
 * with ticket_id 0, lost a race with another transaction and must be retried). */
static size_t read_tickets(const PGresult *res, size_t n, intake_ticket_t *out)
{
    size_t resolved = 0;
    memset(out, 0, n * sizeof *out);
    if (!wasl_pg_arity(res, CREATE_NCOLS, "wasl_tickets_create")) {
        return 0; /* logged; every contact is retried, then refused */
    }
    for (int r = 0; r < PQntuples(res); r++) {
        size_t idx = strtoul(PQgetvalue(res, r, CREATE_IDX), NULL, 10);
        if (idx >= n || PQgetisnull(res, r, CREATE_TICKET_ID)) {
            continue;
        }
        out[idx].ticket_id = strtoll(PQgetvalue(res, r, CREATE_TICKET_ID), NULL, 10);
        snprintf(out[idx].ref, sizeof out[idx].ref, "%s", PQgetvalue(res, r, CREATE_REF));
        out[idx].created = PQgetvalue(res, r, CREATE_CREATED)[0] == 't';
        out[idx].work_id = PQgetisnull(res, r, CREATE_WORK_ID)
                               ? 0
                               : strtoll(PQgetvalue(res, r, CREATE_WORK_ID), NULL, 10);
        resolved++;
    }
    return resolved;
}

/* Copies `value` into a message field; NULL stays NULL. Returns 0, -1 on allocation failure. */
/* Notes a new ticket's classify row, to send its ticket.received after COMMIT. */
static void publish_later(intake_writer_t *w, const intake_ticket_t *t)
{
    if (!t->created || t->work_id == 0 || !w->bus) {
        return;
    }
    if (w->npublish == w->publish_cap) {
        size_t cap = w->publish_cap ? w->publish_cap * 2 : 64;
        int64_t *p = realloc(w->publish, cap * sizeof *p);
        if (!p) {
            return; /* the classifier's sweep finds the work row anyway */
        }
        w->publish = p;
        w->publish_cap = cap;
    }
    w->publish[w->npublish++] = t->work_id;
}

/* Forgets the rows of a transaction that did not commit. */
static void publish_drop(intake_writer_t *w)
{
    w->npublish = 0;
}

/* Sends ticket.received for everything committed; never blocks (the work rows are the truth,
 * so a full or absent bus only delays classification until the sweep). */
static void publish_committed(intake_writer_t *w)
{
    wasl_msg_t *msg = w->npublish ? wasl_msg_new(WASL_MSG_TICKET_RECEIVED) : NULL;
    for (size_t i = 0; i < w->npublish; i++) {
        wasl_msg_error_t err;
        if (msg) {
            msg->u.ticket_received.work_id = (uint64_t)w->publish[i];
        }
        if (msg && wasl_msg_send(msg, w->bus, &err) == 0) {
            wasl_counter_inc(w->pool->published);
        } else {
            wasl_counter_inc(w->pool->publish_failed);
            wasl_debug("intake: ticket.received not sent; the work row stands", "{s:I, s:s}",
                       "work", (json_int_t)w->publish[i], "error", msg ? err.message : "memory");
        }
    }
    wasl_msg_destroy(&msg);
    publish_drop(w);
}

int intake_writer_create(intake_writer_t *w, intake_contact_t *contacts, size_t n,
                         intake_ticket_t *out)
{
    intake_contact_t *ptrs[16];
    assert(n <= sizeof ptrs / sizeof ptrs[0]);
    for (size_t i = 0; i < n; i++) {
        ptrs[i] = &contacts[i];
    }
    char *param = contacts_param(w, ptrs, n);
    if (!param) {
        return -1;
    }
    const char *params[] = {param};
    PGresult *res = wasl_pg_exec(w->pg, CREATE_STMT, 1, params);
    free(param);
    if (!res) {
        return -1;
    }
    size_t resolved = read_tickets(res, n, out);
    PQclear(res);
    if (resolved < n) {
        /* Another transaction is creating the same ticket: the job runs again. */
        return INTAKE_TXN_RETRY;
    }
    for (size_t i = 0; i < n; i++) {
        publish_later(w, &out[i]);
    }
    return 0;
}

const intake_config_t *intake_writer_config(const intake_writer_t *w)
{
    return w->pool->cfg;
}

static json_t *accepted_body(const intake_ticket_t *t)
{
    return json_pack("{s:s, s:s, s:b}", "ticket", t->ref, "status", "received", "duplicate",
                     !t->created);
}

/* Copies of one contact from one client. (Two clients' equal email ids both go into the
 * statement: the second finds the first's ticket on its retry, as across transactions.) */
static bool same_key(const intake_contact_t *a, const intake_contact_t *b)
{
    return strcmp(a->channel, b->channel) == 0 && strcmp(a->external_id, b->external_id) == 0 &&
           strcmp(a->client_id ? a->client_id : "", b->client_id ? b->client_id : "") == 0;
}

/* Finds the copies of one contact inside a batch (a client retrying in a storm): each job's
 * slot is its contact's position in contacts[], first[i] tells the job that put it there.
 * Returns how many distinct contacts there are. */
static size_t dedupe_batch(intake_job_t **jobs, size_t n, intake_contact_t **contacts, size_t *slot,
                           bool *first)
{
    size_t nuniq = 0;
    for (size_t i = 0; i < n; i++) {
        first[i] = true;
        for (size_t j = 0; j < i; j++) {
            if (first[j] && same_key(&jobs[i]->contact, &jobs[j]->contact)) {
                first[i] = false;
                slot[i] = slot[j];
                break;
            }
        }
        if (first[i]) {
            slot[i] = nuniq;
            contacts[nuniq++] = &jobs[i]->contact;
        }
    }
    return nuniq;
}

/* Commits the distinct contacts of a batch with create_sql. Returns its result, or NULL on a
 * database or allocation error (logged; the pool is marked down). */
static PGresult *commit_batch(intake_writer_t *w, intake_contact_t **contacts, size_t nuniq,
                              size_t njobs)
{
    intake_writers_t *pool = w->pool;
    char *param = contacts_param(w, contacts, nuniq);
    PGresult *res = NULL;
    int64_t t0 = wasl_clock_ms();
    if (param) {
        const char *params[] = {param};
        wasl_pg_stmt_t stmt = {.name = CREATE_STMT, .nparams = 1, .params = params};
        if (wasl_pg_batch(w->pg, &stmt, 1, &res) < 0) {
            res = NULL;
        }
    }
    free(param);
    if (!res) {
        atomic_store(&pool->pg_up, false);
        wasl_warn("intake: batch not committed", "{s:i, s:s, s:s}", "contacts", (int)njobs, "error",
                  wasl_pg_error(w->pg), "sqlstate", wasl_pg_sqlstate(w->pg));
        return NULL;
    }
    atomic_store(&pool->pg_up, true);
    wasl_histogram_observe(pool->commit_seconds, (double)(wasl_clock_ms() - t0) / 1000.0);
    wasl_histogram_observe(pool->batch_size, (double)nuniq);
    return res;
}

/* Answers each job of a committed batch with its contact's ticket (a copy is a duplicate).
 * A contact another transaction was inserting has no ticket yet: its jobs go to retry[]
 * (their slot in jobs[] set to NULL) until they run out of attempts. Returns how many. */
static size_t answer_batch(intake_writers_t *pool, intake_job_t **jobs, size_t n,
                           const intake_ticket_t *tickets, const size_t *slot, const bool *first,
                           intake_job_t **retry)
{
    size_t nretry = 0;
    for (size_t i = 0; i < n; i++) {
        intake_ticket_t t = tickets[slot[i]];
        if (t.ticket_id == 0) {
            if (++jobs[i]->attempts < JOB_MAX_ATTEMPTS) {
                retry[nretry++] = jobs[i];
                jobs[i] = NULL; /* stays in the pool */
                wasl_counter_inc(pool->retried);
            } else {
                job_unavailable(pool, jobs[i], "concurrent insert did not resolve");
            }
            continue;
        }
        t.created = t.created && first[i];
        intake_reply_t r = {.status = t.created ? 201 : 200, .body = accepted_body(&t)};
        job_finish(jobs[i], &r);
    }
    return nretry;
}

/* Commits a batch of ticket jobs in one transaction and answers them. Copies of one contact
 * inside the batch go into the statement once; the copies get the same ticket as duplicates. */
static void run_ticket_batch(intake_writer_t *w, intake_job_t **jobs, size_t n)
{
    intake_writers_t *pool = w->pool;
    intake_contact_t **contacts = malloc(n * sizeof *contacts);
    intake_ticket_t *tickets = malloc(n * sizeof *tickets);
    size_t *slot = malloc(n * sizeof *slot); /* job -> position in contacts[] */
    bool *first = malloc(n * sizeof *first);
    intake_job_t **retry = malloc(n * sizeof *retry);
    size_t nretry = 0;
    const char *why = "out of memory";
    bool committed = false;
    if (contacts && tickets && slot && first && retry) {
        size_t nuniq = dedupe_batch(jobs, n, contacts, slot, first);
        PGresult *res = commit_batch(w, contacts, nuniq, n);
        why = "database error";
        committed = res != NULL;
        if (committed) {
            read_tickets(res, nuniq, tickets);
            PQclear(res);
            publish_drop(w);
            for (size_t k = 0; k < nuniq; k++) {
                publish_later(w, &tickets[k]);
            }
            /* Committed: nudge the classifier, then answer. */
            publish_committed(w);
            nretry = answer_batch(pool, jobs, n, tickets, slot, first, retry);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (jobs[i]) {
            if (!committed) {
                job_unavailable(pool, jobs[i], why);
            }
            pool_release(pool, jobs[i]);
        }
    }
    if (nretry) {
        requeue(pool, retry, nretry);
    }
    free(contacts);
    free(tickets);
    free(slot);
    free(first);
    free(retry);
}

/* Runs one transaction job; its answer is sent only after COMMIT. */
static void run_txn(intake_writer_t *w, intake_job_t *job)
{
    intake_writers_t *pool = w->pool;
    intake_reply_t r = {0};
    publish_drop(w);
    if (wasl_pg_begin(w->pg) < 0) {
        atomic_store(&pool->pg_up, false);
        job_unavailable(pool, job, "database error");
        pool_release(pool, job);
        return;
    }
    int rc = job->txn(job, w, w->pg, &r);
    if (rc == 0 && wasl_pg_commit(w->pg) == 0) {
        atomic_store(&pool->pg_up, true);
        publish_committed(w);
        job_finish(job, &r);
        pool_release(pool, job);
        return;
    }
    wasl_pg_rollback(w->pg);
    publish_drop(w);
    if (rc < 0 && r.body && r.status >= 400 && r.status < 500) {
        job_finish(job, &r); /* a refusal the function decided (e.g. 404) */
        pool_release(pool, job);
        return;
    }
    json_decref(r.body);
    const char *state = wasl_pg_sqlstate(w->pg);
    bool retryable = rc == INTAKE_TXN_RETRY || (state[0] == '4' && state[1] == '0');
    if (retryable && ++job->attempts < JOB_MAX_ATTEMPTS) {
        /* Serialization failure or deadlock (class 40): run it again. */
        wasl_counter_inc(pool->retried);
        requeue(pool, &job, 1);
        return;
    }
    atomic_store(&pool->pg_up, wasl_pg_ok(w->pg));
    wasl_warn("intake: transaction not committed", "{s:s, s:s, s:s}", "endpoint", job->endpoint,
              "error", wasl_pg_error(w->pg), "sqlstate", state);
    job_unavailable(pool, job, "database error");
    pool_release(pool, job);
}

/* ---- threads ---------------------------------------------------------------------------- */

/* One round trip that keeps the readiness flag true to life. */
static void probe(intake_writer_t *w)
{
    PGresult *res = wasl_pg_query(w->pg, "SELECT 1", 0, NULL);
    atomic_store(&w->pool->pg_up, res != NULL);
    PQclear(res);
}

/* Waits for jobs (up to `cap`, ticket jobs into tickets[] and transaction jobs into txns[]),
 * or for the probe period to pass with none. Returns false when the pool is stopping and
 * nothing is left. */
static bool take_jobs(intake_writers_t *pool, int64_t last_probe, size_t cap,
                      intake_job_t **tickets, size_t *nt, intake_job_t **txns, size_t *nx)
{
    *nt = *nx = 0;
    pthread_mutex_lock(&pool->lock);
    while (!pool->head && !pool->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&pool->wake, &pool->lock, &until);
        if (!pool->head && wasl_clock_ms() - last_probe >= WRITER_PROBE_MS) {
            break;
        }
    }
    if (!pool->head && pool->stopping) {
        pthread_mutex_unlock(&pool->lock);
        return false;
    }
    while (pool->head && *nt + *nx < cap) {
        intake_job_t *job = pool->head;
        pool->head = job->next;
        if (!pool->head) {
            pool->tail = NULL;
        }
        pool->queued--;
        job->next = NULL;
        if (job->kind == INTAKE_JOB_TICKET) {
            tickets[(*nt)++] = job;
        } else {
            txns[(*nx)++] = job;
        }
    }
    wasl_gauge_set(pool->queue_depth, (double)pool->queued);
    pthread_mutex_unlock(&pool->lock);
    return true;
}

/* Runs what take_jobs() took. Jobs already answered by the reaper (past their deadline) are
 * not run: their client was told nothing is stored and will retry. */
static void run_jobs(intake_writer_t *w, intake_job_t **tickets, size_t nt, intake_job_t **txns,
                     size_t nx)
{
    size_t keep = 0;
    for (size_t i = 0; i < nt; i++) {
        if (job_done(tickets[i])) {
            pool_release(w->pool, tickets[i]);
        } else {
            tickets[keep++] = tickets[i];
        }
    }
    if (keep) {
        run_ticket_batch(w, tickets, keep);
    }
    for (size_t i = 0; i < nx; i++) {
        if (job_done(txns[i])) {
            pool_release(w->pool, txns[i]);
        } else {
            run_txn(w, txns[i]);
        }
    }
}

static void *writer_thread(void *arg)
{
    intake_writer_t *w = arg;
    size_t cap = (size_t)w->pool->cfg->batch_max;
    intake_job_t **tickets = malloc(cap * sizeof *tickets);
    intake_job_t **txns = malloc(cap * sizeof *txns);
    if (!tickets || !txns) {
        wasl_error("intake: writer cannot allocate its batch", NULL);
        free(tickets);
        free(txns);
        return NULL;
    }
    probe(w); /* readiness from the start: one round trip before waiting for work */
    int64_t last_probe = wasl_clock_ms();
    size_t nt, nx;
    while (take_jobs(w->pool, last_probe, cap, tickets, &nt, txns, &nx)) {
        if (nt + nx == 0) {
            probe(w); /* idle */
        } else {
            run_jobs(w, tickets, nt, txns, nx);
        }
        last_probe = wasl_clock_ms();
    }
    free(tickets);
    free(txns);
    return NULL;
}

/* Answers 503 to every job past its deadline, whether queued or stuck in a transaction. */
static void *reaper_thread(void *arg)
{
    intake_writers_t *pool = arg;
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        bool stopping = pool->stopping && !pool->all;
        int64_t now = wasl_clock_ms();
        intake_job_t *expired[64];
        size_t n = 0;
        for (intake_job_t *j = pool->all; j && n < 64; j = j->all_next) {
            if (!job_done(j) && now >= j->deadline_ms) {
                atomic_fetch_add(&j->refs, 1);
                expired[n++] = j;
            }
        }
        pthread_mutex_unlock(&pool->lock);
        for (size_t i = 0; i < n; i++) {
            job_unavailable(pool, expired[i], "deadline passed");
            intake_job_release(&expired[i]);
        }
        if (stopping) {
            break;
        }
        struct timespec ts = {0, REAPER_PERIOD_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

intake_writers_t *intake_writers_new(const intake_config_t *cfg, wasl_zmq_t *zmq)
{
    intake_writers_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->cfg = cfg;
    self->zmq = zmq;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    atomic_init(&self->pg_up, false);
    self->queue_depth =
        wasl_gauge("wasl_intake_queue_depth", "Contacts waiting for a writer", NULL);
    static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    self->batch_size = wasl_histogram("wasl_intake_batch_size", "Tickets committed per transaction",
                                      NULL, batch_bounds, sizeof batch_bounds / sizeof(double));
    self->commit_seconds = wasl_histogram("wasl_intake_commit_seconds", "Time to commit one batch",
                                          NULL, wasl_latency_buckets_s, wasl_latency_buckets_n);
    self->published = wasl_counter("wasl_intake_bus_published_total",
                                   "ticket.received messages sent to the bus", NULL);
    self->publish_failed = wasl_counter("wasl_intake_bus_publish_failures_total",
                                        "ticket.received not sent (bus full or absent)", NULL);
    self->unavailable = wasl_counter("wasl_intake_unavailable_total",
                                     "Contacts answered 503 (database down or too slow)", NULL);
    self->retried = wasl_counter("wasl_intake_retries_total",
                                 "Contacts retried after a concurrent insert or a conflict", NULL);

    self->nwriters = (size_t)cfg->writers;
    self->writers = calloc(self->nwriters, sizeof *self->writers);
    if (!self->writers) {
        goto error;
    }
    char *endpoints = NULL;
    if (cfg->bus && *cfg->bus) {
        endpoints = wasl_bus_endpoints(cfg->bus, cfg->bus_stages, "classify", WASL_BUS_PUSH);
        if (!endpoints) {
            wasl_error("intake: WASL_BUS is not a list of tcp://host:port, or WASL_BUS_STAGES "
                       "has no classify stage",
                       "{s:s}", "bus", cfg->bus);
            goto error;
        }
    }
    for (size_t i = 0; i < self->nwriters; i++) {
        intake_writer_t *w = &self->writers[i];
        w->pool = self;
        w->index = (int)i;
        w->pg = wasl_pg_new(cfg->pg_url);
        /* Prepared once per connection: parsing and planning the batch statement would cost
         * more than running it. */
        if (!w->pg || wasl_pg_prepare(w->pg, CREATE_STMT, create_sql) < 0 ||
            intake_inbound_prepare(w->pg) < 0) {
            free(endpoints);
            goto error;
        }
        if (endpoints) {
            w->bus = wasl_zmq_connect(zmq, ZMQ_PUSH, endpoints);
            if (!w->bus) {
                free(endpoints);
                goto error;
            }
            zsock_set_sndtimeo(w->bus, 0); /* never block a writer on the bus */
        }
    }
    free(endpoints);
    for (size_t i = 0; i < self->nwriters; i++) {
        if (pthread_create(&self->writers[i].thread, NULL, writer_thread, &self->writers[i]) != 0) {
            self->nwriters = i;
            goto error;
        }
    }
    if (pthread_create(&self->reaper, NULL, reaper_thread, self) != 0) {
        goto error;
    }
    self->reaper_running = true;
    return self;
error:
    intake_writers_destroy(&self);
    return NULL;
}

void intake_writers_stop(intake_writers_t *self)
{
    if (!self) {
        return;
    }
    pthread_mutex_lock(&self->lock);
    bool was_stopping = self->stopping;
    self->stopping = true;
    pthread_cond_broadcast(&self->wake);
    pthread_mutex_unlock(&self->lock);
    if (was_stopping) {
        return;
    }
    for (size_t i = 0; i < self->nwriters; i++) {
        if (self->writers[i].thread) {
            pthread_join(self->writers[i].thread, NULL);
        }
    }
    /* Writers are gone: answer what is left (nothing, unless every writer failed). Submit
     * refuses new jobs from now on, so the list only shrinks. */
    pthread_mutex_lock(&self->lock);
    intake_job_t *left = self->head;
    self->head = self->tail = NULL;
    pthread_mutex_unlock(&self->lock);
    for (intake_job_t *j = left; j;) {
        intake_job_t *next = j->next;
        job_unavailable(self, j, "shutting down");
        pool_release(self, j);
        j = next;
    }
    if (self->reaper_running) {
        pthread_join(self->reaper, NULL);
        self->reaper_running = false;
    }
}

void intake_writers_destroy(intake_writers_t **self_p)
{
    assert(self_p);
    intake_writers_t *self = *self_p;
    if (!self) {
        return;
    }
    intake_writers_stop(self);
    if (self->writers) {
        for (size_t i = 0; i < (size_t)self->cfg->writers; i++) {
            wasl_pg_destroy(&self->writers[i].pg);
            zsock_destroy(&self->writers[i].bus);
            free(self->writers[i].publish);
        }
        free(self->writers);
    }
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->wake);
    free(self);
    *self_p = NULL;
}

bool intake_writers_ready(intake_writers_t *self, char *why, size_t cap)
{
    if (!atomic_load(&self->pg_up)) {
        snprintf(why, cap, "PostgreSQL does not answer");
        return false;
    }
    return true;
}
