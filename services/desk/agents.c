/* agents — the agent API moved from intake (see agents.h). */
#include "agents.h"
#include "idempotency.h"
#include "wallboard.h"
#include "wasl_authz.h"
#include "wasl_domain.h"
#include "wasl_log.h"
#include "wasl_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AGENT_NAME_MAX         200
#define SKILL_LEVEL_MAX        10
#define CAPACITY_MAX           50
#define SKILLS_MAX             32
#define PRESENCE_TTL_DEFAULT_S 60
#define PRESENCE_TTL_MIN_S     10
#define PRESENCE_TTL_MAX_S     3600
#define WRAPUP_MAX_S           3600
#define QUEUE_VIEW_LIMIT       "500"
#define TS(col)                "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* 0 when the principal may do `action` with `facts`; else a 403 in reply (logged) and -1. */
static int authorize(desk_req_t *req, wasl_authz_action_t action, const wasl_authz_facts_t *facts,
                     const char *target, desk_reply_t *reply)
{
    wasl_authz_principal_t who = desk_principal_authz(req);
    wasl_authz_decision_t d = wasl_authz_decide(&who, action, facts);
    if (d.allowed) {
        return 0;
    }
    desk_refused(req, &d, target, reply);
    return -1;
}

/* The path's agent id (into `id`) and the rest ("" or "/offers"…). 0, or -1 with a 400. */
static int agent_path(const desk_req_t *req, char id[WASL_AGENT_ID_MAX + 1], const char **rest,
                      desk_reply_t *reply)
{
    size_t len = strcspn(req->path_arg, "/");
    *rest = req->path_arg + len;
    if (len == 0 || len > WASL_AGENT_ID_MAX) {
        desk_error(reply, 400, "invalid_agent", "id", "an agent id is a-z, 0-9, '.', '_', '-'");
        return -1;
    }
    memcpy(id, req->path_arg, len);
    id[len] = '\0';
    if (!wasl_agent_id_ok(id)) {
        desk_error(reply, 400, "invalid_agent", "id", "an agent id is a-z, 0-9, '.', '_', '-'");
        return -1;
    }
    return 0;
}

/* ---- fields ------------------------------------------------------------------------------ */

/* A number as a person types it: a JSON integer, or a string of ASCII or Arabic-Indic (any Nd)
 * digits, which replaces it in `obj` so that the statement reads an integer. 0 or -1. */
static int typed_number(json_t *obj, const char *key, long long *out)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v) || wasl_parse_number(json_string_value(v), out) < 0) {
        return -1;
    }
    /* Replacing the value of an existing key keeps the object's iteration valid. */
    return json_object_set_new(obj, key, json_integer(*out));
}

/* An optional integer field in min..max, typed digits allowed (set back as an integer). 0 with
 * *out (unchanged when absent), or -1 with a 400 naming it. */
static int int_field(json_t *doc, const char *key, long long min, long long max, long long *out,
                     desk_reply_t *reply)
{
    json_t *v = json_object_get(doc, key);
    if (!v || json_is_null(v)) {
        return 0;
    }
    long long n;
    if (typed_number(doc, key, &n) < 0 || n < min || n > max) {
        desk_error(reply, 400, "invalid_field", key, "%s is an integer in %lld..%lld", key, min,
                   max);
        return -1;
    }
    *out = n;
    return 0;
}

static int check_skills(json_t *doc, desk_reply_t *reply)
{
    json_t *skills = json_object_get(doc, "skills");
    if (!json_is_object(skills) || json_object_size(skills) == 0 ||
        json_object_size(skills) > SKILLS_MAX) {
        desk_error(reply, 400, "invalid_skills", "skills",
                   "skills is an object of queue or skill names to levels 1..%d", SKILL_LEVEL_MAX);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(skills, k, v)
    {
        long long level;
        if (!wasl_name_ok(k) || typed_number(skills, k, &level) < 0 || level < 1 ||
            level > SKILL_LEVEL_MAX) {
            desk_error(reply, 400, "invalid_skills", "skills",
                       "skill \"%s\" needs a name and a level 1..%d", k, SKILL_LEVEL_MAX);
            return -1;
        }
    }
    return 0;
}

static int check_languages_capacity(json_t *doc, desk_reply_t *reply)
{
    json_t *langs = json_object_get(doc, "languages"), *l;
    size_t i;
    bool ok = !langs || (json_is_array(langs) && json_array_size(langs) > 0 &&
                         json_array_size(langs) <= 2);
    json_array_foreach(langs, i, l)
    {
        ok = ok && json_is_string(l) &&
             (!strcmp(json_string_value(l), "ar") || !strcmp(json_string_value(l), "en"));
    }
    if (!ok) {
        desk_error(reply, 400, "invalid_languages", "languages",
                   "languages is a list of \"ar\" and/or \"en\"");
        return -1;
    }
    json_t *cap = json_object_get(doc, "capacity"), *v;
    static const char *const channels[] = {"web", "api", "email", "sms", "phone", NULL};
    const char *k;
    ok = !cap || json_is_object(cap);
    json_object_foreach(cap, k, v)
    {
        bool known = false;
        for (size_t c = 0; channels[c]; c++) {
            known |= strcmp(k, channels[c]) == 0;
        }
        long long n = -1;
        ok = ok && known && typed_number(cap, k, &n) == 0 && n >= 0 && n <= CAPACITY_MAX;
    }
    if (!ok) {
        desk_error(reply, 400, "invalid_capacity", "capacity",
                   "capacity maps web, api, email, sms, phone to 0..%d", CAPACITY_MAX);
        return -1;
    }
    return 0;
}

/* Validates an agent document for PUT /v1/agents/{id} and turns typed numbers into integers
 * ("٣٠" is 30, not 0). 0, or -1 with reply set. */
static int check_agent_doc(json_t *doc, desk_reply_t *reply)
{
    const char *name;
    long long wrapup = -1;
    if (desk_str_field(doc, "name", DESK_FIELD_REQUIRED | DESK_FIELD_NONBLANK, AGENT_NAME_MAX,
                       &name, reply) < 0 ||
        check_skills(doc, reply) < 0 || check_languages_capacity(doc, reply) < 0 ||
        int_field(doc, "wrapup_s", 0, WRAPUP_MAX_S, &wrapup, reply) < 0) {
        return -1;
    }
    return 0;
}

/* ---- reading agents ---------------------------------------------------------------------- */

static json_t *str_or_null(const PGresult *res, int r, int c)
{
    return PQgetisnull(res, r, c) ? json_null() : json_string(PQgetvalue(res, r, c));
}

static json_t *jsonb(const PGresult *res, int r, int c)
{
    json_t *v = json_loads(PQgetvalue(res, r, c), JSON_DECODE_ANY, NULL);
    return v ? v : json_null();
}

/* The agent columns, read by agent_json through agent_col_t (checked with wasl_pg_arity). */
// clang-format off
#define AGENT_COLS \
    "SELECT id, name, skills::text, to_jsonb(languages)::text, capacity::text, wrapup_s," \
    "       CASE WHEN presence_until IS NULL OR presence_until <= wasl_now() THEN 'offline'" \
    "            ELSE presence END," \
    "       " TS("presence_until") "," \
    "       enabled," \
    "       CASE WHEN wrapup_until > wasl_now() THEN " TS("wrapup_until") " END" \
    "  FROM agents"
// clang-format on
typedef enum {
    AGENT_ID,
    AGENT_NAME,
    AGENT_SKILLS,
    AGENT_LANGUAGES,
    AGENT_CAPACITY,
    AGENT_WRAPUP_S,
    AGENT_PRESENCE,
    AGENT_PRESENCE_UNTIL,
    AGENT_ENABLED,
    AGENT_WRAPUP_UNTIL,
    AGENT_NCOLS
} agent_col_t;

static json_t *agent_json(const PGresult *res, int r)
{
    return json_pack(
        "{s:s, s:s, s:o, s:o, s:o, s:i, s:s, s:o, s:b, s:o}", "id", PQgetvalue(res, r, AGENT_ID),
        "name", PQgetvalue(res, r, AGENT_NAME), "skills", jsonb(res, r, AGENT_SKILLS), "languages",
        jsonb(res, r, AGENT_LANGUAGES), "capacity", jsonb(res, r, AGENT_CAPACITY), "wrapup_s",
        atoi(PQgetvalue(res, r, AGENT_WRAPUP_S)), "presence", PQgetvalue(res, r, AGENT_PRESENCE),
        "presence_until", str_or_null(res, r, AGENT_PRESENCE_UNTIL), "enabled",
        strcmp(PQgetvalue(res, r, AGENT_ENABLED), "t") == 0, "wrapup_until",
        str_or_null(res, r, AGENT_WRAPUP_UNTIL));
}

void desk_handle_agents_list(desk_req_t *req, desk_reply_t *reply)
{
    PGresult *res = wasl_pg_query(req->db->pg, AGENT_COLS " ORDER BY id", 0, NULL);
    if (!wasl_pg_arity(res, AGENT_NCOLS, "desk agents")) {
        PQclear(res);
        desk_db_failed(reply, "agents");
        return;
    }
    /* The roster as the principal may see it: its own agents, or all for a supervisor. */
    wasl_authz_principal_t who = desk_principal_authz(req);
    json_t *list = json_array();
    for (int r = 0; r < PQntuples(res); r++) {
        wasl_authz_facts_t facts = {.actor = PQgetvalue(res, r, AGENT_ID), .actor_field = "id"};
        if (wasl_authz_decide(&who, WASL_AUTHZ_AGENT_VIEW, &facts).allowed) {
            json_array_append_new(list, agent_json(res, r));
        }
    }
    PQclear(res);
    reply->status = 200;
    reply->body = json_pack("{s:o}", "agents", list);
}

/* The agent's row into reply (200), after the decision (403 before 404). 0 or -1. */
static int agent_row(desk_req_t *req, const char *id, desk_reply_t *reply)
{
    const char *p[] = {id};
    PGresult *res = wasl_pg_query(req->db->pg, AGENT_COLS " WHERE id = $1", 1, p);
    if (!wasl_pg_arity(res, AGENT_NCOLS, "desk agent")) {
        PQclear(res);
        desk_db_failed(reply, "agent");
        return -1;
    }
    wasl_authz_facts_t facts = {.actor = id, .actor_field = "id", .missing = !PQntuples(res)};
    int rc = authorize(req, WASL_AUTHZ_AGENT_VIEW, &facts, id, reply);
    if (rc == 0 && facts.missing) {
        desk_error(reply, 404, "not_found", "id", "no agent %s", id);
        rc = -1;
    } else if (rc == 0) {
        reply->status = 200;
        reply->body = agent_json(res, 0);
    }
    PQclear(res);
    return rc;
}

/* Whether agent `id` exists and is enabled (locked FOR UPDATE when `lock`): 1, 0, or -1. */
static int agent_exists(desk_req_t *req, const char *id, bool lock)
{
    const char *p[] = {id};
    PGresult *res = wasl_pg_query(
        req->db->pg,
        lock ? "SELECT 1 FROM agents WHERE id = $1 AND enabled FOR UPDATE"
             : "SELECT 1 FROM agents WHERE id = $1 AND enabled",
        1, p);
    int n = wasl_pg_arity(res, 1, "desk agent exists") ? PQntuples(res) : -1;
    PQclear(res);
    return n < 0 ? -1 : n > 0;
}

/* ---- an agent's live offers ---- */

enum { OFR_ID, OFR_REF, OFR_QUEUE, OFR_PRIORITY, OFR_CHANNEL, OFR_LANGUAGE, OFR_SUBJECT,
       OFR_EXPIRES_AT, OFR_FR_DUE, OFR_NCOLS };
// clang-format off
static const char OFFERS_SQL[] =
    "SELECT o.id, t.ref, t.queue, t.priority, t.channel, t.language, t.subject,"
    "       " TS("o.expires_at") ", " TS("t.first_response_due")
    "  FROM offers o"
    "  JOIN tickets t ON t.id = o.ticket_id"
    " WHERE o.agent_id = $1"
    "   AND o.state = 'offered'"
    "   AND o.expires_at > wasl_now()"
    " ORDER BY o.id";
// clang-format on

static json_t *offer_json(const PGresult *res, int r)
{
    return json_pack("{s:I, s:s, s:o, s:o, s:s, s:o, s:o, s:s, s:o}", "offer",
                     (json_int_t)strtoll(PQgetvalue(res, r, OFR_ID), NULL, 10), "ticket",
                     PQgetvalue(res, r, OFR_REF), "queue", str_or_null(res, r, OFR_QUEUE),
                     "priority", str_or_null(res, r, OFR_PRIORITY), "channel",
                     PQgetvalue(res, r, OFR_CHANNEL), "language",
                     str_or_null(res, r, OFR_LANGUAGE), "subject",
                     str_or_null(res, r, OFR_SUBJECT), "expires_at",
                     PQgetvalue(res, r, OFR_EXPIRES_AT), "first_response_due",
                     str_or_null(res, r, OFR_FR_DUE));
}

static void agent_offers(desk_req_t *req, const char *id, desk_reply_t *reply)
{
    int exists = agent_exists(req, id, false);
    wasl_authz_facts_t facts = {.actor = id, .actor_field = "id", .missing = exists == 0};
    if (exists < 0) {
        desk_db_failed(reply, "agent offers");
        return;
    }
    if (authorize(req, WASL_AUTHZ_AGENT_VIEW, &facts, id, reply) < 0) {
        return;
    }
    if (!exists) {
        desk_error(reply, 404, "unknown_agent", "agent", "no enabled agent %s", id);
        return;
    }
    const char *p[] = {id};
    PGresult *res = wasl_pg_query(req->db->pg, OFFERS_SQL, 1, p);
    if (!wasl_pg_arity(res, OFR_NCOLS, "desk offers of an agent")) {
        PQclear(res);
        desk_db_failed(reply, "agent offers");
        return;
    }
    json_t *list = json_array();
    for (int r = 0; r < PQntuples(res); r++) {
        json_array_append_new(list, offer_json(res, r));
    }
    PQclear(res);
    reply->status = 200;
    reply->body = json_pack("{s:s, s:o}", "agent", id, "offers", list);
}

void desk_handle_agents_get(desk_req_t *req, desk_reply_t *reply)
{
    char id[WASL_AGENT_ID_MAX + 1];
    const char *rest;
    if (agent_path(req, id, &rest, reply) < 0) {
        return;
    }
    if (!*rest) {
        agent_row(req, id, reply);
    } else if (strcmp(rest, "/offers") == 0) {
        agent_offers(req, id, reply);
    } else if (strcmp(rest, "/tickets") == 0) {
        desk_handle_agent_get(req, reply); /* the work view (wallboard.c) */
    } else {
        desk_error(reply, 404, "not_found", NULL,
                   "GET /v1/agents/{id}, /v1/agents/{id}/offers or /v1/agents/{id}/tickets");
    }
}

/* ---- changing agents --------------------------------------------------------------------- */

typedef struct {
    const char *id;
    const char *json;  /* PUT: the canonical document */
    const char *state; /* presence */
    long long ttl_s;
} agent_arg_t;

/* PUT /v1/agents/{id}: wasl_agents_save, whose rule is that a field the document leaves out
 * keeps its value (or takes the default for a new agent). */
static int txn_agent_put(desk_req_t *req, void *arg, desk_reply_t *reply)
{
    const agent_arg_t *a = arg;
    wasl_authz_facts_t facts = {.actor = a->id, .actor_field = "id"};
    if (authorize(req, WASL_AUTHZ_AGENT_MANAGE, &facts, a->id, reply) < 0) {
        return -1;
    }
    json_t *doc = json_loads(a->json, 0, NULL);
    json_t *langj = json_object_get(doc, "languages"), *capj = json_object_get(doc, "capacity");
    json_t *w = json_object_get(doc, "wrapup_s");
    char *skills = json_dumps(json_object_get(doc, "skills"), JSON_COMPACT);
    char *langs = langj ? json_dumps(langj, JSON_COMPACT) : NULL;
    char *cap = capj ? json_dumps(capj, JSON_COMPACT) : NULL;
    char wrapup[24] = "";
    snprintf(wrapup, sizeof wrapup, "%lld", (long long)json_integer_value(w));
    const char *p[] = {a->id, json_string_value(json_object_get(doc, "name")), skills, langs,
                       cap,   w ? wrapup : NULL, req->principal.client};
    PGresult *res = wasl_pg_query(req->db->pg,
                                  "SELECT wasl_agents_save($1, $2, $3::jsonb, $4::jsonb,"
                                  "                        $5::jsonb, $6::int, $7)",
                                  7, p);
    free(skills);
    free(langs);
    free(cap);
    json_decref(doc);
    if (!wasl_pg_arity(res, 1, "wasl_agents_save") || PQntuples(res) != 1) {
        PQclear(res);
        desk_db_failed(reply, "agent save");
        return -1;
    }
    bool created = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (agent_row(req, a->id, reply) < 0) {
        return -1;
    }
    reply->status = created ? 201 : 200;
    return 0;
}

static int txn_agent_delete(desk_req_t *req, void *arg, desk_reply_t *reply)
{
    const agent_arg_t *a = arg;
    wasl_authz_facts_t facts = {.actor = a->id, .actor_field = "id"};
    if (authorize(req, WASL_AUTHZ_AGENT_MANAGE, &facts, a->id, reply) < 0) {
        return -1;
    }
    const char *p[] = {a->id, req->principal.client};
    PGresult *res = wasl_pg_query(req->db->pg, "SELECT wasl_agents_remove($1, $2)", 2, p);
    if (!wasl_pg_arity(res, 1, "wasl_agents_remove")) {
        PQclear(res);
        desk_db_failed(reply, "agent remove");
        return -1;
    }
    bool removed = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!removed) {
        desk_error(reply, 404, "not_found", "id", "no enabled agent %s", a->id);
        return -1;
    }
    reply->status = 200;
    reply->body = json_pack("{s:s, s:b}", "id", a->id, "enabled", false);
    return 0;
}

static int txn_presence(desk_req_t *req, void *arg, desk_reply_t *reply)
{
    const agent_arg_t *a = arg;
    int exists = agent_exists(req, a->id, true);
    if (exists < 0) {
        desk_db_failed(reply, "presence");
        return -1;
    }
    wasl_authz_facts_t facts = {
        .actor = a->id, .actor_field = "id", .missing = !exists, .presence = a->state};
    if (authorize(req, WASL_AUTHZ_PRESENCE, &facts, a->id, reply) < 0) {
        return -1;
    }
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%lld", a->ttl_s);
    const char *p[] = {a->id, a->state, ttl, req->principal.client};
    enum { PRES_PRESENCE, PRES_UNTIL, PRES_WAS, PRES_NCOLS };
    PGresult *res = wasl_pg_query(req->db->pg,
                                  "SELECT presence, " TS("presence_until") ", was"
                                  "  FROM wasl_agents_set_presence($1, $2, $3::int, $4)",
                                  4, p);
    if (!wasl_pg_arity(res, PRES_NCOLS, "wasl_agents_set_presence")) {
        PQclear(res);
        desk_db_failed(reply, "presence");
        return -1;
    }
    int rc = -1;
    if (PQntuples(res) == 0) {
        desk_error(reply, 404, "not_found", "id", "no enabled agent %s", a->id);
    } else {
        reply->status = 200;
        reply->body = json_pack("{s:s, s:s, s:o, s:s}", "agent", a->id, "presence",
                                PQgetvalue(res, 0, PRES_PRESENCE), "presence_until",
                                str_or_null(res, 0, PRES_UNTIL), "was",
                                PQgetvalue(res, 0, PRES_WAS));
        rc = 0;
    }
    PQclear(res);
    return rc;
}

static void put_presence(desk_req_t *req, agent_arg_t *a, json_t *doc, desk_reply_t *reply)
{
    a->ttl_s = PRESENCE_TTL_DEFAULT_S;
    if (desk_str_field(doc, "state", DESK_FIELD_REQUIRED | DESK_FIELD_NONBLANK, 16, &a->state,
                       reply) < 0 ||
        int_field(doc, "ttl_s", PRESENCE_TTL_MIN_S, PRESENCE_TTL_MAX_S, &a->ttl_s, reply) < 0) {
        return;
    }
    if (strcmp(a->state, "available") && strcmp(a->state, "busy") && strcmp(a->state, "away") &&
        strcmp(a->state, "offline")) {
        desk_error(reply, 400, "invalid_state", "state",
                   "state is available, busy, away or offline");
        return;
    }
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%lld", a->ttl_s);
    const char *fields[] = {"presence", a->id, a->state, ttl};
    desk_idempotency_run(req, fields, 4, txn_presence, a, reply);
}

void desk_handle_agents_put(desk_req_t *req, desk_reply_t *reply)
{
    char id[WASL_AGENT_ID_MAX + 1];
    const char *rest;
    if (agent_path(req, id, &rest, reply) < 0) {
        return;
    }
    if (*rest && strcmp(rest, "/presence") != 0) {
        desk_error(reply, 404, "not_found", NULL, "PUT /v1/agents/{id} or /v1/agents/{id}/presence");
        return;
    }
    json_t *doc = desk_body_json(req, reply);
    agent_arg_t a = {.id = id};
    if (doc && *rest) {
        put_presence(req, &a, doc, reply);
    } else if (doc && check_agent_doc(doc, reply) == 0) {
        char *canonical = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS); /* fingerprinted */
        a.json = canonical;
        const char *fields[] = {"put", id, canonical};
        if (!canonical) {
            desk_db_failed(reply, "agent document");
        } else {
            desk_idempotency_run(req, fields, 3, txn_agent_put, &a, reply);
        }
        free(canonical);
    }
    json_decref(doc);
}

void desk_handle_agents_delete(desk_req_t *req, desk_reply_t *reply)
{
    char id[WASL_AGENT_ID_MAX + 1];
    const char *rest;
    if (agent_path(req, id, &rest, reply) < 0) {
        return;
    }
    if (*rest) {
        desk_error(reply, 404, "not_found", NULL, "DELETE /v1/agents/{id}");
        return;
    }
    agent_arg_t a = {.id = id};
    const char *fields[] = {"delete", id};
    desk_idempotency_run(req, fields, 2, txn_agent_delete, &a, reply);
}

/* ---- a queue's tickets ------------------------------------------------------------------- */

enum { Q_REF, Q_STATUS, Q_PRIORITY, Q_CHANNEL, Q_ASSIGNEE, Q_FR_DUE, Q_RES_DUE, Q_WAITING_SINCE,
       Q_WAITING_S, Q_ESCALATED, Q_OFFERED_TO, Q_NCOLS };
/* Waiting tickets in the order the router offers them (priority, SLA deadline, age), then the
 * assigned ones. */
// clang-format off
static const char QUEUE_SQL[] =
    "SELECT t.ref, t.status, t.priority, t.channel, t.assignee,"
    "       " TS("t.first_response_due") ", " TS("t.resolution_due") ","
    "       " TS("t.waiting_since") ","
    "       extract(epoch FROM wasl_now() - t.waiting_since)::bigint,"
    "       t.escalated_at IS NOT NULL,"
    "       (SELECT o.agent_id FROM offers o WHERE o.ticket_id = t.id AND o.state = 'offered')"
    "  FROM tickets t"
    " WHERE t.queue = $1"
    "   AND t.status IN ('routed', 'assigned')"
    " ORDER BY t.status = 'assigned', t.prio_rank, t.first_response_due, t.waiting_since, t.id"
    " LIMIT " QUEUE_VIEW_LIMIT;
// clang-format on

static json_t *queue_row(const PGresult *res, int r)
{
    return json_pack(
        "{s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:o, s:I, s:b, s:o}", "ticket",
        PQgetvalue(res, r, Q_REF), "status", PQgetvalue(res, r, Q_STATUS), "priority",
        str_or_null(res, r, Q_PRIORITY), "channel", PQgetvalue(res, r, Q_CHANNEL), "assignee",
        str_or_null(res, r, Q_ASSIGNEE), "first_response_due", str_or_null(res, r, Q_FR_DUE),
        "resolution_due", str_or_null(res, r, Q_RES_DUE), "waiting_since",
        str_or_null(res, r, Q_WAITING_SINCE), "waiting_s",
        (json_int_t)strtoll(PQgetvalue(res, r, Q_WAITING_S), NULL, 10), "escalated",
        strcmp(PQgetvalue(res, r, Q_ESCALATED), "t") == 0, "offered_to",
        str_or_null(res, r, Q_OFFERED_TO));
}

void desk_handle_queue(desk_req_t *req, desk_reply_t *reply)
{
    char queue[WASL_NAME_MAX + 1];
    size_t len = strcspn(req->path_arg, "/");
    if (len == 0 || len > WASL_NAME_MAX || strcmp(req->path_arg + len, "/tickets") != 0) {
        desk_error(reply, 404, "not_found", "queue", "GET /v1/queues/{queue}/tickets");
        return;
    }
    memcpy(queue, req->path_arg, len);
    queue[len] = '\0';
    if (!wasl_name_ok(queue)) {
        desk_error(reply, 404, "not_found", "queue", "GET /v1/queues/{queue}/tickets");
        return;
    }
    const char *m[] = {queue, req->principal.act_as};
    PGresult *res = wasl_pg_query(req->db->pg,
                                  "SELECT 1 FROM agents"
                                  " WHERE enabled AND skills ? $1"
                                  "   AND id = ANY(string_to_array($2, ','))"
                                  " LIMIT 1",
                                  2, m);
    if (!wasl_pg_arity(res, 1, "desk queue member")) {
        PQclear(res);
        desk_db_failed(reply, "queue");
        return;
    }
    wasl_authz_facts_t facts = {.in_queue = PQntuples(res) > 0};
    PQclear(res);
    if (authorize(req, WASL_AUTHZ_QUEUE_VIEW, &facts, queue, reply) < 0) {
        return;
    }
    const char *p[] = {queue};
    res = wasl_pg_query(req->db->pg, QUEUE_SQL, 1, p);
    if (!wasl_pg_arity(res, Q_NCOLS, "desk queue view")) {
        PQclear(res);
        desk_db_failed(reply, "queue");
        return;
    }
    json_t *list = json_array();
    for (int r = 0; r < PQntuples(res); r++) {
        json_array_append_new(list, queue_row(res, r));
    }
    PQclear(res);
    reply->status = 200;
    reply->body = json_pack("{s:s, s:o}", "queue", queue, "tickets", list);
}
