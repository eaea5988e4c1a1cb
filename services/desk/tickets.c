/* tickets — "my work", the ticket view, note, transfer and resolve (see tickets.h). */
#include "tickets.h"
#include "wasl_authz.h"
#include "wasl_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACTOR_CLIENT   "desk"
#define REF_DIGITS     10
#define NOTE_MAX       4000
#define REASON_MAX     500
#define RESOLUTION_MAX 1000
#define QUEUE_MAX      64
#define WRAPUP_MAX     64
#define MY_TICKETS_MAX "200"
#define TS(col)        "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static void db_failed(desk_reply_t *reply, const char *what)
{
    wasl_error("desk: database failed", "{s:s}", "op", what);
    desk_error(reply, 503, "unavailable", NULL, "the database cannot answer right now; retry");
    reply->retry_after_s = 2;
}

static wasl_authz_principal_t principal(const desk_req_t *req)
{
    return (wasl_authz_principal_t){.role = wasl_authz_role_parse(req->session.role),
                                    .act_as = req->session.agent};
}

/* A string field: 0 with *out set (NULL when absent and optional), -1 with a 400 naming it. */
static int text_field(json_t *doc, const char *key, bool required, size_t max, const char **out,
                      desk_reply_t *reply)
{
    json_t *v = json_object_get(doc, key);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required) {
            desk_error(reply, 400, "missing_field", key, "%s is required", key);
            return -1;
        }
        return 0;
    }
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (!s || json_string_length(v) > max || strlen(s) != json_string_length(v) ||
        (required && s[strspn(s, " \t\r\n")] == '\0')) {
        desk_error(reply, 400, "invalid_field", key,
                   "%s must be a non-empty string of at most "
                   "%zu bytes",
                   key, max);
        return -1;
    }
    *out = s;
    return 0;
}

/* ---- my work ----------------------------------------------------------------------------- */

void desk_handle_my_tickets(desk_req_t *req, desk_reply_t *reply)
{
    // clang-format off
    static const char sql[] =
        "SELECT coalesce(json_agg(json_build_object("
        "         'ticket', t.ref, 'status', t.status, 'channel', t.channel,"
        "         'subject', t.subject, 'queue', t.queue, 'priority', t.priority,"
        "         'category', t.category, 'language', t.language,"
        "         'escalated', t.escalated_at IS NOT NULL,"
        "         'waiting_since', " TS("t.waiting_since") ","
        "         'first_response_due', " TS("t.first_response_due") ","
        "         'resolution_due', " TS("t.resolution_due") ","
        "         'first_response_left_s',"
        "             floor(extract(epoch FROM t.first_response_due - wasl_now()))::bigint,"
        "         'resolution_left_s',"
        "             floor(extract(epoch FROM t.resolution_due - wasl_now()))::bigint)"
        "       ORDER BY t.prio_rank, t.first_response_due, t.waiting_since, t.id), '[]')::text"
        "  FROM (SELECT * FROM tickets"
        "         WHERE assignee = $1 AND status = 'assigned'"
        "         ORDER BY prio_rank, first_response_due, waiting_since, id"
        "         LIMIT " MY_TICKETS_MAX ") t";
    // clang-format on
    const char *p[] = {req->session.agent};
    PGresult *res = wasl_pg_query(req->db->pg, sql, 1, p);
    if (!wasl_pg_arity(res, 1, "desk my tickets") || PQntuples(res) != 1) {
        PQclear(res);
        db_failed(reply, "my_tickets");
        return;
    }
    json_t *list = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    if (!list) {
        db_failed(reply, "my_tickets json");
        return;
    }
    reply->status = 200;
    reply->body = json_pack("{s:s, s:o}", "agent", req->session.agent, "tickets", list);
}

/* ---- authorization ----------------------------------------------------------------------- */

/* The decision for `ref` from its assignee and whether the agent serves its queue, read by
 * `sql` ($1 ref, $2 agent; columns assignee, in_queue, then anything). NULL with the reply
 * set (404, 403, 503), else the result (the caller clears it). */
static PGresult *ticket_decide(desk_req_t *req, const char *ref, const char *sql,
                               wasl_authz_action_t action, int ncols, desk_reply_t *reply)
{
    const char *p[] = {ref, req->session.agent};
    PGresult *res = wasl_pg_query(req->db->pg, sql, 2, p);
    if (!wasl_pg_arity(res, ncols, "desk ticket")) {
        PQclear(res);
        db_failed(reply, "ticket");
        return NULL;
    }
    bool found = PQntuples(res) == 1;
    wasl_authz_principal_t who = principal(req);
    wasl_authz_facts_t facts = {
        .actor = req->session.agent,
        .actor_field = "ref",
        .missing = !found,
        .assignee = found && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : NULL,
        .in_queue = found && strcmp(PQgetvalue(res, 0, 1), "t") == 0,
    };
    wasl_authz_decision_t d = wasl_authz_decide(&who, action, &facts);
    if (!found) {
        desk_error(reply, 404, "not_found", "ref", "no ticket %s", ref);
    } else if (!d.allowed) {
        desk_error(reply, 403, d.code, d.field, "%s", d.why);
    } else {
        return res;
    }
    PQclear(res);
    return NULL;
}

#define DECIDE_COLUMNS                                                                             \
    "SELECT t.assignee,"                                                                           \
    "       coalesce((SELECT g.skills ? t.queue FROM agents g"                                     \
    "                  WHERE g.id = $2 AND g.enabled), false)"

/* The path's reference: 10 digits, then the rest. 0, or -1 with a 400/404. */
static int path_ref(const desk_req_t *req, char ref[REF_DIGITS + 1], const char **rest,
                    desk_reply_t *reply)
{
    size_t digits = strspn(req->path_arg, "0123456789");
    *rest = req->path_arg + digits;
    if (digits != REF_DIGITS) {
        desk_error(reply, 400, "invalid_field", "ref", "a ticket reference is 10 digits");
        return -1;
    }
    memcpy(ref, req->path_arg, REF_DIGITS);
    ref[REF_DIGITS] = '\0';
    return 0;
}

/* ---- the ticket view --------------------------------------------------------------------- */

// clang-format off
static const char VIEW_SQL[] = DECIDE_COLUMNS ","
    "       json_build_object("
    "         'ticket', t.ref, 'status', t.status, 'channel', t.channel,"
    "         'subject', t.subject, 'queue', t.queue, 'priority', t.priority,"
    "         'assignee', t.assignee, 'category', t.category, 'confidence', t.confidence,"
    "         'language', t.language, 'entities', t.entities, 'case_number', t.case_number,"
    "         'from_name', t.from_name, 'from_phone', t.from_phone, 'from_email', t.from_email,"
    "         'resolution', t.resolution, 'escalated', t.escalated_at IS NOT NULL,"
    "         'received_at', " TS("t.received_at") ","
    "         'first_response_due', " TS("t.first_response_due") ","
    "         'resolution_due', " TS("t.resolution_due") ","
    "         'messages', (SELECT coalesce(json_agg(json_build_object("
    "               'direction', m.direction, 'channel', m.channel, 'sender', m.sender,"
    "               'subject', m.subject, 'text', m.body, 'at', " TS("m.created_at") ")"
    "             ORDER BY m.id), '[]') FROM messages m WHERE m.ticket_id = t.id),"
    "         'notifications', (SELECT coalesce(json_agg(json_build_object("
    "               'id', n.id, 'kind', n.kind, 'channel', n.channel, 'template', n.template,"
    "               'params', n.params, 'state', n.state, 'at', " TS("n.created_at") ","
    "               'sent_at', " TS("n.sent_at") ") ORDER BY n.id), '[]')"
    "             FROM notifications n WHERE n.ticket_id = t.id),"
    "         'history', (SELECT coalesce(json_agg(json_build_object("
    "               'kind', e.kind, 'actor', e.actor, 'data', e.data,"
    "               'at', " TS("e.at") ") ORDER BY e.id), '[]')"
    "             FROM ticket_events e WHERE e.ticket_id = t.id))::text"
    "  FROM tickets t"
    " WHERE t.ref = $1";
// clang-format on

void desk_handle_ticket_get(desk_req_t *req, desk_reply_t *reply)
{
    char ref[REF_DIGITS + 1];
    const char *rest;
    if (path_ref(req, ref, &rest, reply) < 0) {
        return;
    }
    if (*rest != '\0') {
        desk_error(reply, 404, "not_found", NULL, "GET /v1/tickets/{ref}");
        return;
    }
    /* Reading is decided as acting is: the assignee, or a queue member while unassigned. */
    PGresult *res = ticket_decide(req, ref, VIEW_SQL, WASL_AUTHZ_RESOLVE, 3, reply);
    if (!res) {
        return;
    }
    json_t *doc = json_loads(PQgetvalue(res, 0, 2), 0, NULL);
    PQclear(res);
    if (!doc) {
        db_failed(reply, "ticket json");
        return;
    }
    reply->status = 200;
    reply->body = doc;
}

/* ---- actions ----------------------------------------------------------------------------- */

typedef struct {
    const char *text;   /* note: the text; transfer: the queue; resolve: the resolution */
    const char *reason; /* transfer: why; resolve: the wrap-up code */
} action_arg_t;

/* True when `code` is one of the comma-separated `list` (whole codes). */
static bool listed(const char *list, const char *code)
{
    size_t n = strlen(code);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (n > 0 && len == n && strncmp(p, code, n) == 0) {
            return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* The row of a wasl_tickets_* function: (status before, done). 0 when done; -1 with 404/409. */
static int function_result(PGresult *res, const char *ref, const char *what, desk_reply_t *reply)
{
    int rc = -1;
    if (!wasl_pg_arity(res, 2, what)) {
        db_failed(reply, what);
    } else if (PQntuples(res) == 0) {
        desk_error(reply, 404, "not_found", "ref", "no ticket %s", ref);
    } else if (PQgetisnull(res, 0, 1)) {
        desk_error(reply, 409, "wrong_state", "ref", "ticket %s is %s: cannot %s", ref,
                   PQgetvalue(res, 0, 0), what);
    } else {
        rc = 0;
    }
    PQclear(res);
    return rc;
}

static int queue_served(desk_req_t *req, const char *queue, desk_reply_t *reply)
{
    const char *q[] = {queue};
    PGresult *res = wasl_pg_query(
        req->db->pg, "SELECT 1 FROM agents WHERE enabled AND skills ? $1 LIMIT 1", 1, q);
    if (!wasl_pg_arity(res, 1, "desk queue served")) {
        PQclear(res);
        db_failed(reply, "transfer");
        return -1;
    }
    int staffed = PQntuples(res);
    PQclear(res);
    if (!staffed) {
        desk_error(reply, 400, "unknown_queue", "queue", "no agent serves queue %s", queue);
        return -1;
    }
    return 0;
}

/* In the transaction: the ticket locked and the decision, then the function. 0 to commit. */
static int run_action(desk_req_t *req, const char *ref, const char *what, const action_arg_t *a,
                      desk_reply_t *reply)
{
    wasl_pg_t *pg = req->db->pg;
    const char *agent = req->session.agent;
    bool note = strcmp(what, "note") == 0, transfer = strcmp(what, "transfer") == 0;
    wasl_authz_action_t action = transfer ? WASL_AUTHZ_TRANSFER : WASL_AUTHZ_RESOLVE;
    PGresult *res = ticket_decide(req, ref,
                                  DECIDE_COLUMNS " FROM tickets t WHERE t.ref = $1"
                                                 " FOR UPDATE OF t",
                                  action, 2, reply);
    if (!res) {
        return -1;
    }
    PQclear(res);
    if (note) {
        const char *p[] = {ref, agent, a->text, ACTOR_CLIENT};
        return function_result(
            wasl_pg_query(pg, "SELECT status, done FROM wasl_tickets_note($1, $2, $3, $4)", 4, p),
            ref, what, reply);
    }
    if (transfer) {
        const char *p[] = {ref, agent, a->text, a->reason, ACTOR_CLIENT};
        return queue_served(req, a->text, reply) < 0
                   ? -1
                   : function_result(wasl_pg_query(pg,
                                                   "SELECT status, done FROM"
                                                   " wasl_tickets_transfer($1, $2, $3, $4, $5)",
                                                   5, p),
                                     ref, what, reply);
    }
    /* Resolve: the wrap-up code goes into the history as the agent's note, then the function
     * (the beneficiary's update and survey are enqueued by it). */
    char code[WRAPUP_MAX + 16];
    snprintf(code, sizeof code, "wrapup:%s", a->reason);
    const char *pn[] = {ref, agent, code, ACTOR_CLIENT};
    const char *pr[] = {ref, agent, a->text, ACTOR_CLIENT};
    if (function_result(
            wasl_pg_query(pg, "SELECT status, done FROM wasl_tickets_note($1, $2, $3, $4)", 4, pn),
            ref, "note", reply) < 0) {
        return -1;
    }
    return function_result(
        wasl_pg_query(pg, "SELECT status, done FROM wasl_tickets_resolve($1, $2, $3, $4)", 4, pr),
        ref, what, reply);
}

/* The action's fields from the body: 0, or -1 with a 400 or 404. */
static int read_action(desk_req_t *req, json_t *doc, const char *what, action_arg_t *a,
                       desk_reply_t *reply)
{
    *a = (action_arg_t){0};
    if (strcmp(what, "note") == 0) {
        return text_field(doc, "text", true, NOTE_MAX, &a->text, reply);
    }
    if (strcmp(what, "transfer") == 0) {
        return text_field(doc, "queue", true, QUEUE_MAX, &a->text, reply) < 0 ||
                       text_field(doc, "reason", false, REASON_MAX, &a->reason, reply) < 0
                   ? -1
                   : 0;
    }
    if (strcmp(what, "resolve") == 0) {
        if (text_field(doc, "wrapup", true, WRAPUP_MAX, &a->reason, reply) < 0 ||
            text_field(doc, "resolution", false, RESOLUTION_MAX, &a->text, reply) < 0) {
            return -1;
        }
        if (!listed(req->cfg->wrapup_codes, a->reason)) {
            desk_error(reply, 400, "invalid_field", "wrapup",
                       "wrapup is one of the configured wrap-up codes (WASL_DESK_WRAPUP_CODES)");
            return -1;
        }
        if (!a->text) {
            a->text = "";
        }
        return 0;
    }
    desk_error(reply, 404, "not_found", NULL,
               "POST /v1/tickets/{ref}/notes, /transfer or /resolve");
    return -1;
}

void desk_handle_ticket_post(desk_req_t *req, desk_reply_t *reply)
{
    char ref[REF_DIGITS + 1];
    const char *rest;
    if (path_ref(req, ref, &rest, reply) < 0) {
        return;
    }
    /* The paths are intake's (POST /v1/tickets/{ref}/notes, /transfer, /resolve). */
    const char *what = strcmp(rest, "/notes") == 0                    ? "note"
                       : rest[0] == '/' && strcmp(rest, "/note") != 0 ? rest + 1
                                                                      : "";
    json_t *doc = desk_body_json(req, reply);
    action_arg_t a;
    if (!doc || read_action(req, doc, what, &a, reply) < 0) {
        json_decref(doc);
        return;
    }
    if (wasl_pg_begin(req->db->pg) < 0) {
        db_failed(reply, what);
    } else if (run_action(req, ref, what, &a, reply) == 0) {
        if (wasl_pg_commit(req->db->pg) < 0) {
            db_failed(reply, "ticket commit");
        } else {
            reply->status = 200;
            reply->body = json_pack("{s:s, s:s}", "ticket", ref, "done", what);
            wasl_info("desk: ticket changed", "{s:s, s:s, s:s}", "ticket", ref, "action", what,
                      "agent", req->session.agent);
        }
    } else {
        wasl_pg_rollback(req->db->pg);
    }
    json_decref(doc);
}
