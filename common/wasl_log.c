/* wasl_log — JSON-lines logging to stderr, with masking of phone numbers and national IDs. */
#include "wasl_log.h"

#include <ctype.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_service = "wasl";
static atomic_int log_min_level = WASL_LOG_INFO;
static FILE *_Atomic log_stream = NULL;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* Keys whose string values are personal identifiers and are always masked. */
static const char *const sensitive_keys[] = {
    "phone", "national_id", "from",     "to",     "caller", "msisdn", "recipient",
    "email", "employee_id", "verifier", "callee", "ani",    "digits", NULL};

/* Keys whose values are free text from elsewhere (a PostgreSQL error's DETAIL quotes the row
 * it refused): every long run of digits in them is masked. */
static const char *const free_text_keys[] = {"error", "detail", NULL};

/* A value with fewer digits than this is masked whole: keeping two of them would reveal too
 * large a share (and nothing shorter is a phone number or a national ID). */
#define MASK_MIN_DIGITS_TO_KEEP 7

void wasl_log_init(const char *service, wasl_log_level_t min_level)
{
    log_service = service ? service : "wasl";
    atomic_store(&log_min_level, (int)min_level);
}

void wasl_log_set_stream(FILE *stream)
{
    atomic_store(&log_stream, stream);
}

static bool key_in(const char *key, const char *const *keys)
{
    for (const char *const *k = keys; *k; k++) {
        if (strcmp(key, *k) == 0) {
            return true;
        }
    }
    return false;
}

/* Replaces sensitive string values of `obj` in place with their masked form. Which key a
 * value is under says nothing about what it holds (a national ID was logged as "caller"), so
 * every identifier gets the same mask: wasl_mask_pii. */
static void mask_fields(json_t *obj)
{
    const char *key;
    json_t *value;
    char masked[256];
    json_object_foreach(obj, key, value)
    {
        if (!json_is_string(value)) {
            continue;
        }
        const char *s = json_string_value(value);
        if (key_in(key, free_text_keys)) {
            char *text = wasl_mask_text(s);
            json_string_set(value, text ? text : "(masked)");
            free(text);
        } else if (key_in(key, sensitive_keys)) {
            if (strcmp(key, "email") == 0 || strchr(s, '@')) {
                wasl_mask_email(s, masked, sizeof masked);
            } else {
                wasl_mask_pii(s, masked, sizeof masked);
            }
            json_string_set(value, masked);
        }
    }
}

void wasl_logv(wasl_log_level_t level, const char *msg, const char *fields, va_list ap)
{
    if ((int)level < atomic_load(&log_min_level)) {
        return;
    }
    if (level > WASL_LOG_ERROR) {
        level = WASL_LOG_ERROR;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char ts[40];
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000L);

    json_t *line = json_pack("{s:s, s:s, s:s, s:i, s:s?}", "ts", ts, "level", level_names[level],
                             "service", log_service, "pid", (int)getpid(), "msg", msg);
    if (!line) {
        return;
    }
    if (fields) {
        json_error_t jerr;
        json_t *extra = json_vpack_ex(&jerr, 0, fields, ap);
        if (extra && json_is_object(extra)) {
            mask_fields(extra);
            /* Fixed keys win over fields of the same name. */
            json_object_update_missing(line, extra);
        } else {
            json_object_set_new(line, "log_error", json_string(jerr.text));
        }
        json_decref(extra);
    }
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (!text) {
        return;
    }
    FILE *out = atomic_load(&log_stream);
    if (!out) {
        out = stderr;
    }
    /* One fprintf per line: stdio locks the stream, so lines from threads never interleave. */
    fprintf(out, "%s\n", text);
    fflush(out);
    free(text);
}

void wasl_log(wasl_log_level_t level, const char *msg, const char *fields, ...)
{
    va_list ap;
    va_start(ap, fields);
    wasl_logv(level, msg, fields, ap);
    va_end(ap);
}

/* Copies at most cap-1 bytes of `s` into out, always NUL-terminating. */
static char *copy_bounded(const char *s, char *out, size_t cap)
{
    if (cap == 0) {
        return out;
    }
    size_t n = strlen(s);
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

/* Length in bytes of the digit at s (ASCII 1, Arabic-Indic/Persian 2), or 0. */
static size_t digit_len(const unsigned char *s)
{
    if (isdigit(s[0])) {
        return 1;
    }
    /* U+0660..U+0669 = D9 A0..D9 A9; U+06F0..U+06F9 = DB B0..DB B9 */
    if (s[0] == 0xD9 && s[1] >= 0xA0 && s[1] <= 0xA9) {
        return 2;
    }
    if (s[0] == 0xDB && s[1] >= 0xB0 && s[1] <= 0xB9) {
        return 2;
    }
    return 0;
}

/* Length in bytes of the UTF-8 character at s (1 for a stray byte), never past its end. */
static size_t char_len(const unsigned char *s)
{
    size_t n = s[0] < 0x80 ? 1 : s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 1;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return i;
        }
    }
    return n;
}

char *wasl_mask_pii(const char *in, char *out, size_t cap)
{
    if (!in) {
        return copy_bounded("", out, cap);
    }
    if (cap == 0) {
        return out;
    }
    size_t total = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p;) {
        size_t d = digit_len(p);
        total += d ? 1 : 0;
        p += d ? d : char_len(p);
    }
    size_t keep = total >= MASK_MIN_DIGITS_TO_KEEP ? WASL_MASK_KEEP_DIGITS : 0;
    size_t o = 0, idx = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 1 < cap;) {
        size_t d = digit_len(p);
        if (d && idx++ >= total - keep) {
            if (o + d >= cap) {
                break;
            }
            memcpy(out + o, p, d);
            o += d;
            p += d;
        } else if (d || isalpha(*p) || *p >= 0x80) {
            out[o++] = '*'; /* a digit, a letter, any other script's character: one '*' */
            p += d ? d : char_len(p);
        } else {
            out[o++] = (char)*p++; /* '+', spaces, dashes: the shape, not the content */
        }
    }
    out[o] = '\0';
    return out;
}

char *wasl_mask_phone(const char *in, char *out, size_t cap)
{
    return wasl_mask_pii(in, out, cap);
}

char *wasl_mask_id(const char *in, char *out, size_t cap)
{
    return wasl_mask_pii(in, out, cap);
}

char *wasl_mask_email(const char *in, char *out, size_t cap)
{
    if (!in) {
        return copy_bounded("", out, cap);
    }
    const char *at = strrchr(in, '@');
    if (!at || at == in) {
        return wasl_mask_id(in, out, cap);
    }
    char buf[512];
    snprintf(buf, sizeof buf, "%c***%s", in[0], at);
    return copy_bounded(buf, out, cap);
}

char *wasl_mask_text(const char *in)
{
    if (!in) {
        return NULL;
    }
    size_t len = strlen(in);
    char *out = malloc(len + 1);
    if (!out) {
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0;
    while (*p) {
        /* Measure a run of digits (a leading '+' belongs to it). */
        const unsigned char *start = p;
        const unsigned char *q = (*p == '+') ? p + 1 : p;
        size_t count = 0;
        const unsigned char *r = q;
        for (size_t d; (d = digit_len(r)) != 0; r += d) {
            count++;
        }
        if (count >= MASK_MIN_DIGITS_TO_KEEP) {
            size_t idx = 0;
            if (start != q) {
                out[o++] = '+';
            }
            for (const unsigned char *s = q; s < r;) {
                size_t d = digit_len(s);
                if (idx + WASL_MASK_KEEP_DIGITS >= count) {
                    memcpy(out + o, s, d);
                    o += d;
                } else {
                    out[o++] = '*';
                }
                idx++;
                s += d;
            }
            p = r;
        } else if (count > 0) {
            memcpy(out + o, start, (size_t)(r - start));
            o += (size_t)(r - start);
            p = r;
        } else {
            out[o++] = (char)*p++;
        }
    }
    out[o] = '\0';
    return out;
}

void wasl_set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}
