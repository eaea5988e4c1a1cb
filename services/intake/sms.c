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

/* An inbound SMS's fields as the gateway sent them; borrowed from the request, its form or its
 * JSON document. */
typedef struct {
    const char *from, *to, *text, *id, *charset, *coding;
    size_t text_len;
} sms_fields_t;

/* Reads the fields from a Kannel-style query or form, or from JSON (which `form` and `*doc`
 * then hold). Returns 0, or -1 with `reply` set. */
static int sms_read(intake_request_t *req, intake_reply_t *reply, intake_form_t *form, json_t **doc,
                    sms_fields_t *f)
{
    memset(f, 0, sizeof *f);
    bool is_get = strcmp(req->method, "GET") == 0;
    if (is_get || strcmp(req->content_type, "application/x-www-form-urlencoded") == 0) {
        if (!is_get && intake_form_parse(form, req->body, req->len) < 0) {
            intake_error(reply, 400, "invalid_field", NULL, "malformed form encoding");
            return -1;
        }
#define ARG(name, lenp) (is_get ? intake_query(req, name, lenp) : intake_form_get(form, name, lenp))
        f->from = ARG("from", NULL);
        f->to = ARG("to", NULL);
        f->text = ARG("text", &f->text_len);
        f->id = ARG("id", NULL);
        f->charset = ARG("charset", NULL);
        f->coding = ARG("coding", NULL);
#undef ARG
        return 0;
    }
    if (strcmp(req->content_type, "application/json") != 0) {
        intake_error(reply, 415, "unsupported_media_type", NULL,
                     "send a query string, application/x-www-form-urlencoded or JSON");
        return -1;
    }
    *doc = intake_body_json(req, reply);
    if (!*doc || intake_json_str(*doc, "from", "from", true, SMS_FIELD_MAX, &f->from, reply) < 0 ||
        intake_json_str(*doc, "to", "to", false, SMS_FIELD_MAX, &f->to, reply) < 0 ||
        intake_json_str(*doc, "text", "text", true, (size_t)req->cfg->body_max, &f->text, reply) <
            0 ||
        intake_json_str(*doc, "id", "id", true, SMS_ID_MAX, &f->id, reply) < 0 ||
        intake_json_str(*doc, "charset", "charset", false, SMS_FIELD_MAX, &f->charset, reply) < 0) {
        return -1;
    }
    f->text_len = f->text ? strlen(f->text) : 0;
    json_t *cj = json_object_get(*doc, "coding");
    f->coding = json_is_integer(cj) && json_integer_value(cj) == 2 ? "2" : NULL;
    return 0;
}

/* Checks the fields and makes the text UTF-8 (UCS-2 is converted into *decoded, owned by the
 * caller). Returns 0, or -1 with `reply` set. */
static int sms_check(const intake_request_t *req, intake_reply_t *reply, sms_fields_t *f,
                     char **decoded)
{
    const char *missing = !f->from || !*f->from ? "from"
                          : !f->text            ? "text"
                          : !f->id || !*f->id   ? "id"
                                                : NULL;
    if (missing) {
        intake_error(reply, 400, "missing_field", missing, "%s is required", missing);
        return -1;
    }
    if (strlen(f->id) > SMS_ID_MAX) {
        intake_error(reply, 400, "invalid_field", "id", "id is longer than %d bytes", SMS_ID_MAX);
        return -1;
    }
    const char *cs = f->charset;
    bool ucs2 = (f->coding && strcmp(f->coding, "2") == 0) ||
                (cs && (strcasecmp(cs, "UTF-16BE") == 0 || strcasecmp(cs, "UCS-2") == 0 ||
                        strcasecmp(cs, "UTF-16") == 0));
    if (ucs2) {
        *decoded = utf16be_to_utf8(f->text, f->text_len);
        if (!*decoded) {
            intake_error(reply, 400, "invalid_field", "text", "text is not valid UCS-2/UTF-16BE");
            return -1;
        }
        f->text = *decoded;
        f->text_len = strlen(*decoded);
    } else if (!wasl_utf8_valid(f->text, f->text_len, false)) {
        intake_error(reply, 400, "invalid_utf8", "text", "text is not valid UTF-8");
        return -1;
    }
    if (f->text_len > (size_t)req->cfg->body_max) {
        intake_error(reply, 413, "too_large", "text", "text is longer than %ld bytes",
                     req->cfg->body_max);
        return -1;
    }
    return 0;
}

/* Makes the SMS's transaction job (req->job), or sets `reply`. */
static void sms_submit(intake_request_t *req, intake_reply_t *reply, const sms_fields_t *f)
{
    intake_job_t *job = intake_txn_job(req, "sms", sms_txn, sizeof(sms_arg_t), sms_arg_free, reply);
    if (!job) {
        return;
    }
    sms_arg_t *a = job->arg;
    a->thread_hours = req->cfg->sms_thread_h;
    intake_contact_t *c = &job->contact;
    if (intake_norm_phone(f->from, "from", req->cfg, &c->from_phone, reply) < 0) {
        intake_job_release(&job);
        return;
    }
    if (intake_strset(&a->from, c->from_phone) < 0 || intake_strset(&a->id, f->id) < 0 ||
        intake_strset(&c->channel, "sms") < 0 || intake_strset(&c->external_id, f->id) < 0 ||
        intake_strset(&c->body, f->text) < 0 || intake_strset(&c->client_id, req->client.id) < 0) {
        intake_error(reply, 503, "unavailable", NULL, "out of memory");
        intake_job_release(&job);
        return;
    }
    if (f->to) {
        c->event_data = json_pack("{s:s}", "to", f->to);
    }
    req->job = job;
}

void intake_handle_sms(intake_request_t *req, intake_reply_t *reply)
{
    intake_form_t form = {0};
    json_t *doc = NULL;
    char *decoded = NULL;
    sms_fields_t f;
    if (sms_read(req, reply, &form, &doc, &f) == 0 && sms_check(req, reply, &f, &decoded) == 0) {
        sms_submit(req, reply, &f);
    }
    intake_form_clear(&form);
    json_decref(doc);
    free(decoded);
}
