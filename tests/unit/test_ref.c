/* test_ref — Verhoeff check digits, ticket reference formatting, parsing and finding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_ref.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLE_REFS 200

/* xorshift32: a fixed seed makes every run test the same references. */
static uint32_t prng_next(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

static void sample_ref(uint32_t *state, char out[WASL_REF_LEN + 1])
{
    int year = (int)(prng_next(state) % (WASL_REF_YEAR_MAX + 1));
    uint32_t seq = prng_next(state) % (WASL_REF_SEQ_MAX + 1);
    assert_int_equal(wasl_ref_format(year, seq, out), 0);
}

static bool valid_str(const char *s)
{
    return wasl_verhoeff_valid(s, strlen(s));
}

static void test_verhoeff_published(void **state)
{
    (void)state;
    /* Examples from Verhoeff's paper as reproduced on Wikipedia and Rosetta Code. */
    assert_int_equal(wasl_verhoeff_check_digit("236", 3), 3);
    assert_int_equal(wasl_verhoeff_check_digit("12345", 5), 1);
    assert_int_equal(wasl_verhoeff_check_digit("142857", 6), 0);
    assert_int_equal(wasl_verhoeff_check_digit("75872", 5), 2);
    assert_int_equal(wasl_verhoeff_check_digit("123456789012", 12), 0); /* spans all 8 rows */
    assert_true(valid_str("2363"));
    assert_true(valid_str("123451"));
    assert_true(valid_str("1428570"));
    assert_true(valid_str("758722"));
    assert_true(valid_str("1234567890120"));
    assert_false(valid_str("2364"));
    assert_false(valid_str("123415"));

    assert_int_equal(wasl_verhoeff_check_digit("", 0), -1);
    assert_int_equal(wasl_verhoeff_check_digit("12a", 3), -1);
    assert_int_equal(wasl_verhoeff_check_digit("١٢", 4), -1);  /* ASCII only at this level */
    assert_int_equal(wasl_verhoeff_check_digit("2369", 3), 3); /* only len bytes are read */
    assert_false(wasl_verhoeff_valid("", 0));
    assert_false(wasl_verhoeff_valid("0", 1));
    assert_true(wasl_verhoeff_valid("04", 2));
    assert_false(wasl_verhoeff_valid("00", 2));
    assert_false(wasl_verhoeff_valid("23 3", 4));
}

static void test_single_digit_errors_detected(void **state)
{
    (void)state;
    uint32_t seed = 0x5A1D2026u;
    for (int r = 0; r < SAMPLE_REFS; r++) {
        char ref[WASL_REF_LEN + 1];
        sample_ref(&seed, ref);
        assert_true(wasl_verhoeff_valid(ref, WASL_REF_LEN));
        for (size_t pos = 0; pos < WASL_REF_LEN; pos++) {
            for (char d = '0'; d <= '9'; d++) {
                if (d == ref[pos]) {
                    continue;
                }
                char typo[WASL_REF_LEN + 1];
                memcpy(typo, ref, sizeof typo);
                typo[pos] = d;
                if (wasl_verhoeff_valid(typo, WASL_REF_LEN)) {
                    fail_msg("substitution %s -> %s not detected", ref, typo);
                }
                char out[WASL_REF_LEN + 1];
                assert_int_equal(wasl_ref_parse(typo, out), WASL_REF_BAD_CHECK);
            }
        }
    }
}

static void test_adjacent_transpositions_detected(void **state)
{
    (void)state;
    uint32_t seed = 0xC0FFEE11u;
    size_t tried = 0;
    for (int r = 0; r < SAMPLE_REFS; r++) {
        char ref[WASL_REF_LEN + 1];
        sample_ref(&seed, ref);
        for (size_t pos = 0; pos + 1 < WASL_REF_LEN; pos++) {
            if (ref[pos] == ref[pos + 1]) {
                continue;
            }
            char swapped[WASL_REF_LEN + 1];
            memcpy(swapped, ref, sizeof swapped);
            swapped[pos] = ref[pos + 1];
            swapped[pos + 1] = ref[pos];
            if (wasl_verhoeff_valid(swapped, WASL_REF_LEN)) {
                fail_msg("transposition %s -> %s not detected", ref, swapped);
            }
            tried++;
        }
    }
    assert_true(tried > SAMPLE_REFS); /* the sample was not degenerate */

    /* And exhaustively: every pair of unequal digits at every body position of one
     * reference, then every (last body digit, check digit) pair. */
    for (size_t pos = 0; pos + 1 < WASL_REF_LEN - 1; pos++) {
        for (char a = '0'; a <= '9'; a++) {
            for (char b = '0'; b <= '9'; b++) {
                if (a == b) {
                    continue;
                }
                char ref[WASL_REF_LEN + 1] = "2612345670";
                ref[pos] = a;
                ref[pos + 1] = b;
                ref[WASL_REF_LEN - 1] =
                    (char)('0' + wasl_verhoeff_check_digit(ref, WASL_REF_LEN - 1));
                ref[pos] = b;
                ref[pos + 1] = a;
                assert_false(wasl_verhoeff_valid(ref, WASL_REF_LEN));
            }
        }
    }
    for (char a = '0'; a <= '9'; a++) {
        char ref[WASL_REF_LEN + 1] = "2612345670";
        ref[WASL_REF_LEN - 2] = a;
        char check = (char)('0' + wasl_verhoeff_check_digit(ref, WASL_REF_LEN - 1));
        if (check == a) {
            continue;
        }
        ref[WASL_REF_LEN - 2] = check;
        ref[WASL_REF_LEN - 1] = a;
        assert_false(wasl_verhoeff_valid(ref, WASL_REF_LEN));
    }
}

static void test_format(void **state)
{
    (void)state;
    char out[WASL_REF_LEN + 1];
    assert_int_equal(wasl_ref_format(26, 1, out), 0);
    assert_string_equal(out, "2600000018");
    assert_int_equal(wasl_ref_format(0, 0, out), 0);
    assert_string_equal(out, "0000000000");
    assert_int_equal(wasl_ref_format(99, WASL_REF_SEQ_MAX, out), 0);
    assert_int_equal(strncmp(out, "999999999", 9), 0);
    assert_true(wasl_verhoeff_valid(out, WASL_REF_LEN));

    strcpy(out, "junk");
    assert_int_equal(wasl_ref_format(100, 1, out), -1);
    assert_string_equal(out, "");
    assert_int_equal(wasl_ref_format(-1, 1, out), -1);
    assert_int_equal(wasl_ref_format(26, WASL_REF_SEQ_MAX + 1, out), -1);
    assert_int_equal(wasl_ref_format(26, UINT32_MAX, out), -1);
}

static void test_format_parse_round_trip(void **state)
{
    (void)state;
    uint32_t seed = 42;
    for (int r = 0; r < SAMPLE_REFS; r++) {
        char ref[WASL_REF_LEN + 1], back[WASL_REF_LEN + 1];
        sample_ref(&seed, ref);
        assert_int_equal(wasl_ref_parse(ref, back), WASL_REF_OK);
        assert_string_equal(back, ref);

        /* The way a clerk reads it out: "26-0000001-8". */
        char dashed[32];
        snprintf(dashed, sizeof dashed, "%.2s-%.7s-%c", ref, ref + 2, ref[9]);
        assert_int_equal(wasl_ref_parse(dashed, back), WASL_REF_OK);
        assert_string_equal(back, ref);
    }
}

static void test_parse(void **state)
{
    (void)state;
    /* Invisible characters are written \uXXXX (always four hex digits), bad bytes in octal. */
    struct {
        const char *in;
        wasl_ref_status_t status;
    } cases[] = {
        {"2600000018", WASL_REF_OK},
        {"٢٦٠٠٠٠٠٠١٨", WASL_REF_OK}, /* Arabic-Indic */
        {"۲۶۰۰۰۰۰۰۱۸", WASL_REF_OK}, /* Persian */
        {"٢٦-٠٠٠٠٠٠١-٨", WASL_REF_OK},
        {"\u200F٢٦٠٠٠٠٠٠١٨\u200F", WASL_REF_OK}, /* RLM around it */
        {"\u061C26 0000001 8", WASL_REF_OK},     /* Arabic letter mark */
        {"\u20662600000018\u2069", WASL_REF_OK}, /* LRI .. PDI */
        {"26-0000001-8", WASL_REF_OK},
        {"26\u20130000001\u20148", WASL_REF_OK}, /* en and em dash */
        {"26\u22120000001\u20108", WASL_REF_OK}, /* minus, hyphen */
        {"  26 000 0001 8  ", WASL_REF_OK},
        {"26\u00A00000001\u202F8", WASL_REF_OK}, /* NBSP, narrow NBSP */
        {"2600000018\n", WASL_REF_OK},
        {"#2600000018", WASL_REF_OK},
        {" # 26-0000001-8", WASL_REF_OK},
        {"#٢٦٠٠٠٠٠٠١٨", WASL_REF_OK},
        {"2٦000000۱8", WASL_REF_OK}, /* mixed scripts */
        {"26-0000001-7", WASL_REF_BAD_CHECK},
        {"٢٦٠٠٠٠٠٠١٧", WASL_REF_BAD_CHECK},
        {"2600000081", WASL_REF_BAD_CHECK}, /* last two swapped */
        {"260000001", WASL_REF_BAD_LENGTH},
        {"26000000180", WASL_REF_BAD_LENGTH},
        {"٢٦٠٠٠٠٠٠١", WASL_REF_BAD_LENGTH},
        {"1", WASL_REF_BAD_LENGTH},
        {"26000000182600000018", WASL_REF_BAD_LENGTH},
        {"26000A0018", WASL_REF_BAD_CHAR},
        {"ref 2600000018", WASL_REF_BAD_CHAR},
        {"2600000018#", WASL_REF_BAD_CHAR},
        {"##2600000018", WASL_REF_BAD_CHAR},
        {"26/0000001/7", WASL_REF_BAD_CHAR},
        {"26.0000001.7", WASL_REF_BAD_CHAR},
        {"+2600000018", WASL_REF_BAD_CHAR},
        {"٢٦٠٠٠٠٠٠١٨ رقم", WASL_REF_BAD_CHAR},
        {"①2600000018", WASL_REF_BAD_CHAR}, /* not a decimal digit */
        {"26000\37700018", WASL_REF_BAD_CHAR},
        {"2600000\331", WASL_REF_BAD_CHAR},       /* truncated UTF-8 */
        {"\300\262600000018", WASL_REF_BAD_CHAR}, /* overlong '2' */
        {"abc", WASL_REF_BAD_CHAR},
        {"", WASL_REF_EMPTY},
        {"   ", WASL_REF_EMPTY},
        {" - \u200F", WASL_REF_EMPTY},
        {"#", WASL_REF_EMPTY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[WASL_REF_LEN + 1];
        memset(out, 'x', sizeof out);
        wasl_ref_status_t got = wasl_ref_parse(cases[i].in, out);
        if (got != cases[i].status) {
            fail_msg("case %zu \"%s\": status %d, expected %d", i, cases[i].in, (int)got,
                     (int)cases[i].status);
        }
        if (got == WASL_REF_OK) {
            assert_string_equal(out, "2600000018");
        } else {
            assert_string_equal(out, "");
        }
    }
    char out[WASL_REF_LEN + 1];
    assert_int_equal(wasl_ref_parse(NULL, out), WASL_REF_EMPTY);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(wasl_ref_strerror(WASL_REF_BAD_CHECK),
                        "the check digit is wrong: the reference was mistyped");
    const wasl_ref_status_t all[] = {WASL_REF_OK, WASL_REF_EMPTY, WASL_REF_BAD_CHAR,
                                     WASL_REF_BAD_LENGTH, WASL_REF_BAD_CHECK};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *msg = wasl_ref_strerror(all[i]);
        assert_non_null(msg);
        assert_true(strlen(msg) > 10);
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(msg, wasl_ref_strerror(all[j]));
        }
    }
    assert_non_null(wasl_ref_strerror((wasl_ref_status_t)99));
}

#define FOUND_MAX 8
typedef struct {
    size_t count;
    char refs[FOUND_MAX][WASL_REF_LEN + 1];
} found_t;

static void collect(const char *ref, void *arg)
{
    found_t *found = arg;
    assert_int_equal(strlen(ref), WASL_REF_LEN);
    if (found->count < FOUND_MAX) {
        strcpy(found->refs[found->count], ref);
    }
    found->count++;
}

static void test_find(void **state)
{
    (void)state;
    found_t found = {0};
    /* One valid reference in Arabic-Indic digits, one with a wrong check digit, and one
     * valid reference followed by an 11th digit (part of a longer run: not a reference). */
    const char *email = "السلام عليكم، بخصوص الطلب رقم ٢٦٠٠٠٠٠٠١٨ والطلب ٢٦٠٠٠٠٠٠١٧ "
                        "وكذلك 26000000183 شكرا";
    assert_int_equal(wasl_ref_find(email, collect, &found), 1);
    assert_int_equal(found.count, 1);
    assert_string_equal(found.refs[0], "2600000018");

    /* Several, in order; at the edges of the text; next to letters and punctuation. */
    char a[WASL_REF_LEN + 1], b[WASL_REF_LEN + 1], text[256];
    assert_int_equal(wasl_ref_format(25, 1234567, a), 0);
    assert_int_equal(wasl_ref_format(26, 42, b), 0);
    snprintf(text, sizeof text, "%s,ref#%s.", a, b);
    memset(&found, 0, sizeof found);
    assert_int_equal(wasl_ref_find(text, collect, &found), 2);
    assert_string_equal(found.refs[0], a);
    assert_string_equal(found.refs[1], b);

    /* A longer run on either side, and a run split by a dash, are not references. */
    snprintf(text, sizeof text, "9%s %s0 %.5s-%s", a, a, a, a + 5);
    assert_int_equal(wasl_ref_find(text, NULL, NULL), 0);
    /* Mixed scripts inside a run still make one run. */
    assert_int_equal(wasl_ref_find("x2٦000000۱8y", NULL, NULL), 1);
    assert_int_equal(wasl_ref_find("2٦000000۱8١", NULL, NULL), 0);

    /* Invalid UTF-8 does not hide the references around it and separates runs. */
    snprintf(text, sizeof text, "\377%s\300%s\331", a, b);
    memset(&found, 0, sizeof found);
    assert_int_equal(wasl_ref_find(text, collect, &found), 2);
    assert_string_equal(found.refs[1], b);

    assert_int_equal(wasl_ref_find("", collect, &found), 0);
    assert_int_equal(wasl_ref_find(NULL, collect, &found), 0);
    assert_int_equal(wasl_ref_find("no digits here", NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verhoeff_published),
        cmocka_unit_test(test_single_digit_errors_detected),
        cmocka_unit_test(test_adjacent_transpositions_detected),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_parse_round_trip),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_find),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
