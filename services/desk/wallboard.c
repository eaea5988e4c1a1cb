/* wallboard — the supervisor's wallboard and agent views (see wallboard.h). */
#include "wallboard.h"
#include "wasl_authz.h"
#include "wasl_domain.h"
#include "wasl_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AGENT_ID_MAX 64

/* The start of today in DESK_WALLBOARD_TZ, as the statements' first CTE. */
#define DAY_CTE                                                                          \
    "WITH day AS (SELECT date_trunc('day', wasl_now() AT TIME ZONE '" DESK_WALLBOARD_TZ \
    "') AT TIME ZONE '" DESK_WALLBOARD_TZ "' AS start)"
#define ISO(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* One row per queue: the queues agents serve and those with tickets open or touched today.
 * SLA: first responses given today within their due, over those given today plus those whose
 * due passed today unanswered. Abandoned: calls ended today that intake marked abandoned — its
 * call_abandoned() (services/intake/call_decide.c) is the one rule: the end's cause says so, or,
 * in the generic CTI form, which has no such cause, the call waited in a queue and nobody
 * answered — counted once per call for the queue the call last named, which intake records
 * with the mark (call_events.abandoned_queue, migration 0023). CSAT: survey replies received today, by
 * wasl_tickets_csat (as `waslctl report csat` counts them). Wrap-up: the tickets resolved today
 * (and still resolved or closed) by their wrap-up code, by wasl_tickets_wrapup (as `waslctl
 * report wrapup` counts them), as a JSON object {code: count}. */
// clang-format off
static const char queues_sql[] = DAY_CTE ", q AS ("
    "  SELECT DISTINCT t.queue FROM tickets t, day"
    "   WHERE t.queue IS NOT NULL"
    "     AND (t.status NOT IN ('resolved', 'closed') OR t.updated_at >= day.start)"
    "  UNION SELECT jsonb_object_keys(a.skills) FROM agents a WHERE a.enabled),"
    " wu AS (SELECT w.queue, json_object_agg(w.code, w.resolved ORDER BY w.code) AS codes"
    "          FROM day, wasl_tickets_wrapup(day.start) w"
    "         WHERE w.code NOT IN ('(all)', '-') GROUP BY w.queue)"
    " SELECT q.queue,"
    "   (SELECT count(*) FROM tickets t WHERE t.queue = q.queue AND t.status = 'routed'),"
    "   (SELECT floor(extract(epoch FROM wasl_now()"
    "                 - min(coalesce(t.waiting_since, t.received_at))))::bigint"
    "      FROM tickets t WHERE t.queue = q.queue AND t.status = 'routed'),"
    "   (SELECT count(*) FROM tickets t"
    "     WHERE t.queue = q.queue AND t.status IN ('assigned', 'answered')),"
    "   s.met, s.due,"
    "   (SELECT count(DISTINCT e.call_id || ':' || coalesce(e.client_id, ''))"
    "      FROM call_events e"
    "     WHERE e.event = 'call.ended' AND e.received_at >= day.start"
    "       AND e.abandoned AND e.abandoned_queue = q.queue),"
    "   coalesce(c.responses, 0), c.average,"
    "   coalesce(wu.codes, '{}')::text"
    "  FROM q CROSS JOIN day"
    "  LEFT JOIN LATERAL ("
    "    SELECT count(*) FILTER (WHERE t.first_response_at >= day.start"
    "                              AND t.first_response_at <= t.first_response_due) AS met,"
    "           count(*) FILTER (WHERE t.first_response_at >= day.start"
    "                               OR (t.first_response_at IS NULL"
    "                                   AND t.first_response_due >= day.start"
    "                                   AND t.first_response_due <= wasl_now())) AS due"
    "      FROM tickets t WHERE t.queue = q.queue) s ON true"
    "  LEFT JOIN wasl_tickets_csat(day.start) c ON c.queue = q.queue AND c.agent = '(all)'"
    "  LEFT JOIN wu ON wu.queue = q.queue"
    " ORDER BY q.queue";
// clang-format on
enum { Q_QUEUE, Q_WAITING, Q_OLDEST, Q_IN_SERVICE, Q_MET, Q_DUE, Q_ABANDONED, Q_CSAT_N,
       Q_CSAT_AVG, Q_WRAPUP, Q_NCOLS };

/* Every enabled agent: effective presence, since when, tickets in service, live offers. */
// clang-format off
static const char agents_sql[] =
    "SELECT a.id, a.name, a.role,"
    "       CASE WHEN a.presence_until IS NULL OR a.presence_until <= wasl_now()"
    "            THEN 'offline' ELSE a.presence END,"
    "       (SELECT " ISO("max(e.at)") " FROM agent_events e"
    "         WHERE e.agent_id = a.id"
    "           AND e.kind IN ('presence', 'presence.away', 'presence.expired')),"
    "       (SELECT floor(extract(epoch FROM wasl_now() - max(e.at)))::bigint"
    "          FROM agent_events e WHERE e.agent_id = a.id"
    "           AND e.kind IN ('presence', 'presence.away', 'presence.expired')),"
    "       (SELECT count(*) FROM tickets t"
    "         WHERE t.assignee = a.id AND t.status IN ('assigned', 'answered')),"
    "       (SELECT count(*) FROM offers o"
    "         WHERE o.agent_id = a.id AND o.state = 'offered' AND o.expires_at > wasl_now()),"
    "       " ISO("wasl_now()") ", (" DAY_CTE " SELECT " ISO("start") " FROM day)"
    "  FROM agents a"
    " WHERE a.enabled"
    " ORDER BY a.id";
// clang-format on
enum { A_ID, A_NAME, A_ROLE, A_PRESENCE, A_SINCE, A_IN_STATE, A_IN_SERVICE, A_OFFERS, A_NOW,
       A_DAY, A_NCOLS };

static wasl_authz_principal_t principal(const desk_req_t *req)
{
    return desk_principal_authz(req); /* a person or a token (auth.h) */
}

static json_t *int_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col)
               ? json_null()
               : json_integer((json_int_t)strtoll(PQgetvalue(res, row, col), NULL, 10));
}

static json_t *str_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

static json_t *queue_json(const PGresult *res, int r)
{
    long long met = strtoll(PQgetvalue(res, r, Q_MET), NULL, 10);
    long long due = strtoll(PQgetvalue(res, r, Q_DUE), NULL, 10);
    json_t *sla = json_pack("{s:I, s:I, s:o}", "met", (json_int_t)met, "due", (json_int_t)due,
                            "percent", due > 0 ? json_integer((json_int_t)(met * 100 / due))
                                               : json_null());
    json_t *csat = json_pack("{s:o, s:o}", "responses", int_or_null(res, r, Q_CSAT_N), "average",
                             str_or_null(res, r, Q_CSAT_AVG));
    json_t *wrapup = json_loads(PQgetvalue(res, r, Q_WRAPUP), 0, NULL);
    return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "queue",
                     PQgetvalue(res, r, Q_QUEUE), "waiting", int_or_null(res, r, Q_WAITING),
                     "oldest_wait_s", int_or_null(res, r, Q_OLDEST), "in_service",
                     int_or_null(res, r, Q_IN_SERVICE), "sla_first_response", sla,
                     "abandoned_calls", int_or_null(res, r, Q_ABANDONED), "csat", csat,
                     "wrapup", wrapup ? wrapup : json_object());
}

static json_t *agent_json(const PGresult *res, int r)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "agent",
                     PQgetvalue(res, r, A_ID), "name", PQgetvalue(res, r, A_NAME), "role",
                     PQgetvalue(res, r, A_ROLE), "presence", PQgetvalue(res, r, A_PRESENCE),
                     "since", str_or_null(res, r, A_SINCE), "in_state_s",
                     int_or_null(res, r, A_IN_STATE), "in_service",
                     int_or_null(res, r, A_IN_SERVICE), "offers", int_or_null(res, r, A_OFFERS));
}

/* Supervisors and admins: the wallboard lists every queue (QUEUE_VIEW of none's). */
static bool supervisor_only(const desk_req_t *req, desk_reply_t *reply)
{
    wasl_authz_principal_t who = principal(req);
    wasl_authz_facts_t facts = {.actor = req->session.agent, .in_queue = false};
    wasl_authz_decision_t d = wasl_authz_decide(&who, WASL_AUTHZ_QUEUE_VIEW, &facts);
    if (!d.allowed) {
        desk_error(reply, 403, "supervisors_only", NULL, "the wallboard is for supervisors");
    }
    return d.allowed;
}

void desk_handle_wallboard(desk_req_t *req, desk_reply_t *reply)
{
    if (!supervisor_only(req, reply)) {
        return;
    }
    PGresult *qres = wasl_pg_query(req->db->pg, queues_sql, 0, NULL);
    PGresult *ares = wasl_pg_arity(qres, Q_NCOLS, "desk wallboard queues")
                         ? wasl_pg_query(req->db->pg, agents_sql, 0, NULL)
                         : NULL;
    if (!ares || !wasl_pg_arity(ares, A_NCOLS, "desk wallboard agents")) {
        PQclear(qres);
        PQclear(ares);
        desk_db_failed(reply, "wallboard");
        return;
    }
    json_t *queues = json_array(), *agents = json_array();
    for (int r = 0; r < PQntuples(qres); r++) {
        json_array_append_new(queues, queue_json(qres, r));
    }
    for (int r = 0; r < PQntuples(ares); r++) {
        json_array_append_new(agents, agent_json(ares, r));
    }
    /* The clock and the day come with the agents' statement (one row per agent; never none
     * when a supervisor asks: the supervisor is an enabled agent). */
    bool rows = PQntuples(ares) > 0;
    reply->status = 200;
    reply->body = json_pack("{s:o, s:{s:o, s:s}, s:o, s:o}", "at",
                            rows ? str_or_null(ares, 0, A_NOW) : json_null(),
                            "day", "start", rows ? str_or_null(ares, 0, A_DAY) : json_null(),
                            "tz", DESK_WALLBOARD_TZ, "queues", queues, "agents", agents);
    PQclear(qres);
    PQclear(ares);
}

/* ---- the queues ------------------------------------------------------------------------- */

void desk_handle_queues(desk_req_t *req, desk_reply_t *reply)
{
    /* The same rule as the transfer's check (tickets.c, queue_served): served by an enabled
     * agent. */
    PGresult *res = wasl_pg_query(req->db->pg,
                                  "SELECT coalesce(json_agg(q ORDER BY q), '[]')::text"
                                  "  FROM (SELECT DISTINCT jsonb_object_keys(skills) AS q"
                                  "          FROM agents WHERE enabled) s",
                                  0, NULL);
    json_t *list = wasl_pg_arity(res, 1, "desk queues") && PQntuples(res) == 1
                       ? json_loads(PQgetvalue(res, 0, 0), 0, NULL)
                       : NULL;
    PQclear(res);
    if (!list) {
        desk_db_failed(reply, "queues");
        return;
    }
    reply->status = 200;
    reply->body = json_pack("{s:o}", "queues", list);
}

/* ---- one agent --------------------------------------------------------------------------- */

/* Splits "{id}/{action}" of /v1/agents/…: 0 with id copied, or -1 with a 400/404. */
static int agent_path(const desk_req_t *req, char id[AGENT_ID_MAX + 1], const char **action,
                      desk_reply_t *reply)
{
    const char *slash = strchr(req->path_arg, '/');
    size_t n = slash ? (size_t)(slash - req->path_arg) : strlen(req->path_arg);
    if (!slash) {
        desk_error(reply, 404, "not_found", NULL, "no such agent path");
        return -1;
    }
    if (n == 0 || n > AGENT_ID_MAX) {
        desk_error(reply, 400, "invalid_field", "id", "an agent id is [a-z0-9._-]");
        return -1;
    }
    memcpy(id, req->path_arg, n);
    id[n] = '\0';
    if (!wasl_agent_id_ok(id)) {
        desk_error(reply, 400, "invalid_field", "id", "an agent id is [a-z0-9._-]");
        return -1;
    }
    *action = slash;
    return 0;
}

/* The agent's tickets in service, then its live offers (state 'offered'). */
// clang-format off
static const char work_sql[] =
    "SELECT t.ref, t.status, t.queue, t.priority, t.channel, t.subject,"
    "       " ISO("t.first_response_due") ", " ISO("t.resolution_due") ", o.id"
    "  FROM tickets t"
    "  LEFT JOIN offers o ON o.ticket_id = t.id AND o.state = 'offered'"
    "                    AND o.agent_id = $1 AND o.expires_at > wasl_now()"
    " WHERE (t.assignee = $1 AND t.status IN ('assigned', 'answered')) OR o.id IS NOT NULL"
    " ORDER BY o.id NULLS FIRST, t.prio_rank NULLS LAST, t.first_response_due NULLS LAST, t.id";
// clang-format on
enum { W_REF, W_STATUS, W_QUEUE, W_PRIORITY, W_CHANNEL, W_SUBJECT, W_FR_DUE, W_RES_DUE, W_OFFER,
       W_NCOLS };

static void agent_work(desk_req_t *req, const char *id, desk_reply_t *reply)
{
    const char *p[] = {id};
    PGresult *res = wasl_pg_query(req->db->pg, work_sql, 1, p);
    if (!wasl_pg_arity(res, W_NCOLS, "desk agent work")) {
        PQclear(res);
        desk_db_failed(reply, "agent_work");
        return;
    }
    json_t *list = json_array();
    for (int r = 0; r < PQntuples(res); r++) {
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:o, s:o, s:s, s:o, s:o, s:o, s:o}", "ticket",
                            PQgetvalue(res, r, W_REF), "status", PQgetvalue(res, r, W_STATUS),
                            "queue", str_or_null(res, r, W_QUEUE), "priority",
                            str_or_null(res, r, W_PRIORITY), "channel",
                            PQgetvalue(res, r, W_CHANNEL), "subject",
                            str_or_null(res, r, W_SUBJECT), "first_response_due",
                            str_or_null(res, r, W_FR_DUE), "resolution_due",
                            str_or_null(res, r, W_RES_DUE), "offer",
                            int_or_null(res, r, W_OFFER)));
    }
    PQclear(res);
    reply->status = 200;
    reply->body = json_pack("{s:s, s:o}", "agent", id, "tickets", list);
}

/* 0 when the session may do `action` for agent `id` (which exists); -1 with 403/404/503. */
static int agent_allowed(desk_req_t *req, const char *id, wasl_authz_action_t action,
                         const char *presence, desk_reply_t *reply)
{
    const char *p[] = {id};
    PGresult *res =
        wasl_pg_query(req->db->pg, "SELECT 1 FROM agents WHERE id = $1 AND enabled", 1, p);
    if (!wasl_pg_arity(res, 1, "desk agent exists")) {
        PQclear(res);
        desk_db_failed(reply, "agent");
        return -1;
    }
    wasl_authz_principal_t who = principal(req);
    wasl_authz_facts_t facts = {.actor = id,
                                .actor_field = "id",
                                .missing = PQntuples(res) == 0,
                                .presence = presence};
    PQclear(res);
    wasl_authz_decision_t d = wasl_authz_decide(&who, action, &facts);
    if (!d.allowed) {
        desk_error(reply, 403, d.code, d.field, "%s", d.why);
        return -1;
    }
    if (facts.missing) {
        desk_error(reply, 404, "not_found", "id", "no agent %s", id);
        return -1;
    }
    return 0;
}

void desk_handle_agent_get(desk_req_t *req, desk_reply_t *reply)
{
    char id[AGENT_ID_MAX + 1];
    const char *action;
    if (agent_path(req, id, &action, reply) < 0) {
        return;
    }
    if (strcmp(action, "/tickets") != 0) {
        desk_error(reply, 404, "not_found", NULL, "GET /v1/agents/{id}/tickets");
        return;
    }
    if (agent_allowed(req, id, WASL_AUTHZ_AGENT_VIEW, NULL, reply) == 0) {
        agent_work(req, id, reply);
    }
}

void desk_handle_agent_post(desk_req_t *req, desk_reply_t *reply)
{
    char id[AGENT_ID_MAX + 1];
    const char *action;
    if (agent_path(req, id, &action, reply) < 0) {
        return;
    }
    if (strcmp(action, "/force-offline") != 0) {
        desk_error(reply, 404, "not_found", NULL, "POST /v1/agents/{id}/force-offline");
        return;
    }
    /* A supervisor's act: an agent signs itself out with PUT /v1/me/presence. */
    if (wasl_authz_role_parse(req->session.role) < WASL_AUTHZ_ROLE_SUPERVISOR) {
        desk_error(reply, 403, "supervisors_only", NULL, "only a supervisor forces offline");
        return;
    }
    if (agent_allowed(req, id, WASL_AUTHZ_PRESENCE, "offline", reply) < 0) {
        return;
    }
    char client[WASL_SESSION_AGENT_BUF + 32];
    snprintf(client, sizeof client, "desk:force-offline:%s", req->session.agent);
    const char *p[] = {id, client};
    PGresult *res = wasl_pg_query(req->db->pg,
                                  "SELECT presence, was"
                                  "  FROM wasl_agents_set_presence($1, 'offline', 0, $2)",
                                  2, p);
    if (!wasl_pg_arity(res, 2, "wasl_agents_set_presence")) {
        desk_db_failed(reply, "force_offline");
    } else if (PQntuples(res) == 0) {
        desk_error(reply, 404, "not_found", "id", "no agent %s", id);
    } else {
        reply->status = 200;
        reply->body = json_pack("{s:s, s:s, s:s, s:s}", "agent", id, "presence",
                                PQgetvalue(res, 0, 0), "was", PQgetvalue(res, 0, 1), "by",
                                req->session.agent);
        wasl_info("desk: agent forced offline", "{s:s, s:s}", "agent", id, "by",
                  req->session.agent);
    }
    PQclear(res);
}
