/* wasl_metrics — process-wide counters, gauges and histograms rendered as Prometheus text. */
#include "wasl_metrics.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } metric_kind_t;

struct wasl_metric {
    struct wasl_metric *next;
    metric_kind_t kind;
    char *name;
    char *help;
    char *labels;               /* "" when none */
    atomic_uint_fast64_t count; /* counter value; histogram observation count */
    _Atomic double value;       /* gauge value; histogram sum */
    double *bounds;
    size_t nbounds;
    atomic_uint_fast64_t *buckets; /* nbounds + 1 (the last is +Inf), not cumulative */
};

#define MAX_HOOKS 8

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct wasl_metric *registry_head = NULL;
static struct wasl_metric **registry_tail = &registry_head;
static struct {
    wasl_metrics_hook_fn *fn;
    void *arg;
} hooks[MAX_HOOKS];
static size_t nhooks = 0;

const double wasl_latency_buckets_s[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t wasl_latency_buckets_n = sizeof wasl_latency_buckets_s / sizeof(double);

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) {
        abort();
    }
    return d;
}

static struct wasl_metric *get_or_create(metric_kind_t kind, const char *name, const char *help,
                                         const char *labels, const double *bounds, size_t nbounds)
{
    assert(name && *name);
    if (!labels) {
        labels = "";
    }
    pthread_mutex_lock(&registry_lock);
    struct wasl_metric *m;
    for (m = registry_head; m; m = m->next) {
        if (strcmp(m->name, name) == 0 && strcmp(m->labels, labels) == 0) {
            assert(m->kind == kind);
            pthread_mutex_unlock(&registry_lock);
            return m;
        }
    }
    m = calloc(1, sizeof *m);
    if (!m) {
        abort();
    }
    m->kind = kind;
    m->name = xstrdup(name);
    m->help = xstrdup(help);
    m->labels = xstrdup(labels);
    atomic_init(&m->count, 0);
    atomic_init(&m->value, 0.0);
    if (kind == KIND_HISTOGRAM) {
        m->nbounds = nbounds;
        m->bounds = malloc(nbounds * sizeof(double) + 1);
        m->buckets = calloc(nbounds + 1, sizeof *m->buckets);
        if (!m->bounds || !m->buckets) {
            abort();
        }
        memcpy(m->bounds, bounds, nbounds * sizeof(double));
    }
    /* Prometheus wants a family's series together: insert after the last series of the same
     * name, or append a new family at the end. */
    struct wasl_metric **at = registry_tail;
    for (struct wasl_metric *p = registry_head; p; p = p->next) {
        if (strcmp(p->name, name) == 0) {
            at = &p->next;
        }
    }
    m->next = *at;
    *at = m;
    if (!m->next) {
        registry_tail = &m->next;
    }
    pthread_mutex_unlock(&registry_lock);
    return m;
}

wasl_counter_t *wasl_counter(const char *name, const char *help, const char *labels)
{
    return get_or_create(KIND_COUNTER, name, help, labels, NULL, 0);
}

wasl_gauge_t *wasl_gauge(const char *name, const char *help, const char *labels)
{
    return get_or_create(KIND_GAUGE, name, help, labels, NULL, 0);
}

wasl_histogram_t *wasl_histogram(const char *name, const char *help, const char *labels,
                                 const double *bounds, size_t nbounds)
{
    assert(bounds && nbounds > 0);
    return get_or_create(KIND_HISTOGRAM, name, help, labels, bounds, nbounds);
}

void wasl_counter_add(wasl_counter_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->count, n, memory_order_relaxed);
}

uint64_t wasl_counter_value(const wasl_counter_t *c)
{
    return atomic_load_explicit(&((wasl_counter_t *)c)->count, memory_order_relaxed);
}

void wasl_gauge_set(wasl_gauge_t *g, double v)
{
    atomic_store_explicit(&g->value, v, memory_order_relaxed);
}

static void atomic_double_add(_Atomic double *target, double delta)
{
    double old = atomic_load_explicit(target, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(target, &old, old + delta, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

void wasl_gauge_add(wasl_gauge_t *g, double delta)
{
    atomic_double_add(&g->value, delta);
}

double wasl_gauge_value(const wasl_gauge_t *g)
{
    return atomic_load_explicit(&((wasl_gauge_t *)g)->value, memory_order_relaxed);
}

void wasl_histogram_observe(wasl_histogram_t *h, double v)
{
    size_t i = 0;
    while (i < h->nbounds && v > h->bounds[i]) {
        i++;
    }
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_double_add(&h->value, v);
}

void wasl_metrics_on_render(wasl_metrics_hook_fn *fn, void *arg)
{
    pthread_mutex_lock(&registry_lock);
    assert(nhooks < MAX_HOOKS);
    if (nhooks < MAX_HOOKS) {
        hooks[nhooks].fn = fn;
        hooks[nhooks].arg = arg;
        nhooks++;
    }
    pthread_mutex_unlock(&registry_lock);
}

/* A growable string for rendering. */
typedef struct {
    char *data;
    size_t len, cap;
    bool failed;
} strbuf_t;

static void sb_printf(strbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf_t *sb, const char *fmt, ...)
{
    if (sb->failed) {
        return;
    }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            sb->failed = true;
            return;
        }
        if (sb->len + (size_t)n < sb->cap) {
            sb->len += (size_t)n;
            return;
        }
        size_t cap = (sb->cap + (size_t)n + 1) * 2;
        char *data = realloc(sb->data, cap);
        if (!data) {
            sb->failed = true;
            return;
        }
        sb->data = data;
        sb->cap = cap;
    }
}

/* Prometheus floats: integers without a fraction, +Inf/NaN spelled as the format wants. */
static void sb_double(strbuf_t *sb, double v)
{
    if (isnan(v)) {
        sb_printf(sb, "NaN");
    } else if (isinf(v)) {
        sb_printf(sb, v > 0 ? "+Inf" : "-Inf");
    } else {
        sb_printf(sb, "%.17g", v);
    }
}

static const char *kind_name(metric_kind_t kind)
{
    return kind == KIND_COUNTER ? "counter" : kind == KIND_GAUGE ? "gauge" : "histogram";
}

/* Writes `name{labels,extra}` where either part may be empty. */
static void sb_series(strbuf_t *sb, const char *name, const char *suffix, const char *labels,
                      const char *extra)
{
    sb_printf(sb, "%s%s", name, suffix);
    if (*labels || *extra) {
        sb_printf(sb, "{%s%s%s}", labels, (*labels && *extra) ? "," : "", extra);
    }
    sb_printf(sb, " ");
}

char *wasl_metrics_render(void)
{
    strbuf_t sb = {.data = malloc(4096), .len = 0, .cap = 4096, .failed = false};
    if (!sb.data) {
        return NULL;
    }
    sb.data[0] = '\0';
    pthread_mutex_lock(&registry_lock);
    size_t n = nhooks;
    pthread_mutex_unlock(&registry_lock);
    for (size_t i = 0; i < n; i++) {
        hooks[i].fn(hooks[i].arg);
    }
    pthread_mutex_lock(&registry_lock);
    for (struct wasl_metric *m = registry_head; m; m = m->next) {
        /* HELP and TYPE once per name: only before its first series. */
        bool first = true;
        for (struct wasl_metric *p = registry_head; p != m; p = p->next) {
            if (strcmp(p->name, m->name) == 0) {
                first = false;
                break;
            }
        }
        if (first) {
            sb_printf(&sb, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
                      kind_name(m->kind));
        }
        switch (m->kind) {
        case KIND_COUNTER:
            sb_series(&sb, m->name, "", m->labels, "");
            sb_printf(&sb, "%llu\n", (unsigned long long)atomic_load(&m->count));
            break;
        case KIND_GAUGE:
            sb_series(&sb, m->name, "", m->labels, "");
            sb_double(&sb, atomic_load(&m->value));
            sb_printf(&sb, "\n");
            break;
        case KIND_HISTOGRAM: {
            uint64_t cumulative = 0;
            char le[64];
            for (size_t i = 0; i <= m->nbounds; i++) {
                cumulative += atomic_load(&m->buckets[i]);
                if (i < m->nbounds) {
                    snprintf(le, sizeof le, "le=\"%.17g\"", m->bounds[i]);
                } else {
                    snprintf(le, sizeof le, "le=\"+Inf\"");
                }
                sb_series(&sb, m->name, "_bucket", m->labels, le);
                sb_printf(&sb, "%llu\n", (unsigned long long)cumulative);
            }
            sb_series(&sb, m->name, "_sum", m->labels, "");
            sb_double(&sb, atomic_load(&m->value));
            sb_printf(&sb, "\n");
            sb_series(&sb, m->name, "_count", m->labels, "");
            sb_printf(&sb, "%llu\n", (unsigned long long)atomic_load(&m->count));
            break;
        }
        }
    }
    pthread_mutex_unlock(&registry_lock);
    if (sb.failed) {
        free(sb.data);
        return NULL;
    }
    return sb.data;
}

char *wasl_metrics_escape(const char *value, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0) {
        return out;
    }
    for (const char *p = value ? value : ""; *p; p++) {
        const char *rep = NULL;
        char one[2] = {*p, '\0'};
        switch (*p) {
        case '\\':
            rep = "\\\\";
            break;
        case '"':
            rep = "\\\"";
            break;
        case '\n':
            rep = "\\n";
            break;
        default:
            rep = one;
        }
        size_t rl = strlen(rep);
        if (o + rl >= cap) {
            break;
        }
        memcpy(out + o, rep, rl);
        o += rl;
    }
    out[o] = '\0';
    return out;
}

void wasl_metrics_reset(void)
{
    pthread_mutex_lock(&registry_lock);
    struct wasl_metric *m = registry_head;
    while (m) {
        struct wasl_metric *next = m->next;
        free(m->name);
        free(m->help);
        free(m->labels);
        free(m->bounds);
        free(m->buckets);
        free(m);
        m = next;
    }
    registry_head = NULL;
    registry_tail = &registry_head;
    nhooks = 0;
    pthread_mutex_unlock(&registry_lock);
}
