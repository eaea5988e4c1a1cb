/* wasl_entities — what a contact's text names: case numbers, national/resident IDs, phone
 * numbers (as E.164), e-mail addresses and ticket references; Arabic-Indic digits included. */
#include "wasl_entities.h"
#include "wasl_normalize.h"
#include "wasl_phone.h"
#include "wasl_ref.h"
#include "wasl_text.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* How far back (bytes of the normalized text) a reference cue may stand before a number. */
#define CUE_WINDOW 40
#define DIGITS_MAX 20

/* Cues, in normalized form (wasl_normalize: alef, teh marbuta and yeh folded, lower case). */
static const char *const ref_cues[] = {"رقم الطلب", "رقم البلاغ", "رقم التذكره", "المرجع",
                                       "رقم مرجعي", "ticket",     "ref",         "reference",
                                       "#",         NULL};

bool wasl_national_id_valid(const char *d)
{
    if (!d || strlen(d) != 10 || (d[0] != '1' && d[0] != '2')) {
        return false;
    }
    int sum = 0;
    for (int i = 0; i < 10; i++) {
        if (!isdigit((unsigned char)d[i])) {
            return false;
        }
        int v = d[i] - '0';
        if (i % 2 == 0) {
            v *= 2;
            v = v / 10 + v % 10;
        }
        sum += v;
    }
    return sum % 10 == 0;
}

static void add_unique(json_t *obj, const char *kind, const char *value)
{
    json_t *arr = json_object_get(obj, kind);
    if (!arr) {
        arr = json_array();
        json_object_set_new(obj, kind, arr);
    }
    if (json_array_size(arr) >= WASL_ENTITIES_MAX_PER_KIND) {
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (strcmp(json_string_value(v), value) == 0) {
            return;
        }
    }
    json_array_append_new(arr, json_string(value));
}

/* True when a reference cue ends within CUE_WINDOW bytes before `at` in `text`. */
static bool cue_before(const char *text, const char *at)
{
    size_t back = (size_t)(at - text) < CUE_WINDOW ? (size_t)(at - text) : CUE_WINDOW;
    const char *from = at - back;
    for (const char *const *c = ref_cues; *c; c++) {
        size_t clen = strlen(*c);
        for (const char *p = from; p + clen <= at; p++) {
            if (memcmp(p, *c, clen) == 0) {
                return true;
            }
        }
    }
    return false;
}

/* One number-like run: decides what the digits are. `run` is its text (digits, maybe a '+',
 * spaces or dashes) inside the normalized `text`. */
static void classify_number(json_t *out, const char *text, const char *run, size_t run_len,
                            const char *default_cc)
{
    char d[DIGITS_MAX + 1];
    size_t n = 0;
    bool plus = run[0] == '+';
    for (size_t i = 0; i < run_len; i++) {
        if (isdigit((unsigned char)run[i])) {
            if (n == DIGITS_MAX) {
                return; /* too long to be anything we know */
            }
            d[n++] = run[i];
        }
    }
    d[n] = '\0';
    if (n == 10 && !plus && d[0] == '4' && (d[1] == '4' || d[1] == '5' || d[1] == '6')) {
        add_unique(out, WASL_ENTITY_CASE, d);
        return;
    }
    if (n == 10 && !plus && d[0] != '0') {
        bool id = d[0] == '1' || d[0] == '2';
        /* A reference when its check digit is right and either a cue says so or it cannot be
         * an ID (its own check digit fails); otherwise an ID when it starts like one. */
        if (wasl_verhoeff_valid(d, n) &&
            (cue_before(text, run) || (id && !wasl_national_id_valid(d)))) {
            add_unique(out, WASL_ENTITY_TICKET, d);
        } else if (id) {
            add_unique(out, WASL_ENTITY_NATIONAL_ID, d);
        }
        return;
    }
    /* Phone forms: the whole run, with '+' when it had one. */
    bool phone_shape = plus || (n == 10 && d[0] == '0' && d[1] == '5') || (n == 9 && d[0] == '5') ||
                       (n == 12 && strncmp(d, "9665", 4) == 0) ||
                       (n == 14 && strncmp(d, "009665", 6) == 0);
    if (phone_shape) {
        char e164[WASL_PHONE_MAX];
        char candidate[DIGITS_MAX + 2];
        snprintf(candidate, sizeof candidate, "%s%s", plus ? "+" : "", d);
        if (wasl_phone_e164(candidate, default_cc, e164) == 0) {
            add_unique(out, WASL_ENTITY_PHONE, e164);
        }
    }
}

static bool email_local_char(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

static bool email_domain_char(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '-';
}

static void find_emails(json_t *out, const char *text)
{
    for (const char *at = strchr(text, '@'); at; at = strchr(at + 1, '@')) {
        const char *s = at;
        while (s > text && email_local_char((unsigned char)s[-1])) {
            s--;
        }
        const char *e = at + 1;
        while (email_domain_char((unsigned char)*e)) {
            e++;
        }
        while (e > at + 1 && (e[-1] == '.' || e[-1] == '-')) {
            e--; /* a sentence's full stop is not part of the domain */
        }
        const char *dot = NULL;
        for (const char *p = at + 1; p < e; p++) {
            if (*p == '.') {
                dot = p;
            }
        }
        if (s == at || !dot || e - dot < 3 || dot == at + 1) {
            continue;
        }
        char addr[256];
        size_t len = (size_t)(e - s);
        if (len >= sizeof addr) {
            continue;
        }
        for (size_t i = 0; i < len; i++) {
            addr[i] = (char)tolower((unsigned char)s[i]);
        }
        addr[len] = '\0';
        add_unique(out, WASL_ENTITY_EMAIL, addr);
    }
}

json_t *wasl_entities_extract(const char *text, size_t len, const char *default_cc)
{
    /* Digits folded and cues comparable: normalize case and letters, but keep punctuation
     * ('+', '@', '.', '-', '#') that the patterns need — so not the separator step. */
    char *norm = wasl_normalize_ex(text, len,
                                   WASL_NORM_ALL & ~WASL_NORM_SEPARATORS & ~WASL_NORM_CAP_REPEATS);
    if (!norm) {
        return NULL;
    }
    json_t *out = json_object();
    if (!out) {
        free(norm);
        return NULL;
    }
    for (const char *p = norm; *p;) {
        bool plus = *p == '+' && isdigit((unsigned char)p[1]);
        if (!isdigit((unsigned char)*p) && !plus) {
            p++;
            continue;
        }
        /* A run: digits with single spaces or dashes between groups, when the next group
         * continues a phone-like number. */
        const char *start = p;
        const char *q = p + (plus ? 1 : 0);
        while (isdigit((unsigned char)*q)) {
            q++;
        }
        const char *end = q;
        size_t digits = (size_t)(end - start) - (plus ? 1 : 0);
        bool joinable =
            plus || (digits < 9 && (start[0] == '0' || start[0] == '5' || start[0] == '9'));
        while (joinable && (*end == ' ' || *end == '-') && isdigit((unsigned char)end[1])) {
            q = end + 1;
            while (isdigit((unsigned char)*q)) {
                q++;
            }
            digits += (size_t)(q - end - 1);
            end = q;
            if (digits >= 14) {
                break;
            }
        }
        bool preceded_by_digit = start > norm && isdigit((unsigned char)start[-1]);
        if (!preceded_by_digit) {
            classify_number(out, norm, start, (size_t)(end - start), default_cc);
        }
        p = end;
    }
    find_emails(out, norm);
    free(norm);
    return out;
}
