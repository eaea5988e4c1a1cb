/* template — loading, checking and bidi-safe rendering of the notifier's templates; SMS parts. */
#include "template.h"
#include "wasl_log.h"
#include "wasl_domain.h"
#include "wasl_text.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TMPL_FILE_MAX  (64 * 1024)
#define TMPL_NAME_MAX  64
#define SUBJECT_PREFIX "Subject: "
/* Asia/Riyadh is UTC+3 all year (see governor.h). */
#define TMPL_RIYADH_OFFSET_S (3 * 3600)

/* What the router sends for each template (the ack's category may come as a code). */
typedef struct {
    const char *name;
    const char *params[6];
} tmpl_spec_t;

static const tmpl_spec_t specs[] = {
    {"ack", {"ref", "category_label", NULL}},
    {"resolved", {"ref", "resolution", NULL}},
    {"survey", {"ref", NULL}},
    {"case_answer", {"ref", "answer", NULL}},
    {"sla_alert", {"ref", "queue", "priority", "due", NULL}},
    {"reply", {"ref", "text", NULL}},
};
#define SPEC_COUNT (sizeof specs / sizeof specs[0])

const char *const tmpl_names[] = {"ack",       "resolved", "survey", "case_answer",
                                  "sla_alert", "reply",    NULL};

static const char *const langs[] = {"ar", "en"};
static const char *const channels[] = {"sms", "email"};

typedef struct {
    char *subject; /* email only */
    char *body;
} tmpl_t;

struct tmpl_set {
    tmpl_t t[SPEC_COUNT][2][2];
};

static int index_of(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (s && strcmp(list[i], s) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static const tmpl_spec_t *spec_of(const char *name, size_t *idx)
{
    for (size_t i = 0; i < SPEC_COUNT; i++) {
        if (name && strcmp(specs[i].name, name) == 0) {
            if (idx) {
                *idx = i;
            }
            return &specs[i];
        }
    }
    return NULL;
}

bool tmpl_known(const char *name)
{
    return spec_of(name, NULL) != NULL;
}

static bool spec_has(const tmpl_spec_t *spec, const char *param, size_t len)
{
    for (size_t i = 0; spec->params[i]; i++) {
        if (strlen(spec->params[i]) == len && memcmp(spec->params[i], param, len) == 0) {
            return true;
        }
    }
    return false;
}

/* Checks every {{placeholder}} of text against spec; 0 or -1 with err. */
static int check_placeholders(const char *text, const tmpl_spec_t *spec, const char *file,
                              bool *has_ref, char *err, size_t cap)
{
    const char *p = text;
    while ((p = strstr(p, "{{")) != NULL) {
        const char *end = strstr(p + 2, "}}");
        if (!end) {
            wasl_set_err(err, cap, "%s: unclosed {{", file);
            return -1;
        }
        const char *name = p + 2;
        size_t len = (size_t)(end - name);
        if (!spec_has(spec, name, len)) {
            wasl_set_err(err, cap, "%s: unknown placeholder {{%.*s}} (template %s has:%s%s%s%s%s)",
                         file, (int)(len > TMPL_NAME_MAX ? TMPL_NAME_MAX : len), name, spec->name,
                         spec->params[0] ? " " : "", spec->params[0] ? spec->params[0] : "",
                         spec->params[1] ? " " : "", spec->params[1] ? spec->params[1] : "",
                         spec->params[2] ? " …" : "");
            return -1;
        }
        if (len == 3 && memcmp(name, "ref", 3) == 0) {
            *has_ref = true;
        }
        p = end + 2;
    }
    return 0;
}

static char *read_file(const char *path, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        wasl_set_err(err, cap, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(TMPL_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, TMPL_FILE_MAX + 1, f) : 0;
    fclose(f);
    if (!buf) {
        wasl_set_err(err, cap, "%s: out of memory", path);
        return NULL;
    }
    if (n > TMPL_FILE_MAX) {
        wasl_set_err(err, cap, "%s: larger than %d bytes", path, TMPL_FILE_MAX);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (!wasl_utf8_valid(buf, n, false)) {
        wasl_set_err(err, cap, "%s: not valid UTF-8", path);
        free(buf);
        return NULL;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) {
        buf[--n] = '\0';
    }
    return buf;
}

static int load_one(tmpl_t *t, const char *dir, const char *lang, const char *channel,
                    const tmpl_spec_t *spec, char *err, size_t cap)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s.%s", dir, lang, spec->name, channel);
    char *text = read_file(path, err, cap);
    if (!text) {
        return -1;
    }
    bool is_email = strcmp(channel, "email") == 0;
    if (is_email) {
        size_t plen = strlen(SUBJECT_PREFIX);
        char *nl = strchr(text, '\n');
        if (strncmp(text, SUBJECT_PREFIX, plen) != 0 || !nl || nl[1] != '\n') {
            wasl_set_err(err, cap, "%s: must start with \"Subject: …\" and a blank line", path);
            free(text);
            return -1;
        }
        *nl = '\0';
        t->subject = strdup(text + plen);
        t->body = strdup(nl + 2);
        free(text);
    } else {
        t->body = text;
    }
    if (!t->body || (is_email && !t->subject)) {
        wasl_set_err(err, cap, "%s: out of memory", path);
        return -1;
    }
    bool has_ref = false;
    if ((t->subject && check_placeholders(t->subject, spec, path, &has_ref, err, cap) < 0) ||
        check_placeholders(t->body, spec, path, &has_ref, err, cap) < 0) {
        return -1;
    }
    if (!has_ref) {
        wasl_set_err(err, cap, "%s: the reference {{ref}} is missing", path);
        return -1;
    }
    if (!*t->body) {
        wasl_set_err(err, cap, "%s: empty body", path);
        return -1;
    }
    return 0;
}

tmpl_set_t *tmpl_set_load(const char *dir, char *err, size_t cap)
{
    assert(dir);
    tmpl_set_t *self = calloc(1, sizeof *self);
    if (!self) {
        wasl_set_err(err, cap, "out of memory");
        return NULL;
    }
    for (size_t s = 0; s < SPEC_COUNT; s++) {
        for (size_t l = 0; l < 2; l++) {
            for (size_t c = 0; c < 2; c++) {
                if (load_one(&self->t[s][l][c], dir, langs[l], channels[c], &specs[s], err, cap) <
                    0) {
                    tmpl_set_destroy(&self);
                    return NULL;
                }
            }
        }
    }
    return self;
}

void tmpl_set_destroy(tmpl_set_t **self_p)
{
    assert(self_p);
    tmpl_set_t *self = *self_p;
    if (!self) {
        return;
    }
    for (size_t s = 0; s < SPEC_COUNT; s++) {
        for (size_t l = 0; l < 2; l++) {
            for (size_t c = 0; c < 2; c++) {
                free(self->t[s][l][c].subject);
                free(self->t[s][l][c].body);
            }
        }
    }
    free(self);
    *self_p = NULL;
}

/* ---- bidi -------------------------------------------------------------------------------- */

static bool is_bidi_control(uint32_t cp)
{
    return cp == 0x200E || cp == 0x200F || cp == 0x061C || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

static bool is_rtl(uint32_t cp)
{
    return (cp >= 0x0590 && cp <= 0x08FF) || (cp >= 0xFB1D && cp <= 0xFDFF) ||
           (cp >= 0xFE70 && cp <= 0xFEFF);
}

/* A growable string. */
typedef struct {
    char *s;
    size_t len, cap;
    bool failed;
} buf_t;

static void buf_add(buf_t *b, const char *s, size_t n)
{
    if (b->failed) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

/* Appends value (valid UTF-8: expand checks it) without bidi controls, isolated when Arabic
 * text surrounds it or it is RTL. */
static void add_value(buf_t *b, const char *value, bool arabic_text)
{
    bool rtl = false;
    size_t len = strlen(value);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += wasl_utf8_decode(value + i, len - i, &cp, NULL);
        rtl = rtl || is_rtl(cp);
    }
    bool isolate = arabic_text || rtl;
    if (isolate) {
        buf_add(b, TMPL_FSI, strlen(TMPL_FSI));
    }
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = wasl_utf8_decode(value + i, len - i, &cp, NULL);
        if (!is_bidi_control(cp)) {
            buf_add(b, value + i, n);
        }
        i += n;
    }
    if (isolate) {
        buf_add(b, TMPL_PDI, strlen(TMPL_PDI));
    }
}

/* An RFC 3339 time ("2026-11-29T07:00:00Z", "…+03:00", fractions allowed) as Riyadh local
 * time "2026-11-29 10:00" into out; false when s is not one. */
static bool riyadh_time(const char *s, char *out, size_t cap)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19) {
        return false;
    }
    const char *z = s + n;
    if (*z == '.') {
        for (z++; *z >= '0' && *z <= '9'; z++) {
        }
    }
    long offset_s = 0;
    int oh, om;
    if ((z[0] == 'Z' || z[0] == 'z') && !z[1]) {
        offset_s = 0;
    } else if ((z[0] == '+' || z[0] == '-') && sscanf(z + 1, "%2d:%2d", &oh, &om) == 2 &&
               strlen(z) == 6) {
        offset_s = (z[0] == '-' ? -1 : 1) * (oh * 3600L + om * 60L);
    } else {
        return false;
    }
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    time_t t = timegm(&tm) - offset_s + TMPL_RIYADH_OFFSET_S;
    struct tm local;
    if (!gmtime_r(&t, &local)) {
        return false;
    }
    return strftime(out, cap, "%Y-%m-%d %H:%M", &local) > 0;
}

/* The text of a parameter (a string or number), or NULL; number text goes into tmp. */
static const char *param_text(const json_t *params, const char *key, const char *lang, char *tmp,
                              size_t cap)
{
    const json_t *v = json_object_get(params, key);
    if (strcmp(key, "category_label") == 0) {
        const char *code = json_is_string(v) ? json_string_value(v) : NULL;
        if (!code) {
            const json_t *c = json_object_get(params, "category");
            code = json_is_string(c) ? json_string_value(c) : NULL;
            if (code) {
                const char *label = wasl_category_label(code, lang);
                return label ? label : code;
            }
            return NULL;
        }
        const char *label = wasl_category_label(code, lang);
        return label ? label : code;
    }
    if (strcmp(key, "priority") == 0 && json_is_string(v)) {
        const char *label = wasl_priority_label(json_string_value(v), lang);
        if (label) {
            return label;
        }
    }
    if (strcmp(key, "due") == 0 && json_is_string(v) &&
        riyadh_time(json_string_value(v), tmp, cap)) {
        return tmp;
    }
    if (json_is_string(v)) {
        return json_string_value(v);
    }
    if (json_is_integer(v)) {
        snprintf(tmp, cap, "%lld", (long long)json_integer_value(v));
        return tmp;
    }
    if (json_is_real(v)) {
        snprintf(tmp, cap, "%g", json_real_value(v));
        return tmp;
    }
    return NULL;
}

/* Expands text into a new string; NULL with err on a missing value. */
static char *expand(const char *text, const json_t *params, const char *lang, char *err, size_t cap)
{
    buf_t b = {0};
    bool arabic = strcmp(lang, "ar") == 0;
    const char *p = text;
    buf_add(&b, "", 0);
    while (*p) {
        const char *open = strstr(p, "{{");
        if (!open) {
            buf_add(&b, p, strlen(p));
            break;
        }
        buf_add(&b, p, (size_t)(open - p));
        const char *end = strstr(open + 2, "}}");
        assert(end); /* checked at load */
        char key[TMPL_NAME_MAX + 1];
        size_t len = (size_t)(end - open - 2);
        snprintf(key, sizeof key, "%.*s", (int)(len > TMPL_NAME_MAX ? TMPL_NAME_MAX : len),
                 open + 2);
        char tmp[64];
        const char *value = param_text(params, key, lang, tmp, sizeof tmp);
        if (!value || !wasl_utf8_valid(value, strlen(value), false)) {
            wasl_set_err(err, cap, "parameter %s is missing or not text", key);
            free(b.s);
            return NULL;
        }
        add_value(&b, value, arabic);
        p = end + 2;
    }
    if (b.failed) {
        wasl_set_err(err, cap, "out of memory");
        free(b.s);
        return NULL;
    }
    return b.s;
}

char *tmpl_render(const tmpl_set_t *self, const char *lang, const char *channel, const char *name,
                  const json_t *params, char **subject, char *err, size_t cap)
{
    assert(self);
    size_t s;
    int l = index_of(langs, 2, lang), c = index_of(channels, 2, channel);
    if (!spec_of(name, &s) || l < 0 || c < 0) {
        wasl_set_err(err, cap, "no template %s for %s/%s", name ? name : "(null)",
                     lang ? lang : "(null)", channel ? channel : "(null)");
        return NULL;
    }
    if (!json_is_object(params)) {
        wasl_set_err(err, cap, "params is not an object");
        return NULL;
    }
    const tmpl_t *t = &self->t[s][l][c];
    char *body = expand(t->body, params, lang, err, cap);
    if (!body) {
        return NULL;
    }
    if (subject) {
        *subject = NULL;
        if (t->subject) {
            *subject = expand(t->subject, params, lang, err, cap);
            if (!*subject) {
                free(body);
                return NULL;
            }
        }
    }
    return body;
}

/* ---- SMS parts --------------------------------------------------------------------------- */

#define GSM7_SINGLE 160
#define GSM7_MULTI  153
#define UCS2_SINGLE 70
#define UCS2_MULTI  67

/* Septets a code point takes in GSM 03.38 (1 or 2), or 0 when it is not in the alphabet. */
static int gsm7_septets(uint32_t cp)
{
    static const uint32_t basic_extra[] = {
        0xA3,  0xA5,  0xE8,  0xE9,  0xF9,  0xEC,  0xF2,  0xC7,  0xD8,  0xF8, 0xC5, 0xE5, 0x394,
        0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398, 0x39E, 0xC6, 0xE6, 0xDF, 0xC9,
        0xA4,  0xA1,  0xC4,  0xD6,  0xD1,  0xDC,  0xA7,  0xBF,  0xE4,  0xF6, 0xF1, 0xFC, 0xE0};
    if (cp == '\n' || cp == '\r') {
        return 1;
    }
    if (cp == '^' || cp == '{' || cp == '}' || cp == '\\' || cp == '[' || cp == ']' || cp == '~' ||
        cp == '|' || cp == 0x20AC || cp == '\f') {
        return 2;
    }
    if (cp >= 0x20 && cp < 0x7F) {
        return cp == '`' ? 0 : 1;
    }
    for (size_t i = 0; i < sizeof basic_extra / sizeof basic_extra[0]; i++) {
        if (basic_extra[i] == cp) {
            return 1;
        }
    }
    return 0;
}

int tmpl_sms_segments(const char *text, bool *ucs2)
{
    size_t len = text ? strlen(text) : 0;
    if (!text || !wasl_utf8_valid(text, len, false)) {
        return -1;
    }
    size_t septets = 0, units = 0;
    bool gsm = true;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += wasl_utf8_decode(text + i, len - i, &cp, NULL); /* valid: checked above */
        int n = gsm7_septets(cp);
        gsm = gsm && n > 0;
        septets += (size_t)n;
        units += cp > 0xFFFF ? 2 : 1;
    }
    if (ucs2) {
        *ucs2 = !gsm;
    }
    if (len == 0) {
        return 0;
    }
    if (gsm) {
        return septets <= GSM7_SINGLE ? 1 : (int)((septets + GSM7_MULTI - 1) / GSM7_MULTI);
    }
    return units <= UCS2_SINGLE ? 1 : (int)((units + UCS2_MULTI - 1) / UCS2_MULTI);
}
