/* test_intake_auth — intake's signatures (the scope words are tested with wasl_clients). */
#include "../../services/intake/auth.h"

#include <setjmp.h>
#include <stdarg.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define HEX64 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static void test_signature_header_parses_in_any_order(void **state)
{
    (void)state;
    intake_signature_t sig;
    assert_int_equal(intake_signature_parse("t=1700000000,n=abcdEFGH_-12,v1=" HEX64, &sig), 0);
    assert_int_equal(sig.t, 1700000000LL);
    assert_string_equal(sig.nonce, "abcdEFGH_-12");
    assert_int_equal(sig.mac[1], 0x11);
    assert_int_equal(intake_signature_parse("v1=" HEX64 ", n=12345678, t=5, v2=whatever", &sig), 0);
    assert_int_equal(sig.t, 5);
}

static void test_signature_header_refuses_what_is_malformed(void **state)
{
    (void)state;
    intake_signature_t sig;
    static const char *const bad[] = {
        "",
        "t=1700000000,v1=" HEX64,                      /* no nonce */
        "t=1700000000,n=abcdefgh",                     /* no mac */
        "n=abcdefgh,v1=" HEX64,                        /* no time */
        "t=-9223372036854775808,n=abcdefgh,v1=" HEX64, /* LLONG_MIN */
        "t=9223372036854775807,n=abcdefgh,v1=" HEX64,  /* LLONG_MAX */
        "t=1234567890123,n=abcdefgh,v1=" HEX64,        /* 13 digits */
        "t=+17,n=abcdefgh,v1=" HEX64,
        "t=1e9,n=abcdefgh,v1=" HEX64,
        "t=,n=abcdefgh,v1=" HEX64,
        "t=1,n=short,v1=" HEX64,         /* nonce under 8 */
        "t=1,n=abcdefgh;x,v1=" HEX64,    /* nonce character */
        "t=1,n=abcdefgh,v1=" HEX64 "00", /* mac length */
        "t=1,n=abcdefgh,v1=zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        "t=1,t=2,n=abcdefgh,v1=" HEX64, /* repeated */
        "t=1,n=abcdefgh,n=abcdefgh,v1=" HEX64,
        "t=1,n=abcdefgh,garbage,v1=" HEX64, /* an item without '=' */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(intake_signature_parse(bad[i], &sig), -1);
    }
    char nonce65[128];
    memset(nonce65, 'a', 65);
    nonce65[65] = '\0';
    char header[512];
    snprintf(header, sizeof header, "t=1,n=%s,v1=%s", nonce65, HEX64);
    assert_int_equal(intake_signature_parse(header, &sig), -1);
    assert_int_equal(intake_signature_parse(NULL, &sig), -1);
}

static void test_freshness_never_overflows(void **state)
{
    (void)state;
    long long now = 1700000000;
    assert_true(intake_signature_fresh(now, now, 300));
    assert_true(intake_signature_fresh(now - 300, now, 300));
    assert_true(intake_signature_fresh(now + 300, now, 300));
    assert_false(intake_signature_fresh(now - 301, now, 300));
    assert_false(intake_signature_fresh(now + 301, now, 300));
    assert_false(intake_signature_fresh(LLONG_MIN, now, 300));
    assert_false(intake_signature_fresh(LLONG_MAX, now, 300));
}

static void test_mac_covers_every_part_of_the_request(void **state)
{
    (void)state;
    const char *k = "secret-secret-secret-secret-secret";
    unsigned char base[INTAKE_MAC_BYTES], other[INTAKE_MAC_BYTES];
    intake_signature_mac(k, "GET", "/v1/tickets/1", "a=1", 100, "nonce-01", "", 0, base);
    intake_signature_mac(k, "GET", "/v1/tickets/1", "a=1", 100, "nonce-01", "", 0, other);
    assert_memory_equal(base, other, INTAKE_MAC_BYTES);
    intake_signature_mac(k, "POST", "/v1/tickets/1", "a=1", 100, "nonce-01", "", 0, other);
    assert_memory_not_equal(base, other, INTAKE_MAC_BYTES);
    intake_signature_mac(k, "GET", "/v1/tickets/2", "a=1", 100, "nonce-01", "", 0, other);
    assert_memory_not_equal(base, other, INTAKE_MAC_BYTES);
    intake_signature_mac(k, "GET", "/v1/tickets/1", "a=2", 100, "nonce-01", "", 0, other);
    assert_memory_not_equal(base, other, INTAKE_MAC_BYTES);
    intake_signature_mac(k, "GET", "/v1/tickets/1", "a=1", 101, "nonce-01", "", 0, other);
    assert_memory_not_equal(base, other, INTAKE_MAC_BYTES);
    intake_signature_mac(k, "GET", "/v1/tickets/1", "a=1", 100, "nonce-02", "", 0, other);
    assert_memory_not_equal(base, other, INTAKE_MAC_BYTES);
    intake_signature_mac(k, "GET", "/v1/tickets/1", "a=1", 100, "nonce-01", "x", 1, other);
    assert_memory_not_equal(base, other, INTAKE_MAC_BYTES);
    /* A line break cannot move a part into its neighbour. */
    intake_signature_mac(k, "GET", "/v1/tickets/1\na=1", "", 100, "nonce-01", "", 0, other);
    assert_memory_not_equal(base, other, INTAKE_MAC_BYTES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_header_parses_in_any_order),
        cmocka_unit_test(test_signature_header_refuses_what_is_malformed),
        cmocka_unit_test(test_freshness_never_overflows),
        cmocka_unit_test(test_mac_covers_every_part_of_the_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
