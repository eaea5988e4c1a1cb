/* notify_in — intake's side of the notifier: SMS delivery reports (GET|POST /v1/sms/dlr) and
 * replies to our SMS that are not contacts: STOP / «إيقاف» (opt-out), START (opt back in) and a
 * survey score 1–5 (any digits) within the survey window. */
#include "handlers.h"
#include "wasl_log.h"
#include "wasl_text.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DLR_FIELD_MAX  256
#define CSAT_WINDOW_H  "72" /* a score counts when it comes within 3 days of the survey */
#define REPLY_WORD_MAX 64

/* ---- delivery reports ---------------------------------------------------------------------- */

typedef struct {
    char *nid;         /* our notification id (Kannel dlr-url), or NULL */
    char *provider_id; /* the webhook provider's id, or NULL */
    char *status;      /* delivered|failed|buffered|submitted|rejected|<provider word> */
} dlr_arg_t;

static void dlr_arg_free(void *p)
{
    dlr_arg_t *a = p;
    if (a) {
        free(a->nid);
        free(a->provider_id);
        free(a->status);
        free(a);
    }
}

/* Kannel's dlr-mask values (the %d of dlr-url) as words; other words are kept lower-cased. */
static const char *dlr_word(const char *s)
{
    static const char *const kannel[][2] = {{"1", "delivered"},
                                            {"2", "failed"},
                                            {"4", "buffered"},
                                            {"8", "submitted"},
                                            {"16", "rejected"}};
    for (size_t i = 0; i < sizeof kannel / sizeof kannel[0]; i++) {
        if (strcmp(kannel[i][0], s) == 0) {
            return kannel[i][1];
        }
    }
    return NULL;
}

/* A final report (delivered, failed, rejected) is never replaced by an interim one that arrives
 * late (buffered, submitted): reports come in any order (wasl_notifications_delivery_report,
 * proto/functions/notifications.sql). */
static int dlr_txn(intake_job_t *job, intake_writer_t *w, wasl_pg_t *pg, intake_reply_t *reply)
{
    (void)w;
    dlr_arg_t *a = job->arg;
    const char *params[] = {a->nid, a->provider_id, a->status};
    enum { DLR_ID, DLR_STATUS, DLR_NCOLS };
    PGresult *res = intake_sql(pg,
                               "SELECT notification_id, dlr_status"
                               "  FROM wasl_notifications_delivery_report($1::bigint, $2, $3)",
                               3, params);
    if (!wasl_pg_arity(res, DLR_NCOLS, "wasl_notifications_delivery_report")) {
        PQclear(res);
        return -1;
    }
    if (PQntuples(res) == 0) {
        intake_error(reply, 404, "not_found", a->nid ? "nid" : "id",
                     "no SMS notification with this id");
    } else {
        reply->status = 200;
        reply->body = json_pack("{s:I, s:s}", "notification",
                                (json_int_t)strtoll(PQgetvalue(res, 0, DLR_ID), NULL, 10),
                                "dlr_status", PQgetvalue(res, 0, DLR_STATUS));
    }
    PQclear(res);
    return 0;
}

void intake_handle_sms_dlr(intake_request_t *req, intake_reply_t *reply)
{
    intake_form_t form = {0};
    json_t *doc = NULL;
    const char *nid = NULL, *pid = NULL, *status = NULL;
    char nidbuf[24];
    intake_job_t *job = NULL;
    bool is_get = strcmp(req->method, "GET") == 0;
    if (is_get || strcmp(req->content_type, "application/x-www-form-urlencoded") == 0) {
        if (!is_get && intake_form_parse(&form, req->body, req->len) < 0) {
            intake_error(reply, 400, "invalid_field", NULL, "malformed form encoding");
            goto done;
        }
        nid = is_get ? intake_query(req, "nid", NULL) : intake_form_get(&form, "nid", NULL);
        pid = is_get ? intake_query(req, "id", NULL) : intake_form_get(&form, "id", NULL);
        status =
            is_get ? intake_query(req, "status", NULL) : intake_form_get(&form, "status", NULL);
    } else if (strcmp(req->content_type, "application/json") == 0) {
        doc = intake_body_json(req, reply);
        json_t *n = doc ? json_object_get(doc, "notification_id") : NULL;
        if (!doc || intake_json_str(doc, "id", "id", false, DLR_FIELD_MAX, &pid, reply) < 0 ||
            intake_json_str(doc, "status", "status", true, DLR_FIELD_MAX, &status, reply) < 0) {
            goto done;
        }
        if (json_is_integer(n)) {
            snprintf(nidbuf, sizeof nidbuf, "%lld", (long long)json_integer_value(n));
            nid = nidbuf;
        }
    } else {
        intake_error(reply, 415, "unsupported_media_type", NULL,
                     "send a query string, application/x-www-form-urlencoded or JSON");
        goto done;
    }
    if ((!nid || !*nid) && (!pid || !*pid)) {
        intake_error(reply, 400, "missing_field", "nid", "nid (or id) is required");
        goto done;
    }
    long long n = 0;
    if (nid && *nid && (wasl_parse_number(nid, &n) < 0 || n <= 0)) {
        intake_error(reply, 400, "invalid_field", "nid", "nid is not a notification id");
        goto done;
    }
    if (!status || !*status || strlen(status) > DLR_FIELD_MAX ||
        !wasl_utf8_valid(status, strlen(status), false)) {
        intake_error(reply, 400, "missing_field", "status", "status is required");
        goto done;
    }
    if (pid && (strlen(pid) > DLR_FIELD_MAX || !wasl_utf8_valid(pid, strlen(pid), false))) {
        intake_error(reply, 400, "invalid_field", "id", "id is not valid");
        goto done;
    }
    char word[DLR_FIELD_MAX + 1];
    const char *kw = dlr_word(status);
    size_t i = 0;
    for (const char *s = kw ? kw : status; *s && i < DLR_FIELD_MAX; s++) {
        word[i++] = (char)tolower((unsigned char)*s);
    }
    word[i] = '\0';
    job = intake_txn_job(req, "sms_dlr", dlr_txn, sizeof(dlr_arg_t), dlr_arg_free, reply);
    if (!job) {
        goto done;
    }
    dlr_arg_t *a = job->arg;
    char nid_text[24] = "";
    if (nid && *nid) {
        snprintf(nid_text, sizeof nid_text, "%lld", n);
    }
    if (intake_strset(&a->nid, *nid_text ? nid_text : NULL) < 0 ||
        intake_strset(&a->provider_id, pid && *pid ? pid : NULL) < 0 ||
        intake_strset(&a->status, word) < 0) {
        intake_error(reply, 503, "unavailable", NULL, "out of memory");
        goto done;
    }
    req->job = job;
    job = NULL;
done:
    intake_job_release(&job);
    intake_form_clear(&form);
    json_decref(doc);
}

/* ---- replies to our SMS -------------------------------------------------------------------- */

/* The message without surrounding white space, bidi marks and final punctuation, lower-cased
 * (ASCII), into out. */
static void reply_word(const char *text, char *out, size_t cap)
{
    static const char *const strip[] = {
        "\xe2\x80\x8e", "\xe2\x80\x8f", "\xd8\x9c", ".", "!", "\xd8\x8c", " ", "\t", "\r", "\n"};
    size_t len = strlen(text);
    const char *s = text;
    bool changed = true;
    while (changed) {
        changed = false;
        for (size_t i = 0; i < sizeof strip / sizeof strip[0]; i++) {
            size_t n = strlen(strip[i]);
            if (len >= n && memcmp(s, strip[i], n) == 0) {
                s += n, len -= n, changed = true;
            }
            if (len >= n && memcmp(s + len - n, strip[i], n) == 0) {
                len -= n, changed = true;
            }
        }
    }
    if (len >= cap) {
        out[0] = '\0';
        return;
    }
    for (size_t i = 0; i < len; i++) {
        out[i] = (char)tolower((unsigned char)s[i]);
    }
    out[len] = '\0';
}

static bool in_list(const char *word, const char *const *list)
{
    for (size_t i = 0; list[i]; i++) {
        if (strcmp(word, list[i]) == 0) {
            return true;
        }
    }
    return false;
}

int intake_notify_sms_reply(wasl_pg_t *pg, const char *from, const char *text,
                            intake_reply_t *reply)
{
    static const char *const stop_words[] = {"stop",           "unsubscribe",    "إيقاف",
                                             "ايقاف",          "أيقاف",          "توقف",
                                             "الغاء الاشتراك", "إلغاء الاشتراك", NULL};
    static const char *const start_words[] = {"start", "subscribe", "تفعيل", "اشتراك", NULL};
    if (!from || !text) {
        return 0;
    }
    char word[REPLY_WORD_MAX];
    reply_word(text, word, sizeof word);
    if (!*word) {
        return 0;
    }
    const char *p1[] = {from};
    if (in_list(word, stop_words) || in_list(word, start_words)) {
        bool stop = in_list(word, stop_words);
        PGresult *res =
            intake_sql(pg,
                       stop ? "INSERT INTO opt_outs (channel, address, source)"
                              " VALUES ('sms', $1, 'reply') ON CONFLICT DO NOTHING"
                            : "DELETE FROM opt_outs WHERE channel = 'sms' AND address = $1",
                       1, p1);
        if (!res) {
            return -1;
        }
        PQclear(res);
        wasl_info(stop ? "intake: SMS opt-out" : "intake: SMS opt-in", "{s:s}", "phone", from);
        reply->status = 200;
        reply->body = json_pack("{s:s}", "status", stop ? "opted_out" : "opted_in");
        return 1;
    }
    long long score = 0;
    if (wasl_parse_number(word, &score) < 0 || score < 1 || score > 5) {
        return 0;
    }
    PGresult *res = intake_sql(
        pg,
        "SELECT n.ticket_id, t.ref FROM notifications n JOIN tickets t ON t.id = n.ticket_id"
        " WHERE n.channel = 'sms' AND n.recipient = $1 AND n.state = 'sent'"
        "   AND (n.template = 'survey' OR n.kind = 'survey')"
        "   AND n.sent_at > now() - make_interval(hours => " CSAT_WINDOW_H ")"
        " ORDER BY n.sent_at DESC LIMIT 1",
        1, p1);
    if (!res) {
        return -1;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        return 0; /* a digit with no survey pending: an ordinary message */
    }
    char score_text[8];
    snprintf(score_text, sizeof score_text, "%lld", score);
    const char *p2[] = {PQgetvalue(res, 0, 0), score_text, from};
    PGresult *ins = intake_sql(
        pg,
        "WITH c AS (INSERT INTO csat (ticket_id, score, channel, sender)"
        "  VALUES ($1::bigint, $2::int, 'sms', $3) ON CONFLICT (ticket_id) DO UPDATE"
        "  SET score = excluded.score, received_at = now(), sender = excluded.sender"
        "  RETURNING ticket_id)"
        " INSERT INTO ticket_events (ticket_id, kind, actor, data)"
        " SELECT ticket_id, 'csat.received', 'intake', jsonb_build_object('score', $2::int,"
        "   'channel', 'sms') FROM c",
        3, p2);
    if (!ins) {
        PQclear(res);
        return -1;
    }
    PQclear(ins);
    reply->status = 200;
    reply->body = json_pack("{s:s, s:s, s:I}", "ticket", PQgetvalue(res, 0, 1), "status", "csat",
                            "score", (json_int_t)score);
    PQclear(res);
    return 1;
}
