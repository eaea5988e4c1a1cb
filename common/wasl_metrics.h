/* wasl_metrics — process-wide counters, gauges and histograms rendered as Prometheus text. */
#ifndef WASL_METRICS_H
#define WASL_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct wasl_metric wasl_counter_t;
typedef struct wasl_metric wasl_gauge_t;
typedef struct wasl_metric wasl_histogram_t;

/* Get-or-create a metric in the process registry. `name` follows Prometheus naming, `help` is
 * one line, `labels` is NULL or a preformatted label set such as `stage="classify"` (values
 * escaped with wasl_metrics_escape). All strings are copied. The same name+labels returns the
 * same object. Never NULL: on allocation failure the process aborts (metrics are created at
 * start-up, not per request). Updating is lock-free and thread-safe. */
wasl_counter_t *wasl_counter(const char *name, const char *help, const char *labels);
wasl_gauge_t *wasl_gauge(const char *name, const char *help, const char *labels);
/* `bounds` are the upper bounds of the buckets in ascending order (copied); +Inf is implied. */
wasl_histogram_t *wasl_histogram(const char *name, const char *help, const char *labels,
                                 const double *bounds, size_t nbounds);

void wasl_counter_add(wasl_counter_t *c, uint64_t n);
#define wasl_counter_inc(c) wasl_counter_add((c), 1)
uint64_t wasl_counter_value(const wasl_counter_t *c);
void wasl_gauge_set(wasl_gauge_t *g, double v);
void wasl_gauge_add(wasl_gauge_t *g, double delta);
double wasl_gauge_value(const wasl_gauge_t *g);
void wasl_histogram_observe(wasl_histogram_t *h, double v);

/* Default latency buckets in seconds (0.5 ms .. 10 s) and their count. */
extern const double wasl_latency_buckets_s[];
extern const size_t wasl_latency_buckets_n;

/* Called at the start of each render, to refresh gauges whose value is read on demand
 * (e.g. from a socket or a database). At most a few hooks per process. */
typedef void(wasl_metrics_hook_fn)(void *arg);
void wasl_metrics_on_render(wasl_metrics_hook_fn *fn, void *arg);

/* Returns the whole registry in Prometheus text exposition format 0.0.4, as a new string the
 * caller frees; NULL on allocation failure. */
char *wasl_metrics_render(void);

/* Writes `value` escaped for use inside a label value ("\\", "\"", "\n") into out (cap bytes,
 * truncated, always NUL-terminated); returns out. */
char *wasl_metrics_escape(const char *value, char *out, size_t cap);

/* Drops every metric and hook (tests only; no metric pointer may be used afterwards). */
void wasl_metrics_reset(void);

#endif
