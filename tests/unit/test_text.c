/* test_text — the UTF-8 decoder and sanitizer, validation, digit folding and number parsing. */
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

/* Decodes all of s into cps (the code points, U+FFFD for each ill-formed subpart) and lens
 * (the bytes each took); returns how many. */
static size_t decode_all(const char *s, size_t len, uint32_t *cps, size_t *lens, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < len && k < cap; k++) {
        lens[k] = wasl_utf8_decode(s + i, len - i, &cps[k], NULL);
        assert_true(lens[k] >= 1 && lens[k] <= 4 && lens[k] <= len - i);
        i += lens[k];
    }
    return k;
}

static void test_utf8_decode(void **state)
{
    (void)state;
    const uint32_t F = 0xFFFD;
    struct {
        const char *in;
        size_t n; /* code points out */
        uint32_t cps[6];
        size_t lens[6];
    } cases[] = {
        {"A", 1, {'A'}, {1}},
        {"\xD8\xB4", 1, {0x0634}, {2}},          /* Arabic sheen */
        {"\xE2\x82\xAC", 1, {0x20AC}, {3}},      /* euro */
        {"\xF0\x9F\x98\x80", 1, {0x1F600}, {4}}, /* emoji */
        {"\xF4\x8F\xBF\xBF", 1, {0x10FFFF}, {4}},
        {"\xEF\xBF\xBD", 1, {0xFFFD}, {3}}, /* a real U+FFFD */
        /* overlong: C0/C1 never start a sequence, one U+FFFD per byte */
        {"\xC0\xAF", 2, {F, F}, {1, 1}},
        {"\xE0\x80\xAF", 3, {F, F, F}, {1, 1, 1}},
        {"\xF0\x80\x80\xAF", 4, {F, F, F, F}, {1, 1, 1, 1}},
        /* surrogates U+D800 and U+DFFF */
        {"\xED\xA0\x80", 3, {F, F, F}, {1, 1, 1}},
        {"\xED\xBF\xBF", 3, {F, F, F}, {1, 1, 1}},
        /* above U+10FFFF */
        {"\xF4\x90\x80\x80", 4, {F, F, F, F}, {1, 1, 1, 1}},
        {"\xF5\x80", 2, {F, F}, {1, 1}},
        /* truncated: the maximal subpart is one U+FFFD, the next character survives */
        {"\xE2\x82", 1, {F}, {2}},
        {"\xE2\x82"
         "A",
         2,
         {F, 'A'},
         {2, 1}},
        {"\xF0\x9F\x98"
         "A",
         2,
         {F, 'A'},
         {3, 1}},
        {"\xD9", 1, {F}, {1}},
        /* lone continuation bytes, and 0xFF */
        {"\x80", 1, {F}, {1}},
        {"\xBF\x80", 2, {F, F}, {1, 1}},
        {"\xFF", 1, {F}, {1}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t cps[8];
        size_t lens[8];
        size_t n = decode_all(cases[i].in, strlen(cases[i].in), cps, lens, 8);
        assert_int_equal(n, cases[i].n);
        for (size_t k = 0; k < n; k++) {
            assert_int_equal(cps[k], cases[i].cps[k]);
            assert_int_equal(lens[k], cases[i].lens[k]);
        }
    }
    uint32_t cp = 1;
    bool bad = true;
    assert_int_equal(wasl_utf8_decode("\0", 1, &cp, &bad), 1); /* NUL is a character */
    assert_int_equal(cp, 0);
    assert_false(bad);
    assert_int_equal(wasl_utf8_decode("\xEF\xBF\xBD", 3, &cp, &bad), 3);
    assert_false(bad); /* the text's own U+FFFD is not a replacement */
    assert_int_equal(wasl_utf8_decode("\xF0\x9F\x98", 3, &cp, &bad), 3);
    assert_true(bad);
    assert_int_equal(cp, 0xFFFD);
    /* left bounds the read: a valid sequence cut by `left` is truncated */
    assert_int_equal(wasl_utf8_decode("\xD8\xB4", 1, &cp, &bad), 1);
    assert_true(bad);
}

static void test_utf8_sanitize(void **state)
{
    (void)state;
    struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"مرحبا", "مرحبا"},
        {"a\x80z", "a\xEF\xBF\xBDz"},
        {"\xE2\x82z", "\xEF\xBF\xBDz"},
        {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xED\xA0\x80!", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD!"},
        {"abc\xD9", "abc\xEF\xBF\xBD"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = 0;
        char *out = wasl_utf8_sanitize(cases[i].in, strlen(cases[i].in), &n);
        assert_non_null(out);
        assert_string_equal(out, cases[i].out);
        assert_int_equal(n, strlen(cases[i].out));
        assert_true(wasl_utf8_valid(out, n, false));
        free(out);
    }
    const char nul[] = {'a', '\0', '\xFF'};
    size_t n = 0;
    char *out = wasl_utf8_sanitize(nul, 3, &n);
    assert_non_null(out);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "a\0\xEF\xBF\xBD", 5);
    free(out);
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
        cmocka_unit_test(test_utf8_valid),    cmocka_unit_test(test_utf8_decode),
        cmocka_unit_test(test_utf8_sanitize), cmocka_unit_test(test_fold_digits),
        cmocka_unit_test(test_parse_number),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
