/* reports — POST /v1/reports (a ticket per report) and GET /v1/tickets/{ref} (its status). */
#include "handlers.h"
#include "wasl_ref.h"

#include <stdlib.h>
#include <string.h>

#define EXTERNAL_ID_MAX 256
#define SUBJECT_MAX     2048
#define NAME_MAX_BYTES  200
#define EMPLOYEE_ID_MAX 32

static const char *const report_channels[] = {"web", "api", "email", "sms", "phone", NULL};

static bool one_of(const char *value, const char *const *words)
{
    for (; *words; words++) {
        if (strcmp(value, *words) == 0) {
            return true;
        }
    }
    return false;
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
    if (channel && !one_of(channel, report_channels)) {
        intake_error(reply, 400, "invalid_field", "channel",
                     "channel must be one of web, api, email, sms, phone");
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

static int ticket_view_txn(intake_job_t *job, intake_writer_t *w, wasl_pg_t *pg,
                           intake_reply_t *reply)
{
    (void)w;
    const char *params[] = {job->arg};
    PGresult *t = intake_sql(
        pg,
        "SELECT id, ref, status, channel, category, priority, language, "
        "queue, " TS_SQL("created_at") ", " TS_SQL("updated_at") " FROM tickets WHERE ref = $1",
        1, params);
    if (!t) {
        return -1;
    }
    if (PQntuples(t) == 0) {
        PQclear(t);
        intake_error(reply, 404, "not_found", "ref", "no ticket %s", (const char *)job->arg);
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
    intake_job_t *job = intake_job_new(INTAKE_JOB_TXN, "tickets", req->deadline_ms);
    if (!job || !(job->arg = strdup(ref))) {
        intake_job_release(&job);
        intake_error(reply, 503, "unavailable", NULL, "out of memory");
        return;
    }
    job->arg_free = free;
    job->txn = ticket_view_txn;
    req->job = job;
}
