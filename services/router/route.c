/* route — the routing job: claim classified tickets' route rows, read them, decide each (decide.c:
 * the rules, auto-answer), ask caselookup for the automatic answers of a batch at once, commit
 * every decision of the batch in one statement fenced on the lease — with the offer round in
 * the same transaction once the router has caught up. */
#include "decide.h"
#include "router_int.h"
#include "wasl_log.h"
#include "wasl_proto.h"
#include "wasl_work.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---- SQL --------------------------------------------------------------------------------- */

/* The columns of fetch_sql, in order: read by name in read_row. */
enum {
    FETCH_WORK_ID,
    FETCH_TICKET_ID,
    FETCH_REF,
    FETCH_CHANNEL,
    FETCH_CATEGORY,
    FETCH_PRIORITY,
    FETCH_LANGUAGE,
    FETCH_BENEFICIARY,
    FETCH_ENTITY_KINDS,
    FETCH_NOW,
    FETCH_AUTO_SUBMITTED,
    FETCH_FROM_PHONE,
    FETCH_FROM_EMAIL,
    FETCH_CASE_NUMBER,
    FETCH_NATIONAL_ID,
    FETCH_TRUSTED_PHONE,
    FETCH_COLS
};
static const char *const fetch_sql =
    "SELECT w.id, t.id, t.ref, t.channel, coalesce(t.category, 'triage'),"
    "  coalesce(t.priority, 'normal'), coalesce(t.language, 'ar'), t.beneficiary_type,"
    "  CASE WHEN jsonb_typeof(t.entities) = 'object' THEN"
    "    coalesce((SELECT string_agg(k, ',') FROM jsonb_object_keys(t.entities) k), '') ELSE ''"
    "  END,"
    "  extract(epoch FROM wasl_now())::bigint, t.auto_submitted IS NOT NULL,"
    "  coalesce(t.from_phone, ''), coalesce(t.from_email, ''),"
    "  coalesce(t.case_number, t.entities->'case_number'->>0, ''),"
    "  coalesce(t.from_national_id, ''),"
    /* The phone that may verify a party: only a caller number the network gave a telephony
     * client trusted for caller ID (clients.trusted_ani). A phone typed into a report proves
     * nothing, so it never verifies, even though the answer would go to the contact on file. */
    "  CASE WHEN t.channel = 'phone' AND EXISTS (SELECT 1 FROM clients c"
    "    WHERE c.id = t.client_id AND c.kind = 'telephony' AND c.trusted_ani)"
    "  THEN coalesce(t.from_phone, '') ELSE '' END"
    " FROM work w JOIN tickets t ON t.id = w.ticket_id"
    " WHERE w.id = ANY($1::bigint[]) AND w.owner = $2 ORDER BY w.id";

/* Every decision of a batch in one statement, fenced on the lease (wasl_tickets_route,
 * proto/functions/tickets.sql: the work rows completed, the tickets routed, their events and
 * notifications). */
static const char *const commit_sql = "SELECT work_id, notification_id, channel, ticket_id, kind"
                                      "  FROM wasl_tickets_route($1::jsonb, $2)";

/* The columns of commit_sql's result. */
enum {
    COMMIT_WORK_ID,
    COMMIT_NOTE_ID,
    COMMIT_NOTE_CHANNEL,
    COMMIT_TICKET_ID,
    COMMIT_NOTE_KIND,
    COMMIT_COLS
};

/* ---- routing: one decision per classified ticket ----------------------------------------- */

/* One fetched row on its way to the commit: the row, its plan, and the lookup asked for it. */
typedef struct {
    route_row_t row;
    route_plan_t plan;
    wasl_msg_t *req; /* the case.lookup request to send (owned), or NULL */
    wasl_msg_t *rep; /* its reply (owned), NULL when caselookup did not answer */
} routing_t;

/* Fills a row from fetch_sql's row r (strings borrowed from res). */
static void read_row(PGresult *res, int r, route_row_t *row)
{
    memset(row, 0, sizeof *row);
    row->work_id = strtoll(PQgetvalue(res, r, FETCH_WORK_ID), NULL, 10);
    row->ticket_id = strtoll(PQgetvalue(res, r, FETCH_TICKET_ID), NULL, 10);
    row->ref = PQgetvalue(res, r, FETCH_REF);
    row->channel = PQgetvalue(res, r, FETCH_CHANNEL);
    row->category = PQgetvalue(res, r, FETCH_CATEGORY);
    row->priority = PQgetvalue(res, r, FETCH_PRIORITY);
    row->language = PQgetvalue(res, r, FETCH_LANGUAGE);
    row->beneficiary = PQgetvalue(res, r, FETCH_BENEFICIARY);
    route_row_set_kinds(row, PQgetvalue(res, r, FETCH_ENTITY_KINDS));
    row->now = (time_t)strtoll(PQgetvalue(res, r, FETCH_NOW), NULL, 10);
    row->auto_submitted = strcmp(PQgetvalue(res, r, FETCH_AUTO_SUBMITTED), "t") == 0;
    row->from_phone = PQgetvalue(res, r, FETCH_FROM_PHONE);
    row->from_email = PQgetvalue(res, r, FETCH_FROM_EMAIL);
    row->case_number = PQgetvalue(res, r, FETCH_CASE_NUMBER);
    row->national_id = PQgetvalue(res, r, FETCH_NATIONAL_ID);
    row->trusted_phone = PQgetvalue(res, r, FETCH_TRUSTED_PHONE);
}

/* Reads and plans every row; returns whether any asks caselookup. */
static bool plan_rows(router_t *self, PGresult *res, routing_t *rs, size_t nrows)
{
    bool asking = false;
    bool up = self->rpc && wasl_clock_ms() >= self->rpc_down_until_ms;
    for (size_t r = 0; r < nrows; r++) {
        routing_t *x = &rs[r];
        read_row(res, (int)r, &x->row);
        route_plan(self->rules, &x->row, self->cfg->auto_answer, up, &x->plan);
        if (x->plan.unavailable) {
            wasl_counter_inc(self->auto_declined);
        }
        if (!x->plan.auto_answer && !(x->req = route_lookup_request(&x->row))) {
            x->plan.auto_answer = "not answered: out of memory";
        }
        asking = asking || x->req;
    }
    return asking;
}

/* Sends every row's request to caselookup, AUTO_ANSWER_CHUNK at once, and keeps each
 * reply with its row. A reply that does not carry its request's request_id is no answer. When
 * any request went unanswered, no more are asked for AUTO_ANSWER_BACKOFF_MS. */
static void ask_caselookup(router_t *self, routing_t *rs, size_t nrows)
{
    const wasl_msg_t **reqs = calloc(nrows, sizeof *reqs);
    wasl_msg_t **reps = calloc(nrows, sizeof *reps);
    routing_t **asked = calloc(nrows, sizeof *asked);
    size_t n = 0;
    if (!reqs || !reps || !asked) {
        goto done; /* every request stays unanswered: "did not answer" */
    }
    for (size_t i = 0; i < nrows; i++) {
        if (rs[i].req) {
            asked[n] = &rs[i];
            reqs[n++] = rs[i].req;
        }
    }
    for (size_t o = 0; o < n; o += AUTO_ANSWER_CHUNK) {
        size_t m = n - o < AUTO_ANSWER_CHUNK ? n - o : AUTO_ANSWER_CHUNK;
        wasl_rpc_request_many(self->rpc, m, reqs + o, reps + o);
    }
    for (size_t i = 0; i < n; i++) {
        const char *sent = asked[i]->req->u.case_lookup_request.request_id;
        if (reps[i] && reps[i]->type == WASL_MSG_CASE_LOOKUP_REPLY &&
            reps[i]->u.case_lookup_reply.request_id &&
            strcmp(reps[i]->u.case_lookup_reply.request_id, sent) == 0) {
            asked[i]->rep = reps[i]; /* ownership to the row */
        } else {
            wasl_msg_destroy(&reps[i]);
        }
    }
done:
    for (size_t i = 0; i < nrows; i++) {
        if (rs[i].req && !rs[i].rep) {
            self->rpc_down_until_ms = wasl_clock_ms() + AUTO_ANSWER_BACKOFF_MS;
        }
    }
    free(reqs);
    free(reps);
    free(asked);
}

/* The commit statement's input for every row of the fetch, as JSON text (the caller frees), or
 * NULL when out of memory. Every row is decided first, then one round trip to caselookup for
 * the whole batch. */
static char *decide_rows(router_t *self, PGresult *res)
{
    size_t nrows = (size_t)PQntuples(res);
    routing_t *rs = calloc(nrows ? nrows : 1, sizeof *rs);
    if (!rs) {
        return NULL;
    }
    if (plan_rows(self, res, rs, nrows)) {
        ask_caselookup(self, rs, nrows);
    }
    json_t *input = json_array();
    for (size_t r = 0; r < nrows; r++) {
        route_answer_t answer;
        if (rs[r].plan.auto_answer) {
            route_no_answer(&rs[r].plan, &answer);
        } else {
            route_answer(rs[r].rep, rs[r].row.language, &answer);
            wasl_counter_inc(*answer.text ? self->auto_answered : self->auto_declined);
        }
        json_array_append_new(input, route_commit_input(&rs[r].row, &rs[r].plan, &answer));
        wasl_msg_destroy(&rs[r].req);
        wasl_msg_destroy(&rs[r].rep);
    }
    free(rs);
    char *param = json_dumps(input, JSON_COMPACT);
    json_decref(input);
    return param;
}

/* The route statement and then the offer round (router_offer_round, under its savepoint) in
 * one transaction: the decisions, their acknowledgements and the offers they make possible
 * are one commit, not two. Returns the route statement's result, or NULL on a database error
 * (rolled back, the error copied into why); *made is the offers written. */
static PGresult *commit_with_offers(router_t *self, const char *const *cp, int *made, char *why,
                                    size_t cap)
{
    PGresult *out = NULL;
    *made = 0;
    if (wasl_pg_begin(self->pg) == 0 && (out = wasl_pg_query(self->pg, commit_sql, 2, cp)) &&
        (*made = router_offer_round(self)) >= 0 && wasl_pg_commit(self->pg) == 0) {
        return out;
    }
    snprintf(why, cap, "%s", wasl_pg_error(self->pg));
    PQclear(out);
    wasl_pg_rollback(self->pg);
    *made = 0;
    return NULL;
}

/* Commits the decisions (with the offer round when `offer`) and publishes their
 * notifications once committed; returns how many work rows were committed (others lost their
 * lease), or -1 on a database error (why says it). */
static int commit_rows(router_t *self, const char *param, bool offer, char *why, size_t cap)
{
    const char *cp[] = {param, self->owner};
    PGresult *out = NULL;
    int made = 0;
    if (offer) {
        if (!(out = commit_with_offers(self, cp, &made, why, cap))) {
            return -1;
        }
    } else {
        wasl_pg_stmt_t stmt = {.sql = commit_sql, .nparams = 2, .params = cp};
        if (wasl_pg_batch(self->pg, &stmt, 1, &out) < 0) {
            snprintf(why, cap, "%s", wasl_pg_error(self->pg));
            return -1;
        }
    }
    wasl_counter_add(self->offered, (uint64_t)made);
    /* Committed already: a result of the wrong shape cannot be read, but the work is done. */
    if (!router_checked(&out, COMMIT_COLS, "route commit")) {
        return 0;
    }
    int committed = 0;
    for (int r = 0; r < PQntuples(out); r++) {
        /* Rows come grouped by work row: a ticket with two notifications has two. */
        if (r == 0 || strcmp(PQgetvalue(out, r, COMMIT_WORK_ID),
                             PQgetvalue(out, r - 1, COMMIT_WORK_ID)) != 0) {
            committed++;
            wasl_counter_inc(self->routed);
        }
        if (!PQgetisnull(out, r, COMMIT_NOTE_ID)) {
            router_publish_notification(self,
                                        strtoll(PQgetvalue(out, r, COMMIT_NOTE_ID), NULL, 10));
        }
    }
    PQclear(out);
    return committed;
}

/* Fetches the claimed rows, decides them and commits; on a database error the rows are given
 * back with a backoff. A batch short of WASL_ROUTER_BATCH means the router caught up: its
 * commit carries the offer round too. A full one (a backlog) commits the decisions alone and
 * the offers keep the dispatch cadence (a round after every full batch took a fifth of the
 * router's time). */
static int route_claimed(router_t *self, const wasl_work_item_t *items, size_t n)
{
    if (n == 0) {
        return 0;
    }
    int64_t t0 = wasl_clock_ms();
    int committed = -1;
    char *param = NULL, *arr = NULL, why[256] = "";
    int64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; ids && i < n; i++) {
        ids[i] = items[i].id;
    }
    arr = ids ? wasl_pg_bigint_array(ids, n) : NULL;
    const char *fp[] = {arr, self->owner};
    PGresult *res = arr ? wasl_pg_query(self->pg, fetch_sql, 2, fp) : NULL;
    if (router_checked(&res, FETCH_COLS, "ticket fetch")) {
        param = decide_rows(self, res);
        PQclear(res);
    }
    bool offer = n < (size_t)self->cfg->batch_max;
    if (param && (committed = commit_rows(self, param, offer, why, sizeof why)) >= 0) {
        if ((size_t)committed < n) {
            wasl_counter_add(self->lost, n - (size_t)committed);
        }
        wasl_histogram_observe(self->batch_seconds, (double)(wasl_clock_ms() - t0) / 1000.0);
    }
    atomic_store(&self->db_ok, committed >= 0);
    if (committed < 0) {
        wasl_counter_inc(self->failed);
        wasl_work_give_back(self->pg, "route", self->owner, items, n,
                            *why ? why : wasl_pg_error(self->pg), (int)self->cfg->retry_backoff_ms);
    }
    free(ids);
    free(arr);
    free(param);
    return committed;
}

static int route_batch(void *arg, const wasl_work_item_t *items, size_t n)
{
    return route_claimed(arg, items, n);
}

int router_route_ids(router_t *self, const int64_t *work_ids, size_t n)
{
    int rc = wasl_work_run_ids(self->pg, "route", self->owner, (int)self->cfg->lease_s, work_ids, n,
                               route_batch, self);
    if (rc < 0) {
        atomic_store(&self->db_ok, false);
    }
    return rc;
}

int router_sweep(router_t *self)
{
    int rc = wasl_work_run_stale(self->pg, "route", self->owner, (int)self->cfg->lease_s,
                                 (size_t)self->cfg->batch_max, (int)self->cfg->sweep_min_age_ms,
                                 route_batch, self);
    atomic_store(&self->db_ok, rc >= 0);
    return rc;
}
