/* lookup — wasl-caselookup's request handling: verification, lockout, cache, audit, replies. */
#include "lookup.h"
#include "wasl_clock.h"
#include "dedup.h"
#include "wasl_log.h"
#include "wasl_metrics.h"
#include "wasl_pg.h"
#include "wasl_pii.h"
#include "wasl_redis.h"
#include "wasl_signal.h"
#include "wasl_work.h"

#include <assert.h>
#include <jansson.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OWNER_MAX       128
#define POLL_MS         500
#define HEARINGS_MAX    8
#define UPDATES_MAX     3
#define VERIFIERS_MAX   64
#define CASE_NUMBER_LEN 10
#define KEY_MAX         128
#define TEXT_MAX        1024
#define SPEECH_MAX      4096
#define NOTIFY_CHANNEL  "wasl_case_changed"
#define CACHE_PREFIX    "wasl:case:"
/* Resends waiting for another worker's answer: how many at most, how long each at most (a
 * client has given up long before), and how often they look while any wait. */
#define PARKED_MAX     256
#define PARKED_MAX_MS  10000
#define PARKED_POLL_MS 20
#define FP_HEX         (DEDUP_FP_LEN + 1)
/* Cached cases kept parsed, by case number (direct-mapped): a hot case is parsed once per
 * change instead of once per lookup (parsing was 10% of a worker's CPU, perf). */
#define PARSED_SLOTS 2048

/* A case in one row. Verifiers come as "kind:value" and are replaced by their keyed hashes
 * (lookup_case_key_verifiers) before the row is used or cached, so Redis never holds one in
 * clear or under a bare SHA-256 that enumeration reverses. Only hearings from yesterday on are
 * kept (the next one is chosen at reply time). */
static const char *const case_sql =
    "SELECT json_build_object("
    " 'case_number', c.case_number, 'version', c.version, 'status', c.status,"
    " 'court_ar', co.name_ar, 'court_en', co.name_en, 'circuit_ar', ci.name_ar,"
    " 'circuit_en', ci.name_en, 'tz', co.time_zone,"
    " 'verifiers', (SELECT coalesce(json_agg(v), '[]') FROM ("
    "   SELECT 'national_id:' || p.national_id v"
    "   FROM case_parties p WHERE p.case_id = c.id AND p.national_id IS NOT NULL UNION"
    "   SELECT 'caller_phone:' || p.phone"
    "   FROM case_parties p WHERE p.case_id = c.id AND p.phone IS NOT NULL) x),"
    " 'hearings', (SELECT coalesce(json_agg(json_build_array("
    "     extract(epoch FROM h.starts_at)::bigint, h.kind_ar, h.kind_en) ORDER BY h.starts_at),"
    "     '[]') FROM (SELECT * FROM case_hearings h WHERE h.case_id = c.id"
    "     AND h.starts_at > now() - interval '1 day' ORDER BY h.starts_at LIMIT 8) h),"
    " 'updates', (SELECT coalesce(json_agg(json_build_array(u.text_ar, u.text_en)"
    "     ORDER BY u.at DESC), '[]') FROM (SELECT * FROM case_updates u WHERE u.case_id = c.id"
    "     ORDER BY u.at DESC LIMIT 3) u))"
    " FROM cases c JOIN circuits ci ON ci.id = c.circuit_id JOIN courts co ON co.id = ci.court_id"
    " WHERE c.case_number = $1";

/* A request already audited (its hash is there: a resend whose first answer was not kept in
 * Redis) writes no second row; RETURNING tells how many did. */
static const char *const audit_sql =
    "INSERT INTO case_lookup_audit (request_id, case_number, verifier_kind, verifier_masked,"
    " caller_masked, channel, client, call_id, outcome, reason, cached, worker, ticket_ref,"
    " recipient_kind, recipient_masked, request_sha256)"
    " SELECT request_id, case_number, verifier_kind, verifier_masked, caller_masked, channel,"
    " client, call_id, outcome, reason, cached, $2, ticket_ref, recipient_kind,"
    " recipient_masked, request_sha256 FROM jsonb_to_recordset($1::jsonb) AS x("
    " request_id text, case_number text, verifier_kind text, verifier_masked text,"
    " caller_masked text, channel text, client text, call_id text, outcome text, reason text,"
    " cached boolean, ticket_ref text, recipient_kind text, recipient_masked text,"
    " request_sha256 text)"
    " ON CONFLICT (request_sha256) DO NOTHING RETURNING 1";

/* The verified party's contact on file, for an automatic answer: the party the verifier
 * matched, its registered phone first (like a one-time code), else its registered e-mail. */
static const char *const contact_sql =
    "SELECT coalesce(p.phone, ''), coalesce(p.email, '') FROM case_parties p"
    " JOIN cases c ON c.id = p.case_id WHERE c.case_number = $1"
    " AND CASE $2 WHEN 'national_id' THEN p.national_id = $3 ELSE p.phone = $3 END"
    " AND (p.phone IS NOT NULL OR p.email IS NOT NULL)"
    " ORDER BY p.phone IS NULL, p.id LIMIT 1";

/* The failure budgets (finding 5 of issue 13). Three budgets hold every request: its verifier
 * (the national ID or phone, whatever channel or field carried it), its line (the caller's
 * trusted phone line, else the asking client) and its case. Each request of a batch is first
 * DECIDED in memory (is the verifier a party?) but nothing is disclosed yet; then this one
 * script JUDGES the whole batch, in order, atomically: a request meeting a lock or a spent count
 * is refused; a failure is counted against all three budgets, and every budget it fills is
 * locked at once; a success counts nothing. Only what the script lets through is answered. So
 * however many requests arrive together (a router batch, parallel HTTP requests, several
 * workers), no budget lets more failures than its limit reach a real decision in a window, and a
 * party's own successes never use up their budget.
 *
 * KEYS, per request: verifier count, verifier lock, line count, line lock, case count, case
 * lock. ARGV: window_s, lock_s, then per request its verdict ("f" failure, "s" success), the
 * three limits and whether the case budget applies ("1"/"0": not for a trusted phone line that
 * is itself the verifier, see docs/architecture.md "Security"). Returns per request {1 allowed
 * | 0 refused, seconds to wait, bitmask of the budgets that refused (1 verifier, 2 line,
 * 4 case), bitmask of the budgets this request's failure locked}. */
static const char *const judge_lua =
    "local out = {} "
    "for i = 0, #KEYS / 6 - 1 do "
    "  local k, a = i * 6, 3 + i * 5 "
    "  local wait, why, set = 0, 0, 0 "
    "  for j = 0, 2 do "
    "    if j < 2 or ARGV[a + 4] == '1' then "
    "      local t = redis.call('TTL', KEYS[k + 2 + 2 * j]) "
    "      if tonumber(redis.call('GET', KEYS[k + 1 + 2 * j]) or '0') >= tonumber(ARGV[a + 1 + j])"
    "      then local t2 = redis.call('TTL', KEYS[k + 1 + 2 * j]) if t2 < 1 then t2 = 1 end "
    "        if t2 > t then t = t2 end end "
    "      if t > 0 then why = why + 2 ^ j if t > wait then wait = t end end "
    "    end "
    "  end "
    "  if wait == 0 and ARGV[a] == 'f' then "
    "    for j = 0, 2 do "
    "      if j < 2 or ARGV[a + 4] == '1' then "
    "        local ck = KEYS[k + 1 + 2 * j] "
    "        local c = redis.call('INCR', ck) "
    "        if c == 1 then redis.call('EXPIRE', ck, ARGV[1]) end "
    "        if c >= tonumber(ARGV[a + 1 + j]) then "
    "          redis.call('SET', KEYS[k + 2 + 2 * j], '1', 'EX', ARGV[2]) redis.call('DEL', ck) "
    "          set = set + 2 ^ j end "
    "      end "
    "    end "
    "  end "
    "  out[4 * i + 1] = (wait > 0) and 0 or 1 out[4 * i + 2] = wait "
    "  out[4 * i + 3] = why out[4 * i + 4] = set "
    "end return out";
#define JUDGE_KEYS      6
#define JUDGE_ARGS      5
#define JUDGE_OUT       4
#define BUDGET_VERIFIER 1
#define BUDGET_LINE     2
#define BUDGET_CASE     4
/* Keys looked at per SCAN step when the whole cache is dropped. */
#define CACHE_SCAN_COUNT 500

struct lookup_case {
    int refs; /* the parse memo and each verdict hold one (one thread: not atomic) */
    json_t *doc;
    int64_t hearings[HEARINGS_MAX];
    const char *hearing_kind_ar[HEARINGS_MAX], *hearing_kind_en[HEARINGS_MAX];
    size_t nhearings;
};

/* ---- pure parts ------------------------------------------------------------------------- */

lookup_case_t *lookup_case_parse(const char *text)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    lookup_case_t *c = calloc(1, sizeof *c);
    if (!c) {
        json_decref(doc);
        return NULL;
    }
    c->doc = doc;
    c->refs = 1;
    static const char *const need[] = {"case_number", "status",     "court_ar", "court_en",
                                       "circuit_ar",  "circuit_en", "tz",       NULL};
    for (const char *const *k = need; *k; k++) {
        if (!json_is_string(json_object_get(doc, *k))) {
            goto malformed;
        }
    }
    json_t *h = json_object_get(doc, "hearings");
    if (!json_is_array(h) || !json_is_array(json_object_get(doc, "verifiers")) ||
        !json_is_array(json_object_get(doc, "updates"))) {
        goto malformed;
    }
    size_t i;
    json_t *v;
    json_array_foreach(h, i, v)
    {
        if (c->nhearings == HEARINGS_MAX) {
            break;
        }
        if (!json_is_array(v) || !json_is_integer(json_array_get(v, 0))) {
            goto malformed;
        }
        c->hearings[c->nhearings] = json_integer_value(json_array_get(v, 0));
        c->hearing_kind_ar[c->nhearings] = json_string_value(json_array_get(v, 1));
        c->hearing_kind_en[c->nhearings] = json_string_value(json_array_get(v, 2));
        c->nhearings++;
    }
    return c;
malformed:
    lookup_case_destroy(&c);
    return NULL;
}

void lookup_case_destroy(lookup_case_t **self_p)
{
    if (self_p && *self_p) {
        if (--(*self_p)->refs == 0) {
            json_decref((*self_p)->doc);
            free(*self_p);
        }
        *self_p = NULL;
    }
}

lookup_case_t *lookup_case_ref(lookup_case_t *c)
{
    c->refs++;
    return c;
}

bool lookup_case_has_verifier(const lookup_case_t *c, const char *hash)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(c->doc, "verifiers"), i, v)
    {
        const char *s = json_string_value(v);
        if (s && strlen(s) == 64 && sodium_memcmp(s, hash, 64) == 0) {
            return true;
        }
    }
    return false;
}

void lookup_verifier_hash(const char *kind, const char *value, char out[65])
{
    wasl_pii_hash(kind, value, out);
}

int lookup_case_key_verifiers(json_t *doc)
{
    json_t *list = json_object_get(doc, "verifiers");
    if (!json_is_array(list)) {
        return -1;
    }
    json_t *keyed = json_array();
    if (!keyed) {
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *s = json_string_value(v);
        const char *colon = s ? strchr(s, ':') : NULL;
        char kind[32], hash[WASL_PII_HASH_BUF];
        if (!colon || (size_t)(colon - s) >= sizeof kind) {
            json_decref(keyed);
            return -1;
        }
        memcpy(kind, s, (size_t)(colon - s));
        kind[colon - s] = '\0';
        wasl_pii_hash(kind, colon + 1, hash);
        if (json_array_append_new(keyed, json_string(hash)) < 0) {
            json_decref(keyed);
            return -1;
        }
    }
    return json_object_set_new(doc, "verifiers", keyed);
}

static const struct {
    const char *code, *ar, *en;
} statuses[] = {
    {"filed", "مقيدة", "registered"},
    {"under_review", "قيد الدراسة", "under review"},
    {"in_hearing", "منظورة", "being heard"},
    {"adjourned", "مؤجلة", "adjourned"},
    {"judgment_issued", "صدر فيها حكم", "decided: a judgment was issued"},
    {"appealed", "معترض عليها", "under appeal"},
    {"closed", "منتهية", "closed"},
};

static void status_words(const char *code, const char **ar, const char **en)
{
    *ar = code;
    *en = code;
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        if (strcmp(statuses[i].code, code) == 0) {
            *ar = statuses[i].ar;
            *en = statuses[i].en;
        }
    }
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* "4 5 1 2 …": text-to-speech reads a spaced number digit by digit. */
static void spaced_digits(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 3 < cap; p++) {
        if (o > 0) {
            out[o++] = ' ';
        }
        out[o++] = *p;
    }
    out[o] = '\0';
}

/* wasl_hijri_from_utc through a small per-thread memo: the answer depends only on the instant
 * and the zone, and ICU's calendar arithmetic was 7% of a worker's CPU when every cached lookup
 * converted its hearing date again (perf, bench-caselookup). */
#define HIJRI_MEMO 1024
static int hijri_memo(int64_t utc_s, const char *tz, wasl_hijri_date_t *out, char *err,
                      size_t errlen)
{
    static _Thread_local struct {
        int64_t utc_s;
        char tz[48];
        wasl_hijri_date_t date;
        bool set;
    } memo[HIJRI_MEMO];
    size_t slot = (size_t)((uint64_t)utc_s * 0x9E3779B97F4A7C15u >> 32) % HIJRI_MEMO;
    bool keyable = tz && strlen(tz) < sizeof memo[0].tz;
    if (keyable && memo[slot].set && memo[slot].utc_s == utc_s && !strcmp(memo[slot].tz, tz)) {
        *out = memo[slot].date;
        return 0;
    }
    if (wasl_hijri_from_utc(utc_s, tz, out, err, errlen) < 0) {
        return -1;
    }
    if (keyable) {
        memo[slot].utc_s = utc_s;
        snprintf(memo[slot].tz, sizeof memo[slot].tz, "%s", tz);
        memo[slot].date = *out;
        memo[slot].set = true;
    }
    return 0;
}

/* The hearing's fields of r and its sentence in both languages (hearing_ar/_en, cap bytes
 * each): hearing `next` (index hi of c's hearings), or "none scheduled" when next is 0. 0, or
 * -1 when out of memory or the date cannot be given. */
static int render_hearing(const lookup_case_t *c, size_t hi, int64_t next, wasl_digits_t digits,
                          wasl_msg_case_lookup_reply_t *r, char *hearing_ar, char *hearing_en,
                          size_t cap)
{
    const json_t *d = c->doc;
    char text_ar[TEXT_MAX], text_en[TEXT_MAX];
    if (next) {
        wasl_hijri_date_t hd;
        char err[160], buf[64];
        if (hijri_memo(next, jstr(d, "tz"), &hd, err, sizeof err) < 0) {
            wasl_error("caselookup: hearing date cannot be given", "{s:s, s:s}", "case",
                       jstr(d, "case_number"), "error", err);
            return -1;
        }
        wasl_hijri_text_ar(&hd, digits, text_ar, sizeof text_ar);
        wasl_hijri_text_en(&hd, text_en, sizeof text_en);
        struct tm tm;
        time_t t = (time_t)next;
        gmtime_r(&t, &tm);
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
        r->hearing_utc = strdup(buf);
        wasl_hijri_local_rfc3339(&hd, buf, sizeof buf);
        r->hearing_local = strdup(buf);
        r->hijri_year = (uint64_t)hd.year;
        r->hijri_month = (uint64_t)hd.month;
        r->hijri_day = (uint64_t)hd.day;
        r->has_hijri_year = r->has_hijri_month = r->has_hijri_day = true;
        r->hijri_month_name_ar = strdup(wasl_hijri_month_ar(hd.month));
        r->hearing_text_ar = strdup(text_ar);
        r->hearing_text_en = strdup(text_en);
        if (!r->hearing_utc || !r->hearing_local || !r->hijri_month_name_ar ||
            !r->hearing_text_ar || !r->hearing_text_en) {
            return -1;
        }
        const char *kind_ar = c->hearing_kind_ar[hi] ? c->hearing_kind_ar[hi] : "";
        const char *kind_en = c->hearing_kind_en[hi] ? c->hearing_kind_en[hi] : "hearing";
        snprintf(hearing_ar, cap, "موعد الجلسة القادمة (%s) يوم %s.", kind_ar, text_ar);
        snprintf(hearing_en, cap, "The next hearing (%s) is on %s.", kind_en, text_en);
    } else {
        snprintf(hearing_ar, cap, "لا توجد جلسة قادمة محددة حتى الآن.");
        snprintf(hearing_en, cap, "No hearing is scheduled yet.");
    }
    return 0;
}

/* The case's latest updates (at most UPDATES_MAX) into r, digits as asked; *last_ar/_en point
 * at the newest one's text in d (NULL when there is none). 0, or -1 when out of memory. */
static int render_updates(const json_t *d, wasl_digits_t digits, wasl_msg_case_lookup_reply_t *r,
                          const char **last_ar, const char **last_en)
{
    json_t *ups = json_object_get(d, "updates");
    size_t nup = json_array_size(ups) < UPDATES_MAX ? json_array_size(ups) : UPDATES_MAX;
    if (nup > 0) {
        r->updates = calloc(nup + 1, sizeof *r->updates);
        if (!r->updates) {
            return -1;
        }
        for (size_t i = 0; i < nup; i++) {
            json_t *u = json_array_get(ups, i);
            const char *s = json_string_value(json_array_get(u, 0));
            char tmp[TEXT_MAX];
            wasl_digits_write(s ? s : "", digits, tmp, sizeof tmp);
            if (!(r->updates[i] = strdup(tmp))) {
                return -1;
            }
            r->updates_count++;
        }
        *last_ar = json_string_value(json_array_get(json_array_get(ups, 0), 0));
        *last_en = json_string_value(json_array_get(json_array_get(ups, 0), 1));
    }
    return 0;
}

int lookup_render_found(const lookup_case_t *c, int64_t now_s, wasl_digits_t digits,
                        wasl_msg_case_lookup_reply_t *r)
{
    const json_t *d = c->doc;
    const char *st_ar, *st_en;
    status_words(jstr(d, "status"), &st_ar, &st_en);
    char court[TEXT_MAX], spaced[64], latin[SPEECH_MAX];
    char speech_ar[SPEECH_MAX], speech_en[SPEECH_MAX];
    snprintf(court, sizeof court, "%s", jstr(d, "court_ar"));
    r->outcome = strdup("found");
    r->case_number = strdup(jstr(d, "case_number"));
    r->court = strdup(court);
    r->circuit = strdup(jstr(d, "circuit_ar"));
    r->status = strdup(jstr(d, "status"));
    r->status_ar = strdup(st_ar);
    if (!r->outcome || !r->case_number || !r->court || !r->circuit || !r->status || !r->status_ar) {
        return -1;
    }
    spaced_digits(jstr(d, "case_number"), spaced, sizeof spaced);
    int64_t next = 0;
    size_t hi;
    for (hi = 0; hi < c->nhearings; hi++) {
        if (c->hearings[hi] >= now_s) {
            next = c->hearings[hi];
            break;
        }
    }
    char hearing_ar[TEXT_MAX + 256] = "", hearing_en[TEXT_MAX + 256] = "";
    if (render_hearing(c, hi, next, digits, r, hearing_ar, hearing_en, sizeof hearing_ar) < 0) {
        return -1;
    }
    const char *last_ar = NULL, *last_en = NULL;
    if (render_updates(d, digits, r, &last_ar, &last_en) < 0) {
        return -1;
    }
    snprintf(latin, sizeof latin, "قضيتكم رقم %s لدى %s في %s، وحالتها: %s. %s%s%s%s", spaced,
             jstr(d, "circuit_ar"), jstr(d, "court_ar"), st_ar, hearing_ar,
             last_ar ? " آخر المستجدات: " : "", last_ar ? last_ar : "", last_ar ? "." : "");
    wasl_digits_write(latin, digits, speech_ar, sizeof speech_ar);
    snprintf(speech_en, sizeof speech_en,
             "Your case number %s is with the %s of the %s, and it "
             "is %s. %s%s%s%s",
             spaced, jstr(d, "circuit_en"), jstr(d, "court_en"), st_en, hearing_en,
             last_en ? " Latest update: " : "", last_en ? last_en : "", last_en ? "." : "");
    r->speech_ar = strdup(speech_ar);
    r->speech_en = strdup(speech_en);
    return r->speech_ar && r->speech_en ? 0 : -1;
}

/* One sentence for "no such case" and "not your case": nothing tells them apart. */
#define DENIED_AR                                                                                                                         \
    "عذرًا، لا يمكننا إعطاء معلومات عن هذه القضية. تأكد من رقم القضية ومن رقم " \
    "الهوية المسجل لدى المحكمة، أو انتظر للتحدث مع أحد موظفينا."
#define DENIED_EN                                                                                  \
    "Sorry, we cannot give information about this case. Check the case number "                    \
    "and the identity number registered with the court, or hold to speak to "                      \
    "one of our staff."
#define LOCKED_AR                                                                                                                        \
    "تم إيقاف الاستعلام مؤقتًا بسبب محاولات غير صحيحة متكررة. يرجى المحاولة " \
    "لاحقًا أو انتظار أحد موظفينا."
#define LOCKED_EN                                                                                  \
    "Case enquiries are paused for now after repeated unsuccessful attempts. "                     \
    "Please try again later or hold for one of our staff."

int lookup_render_denied(wasl_msg_case_lookup_reply_t *r)
{
    r->outcome = strdup("denied");
    r->speech_ar = strdup(DENIED_AR);
    r->speech_en = strdup(DENIED_EN);
    return r->outcome && r->speech_ar && r->speech_en ? 0 : -1;
}

const char *lookup_denial_reason(bool well_formed, const lookup_case_t *c, const char *vhash)
{
    if (!well_formed) {
        return "bad_request";
    }
    if (!c) {
        return "no_case";
    }
    return lookup_case_has_verifier(c, vhash) ? NULL : "not_party";
}

int lookup_render_verdict(const char *reason, const lookup_case_t *c, int64_t now_s,
                          wasl_digits_t digits, wasl_msg_case_lookup_reply_t *r)
{
    /* The reason goes to the audit only: every denial is the same reply. */
    return reason ? lookup_render_denied(r) : lookup_render_found(c, now_s, digits, r);
}

int lookup_render_locked(wasl_msg_case_lookup_reply_t *r, long retry_after_s)
{
    r->outcome = strdup("locked");
    r->retry_after_s = (uint64_t)(retry_after_s > 0 ? retry_after_s : 1);
    r->has_retry_after_s = true;
    r->speech_ar = strdup(LOCKED_AR);
    r->speech_en = strdup(LOCKED_EN);
    return r->outcome && r->speech_ar && r->speech_en ? 0 : -1;
}

/* ---- the daemon ------------------------------------------------------------------------- */

/* A request as it came off the socket, before it is known to be new or a resend. */
typedef struct incoming {
    zmsg_t *envelope; /* routing frames of the request, reused for the reply */
    wasl_msg_t *req;
    char key[DEDUP_KEY_MAX], fp[FP_HEX];
    double started_s;
    int64_t parked_until_ms;  /* 0 until it first waits for another worker */
    char cache_key[KEY_MAX];  /* its case in Redis ("…-" when not cacheable) */
    const redisReply *cached; /* that key's value, read with the claims (borrowed) */
} incoming_t;

static void incoming_clear(incoming_t *in)
{
    zmsg_destroy(&in->envelope);
    wasl_msg_destroy(&in->req);
}

/* A cached case's text as Redis gave it and its parse: reused while Redis gives the same bytes
 * (a change evicts the Redis entry, and the next text differs: its version changed). */
typedef struct {
    char *text;
    lookup_case_t *c;
} parsed_t;

struct lookup {
    const lookup_config_t *cfg;
    parsed_t *parsed;       /* PARSED_SLOTS */
    struct incoming *batch; /* batch_max + PARKED_MAX: serve_batch's requests */
    wasl_pg_t *pg;
    wasl_pg_t *listen_pg; /* its own connection: LISTEN for change notices */
    PGconn *listening; /* the connection the LISTEN was issued on (re-issued after a reconnect) */
    wasl_redis_t *redis;
    dedup_t *dedup;
    zsock_t *dealer;
    char owner[OWNER_MAX];
    struct incoming *parked; /* resends waiting for another worker's answer */
    size_t nparked;
    atomic_bool pg_ok, redis_ok;
    wasl_counter_t *found, *denied, *locked, *errors, *lockouts, *hits, *misses, *bad,
        *audit_failed, *invalidated, *replayed, *conflicts, *parked_dropped, *audit_dupes;
    wasl_histogram_t *latency;
    wasl_gauge_t *hit_ratio;
};

static void update_ratio(void *arg)
{
    lookup_t *self = arg;
    double h = (double)wasl_counter_value(self->hits);
    double m = (double)wasl_counter_value(self->misses);
    wasl_gauge_set(self->hit_ratio, h + m > 0 ? h / (h + m) : 0);
}

lookup_t *lookup_new(const lookup_config_t *cfg, wasl_zmq_t *zmq)
{
    if (sodium_init() < 0) {
        return NULL;
    }
    lookup_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->cfg = cfg;
    wasl_work_owner("caselookup", self->owner, sizeof self->owner);
    self->pg = wasl_pg_new(cfg->pg_url);
    self->listen_pg = wasl_pg_new(cfg->pg_url);
    self->redis = wasl_redis_new(cfg->redis_url, (int)cfg->redis_timeout_ms);
    self->dedup = dedup_new(cfg->redis_url, (int)cfg->redis_timeout_ms, self->owner);
    self->parked = calloc(PARKED_MAX, sizeof *self->parked);
    self->parsed = calloc(PARSED_SLOTS, sizeof *self->parsed);
    self->batch = calloc((size_t)cfg->batch_max + PARKED_MAX, sizeof *self->batch);
    if (!self->pg || !self->listen_pg || !self->redis || !self->dedup || !self->parked ||
        !self->parsed || !self->batch) {
        goto error;
    }
    char *ep = wasl_bus_endpoints(cfg->bus, WASL_BUS_STAGES_DEFAULT, NULL, WASL_BUS_RPC_WORKER);
    if (!ep) {
        wasl_error("caselookup: WASL_BUS unusable", "{s:s}", "bus", cfg->bus);
        goto error;
    }
    self->dealer = wasl_zmq_connect(zmq, ZMQ_DEALER, ep);
    free(ep);
    if (!self->dealer) {
        goto error;
    }
    zsock_set_rcvtimeo(self->dealer, 0);
    const char *l = "outcome";
    char labels[64];
#define OUTCOME(var, name)                                                                         \
    snprintf(labels, sizeof labels, "%s=\"%s\"", l, name);                                         \
    self->var = wasl_counter("wasl_caselookup_lookups_total", "Case lookups by outcome", labels)
    OUTCOME(found, "found");
    OUTCOME(denied, "denied");
    OUTCOME(locked, "locked");
    OUTCOME(errors, "error");
#undef OUTCOME
    self->lockouts = wasl_counter("wasl_caselookup_lockouts_total",
                                  "Callers locked out after repeated failures", NULL);
    self->hits =
        wasl_counter("wasl_caselookup_cache_hits_total", "Lookups served from Redis", NULL);
    self->misses =
        wasl_counter("wasl_caselookup_cache_misses_total", "Lookups that read PostgreSQL", NULL);
    self->hit_ratio = wasl_gauge("wasl_caselookup_cache_hit_ratio",
                                 "Cache hits over all cacheable lookups since start", NULL);
    self->bad = wasl_counter("wasl_caselookup_bad_messages_total",
                             "Frames that were not a case.lookup.request", NULL);
    self->audit_failed = wasl_counter("wasl_caselookup_audit_failures_total",
                                      "Batches answered 'error' because the audit failed", NULL);
    self->invalidated = wasl_counter("wasl_caselookup_cache_invalidations_total",
                                     "Cached cases dropped on a change notice", NULL);
    self->replayed = wasl_counter("wasl_caselookup_resends_answered_total",
                                  "Resent requests answered with the answer already given", NULL);
    self->conflicts = wasl_counter("wasl_caselookup_request_id_conflicts_total",
                                   "Requests refused: their id belonged to another request", NULL);
    self->parked_dropped = wasl_counter("wasl_caselookup_resends_dropped_total",
                                        "Resends that waited for another worker in vain", NULL);
    self->audit_dupes = wasl_counter("wasl_caselookup_audit_duplicates_total",
                                     "Lookups already audited under the same request", NULL);
    self->latency = wasl_histogram("wasl_caselookup_latency_seconds",
                                   "From receipt to reply, audit commit included", NULL,
                                   wasl_latency_buckets_s, wasl_latency_buckets_n);
    wasl_metrics_on_render(update_ratio, self);
    if (wasl_pg_prepare(self->pg, "case", case_sql) < 0 ||
        wasl_pg_prepare(self->pg, "audit", audit_sql) < 0 ||
        wasl_pg_prepare(self->pg, "contact", contact_sql) < 0) {
        goto error;
    }
    return self;
error:
    lookup_destroy(&self);
    return NULL;
}

void lookup_destroy(lookup_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    lookup_t *self = *self_p;
    wasl_pg_destroy(&self->listen_pg);
    for (size_t i = 0; i < self->nparked; i++) {
        incoming_clear(&self->parked[i]);
    }
    free(self->parked);
    for (size_t i = 0; self->parsed && i < PARSED_SLOTS; i++) {
        free(self->parsed[i].text);
        lookup_case_destroy(&self->parsed[i].c);
    }
    free(self->parsed);
    free(self->batch);
    dedup_destroy(&self->dedup);
    zsock_destroy(&self->dealer);
    wasl_redis_destroy(&self->redis);
    wasl_pg_destroy(&self->pg);
    free(self);
    *self_p = NULL;
    wasl_hijri_thread_cleanup(); /* the loop's thread is the one that rendered dates */
}

bool lookup_ready(void *arg, char *why, size_t cap)
{
    lookup_t *self = arg;
    if (!atomic_load(&self->pg_ok)) {
        snprintf(why, cap, "postgresql unavailable");
        return false;
    }
    if (!atomic_load(&self->redis_ok)) {
        snprintf(why, cap, "redis unavailable");
        return false;
    }
    return true;
}

/* A LISTEN connection for change notices; a lost one is re-made by wasl_pg (rate-limited) and
 * LISTEN issued again (changes in between are bounded by the cache TTL). Returns the connection
 * to poll, or NULL. */
/* Drops every cached case, a slice at a time (SCAN, then UNLINK): KEYS would stall Redis for
 * every other user of it while it walks the whole keyspace. */
static void cache_drop_all(lookup_t *self)
{
    char cursor[32] = "0";
    do {
        redisReply *r = wasl_redis_cmd(self->redis, "SCAN %s MATCH %s* COUNT %d", cursor,
                                       CACHE_PREFIX, CACHE_SCAN_COUNT);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING) {
            if (r) {
                freeReplyObject(r);
            }
            return;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        if (keys->type == REDIS_REPLY_ARRAY && keys->elements > 0) {
            const char **argv = malloc((keys->elements + 1) * sizeof *argv);
            size_t *lens = malloc((keys->elements + 1) * sizeof *lens);
            if (argv && lens) {
                argv[0] = "UNLINK";
                lens[0] = 6;
                for (size_t i = 0; i < keys->elements; i++) {
                    argv[i + 1] = keys->element[i]->str;
                    lens[i + 1] = keys->element[i]->len;
                }
                redisReply *u =
                    wasl_redis_cmdargv(self->redis, (int)keys->elements + 1, argv, lens);
                if (u) {
                    freeReplyObject(u);
                }
            }
            free(argv);
            free(lens);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
}

static PGconn *listen_ensure(lookup_t *self)
{
    if (!wasl_pg_ok(self->listen_pg)) {
        self->listening = NULL;
        return NULL;
    }
    PGconn *conn = wasl_pg_conn(self->listen_pg);
    if (conn != self->listening) {
        if (wasl_pg_command(self->listen_pg, "LISTEN " NOTIFY_CHANNEL) < 0) {
            return NULL;
        }
        self->listening = conn;
        /* Whatever changed while nobody listened may be cached: drop the lot. */
        cache_drop_all(self);
    }
    return conn;
}

static void listen_drain(lookup_t *self, PGconn *conn)
{
    if (!PQconsumeInput(conn)) {
        self->listening = NULL; /* wasl_pg_ok() sees the broken connection next time */
        return;
    }
    PGnotify *n;
    while ((n = PQnotifies(conn))) {
        char key[KEY_MAX];
        snprintf(key, sizeof key, CACHE_PREFIX "%s", n->extra);
        redisReply *r = wasl_redis_cmd(self->redis, "DEL %s", key);
        if (r) {
            freeReplyObject(r);
            wasl_counter_inc(self->invalidated);
        }
        PQfreemem(n);
    }
}

static bool case_number_ok(const char *s)
{
    if (strlen(s) != CASE_NUMBER_LEN) {
        return false;
    }
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
    }
    return true;
}

/* The audit row of one lookup (new reference). */
static json_t *audit_row(const wasl_msg_case_lookup_request_t *q, const char *outcome,
                         const char *reason, bool cached)
{
    char vm[64], cm[64];
    if (strcmp(q->verifier_kind, "caller_phone") == 0) {
        wasl_mask_phone(q->verifier, vm, sizeof vm);
    } else {
        wasl_mask_id(q->verifier, vm, sizeof vm);
    }
    if (q->caller) {
        if (q->caller[0] == '+') {
            wasl_mask_phone(q->caller, cm, sizeof cm);
        } else {
            wasl_mask_id(q->caller, cm, sizeof cm);
        }
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s, s:s, s:s?, s:s, s:s?, s:b}", "request_id",
                     q->request_id, "case_number", q->case_number, "verifier_kind",
                     strcmp(q->verifier_kind, "caller_phone") == 0 ? "caller_phone" : "national_id",
                     "verifier_masked", vm, "caller_masked", q->caller ? cm : NULL, "channel",
                     q->channel, "client", q->client, "call_id", q->call_id, "outcome", outcome,
                     "reason", reason, "cached", cached);
}

/* The parse of a cached case's `text` (a new reference, or NULL when malformed), from the memo
 * when Redis gave these very bytes before. */
static lookup_case_t *parse_cached(lookup_t *self, const char *number, const char *text)
{
    uint32_t h = 2166136261u; /* FNV-1a of the case number */
    for (const char *p = number; *p; p++) {
        h = (h ^ (unsigned char)*p) * 16777619u;
    }
    parsed_t *slot = &self->parsed[h % PARSED_SLOTS];
    if (slot->text && strcmp(slot->text, text) == 0) {
        return lookup_case_ref(slot->c);
    }
    lookup_case_t *c = lookup_case_parse(text);
    char *copy = c ? strdup(text) : NULL;
    if (copy) {
        free(slot->text);
        lookup_case_destroy(&slot->c);
        slot->text = copy;
        slot->c = lookup_case_ref(c);
    }
    return c;
}

/* Loads a case (cache first). Returns 1 found (*out set), 0 no such case, -1 error. */
static int load_case(lookup_t *self, const char *number, const char *cached_text, bool *cached,
                     lookup_case_t **out)
{
    *out = NULL;
    *cached = false;
    if (cached_text) {
        *cached = true;
        wasl_counter_inc(self->hits);
        if (strcmp(cached_text, "null") == 0) {
            return 0;
        }
        *out = parse_cached(self, number, cached_text);
        if (*out) {
            return 1;
        }
        *cached = false; /* a foreign value: read the truth */
    }
    wasl_counter_inc(self->misses);
    const char *p[] = {number};
    PGresult *res = wasl_pg_exec(self->pg, "case", 1, p);
    if (!res) {
        atomic_store(&self->pg_ok, false);
        wasl_warn("caselookup: case query failed", "{s:s}", "error", wasl_pg_error(self->pg));
        return -1;
    }
    atomic_store(&self->pg_ok, true);
    char *text = NULL; /* what the cache keeps: the row with its verifiers keyed */
    int rc = 0;
    if (PQntuples(res) > 0) {
        json_t *doc = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
        if (doc && lookup_case_key_verifiers(doc) == 0) {
            text = json_dumps(doc, JSON_COMPACT);
        }
        json_decref(doc);
        *out = text ? lookup_case_parse(text) : NULL;
        rc = *out ? 1 : -1;
    }
    if (rc >= 0 && self->cfg->cache) {
        char key[KEY_MAX];
        snprintf(key, sizeof key, CACHE_PREFIX "%s", number);
        redisReply *r = wasl_redis_cmd(self->redis, "SET %s %s EX %ld", key, text ? text : "null",
                                       self->cfg->cache_ttl_s);
        if (r) {
            freeReplyObject(r);
        }
    }
    free(text);
    PQclear(res);
    return rc;
}

/* The Redis keys and budget limits of one request. */
typedef struct {
    char vhash[WASL_PII_HASH_BUF];
    /* In judge_lua's order: verifier count, lock; line count, lock; case count, lock. */
    char keys[JUDGE_KEYS][KEY_MAX];
    char limits[3][24]; /* verifier, line, case */
    bool case_applies;  /* false for a trusted phone line calling with its own number */
    bool kind_ok, number_ok;
} req_keys_t;

static void keys_for(const lookup_config_t *cfg, const wasl_msg_case_lookup_request_t *q,
                     req_keys_t *k)
{
    char line[WASL_PII_HASH_BUF];
    k->kind_ok = strcmp(q->verifier_kind, "national_id") == 0 ||
                 strcmp(q->verifier_kind, "caller_phone") == 0;
    k->number_ok = case_number_ok(q->case_number);
    /* One budget per verifier, whatever channel, client or field carried it. */
    wasl_pii_hash(k->kind_ok ? q->verifier_kind : "invalid", q->verifier, k->vhash);
    /* The line: the caller's phone line when the channel vouches for it, else the client. */
    bool by_line = q->caller && *q->caller;
    wasl_pii_hash(by_line ? "line" : "client", by_line ? q->caller : q->client, line);
    const char *number = k->number_ok ? q->case_number : "invalid";
    snprintf(k->keys[0], KEY_MAX, "wasl:cl:fail:v:%s", k->vhash);
    snprintf(k->keys[1], KEY_MAX, "wasl:cl:lock:v:%s", k->vhash);
    snprintf(k->keys[2], KEY_MAX, "wasl:cl:fail:l:%s", line);
    snprintf(k->keys[3], KEY_MAX, "wasl:cl:lock:l:%s", line);
    snprintf(k->keys[4], KEY_MAX, "wasl:cl:fail:c:%.32s", number);
    snprintf(k->keys[5], KEY_MAX, "wasl:cl:lock:c:%.32s", number);
    snprintf(k->limits[0], sizeof k->limits[0], "%ld", cfg->max_failures);
    snprintf(k->limits[1], sizeof k->limits[1], "%ld",
             by_line ? cfg->line_max_failures : cfg->client_max_failures);
    snprintf(k->limits[2], sizeof k->limits[2], "%ld", cfg->case_max_failures);
    /* A party calling from the phone on file through a telephony client trusted for caller ID
     * is not guessing (nobody chooses the number the network gives): the case's lock, which a
     * stranger can set, does not hold them, nor do they count against it. A phone verifier
     * that is the caller's line is what intake sends only from such a client; the router sends
     * no line (docs/architecture.md, "Security"). */
    k->case_applies = !(strcmp(q->verifier_kind, "caller_phone") == 0 && q->caller &&
                        strcmp(q->caller, q->verifier) == 0);
}

static const char *locked_reason(long long why)
{
    if (why & BUDGET_VERIFIER) {
        return "verifier_locked";
    }
    return why & BUDGET_LINE ? "line_locked" : "case_locked";
}

/* What a request was found to be before the budgets judge it. Nothing is disclosed yet. */
typedef struct {
    int found;          /* 1 a party of the case, 0 not (or no such case), -1 error */
    const char *reason; /* a denial's reason, or the error's */
    bool cached;
    lookup_case_t *c; /* the case when found (owned) */
} verdict_t;

static void decide(lookup_t *self, const wasl_msg_case_lookup_request_t *q, const req_keys_t *k,
                   const redisReply *cached_reply, verdict_t *v)
{
    memset(v, 0, sizeof *v);
    if (!k->kind_ok || !k->number_ok) {
        v->reason = lookup_denial_reason(false, NULL, k->vhash);
        return;
    }
    const char *cached_text =
        cached_reply && cached_reply->type == REDIS_REPLY_STRING ? cached_reply->str : NULL;
    int rc = load_case(self, q->case_number, cached_text, &v->cached, &v->c);
    if (rc < 0) {
        v->found = -1;
        v->reason = "database_unavailable";
    } else {
        v->reason = lookup_denial_reason(true, v->c, k->vhash);
        v->found = v->reason == NULL;
    }
    if (!v->found) {
        lookup_case_destroy(&v->c); /* nothing of a case goes into a denial */
    }
}

/* Answers one request from its verdict and the budgets' judgement (`judged`: judge_lua's four
 * values, NULL when the request was not judged — an error — or Redis did not answer); fills
 * `rep` and appends the audit row. Returns the outcome counter. */
static wasl_counter_t *answer(lookup_t *self, const wasl_msg_case_lookup_request_t *q, verdict_t *v,
                              redisReply *const *judged, wasl_msg_case_lookup_reply_t *rep,
                              json_t *audit)
{
    if (v->found < 0 || !judged || judged[0]->type != REDIS_REPLY_INTEGER ||
        judged[1]->type != REDIS_REPLY_INTEGER || judged[2]->type != REDIS_REPLY_INTEGER) {
        /* Without Redis no budget can be enforced: refuse rather than disclose. */
        rep->outcome = strdup("error");
        json_array_append_new(
            audit,
            audit_row(q, "error", v->found < 0 ? v->reason : "redis_unavailable", v->cached));
        return self->errors;
    }
    if (judged[0]->integer == 0) {
        lookup_render_locked(rep, (long)judged[1]->integer);
        json_array_append_new(audit,
                              audit_row(q, "locked", locked_reason(judged[2]->integer), v->cached));
        return self->locked;
    }
    int rc = lookup_render_verdict(v->found ? NULL : v->reason, v->c, (int64_t)time(NULL),
                                   (wasl_digits_t)self->cfg->digits, rep);
    if (v->found == 0) {
        json_array_append_new(audit, audit_row(q, "denied", v->reason, v->cached));
        return self->denied;
    }
    if (rc < 0) {
        wasl_msg_case_lookup_reply_t blank = {.request_id = rep->request_id};
        rep->request_id = NULL;
        /* Drop whatever was half-filled, keep the id. */
        wasl_msg_t tmp = {.type = WASL_MSG_CASE_LOOKUP_REPLY, .u.case_lookup_reply = *rep};
        wasl_msg_t *tp = malloc(sizeof tmp);
        if (tp) {
            *tp = tmp;
            wasl_msg_destroy(&tp);
        }
        *rep = blank;
        rep->outcome = strdup("error");
        json_array_append_new(audit, audit_row(q, "error", "render_failed", v->cached));
        return self->errors;
    }
    json_array_append_new(audit, audit_row(q, "found", NULL, v->cached));
    return self->found;
}

/* The MGET of the cached cases of `m` requests (argv: m + 1 entries, borrowing their keys),
 * read in the claims' round trip. Returns argc, 0 when the cache is off or out of memory (every
 * case is then read from PostgreSQL). */
static int cache_mget(const lookup_t *self, const incoming_t *in, size_t m, const char ***argv)
{
    *argv = self->cfg->cache ? calloc(m + 1, sizeof **argv) : NULL;
    if (!*argv) {
        return 0;
    }
    (*argv)[0] = "MGET";
    for (size_t i = 0; i < m; i++) {
        (*argv)[i + 1] = in[i].cache_key;
    }
    return (int)m + 1;
}

/* Judges every decided request of a batch (errors are not judged) in one script. Returns the
 * reply (JUDGE_OUT values per judged request, in order) or NULL when Redis did not answer. */
static redisReply *judge(lookup_t *self, const req_keys_t *keys, const verdict_t *v, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        m += v[i].found >= 0;
    }
    if (m == 0) {
        return NULL;
    }
    const char **argv = calloc(5 + (JUDGE_KEYS + JUDGE_ARGS) * m, sizeof *argv);
    if (!argv) {
        return NULL;
    }
    char numkeys[24], window[24], lock[24];
    snprintf(numkeys, sizeof numkeys, "%zu", JUDGE_KEYS * m);
    snprintf(window, sizeof window, "%ld", self->cfg->window_s);
    snprintf(lock, sizeof lock, "%ld", self->cfg->lock_s);
    size_t argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = judge_lua;
    argv[argc++] = numkeys;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; v[i].found >= 0 && j < JUDGE_KEYS; j++) {
            argv[argc++] = keys[i].keys[j];
        }
    }
    argv[argc++] = window;
    argv[argc++] = lock;
    for (size_t i = 0; i < n; i++) {
        if (v[i].found >= 0) {
            argv[argc++] = v[i].found == 1 ? "s" : "f";
            argv[argc++] = keys[i].limits[0];
            argv[argc++] = keys[i].limits[1];
            argv[argc++] = keys[i].limits[2];
            argv[argc++] = keys[i].case_applies ? "1" : "0";
        }
    }
    redisReply *r = wasl_redis_cmdargv(self->redis, (int)argc, argv, NULL);
    free(argv);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != JUDGE_OUT * m) {
        wasl_warn("caselookup: the failure budgets could not be checked; answering error", "{s:s}",
                  "error",
                  r && r->type == REDIS_REPLY_ERROR ? r->str : wasl_redis_error(self->redis));
        if (r) {
            freeReplyObject(r);
        }
        return NULL;
    }
    return r;
}

typedef struct {
    zmsg_t *envelope; /* routing frames of the request, reused for the reply */
    wasl_msg_t *reply;
    wasl_counter_t *outcome;
    double started_s;
    const char *key, *fp; /* the request's dedup key and hash (in its incoming_t) */
} pending_t;

/* Sends `len` bytes as the reply to `envelope` (taken). */
static void send_raw(lookup_t *self, zmsg_t **envelope, const void *data, size_t len)
{
    zmsg_addmem(*envelope, data, len);
    zmsg_send(envelope, self->dealer);
    zmsg_destroy(envelope);
}

/* Answers a batch: commits the audit rows, then sends, then keeps each answer for resends. If
 * the audit cannot be written nothing is disclosed: every reply becomes `error`, and the claims
 * are dropped so that a resend is looked up again. */
/* Writes the batch's audit rows; a row already there (a resend) is counted, not written
 * twice. Returns whether the audit committed: nothing is disclosed when it did not. */
static bool write_audit(lookup_t *self, json_t *audit, size_t n)
{
    char *rows = json_dumps(audit, JSON_COMPACT);
    const char *params[] = {rows ? rows : "[]", self->owner};
    PGresult *res = rows ? wasl_pg_exec(self->pg, "audit", 2, params) : NULL;
    bool ok = res != NULL;
    atomic_store(&self->pg_ok, ok || wasl_pg_ok(self->pg));
    if (!ok) {
        wasl_counter_inc(self->audit_failed);
        wasl_error("caselookup: audit insert failed; answering error", "{s:s, s:i}", "error",
                   wasl_pg_error(self->pg), "batch", (int)n);
    } else if ((size_t)PQntuples(res) < n) {
        wasl_counter_add(self->audit_dupes, n - (size_t)PQntuples(res));
    }
    PQclear(res);
    free(rows);
    return ok;
}

/* Replaces p's answer by an "error" reply to the same request (the audit failed, so nothing
 * may be disclosed). 0, or -1 when out of memory (p's envelope is then dropped: the client's
 * resend asks again). */
static int to_error_reply(lookup_t *self, pending_t *p)
{
    wasl_msg_case_lookup_reply_t *r = &p->reply->u.case_lookup_reply;
    char *id = r->request_id;
    r->request_id = NULL;
    wasl_msg_destroy(&p->reply);
    p->reply = wasl_msg_new(WASL_MSG_CASE_LOOKUP_REPLY);
    if (!p->reply) {
        free(id);
        zmsg_destroy(&p->envelope);
        return -1;
    }
    p->reply->u.case_lookup_reply.request_id = id;
    p->reply->u.case_lookup_reply.outcome = strdup("error");
    p->outcome = self->errors;
    return 0;
}

/* After the replies went out: the encoded answers (datas[i], NULL when a reply could not be
 * encoded) are kept for resends when the audit committed; every other claim is released so
 * that a resend asks again. Reorders the arrays; frees nothing. */
static void remember_answers(lookup_t *self, bool ok, const char **keys, const char **fps,
                             char **datas, size_t *lens, size_t kept)
{
    if (ok) {
        /* Answers that were sent are kept for resends (moved to the front); a reply that could
         * not be encoded was not sent, and its claim is dropped so that a resend asks again. */
        size_t m = 0;
        for (size_t i = 0; i < kept; i++) {
            if (datas[i]) {
                const char *k = keys[i], *f = fps[i];
                char *d = datas[i];
                size_t l = lens[i];
                keys[i] = keys[m];
                fps[i] = fps[m];
                datas[i] = datas[m];
                lens[i] = lens[m];
                keys[m] = k;
                fps[m] = f;
                datas[m] = d;
                lens[m++] = l;
            }
        }
        dedup_store(self->dedup, self->redis, m, keys, fps, (const char *const *)datas, lens);
        dedup_release(self->dedup, self->redis, kept - m, keys + m, fps + m);
    } else {
        dedup_release(self->dedup, self->redis, kept, keys, fps);
    }
}

static void flush(lookup_t *self, pending_t *p, size_t n, json_t *audit)
{
    if (n == 0) {
        return;
    }
    bool ok = write_audit(self, audit, n);
    const char **keys = calloc(n, sizeof *keys), **fps = calloc(n, sizeof *fps);
    char **datas = calloc(n, sizeof *datas);
    size_t *lens = calloc(n, sizeof *lens), kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ok && to_error_reply(self, &p[i]) < 0) {
            continue;
        }
        char *data = NULL;
        size_t len = 0;
        wasl_msg_error_t err;
        if (wasl_msg_encode(p[i].reply, &data, &len, &err) == 0) {
            zmsg_addmem(p[i].envelope, data, len);
            zmsg_send(&p[i].envelope, self->dealer);
        } else {
            wasl_error("caselookup: cannot encode a reply", "{s:s, s:s}", "error", err.message,
                       "field", err.field);
        }
        if (keys && fps && datas && lens && p[i].key) {
            keys[kept] = p[i].key;
            fps[kept] = p[i].fp;
            datas[kept] = data; /* ownership to datas: freed below */
            lens[kept++] = len;
        } else {
            free(data);
        }
        wasl_counter_inc(p[i].outcome);
        wasl_histogram_observe(self->latency, wasl_clock_s() - p[i].started_s);
        zmsg_destroy(&p[i].envelope);
        wasl_msg_destroy(&p[i].reply);
    }
    if (kept > 0) {
        remember_answers(self, ok, keys, fps, datas, lens, kept);
    }
    for (size_t i = 0; datas && i < kept; i++) {
        free(datas[i]);
    }
    free(keys);
    free(fps);
    free(datas);
    free(lens);
}

/* The on-file contact of the party that `q` verified, into the found reply `rep` when the
 * request asked for it (an automatic answer goes nowhere else); the audit row `row` records
 * where, masked. No contact on file, or the query failed: no contact (no automatic answer). */
static void add_contact(lookup_t *self, const wasl_msg_case_lookup_request_t *q,
                        wasl_msg_case_lookup_reply_t *rep, json_t *row)
{
    if (!q->has_contact || !q->contact || !rep->outcome || strcmp(rep->outcome, "found") != 0) {
        return;
    }
    const char *params[] = {q->case_number, q->verifier_kind, q->verifier};
    PGresult *res = wasl_pg_exec(self->pg, "contact", 3, params);
    if (!res) {
        wasl_warn("caselookup: contact query failed; no automatic answer", "{s:s}", "error",
                  wasl_pg_error(self->pg));
        return;
    }
    char masked[320];
    if (PQntuples(res) == 1 && *PQgetvalue(res, 0, 0)) {
        rep->contact_phone = strdup(PQgetvalue(res, 0, 0));
        wasl_mask_phone(PQgetvalue(res, 0, 0), masked, sizeof masked);
        json_object_set_new(row, "recipient_kind", json_string("sms"));
        json_object_set_new(row, "recipient_masked", json_string(masked));
    } else if (PQntuples(res) == 1 && *PQgetvalue(res, 0, 1)) {
        rep->contact_email = strdup(PQgetvalue(res, 0, 1));
        wasl_mask_email(PQgetvalue(res, 0, 1), masked, sizeof masked);
        json_object_set_new(row, "recipient_kind", json_string("email"));
        json_object_set_new(row, "recipient_masked", json_string(masked));
    }
    PQclear(res);
}

/* Reads up to `cap` waiting requests into `in` (decoded; undecodable frames are counted and
 * dropped). Returns how many. */
static size_t read_requests(lookup_t *self, incoming_t *in, size_t cap)
{
    size_t n = 0;
    while (n < cap) {
        zmsg_t *msg = zmsg_recv(self->dealer); /* rcvtimeo 0: NULL when nothing waits */
        if (!msg) {
            break;
        }
        double t0 = wasl_clock_s();
        zframe_t *body = zmsg_last(msg);
        wasl_msg_error_t err;
        wasl_msg_t *req = body ? wasl_msg_recv_frame(body, &err) : NULL;
        if (!req || req->type != WASL_MSG_CASE_LOOKUP_REQUEST) {
            /* Untrusted peer input: count and drop (the client's timeout answers it). */
            wasl_counter_inc(self->bad);
            wasl_warn("caselookup: dropped a frame that is not a case.lookup.request", "{s:s}",
                      "error", req ? "wrong type" : err.message);
            wasl_msg_destroy(&req);
            zmsg_destroy(&msg);
            continue;
        }
        /* A resend is these very bytes: their hash tells a resend from another request that
         * reuses the id. */
        dedup_ids(req->u.case_lookup_request.request_id, zframe_data(body), zframe_size(body),
                  in[n].key, in[n].fp);
        zmsg_remove(msg, body); /* the envelope stays in msg for the reply */
        zframe_destroy(&body);
        in[n].envelope = msg;
        in[n].req = req;
        in[n].started_s = t0;
        in[n].parked_until_ms = 0;
        in[n].cached = NULL;
        const char *number = req->u.case_lookup_request.case_number;
        snprintf(in[n].cache_key, KEY_MAX, CACHE_PREFIX "%.32s",
                 case_number_ok(number) && self->cfg->cache ? number : "-");
        n++;
    }
    return n;
}

/* Sends `error` for a request whose id another request already holds: neither gets the
 * other's answer. */
static void refuse_conflict(lookup_t *self, incoming_t *in)
{
    wasl_counter_inc(self->conflicts);
    wasl_warn("caselookup: request id reused by a different request; answering error", "{s:s, s:s}",
              "request_id", in->req->u.case_lookup_request.request_id, "client",
              in->req->u.case_lookup_request.client);
    wasl_msg_t *rep = wasl_msg_new(WASL_MSG_CASE_LOOKUP_REPLY);
    char *data = NULL;
    size_t len = 0;
    if (rep &&
        (rep->u.case_lookup_reply.request_id = strdup(in->req->u.case_lookup_request.request_id)) &&
        (rep->u.case_lookup_reply.outcome = strdup("error")) &&
        wasl_msg_encode(rep, &data, &len, NULL) == 0) {
        send_raw(self, &in->envelope, data, len);
    }
    free(data);
    wasl_msg_destroy(&rep);
    incoming_clear(in);
}

/* Sorts the claimed requests: answers resends from the stored answers, parks those another
 * worker is on, refuses id conflicts, and moves the new ones to the front of `in`. Their cached
 * cases are read in the claims' round trip: *mget (the caller frees it) holds the values that
 * in[i].cached point at. Returns how many are new. */
static size_t triage(lookup_t *self, incoming_t *in, size_t m, redisReply **mget)
{
    const char **keys = calloc(m, sizeof *keys), **fps = calloc(m, sizeof *fps);
    dedup_state_t *states = calloc(m, sizeof *states);
    char **answers = calloc(m, sizeof *answers);
    size_t *lens = calloc(m, sizeof *lens), n = 0;
    for (size_t i = 0; i < m; i++) {
        in[i].cached = NULL; /* a parked one's points into an earlier batch's reply */
    }
    if (!keys || !fps || !states || !answers || !lens) {
        n = m; /* out of memory: look everything up (the audit refuses a second row) */
        goto done;
    }
    for (size_t i = 0; i < m; i++) {
        keys[i] = in[i].key;
        fps[i] = in[i].fp;
    }
    const char **argv = NULL;
    int argc = cache_mget(self, in, m, &argv);
    dedup_claim_with(self->dedup, self->redis, m, keys, fps, states, answers, lens, argc, argv,
                     mget);
    free(argv);
    if (argc > 0 && *mget) {
        if ((*mget)->type == REDIS_REPLY_ARRAY && (*mget)->elements == m) {
            for (size_t i = 0; i < m; i++) {
                in[i].cached = (*mget)->element[i];
            }
        } else {
            freeReplyObject(*mget); /* not an answer to MGET: read PostgreSQL */
            *mget = NULL;
        }
    }
    int64_t now = wasl_clock_ms();
    for (size_t i = 0; i < m; i++) {
        switch (states[i]) {
        case DEDUP_NEW:
            if (n != i) {
                in[n] = in[i]; /* moves down: n < i */
                memset(&in[i], 0, sizeof in[i]);
            }
            n++;
            continue;
        case DEDUP_DONE:
            /* The answer already given, byte for byte: no lookup, no failure, no audit row. */
            wasl_counter_inc(self->replayed);
            send_raw(self, &in[i].envelope, answers[i], lens[i]);
            incoming_clear(&in[i]);
            break;
        case DEDUP_CONFLICT:
            refuse_conflict(self, &in[i]);
            break;
        case DEDUP_PENDING:
            if (!in[i].parked_until_ms) {
                in[i].parked_until_ms = now + PARKED_MAX_MS;
            }
            if (now < in[i].parked_until_ms && self->nparked < PARKED_MAX) {
                self->parked[self->nparked++] = in[i];
            } else {
                /* Its client has given up; a later resend finds the answer or takes over. */
                wasl_counter_inc(self->parked_dropped);
                incoming_clear(&in[i]);
            }
            break;
        }
        memset(&in[i], 0, sizeof in[i]);
    }
done:
    for (size_t i = 0; answers && i < m; i++) {
        free(answers[i]);
    }
    free(keys);
    free(fps);
    free(states);
    free(answers);
    free(lens);
    return n;
}

/* Drops the claims of the first `n` requests of `in` (not answered: out of memory), so that
 * their resends are looked up again at once. */
static void release_claims(lookup_t *self, const incoming_t *in, size_t n)
{
    const char **ks = calloc(n, sizeof *ks), **fs = calloc(n, sizeof *fs);
    for (size_t j = 0; ks && fs && j < n; j++) {
        ks[j] = in[j].key;
        fs[j] = in[j].fp;
    }
    if (ks && fs) {
        dedup_release(self->dedup, self->redis, n, ks, fs);
    }
    free(ks);
    free(fs);
}

/* Reads every request waiting (up to batch_max) and looks again at the parked ones; answers
 * resends from what was already answered; reads the cached cases of the new ones in one Redis
 * round trip, decides each, judges them all against the failure budgets in a second
 * (judge_lua), and answers them together after one audit commit. */
/* One pending reply per triaged request (the envelope moves from in[i] to p[i]) and its
 * budget keys. 0, or -1 when out of memory: nothing is answered, every claim is released and
 * the clients' resends ask again. */
static int start_replies(lookup_t *self, incoming_t *in, pending_t *p, req_keys_t *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i].envelope = in[i].envelope;
        in[i].envelope = NULL;
        p[i].started_s = in[i].started_s;
        p[i].key = in[i].key;
        p[i].fp = in[i].fp;
        p[i].reply = wasl_msg_new(WASL_MSG_CASE_LOOKUP_REPLY);
        if (!p[i].reply || !(p[i].reply->u.case_lookup_reply.request_id =
                                 strdup(in[i].req->u.case_lookup_request.request_id))) {
            /* Out of memory: nothing answered; the client's resend asks again. */
            for (size_t j = 0; j <= i; j++) {
                zmsg_destroy(&p[j].envelope);
                wasl_msg_destroy(&p[j].reply);
            }
            release_claims(self, in, n);
            return -1;
        }
        keys_for(self->cfg, &in[i].req->u.case_lookup_request, &keys[i]);
    }
    return 0;
}

/* Answers each request by its verdict and the budgets' judgement (judged: NULL when Redis did
 * not answer), appending one audit row per request. */
static void answer_batch(lookup_t *self, incoming_t *in, pending_t *p, verdict_t *verdicts,
                         redisReply *judged, size_t n, json_t *audit)
{
    for (size_t i = 0, e = 0; i < n; i++) {
        const wasl_msg_case_lookup_request_t *q = &in[i].req->u.case_lookup_request;
        wasl_msg_case_lookup_reply_t *rep = &p[i].reply->u.case_lookup_reply;
        redisReply *const *mine = NULL;
        if (verdicts[i].found >= 0 && judged) {
            mine = judged->element + JUDGE_OUT * e++;
            if (mine[3]->type == REDIS_REPLY_INTEGER && mine[3]->integer != 0) {
                wasl_counter_inc(self->lockouts);
                wasl_info("caselookup: failure budget spent; locked", "{s:s, s:s, s:s, s:s}",
                          "budget", locked_reason(mine[3]->integer), "channel", q->channel,
                          "client", q->client, "case", q->case_number);
            }
        }
        p[i].outcome = answer(self, q, &verdicts[i], mine, rep, audit);
        lookup_case_destroy(&verdicts[i].c);
        /* answer() appended this request's audit row: what it was for, to whom, which request. */
        json_t *row = json_array_get(audit, i);
        json_object_set_new(row, "request_sha256", json_string(in[i].fp));
        if (q->ticket) {
            json_object_set_new(row, "ticket_ref", json_string(q->ticket));
        }
        add_contact(self, q, rep, row);
    }
}

static void serve_batch(lookup_t *self)
{
    size_t cap = (size_t)self->cfg->batch_max, n = 0, m = self->nparked;
    incoming_t *in = self->batch; /* all zero between batches */
    pending_t *p = NULL;
    req_keys_t *keys = NULL; /* ~1 KB each: sized to the batch, not to its cap */
    verdict_t *verdicts = NULL;
    json_t *audit = NULL;
    redisReply *cached = NULL, *judged = NULL;
    /* The parked first: they came earlier. */
    memcpy(in, self->parked, m * sizeof *in);
    self->nparked = 0;
    m += read_requests(self, in + m, cap);
    if (m == 0) {
        goto done;
    }
    n = triage(self, in, m, &cached);
    if (n == 0) {
        goto done;
    }
    p = calloc(n, sizeof *p);
    keys = malloc(n * sizeof *keys);
    verdicts = calloc(n, sizeof *verdicts);
    audit = json_array();
    if (!p || !keys || !verdicts || !audit) {
        release_claims(self, in, n); /* out of memory: the resends ask again */
        goto done;
    }
    if (start_replies(self, in, p, keys, n) < 0) {
        goto done;
    }
    /* Decide every request (nothing disclosed yet), judge them all against the budgets in one
     * atomic script, then answer only what it let through. */
    for (size_t i = 0; i < n; i++) {
        decide(self, &in[i].req->u.case_lookup_request, &keys[i], in[i].cached, &verdicts[i]);
    }
    judged = judge(self, keys, verdicts, n);
    if (judged) {
        atomic_store(&self->redis_ok, true); /* a failure is seen by the periodic PING */
    }
    answer_batch(self, in, p, verdicts, judged, n, audit);
    flush(self, p, n, audit);
done:
    if (cached) {
        freeReplyObject(cached);
    }
    if (judged) {
        freeReplyObject(judged);
    }
    for (size_t i = 0; i < m; i++) {
        incoming_clear(&in[i]);
        memset(&in[i], 0, sizeof in[i]);
    }
    json_decref(audit);
    free(verdicts);
    free(keys);
    free(p);
}

void lookup_run(lookup_t *self)
{
    /* First contact, so /readyz tells the truth before the first request. */
    atomic_store(&self->pg_ok, wasl_pg_ok(self->pg));
    redisReply *pong = wasl_redis_cmd(self->redis, "PING");
    atomic_store(&self->redis_ok, pong != NULL);
    if (pong) {
        freeReplyObject(pong);
    }
    int64_t last_check = wasl_clock_ms();
    while (!wasl_signal_stopping()) {
        PGconn *listen = listen_ensure(self);
        zmq_pollitem_t items[2] = {{zsock_resolve(self->dealer), 0, ZMQ_POLLIN, 0},
                                   {NULL, listen ? PQsocket(listen) : -1, ZMQ_POLLIN, 0}};
        /* Parked resends look for their answer often; otherwise wake up for housekeeping. */
        int rc = zmq_poll(items, listen ? 2 : 1, self->nparked ? PARKED_POLL_MS : POLL_MS);
        if (rc < 0) {
            continue; /* EINTR: a signal; the loop condition decides */
        }
        if (listen) {
            listen_drain(self, listen); /* notices first: no reply from a stale copy */
        }
        if ((items[0].revents & ZMQ_POLLIN) || self->nparked) {
            serve_batch(self);
        }
        if (wasl_clock_ms() - last_check > POLL_MS * 4) {
            last_check = wasl_clock_ms();
            atomic_store(&self->pg_ok, wasl_pg_ok(self->pg));
            pong = wasl_redis_cmd(self->redis, "PING");
            atomic_store(&self->redis_ok, pong != NULL);
            if (pong) {
                freeReplyObject(pong);
            }
        }
    }
}
