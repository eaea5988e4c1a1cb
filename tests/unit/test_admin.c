/* test_admin — the admin HTTP port: /healthz, /readyz (ready, not ready, draining), /metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_admin.h"
#include "wasl_metrics.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char data[65536];
    size_t len;
} body_t;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    body_t *b = arg;
    size_t take = size * n;
    if (take > sizeof b->data - 1 - b->len) {
        take = sizeof b->data - 1 - b->len;
    }
    memcpy(b->data + b->len, p, take);
    b->len += take;
    b->data[b->len] = '\0';
    return size * n;
}

static long get(int port, const char *path, body_t *b, const char *method)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    b->len = 0;
    b->data[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    if (method) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    }
    curl_easy_cleanup(c);
    return code;
}

static bool ready_answer;
static bool ready_fn(void *arg, char *why, size_t cap)
{
    (void)arg;
    if (!ready_answer) {
        snprintf(why, cap, "database \"down\"");
    }
    return ready_answer;
}

static void test_endpoints(void **state)
{
    (void)state;
    wasl_admin_t *admin = wasl_admin_new("wasl-test", "127.0.0.1", 0);
    assert_non_null(admin);
    int port = wasl_admin_port(admin);
    assert_true(port > 0);
    body_t *b = calloc(1, sizeof *b);

    assert_int_equal(get(port, "/healthz", b, NULL), 200);
    assert_non_null(strstr(b->data, "\"status\":\"ok\""));
    assert_non_null(strstr(b->data, "\"service\":\"wasl-test\""));

    assert_int_equal(get(port, "/readyz", b, NULL), 200); /* no check installed */
    ready_answer = false;
    wasl_admin_set_ready(admin, ready_fn, NULL);
    assert_int_equal(get(port, "/readyz", b, NULL), 503);
    assert_non_null(strstr(b->data, "database  down ")); /* quotes neutralised */
    ready_answer = true;
    assert_int_equal(get(port, "/readyz", b, NULL), 200);
    wasl_admin_set_draining(admin);
    assert_int_equal(get(port, "/readyz", b, NULL), 503);
    assert_non_null(strstr(b->data, "draining"));
    assert_int_equal(get(port, "/healthz", b, NULL), 200); /* alive while draining */

    wasl_counter_inc(wasl_counter("wasl_admin_test_total", "t", NULL));
    assert_int_equal(get(port, "/metrics", b, NULL), 200);
    assert_non_null(strstr(b->data, "wasl_admin_test_total 1\n"));

    assert_int_equal(get(port, "/nope", b, NULL), 404);
    assert_non_null(strstr(b->data, "\"error\""));
    assert_int_equal(get(port, "/healthz", b, "POST"), 405);

    free(b);
    wasl_admin_destroy(&admin);
    assert_null(admin);
    wasl_admin_destroy(&admin);
    wasl_metrics_reset();
}

static void test_bad_bind(void **state)
{
    (void)state;
    assert_null(wasl_admin_new("wasl-test", "not-an-ip", 0));
    wasl_admin_t *a = wasl_admin_new("wasl-test", "127.0.0.1", 0);
    assert_non_null(a);
    /* The same port twice cannot be bound. */
    assert_null(wasl_admin_new("wasl-test", "127.0.0.1", wasl_admin_port(a)));
    wasl_admin_destroy(&a);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_bad_bind),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
