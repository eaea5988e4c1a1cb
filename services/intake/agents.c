/* agents — the agent desk on intake: agents and their presence, offers (accept/reject), queue
 * views and ticket actions (notes, transfer, resolve, reopen). Each state change is one
 * transaction with its history event, decided by wasl_authz on the facts it reads with the rows
 * locked, and idempotent by the client's Idempotency-Key; the router makes the offers
 * (services/router). */
#include "handlers.h"
#include "wasl_authz.h"
#include "wasl_domain.h"
#include "wasl_log.h"
#include "wasl_ref.h"
#include "wasl_text.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define AGENT_ID_MAX           WASL_AGENT_ID_MAX
#define QUEUE_NAME_MAX         WASL_NAME_MAX
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
/* Idempotency-Key: a client's own token for one action (a UUID fits), kept this long. */
#define DESK_KEY_MAX_BYTES   128
#define DESK_KEY_CHARS       "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
#define DESK_KEY_RETENTION_H "24"
/* Expired keys removed by each keyed action: more than arrive, so the table stays bounded. */
#define DESK_KEY_CLEANUP_ROWS "32"
#define DESK_KEY_HEADER       "Idempotency-Key"

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
    /* Who asks: a copy of the client's binding (the request is gone when the writer runs). */
    char client[sizeof((intake_client_t *)0)->id];
    wasl_authz_role_t role;
    char act_as[WASL_CLIENT_ACT_AS_MAX];
    /* Idempotency-Key ("" without) and the request's fingerprint under it. */
    char key[DESK_KEY_MAX_BYTES + 1];
    unsigned char fingerprint[crypto_hash_sha256_BYTES];
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

/* The agent columns, as one literal so that both queries below are fixed text; read by
 * agent_json through agent_col_t (checked with wasl_pg_arity). */
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

/* ---- authorization: the facts read here, the decision in wasl_authz ------------------------ */

/* Asks wasl_authz whether the request's client may do `action` with `facts`. 0 when allowed;
 * else a 403 naming the field that failed in reply (logged) and -1. */
static int authorize(const desk_arg_t *a, wasl_authz_action_t action,
                     const wasl_authz_facts_t *facts, intake_reply_t *reply)
{
    wasl_authz_principal_t who = {.role = a->role, .act_as = a->act_as};
    wasl_authz_decision_t d = wasl_authz_decide(&who, action, facts);
    if (d.allowed) {
        return 0;
    }
    wasl_info("intake: desk action refused", "{s:s, s:s, s:s, s:s}", "client", a->client, "code",
              d.code, "actor", facts->actor ? facts->actor : "", "target", a->id);
    intake_error(reply, 403, d.code, d.field, "%s", d.why);
    return -1;
}

/* Whether agent `id` exists and is enabled (locked FOR UPDATE when `lock`): 1, 0 or -1. */
static int agent_exists(wasl_pg_t *pg, const char *id, bool lock)
{
    const char *p[] = {id};
    PGresult *res = intake_sql(pg,
                               lock ? "SELECT 1 FROM agents WHERE id = $1 AND enabled FOR UPDATE"
                                    : "SELECT 1 FROM agents WHERE id = $1 AND enabled",
                               1, p);
    if (!res) {
        return -1;
    }
    int n = PQntuples(res);
    PQclear(res);
    return n > 0;
}

/* Ticket actions: reads the ticket's assignee and whether the actor serves its queue, with the
 * ticket locked until the change commits, and asks for `action`; then checks the actor is an
 * enabled agent. 0 when the change may go on (a missing ticket included: the statement answers
 * 404), else -1 with reply set. */
static int ticket_authorize(const desk_arg_t *a, wasl_pg_t *pg, wasl_authz_action_t action,
                            intake_reply_t *reply)
{
    const char *p[] = {a->id, a->agent};
    enum { TA_ASSIGNEE, TA_IN_QUEUE, TA_NCOLS };
    // clang-format off
    PGresult *res = intake_sql(pg,
        "SELECT t.assignee,"
        "       coalesce((SELECT g.skills ? t.queue FROM agents g WHERE g.id = $2 AND g.enabled),"
        "                false)"
        "  FROM tickets t"
        " WHERE t.ref = $1"
        "   FOR UPDATE OF t",
        2, p);
    // clang-format on
    if (!wasl_pg_arity(res, TA_NCOLS, "desk ticket authorization")) {
        PQclear(res);
        return -1;
    }
    bool found = PQntuples(res) > 0;
    wasl_authz_facts_t facts = {
        .actor = a->agent,
        .actor_field = "agent",
        .missing = !found,
        .assignee =
            found && !PQgetisnull(res, 0, TA_ASSIGNEE) ? PQgetvalue(res, 0, TA_ASSIGNEE) : NULL,
        .in_queue = found && strcmp(PQgetvalue(res, 0, TA_IN_QUEUE), "t") == 0,
    };
    int rc = authorize(a, action, &facts, reply);
    PQclear(res);
    if (rc < 0) {
        return -1;
    }
    return require_agent(pg, a->agent, reply);
}

/* ---- transactions, continued ----------------------------------------------------------------- */

static int txn_agents_read(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    const char *p[] = {a->id};
    bool one = a->op == OP_AGENT_GET;
    PGresult *res = intake_sql(pg, one ? AGENT_COLS " WHERE id = $1" : AGENT_COLS " ORDER BY id",
                               one ? 1 : 0, p);
    if (!wasl_pg_arity(res, AGENT_NCOLS, "desk agents read")) {
        PQclear(res);
        return -1;
    }
    if (one) {
        wasl_authz_facts_t facts = {
            .actor = a->id, .actor_field = "id", .missing = PQntuples(res) == 0};
        if (authorize(a, WASL_AUTHZ_AGENT_VIEW, &facts, reply) < 0) {
            PQclear(res);
            return -1;
        }
    }
    if (one && PQntuples(res) == 0) {
        PQclear(res);
        intake_error(reply, 404, "not_found", "id", "no agent %s", a->id);
        return -1;
    }
    if (one) {
        reply->body = agent_json(res, 0);
    } else {
        /* The roster as the client may see it: its own agents, or all for a supervisor. */
        wasl_authz_principal_t who = {.role = a->role, .act_as = a->act_as};
        json_t *list = json_array();
        for (int r = 0; r < PQntuples(res); r++) {
            wasl_authz_facts_t facts = {.actor = PQgetvalue(res, r, AGENT_ID), .actor_field = "id"};
            if (wasl_authz_decide(&who, WASL_AUTHZ_AGENT_VIEW, &facts).allowed) {
                json_array_append_new(list, agent_json(res, r));
            }
        }
        reply->body = json_pack("{s:o}", "agents", list);
    }
    reply->status = 200;
    PQclear(res);
    return 0;
}

/* PUT /v1/agents/{id}: wasl_agents_save (proto/functions/agents.sql), whose rule is that a field
 * the document leaves out keeps its value (or takes the default for a new agent). */
static int txn_agent_put(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    wasl_authz_facts_t facts = {.actor = a->id, .actor_field = "id"};
    if (authorize(a, WASL_AUTHZ_AGENT_MANAGE, &facts, reply) < 0) {
        return -1;
    }
    json_t *doc = json_loads(a->json, 0, NULL);
    if (!doc) {
        return -1;
    }
    json_t *langj = json_object_get(doc, "languages"), *capj = json_object_get(doc, "capacity");
    char *skills = json_dumps(json_object_get(doc, "skills"), JSON_COMPACT);
    char *langs = langj ? json_dumps(langj, JSON_COMPACT) : NULL;
    char *cap = capj ? json_dumps(capj, JSON_COMPACT) : NULL;
    json_t *w = json_object_get(doc, "wrapup_s");
    char wrapup[24] = "";
    if (w) {
        snprintf(wrapup, sizeof wrapup, "%lld", (long long)json_integer_value(w));
    }
    const char *p[] = {a->id,    json_string_value(json_object_get(doc, "name")),
                       skills,   langs,
                       cap,      w ? wrapup : NULL,
                       a->client};
    PGresult *res = intake_sql(pg,
                               "SELECT wasl_agents_save($1, $2, $3::jsonb, $4::jsonb, $5::jsonb,"
                               "                        $6::int, $7)",
                               7, p);
    free(skills);
    free(langs);
    free(cap);
    json_decref(doc);
    if (!wasl_pg_arity(res, 1, "wasl_agents_save")) {
        PQclear(res);
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
    wasl_authz_facts_t facts = {.actor = a->id, .actor_field = "id"};
    if (authorize(a, WASL_AUTHZ_AGENT_MANAGE, &facts, reply) < 0) {
        return -1;
    }
    const char *p[] = {a->id, a->client};
    PGresult *res = intake_sql(pg, "SELECT wasl_agents_remove($1, $2)", 2, p);
    if (!wasl_pg_arity(res, 1, "wasl_agents_remove")) {
        PQclear(res);
        return -1;
    }
    bool removed = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!removed) {
        intake_error(reply, 404, "not_found", "id", "no enabled agent %s", a->id);
        return -1;
    }
    reply->status = 200;
    reply->body = json_pack("{s:s, s:b}", "id", a->id, "enabled", false);
    return 0;
}

static int txn_presence(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    int exists = agent_exists(pg, a->id, true);
    if (exists < 0) {
        return -1;
    }
    wasl_authz_facts_t facts = {
        .actor = a->id, .actor_field = "id", .missing = !exists, .presence = a->text};
    if (authorize(a, WASL_AUTHZ_PRESENCE, &facts, reply) < 0) {
        return -1;
    }
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%ld", a->n);
    const char *p[] = {a->id, a->text, ttl, a->client};
    enum { PRES_PRESENCE, PRES_UNTIL, PRES_WAS, PRES_NCOLS };
    // clang-format off
    PGresult *res = intake_sql(pg,
        "SELECT presence, " TS("presence_until") ", was"
        "  FROM wasl_agents_set_presence($1, $2, $3::int, $4)",
        4, p);
    // clang-format on
    if (!wasl_pg_arity(res, PRES_NCOLS, "wasl_agents_set_presence")) {
        PQclear(res);
        return -1;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        intake_error(reply, 404, "not_found", "id", "no enabled agent %s", a->id);
        return -1;
    }
    reply->status = 200;
    reply->body = json_pack("{s:s, s:s, s:o, s:s}", "agent", a->id, "presence",
                            PQgetvalue(res, 0, PRES_PRESENCE), "presence_until",
                            str_or_null(res, 0, PRES_UNTIL), "was", PQgetvalue(res, 0, PRES_WAS));
    PQclear(res);
    return 0;
}

static int txn_offers(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    int exists = agent_exists(pg, a->id, false);
    if (exists < 0) {
        return -1;
    }
    wasl_authz_facts_t facts = {.actor = a->id, .actor_field = "id", .missing = !exists};
    if (authorize(a, WASL_AUTHZ_AGENT_VIEW, &facts, reply) < 0) {
        return -1;
    }
    if (!exists) {
        intake_error(reply, 404, "unknown_agent", "agent", "no enabled agent %s", a->id);
        return -1;
    }
    const char *p[] = {a->id};
    enum {
        OFR_ID,
        OFR_REF,
        OFR_QUEUE,
        OFR_PRIORITY,
        OFR_CHANNEL,
        OFR_LANGUAGE,
        OFR_SUBJECT,
        OFR_EXPIRES_AT,
        OFR_FR_DUE,
        OFR_NCOLS
    };
    // clang-format off
    PGresult *res = intake_sql(pg,
        "SELECT o.id, t.ref, t.queue, t.priority, t.channel, t.language, t.subject,"
        "       " TS("o.expires_at") ", " TS("t.first_response_due")
        "  FROM offers o"
        "  JOIN tickets t ON t.id = o.ticket_id"
        " WHERE o.agent_id = $1"
        "   AND o.state = 'offered'"
        "   AND o.expires_at > wasl_now()"
        " ORDER BY o.id",
        1, p);
    // clang-format on
    if (!wasl_pg_arity(res, OFR_NCOLS, "desk offers of an agent")) {
        PQclear(res);
        return -1;
    }
    json_t *list = json_array();
    for (int r = 0; r < PQntuples(res); r++) {
        json_array_append_new(
            list, json_pack("{s:I, s:s, s:o, s:o, s:s, s:o, s:o, s:s, s:o}", "offer",
                            (json_int_t)strtoll(PQgetvalue(res, r, OFR_ID), NULL, 10), "ticket",
                            PQgetvalue(res, r, OFR_REF), "queue", str_or_null(res, r, OFR_QUEUE),
                            "priority", str_or_null(res, r, OFR_PRIORITY), "channel",
                            PQgetvalue(res, r, OFR_CHANNEL), "language",
                            str_or_null(res, r, OFR_LANGUAGE), "subject",
                            str_or_null(res, r, OFR_SUBJECT), "expires_at",
                            PQgetvalue(res, r, OFR_EXPIRES_AT), "first_response_due",
                            str_or_null(res, r, OFR_FR_DUE)));
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
    enum { REF_AGENT, REF_STATE, REF_EXPIRED, REF_NCOLS };
    PGresult *res = intake_sql(pg,
                               "SELECT agent_id, state, expires_at <= wasl_now() FROM offers"
                               " WHERE id = $1::bigint",
                               1, p);
    if (!wasl_pg_arity(res, REF_NCOLS, "desk offer refusal")) {
        PQclear(res);
        return -1;
    }
    if (PQntuples(res) == 0) {
        intake_error(reply, 404, "not_found", "id", "no offer %s", a->id);
    } else if (strcmp(PQgetvalue(res, 0, REF_AGENT), a->agent) != 0) {
        /* Not reached after offer_authorize (the row is locked); kept as the statement's own
         * guard. */
        intake_error(reply, 403, "not_your_offer", "agent", "offer %s is not %s's", a->id,
                     a->agent);
    } else if (strcmp(PQgetvalue(res, 0, REF_STATE), "offered") != 0) {
        intake_error(reply, 409, "offer_closed", "id", "offer %s is %s", a->id,
                     PQgetvalue(res, 0, REF_STATE));
    } else {
        intake_error(reply, 409, "offer_expired", "id", "offer %s has expired", a->id);
    }
    PQclear(res);
    return -1;
}

/* Offers: reads the offer's agent with the offer locked and asks whether the actor may answer
 * it. 0 to go on (a missing offer included: the statement answers 404), else -1 with reply. */
static int offer_authorize(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    const char *p[] = {a->id};
    PGresult *res =
        intake_sql(pg, "SELECT agent_id FROM offers WHERE id = $1::bigint FOR UPDATE", 1, p);
    if (!wasl_pg_arity(res, 1, "desk offer authorization")) {
        PQclear(res);
        return -1;
    }
    bool found = PQntuples(res) > 0;
    wasl_authz_facts_t facts = {.actor = a->agent,
                                .actor_field = "agent",
                                .missing = !found,
                                .offer_agent = found ? PQgetvalue(res, 0, 0) : NULL};
    int rc = authorize(a, WASL_AUTHZ_OFFER_ANSWER, &facts, reply);
    PQclear(res);
    return rc;
}

static int txn_accept(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    if (offer_authorize(a, pg, reply) < 0) {
        return -1;
    }
    const char *p[] = {a->id, a->agent, a->client};
    PGresult *res =
        intake_sql(pg, "SELECT offer_id, ref FROM wasl_offers_accept($1::bigint, $2, $3)", 3, p);
    enum { ACC_OFFER, ACC_REF, ACC_NCOLS };
    if (!wasl_pg_arity(res, ACC_NCOLS, "wasl_offers_accept")) {
        PQclear(res);
        return -1;
    }
    int n = PQntuples(res);
    bool assigned = n > 0 && !PQgetisnull(res, 0, ACC_REF);
    char ref[WASL_REF_LEN + 1] = "";
    if (assigned) {
        snprintf(ref, sizeof ref, "%s", PQgetvalue(res, 0, ACC_REF));
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
    if (offer_authorize(a, pg, reply) < 0) {
        return -1;
    }
    const char *p[] = {a->id, a->agent, a->reason, a->client};
    PGresult *res =
        intake_sql(pg, "SELECT offer_id FROM wasl_offers_reject($1::bigint, $2, $3, $4)", 4, p);
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
    const char *m[] = {a->id, a->act_as};
    PGresult *member = intake_sql(pg,
                                  "SELECT 1 FROM agents WHERE enabled AND skills ? $1"
                                  " AND id = ANY(string_to_array($2, ',')) LIMIT 1",
                                  2, m);
    if (!member) {
        return -1;
    }
    wasl_authz_facts_t facts = {.in_queue = PQntuples(member) > 0};
    PQclear(member);
    if (authorize(a, WASL_AUTHZ_QUEUE_VIEW, &facts, reply) < 0) {
        return -1;
    }
    const char *p[] = {a->id};
    enum {
        Q_REF,
        Q_STATUS,
        Q_PRIORITY,
        Q_CHANNEL,
        Q_ASSIGNEE,
        Q_FR_DUE,
        Q_RES_DUE,
        Q_WAITING_SINCE,
        Q_WAITING_S,
        Q_ESCALATED,
        Q_OFFERED_TO,
        Q_NCOLS
    };
    /* Waiting tickets in the order the router offers them: priority, SLA deadline, age. */
    // clang-format off
    PGresult *res = intake_sql(pg,
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
        " LIMIT " QUEUE_VIEW_LIMIT,
        1, p);
    // clang-format on
    if (!wasl_pg_arity(res, Q_NCOLS, "desk queue view")) {
        PQclear(res);
        return -1;
    }
    json_t *list = json_array();
    for (int r = 0; r < PQntuples(res); r++) {
        json_array_append_new(
            list,
            json_pack("{s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:o, s:I, s:b, s:o}", "ticket",
                      PQgetvalue(res, r, Q_REF), "status", PQgetvalue(res, r, Q_STATUS), "priority",
                      str_or_null(res, r, Q_PRIORITY), "channel", PQgetvalue(res, r, Q_CHANNEL),
                      "assignee", str_or_null(res, r, Q_ASSIGNEE), "first_response_due",
                      str_or_null(res, r, Q_FR_DUE), "resolution_due",
                      str_or_null(res, r, Q_RES_DUE), "waiting_since",
                      str_or_null(res, r, Q_WAITING_SINCE), "waiting_s",
                      (json_int_t)strtoll(PQgetvalue(res, r, Q_WAITING_S), NULL, 10), "escalated",
                      strcmp(PQgetvalue(res, r, Q_ESCALATED), "t") == 0, "offered_to",
                      str_or_null(res, r, Q_OFFERED_TO)));
    }
    PQclear(res);
    reply->status = 200;
    reply->body = json_pack("{s:s, s:o}", "queue", a->id, "tickets", list);
    return 0;
}

/* For ticket actions, the wasl_tickets_* functions (proto/functions/tickets.sql): the row `sql`
 * returns has the ticket's status first (no row: 404) and, second, non-NULL when the change was
 * made (NULL: 409 in the ticket's status). */
static int ticket_change(wasl_pg_t *pg, const desk_arg_t *a, const char *sql, int n,
                         const char *const *p, const char *what, intake_reply_t *reply)
{
    enum { TC_STATUS, TC_DONE, TC_NCOLS };
    PGresult *res = intake_sql(pg, sql, n, p);
    if (!wasl_pg_arity(res, TC_NCOLS, what)) {
        PQclear(res);
        return -1;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        intake_error(reply, 404, "not_found", "ref", "no ticket %s", a->id);
        return -1;
    }
    if (PQgetisnull(res, 0, TC_DONE)) {
        intake_error(reply, 409, "wrong_state", "ref", "ticket %s is %s: cannot %s", a->id,
                     PQgetvalue(res, 0, TC_STATUS), what);
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
    if (ticket_authorize(a, pg, WASL_AUTHZ_NOTE, reply) < 0) {
        return -1;
    }
    const char *p[] = {a->id, a->agent, a->text, a->client};
    return ticket_change(pg, a, "SELECT status, done FROM wasl_tickets_note($1, $2, $3, $4)", 4, p,
                         "note", reply);
}

static int txn_transfer(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    if (ticket_authorize(a, pg, WASL_AUTHZ_TRANSFER, reply) < 0) {
        return -1;
    }
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
    const char *p[] = {a->id, a->agent, a->text, a->reason, a->client};
    /* The ticket keeps waiting_since: it keeps its place in line. */
    return ticket_change(pg, a,
                         "SELECT status, done FROM wasl_tickets_transfer($1, $2, $3, $4, $5)", 5, p,
                         "transfer", reply);
}

static int txn_resolve(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    if (ticket_authorize(a, pg, WASL_AUTHZ_RESOLVE, reply) < 0) {
        return -1;
    }
    const char *p[] = {a->id, a->agent, a->text, a->client};
    /* The beneficiary's update and survey go to the outbox in the same transaction; the
     * notifier's sweep sends them (intake's bus socket feeds the classify stage only). */
    return ticket_change(pg, a, "SELECT status, done FROM wasl_tickets_resolve($1, $2, $3, $4)", 4,
                         p, "resolve", reply);
}

static int txn_reopen(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    if (ticket_authorize(a, pg, WASL_AUTHZ_REOPEN, reply) < 0) {
        return -1;
    }
    const char *p[] = {a->id, a->agent, a->reason, a->client};
    /* Routed again by the router (new SLA), at the ticket's original place in line. */
    return ticket_change(pg, a, "SELECT status, done FROM wasl_tickets_reopen($1, $2, $3, $4)", 4,
                         p, "reopen", reply);
}

/* ---- idempotency by the client's key ------------------------------------------------------- */

static bool op_changes_state(desk_op_t op)
{
    return op != OP_AGENT_LIST && op != OP_AGENT_GET && op != OP_OFFERS && op != OP_QUEUE;
}

/* The request as the action sees it (the validated fields, not the bytes of the body), so that a
 * retry that re-encodes its JSON still matches. */
static void desk_fingerprint(desk_arg_t *a)
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    const unsigned char op = (unsigned char)a->op;
    crypto_hash_sha256_update(&st, &op, 1);
    const char *fields[] = {a->id, a->agent, a->text, a->reason, a->json};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        /* Length-prefixed, with absent distinct from empty: no two requests share an input. */
        unsigned long long len = fields[i] ? strlen(fields[i]) : ~0ULL;
        crypto_hash_sha256_update(&st, (const unsigned char *)&len, sizeof len);
        if (fields[i]) {
            crypto_hash_sha256_update(&st, (const unsigned char *)fields[i], strlen(fields[i]));
        }
    }
    long long n = a->n;
    crypto_hash_sha256_update(&st, (const unsigned char *)&n, sizeof n);
    crypto_hash_sha256_final(&st, a->fingerprint);
}

/* Claims (client, key) in the open transaction. 0: the key is new, the action runs and
 * key_record() keeps its reply. 1: `reply` is the committed first reply (a replay; nothing
 * changes). -1: a refusal in reply (422, the key belongs to another request) or a database
 * error. A concurrent request with the same key waits on the INSERT until the first one commits
 * (then it replays) or rolls back (then it runs). */
static int key_claim(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
    char fp[2 + 2 * crypto_hash_sha256_BYTES + 1] = "\\x";
    sodium_bin2hex(fp + 2, sizeof fp - 2, a->fingerprint, sizeof a->fingerprint);
    const char *p[] = {a->client, a->key, fp};
    const char *expiry[] = {a->client, a->key, DESK_KEY_RETENTION_H};
    /* An expired key starts afresh. */
    PGresult *res = intake_sql(pg,
                               "DELETE FROM desk_idempotency WHERE client_id = $1 AND key = $2"
                               " AND created_at < now() - make_interval(hours => $3::int)",
                               3, expiry);
    if (!res) {
        return -1;
    }
    PQclear(res);
    res = intake_sql(pg,
                     "INSERT INTO desk_idempotency (client_id, key, fingerprint)"
                     " VALUES ($1, $2, $3::bytea) ON CONFLICT (client_id, key) DO NOTHING"
                     " RETURNING 1",
                     3, p);
    if (!res) {
        return -1;
    }
    int fresh = PQntuples(res);
    PQclear(res);
    if (fresh) {
        return 0;
    }
    enum { KEY_SAME, KEY_STATUS, KEY_REPLY, KEY_NCOLS };
    res = intake_sql(pg,
                     "SELECT fingerprint = $3::bytea, status, reply::text FROM desk_idempotency"
                     " WHERE client_id = $1 AND key = $2",
                     3, p);
    if (!wasl_pg_arity(res, KEY_NCOLS, "desk idempotency key")) {
        PQclear(res);
        return -1;
    }
    int rc = -1;
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, KEY_STATUS)) {
        /* A committed row always has its reply (one transaction writes both). */
        wasl_warn("intake: idempotency key without a reply", "{s:s}", "client", a->client);
    } else if (strcmp(PQgetvalue(res, 0, KEY_SAME), "t") != 0) {
        intake_error(reply, 422, "idempotency_key_reused", DESK_KEY_HEADER,
                     "this key was used for a different request");
    } else {
        reply->status = (unsigned)atoi(PQgetvalue(res, 0, KEY_STATUS));
        reply->body = json_loads(PQgetvalue(res, 0, KEY_REPLY), JSON_DECODE_ANY, NULL);
        rc = reply->body ? 1 : -1;
    }
    PQclear(res);
    return rc;
}

/* Keeps the reply of a keyed action in its own transaction, and removes a few expired keys.
 * 0 or -1. */
static int key_record(const desk_arg_t *a, wasl_pg_t *pg, const intake_reply_t *reply)
{
    char status[8];
    snprintf(status, sizeof status, "%u", reply->status);
    char *body = json_dumps(reply->body, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!body) {
        return -1;
    }
    const char *p[] = {a->client, a->key, status, body};
    PGresult *res = intake_sql(pg,
                               "UPDATE desk_idempotency SET status = $3::smallint, reply = $4::json"
                               " WHERE client_id = $1 AND key = $2",
                               4, p);
    free(body);
    if (!res) {
        return -1;
    }
    PQclear(res);
    const char *q[] = {DESK_KEY_RETENTION_H, DESK_KEY_CLEANUP_ROWS};
    res = intake_sql(pg,
                     "DELETE FROM desk_idempotency d USING (SELECT client_id, key"
                     "  FROM desk_idempotency WHERE created_at < now() - make_interval(hours =>"
                     "  $1::int) ORDER BY created_at LIMIT $2::int FOR UPDATE SKIP LOCKED) old"
                     " WHERE d.client_id = old.client_id AND d.key = old.key",
                     2, q);
    if (!res) {
        return -1;
    }
    PQclear(res);
    return 0;
}

static int desk_action(const desk_arg_t *a, wasl_pg_t *pg, intake_reply_t *reply)
{
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

static int desk_txn(intake_job_t *job, intake_writer_t *w, wasl_pg_t *pg, intake_reply_t *reply)
{
    (void)w;
    const desk_arg_t *a = job->arg;
    if (!a->key[0]) {
        return desk_action(a, pg, reply);
    }
    int claimed = key_claim(a, pg, reply);
    if (claimed != 0) {
        return claimed > 0 ? 0 : -1; /* a replay commits nothing new */
    }
    /* A refused action rolls back its claim too: it changed nothing, so a retry is judged
     * afresh. */
    int rc = desk_action(a, pg, reply);
    if (rc == 0 && key_record(a, pg, reply) < 0) {
        json_decref(reply->body);
        reply->body = NULL;
        return -1;
    }
    return rc;
}

/* ---- request validation (HTTP thread) ------------------------------------------------------- */

/* Hands the request to a writer with the client's binding and its Idempotency-Key (state
 * changes only; a malformed key is refused here). Takes ownership of *arg_p. */
static void submit(intake_request_t *req, intake_reply_t *reply, desk_arg_t **arg_p,
                   const char *endpoint)
{
    desk_arg_t *a = *arg_p;
    snprintf(a->client, sizeof a->client, "%s", req->client.id);
    a->role = req->client.role;
    snprintf(a->act_as, sizeof a->act_as, "%s", req->client.act_as);
    const char *key = intake_header(req, DESK_KEY_HEADER);
    if (key && op_changes_state(a->op)) {
        size_t len = strlen(key);
        if (len == 0 || len > DESK_KEY_MAX_BYTES || strspn(key, DESK_KEY_CHARS) != len) {
            intake_error(reply, 400, "invalid_idempotency_key", DESK_KEY_HEADER,
                         "an idempotency key is 1..%d of A-Z a-z 0-9 . _ : -", DESK_KEY_MAX_BYTES);
            desk_arg_free(a);
            *arg_p = NULL;
            return;
        }
        memcpy(a->key, key, len + 1);
        desk_fingerprint(a);
    }
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
    if (!wasl_agent_id_ok(agent)) {
        intake_error(reply, 400, "invalid_agent", "agent",
                     "an agent id is a-z, 0-9, '.', '_', "
                     "'-'");
        return -1;
    }
    snprintf(a->agent, sizeof a->agent, "%s", agent);
    return 0;
}

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

/* Validates an agent document for PUT /v1/agents/{id} and turns typed numbers into integers;
 * returns 0 or -1 with reply set. */
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
        long long level;
        if (!wasl_name_ok(k) || typed_number(skills, k, &level) < 0 || level < 1 ||
            level > SKILL_LEVEL_MAX) {
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
            long long n = -1;
            ok = ok && known && typed_number(cap, k, &n) == 0 && n >= 0 && n <= CAPACITY_MAX;
        }
        if (!ok) {
            intake_error(reply, 400, "invalid_capacity", "capacity",
                         "capacity maps web, api, email, sms, phone to 0..%d", CAPACITY_MAX);
            return -1;
        }
    }
    long long wrapup;
    bool present;
    if (intake_json_int(doc, "wrapup_s", "wrapup_s", false, 0, WRAPUP_MAX_S, &wrapup, &present,
                        reply) < 0) {
        return -1;
    }
    if (present) {
        /* "٣٠" was accepted above and then stored as 0: the document carries the number. */
        json_object_set_new(doc, "wrapup_s", json_integer(wrapup));
    }
    return 0;
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
    if (!wasl_agent_id_ok(a->id)) {
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
        a->json = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS); /* canonical: fingerprinted */
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
    if (!wasl_name_ok(a->id) || !action || strcmp(action, "tickets") != 0) {
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
        if (!wasl_name_ok(text)) {
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
