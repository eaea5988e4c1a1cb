/* agents — the agent desk on intake: agents and their presence, offers (accept/reject), queue
 * views and ticket actions (notes, transfer, resolve, reopen). Each state change is one
 * transaction with its history event; the router makes the offers (services/router). */
#include "handlers.h"
#include "wasl_agents.h"
#include "wasl_log.h"
#include "wasl_ref.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define AGENT_ID_MAX           64
#define QUEUE_NAME_MAX         63
#define AGENT_NAME_MAX         200
#define NOTE_MAX_BYTES         10000
#define RESOLUTION_MAX_BYTES   2000
#define REASON_MAX_BYTES       500
#define SKILL_LEVEL_MAX        10
#define CAPACITY_MAX           50
#define SKILLS_MAX             32
#define PRESENCE_TTL_DEFAULT_S 60
#define PRESENCE_TTL_MIN_S     10
#define PRESENCE_TTL_MAX_S     3600
#define WRAPUP_MAX_S           3600
#define QUEUE_VIEW_LIMIT       "500"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

typedef enum {
    OP_AGENT_LIST,
    OP_AGENT_GET,
    OP_AGENT_PUT,
    OP_AGENT_DELETE,
    OP_PRESENCE,
    OP_OFFERS,
    OP_ACCEPT,
    OP_REJECT,
    OP_QUEUE,
    OP_NOTE,
    OP_TRANSFER,
    OP_RESOLVE,
    OP_REOPEN,
} desk_op_t;

/* A request's validated input, handed to a writer (freed by desk_arg_free). */
typedef struct {
    desk_op_t op;
    char id[80];                  /* agent id, offer id, queue name or ticket reference */
    char agent[AGENT_ID_MAX + 1]; /* the acting agent (body "agent") */
    char *text;                   /* note, resolution, reason, presence state, target queue */
    char *reason;
    char *json; /* agent document (PUT) */
    long n;     /* presence ttl */
} desk_arg_t;

static void desk_arg_free(void *p)
{
    desk_arg_t *a = p;
    if (a) {
        free(a->text);
        free(a->reason);
        free(a->json);
        free(a);
    }
}

static bool name_ok(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len == 0 || len > max || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0]))) {
        return false;
    }
    for (const char *c = s; *c; c++) {
        if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '-' || *c == '_' ||
              *c == '.')) {
            return false;
        }
    }
    return true;
}

/* Splits "x/action" into x (copied into `first`) and the action (NULL when absent). */
static const char *split_arg(const char *arg, char *first, size_t cap)
{
    const char *slash = strchr(arg, '/');
    size_t len = slash ? (size_t)(slash - arg) : strlen(arg);
    if (len >= cap) {
        len = cap - 1;
    }
    memcpy(first, arg, len);
    first[len] = '\0';
    return slash ? slash + 1 : NULL;
}

/* ---- transactions --------------------------------------------------------------------------- */

static json_t *str_or_null(const PGresult *res, int r, int c)
{
    return PQgetisnull(res, r, c) ? json_null() : json_string(PQgetvalue(res, r, c));
}

static json_t *jsonb(const PGresult *res, int r, int c)
{
    json_t *v = json_loads(PQgetvalue(res, r, c), JSON_DECODE_ANY, NULL);
    return v ? v : json_null();
}

/* The agent columns, as one literal so that both queries below are fixed text. */
#define AGENT_COLS                                                                                 \
    "SELECT id, name, skills::text, to_jsonb(languages)::text, capacity::text, wrapup_s,"          \
    "  CASE WHEN presence_until IS NULL OR presence_until <= now() THEN 'offline'"                 \
    "       ELSE presence END, " TS("presence_until") ", enabled,"                                 \
                                                      "  CASE WHEN wrapup_until > now() THEN " TS( \
                                                          "wrapup_until") " END"                   \
                                                                          " FROM agents"

static json_t *agent_json(const PGresult *res, int r)
{
    return json_pack(
        "{s:s, s:s, s:o, s:o, s:o, s:i, s:s, s:o, s:b, s:o}", "id", PQgetvalue(res, r, 0), "name",
        PQgetvalue(res, r, 1), "skills", jsonb(res, r, 2), "languages", jsonb(res, r, 3),
        "capacity", jsonb(res, r, 4), "wrapup_s", atoi(PQgetvalue(res, r, 5)), "presence",
        PQgetvalue(res, r, 6), "presence_until", str_or_null(res, r, 7), "enabled",
        strcmp(PQgetvalue(res, r, 8), "t") == 0, "wrapup_until", str_or_null(res, r, 9));
}

/* 0 when `agent` is an enabled agent; else fills a 404 and returns -1. */
static int require_agent(wasl_pg_t *pg, const char *agent, intake_reply_t *reply)
{
    const char *p[] = {agent};
    PGresult *res = intake_sql(pg, "SELECT 1 FROM agents WHERE id = $1 AND enabled", 1, p);
    if (!res) {
        return -1;
    }
    int n = PQntuples(res);
    PQclear(res);
    if (n == 0) {
        intake_error(reply, 404, "unknown_agent", "agent", "no enabled agent %s", agent);
        return -1;
    }
    return 0;
}

static int txn_agents_read(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    const char *p[] = {a->id};
    bool one = a->op == OP_AGENT_GET;
    PGresult *res = intake_sql(pg, one ? AGENT_COLS " WHERE id = $1" : AGENT_COLS " ORDER BY id",
                               one ? 1 : 0, p);
    if (!res) {
        return -1;
    }
    if (one && PQntuples(res) == 0) {
        PQclear(res);
        intake_error(reply, 404, "not_found", "id", "no agent %s", a->id);
        return -1;
    }
    if (one) {
        reply->body = agent_json(res, 0);
    } else {
        json_t *list = json_array();
        for (int r = 0; r < PQntuples(res); r++) {
            json_array_append_new(list, agent_json(res, r));
        }
        reply->body = json_pack("{s:o}", "agents", list);
    }
    reply->status = 200;
    PQclear(res);
    return 0;
}

static int txn_agent_put(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    json_t *doc = json_loads(a->json, 0, NULL);
    if (!doc) {
        return -1;
    }
    char *skills = json_dumps(json_object_get(doc, "skills"), JSON_COMPACT);
    char *langs = json_dumps(json_object_get(doc, "languages"), JSON_COMPACT);
    json_t *capj = json_object_get(doc, "capacity");
    char *cap = capj ? json_dumps(capj, JSON_COMPACT) : NULL;
    json_t *w = json_object_get(doc, "wrapup_s");
    char wrapup[24] = "";
    if (w) {
        snprintf(wrapup, sizeof wrapup, "%lld", (long long)json_integer_value(w));
    }
    const char *p[] = {a->id,  json_string_value(json_object_get(doc, "name")),
                       skills, langs,
                       cap,    w ? wrapup : NULL};
    PGresult *res = intake_sql(
        pg,
        "WITH up AS ("
        "  INSERT INTO agents (id, name, skills, languages, capacity, wrapup_s)"
        "  VALUES ($1, $2, coalesce($3::jsonb, '{}'),"
        "    coalesce(ARRAY(SELECT jsonb_array_elements_text($4::jsonb)), '{ar}'),"
        "    coalesce($5::jsonb, '{\"phone\": 1, \"email\": 3, \"sms\": 3, \"web\": 3, \"api\": "
        "3}'),"
        "    coalesce($6::int, 30))"
        "  ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, skills = EXCLUDED.skills,"
        "    languages = EXCLUDED.languages, capacity = EXCLUDED.capacity,"
        "    wrapup_s = EXCLUDED.wrapup_s, enabled = true, updated_at = now()"
        "  RETURNING id, (xmax = 0) AS created"
        "), ev AS ("
        "  INSERT INTO agent_events (agent_id, kind, actor, data)"
        "  SELECT id, 'agent.saved', 'api', jsonb_build_object('skills', $3::jsonb) FROM up"
        ")"
        "SELECT created FROM up",
        6, p);
    free(skills);
    free(langs);
    free(cap);
    json_decref(doc);
    if (!res) {
        return -1;
    }
    bool created = PQntuples(res) && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    desk_arg_t get = *a;
    get.op = OP_AGENT_GET;
    if (txn_agents_read(&get, pg, reply) < 0) {
        return -1;
    }
    reply->status = created ? 201 : 200;
    return 0;
}

static int txn_agent_delete(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    const char *p[] = {a->id, "api"};
    PGresult *res = intake_sql(pg, wasl_agent_remove_sql, 2, p);
    if (!res) {
        return -1;
    }
    int n = PQntuples(res);
    PQclear(res);
    if (n == 0) {
        intake_error(reply, 404, "not_found", "id", "no enabled agent %s", a->id);
        return -1;
    }
    reply->status = 200;
    reply->body = json_pack("{s:s, s:b}", "id", a->id, "enabled", false);
    return 0;
}

static int txn_presence(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%ld", a->n);
    const char *p[] = {a->id, a->text, ttl};
    PGresult *res = intake_sql(
        pg,
        "WITH old AS ("
        "  SELECT presence, presence_until IS NULL OR presence_until <= now() AS expired"
        "  FROM agents WHERE id = $1 AND enabled FOR UPDATE"
        "), up AS ("
        "  UPDATE agents a SET presence = $2::text,"
        "    presence_until = CASE WHEN $2::text = 'offline' THEN NULL"
        "                          ELSE now() + make_interval(secs => $3::int) END,"
        "    idle_since = CASE WHEN $2::text = 'available' AND (o.expired"
        "                           OR o.presence <> 'available') THEN now()"
        "                      ELSE a.idle_since END,"
        "    updated_at = now()"
        "  FROM old o WHERE a.id = $1"
        "  RETURNING a.presence, a.presence_until,"
        "    CASE WHEN o.expired THEN 'offline' ELSE o.presence END AS was"
        "), ev AS ("
        "  INSERT INTO agent_events (agent_id, kind, actor, data)"
        "  SELECT $1, 'presence', $1, jsonb_build_object('from', was, 'to', $2::text)"
        "  FROM up WHERE was <> $2::text"
        "), wd AS ("
        "  UPDATE offers o SET state = 'withdrawn', answered_at = now(),"
        "    reason = 'agent ' || $2::text"
        "  FROM up WHERE o.agent_id = $1 AND o.state = 'offered' AND $2::text <> 'available'"
        "  RETURNING o.id, o.ticket_id"
        "), tev AS ("
        "  INSERT INTO ticket_events (ticket_id, kind, actor, data)"
        "  SELECT ticket_id, 'offer.withdrawn', $1, jsonb_build_object('offer', id, 'agent',"
        "    $1::text, 'reason', 'agent ' || $2::text) FROM wd"
        ")"
        "SELECT presence, " TS("presence_until") ", was FROM up",
        3, p);
    if (!res) {
        return -1;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        intake_error(reply, 404, "not_found", "id", "no enabled agent %s", a->id);
        return -1;
    }
    reply->status = 200;
    reply->body =
        json_pack("{s:s, s:s, s:o, s:s}", "agent", a->id, "presence", PQgetvalue(res, 0, 0),
                  "presence_until", str_or_null(res, 0, 1), "was", PQgetvalue(res, 0, 2));
    PQclear(res);
    return 0;
}

static int txn_offers(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    if (require_agent(pg, a->id, reply) < 0) {
        return -1;
    }
    const char *p[] = {a->id};
    PGresult *res =
        intake_sql(pg,
                   "SELECT o.id, t.ref, t.queue, t.priority, t.channel, t.language, t.subject,"
                   "  " TS("o.expires_at") ", " TS(
                       "t.first_response_due") " FROM offers o JOIN tickets t ON t.id = o.ticket_id"
                                               " WHERE o.agent_id = $1 AND o.state = 'offered' AND "
                                               "o.expires_at > now() ORDER BY o.id",
                   1, p);
    if (!res) {
        return -1;
    }
    json_t *list = json_array();
    for (int r = 0; r < PQntuples(res); r++) {
        json_array_append_new(
            list, json_pack("{s:I, s:s, s:o, s:o, s:s, s:o, s:o, s:s, s:o}", "offer",
                            (json_int_t)strtoll(PQgetvalue(res, r, 0), NULL, 10), "ticket",
                            PQgetvalue(res, r, 1), "queue", str_or_null(res, r, 2), "priority",
                            str_or_null(res, r, 3), "channel", PQgetvalue(res, r, 4), "language",
                            str_or_null(res, r, 5), "subject", str_or_null(res, r, 6), "expires_at",
                            PQgetvalue(res, r, 7), "first_response_due", str_or_null(res, r, 8)));
    }
    PQclear(res);
    reply->status = 200;
    reply->body = json_pack("{s:s, s:o}", "agent", a->id, "offers", list);
    return 0;
}

/* Why an offer cannot be answered: a 404/409 in reply. Always returns -1. */
static int offer_refusal(wasl_pg_t *pg, const desk_arg_t *a, intake_reply_t *reply)
{
    const char *p[] = {a->id};
    PGresult *res = intake_sql(pg,
                               "SELECT agent_id, state, expires_at <= now() FROM offers"
                               " WHERE id = $1::bigint",
                               1, p);
    if (!res) {
        return -1;
    }
    if (PQntuples(res) == 0) {
        intake_error(reply, 404, "not_found", "id", "no offer %s", a->id);
    } else if (strcmp(PQgetvalue(res, 0, 0), a->agent) != 0) {
        intake_error(reply, 409, "not_your_offer", "agent", "offer %s is not %s's", a->id,
                     a->agent);
    } else if (strcmp(PQgetvalue(res, 0, 1), "offered") != 0) {
        intake_error(reply, 409, "offer_closed", "id", "offer %s is %s", a->id,
                     PQgetvalue(res, 0, 1));
    } else {
        intake_error(reply, 409, "offer_expired", "id", "offer %s has expired", a->id);
    }
    PQclear(res);
    return -1;
}

static int txn_accept(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    const char *p[] = {a->id, a->agent};
    PGresult *res = intake_sql(
        pg,
        "WITH o AS ("
        "  UPDATE offers SET state = 'accepted', answered_at = now()"
        "  WHERE id = $1::bigint AND agent_id = $2 AND state = 'offered' AND expires_at > now()"
        "  RETURNING id, ticket_id"
        "), t AS ("
        "  UPDATE tickets t SET status = 'assigned', assignee = $2,"
        "    first_response_at = coalesce(t.first_response_at, now()), no_agent_since = NULL,"
        "    updated_at = now()"
        "  FROM o WHERE t.id = o.ticket_id AND t.status = 'routed' RETURNING t.id, t.ref"
        "), ev AS ("
        "  INSERT INTO ticket_events (ticket_id, kind, actor, data)"
        "  SELECT t.id, 'offer.accepted', $2, jsonb_build_object('offer', $1::bigint, 'agent',"
        "    $2::text) FROM t"
        ")"
        "SELECT o.id, t.ref FROM o LEFT JOIN t ON true",
        2, p);
    if (!res) {
        return -1;
    }
    int n = PQntuples(res);
    bool assigned = n > 0 && !PQgetisnull(res, 0, 1);
    char ref[WASL_REF_LEN + 1] = "";
    if (assigned) {
        snprintf(ref, sizeof ref, "%s", PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    if (n == 0) {
        return offer_refusal(pg, a, reply);
    }
    if (!assigned) {
        intake_error(reply, 409, "ticket_moved", "id",
                     "the ticket of offer %s is no longer waiting", a->id);
        return -1;
    }
    reply->status = 200;
    reply->body = json_pack("{s:s, s:s, s:s, s:s}", "offer", a->id, "state", "accepted", "ticket",
                            ref, "assignee", a->agent);
    return 0;
}

static int txn_reject(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    const char *p[] = {a->id, a->agent, a->reason};
    PGresult *res = intake_sql(
        pg,
        "WITH o AS ("
        "  UPDATE offers SET state = 'rejected', answered_at = now(), reason = $3"
        "  WHERE id = $1::bigint AND agent_id = $2 AND state = 'offered' RETURNING id, ticket_id"
        "), ev AS ("
        "  INSERT INTO ticket_events (ticket_id, kind, actor, data)"
        "  SELECT ticket_id, 'offer.rejected', $2, jsonb_strip_nulls(jsonb_build_object('offer',"
        "    id, 'agent', $2::text, 'reason', $3::text)) FROM o"
        ")"
        "SELECT id FROM o",
        3, p);
    if (!res) {
        return -1;
    }
    int n = PQntuples(res);
    PQclear(res);
    if (n == 0) {
        return offer_refusal(pg, a, reply);
    }
    reply->status = 200;
    reply->body = json_pack("{s:s, s:s}", "offer", a->id, "state", "rejected");
    return 0;
}

static int txn_queue(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    const char *p[] = {a->id};
    /* Waiting tickets in the order the router offers them: priority, SLA deadline, age. */
    PGresult *res = intake_sql(
        pg,
        "SELECT t.ref, t.status, t.priority, t.channel, t.assignee, " TS(
            "t.first_response_"
            "due") ", " TS("t.resolution_due") ", " TS("t.waiting_since") ","
                                                                          "  extract(epoch FROM "
                                                                          "now() - "
                                                                          "t.waiting_since)::"
                                                                          "bigint, "
                                                                          "t.escalated_at IS NOT "
                                                                          "NULL,"
                                                                          "  (SELECT o.agent_id "
                                                                          "FROM "
                                                                          "offers o WHERE "
                                                                          "o.ticket_id = "
                                                                          "t.id AND o.state = "
                                                                          "'offered')"
                                                                          " FROM tickets t WHERE "
                                                                          "t.queue "
                                                                          "= $1 AND t.status IN "
                                                                          "('routed', 'assigned')"
                                                                          " ORDER BY t.status = "
                                                                          "'assigned', "
                                                                          "t.prio_rank, "
                                                                          "t.first_response_due, "
                                                                          "t.waiting_since, t.id"
                                                                          " LIMIT"
                                                                          " " QUEUE_VIEW_LIMIT,
        1, p);
    if (!res) {
        return -1;
    }
    json_t *list = json_array();
    for (int r = 0; r < PQntuples(res); r++) {
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:o, s:I, s:b, s:o}", "ticket",
                            PQgetvalue(res, r, 0), "status", PQgetvalue(res, r, 1), "priority",
                            str_or_null(res, r, 2), "channel", PQgetvalue(res, r, 3), "assignee",
                            str_or_null(res, r, 4), "first_response_due", str_or_null(res, r, 5),
                            "resolution_due", str_or_null(res, r, 6), "waiting_since",
                            str_or_null(res, r, 7), "waiting_s",
                            (json_int_t)strtoll(PQgetvalue(res, r, 8), NULL, 10), "escalated",
                            strcmp(PQgetvalue(res, r, 9), "t") == 0, "offered_to",
                            str_or_null(res, r, 10)));
    }
    PQclear(res);
    reply->status = 200;
    reply->body = json_pack("{s:s, s:o}", "queue", a->id, "tickets", list);
    return 0;
}

/* For ticket actions: the row `sql` returns has the ticket's status first (no row: 404) and,
 * second, non-NULL when the change was made (NULL: 409 in the ticket's status). */
static int ticket_change(wasl_pg_t *pg, const desk_arg_t *a, const char *sql, int n,
                         const char *const *p, const char *what, intake_reply_t *reply)
{
    if (require_agent(pg, a->agent, reply) < 0) {
        return -1;
    }
    PGresult *res = intake_sql(pg, sql, n, p);
    if (!res) {
        return -1;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        intake_error(reply, 404, "not_found", "ref", "no ticket %s", a->id);
        return -1;
    }
    if (PQgetisnull(res, 0, 1)) {
        intake_error(reply, 409, "wrong_state", "ref", "ticket %s is %s%s: cannot %s", a->id,
                     PQgetvalue(res, 0, 0),
                     PQnfields(res) > 2 && !PQgetisnull(res, 0, 2) ? " by another agent" : "",
                     what);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    reply->status = 200;
    reply->body = json_pack("{s:s, s:s}", "ticket", a->id, "done", what);
    return 0;
}

static int txn_note(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    const char *p[] = {a->id, a->agent, a->text};
    return ticket_change(pg, a,
                         "WITH t AS (SELECT id, status FROM tickets WHERE ref = $1),"
                         " ev AS (INSERT INTO ticket_events (ticket_id, kind, actor, data)"
                         "   SELECT id, 'note', $2, jsonb_build_object('text', $3::text) FROM t"
                         "   RETURNING ticket_id)"
                         " SELECT t.status, ev.ticket_id FROM t LEFT JOIN ev ON true",
                         3, p, "note", reply);
}

static int txn_transfer(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    const char *q[] = {a->text};
    PGresult *res = intake_sql(pg, "SELECT 1 FROM agents WHERE enabled AND skills ? $1", 1, q);
    if (!res) {
        return -1;
    }
    int staffed = PQntuples(res);
    PQclear(res);
    if (!staffed) {
        intake_error(reply, 400, "unknown_queue", "queue", "no agent serves queue %s", a->text);
        return -1;
    }
    const char *p[] = {a->id, a->agent, a->text, a->reason};
    /* The ticket keeps waiting_since: it keeps its place in line. */
    return ticket_change(
        pg, a,
        "WITH c AS (SELECT id, status, queue AS old_queue, assignee FROM tickets WHERE ref = $1"
        "   FOR UPDATE),"
        " up AS (UPDATE tickets t SET queue = $3, skills = '{}', status = 'routed',"
        "   assignee = NULL, no_agent_since = NULL, overflowed_at = NULL, updated_at = now()"
        "   FROM c WHERE t.id = c.id AND c.status IN ('routed', 'assigned') RETURNING t.id),"
        " wd AS (UPDATE offers o SET state = 'withdrawn', answered_at = now(),"
        "   reason = 'transferred' FROM up WHERE o.ticket_id = up.id AND o.state = 'offered'),"
        " ev AS (INSERT INTO ticket_events (ticket_id, kind, actor, data)"
        "   SELECT c.id, 'transferred', $2, jsonb_strip_nulls(jsonb_build_object('from',"
        "   c.old_queue, 'to', $3::text, 'assignee_was', c.assignee, 'reason', $4::text))"
        "   FROM c JOIN up ON up.id = c.id)"
        " SELECT c.status, up.id FROM c LEFT JOIN up ON true",
        4, p, "transfer", reply);
}

static int txn_resolve(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    const char *p[] = {a->id, a->agent, a->text};
    /* The beneficiary's update and survey go to the outbox in the same transaction; the
     * notifier's sweep sends them (intake's bus socket feeds the classify stage only). */
    return ticket_change(
        pg, a,
        "WITH c AS (SELECT id, ref, status, assignee, reopen_count, from_phone, from_email,"
        "   language, auto_submitted FROM tickets WHERE ref = $1 FOR UPDATE),"
        " up AS (UPDATE tickets t SET status = 'resolved', resolved_at = now(), resolution = $3,"
        "   updated_at = now() FROM c WHERE t.id = c.id AND c.status IN ('routed', 'assigned')"
        "   AND (c.assignee IS NULL OR c.assignee = $2) RETURNING t.id),"
        " wd AS (UPDATE offers o SET state = 'withdrawn', answered_at = now(),"
        "   reason = 'resolved' FROM up WHERE o.ticket_id = up.id AND o.state = 'offered'),"
        " ag AS (UPDATE agents g SET wrapup_until = now() + make_interval(secs => g.wrapup_s),"
        "   idle_since = now() + make_interval(secs => g.wrapup_s), updated_at = now()"
        "   FROM up WHERE g.id = $2 RETURNING g.wrapup_until),"
        " ev AS (INSERT INTO ticket_events (ticket_id, kind, actor, data)"
        "   SELECT up.id, 'resolved', $2, jsonb_build_object('resolution', $3::text,"
        "   'wrapup_until', (SELECT wrapup_until FROM ag)) FROM up),"
        " n AS (INSERT INTO notifications (ticket_id, kind, channel, recipient, lang, template,"
        "   params, dedupe_key)"
        "   SELECT c.id, k.kind, CASE WHEN c.from_phone IS NOT NULL THEN 'sms' ELSE 'email' END,"
        "   coalesce(c.from_phone, c.from_email), CASE WHEN c.language = 'en' THEN 'en'"
        "   ELSE 'ar' END, k.template, k.params,"
        "   'ticket:' || c.id || ':' || k.template || ':' || (c.reopen_count + 1)"
        "   FROM c JOIN up ON up.id = c.id CROSS JOIN LATERAL (VALUES"
        "   ('update', 'resolved', jsonb_build_object('ref', c.ref, 'resolution', $3::text)),"
        "   ('survey', 'survey', jsonb_build_object('ref', c.ref))) AS k(kind, template, params)"
        "   WHERE coalesce(c.from_phone, c.from_email) IS NOT NULL AND c.auto_submitted IS NULL"
        "   ON CONFLICT (dedupe_key) DO NOTHING)"
        " SELECT c.status, up.id, CASE WHEN c.assignee <> $2 THEN c.assignee END"
        " FROM c LEFT JOIN up ON true",
        3, p, "resolve", reply);
}

static int txn_reopen(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    const char *p[] = {a->id, a->agent, a->reason};
    /* Routed again by the router (new SLA), at the ticket's original place in line. */
    return ticket_change(
        pg, a,
        "WITH c AS (SELECT id, status FROM tickets WHERE ref = $1 FOR UPDATE),"
        " up AS (UPDATE tickets t SET status = 'classified', resolved_at = NULL, assignee = NULL,"
        "   reopen_count = t.reopen_count + 1, updated_at = now() FROM c WHERE t.id = c.id"
        "   AND c.status IN ('resolved', 'closed') RETURNING t.id, t.reopen_count),"
        " w AS (INSERT INTO work (ticket_id, stage, dedupe_key)"
        "   SELECT id, 'route', 'ticket:' || id || ':route:reopen:' || reopen_count FROM up"
        "   ON CONFLICT (dedupe_key) DO NOTHING),"
        " ev AS (INSERT INTO ticket_events (ticket_id, kind, actor, data)"
        "   SELECT id, 'reopened', $2, jsonb_strip_nulls(jsonb_build_object('reason', $3::text,"
        "   'count', reopen_count)) FROM up)"
        " SELECT c.status, up.id FROM c LEFT JOIN up ON true",
        3, p, "reopen", reply);
}

static int desk_txn(intake_job_t *job, intake_writer_t *w, wasl_pg_t *pg, intake_reply_t *reply)
{
    (void)w;
    const desk_arg_t *a = job->arg;
    switch (a->op) {
    case OP_AGENT_LIST:
    case OP_AGENT_GET:
        return txn_agents_read(a, pg, reply);
    case OP_AGENT_PUT:
        return txn_agent_put(a, pg, reply);
    case OP_AGENT_DELETE:
        return txn_agent_delete(a, pg, reply);
    case OP_PRESENCE:
        return txn_presence(a, pg, reply);
    case OP_OFFERS:
        return txn_offers(a, pg, reply);
    case OP_ACCEPT:
        return txn_accept(a, pg, reply);
    case OP_REJECT:
        return txn_reject(a, pg, reply);
    case OP_QUEUE:
        return txn_queue(a, pg, reply);
    case OP_NOTE:
        return txn_note(a, pg, reply);
    case OP_TRANSFER:
        return txn_transfer(a, pg, reply);
    case OP_RESOLVE:
        return txn_resolve(a, pg, reply);
    case OP_REOPEN:
        return txn_reopen(a, pg, reply);
    }
    return -1;
}

/* ---- request validation (HTTP thread) ------------------------------------------------------- */

static void submit(intake_request_t *req, intake_reply_t *reply, desk_arg_t **arg_p,
                   const char *endpoint)
{
    intake_job_t *job = intake_job_new(INTAKE_JOB_TXN, endpoint, req->deadline_ms);
    if (!job) {
        desk_arg_free(*arg_p);
        *arg_p = NULL;
        intake_error(reply, 503, "unavailable", NULL, "out of memory");
        return;
    }
    job->arg = *arg_p; /* ownership: the job frees it */
    *arg_p = NULL;
    job->arg_free = desk_arg_free;
    job->txn = desk_txn;
    req->job = job;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Reads the body's "agent" (required) into a->agent. */
static int read_acting_agent(json_t *doc, desk_arg_t *a, intake_reply_t *reply)
{
    const char *agent;
    if (intake_json_str(doc, "agent", "agent", true, AGENT_ID_MAX, &agent, reply) < 0) {
        return -1;
    }
    if (!name_ok(agent, AGENT_ID_MAX)) {
        intake_error(reply, 400, "invalid_agent", "agent",
                     "an agent id is a-z, 0-9, '.', '_', "
                     "'-'");
        return -1;
    }
    snprintf(a->agent, sizeof a->agent, "%s", agent);
    return 0;
}

/* Validates an agent document for PUT /v1/agents/{id}; returns 0 or -1 with reply set. */
static int check_agent_doc(json_t *doc, intake_reply_t *reply)
{
    const char *name;
    if (intake_json_str(doc, "name", "name", true, AGENT_NAME_MAX, &name, reply) < 0) {
        return -1;
    }
    json_t *skills = json_object_get(doc, "skills");
    if (!json_is_object(skills) || json_object_size(skills) == 0 ||
        json_object_size(skills) > SKILLS_MAX) {
        intake_error(reply, 400, "invalid_skills", "skills",
                     "skills is an object of queue or skill names to levels 1..%d",
                     SKILL_LEVEL_MAX);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(skills, k, v)
    {
        if (!name_ok(k, QUEUE_NAME_MAX) || !json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > SKILL_LEVEL_MAX) {
            intake_error(reply, 400, "invalid_skills", "skills",
                         "skill \"%s\" needs a name and a level 1..%d", k, SKILL_LEVEL_MAX);
            return -1;
        }
    }
    json_t *langs = json_object_get(doc, "languages");
    if (langs) {
        size_t i;
        json_t *l;
        bool ok = json_is_array(langs) && json_array_size(langs) > 0 && json_array_size(langs) <= 2;
        json_array_foreach(langs, i, l)
        {
            ok = ok && json_is_string(l) &&
                 (strcmp(json_string_value(l), "ar") == 0 ||
                  strcmp(json_string_value(l), "en") == 0);
        }
        if (!ok) {
            intake_error(reply, 400, "invalid_languages", "languages",
                         "languages is a list of \"ar\" and/or \"en\"");
            return -1;
        }
    }
    json_t *cap = json_object_get(doc, "capacity");
    if (cap) {
        static const char *const channels[] = {"web", "api", "email", "sms", "phone", NULL};
        bool ok = json_is_object(cap);
        json_object_foreach(cap, k, v)
        {
            bool known = false;
            for (size_t i = 0; channels[i]; i++) {
                known |= strcmp(k, channels[i]) == 0;
            }
            ok = ok && known && json_is_integer(v) && json_integer_value(v) >= 0 &&
                 json_integer_value(v) <= CAPACITY_MAX;
        }
        if (!ok) {
            intake_error(reply, 400, "invalid_capacity", "capacity",
                         "capacity maps web, api, email, sms, phone to 0..%d", CAPACITY_MAX);
            return -1;
        }
    }
    long long wrapup;
    bool present;
    return intake_json_int(doc, "wrapup_s", "wrapup_s", false, 0, WRAPUP_MAX_S, &wrapup, &present,
                           reply);
}

void intake_handle_agents(intake_request_t *req, intake_reply_t *reply)
{
    desk_arg_t *a = calloc(1, sizeof *a);
    json_t *doc = NULL;
    if (!a) {
        intake_error(reply, 503, "unavailable", NULL, "out of memory");
        return;
    }
    if (!req->path_arg) {
        a->op = OP_AGENT_LIST;
        submit(req, reply, &a, "agents");
        return;
    }
    const char *action = split_arg(req->path_arg, a->id, sizeof a->id);
    if (!name_ok(a->id, AGENT_ID_MAX)) {
        intake_error(reply, 400, "invalid_agent", "id", "an agent id is a-z, 0-9, '.', '_', '-'");
        goto refuse;
    }
    bool get = strcmp(req->method, "GET") == 0, put = strcmp(req->method, "PUT") == 0;
    if (!action && (get || strcmp(req->method, "DELETE") == 0)) {
        a->op = get ? OP_AGENT_GET : OP_AGENT_DELETE;
    } else if (!action && put) {
        a->op = OP_AGENT_PUT;
        if (!(doc = intake_body_json(req, reply)) || check_agent_doc(doc, reply) < 0) {
            goto refuse;
        }
        a->json = json_dumps(doc, JSON_COMPACT);
    } else if (action && strcmp(action, "presence") == 0 && put) {
        a->op = OP_PRESENCE;
        const char *state;
        long long ttl = PRESENCE_TTL_DEFAULT_S;
        bool present;
        if (!(doc = intake_body_json(req, reply)) ||
            intake_json_str(doc, "state", "state", true, 16, &state, reply) < 0 ||
            intake_json_int(doc, "ttl_s", "ttl_s", false, PRESENCE_TTL_MIN_S, PRESENCE_TTL_MAX_S,
                            &ttl, &present, reply) < 0) {
            goto refuse;
        }
        if (strcmp(state, "available") && strcmp(state, "busy") && strcmp(state, "away") &&
            strcmp(state, "offline")) {
            intake_error(reply, 400, "invalid_state", "state",
                         "state is available, busy, away or offline");
            goto refuse;
        }
        a->text = strdup(state);
        a->n = (long)ttl;
    } else if (action && strcmp(action, "offers") == 0 && get) {
        a->op = OP_OFFERS;
    } else {
        intake_error(reply, 404, "not_found", NULL, "no such agent resource");
        goto refuse;
    }
    json_decref(doc);
    submit(req, reply, &a, "agents");
    return;
refuse:
    json_decref(doc);
    desk_arg_free(a);
}

void intake_handle_offers(intake_request_t *req, intake_reply_t *reply)
{
    desk_arg_t *a = calloc(1, sizeof *a);
    json_t *doc = NULL;
    if (!a) {
        intake_error(reply, 503, "unavailable", NULL, "out of memory");
        return;
    }
    const char *action = split_arg(req->path_arg, a->id, sizeof a->id);
    size_t len = strlen(a->id);
    if (len == 0 || len > 18 || strspn(a->id, "0123456789") != len) {
        intake_error(reply, 400, "invalid_offer", "id", "an offer id is a number");
        goto refuse;
    }
    if (action && strcmp(action, "accept") == 0) {
        a->op = OP_ACCEPT;
    } else if (action && strcmp(action, "reject") == 0) {
        a->op = OP_REJECT;
    } else {
        intake_error(reply, 404, "not_found", NULL, "POST /v1/offers/{id}/accept or /reject");
        goto refuse;
    }
    const char *reason = NULL;
    if (!(doc = intake_body_json(req, reply)) || read_acting_agent(doc, a, reply) < 0 ||
        intake_json_str(doc, "reason", "reason", false, REASON_MAX_BYTES, &reason, reply) < 0) {
        goto refuse;
    }
    a->reason = dup_or_null(reason);
    json_decref(doc);
    submit(req, reply, &a, "offers");
    return;
refuse:
    json_decref(doc);
    desk_arg_free(a);
}

void intake_handle_queues(intake_request_t *req, intake_reply_t *reply)
{
    desk_arg_t *a = calloc(1, sizeof *a);
    if (!a) {
        intake_error(reply, 503, "unavailable", NULL, "out of memory");
        return;
    }
    const char *action = split_arg(req->path_arg, a->id, sizeof a->id);
    if (!name_ok(a->id, QUEUE_NAME_MAX) || !action || strcmp(action, "tickets") != 0) {
        intake_error(reply, 404, "not_found", "queue", "GET /v1/queues/{queue}/tickets");
        desk_arg_free(a);
        return;
    }
    a->op = OP_QUEUE;
    submit(req, reply, &a, "queues");
}

void intake_handle_ticket_action(intake_request_t *req, intake_reply_t *reply)
{
    desk_arg_t *a = calloc(1, sizeof *a);
    json_t *doc = NULL;
    if (!a) {
        intake_error(reply, 503, "unavailable", NULL, "out of memory");
        return;
    }
    char raw[80];
    const char *action = split_arg(req->path_arg, raw, sizeof raw);
    char ref[WASL_REF_LEN + 1];
    wasl_ref_status_t st = wasl_ref_parse(raw, ref);
    if (st != WASL_REF_OK) {
        intake_error(reply, 400, "invalid_reference", "ref", "%s", wasl_ref_strerror(st));
        goto refuse;
    }
    snprintf(a->id, sizeof a->id, "%s", ref);
    if (!action || (strcmp(action, "notes") && strcmp(action, "transfer") &&
                    strcmp(action, "resolve") && strcmp(action, "reopen"))) {
        intake_error(reply, 404, "not_found", NULL,
                     "POST /v1/tickets/{ref}/notes, /transfer, /resolve or /reopen");
        goto refuse;
    }
    if (!(doc = intake_body_json(req, reply)) || read_acting_agent(doc, a, reply) < 0) {
        goto refuse;
    }
    const char *text = NULL, *reason = NULL;
    if (intake_json_str(doc, "reason", "reason", false, REASON_MAX_BYTES, &reason, reply) < 0) {
        goto refuse;
    }
    if (strcmp(action, "notes") == 0) {
        a->op = OP_NOTE;
        if (intake_json_str(doc, "text", "text", true, NOTE_MAX_BYTES, &text, reply) < 0) {
            goto refuse;
        }
    } else if (strcmp(action, "transfer") == 0) {
        a->op = OP_TRANSFER;
        if (intake_json_str(doc, "queue", "queue", true, QUEUE_NAME_MAX, &text, reply) < 0) {
            goto refuse;
        }
        if (!name_ok(text, QUEUE_NAME_MAX)) {
            intake_error(reply, 400, "unknown_queue", "queue", "not a queue name");
            goto refuse;
        }
    } else if (strcmp(action, "resolve") == 0) {
        a->op = OP_RESOLVE;
        if (intake_json_str(doc, "resolution", "resolution", true, RESOLUTION_MAX_BYTES, &text,
                            reply) < 0) {
            goto refuse;
        }
    } else {
        a->op = OP_REOPEN;
    }
    if ((text && !*text)) {
        intake_error(reply, 400, "empty", a->op == OP_NOTE ? "text" : "resolution",
                     "must not be empty");
        goto refuse;
    }
    a->text = dup_or_null(text);
    a->reason = dup_or_null(reason);
    json_decref(doc);
    submit(req, reply, &a, "ticket_actions");
    return;
refuse:
    json_decref(doc);
    desk_arg_free(a);
}
