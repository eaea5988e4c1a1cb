/* tickets — "my work", the ticket view, note, transfer and resolve (see tickets.h). */
#include "tickets.h"
#include "supervise.h"
#include "viewers.h"
#include "calls.h"
#include "wasl_authz.h"
#include "wasl_log.h"

#include <dirent.h>
#include <sodium.h>
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
    "         'resolution', t.resolution, 'wrapup_code', t.wrapup_code,"
    "         'escalated', t.escalated_at IS NOT NULL,"
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
    "         'other_tickets', " DESK_PHONE_TICKETS_JSON("t.from_phone", "t.id") ","
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
    /* Who else has it open (the collision warning). */
    json_object_set_new(doc, "viewers", desk_viewers_of_ticket(req, ref));
    desk_phone_tickets_label(json_object_get(doc, "other_tickets"));
    reply->status = 200;
    reply->body = doc;
}

/* ---- canned replies ---------------------------------------------------------------------- */

#define REPLIES_MAX  200
#define REPLY_ID_MAX 64

static json_t *replies; /* array, sorted by id; read-only once loaded */

static bool reply_id_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= REPLY_ID_MAX && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* Braces only in {ref}. */
static bool placeholders_ok(const char *s)
{
    for (const char *p = s; *p; p++) {
        if ((*p == '{' && strncmp(p, "{ref}", 5) != 0) ||
            (*p == '}' && (p - s < 4 || strncmp(p - 4, "{ref}", 5) != 0))) {
            return false;
        }
    }
    return true;
}

/* Both languages of `key`: non-empty strings of at most `max` bytes (and placeholders ok). */
static const char *pair_problem(json_t *doc, const char *key, size_t max, bool text)
{
    json_t *pair = json_object_get(doc, key);
    if (!json_is_object(pair) || json_object_size(pair) != 2) {
        return "must be {ar, en}";
    }
    static const char *const langs[] = {"ar", "en"};
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(pair, langs[i]);
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        if (!s || !*s || json_string_length(v) > max || strlen(s) != json_string_length(v)) {
            return "needs non-empty ar and en strings within the size limit";
        }
        if (text && !placeholders_ok(s)) {
            return "has a placeholder other than {ref}";
        }
    }
    return NULL;
}

static json_t *load_reply(const char *dir, const char *name, char *why, size_t cap)
{
    char path[4096], id[REPLY_ID_MAX + 8];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t stem = strlen(name) - strlen(".json");
    snprintf(id, sizeof id, "%.*s", (int)(stem < sizeof id ? stem : sizeof id - 1), name);
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    const char *problem = !doc                         ? jerr.text
                          : !json_is_object(doc)       ? "is not an object"
                          : json_object_size(doc) != 3 ? "has other keys than id, title, text"
                          : !reply_id_ok(id)           ? "has a name that is not an id"
                          : !json_is_string(json_object_get(doc, "id")) ||
                                  strcmp(json_string_value(json_object_get(doc, "id")), id) != 0
                              ? "has an id other than its file name"
                              : NULL;
    if (!problem) {
        problem = pair_problem(doc, "title", 120, false);
    }
    if (!problem) {
        problem = pair_problem(doc, "text", REPLY_TEXT_MAX, true);
    }
    if (problem) {
        snprintf(why, cap, "%.4000s: %.160s", path, problem);
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static int by_id(const void *a, const void *b)
{
    const json_t *const *x = a, *const *y = b;
    return strcmp(json_string_value(json_object_get(*x, "id")),
                  json_string_value(json_object_get(*y, "id")));
}

int desk_replies_load(const char *dir)
{
    json_t *found[REPLIES_MAX];
    size_t n = 0;
    char why[4300] = "";
    DIR *d = opendir(dir);
    if (!d) {
        wasl_warn("desk: no canned replies", "{s:s}", "dir", dir);
        replies = json_array();
        return 0;
    }
    for (struct dirent *e; (e = readdir(d)) && !*why;) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".json") != 0) {
            continue;
        }
        if (n == REPLIES_MAX) {
            snprintf(why, sizeof why, "%s: more than %d replies", dir, REPLIES_MAX);
        } else if ((found[n] = load_reply(dir, e->d_name, why, sizeof why))) {
            n++;
        }
    }
    closedir(d);
    qsort(found, n, sizeof found[0], by_id);
    replies = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(replies, found[i]);
    }
    if (*why) {
        wasl_error("desk: canned replies refused", "{s:s}", "error", why);
        desk_replies_free();
        return -1;
    }
    wasl_info("desk: canned replies", "{s:s, s:i}", "dir", dir, "count", (int)n);
    return 0;
}

void desk_replies_free(void)
{
    json_decref(replies);
    replies = NULL;
}

int desk_wrapup_codes_check(const char *codes)
{
    size_t n = 0;
    for (const char *p = codes; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        static const char tail[] = "abcdefghijklmnopqrstuvwxyz0123456789_.-";
        if (len > WRAPUP_MAX || (len > 0 && (!strchr(tail, *p) || *p == '_' || *p == '.' ||
                                             *p == '-' || strspn(p, tail) < len))) {
            wasl_error("desk: wrap-up code refused", "{s:s, s:s}", "code", p, "rule",
                       "[a-z0-9][a-z0-9_.-]{0,63}, comma-separated (WASL_DESK_WRAPUP_CODES)");
            return -1;
        }
        n += len > 0;
        p = end ? end + 1 : NULL;
    }
    if (n == 0) {
        wasl_error("desk: no wrap-up codes", "{s:s}", "setting", "WASL_DESK_WRAPUP_CODES");
        return -1;
    }
    return 0;
}

void desk_handle_replies(desk_req_t *req, desk_reply_t *reply)
{
    json_t *codes = json_array();
    for (const char *p = req->cfg->wrapup_codes; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            json_array_append_new(codes, json_stringn(p, len));
        }
        p = end ? end + 1 : NULL;
    }
    reply->status = 200;
    reply->body =
        json_pack("{s:o, s:o}", "replies", json_deep_copy(replies ? replies : json_array()),
                  "wrapup_codes", codes);
}

/* The canned reply `id` in `lang` with {ref} filled, into out (cap bytes). false: no such id. */
static bool canned_text(const char *id, const char *lang, const char *ref, char *out, size_t cap)
{
    size_t i;
    json_t *r;
    json_array_foreach(replies, i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "id")), id) != 0) {
            continue;
        }
        const char *s = json_string_value(
            json_object_get(json_object_get(r, "text"), strcmp(lang, "en") == 0 ? "en" : "ar"));
        size_t o = 0;
        for (const char *p = s; *p && o + 1 < cap;) {
            if (strncmp(p, "{ref}", 5) == 0) {
                o += (size_t)snprintf(out + o, cap - o, "%s", ref);
                p += 5;
            } else {
                out[o++] = *p++;
            }
        }
        out[o < cap ? o : cap - 1] = '\0';
        return true;
    }
    return false;
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
    /* Resolve: the function keeps the wrap-up code (tickets.wrapup_code and the 'resolved'
     * event) and enqueues the beneficiary's update and survey. */
    const char *pr[] = {ref, agent, a->text, ACTOR_CLIENT, a->reason};
    return function_result(
        wasl_pg_query(pg, "SELECT status, done FROM wasl_tickets_resolve($1, $2, $3, $4, $5)", 5,
                      pr),
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
               "POST /v1/tickets/{ref}/notes, /transfer, /resolve or /reply");
    return -1;
}

/* ---- reply ------------------------------------------------------------------------------- */

typedef struct {
    const char *text;
    const char *reply_id;
    char key[80]; /* the dedupe key's end: k:<Idempotency-Key> or h:<hash of agent and text> */
} reply_arg_t;

static int read_reply(desk_req_t *req, json_t *doc, reply_arg_t *a, desk_reply_t *reply)
{
    *a = (reply_arg_t){0};
    if (text_field(doc, "text", false, REPLY_TEXT_MAX, &a->text, reply) < 0 ||
        text_field(doc, "reply_id", false, REPLY_ID_MAX, &a->reply_id, reply) < 0) {
        return -1;
    }
    if (!a->text == !a->reply_id || (a->text && a->text[strspn(a->text, " \t\r\n")] == '\0')) {
        desk_error(reply, 400, "invalid_field", a->text ? "text" : "reply_id",
                   "a reply has either a non-empty text or a reply_id");
        return -1;
    }
    const char *key = desk_header(req, "Idempotency-Key");
    if (key) {
        size_t n = strlen(key);
        if (n == 0 || n > 64 ||
            strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") !=
                n) {
            desk_error(reply, 400, "invalid_field", "Idempotency-Key",
                       "Idempotency-Key is 1..64 characters of [A-Za-z0-9._:-]");
            return -1;
        }
        snprintf(a->key, sizeof a->key, "k:%s", key);
        return 0;
    }
    /* No key: the same agent sending the same text (or canned reply) sends it once. */
    unsigned char h[crypto_generichash_BYTES];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    const char *parts[] = {req->session.agent, a->text ? "t" : "r",
                           a->text ? a->text : a->reply_id};
    for (size_t i = 0; i < 3; i++) {
        crypto_generichash_update(&st, (const unsigned char *)parts[i], strlen(parts[i]) + 1);
    }
    crypto_generichash_final(&st, h, sizeof h);
    memcpy(a->key, "h:", 2);
    sodium_bin2hex(a->key + 2, sizeof a->key - 2, h, 16);
    return 0;
}

/* In the transaction: the ticket locked, the decision and its contact, then the function. */
static int run_reply(desk_req_t *req, const char *ref, const reply_arg_t *a, desk_reply_t *reply)
{
    enum { R_LANG = 2, R_CONTACT, R_NCOLS };
    PGresult *res = ticket_decide(req, ref,
                                  DECIDE_COLUMNS ", coalesce(t.language, 'ar'),"
                                                 " coalesce(t.from_phone, t.from_email) IS NOT NULL"
                                                 " AND t.auto_submitted IS NULL"
                                                 " FROM tickets t WHERE t.ref = $1"
                                                 " FOR UPDATE OF t",
                                  WASL_AUTHZ_RESOLVE, R_NCOLS, reply);
    if (!res) {
        return -1;
    }
    char text[2 * REPLY_TEXT_MAX + 1];
    bool contact = strcmp(PQgetvalue(res, 0, R_CONTACT), "t") == 0;
    bool known = !a->reply_id ||
                 canned_text(a->reply_id, PQgetvalue(res, 0, R_LANG), ref, text, sizeof text);
    PQclear(res);
    if (!known) {
        desk_error(reply, 400, "invalid_field", "reply_id", "no canned reply %s", a->reply_id);
        return -1;
    }
    if (!contact) {
        desk_error(reply, 409, "no_contact", "ref",
                   "ticket %s has no phone or e-mail to reply to, or came from an automatic "
                   "sender",
                   ref);
        return -1;
    }
    const char *p[] = {ref, req->session.agent, a->reply_id ? text : a->text, a->key, ACTOR_CLIENT};
    res = wasl_pg_query(req->db->pg,
                        "SELECT status, done, notification_id"
                        "  FROM wasl_tickets_reply($1, $2, $3, $4, $5)",
                        5, p);
    if (!wasl_pg_arity(res, 3, "wasl_tickets_reply")) {
        PQclear(res);
        db_failed(reply, "reply");
        return -1;
    }
    int rc = -1;
    if (PQntuples(res) == 0) {
        desk_error(reply, 404, "not_found", "ref", "no ticket %s", ref);
    } else if (PQgetisnull(res, 0, 1)) {
        desk_error(reply, 409, "wrong_state", "ref", "ticket %s is %s: cannot reply", ref,
                   PQgetvalue(res, 0, 0));
    } else {
        bool dup = PQgetisnull(res, 0, 2);
        reply->status = 200;
        reply->body =
            json_pack("{s:s, s:s, s:o, s:b, s:s}", "ticket", ref, "done", "reply", "notification",
                      dup ? json_null() : json_integer(strtoll(PQgetvalue(res, 0, 2), NULL, 10)),
                      "duplicate", dup, "text", a->reply_id ? text : a->text);
        rc = 0;
    }
    PQclear(res);
    return rc;
}

static void reply_ticket(desk_req_t *req, const char *ref, json_t *doc, desk_reply_t *reply)
{
    reply_arg_t a;
    if (read_reply(req, doc, &a, reply) < 0) {
        return;
    }
    if (wasl_pg_begin(req->db->pg) < 0) {
        db_failed(reply, "reply");
    } else if (run_reply(req, ref, &a, reply) == 0) {
        if (wasl_pg_commit(req->db->pg) < 0) {
            json_decref(reply->body);
            reply->body = NULL;
            db_failed(reply, "reply commit");
        } else {
            wasl_info("desk: replied", "{s:s, s:s, s:b}", "ticket", ref, "agent",
                      req->session.agent, "duplicate",
                      json_is_true(json_object_get(reply->body, "duplicate")));
        }
    } else {
        wasl_pg_rollback(req->db->pg);
    }
}

void desk_handle_ticket_post(desk_req_t *req, desk_reply_t *reply)
{
    char ref[REF_DIGITS + 1];
    const char *rest;
    if (path_ref(req, ref, &rest, reply) < 0) {
        return;
    }
    if (strcmp(rest, "/assign") == 0) { /* a supervisor's act: supervise.c */
        desk_handle_ticket_assign(req, reply);
        return;
    }
    /* The paths are intake's (POST /v1/tickets/{ref}/notes, /transfer, /resolve). */
    const char *what = strcmp(rest, "/notes") == 0                    ? "note"
                       : rest[0] == '/' && strcmp(rest, "/note") != 0 ? rest + 1
                                                                      : "";
    json_t *doc = desk_body_json(req, reply);
    if (doc && strcmp(what, "reply") == 0) {
        reply_ticket(req, ref, doc, reply);
        json_decref(doc);
        return;
    }
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

/* ---- for the collision warning (viewers.c) ---------------------------------------------- */

PGresult *desk_ticket_readable(desk_req_t *req, const char *ref, desk_reply_t *reply)
{
    return ticket_decide(req, ref,
                         DECIDE_COLUMNS ", (SELECT g.name FROM agents g WHERE g.id = $2)"
                                        " FROM tickets t WHERE t.ref = $1",
                         WASL_AUTHZ_RESOLVE, 3, reply);
}
