/* test_metrics — counters, gauges, histograms and their Prometheus text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static int teardown(void **state)
{
    (void)state;
    wasl_metrics_reset();
    return 0;
}

static void test_counter_and_gauge(void **state)
{
    (void)state;
    wasl_counter_t *c = wasl_counter("wasl_test_total", "Things counted", "kind=\"a\"");
    wasl_counter_inc(c);
    wasl_counter_add(c, 4);
    assert_int_equal(wasl_counter_value(c), 5);
    /* Same name and labels: same series. */
    assert_ptr_equal(wasl_counter("wasl_test_total", "Things counted", "kind=\"a\""), c);
    wasl_gauge_t *g = wasl_gauge("wasl_test_depth", "Depth", NULL);
    wasl_gauge_set(g, 2.5);
    wasl_gauge_add(g, -1);
    char *text = wasl_metrics_render();
    assert_non_null(strstr(text, "# HELP wasl_test_total Things counted\n"
                                 "# TYPE wasl_test_total counter\n"
                                 "wasl_test_total{kind=\"a\"} 5\n"));
    assert_non_null(strstr(text, "# TYPE wasl_test_depth gauge\nwasl_test_depth 1.5\n"));
    free(text);
}

static void test_families_stay_together(void **state)
{
    (void)state;
    wasl_counter("wasl_a_total", "A", "x=\"1\"");
    wasl_counter("wasl_b_total", "B", NULL);
    wasl_counter("wasl_a_total", "A", "x=\"2\"");
    char *text = wasl_metrics_render();
    char *a1 = strstr(text, "wasl_a_total{x=\"1\"}");
    char *a2 = strstr(text, "wasl_a_total{x=\"2\"}");
    char *b = strstr(text, "wasl_b_total ");
    assert_non_null(a1);
    assert_non_null(a2);
    assert_non_null(b);
    assert_true(a1 < a2 && a2 < b);
    /* HELP once per family. */
    char *help = strstr(text, "# HELP wasl_a_total");
    assert_null(strstr(help + 1, "# HELP wasl_a_total"));
    free(text);
}

static void test_histogram(void **state)
{
    (void)state;
    const double bounds[] = {0.1, 1};
    wasl_histogram_t *h = wasl_histogram("wasl_test_seconds", "Latency", "op=\"x\"", bounds, 2);
    wasl_histogram_observe(h, 0.05);
    wasl_histogram_observe(h, 0.1); /* le is inclusive */
    wasl_histogram_observe(h, 0.5);
    wasl_histogram_observe(h, 7);
    char *text = wasl_metrics_render();
    assert_non_null(
        strstr(text, "wasl_test_seconds_bucket{op=\"x\",le=\"0.10000000000000001\"} 2\n"));
    assert_non_null(strstr(text, "wasl_test_seconds_bucket{op=\"x\",le=\"1\"} 3\n"));
    assert_non_null(strstr(text, "wasl_test_seconds_bucket{op=\"x\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(text, "wasl_test_seconds_sum{op=\"x\"} 7.6500000000000004\n"));
    assert_non_null(strstr(text, "wasl_test_seconds_count{op=\"x\"} 4\n"));
    free(text);
}

static void *bump(void *arg)
{
    for (int i = 0; i < 10000; i++) {
        wasl_counter_inc((wasl_counter_t *)arg);
    }
    return NULL;
}

static void test_concurrent_updates(void **state)
{
    (void)state;
    wasl_counter_t *c = wasl_counter("wasl_race_total", "r", NULL);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        pthread_create(&t[i], NULL, bump, c);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
    }
    assert_int_equal(wasl_counter_value(c), 40000);
}

static void hook(void *arg)
{
    wasl_gauge_set(arg, 99);
}

static void test_render_hook_and_escape(void **state)
{
    (void)state;
    wasl_gauge_t *g = wasl_gauge("wasl_hooked", "h", NULL);
    wasl_metrics_on_render(hook, g);
    char *text = wasl_metrics_render();
    assert_non_null(strstr(text, "wasl_hooked 99\n"));
    free(text);
    char esc[32];
    assert_string_equal(wasl_metrics_escape("a\"b\\c\nd", esc, sizeof esc), "a\\\"b\\\\c\\nd");
    char tiny[4];
    assert_string_equal(wasl_metrics_escape("\"\"\"", tiny, sizeof tiny), "\\\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_counter_and_gauge, teardown),
        cmocka_unit_test_teardown(test_families_stay_together, teardown),
        cmocka_unit_test_teardown(test_histogram, teardown),
        cmocka_unit_test_teardown(test_concurrent_updates, teardown),
        cmocka_unit_test_teardown(test_render_hook_and_escape, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
