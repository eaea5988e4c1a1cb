/* test_normalize — each normalization step alone, then all of them together. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_normalize.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned steps;
    const char *in;
    const char *out;
} norm_case_t;

static void check(const norm_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *got = wasl_normalize_ex(cases[i].in, strlen(cases[i].in), cases[i].steps);
        assert_non_null(got);
        if (strcmp(got, cases[i].out) != 0) {
            print_error("case %zu: \"%s\" -> \"%s\", expected \"%s\"\n", i, cases[i].in, got,
                        cases[i].out);
        }
        assert_string_equal(got, cases[i].out);
        free(got);
    }
}

static void test_nfkc_casefold(void **state)
{
    (void)state;
    const norm_case_t cases[] = {
        {WASL_NORM_NFKC_CASEFOLD, "Mu'een PORTAL", "mu'een portal"},
        {WASL_NORM_NFKC_CASEFOLD, "ﻻ", "لا"},            /* presentation-form ligature */
        {WASL_NORM_NFKC_CASEFOLD, "ﺍﻟﻤﺤﻜﻤﺔ", "المحكمة"}, /* presentation forms */
        {WASL_NORM_NFKC_CASEFOLD, "Ｏｔｐ", "otp"},      /* full width */
        {WASL_NORM_NFKC_CASEFOLD, "Straße", "strasse"},
    };
    check(cases, sizeof cases / sizeof cases[0]);
}

static void test_digits(void **state)
{
    (void)state;
    const norm_case_t cases[] = {
        {WASL_NORM_DIGITS, "قضية ٤٥١٢٣٤٥٦٧٨", "قضية 4512345678"},
        {WASL_NORM_DIGITS, "۰۵۵۱۲۳۴۵۶۷", "0551234567"},
        {WASL_NORM_DIGITS, "12 ١٢ ۱۲", "12 12 12"},
    };
    check(cases, sizeof cases / sizeof cases[0]);
}

static void test_strip_marks(void **state)
{
    (void)state;
    const norm_case_t cases[] = {
        {WASL_NORM_STRIP_MARKS, "مُحَكَمَةٌ", "محكمة"},          /* tashkeel */
        {WASL_NORM_STRIP_MARKS, "الـــــدائرة", "الدائرة"}, /* tatweel */
        {WASL_NORM_STRIP_MARKS, "هٰذا", "هذا"},              /* superscript alef */
        {WASL_NORM_STRIP_MARKS, "شدّة", "شدة"},              /* shadda */
    };
    check(cases, sizeof cases / sizeof cases[0]);
}

static void test_letter_maps(void **state)
{
    (void)state;
    const norm_case_t cases[] = {
        {WASL_NORM_ALEF, "أريد إلغاء آخر ٱلطلب", "اريد الغاء اخر الطلب"},
        {WASL_NORM_YEH, "على مستوى", "علي مستوي"},
        {WASL_NORM_YEH, "کی", "كي"}, /* Farsi kaf and yeh */
        {WASL_NORM_TEH_MARBUTA, "المحكمة الإدارية", "المحكمه الإداريه"},
        {WASL_NORM_HAMZA_SEAT, "مسؤول رئيس", "مسءول رءيس"},
        /* Each map alone touches nothing else. */
        {WASL_NORM_ALEF, "ى ة ؤ", "ى ة ؤ"},
    };
    check(cases, sizeof cases / sizeof cases[0]);
}

static void test_separators(void **state)
{
    (void)state;
    const norm_case_t cases[] = {
        {WASL_NORM_SEPARATORS, "نعم، شكراً؛ متى؟", "نعم شكراً متى"},
        {WASL_NORM_SEPARATORS, "«معين» - portal!!", "معين portal"},
        {WASL_NORM_SEPARATORS, "  a\t\nb  ", "a b"},
        {WASL_NORM_SEPARATORS, "error_500 (login)", "error 500 login"},
        {WASL_NORM_SEPARATORS, "", ""},
    };
    check(cases, sizeof cases / sizeof cases[0]);
}

static void test_cap_repeats(void **state)
{
    (void)state;
    const norm_case_t cases[] = {
        {WASL_NORM_CAP_REPEATS, "شكراااااا جداً", "شكراا جداً"},
        {WASL_NORM_CAP_REPEATS, "pleeeease good", "pleease good"},
        {WASL_NORM_CAP_REPEATS, "1111 ١١١", "1111 ١١١"}, /* digits are not letters */
    };
    check(cases, sizeof cases / sizeof cases[0]);
}

static void test_all_steps(void **state)
{
    (void)state;
    const norm_case_t cases[] = {
        {WASL_NORM_ALL, "متى موعد الجلسة القادمة لقضيتي رقم ٤٥١٢٣٤٥٦٧٨؟",
         "متي موعد الجلسه القادمه لقضيتي رقم 4512345678"},
        {WASL_NORM_ALL, "السّلامُ عليكم، أُريد الإستفسار عن «مُعِين»!!!",
         "السلام عليكم اريد الاستفسار عن معين"},
        {WASL_NORM_ALL, "OTP ما يوصلنييييي", "otp ما يوصلنيي"},
        {WASL_NORM_ALL, "المسؤول لم يردّ", "المسءول لم يرد"},
    };
    check(cases, sizeof cases / sizeof cases[0]);
    /* The public entry point is every step. */
    char *a = wasl_normalize("أُريد", strlen("أُريد"));
    assert_string_equal(a, "اريد");
    free(a);
}

static void test_bad_input(void **state)
{
    (void)state;
    assert_null(wasl_normalize("\xC0\xAF", 2));
    assert_null(wasl_normalize(NULL, 0));
    /* 1 MiB of one letter: normalized (capped), not crashed. */
    size_t n = 1 << 20;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = '\0';
    char *out = wasl_normalize(big, n);
    assert_non_null(out);
    assert_string_equal(out, "aa");
    free(out);
    free(big);
}

/* Arabizi digits become letters inside Latin-letter words only; digit runs such as case
 * numbers, dates and amounts stay as written. */
static void test_arabizi(void **state)
{
    (void)state;
    const struct {
        const char *in, *out;
    } cases[] = {
        {"m3een ma yft7", "mعeen ma yftح"},
        {"el jalsa el 7een", "el jalsa el حeen"},
        {"5alas 2ana 6ale3 9ad", "خalas ءana طaleع قad"},
        {"qadiya 4512345678 b 2 days", "qadiya 4512345678 b 2 days"},
        {"قضية 4512345678 يوم 1448 5 3", "قضية 4512345678 يوم 1448 5 3"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = wasl_arabizi(cases[i].in);
        assert_non_null(out);
        assert_string_equal(out, cases[i].out);
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nfkc_casefold), cmocka_unit_test(test_digits),
        cmocka_unit_test(test_strip_marks),   cmocka_unit_test(test_letter_maps),
        cmocka_unit_test(test_separators),    cmocka_unit_test(test_cap_repeats),
        cmocka_unit_test(test_all_steps),     cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_arabizi),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
