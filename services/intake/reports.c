/* reports — POST /v1/reports (a ticket per report) and GET /v1/tickets/{ref} (its status). */
#include "handlers.h"
#include "wasl_ref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXTERNAL_ID_MAX 256
#define SUBJECT_MAX     2048
#define NAME_MAX_BYTES  200
#define EMPLOYEE_ID_MAX 32

/* The channels a report may claim, and the scope a client needs to claim each. A report's
 * external_id is keyed on its client and channel (migration 0011); claiming "phone", "sms" or
 * "email" — a contact that came through a gateway — is the gateway's right, not a portal's:
 * otherwise a portal could speak for a call or a message it never carried. */
static const struct {
    const char *word;
    unsigned scope; /* 0: any client with `reports` */
} report_channels[] = {
    {"web", 0},
    {"api", 0},
    {"email", INTAKE_SCOPE_EMAIL},
    {"sms", INTAKE_SCOPE_SMS},
    {"phone", INTAKE_SCOPE_CALLS},
};

/* Checks that `client` may file a report on `channel`. Returns 0, or -1 with a 400 (unknown
 * channel) or a 403 (a gateway's channel without its scope) naming `channel` in reply. */
static int check_channel(const char *channel, const intake_client_t *client, intake_reply_t *reply)
{
    for (size_t i = 0; i < sizeof report_channels / sizeof report_channels[0]; i++) {
        if (strcmp(channel, report_channels[i].word) != 0) {
            continue;
        }
        unsigned need = report_channels[i].scope;
        if (need && !(client->scopes & need)) {
            intake_error(reply, 403, "forbidden", "channel",
                         "this client may not file reports on channel %s (it is not a %s "
                         "gateway); use web or api",
                         channel, channel);
            return -1;
        }
        return 0;
    }
    intake_error(reply, 400, "invalid_field", "channel",
                 "channel must be one of web, api, email, sms, phone");
    return -1;
}

/* Reads the optional `from` object into the contact. */
static int read_person(json_t *doc, const intake_config_t *cfg, intake_contact_t *c,
                       intake_reply_t *reply)
{
    json_t *from = json_object_get(doc, "from");
    if (!from || json_is_null(from)) {
        return 0;
    }
    if (!json_is_object(from)) {
        intake_error(reply, 400, "invalid_field", "from", "from must be an object");
        return -1;
    }
    const char *name, *phone, *email, *nid, *emp;
    if (intake_json_str(from, "name", "from.name", false, NAME_MAX_BYTES, &name, reply) < 0 ||
        intake_json_str(from, "phone", "from.phone", false, 64, &phone, reply) < 0 ||
        intake_json_str(from, "email", "from.email", false, 254, &email, reply) < 0 ||
        intake_json_str(from, "national_id", "from.national_id", false, 64, &nid, reply) < 0 ||
        intake_json_str(from, "employee_id", "from.employee_id", false, EMPLOYEE_ID_MAX, &emp,
                        reply) < 0) {
        return -1;
    }
    if (intake_strset(&c->from_name, name) < 0 || intake_strset(&c->from_employee_id, emp) < 0 ||
        intake_norm_phone(phone, "from.phone", cfg, &c->from_phone, reply) < 0 ||
        intake_norm_email(email, "from.email", &c->from_email, reply) < 0 ||
        intake_norm_digits(nid, "from.national_id", 10, "12", &c->from_national_id, reply) < 0) {
        return -1;
    }
    return 0;
}

void intake_handle_report(intake_request_t *req, intake_reply_t *reply)
{
    json_t *doc = intake_body_json(req, reply);
    if (!doc) {
        return;
    }
    const intake_config_t *cfg = req->cfg;
    intake_job_t *job = intake_job_new(INTAKE_JOB_TICKET, "reports", req->deadline_ms);
    if (!job) {
        intake_error(reply, 503, "unavailable", NULL, "out of memory");
        json_decref(doc);
        return;
    }
    intake_contact_t *c = &job->contact;
    const char *channel, *external_id, *subject, *body, *lang, *case_number, *received_at;
    if (intake_json_str(doc, "channel", "channel", false, 16, &channel, reply) < 0 ||
        intake_json_str(doc, "external_id", "external_id", true, EXTERNAL_ID_MAX, &external_id,
                        reply) < 0 ||
        intake_json_str(doc, "body", "body", true, (size_t)cfg->body_max, &body, reply) < 0 ||
        intake_json_str(doc, "subject", "subject", false, SUBJECT_MAX, &subject, reply) < 0 ||
        intake_json_str(doc, "lang", "lang", false, 8, &lang, reply) < 0 ||
        intake_json_str(doc, "case_number", "case_number", false, 64, &case_number, reply) < 0 ||
        intake_json_str(doc, "received_at", "received_at", false, 64, &received_at, reply) < 0) {
        goto refuse;
    }
    if (channel && check_channel(channel, &req->client, reply) < 0) {
        goto refuse;
    }
    if (lang && strcmp(lang, "ar") != 0 && strcmp(lang, "en") != 0) {
        intake_error(reply, 400, "invalid_field", "lang", "lang must be ar or en");
        goto refuse;
    }
    if (received_at && !intake_rfc3339_valid(received_at)) {
        intake_error(reply, 400, "invalid_field", "received_at",
                     "received_at must be an RFC 3339 time, e.g. 2026-11-28T09:41:02+03:00");
        goto refuse;
    }
    if (intake_strset(&c->channel, channel ? channel : "api") < 0 ||
        intake_strset(&c->external_id, external_id) < 0 || intake_strset(&c->body, body) < 0 ||
        intake_strset(&c->subject, subject) < 0 || intake_strset(&c->lang, lang) < 0 ||
        intake_strset(&c->received_at, received_at) < 0 ||
        intake_strset(&c->client_id, req->client.id) < 0 ||
        intake_norm_digits(case_number, "case_number", 10, NULL, &c->case_number, reply) < 0 ||
        read_person(doc, cfg, c, reply) < 0) {
        if (!reply->body) {
            intake_error(reply, 503, "unavailable", NULL, "out of memory");
        }
        goto refuse;
    }
    json_decref(doc);
    req->job = job; /* ownership: the server submits it */
    return;
refuse:
    json_decref(doc);
    intake_job_release(&job);
}

/* ---- GET /v1/tickets/{ref} -------------------------------------------------------------- */

static json_t *maybe(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

/* Events the client's view never lists. An automatic case answer goes to a party's contact on
 * file, not to whoever filed the report: if the view showed it, the ticket would tell a
 * submitter whether the ID or phone they typed belongs to a party of the case. The ticket's
 * status, queue and times do not depend on it either (the router routes it as usual). */
#define TICKET_VIEW_HIDDEN_EVENTS "{auto_answered}"
/* Nor the sending of what went to someone else than the submitter (the answer's SMS or
 * e-mail): its notification events would count the messages. */
#define TICKET_VIEW_HIDDEN_TEMPLATES "{case_answer}"

#define TS_SQL(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* A ticket by reference, when the client may read it ($3: any client's; else its own). */
static const char *const ticket_view_sql =
    "SELECT id, ref, status, channel, category, priority, language, queue, " TS_SQL(
        "created_at") ", " TS_SQL("updated_at") " FROM tickets"
                                                " WHERE ref = $1 AND ($3::bool OR client_id = $2)";

/* What a ticket view asks for: the reference, and whose tickets the client may read. */
typedef struct {
    char ref[WASL_REF_LEN + 1];
    char client_id[sizeof(((intake_client_t *)0)->id)];
    bool read_all; /* tickets:read:all */
} ticket_view_arg_t;

static int ticket_view_txn(intake_job_t *job, intake_writer_t *w, wasl_pg_t *pg,
                           intake_reply_t *reply)
{
    (void)w;
    const ticket_view_arg_t *a = job->arg;
    /* Someone else's ticket is not found, exactly as a reference nobody holds: the answer says
     * nothing about which references exist. */
    const char *params[] = {a->ref, a->client_id, a->read_all ? "true" : "false"};
    PGresult *t = intake_sql(pg, ticket_view_sql, 3, params);
    if (!t) {
        return -1;
    }
    if (PQntuples(t) == 0) {
        PQclear(t);
        intake_error(reply, 404, "not_found", "ref", "no such ticket");
        return -1;
    }
    const char *id_params[] = {PQgetvalue(t, 0, 0), TICKET_VIEW_HIDDEN_EVENTS,
                               TICKET_VIEW_HIDDEN_TEMPLATES};
    PGresult *h =
        intake_sql(pg,
                   "SELECT " TS_SQL(
                       "at") ", kind, actor FROM ticket_events WHERE ticket_id = $1"
                             " AND kind <> ALL($2::text[]) AND (kind NOT LIKE 'notification.%'"
                             " OR coalesce(data->>'template', '') <> ALL($3::text[])) ORDER BY id",
                   3, id_params);
    if (!h) {
        PQclear(t);
        return -1;
    }
    json_t *history = json_array();
    for (int r = 0; r < PQntuples(h); r++) {
        json_array_append_new(history,
                              json_pack("{s:s, s:s, s:s}", "at", PQgetvalue(h, r, 0), "kind",
                                        PQgetvalue(h, r, 1), "actor", PQgetvalue(h, r, 2)));
    }
    reply->status = 200;
    reply->body = json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:s, s:o}", "ticket", PQgetvalue(t, 0, 1),
        "status", PQgetvalue(t, 0, 2), "channel", PQgetvalue(t, 0, 3), "category", maybe(t, 0, 4),
        "priority", maybe(t, 0, 5), "language", maybe(t, 0, 6), "queue", maybe(t, 0, 7),
        "created_at", PQgetvalue(t, 0, 8), "updated_at", PQgetvalue(t, 0, 9), "history", history);
    PQclear(t);
    PQclear(h);
    return 0;
}

void intake_handle_ticket_get(intake_request_t *req, intake_reply_t *reply)
{
    char ref[WASL_REF_LEN + 1];
    wasl_ref_status_t st = wasl_ref_parse(req->path_arg ? req->path_arg : "", ref);
    if (st != WASL_REF_OK) {
        intake_error(reply, 400, "invalid_reference", "ref", "%s", wasl_ref_strerror(st));
        return;
    }
    intake_job_t *job =
        intake_txn_job(req, "tickets", ticket_view_txn, sizeof(ticket_view_arg_t), free, reply);
    if (!job) {
        return;
    }
    ticket_view_arg_t *a = job->arg;
    snprintf(a->ref, sizeof a->ref, "%s", ref);
    snprintf(a->client_id, sizeof a->client_id, "%s", req->client.id);
    a->read_all = (req->client.scopes & INTAKE_SCOPE_TICKETS_READ_ALL) != 0;
    req->job = job;
}
