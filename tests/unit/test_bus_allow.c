/* test_bus_allow — the bus's per-socket allow-lists (WASL_BUS_ALLOW): lookup and checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../services/bus/bus.h"
#include "wasl_log.h"

#include <string.h>

static void test_default_topology(void **state)
{
    (void)state;
    char roles[WASL_ZAP_ALLOW_MAX + 1];
    const char *a = BUS_ALLOW_DEFAULT;
    assert_int_equal(bus_allow_lookup(a, "rpc", false, roles, sizeof roles), 0);
    assert_string_equal(roles, "intake,router,desk");
    assert_int_equal(bus_allow_lookup(a, "rpc", true, roles, sizeof roles), 0);
    assert_string_equal(roles, "caselookup");
    assert_int_equal(bus_allow_lookup(a, "classify", false, roles, sizeof roles), 0);
    assert_string_equal(roles, "intake");
    assert_int_equal(bus_allow_lookup(a, "classify", true, roles, sizeof roles), 0);
    assert_string_equal(roles, "classifier");
    assert_int_equal(bus_allow_lookup(a, "route", true, roles, sizeof roles), 0);
    assert_string_equal(roles, "router");
    assert_int_equal(bus_allow_lookup(a, "notify", false, roles, sizeof roles), 0);
    assert_string_equal(roles, "router");
    assert_int_equal(bus_allow_lookup(a, "notify", true, roles, sizeof roles), 0);
    assert_string_equal(roles, "notifier");
    assert_null(bus_allow_check(a, "classify,route,notify"));
}

static void test_lookup_edges(void **state)
{
    (void)state;
    char roles[16];
    assert_int_equal(bus_allow_lookup("rpc=a>b", "rp", false, roles, sizeof roles), -1);
    assert_int_equal(bus_allow_lookup("rpc=a>b", "rpcx", false, roles, sizeof roles), -1);
    assert_int_equal(bus_allow_lookup("rpc=>b", "rpc", false, roles, sizeof roles), 0);
    assert_string_equal(roles, ""); /* nobody */
    assert_int_equal(bus_allow_lookup("rpc=a>", "rpc", true, roles, sizeof roles), 0);
    assert_string_equal(roles, "");
    assert_int_equal(bus_allow_lookup("x=a;rpc=a>b", "rpc", false, roles, sizeof roles), -2);
    assert_int_equal(bus_allow_lookup("rpc=a", "rpc", false, roles, sizeof roles), -2);
    assert_int_equal(
        bus_allow_lookup("rpc=aaaaaaaaaaaaaaaaaaaaaa>b", "rpc", false, roles, sizeof roles), -2);
    assert_int_equal(bus_allow_lookup("", "rpc", false, roles, sizeof roles), -1);
    /* A '>' belongs to its own entry, never to the next one's. */
    assert_int_equal(bus_allow_lookup("rpc=a;s=b>c", "rpc", true, roles, sizeof roles), -2);
}

static void test_check_names_the_problem(void **state)
{
    (void)state;
    assert_non_null(bus_allow_check("classify=a>b", "classify"));           /* no rpc */
    assert_non_null(bus_allow_check("rpc=a>b;classify=a>b", "classify,x")); /* no x */
    assert_non_null(bus_allow_check("rpc=a>b;classify", "classify"));
    assert_null(bus_allow_check("rpc=a>b;x=c>d", "x"));
}

int main(void)
{
    wasl_log_init("test_bus_allow", WASL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_topology),
        cmocka_unit_test(test_lookup_edges),
        cmocka_unit_test(test_check_names_the_problem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
