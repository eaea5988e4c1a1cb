/* test_intake_auth — intake's scope words. */
#include "../../services/intake/auth.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

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
        cmocka_unit_test(test_ticket_read_scopes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
