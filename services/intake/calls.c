/* calls — POST /v1/calls/events and /v1/cti: telephony events, idempotent by (client, call_id,
 * seq), that yield a ticket when the call carries a request or ends abandoned in a queue. A
 * call id is the telephony client's own: another client's events under the same id are
 * another call (migration 0011). */
#include "call_decide.h"
#include "handlers.h"
#include "wasl_log.h"
#include "wasl_phone.h"
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
    call_event_t event;
    bool cti;
    char *data;  /* JSON text stored in call_events.data */
    json_t *ivr; /* the IVR's answer (speech) merged into the reply, or NULL */
} call_arg_t;

static void call_arg_free(void *p)
{
    call_arg_t *a = p;
    if (a) {
        free(a->call_id);
        free(a->data);
        json_decref(a->ivr);
        free(a);
    }
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

/* A column's text, or NULL for SQL NULL. */
static const char *col(const PGresult *res, int row, int column)
{
    return PQgetisnull(res, row, column) ? NULL : PQgetvalue(res, row, column);
}

// clang-format off
/* Records the event and reads, in one round trip, what the decision needs: whether it was new,
 * the call's ticket (if any) and every event of the call so far, this one included (a
 * statement does not see its own insert, hence the UNION with what it returned). It runs after
 * the call's lock, so its snapshot holds every earlier event of the call. Always one row at
 * least (the event columns NULL when there are none). */
static const char *const record_sql =
    "WITH ins AS ("
    "  INSERT INTO call_events (call_id, seq, event, data, client_id)"
    "  VALUES ($1, $2, $3, $4::jsonb, $5)"
    "  ON CONFLICT DO NOTHING"
    "  RETURNING seq, event, data"
    "), ev AS ("
    "  SELECT seq, event, data FROM call_events"
    "  WHERE call_id = $1 AND coalesce(client_id, '') = $5"
    "  UNION ALL"
    "  SELECT seq, event, data FROM ins"
    ")"
    " SELECT (SELECT count(*) FROM ins), t.id, t.ref, t.from_phone IS NOT NULL,"
    "   e.event, e.data->>'from', e.data->>'to', e.data->>'queue', e.data->>'cause',"
    "   e.data->>'menu', e.data->>'duration_s', e.data->>'agent'"
    " FROM (SELECT 1) AS one"
    " LEFT JOIN tickets t ON t.channel = 'phone' AND t.external_id = $1"
    "   AND wasl_idem_scope(t.channel, t.client_id) = wasl_idem_scope('phone', $5)"
    " LEFT JOIN ev e ON true"
    " ORDER BY e.seq";

/* Links the event to the call's ticket and, when $5 is set, gives the ticket the caller's
 * number (out of order: the number may arrive after the ticket was made). */
static const char *const link_sql =
    "WITH phone AS ("
    "  UPDATE tickets SET from_phone = $5, updated_at = now()"
    "  WHERE id = $3 AND from_phone IS NULL AND $5::text IS NOT NULL"
    "  RETURNING id"
    ")"
    " UPDATE call_events SET ticket_id = $3"
    " WHERE call_id = $1 AND seq = $2 AND coalesce(client_id, '') = $4";
// clang-format on

enum { REC_NEW, REC_TICKET_ID, REC_REF, REC_HAS_PHONE, REC_EVENT, REC_FIELDS, REC_NCOLS = 12 };

/* The recorded event and what the call's record says; the state borrows from res. */
typedef struct {
    PGresult *res;
    bool duplicate, had_phone;
    char ticket_id[24], ref[16];
    call_state_t state;
} call_record_t;

/* Takes the call's lock (its events are decided one at a time), records the event and reads
 * the call's record. Two round trips: the lock must be its own statement, so that the next
 * one's snapshot is taken after it. Returns 0 or -1. */
static int call_record(wasl_pg_t *pg, const call_arg_t *a, const intake_contact_t *c,
                       const char *seq, call_record_t *rec)
{
    memset(rec, 0, sizeof *rec);
    call_state_init(&rec->state);
    const char *lp[] = {a->call_id, c->client_id};
    PGresult *res = intake_sql(
        pg, "SELECT pg_advisory_xact_lock(hashtextextended('call:' || $2 || ':' || $1, 0))", 2, lp);
    if (!res) {
        return -1;
    }
    PQclear(res);
    const char *rp[] = {a->call_id, seq, call_event_name(a->event), a->data, c->client_id};
    res = intake_sql(pg, record_sql, 5, rp);
    if (!res || PQnfields(res) != REC_NCOLS || PQntuples(res) < 1) {
        PQclear(res);
        return -1;
    }
    rec->res = res;
    rec->duplicate = strcmp(PQgetvalue(res, 0, REC_NEW), "0") == 0;
    if (!PQgetisnull(res, 0, REC_TICKET_ID)) {
        snprintf(rec->ticket_id, sizeof rec->ticket_id, "%s", PQgetvalue(res, 0, REC_TICKET_ID));
        snprintf(rec->ref, sizeof rec->ref, "%s", PQgetvalue(res, 0, REC_REF));
        rec->had_phone = PQgetvalue(res, 0, REC_HAS_PHONE)[0] == 't';
    }
    for (int r = 0; r < PQntuples(res); r++) {
        if (PQgetisnull(res, r, REC_EVENT)) {
            continue;
        }
        const int f = REC_FIELDS;
        call_event_row_t row = {call_event_parse(PQgetvalue(res, r, REC_EVENT)),
                                col(res, r, f),
                                col(res, r, f + 1),
                                col(res, r, f + 2),
                                col(res, r, f + 3),
                                col(res, r, f + 4),
                                col(res, r, f + 5),
                                col(res, r, f + 6)};
        call_state_fold(&rec->state, &row);
    }
    return 0;
}

/* The caller's number in E.164, or NULL when the PBX sent none or something that is not a
 * phone number (anonymous). Owned by the caller. */
static char *caller_e164(intake_writer_t *w, const char *from)
{
    char *e164 = NULL;
    if (from) {
        intake_reply_t ignore = {0};
        if (intake_norm_phone(from, "from", intake_writer_config(w), &e164, &ignore) < 0) {
            e164 = NULL;
        }
        json_decref(ignore.body);
    }
    return e164;
}

/* Makes the call's ticket for action `act` from the job's contact (channel phone, external id
 * the call id). On success rec->ticket_id and rec->ref name it and *created says whether it is
 * new. Returns 0, -1, or INTAKE_TXN_RETRY. */
static int create_ticket(intake_writer_t *w, const call_arg_t *a, intake_contact_t *c,
                         call_action_t act, const char *msg_id, const char *from_e164,
                         call_record_t *rec, bool *created)
{
    char text[512];
    if (act != CALL_DO_CREATE_NOTE &&
        intake_strset(&c->body, call_ticket_text(act, &rec->state, text, sizeof text)) < 0) {
        return -1;
    }
    if (intake_strset(&c->channel, "phone") < 0 || intake_strset(&c->external_id, a->call_id) < 0 ||
        intake_strset(&c->msg_external_id, msg_id) < 0 ||
        intake_strset(&c->from_phone, from_e164) < 0) {
        return -1;
    }
    json_decref(c->event_data);
    c->event_data = json_pack("{s:s, s:s, s:s?}", "call_id", a->call_id, "call_kind",
                              call_action_kind(act), "queue", rec->state.queue);
    intake_ticket_t t;
    int rc = intake_writer_create(w, c, 1, &t);
    if (rc == 0) {
        snprintf(rec->ref, sizeof rec->ref, "%s", t.ref);
        snprintf(rec->ticket_id, sizeof rec->ticket_id, "%lld", (long long)t.ticket_id);
        *created = t.created;
        rec->had_phone = from_e164 != NULL;
    }
    return rc;
}

/* An end that call_abandoned() calls abandoned is marked so on its own row (columns abandoned
 * and abandoned_queue, migration 0023; `data` stays what the PBX sent), with the queue the call
 * last named. The rule then has one home (here) and the desk's wallboard counts the marked rows
 * instead of restating it in SQL. One more round trip, for abandoned ends only. 0 or -1. */
static int mark_abandoned(wasl_pg_t *pg, const call_arg_t *a, const intake_contact_t *c,
                          const char *seq, const call_state_t *s)
{
    static const char mark_sql[] =
        "UPDATE call_events SET abandoned = true, abandoned_queue = $4"
        " WHERE call_id = $1 AND seq = $2::bigint AND coalesce(client_id, '') = $3";
    const char *p[] = {a->call_id, seq, c->client_id ? c->client_id : "",
                       s->queue && *s->queue ? s->queue : NULL};
    PGresult *res = intake_sql(pg, mark_sql, 4, p);
    PQclear(res);
    return res ? 0 : -1;
}

/* Records one telephony event and does what call_decide() says, in the job's transaction.
 * Round trips: the lock, the record, then the ticket's message or creation when there is one,
 * then the link (with the caller's number) when the call has a ticket — four at most (five for
 * an abandoned end, which is marked), two for a repeat (was six and seven). */
static int call_txn(intake_job_t *job, intake_writer_t *w, wasl_pg_t *pg, intake_reply_t *reply)
{
    call_arg_t *a = job->arg;
    intake_contact_t *c = &job->contact;
    char seq[24];
    snprintf(seq, sizeof seq, "%lld", a->seq);
    call_record_t rec;
    if (call_record(pg, a, c, seq, &rec) < 0) {
        return -1;
    }
    call_action_t act = call_decide(a->event, rec.duplicate, *rec.ticket_id, a->cti, &rec.state);
    if (act == CALL_DO_DUPLICATE) {
        reply->status = 200;
        reply->body = call_reply(a, *rec.ref ? rec.ref : NULL, true);
        PQclear(rec.res);
        return 0;
    }
    char *from_e164 = caller_e164(w, rec.state.from);
    char msg_id[CALL_ID_MAX + 24];
    snprintf(msg_id, sizeof msg_id, "%s:%s", a->call_id, seq);
    bool created = false;
    int rc = 0;
    if (a->event == CALL_EV_ENDED && call_abandoned(&rec.state, a->cti)) {
        rc = mark_abandoned(pg, a, c, seq, &rec.state);
    }
    if (rc == 0 && act == CALL_DO_APPEND_NOTE) {
        rc = intake_append_message(pg, rec.ticket_id, c, msg_id);
    } else if (rc == 0 && call_action_creates(act)) {
        rc = create_ticket(w, a, c, act, msg_id, from_e164, &rec, &created);
    }
    if (rc == 0 && *rec.ticket_id) {
        const char *fill = !rec.had_phone ? from_e164 : NULL;
        const char *lp[] = {a->call_id, seq, rec.ticket_id, c->client_id, fill};
        PGresult *l = intake_sql(pg, link_sql, 5, lp);
        rc = l ? 0 : -1;
        PQclear(l);
    }
    free(from_e164);
    PQclear(rec.res);
    if (rc != 0) {
        return rc;
    }
    reply->status = created ? 201 : 200;
    reply->body = call_reply(a, *rec.ref ? rec.ref : NULL, false);
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
    redisReply *rep = wasl_redis_cmd(r, "HSET %s last_event %s last_seq %lld", key,
                                     call_event_name(a->event), a->seq);
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
                         long long seq, call_event_t event, bool cti, json_t *data,
                         const char *note, const char *agent, json_t *ivr)
{
    intake_job_t *job = intake_txn_job(req, cti ? "cti" : "calls", call_txn, sizeof(call_arg_t),
                                       call_arg_free, reply);
    if (!job) {
        json_decref(ivr);
        return;
    }
    call_arg_t *a = job->arg;
    a->seq = seq;
    a->event = event;
    a->cti = cti;
    a->ivr = ivr; /* ownership passes to the job's argument */
    a->data = json_dumps(data, JSON_COMPACT);
    intake_contact_t *c = &job->contact;
    if (intake_strset(&a->call_id, call_id) < 0 || !a->data ||
        intake_strset(&c->client_id, req->client.id) < 0 || intake_strset(&c->body, note) < 0 ||
        intake_strset(&c->sender, agent) < 0 || intake_strset(&c->subject, "Phone call") < 0 ||
        intake_strset(&c->channel, "phone") < 0) {
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
    submit_event(req, reply, a->call_id, a->seq, CALL_EV_IVR, false, a->data, NULL, NULL, ivr);
}

/* What the desk's screen pop needs of an event, checked and added to its data: a ring names
 * a valid agent id (an answer's agent is not checked, as before: PBXs send extensions there;
 * only one that is an agent's id pops the desk — the trigger checks); the caller's number in
 * E.164 is kept as "caller" beside the number as sent, so that the desk finds the caller's
 * tickets by the identity tickets.from_phone holds. `field` is the agent's name in the request
 * ("agent", the CTI form's "user"). 0, or -1 with a 400 naming it. */
static int ring_fields(call_event_t ev, json_t *data, const char *field, const intake_config_t *cfg,
                       intake_reply_t *reply)
{
    const char *agent = json_string_value(json_object_get(data, "agent"));
    if (ev == CALL_EV_RINGING && !agent) {
        intake_error(reply, 400, "missing_field", field, "a ring names its agent (%s)", field);
        return -1;
    }
    if (ev == CALL_EV_RINGING && !call_agent_id_valid(agent)) {
        intake_error(reply, 400, "invalid_field", field,
                     "%s must be an agent id: [a-z0-9][a-z0-9._-], at most 64", field);
        return -1;
    }
    const char *from = json_string_value(json_object_get(data, "from"));
    char e164[WASL_PHONE_MAX];
    if (from && wasl_phone_e164(from, cfg->default_country, e164) == 0) {
        json_object_set_new(data, "caller", json_string(e164));
    }
    return 0;
}

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
    call_event_t ev = call_event_parse(type);
    if (ev == CALL_EV_NONE) {
        intake_error(reply, 400, "invalid_field", "type",
                     "type must be call.started, call.ivr, call.ringing, call.note, "
                     "call.answered or call.ended");
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
    if (ring_fields(ev, data, "agent", req->cfg, reply) < 0) {
        json_decref(data);
        goto done;
    }
    menu = json_string_value(json_object_get(data, "menu"));
    if (menu && strncmp(menu, "queue:", 6) == 0 && !json_object_get(data, "queue")) {
        json_object_set_new(data, "queue", json_string(menu + 6));
    }
    if (ev == CALL_EV_NOTE) {
        if (intake_json_str(doc, "text", "text", true, (size_t)req->cfg->body_max, &text, reply) <
            0) {
            json_decref(data);
            goto done;
        }
        agent = json_string_value(json_object_get(data, "agent"));
    }
    if (ev == CALL_EV_IVR && menu && strcmp(menu, "case_status") == 0) {
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
    submit_event(req, reply, call_id, seq, ev, false, data, text, agent, NULL);
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
    call_event_t native;
    long long seq;
    if (strcmp(event, "newCall") == 0) {
        native = CALL_EV_STARTED;
        seq = CTI_SEQ_NEW_CALL;
    } else if (strcmp(event, "answer") == 0) {
        native = CALL_EV_ANSWERED;
        seq = CTI_SEQ_ANSWER;
    } else if (strcmp(event, "hangup") == 0) {
        native = CALL_EV_ENDED;
        seq = CTI_SEQ_HANGUP;
    } else if (strcmp(event, "ringing") == 0 || strcmp(event, "alerting") == 0) {
        native = CALL_EV_RINGING; /* one place per agent: see call_cti_ring_seq */
        seq = call_cti_ring_seq(values[5]);
    } else {
        intake_error(reply, 400, "invalid_field", "event",
                     "event must be newCall, ringing, alerting, answer or hangup");
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
    if (ring_fields(native, data, "user", req->cfg, reply) < 0) {
        goto done;
    }
    submit_event(req, reply, call_id, seq, native, true, data, NULL, NULL, NULL);
done:
    json_decref(data);
    json_decref(doc);
    intake_form_clear(&form);
}
