/* calls — POST /v1/calls/events and /v1/cti: telephony events, idempotent by (client, call_id,
 * seq), that yield a ticket when the call carries a request or ends abandoned in a queue. A
 * call id is the telephony client's own: another client's events under the same id are
 * another call (migration 0011). */
#include "handlers.h"
#include "wasl_log.h"
#include "wasl_redis.h"
#include "wasl_text.h"

#include <stdlib.h>
#include <string.h>

#define CALL_ID_MAX    128
#define CALL_FIELD_MAX 128
#define CALL_SEQ_MAX   1000000
/* Generic CTI events have no sequence number: their place in a call is fixed. */
#define CTI_SEQ_NEW_CALL 1
#define CTI_SEQ_ANSWER   2
#define CTI_SEQ_HANGUP   3

typedef struct {
    char *call_id;
    long long seq;
    char *event; /* call.started | call.ivr | call.note | call.answered | call.ended */
    bool cti;
    char *data;  /* JSON text stored in call_events.data */
    json_t *ivr; /* the IVR's answer (speech) merged into the reply, or NULL */
} call_arg_t;

static void call_arg_free(void *p)
{
    call_arg_t *a = p;
    if (a) {
        free(a->call_id);
        free(a->event);
        free(a->data);
        json_decref(a->ivr);
        free(a);
    }
}

/* What the call's events so far say (all of them, whatever order they came in). */
typedef struct {
    const char *from, *to, *queue, *cause, *agent;
    bool answered, ended, report_requested;
    long long duration_s;
} call_state_t;

/* A column's text, or NULL for SQL NULL. */
static const char *col(const PGresult *res, int row, int column)
{
    return PQgetisnull(res, row, column) ? NULL : PQgetvalue(res, row, column);
}

static void call_state_read(const PGresult *res, call_state_t *s)
{
    memset(s, 0, sizeof *s);
    s->duration_s = -1;
    /* Columns: event, from, to, queue, cause, menu, duration_s, agent */
    for (int r = 0; r < PQntuples(res); r++) {
        const char *ev = PQgetvalue(res, r, 0);
        if (col(res, r, 1) && !s->from) {
            s->from = col(res, r, 1);
        }
        if (col(res, r, 2) && !s->to) {
            s->to = col(res, r, 2);
        }
        if (col(res, r, 3)) {
            s->queue = col(res, r, 3);
        }
        if (strcmp(ev, "call.answered") == 0) {
            s->answered = true;
            s->agent = col(res, r, 7);
        } else if (strcmp(ev, "call.ended") == 0) {
            s->ended = true;
            s->cause = col(res, r, 4);
            if (col(res, r, 6)) {
                s->duration_s = strtoll(col(res, r, 6), NULL, 10);
            }
        } else if (strcmp(ev, "call.ivr") == 0 && col(res, r, 5) &&
                   strcmp(col(res, r, 5), "report") == 0) {
            s->report_requested = true;
        } else if (strcmp(ev, "call.note") == 0) {
            s->answered = true; /* someone took a note: the caller reached a person or the IVR */
        }
    }
}

/* A call ended abandoned when its cause says so, or when it waited in a queue and nobody
 * answered (the generic CTI form has no "abandoned" cause of its own). */
static bool call_abandoned(const call_state_t *s, bool cti)
{
    if (!s->ended) {
        return false;
    }
    if (s->cause && strcmp(s->cause, "abandoned") == 0) {
        return true;
    }
    return cti && s->queue && *s->queue && !s->answered;
}

static json_t *call_reply(const call_arg_t *a, const char *ref, bool duplicate)
{
    json_t *r = json_pack("{s:s, s:I, s:b, s:s?}", "call_id", a->call_id, "seq", (json_int_t)a->seq,
                          "duplicate", duplicate, "ticket", ref);
    if (r && a->ivr) {
        json_object_update(r, a->ivr); /* speech for the PBX to play (cases.c) */
    }
    return r;
}

static int call_txn(intake_job_t *job, intake_writer_t *w, wasl_pg_t *pg, intake_reply_t *reply)
{
    call_arg_t *a = job->arg;
    intake_contact_t *c = &job->contact;
    char seq[24];
    snprintf(seq, sizeof seq, "%lld", a->seq);
    const char *p1[] = {a->call_id, c->client_id};
    PGresult *res = intake_sql(
        pg, "SELECT pg_advisory_xact_lock(hashtextextended('call:' || $2 || ':' || $1, 0))", 2, p1);
    if (!res) {
        return -1;
    }
    PQclear(res);
    const char *ins[] = {a->call_id, seq, a->event, a->data, c->client_id};
    res = intake_sql(pg,
                     "INSERT INTO call_events (call_id, seq, event, data, client_id) "
                     "VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT DO NOTHING RETURNING seq",
                     5, ins);
    if (!res) {
        return -1;
    }
    bool duplicate = PQntuples(res) == 0;
    PQclear(res);
    PGresult *ticket = intake_sql(pg,
                                  "SELECT id, ref, from_phone FROM tickets "
                                  "WHERE channel = 'phone' AND external_id = $1 "
                                  "AND wasl_idem_scope(channel, client_id) = "
                                  "wasl_idem_scope('phone', $2)",
                                  2, p1);
    if (!ticket) {
        return -1;
    }
    char ref[16] = "";
    char ticket_id[24] = "";
    bool had_phone = false;
    if (PQntuples(ticket) > 0) {
        snprintf(ticket_id, sizeof ticket_id, "%s", PQgetvalue(ticket, 0, 0));
        snprintf(ref, sizeof ref, "%s", PQgetvalue(ticket, 0, 1));
        had_phone = !PQgetisnull(ticket, 0, 2);
    }
    PQclear(ticket);
    if (duplicate) {
        reply->status = 200;
        reply->body = call_reply(a, *ref ? ref : NULL, true);
        return 0;
    }
    res = intake_sql(pg,
                     "SELECT event, data->>'from', data->>'to', data->>'queue', data->>'cause', "
                     "data->>'menu', data->>'duration_s', data->>'agent' "
                     "FROM call_events WHERE call_id = $1 AND coalesce(client_id, '') = $2 "
                     "ORDER BY seq",
                     2, p1);
    if (!res) {
        return -1;
    }
    call_state_t s;
    call_state_read(res, &s);
    bool created = false;
    int rc = 0;
    const char *kind = NULL;
    char body[512];
    if (strcmp(a->event, "call.note") == 0) {
        kind = "note";
    } else if (strcmp(a->event, "call.ivr") == 0 && s.report_requested && !*ref) {
        kind = "ivr_report";
        snprintf(body, sizeof body, "[IVR] The caller chose to leave a report (menu report).");
    } else if (!*ref && call_abandoned(&s, a->cti)) {
        kind = "callback";
        if (s.duration_s >= 0) {
            snprintf(body, sizeof body,
                     "[Callback] The caller hung up while waiting in queue %s after %lld s; "
                     "call them back.",
                     s.queue ? s.queue : "-", s.duration_s);
        } else {
            snprintf(body, sizeof body,
                     "[Callback] The caller hung up while waiting in queue %s; call them back.",
                     s.queue ? s.queue : "-");
        }
    }
    char *from_e164 = NULL;
    if (s.from) {
        intake_reply_t ignore = {0};
        /* A number the PBX sent that is not a phone number (anonymous) is kept out. */
        if (intake_norm_phone(s.from, "from", intake_writer_config(w), &from_e164, &ignore) < 0) {
            from_e164 = NULL;
        }
        json_decref(ignore.body);
    }
    char msg_id[CALL_ID_MAX + 24];
    snprintf(msg_id, sizeof msg_id, "%s:%s", a->call_id, seq);
    if (kind && *ref && strcmp(kind, "note") == 0) {
        rc = intake_append_message(pg, ticket_id, c, msg_id);
    } else if (kind && !*ref) {
        if (strcmp(kind, "note") != 0 && intake_strset(&c->body, body) < 0) {
            rc = -1;
        }
        if (rc == 0 && (intake_strset(&c->channel, "phone") < 0 ||
                        intake_strset(&c->external_id, a->call_id) < 0 ||
                        intake_strset(&c->msg_external_id, msg_id) < 0 ||
                        intake_strset(&c->from_phone, from_e164) < 0)) {
            rc = -1;
        }
        if (rc == 0) {
            json_decref(c->event_data);
            c->event_data = json_pack("{s:s, s:s, s:s?}", "call_id", a->call_id, "call_kind", kind,
                                      "queue", s.queue);
            intake_ticket_t t;
            rc = intake_writer_create(w, c, 1, &t);
            if (rc == 0) {
                snprintf(ref, sizeof ref, "%s", t.ref);
                snprintf(ticket_id, sizeof ticket_id, "%lld", (long long)t.ticket_id);
                created = t.created;
                had_phone = from_e164 != NULL;
            }
        }
    }
    /* Out of order: the caller's number may arrive after the ticket was made. */
    if (rc == 0 && *ticket_id && !had_phone && from_e164) {
        const char *up[] = {ticket_id, from_e164};
        PGresult *u = intake_sql(pg,
                                 "UPDATE tickets SET from_phone = $2, updated_at = now() "
                                 "WHERE id = $1 AND from_phone IS NULL",
                                 2, up);
        rc = u ? 0 : -1;
        PQclear(u);
    }
    if (rc == 0 && *ticket_id) {
        const char *link[] = {a->call_id, seq, ticket_id, c->client_id};
        PGresult *l = intake_sql(pg,
                                 "UPDATE call_events SET ticket_id = $3 "
                                 "WHERE call_id = $1 AND seq = $2 AND coalesce(client_id, '') = $4",
                                 4, link);
        rc = l ? 0 : -1;
        PQclear(l);
    }
    free(from_e164);
    PQclear(res);
    if (rc != 0) {
        return rc;
    }
    reply->status = created ? 201 : 200;
    reply->body = call_reply(a, *ref ? ref : NULL, false);
    return 0;
}

/* Records the live session in Redis (what a supervisor's view may read). Best effort: the
 * durable record is call_events; a lost session is rebuilt from it. The session is the
 * client's own (keyed by client and call) and holds no phone number: the caller's number is in
 * call_events, and Redis is readable by every daemon. */
static void session_touch(const intake_request_t *req, intake_auth_t *auth, const call_arg_t *a,
                          const char *queue)
{
    wasl_redis_t *r = auth ? intake_auth_redis(auth) : NULL;
    if (!r) {
        return;
    }
    char key[CALL_ID_MAX + 96];
    snprintf(key, sizeof key, "wasl:call:%s:%s", req->client.id, a->call_id);
    redisReply *rep =
        wasl_redis_cmd(r, "HSET %s last_event %s last_seq %lld", key, a->event, a->seq);
    if (rep) {
        freeReplyObject(rep);
    }
    if (queue) {
        rep = wasl_redis_cmd(r, "HSET %s queue %s", key, queue);
        if (rep) {
            freeReplyObject(rep);
        }
    }
    rep = wasl_redis_cmd(r, "EXPIRE %s %ld", key, req->cfg->call_ttl_s);
    if (rep) {
        freeReplyObject(rep);
    }
}

/* Makes the job for one event; `data` (borrowed) is stored as the event's JSON. */
static void submit_event(intake_request_t *req, intake_reply_t *reply, const char *call_id,
                         long long seq, const char *event, bool cti, json_t *data, const char *note,
                         const char *agent, json_t *ivr)
{
    intake_job_t *job = intake_txn_job(req, cti ? "cti" : "calls", call_txn, sizeof(call_arg_t),
                                       call_arg_free, reply);
    if (!job) {
        json_decref(ivr);
        return;
    }
    call_arg_t *a = job->arg;
    a->seq = seq;
    a->cti = cti;
    a->ivr = ivr; /* ownership passes to the job's argument */
    a->data = json_dumps(data, JSON_COMPACT);
    intake_contact_t *c = &job->contact;
    if (intake_strset(&a->call_id, call_id) < 0 || intake_strset(&a->event, event) < 0 ||
        !a->data || intake_strset(&c->client_id, req->client.id) < 0 ||
        intake_strset(&c->body, note) < 0 || intake_strset(&c->sender, agent) < 0 ||
        intake_strset(&c->subject, "Phone call") < 0 || intake_strset(&c->channel, "phone") < 0) {
        intake_job_release(&job);
        intake_error(reply, 503, "unavailable", NULL, "out of memory");
        return;
    }
    session_touch(req, req->auth, a, json_string_value(json_object_get(data, "queue")));
    req->job = job;
}

/* An IVR case_status event, validated on the HTTP thread, for its slow part. */
typedef struct {
    char *call_id;
    long long seq;
    json_t *data; /* the event's fields as kept (owned reference) */
} ivr_arg_t;

static void ivr_arg_free(void *p)
{
    ivr_arg_t *a = p;
    if (a) {
        free(a->call_id);
        json_decref(a->data);
        free(a);
    }
}

/* On a lookup thread: the IVR's step (which may ask caselookup), then the event's job. */
static void ivr_step(intake_request_t *req, intake_reply_t *reply)
{
    ivr_arg_t *a = req->offload_arg;
    json_t *ivr = intake_cases_ivr(req, a->call_id, a->seq,
                                   json_string_value(json_object_get(a->data, "from")),
                                   json_string_value(json_object_get(a->data, "digits")));
    const char *typed = json_string_value(json_object_get(a->data, "digits"));
    if (typed) { /* may be a national ID: never stored in clear */
        char masked[CALL_FIELD_MAX + 1];
        json_object_set_new(a->data, "digits",
                            json_string(wasl_mask_id(typed, masked, sizeof masked)));
    }
    submit_event(req, reply, a->call_id, a->seq, "call.ivr", false, a->data, NULL, NULL, ivr);
}

static const char *const native_events[] = {"call.started", "call.ivr",      "call.note",
                                            "call.ended",   "call.answered", NULL};

void intake_handle_call_event(intake_request_t *req, intake_reply_t *reply)
{
    json_t *doc = intake_body_json(req, reply);
    if (!doc) {
        return;
    }
    const char *type, *call_id, *text = NULL, *agent = NULL, *menu = NULL, *s;
    long long seq = 0, duration = 0;
    bool has_seq, has_duration;
    if (intake_json_str(doc, "type", "type", true, 32, &type, reply) < 0 ||
        intake_json_str(doc, "call_id", "call_id", true, CALL_ID_MAX, &call_id, reply) < 0 ||
        intake_json_int(doc, "seq", "seq", true, 0, CALL_SEQ_MAX, &seq, &has_seq, reply) < 0) {
        goto done;
    }
    size_t i;
    for (i = 0; native_events[i] && strcmp(native_events[i], type) != 0; i++) {
    }
    if (!native_events[i]) {
        intake_error(reply, 400, "invalid_field", "type",
                     "type must be call.started, call.ivr, call.note, call.answered or "
                     "call.ended");
        goto done;
    }
    /* What is kept of the event: the known fields, validated. */
    json_t *data = json_object();
    static const char *const str_fields[] = {"from",  "to",    "ts",    "menu", "digits",
                                             "agent", "cause", "queue", NULL};
    for (const char *const *f = str_fields; *f; f++) {
        if (intake_json_str(doc, *f, *f, false, CALL_FIELD_MAX, &s, reply) < 0) {
            json_decref(data);
            goto done;
        }
        if (s) {
            json_object_set_new(data, *f, json_string(s));
        }
    }
    if (intake_json_int(doc, "duration_s", "duration_s", false, 0, 86400 * 7, &duration,
                        &has_duration, reply) < 0) {
        json_decref(data);
        goto done;
    }
    if (has_duration) {
        json_object_set_new(data, "duration_s", json_integer(duration));
    }
    menu = json_string_value(json_object_get(data, "menu"));
    if (menu && strncmp(menu, "queue:", 6) == 0 && !json_object_get(data, "queue")) {
        json_object_set_new(data, "queue", json_string(menu + 6));
    }
    if (strcmp(type, "call.note") == 0) {
        if (intake_json_str(doc, "text", "text", true, (size_t)req->cfg->body_max, &text, reply) <
            0) {
            json_decref(data);
            goto done;
        }
        agent = json_string_value(json_object_get(data, "agent"));
    }
    if (strcmp(type, "call.ivr") == 0 && menu && strcmp(menu, "case_status") == 0) {
        /* The IVR step may ask caselookup, which may take seconds: off the HTTP thread. */
        ivr_arg_t *a = calloc(1, sizeof *a);
        if (!a || intake_strset(&a->call_id, call_id) < 0) {
            ivr_arg_free(a);
            json_decref(data);
            intake_error(reply, 503, "unavailable", NULL, "out of memory");
            goto done;
        }
        a->seq = seq;
        a->data = data; /* ownership passes to the offloaded part's argument */
        req->offload = ivr_step;
        req->offload_pool = INTAKE_POOL_LOOKUP;
        req->offload_arg = a;
        req->offload_arg_free = ivr_arg_free;
        goto done;
    }
    submit_event(req, reply, call_id, seq, type, false, data, text, agent, NULL);
    json_decref(data);
done:
    json_decref(doc);
}

void intake_handle_cti(intake_request_t *req, intake_reply_t *reply)
{
    intake_form_t form = {0};
    json_t *doc = NULL;
    json_t *data = json_object();
    static const char *const fields[] = {"event",     "callId", "from",  "to",
                                         "direction", "user",   "queue", "answeringNumber",
                                         "cause",     NULL};
    const char *values[9] = {0};
    if (strcmp(req->content_type, "application/x-www-form-urlencoded") == 0) {
        if (intake_form_parse(&form, req->body, req->len) < 0) {
            intake_error(reply, 400, "invalid_field", NULL, "malformed form encoding");
            goto done;
        }
        for (size_t i = 0; fields[i]; i++) {
            values[i] = intake_form_get(&form, fields[i], NULL);
            if (values[i] && (strlen(values[i]) > CALL_FIELD_MAX ||
                              !wasl_utf8_valid(values[i], strlen(values[i]), false))) {
                intake_error(reply, 400, "invalid_field", fields[i], "%s is too long or not UTF-8",
                             fields[i]);
                goto done;
            }
        }
    } else {
        doc = intake_body_json(req, reply);
        if (!doc) {
            goto done;
        }
        for (size_t i = 0; fields[i]; i++) {
            if (intake_json_str(doc, fields[i], fields[i], false, CALL_FIELD_MAX, &values[i],
                                reply) < 0) {
                goto done;
            }
        }
    }
    const char *event = values[0], *call_id = values[1];
    if (!event || !*event) {
        intake_error(reply, 400, "missing_field", "event", "event is required");
        goto done;
    }
    if (!call_id || !*call_id) {
        intake_error(reply, 400, "missing_field", "callId", "callId is required");
        goto done;
    }
    const char *native;
    long long seq;
    if (strcmp(event, "newCall") == 0) {
        native = "call.started";
        seq = CTI_SEQ_NEW_CALL;
    } else if (strcmp(event, "answer") == 0) {
        native = "call.answered";
        seq = CTI_SEQ_ANSWER;
    } else if (strcmp(event, "hangup") == 0) {
        native = "call.ended";
        seq = CTI_SEQ_HANGUP;
    } else {
        intake_error(reply, 400, "invalid_field", "event",
                     "event must be newCall, answer or hangup");
        goto done;
    }
    /* Stored under the native names so both forms of a call read the same. */
    static const char *const native_names[] = {
        NULL, NULL, "from", "to", "direction", "agent", "queue", "answering_number", "cause"};
    for (size_t i = 2; fields[i]; i++) {
        if (values[i] && *values[i]) {
            json_object_set_new(data, native_names[i], json_string(values[i]));
        }
    }
    submit_event(req, reply, call_id, seq, native, true, data, NULL, NULL, NULL);
done:
    json_decref(data);
    json_decref(doc);
    intake_form_clear(&form);
}
