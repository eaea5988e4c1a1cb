/* test_log — JSON log lines, level filtering and masking of personal identifiers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_log.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Captures the log lines written while `body` runs into a string. */
static char *capture_buf;
static size_t capture_len;
static FILE *capture;

static void capture_start(void)
{
    capture = open_memstream(&capture_buf, &capture_len);
    wasl_log_set_stream(capture);
}

static char *capture_end(void)
{
    wasl_log_set_stream(NULL);
    fclose(capture);
    return capture_buf;
}

static void test_line_is_json_with_fields(void **state)
{
    (void)state;
    wasl_log_init("wasl-test", WASL_LOG_INFO);
    capture_start();
    wasl_info("ticket received", "{s:s, s:i, s:b}", "ref", "2600000018", "bytes", 42, "dup", 0);
    char *out = capture_end();
    assert_int_equal(out[strlen(out) - 1], '\n');
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1); /* exactly one line */
    json_error_t err;
    json_t *line = json_loads(out, 0, &err);
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(line, "service")), "wasl-test");
    assert_string_equal(json_string_value(json_object_get(line, "msg")), "ticket received");
    assert_string_equal(json_string_value(json_object_get(line, "ref")), "2600000018");
    assert_int_equal(json_integer_value(json_object_get(line, "bytes")), 42);
    const char *ts = json_string_value(json_object_get(line, "ts"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24); /* 2026-11-28T09:41:02.123Z */
    assert_int_equal(ts[23], 'Z');
    json_decref(line);
    free(out);
}

static void test_level_filter(void **state)
{
    (void)state;
    wasl_log_init("wasl-test", WASL_LOG_WARN);
    capture_start();
    wasl_info("hidden", NULL);
    wasl_debug("hidden too", NULL);
    wasl_warn("shown", NULL);
    char *out = capture_end();
    assert_null(strstr(out, "hidden"));
    assert_non_null(strstr(out, "\"shown\""));
    free(out);
    wasl_log_init("wasl-test", WASL_LOG_INFO);
}

static void test_sensitive_fields_are_masked(void **state)
{
    (void)state;
    capture_start();
    wasl_info("contact", "{s:s, s:s, s:s, s:s, s:s}", "phone", "+966512345678", "national_id",
              "1012345678", "email", "ahmed@example.sa", "from", "٠٥٥١٢٣٤٥٦٧", "subject",
              "plain 1012345678");
    char *out = capture_end();
    assert_null(strstr(out, "512345678"));
    assert_null(strstr(out, "ahmed@"));
    assert_null(strstr(out, "\"1012345678\""));
    json_t *line = json_loads(out, 0, NULL);
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "phone")), "+**********78");
    assert_string_equal(json_string_value(json_object_get(line, "national_id")), "********78");
    assert_string_equal(json_string_value(json_object_get(line, "email")), "a***@example.sa");
    assert_string_equal(json_string_value(json_object_get(line, "from")), "********٦٧");
    /* A field that is not declared sensitive is left alone (free text is masked explicitly). */
    assert_string_equal(json_string_value(json_object_get(line, "subject")), "plain 1012345678");
    json_decref(line);
    free(out);
}

/* Issue 13, finding 14: a national ID logged under a phone's key ("caller") showed 6 of its 10
 * digits. Every identifier now gets one mask, whatever its key: no more than the last two
 * digits. A PostgreSQL error quoting a row is free text: its long digit runs are masked too. */
static void test_every_key_gets_the_same_mask(void **state)
{
    (void)state;
    capture_start();
    wasl_info("caselookup: caller locked out", "{s:s, s:s, s:s, s:s, s:s, s:s}", "caller",
              "1012345672", "verifier", "٢٠١٢٣٤٥٦٧٨", "to", "+966 55 123 4567", "digits",
              "1098765432", "error",
              "new row violates check constraint DETAIL: Failing row contains (0551234567, x)",
              "ref", "2600000018");
    char *out = capture_end();
    json_t *line = json_loads(out, 0, NULL);
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "caller")), "********72");
    assert_string_equal(json_string_value(json_object_get(line, "verifier")), "********٧٨");
    assert_string_equal(json_string_value(json_object_get(line, "to")), "+*** ** *** **67");
    assert_string_equal(json_string_value(json_object_get(line, "digits")), "********32");
    assert_string_equal(json_string_value(json_object_get(line, "error")),
                        "new row violates check constraint DETAIL: Failing row contains "
                        "(********67, x)");
    /* Not personal data: kept for the operator. */
    assert_string_equal(json_string_value(json_object_get(line, "ref")), "2600000018");
    json_decref(line);
    free(out);
}

static void test_bad_pack_format_is_reported_not_fatal(void **state)
{
    (void)state;
    capture_start();
    wasl_info("oops", "{s:s", "k", "v");
    char *out = capture_end();
    assert_non_null(strstr(out, "log_error"));
    free(out);
}

static void test_mask_helpers(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(wasl_mask_pii("0512345678", buf, sizeof buf), "********78");
    assert_string_equal(wasl_mask_pii("+966 51 234 5678", buf, sizeof buf), "+*** ** *** **78");
    assert_string_equal(wasl_mask_pii("123456", buf, sizeof buf), "******");
    assert_string_equal(wasl_mask_pii(NULL, buf, sizeof buf), "");
    assert_string_equal(wasl_mask_pii("E2123456789", buf, sizeof buf), "*********89");
    assert_string_equal(wasl_mask_pii("abc", buf, sizeof buf), "***");
    assert_string_equal(wasl_mask_pii("هوية ١٠١٢٣٤٥٦٧٢", buf, sizeof buf), "**** ********٧٢");
    /* The named forms are the same mask. */
    assert_string_equal(wasl_mask_phone("0512345678", buf, sizeof buf), "********78");
    assert_string_equal(wasl_mask_id("2123456789", buf, sizeof buf), "********89");
    assert_string_equal(wasl_mask_email("x@y.sa", buf, sizeof buf), "x***@y.sa");
    /* Truncation keeps a terminated string and never cuts a kept multi-byte digit. */
    char small[5];
    assert_string_equal(wasl_mask_pii("+966512345678", small, sizeof small), "+***");
    char tiny[12];
    assert_string_equal(wasl_mask_pii("٠٥٥١٢٣٤٥٦٧", tiny, sizeof tiny), "********٦");
    char *t = wasl_mask_text("رقمي ٠٥٥١٢٣٤٥٦٧ وهويتي 1012345678 والقضية 12");
    assert_non_null(t);
    assert_string_equal(t, "رقمي ********٦٧ وهويتي ********78 والقضية 12");
    free(t);
    t = wasl_mask_text("call +966512345678 now");
    assert_string_equal(t, "call +**********78 now");
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_is_json_with_fields),
        cmocka_unit_test(test_level_filter),
        cmocka_unit_test(test_sensitive_fields_are_masked),
        cmocka_unit_test(test_every_key_gets_the_same_mask),
        cmocka_unit_test(test_bad_pack_format_is_reported_not_fatal),
        cmocka_unit_test(test_mask_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
