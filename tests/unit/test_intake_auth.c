/* test_intake_auth — a client's binding: which agents a token may act for, and its role word. */
#include "../../services/intake/auth.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static intake_client_t client_with(const char *act_as)
{
    intake_client_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.act_as, sizeof c.act_as, "%s", act_as);
    return c;
}

static void test_acts_as_only_listed_agents(void **state)
{
    (void)state;
    intake_client_t c = client_with("a.one,b-two,c");
    assert_true(intake_client_acts_as(&c, "a.one"));
    assert_true(intake_client_acts_as(&c, "b-two"));
    assert_true(intake_client_acts_as(&c, "c"));
    /* Prefixes, suffixes and joins of listed ids are other agents. */
    assert_false(intake_client_acts_as(&c, "a"));
    assert_false(intake_client_acts_as(&c, "a.on"));
    assert_false(intake_client_acts_as(&c, "b-two,c"));
    assert_false(intake_client_acts_as(&c, "cc"));
    assert_false(intake_client_acts_as(&c, ""));
}

static void test_empty_list_acts_for_nobody(void **state)
{
    (void)state;
    intake_client_t c = client_with("");
    assert_false(intake_client_acts_as(&c, "a"));
    assert_false(intake_client_acts_as(&c, ""));
}

static void test_role_words(void **state)
{
    (void)state;
    assert_int_equal(intake_role_parse("agent"), INTAKE_ROLE_AGENT);
    assert_int_equal(intake_role_parse("supervisor"), INTAKE_ROLE_SUPERVISOR);
    assert_int_equal(intake_role_parse("admin"), INTAKE_ROLE_ADMIN);
    assert_int_equal(intake_role_parse(NULL), INTAKE_ROLE_NONE);
    assert_int_equal(intake_role_parse(""), INTAKE_ROLE_NONE);
    assert_int_equal(intake_role_parse("Admin"), INTAKE_ROLE_NONE);
    assert_int_equal(intake_role_parse("root"), INTAKE_ROLE_NONE);
}

/* tickets:read:all is a scope word of its own and includes tickets:read (issue 13, finding 16);
 * tickets:read alone does not read every ticket. */
static void test_ticket_read_scopes(void **state)
{
    (void)state;
    long own = intake_scopes_parse("reports,tickets:read");
    assert_true(own & INTAKE_SCOPE_TICKETS_READ);
    assert_false(own & INTAKE_SCOPE_TICKETS_READ_ALL);
    long all = intake_scopes_parse("tickets:read:all");
    assert_true(all & INTAKE_SCOPE_TICKETS_READ);
    assert_true(all & INTAKE_SCOPE_TICKETS_READ_ALL);
    assert_true(intake_scopes_parse("*") & INTAKE_SCOPE_TICKETS_READ_ALL);
    assert_int_equal(intake_scopes_parse("tickets:read:any"), -1);
    assert_int_equal(intake_scopes_parse("{reports,tickets:read:all}"),
                     INTAKE_SCOPE_REPORTS | INTAKE_SCOPE_TICKETS_READ |
                         INTAKE_SCOPE_TICKETS_READ_ALL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acts_as_only_listed_agents),
        cmocka_unit_test(test_empty_list_acts_for_nobody),
        cmocka_unit_test(test_role_words),
        cmocka_unit_test(test_ticket_read_scopes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
