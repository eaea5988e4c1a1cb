/* test_cases — common/wasl_cases, the case-lookup client intake and the desk share: no bus is
 * no ask (at once); a bus nobody serves is NULL within the timeouts, never a hang, and the
 * pooled client is freed with the pool; the found answer's JSON, with and without a hearing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_cases.h"
#include "wasl_log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const wasl_cases_ask_t ASK = {.id_prefix = "test",
                                     .case_number = "4512345670",
                                     .verifier_kind = "national_id",
                                     .verifier = "1000000008",
                                     .channel = "desk",
                                     .client = "hala",
                                     .ticket = "2600000018"};

static long elapsed_ms(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (long)((b.tv_sec - a->tv_sec) * 1000 + (b.tv_nsec - a->tv_nsec) / 1000000);
}

static void test_no_bus_asks_nothing(void **state)
{
    (void)state;
    wasl_cases_config_t cfg = {.bus = "", .timeout_ms = 1000, .retries = 2};
    wasl_cases_t *c = wasl_cases_new(&cfg);
    assert_non_null(c);
    assert_false(wasl_cases_configured(c));
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_null(wasl_cases_ask(c, &ASK));
    assert_true(elapsed_ms(&t0) < 500);
    wasl_cases_destroy(&c);
    assert_null(c);
    wasl_cases_destroy(&c); /* safe twice */
    assert_false(wasl_cases_configured(NULL));
    assert_null(wasl_cases_ask(NULL, &ASK));
}

static void test_a_silent_bus_is_null_within_the_timeouts(void **state)
{
    (void)state;
    /* A base port nobody listens on: every try times out. */
    wasl_cases_config_t cfg = {.bus = "tcp://127.0.0.1:9",
                               .bus_stages = "classify,route,notify",
                               .curve_name = "desk",
                               .timeout_ms = 100,
                               .retries = 1};
    wasl_cases_t *c = wasl_cases_new(&cfg);
    assert_true(wasl_cases_configured(c));
    for (int i = 0; i < 2; i++) { /* the second ask takes the pooled client */
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        assert_null(wasl_cases_ask(c, &ASK));
        long ms = elapsed_ms(&t0);
        assert_true(ms >= 150);
        assert_true(ms < 3000);
    }
    /* A request without its required fields is never sent. */
    wasl_cases_ask_t bad = ASK;
    bad.verifier = NULL;
    assert_null(wasl_cases_ask(c, &bad));
    wasl_cases_destroy(&c);
}

static void test_found_json(void **state)
{
    (void)state;
    wasl_msg_t *m = wasl_msg_new(WASL_MSG_CASE_LOOKUP_REPLY);
    assert_non_null(m);
    wasl_msg_case_lookup_reply_t *r = &m->u.case_lookup_reply;
    r->request_id = strdup("x");
    r->outcome = strdup("found");
    r->case_number = strdup("4512345670");
    r->circuit = strdup("الدائرة الإدارية الثالثة");
    r->status = strdup("in_hearing");
    json_t *j = wasl_cases_found_json(r);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "case_number")), "4512345670");
    assert_string_equal(json_string_value(json_object_get(j, "circuit")),
                        "الدائرة الإدارية الثالثة");
    assert_true(json_is_null(json_object_get(j, "next_hearing")));
    assert_int_equal(json_array_size(json_object_get(j, "updates")), 0);
    json_decref(j);
    r->hearing_utc = strdup("2026-12-15T06:00:00Z");
    r->hijri_year = 1448;
    r->hijri_month = 7;
    r->hijri_day = 6;
    j = wasl_cases_found_json(r);
    json_t *h = json_object_get(j, "next_hearing");
    assert_string_equal(json_string_value(json_object_get(h, "utc")), "2026-12-15T06:00:00Z");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(h, "hijri"), "year")),
                     1448);
    json_decref(j);
    wasl_msg_destroy(&m);
}

/* A number as typed: any script's digits, spaces and dashes between groups; nothing else. */
static void test_digits(void **state)
{
    (void)state;
    char *s = wasl_cases_digits("١٢٣٤ ٥٦٧-890", 10);
    assert_non_null(s);
    assert_string_equal(s, "1234567890");
    free(s);
    assert_null(wasl_cases_digits("123456789", 10));   /* one short */
    assert_null(wasl_cases_digits("12345678901", 10)); /* one long */
    assert_null(wasl_cases_digits("12345x7890", 10));  /* a letter */
    assert_null(wasl_cases_digits("1234567890;", 10)); /* a trailing symbol */
    assert_null(wasl_cases_digits(NULL, 10));
}

static void test_shapes(void **state)
{
    (void)state;
    assert_true(wasl_cases_national_id_shaped("1012345678"));
    assert_true(wasl_cases_national_id_shaped("2012345678"));
    assert_false(wasl_cases_national_id_shaped("3012345678")); /* neither citizen nor resident */
    assert_false(wasl_cases_national_id_shaped("101234567"));
    assert_false(wasl_cases_national_id_shaped("١٠١٢٣٤٥٦٧٨")); /* stored IDs are ASCII */
    assert_false(wasl_cases_national_id_shaped(NULL));
    assert_true(wasl_cases_party_shaped("4512345670", "1012345678"));
    assert_false(wasl_cases_party_shaped("451234567", "1012345678"));
    assert_false(wasl_cases_party_shaped("45123456701", "1012345678"));
    assert_false(wasl_cases_party_shaped("4512345670", "3012345678"));
    assert_false(wasl_cases_party_shaped(NULL, "1012345678"));
    assert_false(wasl_cases_party_shaped("4512345670", NULL));
}

int main(void)
{
    wasl_log_init("test_cases", WASL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_bus_asks_nothing),
        cmocka_unit_test(test_a_silent_bus_is_null_within_the_timeouts),
        cmocka_unit_test(test_found_json),
        cmocka_unit_test(test_digits),
        cmocka_unit_test(test_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
