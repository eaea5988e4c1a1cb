/* rules — the routing rules file: YAML parsed with libyaml, validated with file:line errors; the
 * routing decision (queue, priority, skills, SLA, auto-answer) and the business-hours calendar. */
#include "rules.h"
#include "wasl_domain.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* A name (wasl_name_ok) fits a RULES_NAME_MAX buffer with its NUL. */
_Static_assert(RULES_NAME_MAX == WASL_NAME_MAX + 1, "a name fits its buffer");

#define RULES_MAX            256
#define QUEUES_MAX           64
#define HOLIDAYS_MAX         128
#define RULES_FILE_MAX       (1024 * 1024)
#define DAY_S                86400L
#define CALENDAR_SEARCH_DAYS 3660 /* ten years: a calendar without a working day is refused */

typedef struct {
    char items[RULES_LIST_MAX][RULES_NAME_MAX];
    size_t n;
    bool set;
} strset_t;

typedef struct {
    char name[RULES_NAME_MAX];
    int line;
    strset_t category, priority, channel, language, beneficiary, entities;
    int business_hours; /* -1 any, 0 outside, 1 inside */
    char queue[RULES_NAME_MAX];
    int set_rank; /* -1 unchanged */
    strset_t skills;
    bool auto_answer;
} rule_t;

typedef struct {
    char name[RULES_NAME_MAX];
    int line;
    strset_t skills;
    long first_response_s[RULES_PRIORITIES], resolution_s[RULES_PRIORITIES];
    bool business_time;
} queue_t;

struct rules {
    rule_t rules[RULES_MAX];
    size_t nrules;
    queue_t queues[QUEUES_MAX];
    size_t nqueues;
    char default_queue[RULES_NAME_MAX];
    bool auto_answer;
    long utc_offset_s;
    unsigned days_mask;          /* bit 0 Sunday … bit 6 Saturday */
    long open_s, close_s;        /* seconds after local midnight */
    long holidays[HOLIDAYS_MAX]; /* local day numbers (days since 1970-01-01) */
    size_t nholidays;
    long offer_timeout_s, overflow_after_s;
    char overflow_queue[RULES_NAME_MAX], supervisor_queue[RULES_NAME_MAX];
    char alert_email[256];
};

static const char *const priorities[RULES_PRIORITIES] = {"urgent", "high", "normal", "low"};
static const char *const priority_words[] = {"urgent", "high", "normal", "low", NULL};
static const char *const categories[] = {
    "case_inquiry", "eservice_support", "judicial_support", "staff_services",
    "complaint",    "general_inquiry",  "triage",           NULL};
static const char *const channels[] = {"web", "api", "email", "sms", "phone", NULL};
static const char *const languages[] = {"ar", "en", "mixed", NULL};
static const char *const beneficiaries[] = {"public", "staff", NULL};
static const char *const entity_kinds[] = {"case_number", "national_id", "phone",
                                           "email",       "ticket_ref",  NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

int rules_priority_rank(const char *p)
{
    for (int i = 0; p && i < RULES_PRIORITIES; i++) {
        if (strcmp(p, priorities[i]) == 0) {
            return i;
        }
    }
    return -1;
}

const char *rules_priority_name(int rank)
{
    return rank >= 0 && rank < RULES_PRIORITIES ? priorities[rank] : NULL;
}

/* ---- parsing ----------------------------------------------------------------------------- */

typedef struct {
    yaml_document_t doc;
    const char *name;
    char *err;
    size_t cap;
    bool failed;
} parse_t;

static int fail(parse_t *p, const yaml_node_t *at, const char *fmt, ...)
{
    if (p->failed) {
        return -1;
    }
    p->failed = true;
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(p->err, p->cap, "%s:%lu: %s", p->name,
             at ? (unsigned long)at->start_mark.line + 1 : 1UL, msg);
    return -1;
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static yaml_node_t *node(parse_t *p, int id)
{
    return yaml_document_get_node(&p->doc, id);
}

static bool in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i]; i++) {
        if (strcmp(list[i], s) == 0) {
            return true;
        }
    }
    return false;
}

static void join(const char *const *list, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; list[i] && o < cap; i++) {
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? ", " : "", list[i]);
    }
}

/* A scalar or a list of scalars into `set`, each checked against `allowed` (NULL: a name). */
static int read_set(parse_t *p, yaml_node_t *n, const char *what, const char *const *allowed,
                    strset_t *set)
{
    set->set = true;
    set->n = 0;
    yaml_node_item_t *start = NULL, *end = NULL;
    int one = 0;
    if (n->type == YAML_SCALAR_NODE) {
        one = (int)(n - p->doc.nodes.start) + 1;
        start = &one;
        end = start + 1;
    } else if (n->type == YAML_SEQUENCE_NODE) {
        start = n->data.sequence.items.start;
        end = n->data.sequence.items.top;
    } else {
        return fail(p, n, "%s: expected a value or a list", what);
    }
    for (yaml_node_item_t *it = start; it < end; it++) {
        yaml_node_t *v = node(p, *it);
        const char *s = scalar(v);
        if (!s) {
            return fail(p, v ? v : n, "%s: expected a plain value", what);
        }
        if (allowed && !in_list(allowed, s)) {
            char choices[256];
            join(allowed, choices, sizeof choices);
            return fail(p, v, "%s: unknown value \"%s\" (expected one of: %s)", what, s, choices);
        }
        if (!allowed && !wasl_name_ok(s)) {
            return fail(
                p, v, "%s: \"%s\" is not a name (a-z, 0-9, '-', '_', '.'; a letter or digit first)",
                what, s);
        }
        if (set->n == RULES_LIST_MAX) {
            return fail(p, v, "%s: more than %d values", what, RULES_LIST_MAX);
        }
        snprintf(set->items[set->n++], RULES_NAME_MAX, "%s", s);
    }
    if (set->n == 0) {
        return fail(p, n, "%s: empty list", what);
    }
    return 0;
}

static int read_bool(parse_t *p, yaml_node_t *n, const char *what, bool *out)
{
    const char *s = scalar(n);
    if (s && (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0)) {
        *out = true;
    } else if (s && (strcmp(s, "false") == 0 || strcmp(s, "no") == 0)) {
        *out = false;
    } else {
        return fail(p, n, "%s: expected true or false", what);
    }
    return 0;
}

/* "90", "90s", "15m", "4h", "2d" → seconds. */
static int read_duration(parse_t *p, yaml_node_t *n, const char *what, long min, long *out)
{
    const char *s = scalar(n);
    char *end = NULL;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : -1;
    long mult = 1;
    if (s && end != s && !errno) {
        if (*end == 'm') {
            mult = 60;
        } else if (*end == 'h') {
            mult = 3600;
        } else if (*end == 'd') {
            mult = DAY_S;
        } else if (*end != 's' && *end != '\0') {
            mult = 0;
        }
        if (*end && end[1]) {
            mult = 0;
        }
    }
    if (!s || end == s || errno || mult == 0 || v < 0 || v > 365 * DAY_S / mult || v * mult < min) {
        return fail(p, n, "%s: expected a duration of at least %lds such as 90s, 15m, 4h, 2d", what,
                    min);
    }
    *out = v * mult;
    return 0;
}

/* "HH:MM" → seconds after midnight (24:00 allowed for a close). */
static int read_clock(parse_t *p, yaml_node_t *n, const char *what, long *out)
{
    const char *s = scalar(n);
    unsigned h, m;
    char extra;
    if (!s || sscanf(s, "%2u:%2u%c", &h, &m, &extra) != 2 || m > 59 || h > 24 ||
        (h == 24 && m != 0)) {
        return fail(p, n, "%s: expected a time of day HH:MM", what);
    }
    *out = (long)h * 3600 + (long)m * 60;
    return 0;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static long days_from_civil(long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long)doe - 719468;
}

typedef int(map_fn)(parse_t *p, const char *key, yaml_node_t *value, void *arg);

/* Calls fn for each key of a mapping; a non-scalar key or a non-mapping is an error. */
static int each_key(parse_t *p, yaml_node_t *n, const char *what, map_fn *fn, void *arg)
{
    if (!n || n->type != YAML_MAPPING_NODE) {
        return fail(p, n, "%s: expected a mapping", what);
    }
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = node(p, pr->key), *v = node(p, pr->value);
        const char *key = scalar(k);
        if (!key || !v) {
            return fail(p, k, "%s: keys must be plain names", what);
        }
        if (fn(p, key, v, arg) < 0) {
            return -1;
        }
    }
    return 0;
}

typedef struct {
    rules_t *r;
    rule_t *rule;
    queue_t *queue;
    const char *what;
} ctx_t;

static int calendar_key(parse_t *p, const char *key, yaml_node_t *v, void *arg)
{
    rules_t *r = ((ctx_t *)arg)->r;
    if (strcmp(key, "utc_offset") == 0) {
        const char *s = scalar(v);
        int sign = s && s[0] == '-' ? -1 : 1;
        unsigned h, m;
        if (!s || (s[0] != '+' && s[0] != '-') || sscanf(s + 1, "%2u:%2u", &h, &m) != 2 || h > 14 ||
            m > 59 || strlen(s) != 6) {
            return fail(p, v, "calendar.utc_offset: expected +HH:MM");
        }
        r->utc_offset_s = sign * (long)(h * 3600 + m * 60);
        return 0;
    }
    if (strcmp(key, "timezone") == 0) {
        return scalar(v) ? 0 : fail(p, v, "calendar.timezone: expected a name");
    }
    if (strcmp(key, "days") == 0) {
        strset_t days;
        if (read_set(p, v, "calendar.days", day_names, &days) < 0) {
            return -1;
        }
        r->days_mask = 0;
        for (size_t i = 0; i < days.n; i++) {
            for (unsigned d = 0; day_names[d]; d++) {
                if (strcmp(days.items[i], day_names[d]) == 0) {
                    r->days_mask |= 1U << d;
                }
            }
        }
        return 0;
    }
    if (strcmp(key, "open") == 0) {
        return read_clock(p, v, "calendar.open", &r->open_s);
    }
    if (strcmp(key, "close") == 0) {
        return read_clock(p, v, "calendar.close", &r->close_s);
    }
    if (strcmp(key, "holidays") == 0) {
        if (v->type != YAML_SEQUENCE_NODE) {
            return fail(p, v, "calendar.holidays: expected a list of YYYY-MM-DD dates");
        }
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            yaml_node_t *d = node(p, *it);
            const char *s = scalar(d);
            unsigned y, mo, dd;
            char extra;
            if (!s || sscanf(s, "%4u-%2u-%2u%c", &y, &mo, &dd, &extra) != 3 || mo < 1 || mo > 12 ||
                dd < 1 || dd > 31 || y < 1970) {
                return fail(p, d, "calendar.holidays: expected a date YYYY-MM-DD");
            }
            if (r->nholidays == HOLIDAYS_MAX) {
                return fail(p, d, "calendar.holidays: more than %d dates", HOLIDAYS_MAX);
            }
            r->holidays[r->nholidays++] = days_from_civil((long)y, mo, dd);
        }
        return 0;
    }
    return fail(p, v, "calendar: unknown key \"%s\"", key);
}

static int sla_targets(parse_t *p, const char *key, yaml_node_t *v, void *arg)
{
    ctx_t *c = arg;
    int rank = (int)(intptr_t)c->what; /* the priority being read */
    if (strcmp(key, "first_response") == 0) {
        return read_duration(p, v, "sla.first_response", 60, &c->queue->first_response_s[rank]);
    }
    if (strcmp(key, "resolution") == 0) {
        return read_duration(p, v, "sla.resolution", 60, &c->queue->resolution_s[rank]);
    }
    return fail(p, v, "queues.%s.sla: unknown key \"%s\" (first_response, resolution)",
                c->queue->name, key);
}

static int sla_key(parse_t *p, const char *key, yaml_node_t *v, void *arg)
{
    ctx_t *c = arg;
    int rank = strcmp(key, "default") == 0 ? RULES_PRIORITIES : rules_priority_rank(key);
    if (rank < 0) {
        return fail(p, v, "queues.%s.sla: unknown priority \"%s\"", c->queue->name, key);
    }
    if (rank == RULES_PRIORITIES) {
        /* Defaults fill the priorities not given (later keys override). */
        for (int i = 0; i < RULES_PRIORITIES; i++) {
            ctx_t sub = *c;
            sub.what = (const char *)(intptr_t)i;
            long fr = c->queue->first_response_s[i], res = c->queue->resolution_s[i];
            if (each_key(p, v, "sla", sla_targets, &sub) < 0) {
                return -1;
            }
            if (fr > 0) {
                c->queue->first_response_s[i] = fr;
            }
            if (res > 0) {
                c->queue->resolution_s[i] = res;
            }
        }
        return 0;
    }
    ctx_t sub = *c;
    sub.what = (const char *)(intptr_t)rank;
    return each_key(p, v, "sla", sla_targets, &sub);
}

static int queue_key(parse_t *p, const char *key, yaml_node_t *v, void *arg)
{
    ctx_t *c = arg;
    if (strcmp(key, "skills") == 0) {
        return read_set(p, v, "queue skills", NULL, &c->queue->skills);
    }
    if (strcmp(key, "business_time") == 0) {
        return read_bool(p, v, "queue business_time", &c->queue->business_time);
    }
    if (strcmp(key, "sla") == 0) {
        return each_key(p, v, "sla", sla_key, c);
    }
    return fail(p, v, "queues.%s: unknown key \"%s\" (skills, sla, business_time)", c->queue->name,
                key);
}

static int queues_key(parse_t *p, const char *key, yaml_node_t *v, void *arg)
{
    ctx_t *c = arg;
    rules_t *r = c->r;
    if (!wasl_name_ok(key)) {
        return fail(p, v, "queues: \"%s\" is not a queue name", key);
    }
    if (rules_has_queue(r, key)) {
        return fail(p, v, "queues: \"%s\" defined twice", key);
    }
    if (r->nqueues == QUEUES_MAX) {
        return fail(p, v, "queues: more than %d", QUEUES_MAX);
    }
    queue_t *q = &r->queues[r->nqueues++];
    memset(q, 0, sizeof *q);
    snprintf(q->name, sizeof q->name, "%s", key);
    q->line = (int)v->start_mark.line + 1;
    ctx_t sub = {.r = r, .queue = q};
    if (v->type == YAML_SCALAR_NODE && scalar(v)[0] == '\0') {
        return fail(p, v, "queues.%s: needs an sla", key);
    }
    if (each_key(p, v, "queue", queue_key, &sub) < 0) {
        return -1;
    }
    for (int i = 0; i < RULES_PRIORITIES; i++) {
        if (q->first_response_s[i] <= 0 || q->resolution_s[i] <= 0) {
            return fail(p, v,
                        "queues.%s.sla: no first_response and resolution for %s "
                        "(give them, or a default)",
                        key, priorities[i]);
        }
        if (q->resolution_s[i] < q->first_response_s[i]) {
            return fail(p, v, "queues.%s.sla.%s: resolution is shorter than first_response", key,
                        priorities[i]);
        }
    }
    return 0;
}

static int match_key(parse_t *p, const char *key, yaml_node_t *v, void *arg)
{
    rule_t *rule = ((ctx_t *)arg)->rule;
    if (strcmp(key, "category") == 0) {
        return read_set(p, v, "match.category", categories, &rule->category);
    }
    if (strcmp(key, "priority") == 0) {
        return read_set(p, v, "match.priority", priority_words, &rule->priority);
    }
    if (strcmp(key, "channel") == 0) {
        return read_set(p, v, "match.channel", channels, &rule->channel);
    }
    if (strcmp(key, "language") == 0) {
        return read_set(p, v, "match.language", languages, &rule->language);
    }
    if (strcmp(key, "beneficiary") == 0) {
        return read_set(p, v, "match.beneficiary", beneficiaries, &rule->beneficiary);
    }
    if (strcmp(key, "entities") == 0) {
        return read_set(p, v, "match.entities", entity_kinds, &rule->entities);
    }
    if (strcmp(key, "business_hours") == 0) {
        bool b;
        if (read_bool(p, v, "match.business_hours", &b) < 0) {
            return -1;
        }
        rule->business_hours = b;
        return 0;
    }
    return fail(p, v,
                "match: unknown key \"%s\" (category, priority, channel, language, "
                "beneficiary, entities, business_hours)",
                key);
}

static int rule_key(parse_t *p, const char *key, yaml_node_t *v, void *arg)
{
    ctx_t *c = arg;
    rule_t *rule = c->rule;
    if (strcmp(key, "name") == 0) {
        const char *s = scalar(v);
        if (!s || !wasl_name_ok(s)) {
            return fail(
                p, v,
                "rule name: expected a name (a-z, 0-9, '-', '_', '.'; a letter or digit first)");
        }
        snprintf(rule->name, sizeof rule->name, "%s", s);
        return 0;
    }
    if (strcmp(key, "match") == 0) {
        return each_key(p, v, "match", match_key, c);
    }
    if (strcmp(key, "queue") == 0) {
        const char *s = scalar(v);
        if (!s || !wasl_name_ok(s)) {
            return fail(p, v, "rule queue: expected a queue name");
        }
        snprintf(rule->queue, sizeof rule->queue, "%s", s);
        return 0;
    }
    if (strcmp(key, "priority") == 0) {
        rule->set_rank = rules_priority_rank(scalar(v));
        return rule->set_rank < 0
                   ? fail(p, v, "rule priority: expected urgent, high, normal or low")
                   : 0;
    }
    if (strcmp(key, "skills") == 0) {
        return read_set(p, v, "rule skills", NULL, &rule->skills);
    }
    if (strcmp(key, "auto_answer") == 0) {
        return read_bool(p, v, "rule auto_answer", &rule->auto_answer);
    }
    return fail(p, v,
                "rule: unknown key \"%s\" (name, match, queue, priority, skills, "
                "auto_answer)",
                key);
}

static int escalation_key(parse_t *p, const char *key, yaml_node_t *v, void *arg)
{
    rules_t *r = ((ctx_t *)arg)->r;
    const char *s = scalar(v);
    if (strcmp(key, "supervisor_queue") == 0 && s && wasl_name_ok(s)) {
        snprintf(r->supervisor_queue, sizeof r->supervisor_queue, "%s", s);
        return 0;
    }
    if (strcmp(key, "alert_email") == 0 && s && strchr(s, '@') && strlen(s) < 256) {
        snprintf(r->alert_email, sizeof r->alert_email, "%s", s);
        return 0;
    }
    if (strcmp(key, "overflow_queue") == 0 && s && wasl_name_ok(s)) {
        snprintf(r->overflow_queue, sizeof r->overflow_queue, "%s", s);
        return 0;
    }
    if (strcmp(key, "overflow_after") == 0) {
        return read_duration(p, v, "escalation.overflow_after", 1, &r->overflow_after_s);
    }
    if (strcmp(key, "offer_timeout") == 0) {
        return read_duration(p, v, "escalation.offer_timeout", 1, &r->offer_timeout_s);
    }
    return fail(p, v,
                "escalation: bad or unknown key \"%s\" (supervisor_queue, alert_email, "
                "overflow_queue, overflow_after, offer_timeout)",
                key);
}

static int top_key(parse_t *p, const char *key, yaml_node_t *v, void *arg)
{
    ctx_t *c = arg;
    rules_t *r = c->r;
    if (strcmp(key, "version") == 0) {
        const char *s = scalar(v);
        return s && strcmp(s, "1") == 0 ? 0 : fail(p, v, "version: only 1 is known");
    }
    if (strcmp(key, "auto_answer") == 0) {
        return read_bool(p, v, "auto_answer", &r->auto_answer);
    }
    if (strcmp(key, "default_queue") == 0) {
        const char *s = scalar(v);
        if (!s || !wasl_name_ok(s)) {
            return fail(p, v, "default_queue: expected a queue name");
        }
        snprintf(r->default_queue, sizeof r->default_queue, "%s", s);
        return 0;
    }
    if (strcmp(key, "calendar") == 0) {
        return each_key(p, v, "calendar", calendar_key, c);
    }
    if (strcmp(key, "escalation") == 0) {
        return each_key(p, v, "escalation", escalation_key, c);
    }
    if (strcmp(key, "queues") == 0) {
        return each_key(p, v, "queues", queues_key, c);
    }
    if (strcmp(key, "rules") == 0) {
        if (v->type != YAML_SEQUENCE_NODE) {
            return fail(p, v, "rules: expected a list");
        }
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            yaml_node_t *rn = node(p, *it);
            if (r->nrules == RULES_MAX) {
                return fail(p, rn, "rules: more than %d", RULES_MAX);
            }
            rule_t *rule = &r->rules[r->nrules++];
            memset(rule, 0, sizeof *rule);
            rule->business_hours = -1;
            rule->set_rank = -1;
            rule->line = rn ? (int)rn->start_mark.line + 1 : 0;
            ctx_t sub = {.r = r, .rule = rule};
            if (each_key(p, rn, "rule", rule_key, &sub) < 0) {
                return -1;
            }
            if (!rule->name[0]) {
                return fail(p, rn, "rule: needs a name");
            }
            if (!rule->queue[0]) {
                return fail(p, rn, "rule %s: needs a queue", rule->name);
            }
            for (size_t j = 0; j + 1 < r->nrules; j++) {
                if (strcmp(r->rules[j].name, rule->name) == 0) {
                    return fail(p, rn, "rule %s: name used twice", rule->name);
                }
            }
        }
        return 0;
    }
    return fail(p, v,
                "unknown key \"%s\" (version, auto_answer, default_queue, calendar, "
                "escalation, queues, rules)",
                key);
}

static void set_defaults(rules_t *r)
{
    r->utc_offset_s = 3 * 3600; /* Asia/Riyadh: UTC+3, no daylight saving time */
    r->days_mask = 0x1f;        /* Sunday–Thursday */
    r->open_s = 8 * 3600;
    r->close_s = 16 * 3600;
    r->offer_timeout_s = 30;
    r->overflow_after_s = 600;
}

/* Cross-references: every queue named exists. */
static int check_refs(parse_t *p, rules_t *r, yaml_node_t *root)
{
    if (r->nqueues == 0) {
        return fail(p, root, "queues: none defined");
    }
    if (!r->default_queue[0]) {
        return fail(p, root, "default_queue: missing");
    }
    if (!rules_has_queue(r, r->default_queue)) {
        return fail(p, root, "default_queue: queue \"%s\" is not defined", r->default_queue);
    }
    if (!r->supervisor_queue[0] || !rules_has_queue(r, r->supervisor_queue)) {
        return fail(p, root, "escalation.supervisor_queue: missing or not a defined queue");
    }
    if (!r->overflow_queue[0] || !rules_has_queue(r, r->overflow_queue)) {
        return fail(p, root, "escalation.overflow_queue: missing or not a defined queue");
    }
    if (!r->alert_email[0]) {
        return fail(p, root, "escalation.alert_email: missing");
    }
    if (r->close_s <= r->open_s) {
        return fail(p, root, "calendar: close must be after open");
    }
    if (r->days_mask == 0) {
        return fail(p, root, "calendar.days: no working day");
    }
    for (size_t i = 0; i < r->nrules; i++) {
        if (!rules_has_queue(r, r->rules[i].queue)) {
            char msg[160];
            snprintf(msg, sizeof msg, "rule %s: queue \"%s\" is not defined", r->rules[i].name,
                     r->rules[i].queue);
            p->failed = true;
            snprintf(p->err, p->cap, "%s:%d: %s", p->name, r->rules[i].line, msg);
            return -1;
        }
    }
    return 0;
}

rules_t *rules_parse(const char *text, size_t len, const char *name, char *err, size_t cap)
{
    assert(text && name && err);
    parse_t p = {.name = name, .err = err, .cap = cap};
    err[0] = '\0';
    rules_t *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, cap, "%s: out of memory", name);
        return NULL;
    }
    set_defaults(r);
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, cap, "%s: out of memory", name);
        free(r);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &p.doc)) {
        snprintf(err, cap, "%s:%lu: %s %s", name, (unsigned long)parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "syntax error",
                 parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        free(r);
        return NULL;
    }
    yaml_parser_delete(&parser);
    yaml_node_t *root = yaml_document_get_root_node(&p.doc);
    ctx_t c = {.r = r};
    int rc = root ? each_key(&p, root, "the file", top_key, &c) : fail(&p, NULL, "empty file");
    if (rc == 0) {
        rc = check_refs(&p, r, root);
    }
    yaml_document_delete(&p.doc);
    if (rc < 0) {
        free(r);
        return NULL;
    }
    return r;
}

rules_t *rules_load(const char *path, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(RULES_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, RULES_FILE_MAX + 1, f) : 0;
    bool bad = ferror(f) || !buf;
    fclose(f);
    if (bad || n > RULES_FILE_MAX) {
        snprintf(err, cap, "%s: %s", path, bad ? "cannot read" : "larger than 1 MiB");
        free(buf);
        return NULL;
    }
    rules_t *r = rules_parse(buf, n, path, err, cap);
    free(buf);
    return r;
}

void rules_destroy(rules_t **self_p)
{
    assert(self_p);
    free(*self_p);
    *self_p = NULL;
}

/* ---- the calendar ------------------------------------------------------------------------ */

static long floor_div(long a, long b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static bool working_day(const rules_t *self, long day)
{
    /* 1970-01-01 was a Thursday (4). */
    long wd = ((day % 7) + 7 + 4) % 7;
    if (!(self->days_mask & (1U << wd))) {
        return false;
    }
    for (size_t i = 0; i < self->nholidays; i++) {
        if (self->holidays[i] == day) {
            return false;
        }
    }
    return true;
}

bool rules_in_business_hours(const rules_t *self, time_t t)
{
    long local = (long)t + self->utc_offset_s;
    long day = floor_div(local, DAY_S);
    long sec = local - day * DAY_S;
    return working_day(self, day) && sec >= self->open_s && sec < self->close_s;
}

time_t rules_add_business_s(const rules_t *self, time_t start, long seconds)
{
    long local = (long)start + self->utc_offset_s;
    long remaining = seconds;
    for (int guard = 0; guard < CALENDAR_SEARCH_DAYS && remaining > 0; guard++) {
        long day = floor_div(local, DAY_S);
        long sec = local - day * DAY_S;
        if (working_day(self, day) && sec < self->close_s) {
            if (sec < self->open_s) {
                local += self->open_s - sec;
                sec = self->open_s;
            }
            long use = self->close_s - sec < remaining ? self->close_s - sec : remaining;
            local += use;
            remaining -= use;
            if (remaining == 0) {
                break;
            }
        }
        local = (day + 1) * DAY_S; /* next local midnight */
    }
    return (time_t)(local - self->utc_offset_s);
}

/* ---- the decision ------------------------------------------------------------------------ */

static bool set_has(const strset_t *s, const char *v)
{
    for (size_t i = 0; v && i < s->n; i++) {
        if (strcmp(s->items[i], v) == 0) {
            return true;
        }
    }
    return false;
}

static bool rule_matches(const rule_t *r, const route_input_t *in, bool business)
{
    if ((r->category.set && !set_has(&r->category, in->category)) ||
        (r->priority.set && !set_has(&r->priority, in->priority)) ||
        (r->channel.set && !set_has(&r->channel, in->channel)) ||
        (r->language.set && !set_has(&r->language, in->language)) ||
        (r->beneficiary.set && !set_has(&r->beneficiary, in->beneficiary))) {
        return false;
    }
    if (r->business_hours >= 0 && (bool)r->business_hours != business) {
        return false;
    }
    for (size_t i = 0; i < r->entities.n; i++) {
        bool found = false;
        for (size_t j = 0; j < in->nentities && !found; j++) {
            found = strcmp(in->entities[j], r->entities.items[i]) == 0;
        }
        if (!found) {
            return false;
        }
    }
    return true;
}

static const queue_t *find_queue(const rules_t *self, const char *name)
{
    for (size_t i = 0; name && i < self->nqueues; i++) {
        if (strcmp(self->queues[i].name, name) == 0) {
            return &self->queues[i];
        }
    }
    return NULL;
}

bool rules_has_queue(const rules_t *self, const char *queue)
{
    return find_queue(self, queue) != NULL;
}

static void add_skill(route_decision_t *out, const char *s)
{
    for (size_t i = 0; i < out->nskills; i++) {
        if (strcmp(out->skills[i], s) == 0) {
            return;
        }
    }
    if (out->nskills < RULES_LIST_MAX) {
        out->skills[out->nskills++] = s;
    }
}

void rules_decide(const rules_t *self, const route_input_t *in, route_decision_t *out)
{
    assert(self && in && out);
    memset(out, 0, sizeof *out);
    out->in_business_hours = rules_in_business_hours(self, in->now);
    const rule_t *hit = NULL;
    for (size_t i = 0; i < self->nrules && !hit; i++) {
        if (rule_matches(&self->rules[i], in, out->in_business_hours)) {
            hit = &self->rules[i];
        }
    }
    out->rule = hit ? hit->name : "default";
    out->rule_line = hit ? hit->line : 0;
    const queue_t *q = find_queue(self, hit ? hit->queue : self->default_queue);
    assert(q); /* validated at load */
    out->queue = q->name;
    int rank = rules_priority_rank(in->priority);
    if (rank < 0) {
        rank = rules_priority_rank("normal");
    }
    if (hit && hit->set_rank >= 0) {
        rank = hit->set_rank;
    }
    out->prio_rank = rank;
    out->priority = priorities[rank];
    for (size_t i = 0; i < q->skills.n; i++) {
        add_skill(out, q->skills.items[i]);
    }
    for (size_t i = 0; hit && i < hit->skills.n; i++) {
        add_skill(out, hit->skills.items[i]);
    }
    out->first_response_s = q->first_response_s[rank];
    out->resolution_s = q->resolution_s[rank];
    out->business_time = q->business_time;
    if (q->business_time) {
        out->first_response_due = rules_add_business_s(self, in->now, out->first_response_s);
        out->resolution_due = rules_add_business_s(self, in->now, out->resolution_s);
    } else {
        out->first_response_due = in->now + out->first_response_s;
        out->resolution_due = in->now + out->resolution_s;
    }
    out->auto_answer_asked = hit && hit->auto_answer;
    out->auto_answer = self->auto_answer && out->auto_answer_asked;
}

/* ---- settings ---------------------------------------------------------------------------- */

long rules_offer_timeout_s(const rules_t *self)
{
    return self->offer_timeout_s;
}
long rules_overflow_after_s(const rules_t *self)
{
    return self->overflow_after_s;
}
const char *rules_overflow_queue(const rules_t *self)
{
    return self->overflow_queue;
}
const char *rules_supervisor_queue(const rules_t *self)
{
    return self->supervisor_queue;
}
const char *rules_alert_email(const rules_t *self)
{
    return self->alert_email;
}
bool rules_auto_answer(const rules_t *self)
{
    return self->auto_answer;
}

size_t rules_queue_skills(const rules_t *self, const char *queue, const char **out, size_t cap)
{
    const queue_t *q = find_queue(self, queue);
    size_t n = 0;
    for (size_t i = 0; q && i < q->skills.n && n < cap; i++) {
        out[n++] = q->skills.items[i];
    }
    return n;
}

int rules_queue_sla(const rules_t *self, const char *queue, int prio_rank, long *first_response_s,
                    long *resolution_s, bool *business_time)
{
    const queue_t *q = find_queue(self, queue);
    if (!q || prio_rank < 0 || prio_rank >= RULES_PRIORITIES) {
        return -1;
    }
    *first_response_s = q->first_response_s[prio_rank];
    *resolution_s = q->resolution_s[prio_rank];
    *business_time = q->business_time;
    return 0;
}
