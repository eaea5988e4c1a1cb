/* cases — GET /v1/cases/{number} and the IVR's case-status menu: verified questions to
 * wasl-caselookup over the bus (Lazy Pirate client), answers as JSON and as speech. */
#include "handlers.h"
#include "wasl_log.h"
#include "wasl_redis.h"
#include "wasl_rpc.h"
#include "wasl_text.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CASE_NUMBER_DIGITS 10
#define NATIONAL_ID_DIGITS 10
#define RPC_TIMEOUT_MS     1000 /* caselookup answers in milliseconds; a second means it is gone */
#define RPC_RETRIES        2    /* worst case (1 + 2) s: under the PBX's prompt timeout */
#define POOL_MAX           64   /* one client per concurrently asking HTTP thread */
#define IVR_MAX_TRIES      3    /* a malformed entry is asked for again this many times */
#define KEY_MAX            192

/* ---- a pool of RPC clients (a ZeroMQ socket belongs to one thread at a time) ------------- */

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static wasl_zmq_t *pool_zmq;
static wasl_rpc_t *pool[POOL_MAX];
static size_t pool_n;
static char *pool_endpoints;

/* Takes a client (made on first use). NULL when the bus is not configured or sockets fail. */
static wasl_rpc_t *client_take(const intake_config_t *cfg)
{
    wasl_rpc_t *c = NULL;
    pthread_mutex_lock(&pool_lock);
    if (!pool_endpoints && cfg->bus && *cfg->bus) {
        pool_endpoints = wasl_bus_endpoints(cfg->bus, cfg->bus_stages, NULL, WASL_BUS_RPC_CLIENT);
        wasl_zmq_opts_t o = {
            .curve_dir = cfg->curve_dir, .self_name = cfg->curve_name, .server_name = "bus"};
        pool_zmq = wasl_zmq_new(&o);
    }
    if (pool_n > 0) {
        c = pool[--pool_n];
    } else if (pool_endpoints && pool_zmq) {
        c = wasl_rpc_new(pool_zmq, pool_endpoints, RPC_TIMEOUT_MS, RPC_RETRIES);
    }
    pthread_mutex_unlock(&pool_lock);
    return c;
}

/* Returns a client to the pool (ownership passes back; destroyed when the pool is full). */
static void client_give(wasl_rpc_t **c)
{
    pthread_mutex_lock(&pool_lock);
    if (pool_n < POOL_MAX) {
        pool[pool_n++] = *c;
        *c = NULL;
    }
    pthread_mutex_unlock(&pool_lock);
    wasl_rpc_destroy(c);
}

void intake_cases_shutdown(void)
{
    pthread_mutex_lock(&pool_lock);
    while (pool_n > 0) {
        wasl_rpc_destroy(&pool[--pool_n]);
    }
    wasl_zmq_destroy(&pool_zmq);
    free(pool_endpoints);
    pool_endpoints = NULL;
    pthread_mutex_unlock(&pool_lock);
}

/* Asks caselookup. Returns the reply (caller destroys) or NULL when it could not be asked or
 * did not answer in time. */
static wasl_msg_t *ask(const intake_request_t *req, const char *number, const char *kind,
                       const char *verifier, const char *channel, const char *call_id,
                       const char *caller)
{
    wasl_msg_t *q = wasl_msg_new(WASL_MSG_CASE_LOOKUP_REQUEST);
    if (!q) {
        return NULL;
    }
    wasl_msg_case_lookup_request_t *r = &q->u.case_lookup_request;
    char id[WASL_RPC_REQUEST_ID_MAX];
    if (wasl_rpc_request_id(channel, id) < 0) {
        wasl_msg_destroy(&q);
        return NULL;
    }
    r->request_id = strdup(id);
    r->case_number = strdup(number);
    r->verifier_kind = strdup(kind);
    r->verifier = strdup(verifier);
    r->channel = strdup(channel);
    r->client = strdup(req->client.id);
    r->call_id = call_id ? strdup(call_id) : NULL;
    r->caller = caller ? strdup(caller) : NULL;
    wasl_msg_t *rep = NULL;
    wasl_rpc_t *c = client_take(req->cfg);
    if (c && r->request_id && r->case_number && r->verifier_kind && r->verifier && r->channel &&
        r->client) {
        rep = wasl_rpc_request(c, q);
        client_give(&c);
    }
    wasl_rpc_destroy(&c);
    wasl_msg_destroy(&q);
    if (rep && (rep->type != WASL_MSG_CASE_LOOKUP_REPLY ||
                strcmp(rep->u.case_lookup_reply.request_id, id) != 0)) {
        wasl_warn("cases: caselookup answered something else", NULL);
        wasl_msg_destroy(&rep);
    }
    return rep;
}

/* Folds digits of any script; returns a new ASCII string of exactly `n` digits or NULL. */
static char *digits_exact(const char *text, size_t n)
{
    if (!text) {
        return NULL;
    }
    char *s = wasl_fold_digits(text, strlen(text));
    if (!s) {
        return NULL;
    }
    /* People type spaces and dashes between groups. */
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            s[o++] = s[i];
        } else if (s[i] != ' ' && s[i] != '-') {
            free(s);
            return NULL;
        }
    }
    s[o] = '\0';
    if (o != n) {
        free(s);
        return NULL;
    }
    return s;
}

/* The JSON of a found reply. */
static json_t *found_json(const wasl_msg_case_lookup_reply_t *r)
{
    json_t *next = json_null();
    if (r->hearing_utc) {
        next = json_pack("{s:s, s:s?, s:{s:I, s:I, s:I, s:s?}, s:s?, s:s?}", "utc", r->hearing_utc,
                         "local", r->hearing_local, "hijri", "year", (json_int_t)r->hijri_year,
                         "month", (json_int_t)r->hijri_month, "day", (json_int_t)r->hijri_day,
                         "month_name_ar", r->hijri_month_name_ar, "text_ar", r->hearing_text_ar,
                         "text_en", r->hearing_text_en);
    }
    json_t *ups = json_array();
    for (size_t i = 0; i < r->updates_count; i++) {
        json_array_append_new(ups, json_string(r->updates[i]));
    }
    return json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:o, s:o, s:s?, s:s?}", "case_number",
                     r->case_number, "court", r->court, "circuit", r->circuit, "status", r->status,
                     "status_ar", r->status_ar, "next_hearing", next, "updates", ups, "speech_ar",
                     r->speech_ar, "speech_en", r->speech_en);
}

void intake_handle_case_get(intake_request_t *req, intake_reply_t *reply)
{
    char *number = digits_exact(req->path_arg, CASE_NUMBER_DIGITS);
    const char *nid_text = intake_query(req, "national_id", NULL);
    const char *caller_text = intake_query(req, "caller", NULL);
    char *nid = NULL, *caller = NULL;
    wasl_msg_t *rep = NULL;
    if (!number) {
        intake_error(reply, 400, "invalid_field", "case_number",
                     "a case number is 10 digits (Arabic-Indic digits are fine)");
        goto done;
    }
    if ((nid_text != NULL) == (caller_text != NULL)) {
        intake_error(reply, 400, "missing_field", "national_id",
                     "give exactly one verifier: national_id or caller");
        goto done;
    }
    if (nid_text &&
        (!(nid = digits_exact(nid_text, NATIONAL_ID_DIGITS)) || (nid[0] != '1' && nid[0] != '2'))) {
        intake_error(reply, 400, "invalid_field", "national_id",
                     "a national or resident ID is 10 digits starting with 1 or 2");
        goto done;
    }
    if (caller_text && intake_norm_phone(caller_text, "caller", req->cfg, &caller, reply) < 0) {
        goto done;
    }
    rep = ask(req, number, nid ? "national_id" : "caller_phone", nid ? nid : caller, "api", NULL,
              caller);
    if (!rep) {
        intake_error(reply, 503, "unavailable", NULL, "case lookup is unavailable; try again");
        reply->retry_after_s = 1;
        goto done;
    }
    const wasl_msg_case_lookup_reply_t *r = &rep->u.case_lookup_reply;
    if (strcmp(r->outcome, "found") == 0) {
        reply->status = 200;
        reply->body = found_json(r);
    } else if (strcmp(r->outcome, "denied") == 0) {
        /* The same bytes whether the case does not exist or is someone else's. */
        intake_error(reply, 404, "not_found", NULL,
                     "no case with this number is registered to this verifier");
    } else if (strcmp(r->outcome, "locked") == 0) {
        intake_error(reply, 429, "locked", NULL, "too many unsuccessful lookups; try again later");
        reply->retry_after_s = r->has_retry_after_s ? (int)r->retry_after_s : 900;
    } else {
        intake_error(reply, 503, "unavailable", NULL, "case lookup is unavailable; try again");
        reply->retry_after_s = 1;
    }
done:
    wasl_msg_destroy(&rep);
    free(number);
    free(nid);
    free(caller);
}

/* ---- the IVR ---------------------------------------------------------------------------- */

#define SAY_CASE_AR       "أدخل رقم القضية المكون من عشرة أرقام، ثم اضغط على علامة المربع."
#define SAY_CASE_EN       "Enter your ten-digit case number, then press the hash key."
#define SAY_CASE_AGAIN_AR "رقم القضية غير مكتمل. " SAY_CASE_AR
#define SAY_CASE_AGAIN_EN "That case number is incomplete. " SAY_CASE_EN
#define SAY_ID_AR         "أدخل رقم هويتك الوطنية أو رقم الإقامة المكون من عشرة أرقام."
#define SAY_ID_EN         "Enter your ten-digit national ID or residence number."
#define SAY_ID_AGAIN_AR   "رقم الهوية غير صحيح. " SAY_ID_AR
#define SAY_ID_AGAIN_EN   "That ID number is not valid. " SAY_ID_EN
#define SAY_DOWN_AR       "عذرًا، خدمة الاستعلام غير متاحة حاليًا. سيتم تحويلك إلى أحد موظفينا."
#define SAY_DOWN_EN       "Sorry, case enquiries are unavailable right now. We will transfer you."
#define SAY_GIVEUP_AR     "لم نتمكن من استلام الرقم. سيتم تحويلك إلى أحد موظفينا."
#define SAY_GIVEUP_EN     "We could not get the number. We will transfer you to our staff."

static json_t *ivr_json(const char *step, const char *ar, const char *en, bool expect_digits,
                        const char *outcome)
{
    return json_pack("{s:{s:s, s:s}, s:{s:s, s:s, s:s?, s:b, s:i}}", "speech", "ar", ar, "en", en,
                     "ivr", "menu", "case_status", "step", step, "outcome", outcome,
                     "expect_digits", expect_digits, "max_digits",
                     expect_digits ? CASE_NUMBER_DIGITS : 0);
}

/* The i-th value of an HMGET reply, NULL when absent. */
static const char *field(const redisReply *s, size_t i)
{
    return s->element[i]->type == REDIS_REPLY_STRING ? s->element[i]->str : NULL;
}

static void hset(wasl_redis_t *r, const char *key, const char *field, const char *value)
{
    redisReply *rep = wasl_redis_cmd(r, "HSET %s %s %s", key, field, value);
    if (rep) {
        freeReplyObject(rep);
    }
}

/* Speech for a lookup's outcome; the step becomes "done" except for a phone not registered,
 * which moves on to asking for the ID. */
static json_t *ivr_answer(wasl_msg_t *rep, bool by_phone, const char **step)
{
    *step = "done";
    if (!rep) {
        return ivr_json("done", SAY_DOWN_AR, SAY_DOWN_EN, false, "error");
    }
    const wasl_msg_case_lookup_reply_t *r = &rep->u.case_lookup_reply;
    if (strcmp(r->outcome, "denied") == 0 && by_phone) {
        *step = "national_id";
        return ivr_json("national_id", SAY_ID_AR, SAY_ID_EN, true, NULL);
    }
    if (strcmp(r->outcome, "found") == 0 || strcmp(r->outcome, "denied") == 0 ||
        strcmp(r->outcome, "locked") == 0) {
        return ivr_json("done", r->speech_ar ? r->speech_ar : "", r->speech_en ? r->speech_en : "",
                        false, r->outcome);
    }
    return ivr_json("done", SAY_DOWN_AR, SAY_DOWN_EN, false, "error");
}

json_t *intake_cases_ivr(intake_request_t *req, const char *call_id, long long seq,
                         const char *from, const char *digits)
{
    wasl_redis_t *r = req->auth ? intake_auth_redis(req->auth) : NULL;
    if (!r) {
        return ivr_json("done", SAY_DOWN_AR, SAY_DOWN_EN, false, "error");
    }
    char key[KEY_MAX];
    snprintf(key, sizeof key, "wasl:ivr:%s", call_id);
    redisReply *s =
        wasl_redis_cmd(r, "HMGET %s step last_seq last_reply case_number from tries", key);
    if (!s || s->type != REDIS_REPLY_ARRAY || s->elements != 6) {
        if (s) {
            freeReplyObject(s);
        }
        return ivr_json("done", SAY_DOWN_AR, SAY_DOWN_EN, false, "error");
    }
    char step[32], number[16] = "", caller[32] = "";
    snprintf(step, sizeof step, "%s", field(s, 0) ? field(s, 0) : "");
    const char *seq_text = field(s, 1), *tries_text = field(s, 5);
    long long last_seq = seq_text ? strtoll(seq_text, NULL, 10) : -1;
    long tries = tries_text ? strtol(tries_text, NULL, 10) : 0;
    if (field(s, 3)) {
        snprintf(number, sizeof number, "%s", field(s, 3));
    }
    if (field(s, 4)) {
        snprintf(caller, sizeof caller, "%s", field(s, 4));
    }
    /* A repeated event (the PBX retried) gets the same answer and moves nothing. */
    if (field(s, 2) && seq <= last_seq) {
        json_t *again = json_loads(field(s, 2), 0, NULL);
        freeReplyObject(s);
        return again ? again : ivr_json("done", SAY_DOWN_AR, SAY_DOWN_EN, false, "error");
    }
    freeReplyObject(s);
    if (!*caller && from) {
        char *e164 = NULL;
        intake_reply_t ignore = {0};
        if (intake_norm_phone(from, "from", req->cfg, &e164, &ignore) == 0 && e164) {
            snprintf(caller, sizeof caller, "%s", e164);
            hset(r, key, "from", caller);
        }
        free(e164);
        json_decref(ignore.body);
    }
    json_t *out = NULL;
    const char *next = step;
    bool has_digits = digits && *digits;
    if (!*step || strcmp(step, "done") == 0 || !has_digits) {
        if (!*step || strcmp(step, "done") == 0) {
            tries = 0;
        }
        /* Entering the menu (again), or an event without digits: ask for what is missing. */
        if (strcmp(step, "national_id") == 0) {
            out = ivr_json("national_id", SAY_ID_AR, SAY_ID_EN, true, NULL);
        } else {
            next = "case_number";
            out = ivr_json("case_number", SAY_CASE_AR, SAY_CASE_EN, true, NULL);
        }
    } else if (strcmp(step, "case_number") == 0) {
        char *n = digits_exact(digits, CASE_NUMBER_DIGITS);
        if (!n) {
            if (++tries >= IVR_MAX_TRIES) {
                next = "done";
                out = ivr_json("done", SAY_GIVEUP_AR, SAY_GIVEUP_EN, false, "error");
            } else {
                out = ivr_json("case_number", SAY_CASE_AGAIN_AR, SAY_CASE_AGAIN_EN, true, NULL);
            }
        } else {
            snprintf(number, sizeof number, "%s", n);
            hset(r, key, "case_number", number);
            tries = 0;
            if (*caller) {
                wasl_msg_t *rep =
                    ask(req, number, "caller_phone", caller, "phone", call_id, caller);
                out = ivr_answer(rep, true, &next);
                wasl_msg_destroy(&rep);
            } else {
                next = "national_id";
                out = ivr_json("national_id", SAY_ID_AR, SAY_ID_EN, true, NULL);
            }
            free(n);
        }
    } else { /* national_id */
        char *nid = digits_exact(digits, NATIONAL_ID_DIGITS);
        if (!nid || (nid[0] != '1' && nid[0] != '2') || !*number) {
            if (++tries >= IVR_MAX_TRIES) {
                next = "done";
                out = ivr_json("done", SAY_GIVEUP_AR, SAY_GIVEUP_EN, false, "error");
            } else {
                out = ivr_json("national_id", SAY_ID_AGAIN_AR, SAY_ID_AGAIN_EN, true, NULL);
            }
        } else {
            wasl_msg_t *rep =
                ask(req, number, "national_id", nid, "phone", call_id, *caller ? caller : NULL);
            out = ivr_answer(rep, false, &next);
            wasl_msg_destroy(&rep);
        }
        free(nid);
    }
    char *text = out ? json_dumps(out, JSON_COMPACT) : NULL;
    char seqs[24], triess[24];
    snprintf(seqs, sizeof seqs, "%lld", seq);
    snprintf(triess, sizeof triess, "%ld", tries);
    redisReply *w = wasl_redis_cmd(r, "HSET %s step %s last_seq %s last_reply %s tries %s", key,
                                   next, seqs, text ? text : "", triess);
    if (w) {
        freeReplyObject(w);
    }
    w = wasl_redis_cmd(r, "EXPIRE %s %ld", key, req->cfg->call_ttl_s);
    if (w) {
        freeReplyObject(w);
    }
    free(text);
    return out;
}
