/* test_intake_authres — Authentication-Results: only the topmost trusted field counts, and it
 * authenticates only what is aligned with From. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../services/intake/authres.h"

#define TRUSTED "mx.bog.example"
#define FROM    "citizen@mail.example.sa"

static intake_authres_t check(const char *const *values, size_t n, const char *trusted,
                              const char *from, char *how)
{
    return intake_authres_check(values, n, trusted, from, how, 64);
}

static intake_authres_t one(const char *value, char *how)
{
    const char *values[] = {value};
    return check(values, 1, TRUSTED, FROM, how);
}

static void test_dmarc_pass_from_trusted_mta(void **state)
{
    (void)state;
    char how[64];
    assert_int_equal(one("mx.bog.example; dmarc=pass header.from=mail.example.sa", how),
                     INTAKE_AUTHRES_PASS);
    assert_string_equal(how, "dmarc");
    /* case, comments, version, folding white space, a quoted authserv-id */
    assert_int_equal(one(" \"MX.Bog.Example\" 1 (our MTA) ;\n\tDMARC = Pass (p=reject)"
                         " header.from=Mail.Example.SA",
                         how),
                     INTAKE_AUTHRES_PASS);
    /* dmarc=pass without header.from: the MTA judged this message's From */
    assert_int_equal(one("mx.bog.example; spf=none; dmarc=pass", how), INTAKE_AUTHRES_PASS);
}

static void test_dmarc_other_results_fail(void **state)
{
    (void)state;
    char how[64];
    assert_int_equal(one("mx.bog.example; dmarc=fail header.from=mail.example.sa", how),
                     INTAKE_AUTHRES_FAIL);
    assert_string_equal(how, "dmarc=fail");
    assert_int_equal(one("mx.bog.example; dmarc=none header.from=mail.example.sa", how),
                     INTAKE_AUTHRES_FAIL);
    assert_int_equal(one("mx.bog.example; dmarc=temperror", how), INTAKE_AUTHRES_FAIL);
    /* a pass for another From domain */
    assert_int_equal(one("mx.bog.example; dmarc=pass header.from=evil.example", how),
                     INTAKE_AUTHRES_FAIL);
    /* a DMARC failure vetoes an aligned DKIM pass in the same field */
    assert_int_equal(one("mx.bog.example; dkim=pass header.d=mail.example.sa; dmarc=fail", how),
                     INTAKE_AUTHRES_FAIL);
    /* "none": nothing was checked */
    assert_int_equal(one("mx.bog.example; none", how), INTAKE_AUTHRES_FAIL);
    assert_int_equal(one("mx.bog.example", how), INTAKE_AUTHRES_FAIL);
}

static void test_dkim_and_spf_need_strict_alignment(void **state)
{
    (void)state;
    char how[64];
    assert_int_equal(one("mx.bog.example; dkim=pass header.d=mail.example.sa header.s=s1", how),
                     INTAKE_AUTHRES_PASS);
    assert_string_equal(how, "dkim");
    assert_int_equal(one("mx.bog.example; dkim=pass header.i=@mail.example.sa", how),
                     INTAKE_AUTHRES_PASS);
    /* a signature of another domain (a mailing list, a forwarder, an attacker's own) */
    assert_int_equal(one("mx.bog.example; dkim=pass header.d=evil.example", how),
                     INTAKE_AUTHRES_FAIL);
    /* the parent domain is not strict alignment */
    assert_int_equal(one("mx.bog.example; dkim=pass header.d=example.sa", how),
                     INTAKE_AUTHRES_FAIL);
    assert_int_equal(one("mx.bog.example; dkim=fail header.d=mail.example.sa", how),
                     INTAKE_AUTHRES_FAIL);
    assert_int_equal(one("mx.bog.example; spf=pass smtp.mailfrom=bounce@mail.example.sa", how),
                     INTAKE_AUTHRES_PASS);
    assert_string_equal(how, "spf");
    assert_int_equal(one("mx.bog.example; spf=pass smtp.mailfrom=mail.example.sa", how),
                     INTAKE_AUTHRES_PASS);
    assert_int_equal(one("mx.bog.example; spf=pass smtp.mailfrom=x@evil.example", how),
                     INTAKE_AUTHRES_FAIL);
    assert_int_equal(one("mx.bog.example; spf=softfail smtp.mailfrom=x@mail.example.sa", how),
                     INTAKE_AUTHRES_FAIL);
    /* a property hidden in a comment is not a property */
    assert_int_equal(
        one("mx.bog.example; dkim=pass (header.d=mail.example.sa) header.d=x.example", how),
        INTAKE_AUTHRES_FAIL);
}

static void test_only_the_topmost_trusted_field_counts(void **state)
{
    (void)state;
    char how[64];
    /* the sender's forgery below the MTA's own: the MTA's (fail) decides */
    const char *forged_below[] = {"mx.bog.example; dmarc=fail header.from=mail.example.sa",
                                  "mx.bog.example; dmarc=pass header.from=mail.example.sa"};
    assert_int_equal(check(forged_below, 2, TRUSTED, FROM, how), INTAKE_AUTHRES_FAIL);
    /* an untrusted authserv-id is ignored, wherever it is */
    const char *untrusted[] = {"mx.attacker.example; dmarc=pass header.from=mail.example.sa"};
    assert_int_equal(check(untrusted, 1, TRUSTED, FROM, how), INTAKE_AUTHRES_NONE);
    const char *mixed[] = {"mx.attacker.example; dmarc=pass",
                           "mx.bog.example; dkim=pass header.d=mail.example.sa"};
    assert_int_equal(check(mixed, 2, TRUSTED, FROM, how), INTAKE_AUTHRES_PASS);
    /* an id that merely contains a trusted one */
    assert_int_equal(one("evil-mx.bog.example; dmarc=pass", how), INTAKE_AUTHRES_NONE);
    assert_int_equal(one("mx.bog.example.evil; dmarc=pass", how), INTAKE_AUTHRES_NONE);
}

static void test_trust_list_and_inputs(void **state)
{
    (void)state;
    char how[64];
    const char *v[] = {"mx2.bog.example; dmarc=pass"};
    /* nothing trusted by default */
    assert_int_equal(check(v, 1, "", FROM, how), INTAKE_AUTHRES_NONE);
    assert_int_equal(check(v, 1, NULL, FROM, how), INTAKE_AUTHRES_NONE);
    assert_string_equal(how, "no trusted Authentication-Results");
    assert_int_equal(check(v, 1, "mx1.bog.example, MX2.bog.example ,", FROM, how),
                     INTAKE_AUTHRES_PASS);
    /* no From, no verdict */
    assert_int_equal(check(v, 1, "mx2.bog.example", NULL, how), INTAKE_AUTHRES_NONE);
    assert_int_equal(check(v, 1, "mx2.bog.example", "no-at-sign", how), INTAKE_AUTHRES_NONE);
    assert_int_equal(check(NULL, 0, "mx2.bog.example", FROM, how), INTAKE_AUTHRES_NONE);
    /* malformed and unterminated text never passes */
    assert_int_equal(one("mx.bog.example; dmarc=\"pass", how), INTAKE_AUTHRES_FAIL);
    assert_int_equal(one("mx.bog.example; (dmarc=pass", how), INTAKE_AUTHRES_FAIL);
    assert_int_equal(one("mx.bog.example; =pass dmarc", how), INTAKE_AUTHRES_FAIL);
    assert_int_equal(one("\"mx.bog.example; dmarc=pass", how), INTAKE_AUTHRES_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dmarc_pass_from_trusted_mta),
        cmocka_unit_test(test_dmarc_other_results_fail),
        cmocka_unit_test(test_dkim_and_spf_need_strict_alignment),
        cmocka_unit_test(test_only_the_topmost_trusted_field_counts),
        cmocka_unit_test(test_trust_list_and_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
