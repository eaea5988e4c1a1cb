/* Unit tests for wasl_curl: the bounded reply body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "wasl_curl.h"

#include <string.h>

static void test_keeps_the_first_cap_minus_one_bytes(void **state)
{
    (void)state;
    char buf[8];
    wasl_curl_body_t b;
    wasl_curl_body_init(&b, buf, sizeof buf);
    assert_string_equal(b.data, "");
    char part1[] = "abcd", part2[] = "efghij";
    assert_int_equal(wasl_curl_body_write(part1, 1, 4, &b), 4);
    assert_string_equal(buf, "abcd");
    /* Past the bound: everything is reported taken, only what fits is kept, NUL-terminated. */
    assert_int_equal(wasl_curl_body_write(part2, 2, 3, &b), 6);
    assert_int_equal(b.len, 7);
    assert_string_equal(buf, "abcdefg");
    assert_int_equal(wasl_curl_body_write(part2, 1, 6, &b), 6);
    assert_string_equal(buf, "abcdefg");
}

static void test_init_empties_a_used_body(void **state)
{
    (void)state;
    char buf[4];
    wasl_curl_body_t b;
    wasl_curl_body_init(&b, buf, sizeof buf);
    char x[] = "xyz";
    wasl_curl_body_write(x, 1, 3, &b);
    wasl_curl_body_init(&b, buf, sizeof buf);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keeps_the_first_cap_minus_one_bytes),
        cmocka_unit_test(test_init_empties_a_used_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
