/* cases — GET /v1/cases/{number} and the IVR's case-status menu: verified questions to
 * wasl-caselookup over the bus (Lazy Pirate client), answers as JSON and as speech. */
#include "handlers.h"
#include "wasl_cases.h"
#include "wasl_log.h"
#include "wasl_pii.h"
#include "wasl_redis.h"
#include "wasl_text.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RPC_TIMEOUT_MS 1000 /* caselookup answers in milliseconds; a second means it is gone */
#define RPC_RETRIES    2    /* worst case (1 + 2) s: under the PBX's prompt timeout */
#define IVR_MAX_TRIES  3    /* a malformed entry is asked for again this many times */
#define KEY_MAX        256

/* ---- asking caselookup (common/wasl_cases: the pool of clients over the bus) ------------- */

static pthread_mutex_t cases_lock = PTHREAD_MUTEX_INITIALIZER;
static wasl_cases_t *cases; /* made on the first lookup, from the configuration */

void intake_cases_shutdown(void)
{
    pthread_mutex_lock(&cases_lock);
    wasl_cases_destroy(&cases);
    pthread_mutex_unlock(&cases_lock);
}

/* Asks caselookup. Returns the reply (caller destroys) or NULL when it could not be asked or
 * did not answer in time. */
static wasl_msg_t *ask(const intake_request_t *req, const char *number, const char *kind,
                       const char *verifier, const char *channel, const char *call_id,
                       const char *caller)
{
    pthread_mutex_lock(&cases_lock);
    if (!cases) {
        const intake_config_t *cfg = req->cfg;
        wasl_cases_config_t cc = {.bus = cfg->bus,
                                  .bus_stages = cfg->bus_stages,
                                  .curve_dir = cfg->curve_dir,
                                  .curve_name = cfg->curve_name,
                                  .timeout_ms = RPC_TIMEOUT_MS,
                                  .retries = RPC_RETRIES};
        cases = wasl_cases_new(&cc);
    }
    wasl_cases_t *c = cases;
    pthread_mutex_unlock(&cases_lock);
    wasl_cases_ask_t a = {.id_prefix = channel,
                          .case_number = number,
                          .verifier_kind = kind,
                          .verifier = verifier,
                          .channel = channel,
                          .client = req->client.id,
                          .call_id = call_id,
                          .caller = caller};
    return c ? wasl_cases_ask(c, &a) : NULL;
}

/* What the case lookup's slow part needs, validated on the HTTP thread. */
typedef struct {
    char *number;
    char *nid;
    char *caller;
} case_get_arg_t;

static void case_get_arg_free(void *p)
{
    case_get_arg_t *a = p;
    if (a) {
        free(a->number);
        free(a->nid);
        free(a->caller);
        free(a);
    }
}

/* The slow part, on a lookup thread: asks caselookup (up to its timeouts) and answers. */
static void case_get_ask(intake_request_t *req, intake_reply_t *reply)
{
    const case_get_arg_t *a = req->offload_arg;
    wasl_msg_t *rep = ask(req, a->number, a->nid ? "national_id" : "caller_phone",
                          a->nid ? a->nid : a->caller, "api", NULL, a->caller);
    if (!rep) {
        intake_error(reply, 503, "unavailable", NULL, "case lookup is unavailable; try again");
        reply->retry_after_s = 1;
        return;
    }
    const wasl_msg_case_lookup_reply_t *r = &rep->u.case_lookup_reply;
    if (strcmp(r->outcome, "found") == 0) {
        reply->status = 200;
        reply->body = wasl_cases_found_json(r);
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
    wasl_msg_destroy(&rep);
}

void intake_handle_case_get(intake_request_t *req, intake_reply_t *reply)
{
    char *number = wasl_cases_digits(req->path_arg, WASL_CASE_NUMBER_DIGITS);
    const char *nid_text = intake_query(req, "national_id", NULL);
    const char *caller_text = intake_query(req, "caller", NULL);
    char *nid = NULL, *caller = NULL;
    case_get_arg_t *a = NULL;
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
    nid = nid_text ? wasl_cases_digits(nid_text, WASL_NATIONAL_ID_DIGITS) : NULL;
    if (nid_text && !wasl_cases_national_id_shaped(nid)) {
        intake_error(reply, 400, "invalid_field", "national_id",
                     "a national or resident ID is 10 digits starting with 1 or 2");
        goto done;
    }
    if (caller_text && intake_norm_phone(caller_text, "caller", req->cfg, &caller, reply) < 0) {
        goto done;
    }
    if (caller && !req->client.trusted_ani) {
        /* A phone number is not a secret: it verifies only when the network gave it, through a
         * telephony client trusted for caller ID. From anyone else it never verifies, and the
         * answer is the one a stranger gets (there is nothing to guess here, so nothing is
         * counted or asked). */
        intake_error(reply, 404, "not_found", NULL,
                     "no case with this number is registered to this verifier");
        goto done;
    }
    /* caselookup may take seconds to answer (or not answer): off the HTTP thread. */
    if (!(a = calloc(1, sizeof *a))) {
        intake_error(reply, 503, "unavailable", NULL, "out of memory");
        goto done;
    }
    a->number = number; /* ownership passes to the offloaded part's argument */
    a->nid = nid;
    a->caller = caller;
    number = nid = caller = NULL;
    req->offload = case_get_ask;
    req->offload_pool = INTAKE_POOL_LOOKUP;
    req->offload_arg = a;
    req->offload_arg_free = case_get_arg_free;
done:
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
                     expect_digits ? WASL_CASE_NUMBER_DIGITS : 0);
}

/* The i-th value of an HMGET reply, NULL when absent. */
static const char *field(const redisReply *s, size_t i)
{
    return s->element[i]->type == REDIS_REPLY_STRING ? s->element[i]->str : NULL;
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

/* The state of one IVR session, as kept in Redis between events. */
typedef struct {
    char step[32];   /* "" (new) | case_number | national_id | done */
    char number[16]; /* the case number typed, once valid */
    long tries;      /* malformed entries at this step */
} ivr_state_t;

static void ivr_state_read(const redisReply *s, size_t at, ivr_state_t *st)
{
    memset(st, 0, sizeof *st);
    snprintf(st->step, sizeof st->step, "%s", field(s, at) ? field(s, at) : "");
    snprintf(st->number, sizeof st->number, "%s", field(s, at + 1) ? field(s, at + 1) : "");
    st->tries = field(s, at + 2) ? strtol(field(s, at + 2), NULL, 10) : 0;
}

/* One step of the menu from state `st` (updated) with what the event typed. `caller` is the
 * network's caller number when the client is trusted for it, else NULL: only then is a phone a
 * verifier. Asks caselookup when a lookup is due (every ask is audited there). */
static json_t *ivr_step(intake_request_t *req, const char *call_id, const char *caller,
                        const char *digits, ivr_state_t *st)
{
    json_t *out = NULL;
    bool has_digits = digits && *digits;
    if (!*st->step || strcmp(st->step, "done") == 0 || !has_digits) {
        if (!*st->step || strcmp(st->step, "done") == 0) {
            st->tries = 0;
        }
        /* Entering the menu (again), or an event without digits: ask for what is missing. */
        if (strcmp(st->step, "national_id") == 0) {
            return ivr_json("national_id", SAY_ID_AR, SAY_ID_EN, true, NULL);
        }
        snprintf(st->step, sizeof st->step, "case_number");
        return ivr_json("case_number", SAY_CASE_AR, SAY_CASE_EN, true, NULL);
    }
    const char *next = st->step;
    if (strcmp(st->step, "case_number") == 0) {
        char *n = wasl_cases_digits(digits, WASL_CASE_NUMBER_DIGITS);
        if (!n) {
            if (++st->tries >= IVR_MAX_TRIES) {
                next = "done";
                out = ivr_json("done", SAY_GIVEUP_AR, SAY_GIVEUP_EN, false, "error");
            } else {
                out = ivr_json("case_number", SAY_CASE_AGAIN_AR, SAY_CASE_AGAIN_EN, true, NULL);
            }
        } else {
            snprintf(st->number, sizeof st->number, "%s", n);
            st->tries = 0;
            if (caller) {
                wasl_msg_t *rep =
                    ask(req, st->number, "caller_phone", caller, "phone", call_id, caller);
                out = ivr_answer(rep, true, &next);
                wasl_msg_destroy(&rep);
            } else {
                next = "national_id";
                out = ivr_json("national_id", SAY_ID_AR, SAY_ID_EN, true, NULL);
            }
            free(n);
        }
    } else { /* national_id */
        char *nid = wasl_cases_digits(digits, WASL_NATIONAL_ID_DIGITS);
        if (!wasl_cases_national_id_shaped(nid) || !*st->number) {
            if (++st->tries >= IVR_MAX_TRIES) {
                next = "done";
                out = ivr_json("done", SAY_GIVEUP_AR, SAY_GIVEUP_EN, false, "error");
            } else {
                out = ivr_json("national_id", SAY_ID_AGAIN_AR, SAY_ID_AGAIN_EN, true, NULL);
            }
        } else {
            wasl_msg_t *rep = ask(req, st->number, "national_id", nid, "phone", call_id, caller);
            out = ivr_answer(rep, false, &next);
            wasl_msg_destroy(&rep);
        }
        free(nid);
    }
    if (next != st->step) {
        snprintf(st->step, sizeof st->step, "%s", next);
    }
    return out;
}

/* The caller's number, which counts only from a client trusted for caller ID: this event's
 * `from`, else the one sealed in the session (`kept`, or NULL). It is kept sealed (never in
 * clear in Redis), for the events of the call that do not repeat it: *sealed is what to store,
 * or NULL when the session already holds it. Both owned by the caller. */
static void ivr_caller(const intake_request_t *req, const char *from, const char *kept,
                       char **caller, char **sealed)
{
    *caller = *sealed = NULL;
    if (!req->client.trusted_ani) {
        return;
    }
    if (from) {
        intake_reply_t ignore = {0};
        if (intake_norm_phone(from, "from", req->cfg, caller, &ignore) < 0) {
            *caller = NULL;
        }
        json_decref(ignore.body);
    }
    if (!*caller && kept) {
        *caller = wasl_pii_open(kept);
    }
    if (*caller && (!kept || from)) {
        *sealed = wasl_pii_seal(*caller);
    }
}

/* Stores the session after event `seq`: the state it is now in, the one it was decided from
 * (for a repeat of this event), the sealed caller when there is a new one, and the TTL. Best
 * effort, as every Redis write of the IVR. */
static void ivr_session_save(wasl_redis_t *r, const char *key, long long seq,
                             const ivr_state_t *now, const ivr_state_t *before, const char *sealed,
                             long ttl_s)
{
    char seqs[24], tries[24], prev_tries[24];
    snprintf(seqs, sizeof seqs, "%lld", seq);
    snprintf(tries, sizeof tries, "%ld", now->tries);
    snprintf(prev_tries, sizeof prev_tries, "%ld", before->tries);
    redisReply *w = wasl_redis_cmd(r,
                                   "HSET %s last_seq %s step %s number %s tries %s prev_step %s "
                                   "prev_number %s prev_tries %s",
                                   key, seqs, now->step, now->number, tries, before->step,
                                   before->number, prev_tries);
    if (w) {
        freeReplyObject(w);
    }
    if (sealed) {
        w = wasl_redis_cmd(r, "HSET %s ani %s", key, sealed);
        if (w) {
            freeReplyObject(w);
        }
    }
    w = wasl_redis_cmd(r, "EXPIRE %s %ld", key, ttl_s);
    if (w) {
        freeReplyObject(w);
    }
}

json_t *intake_cases_ivr(intake_request_t *req, const char *call_id, long long seq,
                         const char *from, const char *digits)
{
    wasl_redis_t *r = req->auth ? intake_auth_redis(req->auth) : NULL;
    if (!r) {
        return ivr_json("done", SAY_DOWN_AR, SAY_DOWN_EN, false, "error");
    }
    /* The session belongs to the client and the call: another client naming the same call id
     * reaches a session of its own, never this one. */
    char key[KEY_MAX];
    snprintf(key, sizeof key, "wasl:ivr:%s:%s", req->client.id, call_id);
    redisReply *s = wasl_redis_cmd(r,
                                   "HMGET %s last_seq ani step number tries prev_step "
                                   "prev_number prev_tries",
                                   key);
    if (!s || s->type != REDIS_REPLY_ARRAY || s->elements != 8) {
        if (s) {
            freeReplyObject(s);
        }
        return ivr_json("done", SAY_DOWN_AR, SAY_DOWN_EN, false, "error");
    }
    long long last_seq = field(s, 0) ? strtoll(field(s, 0), NULL, 10) : -1;
    ivr_state_t now, before;
    ivr_state_read(s, 2, &now);
    ivr_state_read(s, 5, &before);
    char *caller, *sealed;
    ivr_caller(req, from, field(s, 1), &caller, &sealed);
    freeReplyObject(s);
    json_t *out;
    if (seq < last_seq) {
        /* An older event arriving late: it changes nothing and discloses nothing; the caller
         * hears the current step's prompt again. */
        ivr_state_t ignore = now;
        if (strcmp(ignore.step, "done") == 0) {
            ignore.step[0] = '\0';
        }
        out = ivr_step(req, call_id, caller, NULL, &ignore);
        free(caller);
        free(sealed);
        return out;
    }
    if (seq == last_seq) {
        /* The PBX repeated the last event: it is decided again from the state it was decided
         * in — a lookup is asked (and audited) again, never answered from a stored copy. */
        now = before;
    } else {
        before = now;
    }
    out = ivr_step(req, call_id, caller, digits, &now);
    ivr_session_save(r, key, seq, &now, &before, sealed, req->cfg->ivr_ttl_s);
    free(caller);
    free(sealed);
    return out;
}
