/* test_phone — normalization of typed and gateway phone numbers to E.164. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_log.h"
#include "wasl_phone.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *in;
    const char *cc;   /* default country code */
    const char *want; /* NULL: invalid */
} phone_case_t;

/* Invisible characters are written \uXXXX (always four hex digits), bad bytes in octal. */
static const phone_case_t cases[] = {
    /* Saudi mobiles in every form people and gateways use. */
    {"0551234567", "966", "+966551234567"},
    {"551234567", "966", "+966551234567"},
    {"966551234567", "966", "+966551234567"},
    {"+966551234567", "966", "+966551234567"},
    {"+966 55 123 4567", "966", "+966551234567"},
    {"+966-55-123-4567", "966", "+966551234567"},
    {"00966551234567", "966", "+966551234567"},
    {"00 966 55 123 4567", "966", "+966551234567"},
    {"٠٥٥١٢٣٤٥٦٧", "966", "+966551234567"}, /* Arabic-Indic */
    {"۰۵۵۱۲۳۴۵۶۷", "966", "+966551234567"}, /* Persian */
    {"+٩٦٦ ٥٥ ١٢٣ ٤٥٦٧", "966", "+966551234567"},
    {"\u200F+966 55 123 4567\u200E", "966", "+966551234567"}, /* RLM .. LRM */
    {"\u2066055 123 4567\u2069", "966", "+966551234567"},     /* LRI .. PDI */
    {"(055) 123-4567", "966", "+966551234567"},
    {"055.123.4567", "966", "+966551234567"},
    {"055\u2013123\u00A04567", "966", "+966551234567"}, /* en dash, NBSP */
    {" 0551234567\r\n", "966", "+966551234567"},
    {"+966 (0)55 123 4567", "966", "+966551234567"}, /* trunk 0 after the code */
    {"(+966) 501234567", "966", "+966501234567"},
    {"0591234567", "966", "+966591234567"},
    {"+966551234567", NULL, "+966551234567"},
    /* Saudi landlines: 01A with A in {1,2,3,4,6,7}. */
    {"0112345678", "966", "+966112345678"},       /* Riyadh */
    {"012 612 3456", "966", "+966126123456"},     /* Jeddah */
    {"+966 13 812 3456", "966", "+966138123456"}, /* Dammam */
    {"0172345678", "966", "+966172345678"},
    /* Abroad. */
    {"+44 20 7946 0958", "966", "+442079460958"},
    {"0044 20 7946 0958", "966", "+442079460958"},
    {"+1 (202) 555-0143", "966", "+12025550143"},
    {"+971 50 123 4567", "966", "+971501234567"},
    {"020 7946 0958", "44", "+442079460958"},
    {"442079460958", "44", "+442079460958"},
    {"+123456789012345", "966", "+123456789012345"}, /* 15 digits: the E.164 maximum */
    {"+12345678", "966", "+12345678"},               /* 8 digits: our minimum */

    /* Invalid. */
    {"", "966", NULL},
    {"   ", "966", NULL},
    {"+", "966", NULL},
    {"+0551234567", "966", NULL},     /* country code cannot start with 0 */
    {"000966551234567", "966", NULL}, /* "00" then a 0 country code */
    {"05512345678", "966", NULL},     /* 11 digits: national number of 10 */
    {"055123456", "966", NULL},       /* 9 digits: national number of 8 */
    {"5512345678", "966", NULL},      /* bare, 10 digits */
    {"55123456", "966", NULL},        /* bare, 8 digits */
    {"9665512345678", "966", NULL},   /* 966 + 10 digits */
    {"+966 5512 34567 8", "966", NULL},
    {"+96651234567", "966", NULL}, /* +966 with 8 digits */
    {"112345678", "966", NULL},    /* bare 9-digit landline: the '0' is required */
    {"0152345678", "966", NULL},   /* area code 015 is not assigned */
    {"0212345678", "966", NULL},   /* national numbers start with 1 or 5 */
    {"0912345678", "966", NULL},
    {"8001234567", "966", NULL}, /* toll-free: not reachable in E.164 */
    {"+966 800 123 4567", "966", NULL},
    {"920012345", "966", NULL},         /* unified number */
    {"+1234567", "966", NULL},          /* 7 digits */
    {"+1234567890123456", "966", NULL}, /* 16 digits */
    {"+12345678901234567890123", "966", NULL},
    {"05512345ab", "966", NULL},
    {"0551234567 ext 12", "966", NULL},
    {"phone", "966", NULL},
    {"++966551234567", "966", NULL},
    {"0551+234567", "966", NULL},
    {"055/123/4567", "966", NULL},
    {"055\3771234567", "966", NULL}, /* invalid UTF-8 */
    {"٠\331", "966", NULL},          /* truncated Arabic-Indic digit */
    {"①551234567", "966", NULL},     /* not a decimal digit */
    {"0551234567", NULL, NULL},      /* national form needs a default code */
    {"551234567", NULL, NULL},
    {"551234567", "44", NULL}, /* the bare mobile form is Saudi only */
};

static void test_e164_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[WASL_PHONE_MAX];
        memset(out, 'x', sizeof out);
        int rc = wasl_phone_e164(cases[i].in, cases[i].cc, out);
        if (cases[i].want) {
            if (rc != 0 || strcmp(out, cases[i].want) != 0) {
                fail_msg("case %zu \"%s\": rc %d out \"%.*s\", expected \"%s\"", i, cases[i].in, rc,
                         (int)sizeof out, out, cases[i].want);
            }
            /* Normalizing a normalized number changes nothing. */
            char again[WASL_PHONE_MAX];
            assert_int_equal(wasl_phone_e164(out, cases[i].cc, again), 0);
            assert_string_equal(again, out);
        } else if (rc != -1 || out[0] != '\0') {
            fail_msg("case %zu \"%s\": rc %d out \"%.*s\", expected invalid", i, cases[i].in, rc,
                     (int)sizeof out, out);
        }
    }
    char out[WASL_PHONE_MAX] = "junk";
    assert_int_equal(wasl_phone_e164(NULL, "966", out), -1);
    assert_string_equal(out, "");
}

static void test_bad_default_cc_is_logged(void **state)
{
    (void)state;
    char *log = NULL;
    size_t log_len = 0;
    FILE *stream = open_memstream(&log, &log_len);
    assert_non_null(stream);
    wasl_log_set_stream(stream);

    const char *bad[] = {"", "0", "9661", "+966", "96a"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[WASL_PHONE_MAX];
        assert_int_equal(wasl_phone_e164("+966551234567", bad[i], out), -1);
        assert_string_equal(out, "");
    }

    wasl_log_set_stream(NULL);
    fclose(stream);
    assert_non_null(strstr(log, "default country code"));
    free(log);
}

static void test_is_sa_mobile(void **state)
{
    (void)state;
    assert_true(wasl_phone_is_sa_mobile("+966551234567"));
    assert_true(wasl_phone_is_sa_mobile("+966501234567"));
    assert_false(wasl_phone_is_sa_mobile("+966112345678")); /* landline */
    assert_false(wasl_phone_is_sa_mobile("+442079460958"));
    assert_false(wasl_phone_is_sa_mobile("+96655123456"));   /* short */
    assert_false(wasl_phone_is_sa_mobile("+9665512345678")); /* long */
    assert_false(wasl_phone_is_sa_mobile("966551234567"));   /* not normalized */
    assert_false(wasl_phone_is_sa_mobile("0551234567"));
    assert_false(wasl_phone_is_sa_mobile("+96655123456a"));
    assert_false(wasl_phone_is_sa_mobile(""));
    assert_false(wasl_phone_is_sa_mobile(NULL));

    char out[WASL_PHONE_MAX];
    assert_int_equal(wasl_phone_e164("٠٥٥١٢٣٤٥٦٧", "966", out), 0);
    assert_true(wasl_phone_is_sa_mobile(out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_e164_table),
        cmocka_unit_test(test_bad_default_cc_is_logged),
        cmocka_unit_test(test_is_sa_mobile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
