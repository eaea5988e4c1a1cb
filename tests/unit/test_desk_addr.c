/* Unit tests for the desk's client address behind trusted proxies (services/desk/addr.c): a
 * table of peers, X-Forwarded-For headers and trusted lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../services/desk/addr.h"

#include <string.h>

typedef struct {
    const char *peer, *xff, *trusted, *want;
} addr_case_t;

static const addr_case_t CASES[] = {
    /* No proxy trusted: the header is ignored, whatever it claims. */
    {"127.0.0.1", "203.0.113.9", "", "127.0.0.1"},
    {"127.0.0.1", "203.0.113.9", NULL, "127.0.0.1"},
    {"198.51.100.4", "203.0.113.9", "127.0.0.1", "198.51.100.4"},
    /* Behind one trusted proxy: its entry is the client. */
    {"127.0.0.1", "203.0.113.9", "127.0.0.1", "203.0.113.9"},
    {"127.0.0.1", " 203.0.113.9 ", "10.0.0.1, 127.0.0.1", "203.0.113.9"},
    /* A client's own forged entries stay on the left of its proxy's: not believed. */
    {"127.0.0.1", "1.2.3.4, 203.0.113.9", "127.0.0.1", "203.0.113.9"},
    /* Two trusted hops. */
    {"127.0.0.1", "203.0.113.9, 10.0.0.1", "127.0.0.1,10.0.0.1", "203.0.113.9"},
    /* Every hop trusted: the leftmost. */
    {"127.0.0.1", "10.0.0.2, 10.0.0.1", "127.0.0.1,10.0.0.1,10.0.0.2", "10.0.0.2"},
    /* Malformed entries end the walk at the last address believed. */
    {"127.0.0.1", "203.0.113.9, garbage", "127.0.0.1", "127.0.0.1"},
    {"127.0.0.1", "unknown, 10.0.0.1", "127.0.0.1,10.0.0.1", "10.0.0.1"},
    {"127.0.0.1", "", "127.0.0.1", "127.0.0.1"},
    {"127.0.0.1", ",", "127.0.0.1", "127.0.0.1"},
    {"127.0.0.1", "203.0.113.9:4711", "127.0.0.1", "127.0.0.1"},
    /* IPv6, written differently by the proxy and the list: compared as addresses. */
    {"::1", "2001:db8::0:1", "0:0::1", "2001:db8::1"},
    {"2001:db8::10", "203.0.113.9", "2001:DB8:0::10", "203.0.113.9"},
    /* No usable peer. */
    {NULL, "203.0.113.9", "127.0.0.1", "-"},
    {"not an address", NULL, "", "-"},
};

static void test_client_address_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const addr_case_t *c = &CASES[i];
        char out[DESK_ADDR_BUF];
        desk_client_addr(c->peer, c->xff, c->trusted, out);
        if (strcmp(out, c->want) != 0) {
            fail_msg("case %zu (peer %s, xff \"%s\", trusted \"%s\"): got %s, want %s", i,
                     c->peer ? c->peer : "NULL", c->xff ? c->xff : "NULL",
                     c->trusted ? c->trusted : "NULL", out, c->want);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_client_address_table)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
