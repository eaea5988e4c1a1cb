/* calls — the screen pop and the call's one-click ticket (see calls.h). */
#include "calls.h"
#include "wasl_authz.h"
#include "wasl_domain.h"
#include "wasl_log.h"
#include "wasl_ref.h"
#include "wasl_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ACTOR_CLIENT "desk"
#define CALL_ID_MAX  128
#define SUBJECT_MAX  200
#define TEXT_MAX     4000
#define POPS_MAX     "10"
/* Ticket references carry the year in Riyadh (as intake makes them). */
#define RIYADH_UTC_OFFSET_S (3 * 3600)
#define TS(col)             "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
#define STR2(x)             #x
#define STR(x)              STR2(x)

// clang-format off
/* The events of the pop's call: the same call id from the same telephony client. */
#define SAME_CALL(e)                                                                       \
    " " e ".call_id = p.call_id AND coalesce(" e ".client_id, '') = coalesce(p.client_id, '')"

/* The pops of the call events $1 (bigint[]): (agent, the pop's JSON, the agent's role), newest
 * first. The
 * caller's number is the first E.164 intake kept of the call ("caller"), else the ticket's;
 * the IVR path is the call's menus in seq order; the caller's tickets are the ticket view's
 * (wasl_tickets_of_phone), without the call's own. */
static const char POP_SQL[] =
    "SELECT p.data ->> 'agent', json_build_object("
    "         'call_id', p.call_id, 'agent', p.data ->> 'agent', 'event', p.event,"
    "         'rang_at', " TS("p.received_at") ", 'from', c.caller,"
    "         'queue', (SELECT e.data ->> 'queue' FROM call_events e"
    "                    WHERE" SAME_CALL("e") " AND e.data ? 'queue'"
    "                    ORDER BY e.seq DESC LIMIT 1),"
    "         'ivr', (SELECT coalesce(json_agg(e.data ->> 'menu' ORDER BY e.seq), '[]')"
    "                   FROM call_events e"
    "                  WHERE" SAME_CALL("e") " AND e.event = 'call.ivr' AND e.data ? 'menu'),"
    "         'ended', EXISTS (SELECT 1 FROM call_events e"
    "                           WHERE" SAME_CALL("e") " AND e.event = 'call.ended'),"
    "         'ticket', t.ref,"
    "         'tickets_days', " STR(DESK_CALLS_TICKET_DAYS) ","
    "         'tickets', " DESK_PHONE_TICKETS_JSON("c.caller", "t.id", "(p.data ->> 'agent')") ")::text,"
    "       (SELECT g.role FROM agents g WHERE g.id = p.data ->> 'agent')"
    "  FROM call_events p"
    "  LEFT JOIN tickets t ON t.channel = 'phone' AND t.external_id = p.call_id"
    "   AND wasl_idem_scope(t.channel, t.client_id) = wasl_idem_scope('phone', p.client_id)"
    "  CROSS JOIN LATERAL (SELECT coalesce((SELECT e.data ->> 'caller' FROM call_events e"
    "                                        WHERE" SAME_CALL("e") " AND e.data ? 'caller'"
    "                                        ORDER BY e.seq LIMIT 1), t.from_phone) AS caller) c"
    " WHERE p.id = ANY ($1::bigint[])"
    " ORDER BY p.id DESC";
// clang-format on

json_t *desk_category_label(const char *code)
{
    const char *ar = code ? wasl_category_label(code, "ar") : NULL;
    const char *en = code ? wasl_category_label(code, "en") : NULL;
    return ar && en ? json_pack("{s:s, s:s}", "ar", ar, "en", en) : json_null();
}

void desk_phone_tickets_shown(json_t *list, const wasl_authz_principal_t *who,
                              const char *viewer)
{
    size_t i;
    json_t *t;
    json_array_foreach(list, i, t)
    {
        wasl_authz_facts_t facts = {
            .actor = viewer,
            .actor_field = "ref",
            .assignee = json_string_value(json_object_get(t, "assignee")),
            .in_queue = json_is_true(json_object_get(t, "in_queue")),
        };
        bool readable = viewer && wasl_authz_decide(who, WASL_AUTHZ_TICKET_VIEW, &facts).allowed;
        json_object_del(t, "in_queue");
        if (readable) {
            json_object_set_new(t, "category_label",
                                desk_category_label(json_string_value(json_object_get(t, "category"))));
        } else {
            json_object_del(t, "subject");
            json_object_del(t, "category");
            json_object_del(t, "assignee");
        }
        json_object_set_new(t, "readable", json_boolean(readable));
    }
}

/* One row of POP_SQL as the pop (new reference) to show the agent it rang for: their tickets
 * readied by desk_phone_tickets_shown; NULL when the JSON cannot be read. */
static json_t *pop_json(const PGresult *res, int row)
{
    json_t *pop = json_loads(PQgetvalue(res, row, 1), 0, NULL);
    const char *agent = PQgetisnull(res, row, 0) ? NULL : PQgetvalue(res, row, 0);
    wasl_authz_principal_t who = {
        .role = wasl_authz_role_parse(PQgetisnull(res, row, 2) ? NULL : PQgetvalue(res, row, 2)),
        .act_as = agent};
    desk_phone_tickets_shown(json_object_get(pop, "tickets"), &who, agent);
    return pop;
}

bool desk_calls_notified(desk_events_t *hub, PGconn *pg, const char *payload)
{
    if (!strstr(payload, "\"call\"")) {
        return false; /* cheap: most notifications are tickets' and agents' */
    }
    json_t *doc = json_loads(payload, 0, NULL);
    const char *t = json_string_value(json_object_get(doc, "t"));
    json_t *id = json_object_get(doc, "id");
    if (!t || strcmp(t, "call") != 0) {
        json_decref(doc);
        return false;
    }
    if (json_is_integer(id)) {
        char ids[32];
        snprintf(ids, sizeof ids, "{%lld}", (long long)json_integer_value(id));
        const char *p[] = {ids};
        PGresult *res = PQexecParams(pg, POP_SQL, 1, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 3) {
            wasl_warn("desk: cannot read a screen pop", "{s:s}", "error", PQerrorMessage(pg));
        }
        for (int r = 0; PQresultStatus(res) == PGRES_TUPLES_OK && r < PQntuples(res); r++) {
            json_t *pop = pop_json(res, r);
            if (pop && !PQgetisnull(res, r, 0)) {
                desk_events_publish_own(hub, PQgetvalue(res, r, 0), "call", pop);
            }
            json_decref(pop);
        }
        PQclear(res);
    }
    json_decref(doc);
    return true;
}

/* ---- GET /v1/me/calls -------------------------------------------------------------------- */

void desk_handle_my_calls(desk_req_t *req, desk_reply_t *reply)
{
    /* The latest pop of each of the agent's recent calls that have not ended. */
    // clang-format off
    static const char recent_sql[] =
        "SELECT coalesce(array_agg(id ORDER BY id DESC), '{}')::text FROM ("
        "  SELECT DISTINCT ON (coalesce(p.client_id, ''), p.call_id) p.id"
        "    FROM call_events p"
        "   WHERE p.event IN ('call.ringing', 'call.answered') AND p.data ->> 'agent' = $1"
        "     AND p.received_at > now() - make_interval(secs => " STR(DESK_CALLS_RECENT_S) ")"
        "     AND NOT EXISTS (SELECT 1 FROM call_events e"
        "                      WHERE" SAME_CALL("e") " AND e.event = 'call.ended')"
        "   ORDER BY coalesce(p.client_id, ''), p.call_id, p.id DESC) s"
        " LIMIT " POPS_MAX;
    // clang-format on
    const char *p[] = {req->session.agent};
    PGresult *res = wasl_pg_query(req->db->pg, recent_sql, 1, p);
    if (!wasl_pg_arity(res, 1, "desk my calls") || PQntuples(res) != 1) {
        PQclear(res);
        desk_db_failed(reply, "my_calls");
        return;
    }
    const char *ids[] = {PQgetvalue(res, 0, 0)};
    PGresult *pops = wasl_pg_query(req->db->pg, POP_SQL, 1, ids);
    PQclear(res);
    if (!wasl_pg_arity(pops, 3, "desk pops")) {
        PQclear(pops);
        desk_db_failed(reply, "my_calls pops");
        return;
    }
    json_t *calls = json_array();
    for (int r = 0; r < PQntuples(pops) && r < 10; r++) {
        json_t *pop = pop_json(pops, r);
        if (pop) {
            json_array_append_new(calls, pop);
        }
    }
    PQclear(pops);
    reply->status = 200;
    reply->body = json_pack("{s:s, s:o, s:i}", "agent", req->session.agent, "calls", calls,
                            "recent_s", DESK_CALLS_RECENT_S);
}

/* ---- POST /v1/calls/{call_id}/ticket ----------------------------------------------------- */

/* The call id of the path "{call_id}/ticket" into out: 0, or -1 with a 400/404. */
static int path_call(const desk_req_t *req, char out[CALL_ID_MAX + 1], desk_reply_t *reply)
{
    static const char suffix[] = "/ticket";
    size_t n = strlen(req->path_arg);
    if (n < sizeof suffix || strcmp(req->path_arg + n - (sizeof suffix - 1), suffix) != 0) {
        desk_error(reply, 404, "not_found", NULL, "POST /v1/calls/{call_id}/ticket");
        return -1;
    }
    n -= sizeof suffix - 1;
    bool ok = n >= 1 && n <= CALL_ID_MAX && wasl_utf8_valid(req->path_arg, n, false);
    for (size_t i = 0; ok && i < n; i++) {
        ok = (unsigned char)req->path_arg[i] >= 0x20 && req->path_arg[i] != '/' &&
             req->path_arg[i] != 0x7f;
    }
    if (!ok) {
        desk_error(reply, 400, "invalid_field", "call_id",
                   "call_id is 1..%d bytes of UTF-8 text without '/'", CALL_ID_MAX);
        return -1;
    }
    memcpy(out, req->path_arg, n);
    out[n] = '\0';
    return 0;
}

/* A fresh reference from ticket_ref_seq, formatted as intake does. 0 or -1. */
static int next_ref(desk_req_t *req, char out[WASL_REF_LEN + 1])
{
    PGresult *res = wasl_pg_query(req->db->pg, "SELECT nextval('ticket_ref_seq')", 0, NULL);
    if (!wasl_pg_arity(res, 1, "desk ref") || PQntuples(res) != 1) {
        PQclear(res);
        return -1;
    }
    uint32_t seq = (uint32_t)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    time_t now = time(NULL) + RIYADH_UTC_OFFSET_S;
    struct tm tm;
    gmtime_r(&now, &tm);
    return wasl_ref_format((tm.tm_year + 1900) % 100, seq, out) < 0 ? -1 : 0;
}

typedef struct {
    const char *call_id, *subject, *text;
} call_ticket_arg_t;

enum { RING_CLIENT, RING_AGENT, RING_HAS_TICKET, RING_CALLER, RING_NCOLS };

/* In the transaction: the call's ring (the session agent's, else the latest), who may act,
 * then the function. 0 to commit, -1 with the reply set. */
static int run_call_ticket(desk_req_t *req, const call_ticket_arg_t *a, desk_reply_t *reply)
{
    // clang-format off
    static const char ring_sql[] =
        "SELECT p.client_id, p.data ->> 'agent', t.id IS NOT NULL,"
        "       coalesce((SELECT e.data ->> 'caller' FROM call_events e"
        "                  WHERE" SAME_CALL("e") " AND e.data ? 'caller'"
        "                  ORDER BY e.seq LIMIT 1), t.from_phone)"
        "  FROM call_events p"
        "  LEFT JOIN tickets t ON t.channel = 'phone' AND t.external_id = p.call_id"
        "   AND wasl_idem_scope(t.channel, t.client_id) = wasl_idem_scope('phone', p.client_id)"
        " WHERE p.call_id = $1 AND p.event IN ('call.ringing', 'call.answered')"
        "   AND p.data ->> 'agent' ~ '^[a-z0-9][a-z0-9._-]{0,63}$'"
        " ORDER BY p.data ->> 'agent' = $2 DESC, p.id DESC"
        " LIMIT 1";
    // clang-format on
    const char *rp[] = {a->call_id, req->session.agent};
    PGresult *ring = wasl_pg_query(req->db->pg, ring_sql, 2, rp);
    if (!wasl_pg_arity(ring, RING_NCOLS, "desk call ring")) {
        PQclear(ring);
        desk_db_failed(reply, "call ring");
        return -1;
    }
    int rc = -1;
    const char *agent = PQntuples(ring) ? PQgetvalue(ring, 0, RING_AGENT) : NULL;
    bool boss = wasl_authz_role_parse(req->session.role) >= WASL_AUTHZ_ROLE_SUPERVISOR;
    char ref[WASL_REF_LEN + 1] = "";
    if (!agent) {
        desk_error(reply, 404, "not_found", "call_id", "no call %s rang for an agent", a->call_id);
    } else if (strcmp(agent, req->session.agent) != 0 && !boss) {
        desk_error(reply, 403, "not_your_call", "call_id",
                   "the call rang for another agent: only they or a supervisor make its ticket");
    } else if (PQgetvalue(ring, 0, RING_HAS_TICKET)[0] != 't' && next_ref(req, ref) < 0) {
        desk_db_failed(reply, "call ref");
    } else {
        const char *client =
            PQgetisnull(ring, 0, RING_CLIENT) ? NULL : PQgetvalue(ring, 0, RING_CLIENT);
        const char *caller =
            PQgetisnull(ring, 0, RING_CALLER) ? NULL : PQgetvalue(ring, 0, RING_CALLER);
        const char *fp[] = {client, a->call_id, agent,   *ref ? ref : NULL,
                            caller, a->subject, a->text, ACTOR_CLIENT};
        PGresult *res = wasl_pg_query(req->db->pg,
                                      "SELECT ref, created, assignee FROM"
                                      " wasl_tickets_call_ticket($1, $2, $3, $4, $5, $6, $7, $8)",
                                      8, fp);
        if (!wasl_pg_arity(res, 3, "wasl_tickets_call_ticket")) {
            desk_db_failed(reply, "call ticket");
        } else if (PQntuples(res) == 0) {
            desk_error(reply, 409, "unknown_agent", "call_id",
                       "the call rang for %s, who is no enabled agent", agent);
        } else {
            bool created = PQgetvalue(res, 0, 1)[0] == 't';
            reply->status = created ? 201 : 200;
            reply->body = json_pack("{s:s, s:s, s:b, s:s}", "call_id", a->call_id, "ticket",
                                    PQgetvalue(res, 0, 0), "created", created, "assignee",
                                    PQgetvalue(res, 0, 2));
            rc = 0;
        }
        PQclear(res);
    }
    PQclear(ring);
    return rc;
}

void desk_handle_call_post(desk_req_t *req, desk_reply_t *reply)
{
    char call_id[CALL_ID_MAX + 1];
    if (path_call(req, call_id, reply) < 0) {
        return;
    }
    call_ticket_arg_t a = {.call_id = call_id};
    json_t *doc = desk_body_json(req, reply);
    if (!doc ||
        desk_str_field(doc, "subject", DESK_FIELD_NONBLANK, SUBJECT_MAX, &a.subject, reply) < 0 ||
        desk_str_field(doc, "text", DESK_FIELD_NONBLANK, TEXT_MAX, &a.text, reply) < 0) {
        json_decref(doc);
        return;
    }
    if (wasl_pg_begin(req->db->pg) < 0) {
        desk_db_failed(reply, "call ticket");
    } else if (run_call_ticket(req, &a, reply) == 0) {
        if (wasl_pg_commit(req->db->pg) < 0) {
            json_decref(reply->body);
            reply->body = NULL;
            desk_db_failed(reply, "call ticket commit");
        } else {
            /* The call id is the PBX's own (no number); the caller's number is not logged. */
            wasl_info("desk: call ticket", "{s:s, s:s, s:s, s:b}", "call", call_id, "ticket",
                      json_string_value(json_object_get(reply->body, "ticket")), "agent",
                      req->session.agent, "created",
                      json_is_true(json_object_get(reply->body, "created")));
        }
    } else {
        wasl_pg_rollback(req->db->pg);
    }
    json_decref(doc);
}
