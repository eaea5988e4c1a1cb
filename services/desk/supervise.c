/* supervise — a supervisor reassigns a ticket (see supervise.h). */
#include "supervise.h"
#include "auth.h"
#include "wasl_authz.h"
#include "wasl_domain.h"
#include "wasl_log.h"

#include <stdio.h>
#include <string.h>

#define REF_DIGITS   10
#define AGENT_ID_MAX 64
#define REASON_MAX   500

typedef struct {
    char ref[REF_DIGITS + 1];
    const char *agent;  /* borrowed from the body */
    const char *reason; /* NULL when absent */
} assign_arg_t;

/* The path's reference and the body's fields: 0, or -1 with a 400. */
static int read_assign(const desk_req_t *req, json_t *doc, assign_arg_t *a, desk_reply_t *reply)
{
    size_t digits = strspn(req->path_arg, "0123456789");
    if (digits != REF_DIGITS || strcmp(req->path_arg + digits, "/assign") != 0) {
        desk_error(reply, 400, "invalid_field", "ref", "a ticket reference is 10 digits");
        return -1;
    }
    memcpy(a->ref, req->path_arg, REF_DIGITS);
    a->ref[REF_DIGITS] = '\0';
    json_t *agent = json_object_get(doc, "agent");
    json_t *reason = json_object_get(doc, "reason");
    a->agent = json_string_value(agent);
    a->reason = json_is_string(reason) ? json_string_value(reason) : NULL;
    if (!agent || json_is_null(agent)) {
        desk_error(reply, 400, "missing_field", "agent", "agent is required");
        return -1;
    }
    if (!a->agent || json_string_length(agent) > AGENT_ID_MAX ||
        strlen(a->agent) != json_string_length(agent) || !wasl_agent_id_ok(a->agent)) {
        desk_error(reply, 400, "invalid_field", "agent", "agent is an agent id ([a-z0-9._-])");
        return -1;
    }
    if (reason && !json_is_null(reason) &&
        (!a->reason || json_string_length(reason) > REASON_MAX ||
         strlen(a->reason) != json_string_length(reason))) {
        desk_error(reply, 400, "invalid_field", "reason", "reason is a string of at most %d bytes",
                   REASON_MAX);
        return -1;
    }
    return 0;
}

/* In the transaction: the ticket locked, the target checked, then the function. 0 to commit,
 * with the assignee before in from (cap bytes, "" for none). */
static int run_assign(desk_req_t *req, const assign_arg_t *a, char *from, size_t cap,
                      desk_reply_t *reply)
{
    wasl_pg_t *pg = req->db->pg;
    const char *pt[] = {a->ref, a->agent};
    PGresult *res = wasl_pg_query(pg,
                                  "SELECT t.assignee,"
                                  "       (SELECT g.enabled FROM agents g WHERE g.id = $2)"
                                  "  FROM tickets t WHERE t.ref = $1 FOR UPDATE OF t",
                                  2, pt);
    if (!wasl_pg_arity(res, 2, "desk assign ticket")) {
        PQclear(res);
        desk_db_failed(reply, "assign");
        return -1;
    }
    int rc = -1;
    if (PQntuples(res) == 0) {
        desk_error(reply, 404, "not_found", "ref", "no ticket %s", a->ref);
    } else if (PQgetisnull(res, 0, 1)) {
        desk_error(reply, 404, "not_found", "agent", "no agent %s", a->agent);
    } else if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
        desk_error(reply, 409, "agent_disabled", "agent", "agent %s is disabled", a->agent);
    } else {
        snprintf(from, cap, "%s", PQgetvalue(res, 0, 0));
        rc = 0;
    }
    PQclear(res);
    if (rc < 0) {
        return -1;
    }
    const char *p[] = {a->ref, a->agent, req->principal.id, a->reason, req->principal.client};
    res =
        wasl_pg_query(pg, "SELECT status, done FROM wasl_tickets_assign($1, $2, $3, $4, $5)", 5, p);
    if (!wasl_pg_arity(res, 2, "wasl_tickets_assign")) {
        desk_db_failed(reply, "assign");
    } else if (PQntuples(res) == 0) {
        desk_error(reply, 404, "not_found", "ref", "no ticket %s", a->ref);
    } else if (PQgetisnull(res, 0, 1)) {
        desk_error(reply, 409, "wrong_state", "ref", "ticket %s is %s: cannot assign it", a->ref,
                   PQgetvalue(res, 0, 0));
    } else {
        PQclear(res);
        return 0;
    }
    PQclear(res);
    return -1;
}

void desk_handle_ticket_assign(desk_req_t *req, desk_reply_t *reply)
{
    /* A supervisor's act, decided before anything is read: a person signed in as a supervisor
     * or admin. An integration's token is refused too (its binding names agents to act as, not
     * someone to answer for the move). */
    if (req->principal.kind != DESK_PRINCIPAL_PERSON ||
        req->principal.role < WASL_AUTHZ_ROLE_SUPERVISOR) {
        desk_error(reply, 403, "supervisors_only", NULL, "only a supervisor reassigns a ticket");
        return;
    }
    json_t *doc = desk_body_json(req, reply);
    assign_arg_t a = {0};
    char from[AGENT_ID_MAX + 1] = "";
    if (!doc || read_assign(req, doc, &a, reply) < 0) {
        json_decref(doc);
        return;
    }
    if (wasl_pg_begin(req->db->pg) < 0) {
        desk_db_failed(reply, "assign");
    } else if (run_assign(req, &a, from, sizeof from, reply) < 0) {
        wasl_pg_rollback(req->db->pg);
    } else if (wasl_pg_commit(req->db->pg) < 0) {
        desk_db_failed(reply, "assign commit");
    } else {
        reply->status = 200;
        reply->body = json_pack("{s:s, s:s, s:s, s:o, s:s}", "ticket", a.ref, "done", "assign",
                                "agent", a.agent, "from", *from ? json_string(from) : json_null(),
                                "by", req->principal.id);
        wasl_info("desk: ticket reassigned", "{s:s, s:s, s:s, s:s}", "ticket", a.ref, "agent",
                  a.agent, "from", *from ? from : "-", "by", req->principal.id);
    }
    json_decref(doc);
}
