/* sms — POST|GET /v1/sms/inbound: Kannel get-url/post-url style or JSON; threads by number. */
#include "handlers.h"
#include "wasl_log.h"
#include "wasl_text.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unicode/ucnv.h>

#define SMS_ID_MAX    256
#define SMS_FIELD_MAX 64

typedef struct {
    char *from; /* E.164 */
    char *id;
    long thread_hours;
} sms_arg_t;

static void sms_arg_free(void *p)
{
    sms_arg_t *a = p;
    if (a) {
        free(a->from);
        free(a->id);
        free(a);
    }
}

/* UCS-2 / UTF-16BE bytes (Kannel coding=2) to a new UTF-8 string; NULL when not convertible. */
static char *utf16be_to_utf8(const char *in, size_t len)
{
    if (len % 2 != 0) {
        return NULL;
    }
    size_t cap = len * 2 + 1; /* every UTF-16 unit becomes at most 3 bytes: 2 bytes in */
    char *out = malloc(cap);
    if (!out) {
        return NULL;
    }
    UErrorCode err = U_ZERO_ERROR;
    int32_t n = ucnv_convert("UTF-8", "UTF-16BE", out, (int32_t)cap - 1, in, (int32_t)len, &err);
    if (U_FAILURE(err) || n < 0) {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    if (!wasl_utf8_valid(out, (size_t)n, false)) {
        free(out);
        return NULL;
    }
    return out;
}

static int sms_txn(intake_job_t *job, intake_writer_t *w, wasl_pg_t *pg, intake_reply_t *reply)
{
    sms_arg_t *a = job->arg;
    intake_contact_t *c = &job->contact;
    const char *lock_params[] = {a->from};
    PGresult *res = intake_sql(
        pg, "SELECT pg_advisory_xact_lock(hashtextextended('sms:' || $1, 0))", 1, lock_params);
    if (!res) {
        return -1;
    }
    PQclear(res);
    /* The same SMS again (the gateway retried): its ticket, whether new or threaded then. */
    char ref[16];
    int known = intake_inbound_ticket(pg, "sms", a->id, c->client_id, ref);
    if (known != 0) {
        if (known > 0) {
            reply->status = 200;
            reply->body =
                json_pack("{s:s, s:s, s:b}", "ticket", ref, "status", "received", "duplicate", 1);
        }
        return known > 0 ? 0 : -1;
    }
    /* STOP, START or a survey score: recorded by notify_in, no ticket. */
    int hooked = intake_notify_sms_reply(pg, a->from, c->body, reply);
    if (hooked != 0) {
        return hooked < 0 ? -1 : 0;
    }
    char hours[16];
    snprintf(hours, sizeof hours, "%ld", a->thread_hours);
    const char *thread_params[] = {a->from, hours};
    res = intake_sql(pg,
                     "SELECT id, ref FROM tickets WHERE from_phone = $1 AND status <> 'closed' "
                     "AND auto_submitted IS NULL "
                     "AND updated_at > now() - make_interval(hours => $2::int) "
                     "ORDER BY updated_at DESC LIMIT 1",
                     2, thread_params);
    if (!res) {
        return -1;
    }
    if (PQntuples(res) > 0) {
        int rc = intake_append_message(pg, PQgetvalue(res, 0, 0), c, a->id);
        if (rc == 0) {
            reply->status = 200;
            reply->body = json_pack("{s:s, s:s, s:b}", "ticket", PQgetvalue(res, 0, 1), "status",
                                    "threaded", "duplicate", 0);
        }
        PQclear(res);
        return rc;
    }
    PQclear(res);
    intake_ticket_t t;
    int rc = intake_writer_create(w, c, 1, &t);
    if (rc < 0) {
        return rc;
    }
    reply->status = t.created ? 201 : 200;
    reply->body = json_pack("{s:s, s:s, s:b}", "ticket", t.ref, "status", "received", "duplicate",
                            !t.created);
    return 0;
}

void intake_handle_sms(intake_request_t *req, intake_reply_t *reply)
{
    intake_form_t form = {0};
    json_t *doc = NULL;
    const char *from = NULL, *to = NULL, *text = NULL, *id = NULL, *charset = NULL, *coding = NULL;
    size_t text_len = 0;
    char *decoded = NULL;
    intake_job_t *job = NULL;
    bool is_get = strcmp(req->method, "GET") == 0;
    if (is_get || strcmp(req->content_type, "application/x-www-form-urlencoded") == 0) {
        if (!is_get && intake_form_parse(&form, req->body, req->len) < 0) {
            intake_error(reply, 400, "invalid_field", NULL, "malformed form encoding");
            goto done;
        }
#define ARG(name, lenp)                                                                            \
    (is_get ? intake_query(req, name, lenp) : intake_form_get(&form, name, lenp))
        from = ARG("from", NULL);
        to = ARG("to", NULL);
        text = ARG("text", &text_len);
        id = ARG("id", NULL);
        charset = ARG("charset", NULL);
        coding = ARG("coding", NULL);
#undef ARG
    } else if (strcmp(req->content_type, "application/json") == 0) {
        doc = intake_body_json(req, reply);
        if (!doc || intake_json_str(doc, "from", "from", true, SMS_FIELD_MAX, &from, reply) < 0 ||
            intake_json_str(doc, "to", "to", false, SMS_FIELD_MAX, &to, reply) < 0 ||
            intake_json_str(doc, "text", "text", true, (size_t)req->cfg->body_max, &text, reply) <
                0 ||
            intake_json_str(doc, "id", "id", true, SMS_ID_MAX, &id, reply) < 0 ||
            intake_json_str(doc, "charset", "charset", false, SMS_FIELD_MAX, &charset, reply) < 0) {
            goto done;
        }
        text_len = text ? strlen(text) : 0;
        json_t *cj = json_object_get(doc, "coding");
        coding = json_is_integer(cj) && json_integer_value(cj) == 2 ? "2" : NULL;
    } else {
        intake_error(reply, 415, "unsupported_media_type", NULL,
                     "send a query string, application/x-www-form-urlencoded or JSON");
        goto done;
    }
    const char *missing = !from || !*from ? "from" : !text ? "text" : !id || !*id ? "id" : NULL;
    if (missing) {
        intake_error(reply, 400, "missing_field", missing, "%s is required", missing);
        goto done;
    }
    if (strlen(id) > SMS_ID_MAX) {
        intake_error(reply, 400, "invalid_field", "id", "id is longer than %d bytes", SMS_ID_MAX);
        goto done;
    }
    bool ucs2 =
        (coding && strcmp(coding, "2") == 0) ||
        (charset && (strcasecmp(charset, "UTF-16BE") == 0 || strcasecmp(charset, "UCS-2") == 0 ||
                     strcasecmp(charset, "UTF-16") == 0));
    if (ucs2) {
        decoded = utf16be_to_utf8(text, text_len);
        if (!decoded) {
            intake_error(reply, 400, "invalid_field", "text", "text is not valid UCS-2/UTF-16BE");
            goto done;
        }
        text = decoded;
        text_len = strlen(decoded);
    } else if (!wasl_utf8_valid(text, text_len, false)) {
        intake_error(reply, 400, "invalid_utf8", "text", "text is not valid UTF-8");
        goto done;
    }
    if (text_len > (size_t)req->cfg->body_max) {
        intake_error(reply, 413, "too_large", "text", "text is longer than %ld bytes",
                     req->cfg->body_max);
        goto done;
    }
    job = intake_txn_job(req, "sms", sms_txn, sizeof(sms_arg_t), sms_arg_free, reply);
    if (!job) {
        goto done;
    }
    sms_arg_t *a = job->arg;
    a->thread_hours = req->cfg->sms_thread_h;
    intake_contact_t *c = &job->contact;
    if (intake_norm_phone(from, "from", req->cfg, &c->from_phone, reply) < 0) {
        goto done;
    }
    if (intake_strset(&a->from, c->from_phone) < 0 || intake_strset(&a->id, id) < 0 ||
        intake_strset(&c->channel, "sms") < 0 || intake_strset(&c->external_id, id) < 0 ||
        intake_strset(&c->body, text) < 0 || intake_strset(&c->client_id, req->client.id) < 0) {
        intake_error(reply, 503, "unavailable", NULL, "out of memory");
        goto done;
    }
    if (to) {
        c->event_data = json_pack("{s:s}", "to", to);
    }
    req->job = job;
    job = NULL;
done:
    intake_job_release(&job);
    intake_form_clear(&form);
    json_decref(doc);
    free(decoded);
}
