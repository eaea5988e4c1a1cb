/* route — the routing job: claim classified tickets' route rows, decide each by the rules
 * (queue, priority, SLA), ask caselookup for the automatic answers of a batch at once, commit
 * every decision of the batch in one statement fenced on the lease. */
#include "router_int.h"
#include "wasl_log.h"
#include "wasl_proto.h"
#include "wasl_work.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---- SQL --------------------------------------------------------------------------------- */

#define FETCH_COLS 16 /* the columns of fetch_sql, read by number in plan_row and after */
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

/* Every decision of a batch in one statement, fenced on the lease (see the classifier). */
static const char *const commit_sql =
    "WITH input AS ("
    "  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(work_id bigint, ticket_id bigint,"
    "    queue text, priority text, prio_rank smallint, skills text[], rule text,"
    "    fr_due double precision, res_due double precision, event jsonb, notes jsonb,"
    "    answered boolean)"
    "), done AS ("
    "  UPDATE work w SET state = 'done', done_at = now(), updated_at = now(), lease_until = NULL"
    "  FROM input i WHERE w.id = i.work_id AND w.state = 'running' AND w.owner = $2"
    "    AND w.lease_until > now()"
    "  RETURNING w.id"
    "), upd AS ("
    "  UPDATE tickets t SET queue = i.queue, priority = i.priority, prio_rank = i.prio_rank,"
    "    skills = i.skills, route_rule = i.rule, routed_at = wasl_now(),"
    "    first_response_due = to_timestamp(i.fr_due), resolution_due = to_timestamp(i.res_due),"
    /* A callback keeps the caller's place: the call's first event, when it came earlier. */
    "    waiting_since = coalesce(t.waiting_since, least(t.received_at, (SELECT"
    "      min(c2.received_at) FROM call_events c1 JOIN call_events c2"
    "      ON c2.call_id = c1.call_id AND c2.client_id IS NOT DISTINCT FROM c1.client_id"
    "      WHERE c1.ticket_id = t.id))), no_agent_since = NULL,"
    "    escalated_at = NULL, overflowed_at = NULL, updated_at = now(),"
    /* An automatic answer changes nothing the ticket shows: it is routed like any other (see
     * decide_row), so its client cannot tell a party from a stranger by its ticket. */
    "    status = CASE WHEN t.status IN ('received', 'classified') THEN 'routed'"
    "      ELSE t.status END"
    "  FROM input i JOIN done d ON d.id = i.work_id WHERE t.id = i.ticket_id"
    "  RETURNING t.id"
    "), ev AS ("
    "  INSERT INTO ticket_events (ticket_id, kind, actor, data)"
    "  SELECT i.ticket_id, 'routed', 'router', i.event FROM input i JOIN done d ON d.id = i.work_id"
    "), ack AS ("
    "  INSERT INTO notifications (ticket_id, kind, channel, recipient, lang, template, params,"
    "    dedupe_key)"
    "  SELECT i.ticket_id, n->>'kind', n->>'channel', n->>'recipient',"
    "    n->>'lang', n->>'kind', n->'params', 'ticket:' || i.ticket_id || ':' || (n->>'kind')"
    "  FROM input i JOIN done d ON d.id = i.work_id CROSS JOIN jsonb_array_elements("
    "    CASE jsonb_typeof(i.notes) WHEN 'array' THEN i.notes ELSE '[]' END) n"
    "  ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, ticket_id, channel, kind"
    "), aev AS ("
    "  INSERT INTO ticket_events (ticket_id, kind, actor, data)"
    "  SELECT i.ticket_id, 'auto_answered', 'router', i.event->'auto_answer_detail'"
    "  FROM input i JOIN done d ON d.id = i.work_id WHERE i.answered"
    ")"
    /* One row per notification (or one per work row without any), in work-row order. */
    "SELECT i.work_id, a.id, a.channel, i.ticket_id, a.kind"
    " FROM input i JOIN done d ON d.id = i.work_id"
    " LEFT JOIN ack a ON a.ticket_id = i.ticket_id ORDER BY i.work_id, a.id";

/* ---- routing: one decision per classified ticket ----------------------------------------- */

/* One fetched row on its way to a decision: the rules' verdict and what auto-answer needs. The
 * kinds point into kinds_buf, so a plan stays where it was made (an array of them). */
typedef struct {
    route_decision_t d;
    time_t now;
    char kinds_buf[256];
    const char *kinds[ENTITY_KINDS_MAX];
    size_t nkinds;
    const char *auto_answer; /* why, when it was decided without asking caselookup */
    wasl_msg_t *req;         /* the case.lookup request to send (owned), or NULL */
    wasl_msg_t *rep;         /* its reply (owned), NULL when caselookup did not answer */
} row_plan_t;

/* The case.lookup request for the ticket's case with the beneficiary's national ID (or, without
 * one, their phone); a new message the caller owns, or NULL when out of memory. */
static wasl_msg_t *lookup_request(const char *case_number, const char *nid, const char *phone,
                                  const char *ref)
{
    wasl_msg_t *req = wasl_msg_new(WASL_MSG_CASE_LOOKUP_REQUEST);
    if (!req) {
        return NULL;
    }
    char rid[WASL_RPC_REQUEST_ID_MAX];
    if (wasl_rpc_request_id("router", rid) < 0) {
        wasl_msg_destroy(&req);
        return NULL;
    }
    wasl_msg_case_lookup_request_t *q = &req->u.case_lookup_request;
    q->request_id = strdup(rid);
    q->case_number = strdup(case_number);
    q->verifier_kind = strdup(*nid ? "national_id" : "caller_phone");
    q->verifier = strdup(*nid ? nid : phone);
    /* No caller line: a ticket's phone is not a line the network vouched for, so the router's
     * lookups are held by the verifier's budget (the same whatever channel asks), the case's and
     * the router's own as a client (caselookup, "budgets"). */
    q->caller = NULL;
    q->channel = strdup("api");
    q->client = strdup("router");
    /* The answer may only go to the verified party's contact on file: ask for it, and name the
     * ticket, so that the audit row says for which ticket and to whom. */
    q->ticket = strdup(ref);
    q->contact = true;
    q->has_contact = true;
    if (!q->request_id || !q->case_number || !q->verifier_kind || !q->verifier || !q->channel ||
        !q->client || !q->ticket) {
        wasl_msg_destroy(&req);
    }
    return req;
}

/* Decides the row by the rules and, when it asks for an automatic answer, either says why none
 * will be asked (plan->auto_answer) or leaves the request to send in plan->req. */
static void plan_row(router_t *self, PGresult *res, int r, row_plan_t *plan)
{
    memset(plan, 0, sizeof *plan);
    snprintf(plan->kinds_buf, sizeof plan->kinds_buf, "%s", PQgetvalue(res, r, 8));
    char *save = NULL;
    for (char *k = strtok_r(plan->kinds_buf, LIST_SEP, &save); k && plan->nkinds < ENTITY_KINDS_MAX;
         k = strtok_r(NULL, LIST_SEP, &save)) {
        plan->kinds[plan->nkinds++] = k;
    }
    plan->now = (time_t)strtoll(PQgetvalue(res, r, 9), NULL, 10);
    route_input_t in = {.category = PQgetvalue(res, r, 4),
                        .priority = PQgetvalue(res, r, 5),
                        .channel = PQgetvalue(res, r, 3),
                        .language = PQgetvalue(res, r, 6),
                        .beneficiary = PQgetvalue(res, r, 7),
                        .entities = plan->kinds,
                        .nentities = plan->nkinds,
                        .now = plan->now};
    rules_decide(self->rules, &in, &plan->d);
    /* Answering without an agent: caselookup discloses the case only to a verified party;
     * anything else (not verified, locked out, caselookup down) routes to the queue as usual,
     * with the reason recorded. */
    if (!plan->d.auto_answer_asked) {
        plan->auto_answer = "not asked";
        return;
    }
    if (!plan->d.auto_answer) {
        plan->auto_answer = "off (auto_answer: false in the rules file)";
        return;
    }
    if (!self->cfg->auto_answer) {
        plan->auto_answer = "off (WASL_ROUTER_AUTO_ANSWER)";
        return;
    }
    const char *case_number = PQgetvalue(res, r, 13), *nid = PQgetvalue(res, r, 14);
    const char *phone = PQgetvalue(res, r, 15); /* a trusted caller line, or "" */
    if (!*case_number) {
        plan->auto_answer = "not answered: no case number";
        return;
    }
    if (!*nid && !*phone) {
        plan->auto_answer = "not answered: no national ID or trusted caller line to verify";
        return;
    }
    if (!self->rpc || now_ms() < self->rpc_down_until_ms) {
        wasl_counter_inc(self->auto_declined);
        plan->auto_answer = "not answered: caselookup unavailable";
        return;
    }
    plan->req = lookup_request(case_number, nid, phone, PQgetvalue(res, r, 2));
    if (!plan->req) {
        plan->auto_answer = "not answered: out of memory";
    }
}

/* Sends every plan's request to caselookup at once (WASL_RPC_MANY_MAX at a time) and keeps each
 * reply with its plan. A reply that does not carry its request's request_id is no answer. When
 * any request went unanswered, no more are asked for AUTO_ANSWER_BACKOFF_MS. */
static void ask_caselookup(router_t *self, row_plan_t *plans, size_t nrows)
{
    const wasl_msg_t **reqs = calloc(nrows, sizeof *reqs);
    wasl_msg_t **reps = calloc(nrows, sizeof *reps);
    row_plan_t **asked = calloc(nrows, sizeof *asked);
    size_t n = 0;
    if (!reqs || !reps || !asked) {
        goto done; /* every request stays unanswered: "did not answer" */
    }
    for (size_t i = 0; i < nrows; i++) {
        if (plans[i].req) {
            asked[n] = &plans[i];
            reqs[n++] = plans[i].req;
        }
    }
    for (size_t o = 0; o < n; o += WASL_RPC_MANY_MAX) {
        size_t m = n - o < WASL_RPC_MANY_MAX ? n - o : WASL_RPC_MANY_MAX;
        wasl_rpc_request_many(self->rpc, m, reqs + o, reps + o);
    }
    for (size_t i = 0; i < n; i++) {
        const char *sent = asked[i]->req->u.case_lookup_request.request_id;
        if (reps[i] && reps[i]->type == WASL_MSG_CASE_LOOKUP_REPLY &&
            reps[i]->u.case_lookup_reply.request_id &&
            strcmp(reps[i]->u.case_lookup_reply.request_id, sent) == 0) {
            asked[i]->rep = reps[i]; /* ownership to the plan */
        } else {
            wasl_msg_destroy(&reps[i]);
        }
    }
done:
    for (size_t i = 0; i < nrows; i++) {
        if (plans[i].req && !plans[i].rep) {
            self->rpc_down_until_ms = now_ms() + AUTO_ANSWER_BACKOFF_MS;
        }
    }
    free(reqs);
    free(reps);
    free(asked);
}

/* What caselookup's reply to an asked row means: writes the answer to send into `answer`
 * (empty when none), sets *to and *via to the party's contact on file (borrowed from the plan's
 * reply) and returns why. Never the contact the submitter typed: that one proves nothing. */
static const char *auto_answer_outcome(router_t *self, const row_plan_t *plan, const char *lang,
                                       char *answer, size_t cap, const char **to, const char **via)
{
    const wasl_msg_t *rep = plan->rep;
    const char *why;
    *to = *via = NULL;
    if (!rep) {
        why = "not answered: caselookup did not answer";
    } else if (strcmp(rep->u.case_lookup_reply.outcome, "found") != 0) {
        why = strcmp(rep->u.case_lookup_reply.outcome, "locked") == 0
                  ? "not answered: the beneficiary is locked out of lookups"
                  : "not answered: not verified as a party of this case";
    } else if (!rep->u.case_lookup_reply.contact_phone && !rep->u.case_lookup_reply.contact_email) {
        why = "not answered: the party has no contact on file";
    } else {
        const wasl_msg_case_lookup_reply_t *a = &rep->u.case_lookup_reply;
        const char *text = strcmp(lang, "en") == 0 ? a->speech_en : a->speech_ar;
        snprintf(answer, cap, "%s", text ? text : "");
        why = *answer ? "answered to the party's contact on file" : "not answered: empty answer";
        if (*answer) {
            *to = a->contact_phone ? a->contact_phone : a->contact_email;
            *via = a->contact_phone ? "sms" : "email";
        }
    }
    if (*answer) {
        wasl_counter_inc(self->auto_answered);
    } else {
        wasl_counter_inc(self->auto_declined);
    }
    return why;
}

/* The decision for one fetched row, planned (and asked) before, as the commit statement's input
 * object (new reference). */
static json_t *decide_row(router_t *self, PGresult *res, int r, const row_plan_t *plan)
{
    const char *category = PQgetvalue(res, r, 4), *priority = PQgetvalue(res, r, 5);
    const char *lang = PQgetvalue(res, r, 6), *channel = PQgetvalue(res, r, 3);
    const char *beneficiary = PQgetvalue(res, r, 7);
    const route_decision_t *d = &plan->d;
    json_t *skills = json_array(), *entities = json_array();
    for (size_t i = 0; i < d->nskills; i++) {
        json_array_append_new(skills, json_string(d->skills[i]));
    }
    for (size_t i = 0; i < plan->nkinds; i++) {
        json_array_append_new(entities, json_string(plan->kinds[i]));
    }
    char answer[AUTO_ANSWER_MAX] = "";
    const char *to = NULL, *via = NULL;
    const char *auto_answer =
        plan->auto_answer ? plan->auto_answer
                          : auto_answer_outcome(self, plan, lang, answer, sizeof answer, &to, &via);
    bool answered = answer[0] != '\0';
    /* The input is recorded so that `waslctl route replay` re-decides exactly this. */
    json_t *event =
        json_pack("{s:{s:s, s:s, s:s, s:s, s:s, s:o, s:I}, s:s, s:i, s:s, s:s, s:s, s:O, s:b, s:b,"
                  " s:{s:I, s:I}, s:s}",
                  "input", "category", category, "priority", priority, "channel", channel,
                  "language", lang, "beneficiary", beneficiary, "entities", entities, "now",
                  (json_int_t)plan->now, "rule", d->rule, "rule_line", d->rule_line, "queue",
                  d->queue, "priority", d->priority, "priority_from", priority, "skills", skills,
                  "business_hours", d->in_business_hours, "business_time_sla", d->business_time,
                  "sla_s", "first_response", (json_int_t)d->first_response_s, "resolution",
                  (json_int_t)d->resolution_s, "auto_answer", auto_answer);
    const char *nl = strcmp(lang, "en") == 0 ? "en" : "ar";
    json_t *notes = json_array();
    if (answered) {
        char masked[320];
        if (strcmp(via, "sms") == 0) {
            wasl_mask_phone(to, masked, sizeof masked);
        } else {
            wasl_mask_email(to, masked, sizeof masked);
        }
        /* For the agent who takes the ticket: the party already has the answer. */
        json_object_set_new(event, "auto_answer_detail",
                            json_pack("{s:s, s:s, s:s, s:s}", "result", auto_answer, "answer",
                                      answer, "channel", via, "recipient", masked));
        json_array_append_new(notes,
                              json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "kind", "case_answer",
                                        "channel", via, "recipient", to, "lang", nl, "params",
                                        "ref", PQgetvalue(res, r, 2), "answer", answer));
    }
    bool auto_submitted = strcmp(PQgetvalue(res, r, 10), "t") == 0;
    const char *phone = PQgetvalue(res, r, 11), *email = PQgetvalue(res, r, 12);
    if (!auto_submitted && (*phone || *email)) {
        /* The submitter's acknowledgement, the same whether or not a party was answered. */
        json_array_append_new(notes, json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "kind", "ack",
                                               "channel", *phone ? "sms" : "email", "recipient",
                                               *phone ? phone : email, "lang", nl, "params", "ref",
                                               PQgetvalue(res, r, 2), "category_label",
                                               router_category_label(category, nl)));
    }
    return json_pack("{s:I, s:I, s:s, s:s, s:i, s:o, s:s, s:I, s:I, s:o, s:o, s:b}", "work_id",
                     (json_int_t)strtoll(PQgetvalue(res, r, 0), NULL, 10), "ticket_id",
                     (json_int_t)strtoll(PQgetvalue(res, r, 1), NULL, 10), "queue", d->queue,
                     "priority", d->priority, "prio_rank", d->prio_rank, "skills", skills, "rule",
                     d->rule, "fr_due", (json_int_t)d->first_response_due, "res_due",
                     (json_int_t)d->resolution_due, "event", event, "notes", notes, "answered",
                     answered);
}

static int route_claimed(router_t *self, const wasl_work_item_t *items, size_t n)
{
    if (n == 0) {
        return 0;
    }
    int64_t t0 = now_ms();
    int committed = -1;
    char *param = NULL, *arr = NULL;
    int64_t *ids = malloc(n * sizeof *ids);
    if (!ids) {
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        ids[i] = items[i].id;
    }
    arr = wasl_pg_bigint_array(ids, n);
    const char *fp[] = {arr, self->owner};
    PGresult *res = arr ? wasl_pg_query(self->pg, fetch_sql, 2, fp) : NULL;
    if (res && PQnfields(res) != FETCH_COLS) {
        wasl_error("router: the ticket fetch has the wrong shape", "{s:i, s:i}", "columns",
                   PQnfields(res), "expected", FETCH_COLS);
        PQclear(res);
        res = NULL;
    }
    if (!res) {
        goto done;
    }
    /* Every row decided first, then one round trip to caselookup for the whole batch. */
    size_t nrows = (size_t)PQntuples(res);
    row_plan_t *plans = calloc(nrows ? nrows : 1, sizeof *plans);
    if (!plans) {
        PQclear(res);
        goto done;
    }
    bool asking = false;
    for (size_t r = 0; r < nrows; r++) {
        plan_row(self, res, (int)r, &plans[r]);
        asking = asking || plans[r].req;
    }
    if (asking) {
        ask_caselookup(self, plans, nrows);
    }
    json_t *input = json_array();
    for (size_t r = 0; r < nrows; r++) {
        json_array_append_new(input, decide_row(self, res, (int)r, &plans[r]));
        wasl_msg_destroy(&plans[r].req);
        wasl_msg_destroy(&plans[r].rep);
    }
    free(plans);
    PQclear(res);
    param = json_dumps(input, JSON_COMPACT);
    json_decref(input);
    if (!param) {
        goto done;
    }
    const char *cp[] = {param, self->owner};
    wasl_pg_stmt_t stmt = {.sql = commit_sql, .nparams = 2, .params = cp};
    PGresult *out = NULL;
    if (wasl_pg_batch(self->pg, &stmt, 1, &out) < 0) {
        goto done;
    }
    committed = 0;
    for (int r = 0; r < PQntuples(out); r++) {
        /* Rows come grouped by work row: a ticket with two notifications has two. */
        if (r == 0 || strcmp(PQgetvalue(out, r, 0), PQgetvalue(out, r - 1, 0)) != 0) {
            committed++;
            wasl_counter_inc(self->routed);
        }
        if (!PQgetisnull(out, r, 1)) {
            router_publish_notification(self, strtoll(PQgetvalue(out, r, 1), NULL, 10),
                                        strtoll(PQgetvalue(out, r, 3), NULL, 10),
                                        PQgetvalue(out, r, 4), PQgetvalue(out, r, 2));
        }
    }
    if ((size_t)committed < n) {
        wasl_counter_add(self->lost, n - (size_t)committed);
    }
    PQclear(out);
    wasl_histogram_observe(self->batch_seconds, (double)(now_ms() - t0) / 1000.0);
done:
    atomic_store(&self->db_ok, committed >= 0);
    if (committed < 0) {
        wasl_counter_inc(self->failed);
        wasl_work_give_back(self->pg, "route", self->owner, items, n, wasl_pg_error(self->pg),
                            (int)self->cfg->retry_backoff_ms);
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
