/* test_text — UTF-8 validation, digit folding and number parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_text.h"

#include <stdlib.h>
#include <string.h>

static bool valid(const char *s)
{
    return wasl_utf8_valid(s, strlen(s), false);
}

static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(valid(""));
    assert_true(valid("hello"));
    assert_true(valid("مرحبا بكم في ديوان المظالم"));
    assert_true(valid("\xF0\x9F\x98\x80"));  /* emoji, 4 bytes */
    assert_true(valid("\xEF\xBF\xBF"));      /* U+FFFF */
    assert_true(valid("\xF4\x8F\xBF\xBF"));  /* U+10FFFF */
    assert_false(valid("\xC0\xAF"));         /* overlong '/' */
    assert_false(valid("\xE0\x80\xAF"));     /* overlong, 3 bytes */
    assert_false(valid("\xF0\x80\x80\xAF")); /* overlong, 4 bytes */
    assert_false(valid("\xED\xA0\x80"));     /* surrogate U+D800 */
    assert_false(valid("\xF4\x90\x80\x80")); /* U+110000 */
    assert_false(valid("\xF5\x80\x80\x80"));
    assert_false(valid("\x80")); /* lone continuation */
    assert_false(valid("\xD9")); /* truncated Arabic letter */
    assert_false(valid("abc\xD9"));
    assert_false(valid("\xE2\x82")); /* truncated 3-byte */
    assert_false(valid("\xFF"));
    const char nul[] = {'a', '\0', 'b'};
    assert_false(wasl_utf8_valid(nul, 3, false));
    assert_true(wasl_utf8_valid(nul, 3, true));
}

static void test_fold_digits(void **state)
{
    (void)state;
    struct {
        const char *in, *out;
    } cases[] = {
        {"0123456789", "0123456789"},
        {"٠١٢٣٤٥٦٧٨٩", "0123456789"}, /* Arabic-Indic */
        {"۰۱۲۳۴۵۶۷۸۹", "0123456789"}, /* Persian / Extended */
        {"قضية رقم ٤٤٥١٢٣٤٥٦٧", "قضية رقم 4451234567"},
        {"جوالي ٠٥٥١٢٣٤٥٦٧ شكرا", "جوالي 0551234567 شكرا"},
        {"mixed ١2۳", "mixed 123"},
        {"\xE0\xA5\xA7", "1"}, /* Devanagari one: any Nd */
        {"①", "①"},            /* not Nd: kept */
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = wasl_fold_digits(cases[i].in, strlen(cases[i].in));
        assert_non_null(out);
        assert_string_equal(out, cases[i].out);
        free(out);
    }
    assert_null(wasl_fold_digits("\xC0\xAF", 2));
}

static void test_parse_number(void **state)
{
    (void)state;
    long long v = -1;
    assert_int_equal(wasl_parse_number("  ١٢٣ ", &v), 0);
    assert_int_equal(v, 123);
    assert_int_equal(wasl_parse_number("4451234567", &v), 0);
    assert_int_equal(v, 4451234567LL);
    assert_int_equal(wasl_parse_number("9223372036854775807", &v), 0);
    assert_int_equal(wasl_parse_number("9223372036854775808", &v), -1);
    assert_int_equal(wasl_parse_number("", &v), -1);
    assert_int_equal(wasl_parse_number("12a", &v), -1);
    assert_int_equal(wasl_parse_number("-5", &v), -1);
    assert_int_equal(wasl_parse_number("1 2", &v), -1);
    assert_int_equal(wasl_parse_number(NULL, &v), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_fold_digits),
        cmocka_unit_test(test_parse_number),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
