/* api — the desk's endpoints for people: sign in and out, who am I, my offers, my presence,
 * answering an offer, the event stream. The session's agent is always the actor. */
#include "idempotency.h"
#include "server.h"
#include "wasl_authz.h"
#include "wasl_domain.h"
#include "wasl_log.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACTOR_CLIENT     "desk" /* the `client` the functions record for the history */
#define PRESENCE_TTL_S   90
#define PRESENCE_TTL_MIN 10
#define PRESENCE_TTL_MAX 3600
#define REASON_MAX       500
#define OFFER_ID_DIGITS  18

static wasl_authz_principal_t principal(const desk_req_t *req)
{
    return desk_principal_authz(req);
}

/* ---- login ------------------------------------------------------------------------------- */

typedef struct {
    char agent[WASL_SESSION_AGENT_BUF];
    char password[WASL_PASSWORD_MAX_BYTES + 1];
    size_t password_len;
    char addr[DESK_ADDR_BUF];
} login_arg_t;

static void login_free(void *arg)
{
    login_arg_t *a = arg;
    sodium_memzero(a, sizeof *a);
    free(a);
}

static wasl_session_throttle_t throttle_of(const desk_config_t *cfg)
{
    return (wasl_session_throttle_t){.account_max = (int)cfg->login_account_max,
                                     .addr_max = (int)cfg->login_addr_max,
                                     .window_s = (int)cfg->login_window_s};
}

/* The agent's row for a login: name, role, hash (NULL when it cannot sign in). */
typedef struct {
    bool found;
    char name[256];
    char role[WASL_SESSION_ROLE_BUF];
    char hash[WASL_PASSWORD_HASH_BUF];
    bool has_hash;
} login_row_t;

static int read_login_row(wasl_pg_t *pg, const char *agent, login_row_t *row)
{
    enum { L_NAME, L_ROLE, L_HASH, L_NCOLS };
    const char *p[] = {agent};
    PGresult *res = wasl_pg_query(pg,
                                  "SELECT name, role, password_hash"
                                  "  FROM agents"
                                  " WHERE id = $1"
                                  "   AND enabled",
                                  1, p);
    if (!wasl_pg_arity(res, L_NCOLS, "desk login")) {
        PQclear(res);
        return -1;
    }
    *row = (login_row_t){.found = PQntuples(res) == 1};
    if (row->found) {
        snprintf(row->name, sizeof row->name, "%s", PQgetvalue(res, 0, L_NAME));
        snprintf(row->role, sizeof row->role, "%s", PQgetvalue(res, 0, L_ROLE));
        row->has_hash =
            !PQgetisnull(res, 0, L_HASH) && (size_t)PQgetlength(res, 0, L_HASH) < sizeof row->hash;
        if (row->has_hash) {
            snprintf(row->hash, sizeof row->hash, "%s", PQgetvalue(res, 0, L_HASH));
        }
    }
    PQclear(res);
    return 0;
}

/* On a verification thread: the row, Argon2, then the session or a counted failure. */
static void login_verify(desk_req_t *req, desk_reply_t *reply)
{
    login_arg_t *a = req->offload_arg;
    login_row_t row;
    if (read_login_row(req->db->pg, a->agent, &row) < 0) {
        desk_db_failed(reply, "login");
        return;
    }
    /* The same work whether or not the account exists or has a password. */
    bool ok = wasl_password_verify(row.has_hash ? row.hash : NULL, a->password, a->password_len);
    sodium_memzero(row.hash, sizeof row.hash);
    wasl_session_throttle_t t = throttle_of(req->cfg);
    if (!ok) {
        wasl_session_throttle_fail(req->db->redis, a->agent, a->addr, &t);
        wasl_info("desk: sign-in refused", "{s:s}", "agent", a->agent);
        desk_error(reply, 401, "invalid_credentials", NULL, "wrong agent or password");
        return;
    }
    char token[WASL_SESSION_TOKEN_BUF];
    wasl_session_t s;
    wasl_session_limits_t lim = {(int)req->cfg->idle_s, (int)req->cfg->absolute_s};
    if (wasl_session_create(req->db->redis, a->agent, row.role, &lim, desk_wall_ms(), token, &s) <
        0) {
        desk_error(reply, 503, "unavailable", NULL, "sessions cannot be written right now; retry");
        reply->retry_after_s = 2;
        return;
    }
    wasl_session_throttle_clear(req->db->redis, a->agent);
    snprintf(reply->set_cookie, sizeof reply->set_cookie,
             "wasl_sid=%s; Path=/; HttpOnly; SameSite=Strict%s", token,
             req->cfg->cookie_secure ? "; Secure" : "");
    sodium_memzero(token, sizeof token);
    reply->status = 200;
    reply->body = json_pack("{s:s, s:s, s:s, s:s}", "agent", a->agent, "name", row.name, "role",
                            row.role, "csrf", s.csrf);
    wasl_info("desk: signed in", "{s:s, s:s}", "agent", a->agent, "role", row.role);
}

void desk_handle_login(desk_req_t *req, desk_reply_t *reply)
{
    json_t *doc = desk_body_json(req, reply);
    const char *agent, *password;
    if (!doc || desk_str_field(doc, "agent", DESK_FIELD_REQUIRED, 64, &agent, reply) < 0 ||
        desk_str_field(doc, "password", DESK_FIELD_REQUIRED, WASL_PASSWORD_MAX_BYTES, &password,
                       reply) < 0) {
        json_decref(doc);
        return;
    }
    if (!wasl_agent_id_ok(agent)) {
        json_decref(doc);
        desk_error(reply, 400, "invalid_field", "agent", "agent is an agent id ([a-z0-9._-])");
        return;
    }
    /* Throttled before anything is verified: a guesser past the limit costs us no Argon2. */
    wasl_session_throttle_t t = throttle_of(req->cfg);
    int wait_s = wasl_session_throttle_check(req->db->redis, agent, req->client_addr, &t);
    login_arg_t *a = wait_s == 0 ? calloc(1, sizeof *a) : NULL;
    if (wait_s != 0 || !a) {
        if (wait_s > 0) {
            desk_error(reply, 429, "throttled", NULL, "too many failed sign-ins; wait %d s",
                       wait_s);
            reply->retry_after_s = wait_s;
        } else {
            desk_error(reply, 503, "unavailable", NULL, "sign-in is unavailable; retry");
            reply->retry_after_s = 2;
        }
        json_decref(doc);
        return;
    }
    snprintf(a->agent, sizeof a->agent, "%s", agent);
    a->password_len = strlen(password);
    memcpy(a->password, password, a->password_len);
    snprintf(a->addr, sizeof a->addr, "%s", req->client_addr);
    json_decref(doc);
    req->offload = login_verify;
    req->offload_arg = a;
    req->offload_free = login_free;
}

/* ---- logout ------------------------------------------------------------------------------ */

static void signed_out(const desk_req_t *req, desk_reply_t *reply)
{
    reply->status = 204;
    snprintf(reply->set_cookie, sizeof reply->set_cookie,
             "wasl_sid=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict%s",
             req->cfg->cookie_secure ? "; Secure" : "");
}

void desk_handle_logout(desk_req_t *req, desk_reply_t *reply)
{
    if (wasl_session_delete(req->db->redis, req->session.agent, req->session.key) < 0) {
        desk_error(reply, 503, "unavailable", NULL, "cannot sign out right now; retry");
        return;
    }
    desk_events_close_session(req->events, req->session.key);
    signed_out(req, reply);
}

void desk_handle_logout_all(desk_req_t *req, desk_reply_t *reply)
{
    if (wasl_session_delete_agent(req->db->redis, req->session.agent) < 0) {
        desk_error(reply, 503, "unavailable", NULL, "cannot sign out right now; retry");
        return;
    }
    desk_events_close_agent(req->events, req->session.agent);
    signed_out(req, reply);
}

/* ---- me ---------------------------------------------------------------------------------- */

void desk_handle_me(desk_req_t *req, desk_reply_t *reply)
{
    enum { M_NAME, M_PRESENCE, M_SINCE, M_QUEUES, M_NCOLS };
    const char *p[] = {req->session.agent};
    // clang-format off
    PGresult *res = wasl_pg_query(req->db->pg,
        "SELECT a.name,"
        "       CASE WHEN a.presence_until IS NULL OR a.presence_until <= wasl_now()"
        "            THEN 'offline' ELSE a.presence END,"
        "       (SELECT to_char(max(e.at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        "          FROM agent_events e"
        "         WHERE e.agent_id = a.id"
        "           AND e.kind IN ('presence', 'presence.away', 'presence.expired')),"
        "       (SELECT coalesce(json_agg(k ORDER BY k), '[]')::text"
        "          FROM jsonb_object_keys(a.skills) k)"
        "  FROM agents a"
        " WHERE a.id = $1"
        "   AND a.enabled",
        1, p);
    // clang-format on
    if (!wasl_pg_arity(res, M_NCOLS, "desk me")) {
        PQclear(res);
        desk_db_failed(reply, "me");
        return;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        desk_error(reply, 401, "unauthenticated", NULL, "the agent is no longer enabled");
        return;
    }
    json_t *queues = json_loads(PQgetvalue(res, 0, M_QUEUES), 0, NULL);
    reply->status = 200;
    reply->body =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:o}", "agent", req->session.agent, "name",
                  PQgetvalue(res, 0, M_NAME), "role", req->session.role, "csrf", req->session.csrf,
                  "presence", PQgetvalue(res, 0, M_PRESENCE), "presence_since",
                  PQgetisnull(res, 0, M_SINCE) ? NULL : PQgetvalue(res, 0, M_SINCE), "queues",
                  queues ? queues : json_array());
    PQclear(res);
}

void desk_handle_me_offers(desk_req_t *req, desk_reply_t *reply)
{
    // clang-format off
    static const char sql[] = DESK_OFFER_COLUMNS
        " WHERE o.agent_id = $1"
        "   AND o.state = 'offered'"
        "   AND o.expires_at > wasl_now()"
        " ORDER BY o.id";
    // clang-format on
    const char *p[] = {req->session.agent};
    PGresult *res = wasl_pg_query(req->db->pg, sql, 1, p);
    if (!wasl_pg_arity(res, DESK_OFFER_NCOLS, "desk my offers")) {
        PQclear(res);
        desk_db_failed(reply, "me_offers");
        return;
    }
    json_t *list = json_array();
    for (int r = 0; r < PQntuples(res); r++) {
        json_array_append_new(list, desk_offer_json(res, r));
    }
    PQclear(res);
    reply->status = 200;
    reply->body = json_pack("{s:s, s:o}", "agent", req->session.agent, "offers", list);
}

/* ---- presence ---------------------------------------------------------------------------- */

static bool presence_word(const char *s)
{
    static const char *const words[] = {"available", "busy", "away", "offline"};
    for (size_t i = 0; s && i < sizeof words / sizeof words[0]; i++) {
        if (strcmp(s, words[i]) == 0) {
            return true;
        }
    }
    return false;
}

void desk_handle_presence(desk_req_t *req, desk_reply_t *reply)
{
    json_t *doc = desk_body_json(req, reply);
    const char *presence;
    if (!doc || desk_str_field(doc, "presence", DESK_FIELD_REQUIRED, 16, &presence, reply) < 0) {
        json_decref(doc);
        return;
    }
    json_t *ttl_v = json_object_get(doc, "ttl_s");
    long long ttl = PRESENCE_TTL_S;
    if (ttl_v && !json_is_null(ttl_v)) {
        ttl = json_is_integer(ttl_v) ? json_integer_value(ttl_v) : -1;
    }
    if (!presence_word(presence)) {
        desk_error(reply, 400, "invalid_field", "presence",
                   "presence is available, busy, away or offline");
    } else if (ttl < PRESENCE_TTL_MIN || ttl > PRESENCE_TTL_MAX) {
        desk_error(reply, 400, "invalid_field", "ttl_s", "ttl_s is an integer in %d..%d",
                   PRESENCE_TTL_MIN, PRESENCE_TTL_MAX);
    } else {
        wasl_authz_principal_t who = principal(req);
        wasl_authz_facts_t facts = {
            .actor = req->session.agent, .actor_field = "agent", .presence = presence};
        wasl_authz_decision_t d = wasl_authz_decide(&who, WASL_AUTHZ_PRESENCE, &facts);
        char ttl_text[24];
        snprintf(ttl_text, sizeof ttl_text, "%lld", ttl);
        const char *p[] = {req->session.agent, presence, ttl_text, ACTOR_CLIENT};
        PGresult *res = d.allowed ? wasl_pg_query(req->db->pg,
                                                  "SELECT presence, presence_until, was"
                                                  "  FROM wasl_agents_set_presence($1, $2,"
                                                  "                                $3::int, $4)",
                                                  4, p)
                                  : NULL;
        if (!d.allowed) {
            desk_error(reply, 403, d.code, d.field, "%s", d.why);
        } else if (!wasl_pg_arity(res, 3, "wasl_agents_set_presence")) {
            desk_db_failed(reply, "presence");
        } else if (PQntuples(res) == 0) {
            desk_error(reply, 401, "unauthenticated", NULL, "the agent is no longer enabled");
        } else {
            reply->status = 200;
            reply->body = json_pack("{s:s, s:s, s:s?, s:s}", "agent", req->session.agent,
                                    "presence", PQgetvalue(res, 0, 0), "presence_until",
                                    PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1), "was",
                                    PQgetvalue(res, 0, 2));
        }
        PQclear(res);
    }
    json_decref(doc);
}

/* ---- offers ------------------------------------------------------------------------------ */

/* Why an offer of ours cannot be answered (404/409), from its locked row. */
static void offer_refusal(wasl_pg_t *pg, const char *id, desk_reply_t *reply)
{
    const char *p[] = {id};
    PGresult *res = wasl_pg_query(pg, "SELECT state FROM offers WHERE id = $1::bigint", 1, p);
    if (!wasl_pg_arity(res, 1, "desk offer state") || PQntuples(res) != 1) {
        desk_error(reply, 404, "not_found", "id", "no offer %s", id);
    } else if (strcmp(PQgetvalue(res, 0, 0), "offered") != 0) {
        desk_error(reply, 409, "offer_closed", "id", "offer %s is %s", id, PQgetvalue(res, 0, 0));
    } else {
        desk_error(reply, 409, "offer_expired", "id", "offer %s has expired", id);
    }
    PQclear(res);
}

typedef struct {
    const char *id;
    const char *agent;
    bool accept;
    const char *reason;
} offer_arg_t;

/* In the transaction: the offer locked, the decision, then the function. 0 to commit. */
static int answer_offer(desk_req_t *req, void *arg, desk_reply_t *reply)
{
    const offer_arg_t *a = arg;
    wasl_pg_t *pg = req->db->pg;
    const char *p[] = {a->id};
    PGresult *res =
        wasl_pg_query(pg, "SELECT agent_id FROM offers WHERE id = $1::bigint FOR UPDATE", 1, p);
    if (!wasl_pg_arity(res, 1, "desk offer lock")) {
        PQclear(res);
        desk_db_failed(reply, "offer");
        return -1;
    }
    bool found = PQntuples(res) == 1;
    wasl_authz_principal_t who = principal(req);
    wasl_authz_facts_t facts = {.actor = a->agent,
                                .actor_field = "agent",
                                .missing = !found,
                                .offer_agent = found ? PQgetvalue(res, 0, 0) : NULL};
    wasl_authz_decision_t d = wasl_authz_decide(&who, WASL_AUTHZ_OFFER_ANSWER, &facts);
    PQclear(res);
    if (!d.allowed) {
        desk_refused(req, &d, a->id, reply);
        return -1;
    }
    if (!found) {
        desk_error(reply, 404, "not_found", "id", "no offer %s", a->id);
        return -1;
    }
    const char *pa[] = {a->id, a->agent, req->principal.client};
    const char *pr[] = {a->id, a->agent, a->reason, req->principal.client};
    res = a->accept ? wasl_pg_query(pg,
                                    "SELECT offer_id, ref"
                                    "  FROM wasl_offers_accept($1::bigint, $2, $3)",
                                    3, pa)
                    : wasl_pg_query(pg,
                                    "SELECT offer_id, ticket_id"
                                    "  FROM wasl_offers_reject($1::bigint, $2, $3, $4)",
                                    4, pr);
    if (!wasl_pg_arity(res, 2, a->accept ? "wasl_offers_accept" : "wasl_offers_reject")) {
        PQclear(res);
        desk_db_failed(reply, "offer");
        return -1;
    }
    int n = PQntuples(res);
    bool moved = a->accept && n == 1 && PQgetisnull(res, 0, 1);
    char ref[32] = "";
    if (a->accept && n == 1 && !moved) {
        snprintf(ref, sizeof ref, "%s", PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    if (n == 0) {
        offer_refusal(pg, a->id, reply);
        return -1;
    }
    if (moved) {
        desk_error(reply, 409, "ticket_moved", "id", "the ticket of offer %s is no longer waiting",
                   a->id);
        return -1;
    }
    reply->status = 200;
    reply->body = a->accept ? json_pack("{s:s, s:s, s:s, s:s}", "offer", a->id, "state", "accepted",
                                        "ticket", ref, "assignee", a->agent)
                            : json_pack("{s:s, s:s}", "offer", a->id, "state", "rejected");
    return 0;
}

/* POST /v1/offers/{id}/accept | /reject */
void desk_handle_offer(desk_req_t *req, desk_reply_t *reply)
{
    char id[OFFER_ID_DIGITS + 1];
    size_t len = strcspn(req->path_arg, "/");
    const char *action = req->path_arg + len;
    bool accept = strcmp(action, "/accept") == 0;
    if (len == 0 || len > OFFER_ID_DIGITS || strspn(req->path_arg, "0123456789") != len ||
        req->path_arg[0] == '0') {
        desk_error(reply, 400, "invalid_offer", "id", "an offer id is a positive integer");
        return;
    }
    if (!accept && strcmp(action, "/reject") != 0) {
        desk_error(reply, 404, "not_found", NULL, "POST /v1/offers/{id}/accept or /reject");
        return;
    }
    memcpy(id, req->path_arg, len);
    id[len] = '\0';
    json_t *doc = desk_body_json(req, reply);
    offer_arg_t a = {.id = id, .accept = accept};
    if (!doc || desk_actor(req, doc, &a.agent, reply) < 0 ||
        (!accept &&
         desk_str_field(doc, "reason", DESK_FIELD_OPTIONAL, REASON_MAX, &a.reason, reply) < 0)) {
        json_decref(doc);
        return;
    }
    const char *fields[] = {accept ? "accept" : "reject", id, a.agent, a.reason};
    desk_idempotency_run(req, fields, sizeof fields / sizeof fields[0], answer_offer, &a, reply);
    json_decref(doc);
}

/* ---- events ------------------------------------------------------------------------------ */

void desk_handle_events(desk_req_t *req, desk_reply_t *reply)
{
    bool supervisor = wasl_authz_role_parse(req->session.role) >= WASL_AUTHZ_ROLE_SUPERVISOR;
    desk_stream_rc_t rc = desk_events_open(req->events, req->conn, req->session.agent, supervisor,
                                           req->session.key, &req->stream);
    switch (rc) {
    case DESK_STREAM_OK:
        return;
    case DESK_STREAM_FULL:
    case DESK_STREAM_STOPPING:
        desk_error(reply, 503, "busy", NULL, "no more event streams now; retry");
        reply->retry_after_s = 5;
        return;
    case DESK_STREAM_AGENT_MAX:
        desk_error(reply, 429, "too_many_streams", NULL,
                   "this agent has as many event streams open as it may");
        reply->retry_after_s = 5;
        return;
    case DESK_STREAM_ERROR:
        desk_error(reply, 500, "internal", NULL, "cannot open the stream");
        return;
    }
}
