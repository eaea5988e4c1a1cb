/* tickets — "my work", the ticket view, note, transfer and resolve (see tickets.h). */
#include "tickets.h"
#include "casepanel.h"
#include "supervise.h"
#include "viewers.h"
#include "calls.h"
#include "idempotency.h"
#include "wasl_authz.h"
#include "wasl_domain.h"
#include "wasl_log.h"
#include "wasl_ref.h"

#include <dirent.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REF_DIGITS 10
/* Intake's limits, which integrations were written against. */
#define NOTE_MAX       10000
#define REASON_MAX     500
#define RESOLUTION_MAX 2000
#define QUEUE_MAX      64
#define WRAPUP_MAX     64
#define MY_TICKETS_MAX "200"
#define TS(col)        "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

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
        desk_db_failed(reply, "my_tickets");
        return;
    }
    json_t *list = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    if (!list) {
        desk_db_failed(reply, "my_tickets json");
        return;
    }
    reply->status = 200;
    reply->body = json_pack("{s:s, s:o}", "agent", req->session.agent, "tickets", list);
}

/* ---- authorization ----------------------------------------------------------------------- */

/* The decision for `ref`, acting as `agent`, from its assignee and whether the agent serves its
 * queue, read by `sql` ($1 ref, $2 agent; columns assignee, in_queue, then anything). NULL with
 * the reply set (403, then 404, 503: a principal learns nothing of tickets it may not act on for
 * an agent it is not bound to), else the result (the caller clears it). */
static PGresult *ticket_decide(desk_req_t *req, const char *ref, const char *agent, const char *sql,
                               wasl_authz_action_t action, int ncols, desk_reply_t *reply)
{
    const char *p[] = {ref, agent};
    PGresult *res = wasl_pg_query(req->db->pg, sql, 2, p);
    if (!wasl_pg_arity(res, ncols, "desk ticket")) {
        PQclear(res);
        desk_db_failed(reply, "ticket");
        return NULL;
    }
    bool found = PQntuples(res) == 1;
    wasl_authz_principal_t who = desk_principal_authz(req);
    wasl_authz_facts_t facts = {
        .actor = agent,
        .actor_field = req->principal.kind == DESK_PRINCIPAL_TOKEN ? "agent" : "ref",
        .missing = !found,
        .assignee = found && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : NULL,
        .in_queue = found && strcmp(PQgetvalue(res, 0, 1), "t") == 0,
    };
    wasl_authz_decision_t d = wasl_authz_decide(&who, action, &facts);
    if (!d.allowed) {
        desk_refused(req, &d, ref, reply);
    } else if (!found) {
        desk_error(reply, 404, "not_found", "ref", "no ticket %s", ref);
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

/* The path's reference (10 digits with a valid check digit: wasl_ref_parse), then the rest. 0,
 * or -1 with a 400 invalid_reference naming ref. */
static int path_ref(const desk_req_t *req, char ref[REF_DIGITS + 1], const char **rest,
                    desk_reply_t *reply)
{
    char raw[64]; /* a reference as typed: digits of any script, separators */
    size_t len = strcspn(req->path_arg, "/");
    *rest = req->path_arg + len;
    snprintf(raw, sizeof raw, "%.*s", (int)(len < sizeof raw - 1 ? len : sizeof raw - 1),
             req->path_arg);
    wasl_ref_status_t st = len < sizeof raw - 1 ? wasl_ref_parse(raw, ref) : WASL_REF_BAD_LENGTH;
    if (st != WASL_REF_OK) {
        desk_error(reply, 400, "invalid_reference", "ref", "%s", wasl_ref_strerror(st));
        return -1;
    }
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
    "         'other_tickets', " DESK_PHONE_TICKETS_JSON("t.from_phone", "t.id", "$2") ","
    "         'history', (SELECT coalesce(json_agg(json_build_object("
    "               'kind', e.kind, 'actor', e.actor, 'data', e.data,"
    "               'at', " TS("e.at") ") ORDER BY e.id), '[]')"
    "             FROM ticket_events e WHERE e.ticket_id = t.id))::text"
    "  FROM tickets t"
    " WHERE t.ref = $1";
// clang-format on

/* The entities' national/resident IDs masked as every identifier is (wasl_mask_id): the console
 * shows what the text named, not an ID to copy. Other kinds pass as they are. */
static void mask_national_ids(json_t *doc)
{
    json_t *ids = json_object_get(json_object_get(doc, "entities"), "national_id");
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        char masked[64];
        if (json_is_string(v)) {
            wasl_mask_id(json_string_value(v), masked, sizeof masked);
            json_string_set(v, masked);
        }
    }
}

void desk_handle_ticket_get(desk_req_t *req, desk_reply_t *reply)
{
    char ref[REF_DIGITS + 1];
    const char *rest;
    if (path_ref(req, ref, &rest, reply) < 0) {
        return;
    }
    if (strcmp(rest, "/case") == 0) {
        desk_case_get(req, ref, reply);
        return;
    }
    if (*rest != '\0') {
        desk_error(reply, 404, "not_found", NULL, "GET /v1/tickets/{ref} or /case");
        return;
    }
    /* Reading is decided as acting is: the assignee, or a queue member while unassigned. */
    PGresult *res =
        ticket_decide(req, ref, req->principal.id, VIEW_SQL, WASL_AUTHZ_TICKET_VIEW, 3, reply);
    if (!res) {
        return;
    }
    json_t *doc = json_loads(PQgetvalue(res, 0, 2), 0, NULL);
    PQclear(res);
    if (!doc) {
        desk_db_failed(reply, "ticket json");
        return;
    }
    mask_national_ids(doc);
    /* Who else has it open (the collision warning). */
    json_object_set_new(doc, "viewers", desk_viewers_of_ticket(req, ref));
    json_object_set_new(doc, "category_label",
                        desk_category_label(json_string_value(json_object_get(doc, "category"))));
    /* The priority in words too (the classification block), from the same one source. */
    const char *prio = json_string_value(json_object_get(doc, "priority"));
    const char *pa = prio ? wasl_priority_label(prio, "ar") : NULL;
    const char *pe = prio ? wasl_priority_label(prio, "en") : NULL;
    json_object_set_new(doc, "priority_label",
                        pa && pe ? json_pack("{s:s, s:s}", "ar", pa, "en", pe) : json_null());
    wasl_authz_principal_t who = desk_principal_authz(req);
    desk_phone_tickets_shown(json_object_get(doc, "other_tickets"), &who, req->principal.id);
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
    const char *ref;
    const char *what;   /* note, transfer, resolve, reopen */
    const char *agent;  /* the agent acting (desk_actor) */
    const char *text;   /* note: the text; transfer: the queue; resolve: the resolution */
    const char *reason; /* transfer, reopen: why */
    const char *wrapup; /* resolve: the wrap-up code, NULL when a token gave none */
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
        desk_db_failed(reply, what);
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
        desk_db_failed(reply, "transfer");
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

/* The acting agent is an enabled agent (a token names it in the body; a person's may have been
 * disabled since sign-in). 0, or -1 with 404 naming "agent" / 503. */
static int actor_enabled(desk_req_t *req, const char *agent, desk_reply_t *reply)
{
    const char *p[] = {agent};
    PGresult *res =
        wasl_pg_query(req->db->pg, "SELECT 1 FROM agents WHERE id = $1 AND enabled", 1, p);
    if (!wasl_pg_arity(res, 1, "desk actor")) {
        PQclear(res);
        desk_db_failed(reply, "actor");
        return -1;
    }
    int n = PQntuples(res);
    PQclear(res);
    if (n == 0) {
        desk_error(reply, 404, "unknown_agent", "agent", "no enabled agent %s", agent);
        return -1;
    }
    return 0;
}

/* The wasl_authz action of a ticket action's name (one rule for all of them: an agent acts on
 * its own tickets and the unassigned ones of its queues, never a colleague's assigned one). */
static wasl_authz_action_t authz_action(const char *what)
{
    return strcmp(what, "transfer") == 0 ? WASL_AUTHZ_TRANSFER
           : strcmp(what, "reopen") == 0 ? WASL_AUTHZ_REOPEN
           : strcmp(what, "note") == 0   ? WASL_AUTHZ_NOTE
                                         : WASL_AUTHZ_RESOLVE;
}

/* Resolve: the function keeps the wrap-up code (tickets.wrapup_code and the 'resolved' event;
 * NULL when a token gave none) and enqueues the beneficiary's update and survey. */
static int run_resolve(desk_req_t *req, const char *ref, const action_arg_t *a,
                       desk_reply_t *reply)
{
    const char *p[] = {ref, a->agent, a->text, req->principal.client, a->wrapup};
    return function_result(wasl_pg_query(req->db->pg,
                                         "SELECT status, done"
                                         "  FROM wasl_tickets_resolve($1, $2, $3, $4, $5)",
                                         5, p),
                           ref, a->what, reply);
}

/* In the transaction: the ticket locked and the decision, then the function. 0 to commit. */
static int run_action(desk_req_t *req, const char *ref, const action_arg_t *a, desk_reply_t *reply)
{
    wasl_pg_t *pg = req->db->pg;
    const char *client = req->principal.client;
    PGresult *res = ticket_decide(req, ref, a->agent,
                                  DECIDE_COLUMNS " FROM tickets t WHERE t.ref = $1"
                                                 " FOR UPDATE OF t",
                                  authz_action(a->what), 2, reply);
    if (!res) {
        return -1;
    }
    PQclear(res);
    if (actor_enabled(req, a->agent, reply) < 0) {
        return -1;
    }
    if (strcmp(a->what, "note") == 0) {
        const char *p[] = {ref, a->agent, a->text, client};
        return function_result(
            wasl_pg_query(pg, "SELECT status, done FROM wasl_tickets_note($1, $2, $3, $4)", 4, p),
            ref, a->what, reply);
    }
    if (strcmp(a->what, "transfer") == 0) {
        const char *p[] = {ref, a->agent, a->text, a->reason, client};
        /* The ticket keeps waiting_since: it keeps its place in line. */
        return queue_served(req, a->text, reply) < 0
                   ? -1
                   : function_result(wasl_pg_query(pg,
                                                   "SELECT status, done FROM"
                                                   " wasl_tickets_transfer($1, $2, $3, $4, $5)",
                                                   5, p),
                                     ref, a->what, reply);
    }
    if (strcmp(a->what, "reopen") == 0) {
        const char *p[] = {ref, a->agent, a->reason, client};
        /* Routed again by the router (new SLA), at the ticket's original place in line. */
        return function_result(
            wasl_pg_query(pg, "SELECT status, done FROM wasl_tickets_reopen($1, $2, $3, $4)", 4, p),
            ref, a->what, reply);
    }
    return run_resolve(req, ref, a, reply);
}

/* Resolve's fields: a configured wrap-up code (required of a person, whose console always
 * offers the list; optional for a token, so that an integration written for intake's resolve
 * keeps working) and an optional resolution. 0, or -1 with a 400. */
static int read_resolve(desk_req_t *req, json_t *doc, action_arg_t *a, desk_reply_t *reply)
{
    bool person = req->principal.kind == DESK_PRINCIPAL_PERSON;
    json_t *w = json_object_get(doc, "wrapup");
    if ((person || (w && !json_is_null(w))) &&
        desk_str_field(doc, "wrapup", DESK_FIELD_REQUIRED | DESK_FIELD_NONBLANK, WRAPUP_MAX,
                       &a->wrapup, reply) < 0) {
        return -1;
    }
    if (desk_str_field(doc, "resolution", DESK_FIELD_OPTIONAL, RESOLUTION_MAX, &a->text, reply) <
        0) {
        return -1;
    }
    if (a->wrapup && !listed(req->cfg->wrapup_codes, a->wrapup)) {
        desk_error(reply, 400, "invalid_field", "wrapup",
                   "wrapup is one of the configured wrap-up codes (WASL_DESK_WRAPUP_CODES)");
        return -1;
    }
    if (!a->text) {
        a->text = "";
    }
    return 0;
}

/* The action's fields from the body: 0, or -1 with a 400. */
static int read_action(desk_req_t *req, json_t *doc, action_arg_t *a, desk_reply_t *reply)
{
    if (strcmp(a->what, "note") == 0) {
        return desk_str_field(doc, "text", DESK_FIELD_REQUIRED | DESK_FIELD_NONBLANK, NOTE_MAX,
                              &a->text, reply);
    }
    if (strcmp(a->what, "transfer") == 0) {
        if (desk_str_field(doc, "queue", DESK_FIELD_REQUIRED | DESK_FIELD_NONBLANK, QUEUE_MAX,
                           &a->text, reply) < 0 ||
            desk_str_field(doc, "reason", DESK_FIELD_OPTIONAL, REASON_MAX, &a->reason, reply) < 0) {
            return -1;
        }
        if (!wasl_name_ok(a->text)) {
            desk_error(reply, 400, "unknown_queue", "queue", "not a queue name");
            return -1;
        }
        return 0;
    }
    if (strcmp(a->what, "reopen") == 0) {
        return desk_str_field(doc, "reason", DESK_FIELD_OPTIONAL, REASON_MAX, &a->reason, reply);
    }
    return read_resolve(req, doc, a, reply);
}

/* The action in its transaction (and its Idempotency-Key's, desk_idempotency_run). */
static int action_txn(desk_req_t *req, void *arg, desk_reply_t *reply)
{
    const action_arg_t *a = arg;
    if (run_action(req, a->ref, a, reply) < 0) {
        return -1;
    }
    reply->status = 200;
    reply->body = json_pack("{s:s, s:s}", "ticket", a->ref, "done", a->what);
    return 0;
}

static void act(desk_req_t *req, const char *ref, const action_arg_t *a, desk_reply_t *reply)
{
    const char *fields[] = {a->what, ref, a->agent, a->text, a->reason, a->wrapup};
    if (desk_idempotency_run(req, fields, sizeof fields / sizeof fields[0], action_txn, (void *)a,
                             reply) == 0) {
        wasl_info("desk: ticket changed", "{s:s, s:s, s:s, s:s}", "ticket", ref, "action", a->what,
                  "agent", a->agent, "by", req->principal.id);
    }
}

/* ---- reply ------------------------------------------------------------------------------- */

typedef struct {
    const char *agent; /* the agent replying (desk_actor) */
    const char *text;
    const char *reply_id;
    /* The dedupe key's end: k:<key owner>:<Idempotency-Key>, or h:<hash of agent and text>. */
    char key[2 + sizeof(((desk_principal_t *)0)->key_owner) + 1 + DESK_IDEMPOTENCY_KEY_MAX + 1];
} reply_arg_t;

static int read_reply(desk_req_t *req, json_t *doc, reply_arg_t *a, desk_reply_t *reply)
{
    if (desk_str_field(doc, "text", DESK_FIELD_OPTIONAL, REPLY_TEXT_MAX, &a->text, reply) < 0 ||
        desk_str_field(doc, "reply_id", DESK_FIELD_OPTIONAL, REPLY_ID_MAX, &a->reply_id, reply) <
            0) {
        return -1;
    }
    if (!a->text == !a->reply_id || (a->text && a->text[strspn(a->text, " \t\r\n")] == '\0')) {
        desk_error(reply, 400, "invalid_field", a->text ? "text" : "reply_id",
                   "a reply has either a non-empty text or a reply_id");
        return -1;
    }
    const char *key;
    if (desk_idempotency_key(req, &key, reply) < 0) {
        return -1;
    }
    if (key) {
        /* Keys are their principal's: another's "same" key is another request. */
        snprintf(a->key, sizeof a->key, "k:%s:%s", req->principal.key_owner, key);
        return 0;
    }
    /* No key: the same agent sending the same text (or canned reply) sends it once. */
    unsigned char h[crypto_generichash_BYTES];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    const char *parts[] = {a->agent, a->text ? "t" : "r", a->text ? a->text : a->reply_id};
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
    PGresult *res = ticket_decide(req, ref, a->agent,
                                  DECIDE_COLUMNS ", coalesce(t.language, 'ar'),"
                                                 " coalesce(t.from_phone, t.from_email) IS NOT NULL"
                                                 " AND t.auto_submitted IS NULL"
                                                 " FROM tickets t WHERE t.ref = $1"
                                                 " FOR UPDATE OF t",
                                  WASL_AUTHZ_REPLY, R_NCOLS, reply);
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
    if (actor_enabled(req, a->agent, reply) < 0) {
        return -1;
    }
    const char *p[] = {ref, a->agent, a->reply_id ? text : a->text, a->key, req->principal.client};
    res = wasl_pg_query(req->db->pg,
                        "SELECT status, done, notification_id"
                        "  FROM wasl_tickets_reply($1, $2, $3, $4, $5)",
                        5, p);
    if (!wasl_pg_arity(res, 3, "wasl_tickets_reply")) {
        PQclear(res);
        desk_db_failed(reply, "reply");
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
    reply_arg_t a = {0};
    if (desk_actor(req, doc, &a.agent, reply) < 0 || read_reply(req, doc, &a, reply) < 0) {
        return;
    }
    if (wasl_pg_begin(req->db->pg) < 0) {
        desk_db_failed(reply, "reply");
    } else if (run_reply(req, ref, &a, reply) == 0) {
        if (wasl_pg_commit(req->db->pg) < 0) {
            json_decref(reply->body);
            reply->body = NULL;
            desk_db_failed(reply, "reply commit");
        } else {
            wasl_info("desk: replied", "{s:s, s:s, s:s, s:b}", "ticket", ref, "agent", a.agent,
                      "by", req->principal.id, "duplicate",
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
    static const char *const actions[] = {"note", "transfer", "resolve", "reopen"};
    /* The paths are intake's (POST /v1/tickets/{ref}/notes, /transfer, /resolve, /reopen). */
    action_arg_t a = {.ref = ref, .what = strcmp(rest, "/notes") == 0 ? "note" : NULL};
    for (size_t i = 1; !a.what && i < sizeof actions / sizeof actions[0]; i++) {
        a.what = rest[0] == '/' && strcmp(rest + 1, actions[i]) == 0 ? actions[i] : NULL;
    }
    bool replying = strcmp(rest, "/reply") == 0;
    if (!a.what && !replying) {
        desk_error(reply, 404, "not_found", NULL,
                   "POST /v1/tickets/{ref}/notes, /transfer, /resolve, /reopen or /reply");
        return;
    }
    json_t *doc = desk_body_json(req, reply);
    if (doc && replying) {
        reply_ticket(req, ref, doc, reply);
    } else if (doc && desk_actor(req, doc, &a.agent, reply) == 0 &&
               read_action(req, doc, &a, reply) == 0) {
        act(req, ref, &a, reply);
    }
    json_decref(doc);
}

/* ---- for the collision warning (viewers.c) ---------------------------------------------- */

PGresult *desk_ticket_readable(desk_req_t *req, const char *ref, desk_reply_t *reply)
{
    return ticket_decide(req, ref, req->principal.id,
                         DECIDE_COLUMNS ", (SELECT g.name FROM agents g WHERE g.id = $2)"
                                        " FROM tickets t WHERE t.ref = $1",
                         WASL_AUTHZ_TICKET_VIEW, 3, reply);
}

/* ---- for the case panel (casepanel.c) ---------------------------------------------------- */

PGresult *desk_ticket_case_readable(desk_req_t *req, const char *ref, desk_reply_t *reply)
{
    return ticket_decide(req, ref, req->principal.id,
                         DECIDE_COLUMNS ", t.case_number, t.from_national_id"
                                        " FROM tickets t WHERE t.ref = $1",
                         WASL_AUTHZ_TICKET_VIEW, 4, reply);
}
