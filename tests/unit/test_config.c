/* test_config — WASL_* configuration: defaults, valid values, and errors naming the variable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_config.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *s;
    long n;
    bool b;
    int e;
} values_t;

static wasl_config_t *make(values_t *v)
{
    wasl_config_t *cfg = wasl_config_new("wasl-test", "A test program.");
    assert_non_null(cfg);
    wasl_config_str(cfg, "WASL_T_STR", "default", "a string", &v->s);
    wasl_config_int(cfg, "WASL_T_INT", 42, 1, 100, "an int", &v->n);
    wasl_config_bool(cfg, "WASL_T_BOOL", false, "a bool", &v->b);
    wasl_config_enum(cfg, "WASL_T_ENUM", "b", "a|b|c", "an enum", &v->e);
    return cfg;
}

static void clear_env(void)
{
    unsetenv("WASL_T_STR");
    unsetenv("WASL_T_INT");
    unsetenv("WASL_T_BOOL");
    unsetenv("WASL_T_ENUM");
}

static int parse(wasl_config_t *cfg, char *err, size_t errlen)
{
    char *argv[] = {"wasl-test", NULL};
    FILE *out = fopen("/dev/null", "w");
    int rc = wasl_config_parse_env(cfg, 1, argv, out, err, errlen);
    fclose(out);
    return rc;
}

static void test_defaults(void **state)
{
    (void)state;
    clear_env();
    values_t v;
    wasl_config_t *cfg = make(&v);
    char err[256] = "";
    assert_int_equal(parse(cfg, err, sizeof err), 0);
    assert_string_equal(v.s, "default");
    assert_int_equal(v.n, 42);
    assert_false(v.b);
    assert_int_equal(v.e, 1);
    wasl_config_destroy(&cfg);
    assert_null(cfg);
    wasl_config_destroy(&cfg); /* safe twice */
}

static void test_values_from_env(void **state)
{
    (void)state;
    clear_env();
    setenv("WASL_T_STR", "", 1); /* empty string is a value for strings */
    setenv("WASL_T_INT", "100", 1);
    setenv("WASL_T_BOOL", "yes", 1);
    setenv("WASL_T_ENUM", "c", 1);
    values_t v;
    wasl_config_t *cfg = make(&v);
    char err[256] = "";
    assert_int_equal(parse(cfg, err, sizeof err), 0);
    assert_string_equal(v.s, "");
    assert_int_equal(v.n, 100);
    assert_true(v.b);
    assert_int_equal(v.e, 2);
    wasl_config_destroy(&cfg);
    clear_env();
}

static void expect_error(const char *name, const char *value, const char *needle)
{
    clear_env();
    setenv(name, value, 1);
    values_t v;
    wasl_config_t *cfg = make(&v);
    char err[256] = "";
    assert_int_equal(parse(cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, name));
    assert_non_null(strstr(err, needle));
    wasl_config_destroy(&cfg);
    clear_env();
}

static void test_errors_name_the_variable(void **state)
{
    (void)state;
    expect_error("WASL_T_INT", "abc", "not an integer");
    expect_error("WASL_T_INT", "12x", "not an integer");
    expect_error("WASL_T_INT", "0", "out of range 1..100");
    expect_error("WASL_T_INT", "101", "out of range");
    expect_error("WASL_T_INT", "99999999999999999999999", "not an integer");
    expect_error("WASL_T_BOOL", "maybe", "not a boolean");
    expect_error("WASL_T_ENUM", "d", "one of a|b|c");
}

static void test_help_and_unknown_argument(void **state)
{
    (void)state;
    clear_env();
    values_t v;
    wasl_config_t *cfg = make(&v);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    char *argv_help[] = {"wasl-test", "--help", NULL};
    char err[256] = "";
    assert_int_equal(wasl_config_parse_env(cfg, 2, argv_help, out, err, sizeof err), 1);
    fclose(out);
    /* Every variable is listed with its default. */
    assert_non_null(strstr(buf, "WASL_T_STR"));
    assert_non_null(strstr(buf, "\"default\""));
    assert_non_null(strstr(buf, "42 (1..100)"));
    assert_non_null(strstr(buf, "b (a|b|c)"));
    free(buf);
    char *argv_bad[] = {"wasl-test", "--port=5", NULL};
    FILE *null = fopen("/dev/null", "w");
    assert_int_equal(wasl_config_parse_env(cfg, 2, argv_bad, null, err, sizeof err), -1);
    fclose(null);
    assert_non_null(strstr(err, "--port=5"));
    wasl_config_destroy(&cfg);
}

static void test_daemon_common_vars(void **state)
{
    (void)state;
    setenv("WASL_ADMIN_PORT", "9555", 1);
    setenv("WASL_LOG_LEVEL", "warn", 1);
    wasl_config_t *cfg = wasl_config_new("wasl-test", "x");
    wasl_config_daemon(cfg, 9100);
    char err[256];
    assert_int_equal(parse(cfg, err, sizeof err), 0);
    assert_int_equal(wasl_config_admin_port(cfg), 9555);
    assert_int_equal(wasl_config_log_level(cfg), 2);
    assert_string_equal(wasl_config_admin_bind(cfg), "127.0.0.1");
    wasl_config_destroy(&cfg);
    setenv("WASL_ADMIN_PORT", "70000", 1);
    cfg = wasl_config_new("wasl-test", "x");
    wasl_config_daemon(cfg, 9100);
    assert_int_equal(parse(cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "WASL_ADMIN_PORT"));
    wasl_config_destroy(&cfg);
    unsetenv("WASL_ADMIN_PORT");
    unsetenv("WASL_LOG_LEVEL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values_from_env),
        cmocka_unit_test(test_errors_name_the_variable),
        cmocka_unit_test(test_help_and_unknown_argument),
        cmocka_unit_test(test_daemon_common_vars),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
