/* test_authz — the agent desk's authorization matrix, row by row (docs/architecture.md,
 * "Security" → "Agent actions"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_authz.h"

#include <string.h>

static const wasl_authz_principal_t NOBODY = {.role = WASL_AUTHZ_ROLE_NONE, .act_as = ""};
static const wasl_authz_principal_t AISHA = {.role = WASL_AUTHZ_ROLE_AGENT, .act_as = "aisha"};
/* A desk app bound to two agents, without a role: the same as role agent. */
static const wasl_authz_principal_t PAIR = {.role = WASL_AUTHZ_ROLE_NONE, .act_as = "aisha,badr"};
static const wasl_authz_principal_t SUPER = {.role = WASL_AUTHZ_ROLE_SUPERVISOR, .act_as = "sara"};
static const wasl_authz_principal_t ADMIN = {.role = WASL_AUTHZ_ROLE_ADMIN, .act_as = NULL};

static wasl_authz_decision_t decide(const wasl_authz_principal_t *who, wasl_authz_action_t action,
                                    wasl_authz_facts_t facts)
{
    return wasl_authz_decide(who, action, &facts);
}

static void assert_refused(wasl_authz_decision_t d, const char *code, const char *field)
{
    assert_false(d.allowed);
    assert_string_equal(d.code, code);
    assert_string_equal(d.field, field);
    assert_non_null(d.why);
}

static void test_listed_whole_ids(void **state)
{
    (void)state;
    assert_true(wasl_authz_listed("aisha,badr", "aisha"));
    assert_true(wasl_authz_listed("aisha,badr", "badr"));
    assert_false(wasl_authz_listed("aisha,badr", "ais"));
    assert_false(wasl_authz_listed("aisha,badr", "badr2"));
    assert_false(wasl_authz_listed("aisha,badr", "isha,badr"));
    assert_false(wasl_authz_listed("aisha,,badr", ""));
    assert_false(wasl_authz_listed("", "aisha"));
    assert_false(wasl_authz_listed(NULL, "aisha"));
    assert_false(wasl_authz_listed("aisha", NULL));
}

static void test_role_words(void **state)
{
    (void)state;
    assert_int_equal(wasl_authz_role_parse("agent"), WASL_AUTHZ_ROLE_AGENT);
    assert_int_equal(wasl_authz_role_parse("supervisor"), WASL_AUTHZ_ROLE_SUPERVISOR);
    assert_int_equal(wasl_authz_role_parse("admin"), WASL_AUTHZ_ROLE_ADMIN);
    assert_int_equal(wasl_authz_role_parse(NULL), WASL_AUTHZ_ROLE_NONE);
    assert_int_equal(wasl_authz_role_parse(""), WASL_AUTHZ_ROLE_NONE);
    assert_int_equal(wasl_authz_role_parse("Admin"), WASL_AUTHZ_ROLE_NONE);
    assert_int_equal(wasl_authz_role_parse("admins"), WASL_AUTHZ_ROLE_NONE);
}

static void test_acting_for_another_agent_is_refused(void **state)
{
    (void)state;
    wasl_authz_facts_t as_badr = {.actor = "badr", .actor_field = "agent", .in_queue = true};
    for (wasl_authz_action_t act = WASL_AUTHZ_AGENT_VIEW; act <= WASL_AUTHZ_REOPEN; act++) {
        if (act == WASL_AUTHZ_AGENT_MANAGE || act == WASL_AUTHZ_QUEUE_VIEW) {
            continue;
        }
        assert_refused(decide(&AISHA, act, as_badr), "not_bound", "agent");
        assert_refused(decide(&NOBODY, act, as_badr), "not_bound", "agent");
    }
    wasl_authz_facts_t path = {.actor = "badr", .actor_field = "id", .presence = "offline"};
    assert_refused(decide(&AISHA, WASL_AUTHZ_PRESENCE, path), "not_bound", "id");
    /* A missing target is no excuse: the binding is checked first. */
    path.missing = true;
    assert_refused(decide(&AISHA, WASL_AUTHZ_AGENT_VIEW, path), "not_bound", "id");
}

static void test_agent_admin_needs_admin(void **state)
{
    (void)state;
    wasl_authz_facts_t f = {.actor = "aisha", .actor_field = "id"};
    assert_refused(decide(&AISHA, WASL_AUTHZ_AGENT_MANAGE, f), "admin_only", "role");
    assert_refused(decide(&SUPER, WASL_AUTHZ_AGENT_MANAGE, f), "admin_only", "role");
    assert_true(decide(&ADMIN, WASL_AUTHZ_AGENT_MANAGE, f).allowed);
}

static void test_presence(void **state)
{
    (void)state;
    wasl_authz_facts_t f = {.actor = "aisha", .actor_field = "id", .presence = "available"};
    assert_true(decide(&AISHA, WASL_AUTHZ_PRESENCE, f).allowed);
    assert_true(decide(&PAIR, WASL_AUTHZ_PRESENCE, f).allowed);
    /* A supervisor only forces someone else offline. */
    assert_refused(decide(&SUPER, WASL_AUTHZ_PRESENCE, f), "offline_only", "state");
    f.presence = "offline";
    assert_true(decide(&SUPER, WASL_AUTHZ_PRESENCE, f).allowed);
    assert_true(decide(&ADMIN, WASL_AUTHZ_PRESENCE, f).allowed);
    f.actor = "sara";
    f.presence = "available";
    assert_true(decide(&SUPER, WASL_AUTHZ_PRESENCE, f).allowed); /* its own agent */
}

static void test_offers_only_by_their_agent(void **state)
{
    (void)state;
    wasl_authz_facts_t f = {.actor = "aisha", .actor_field = "agent", .offer_agent = "aisha"};
    assert_true(decide(&AISHA, WASL_AUTHZ_OFFER_ANSWER, f).allowed);
    f.offer_agent = "badr";
    assert_refused(decide(&AISHA, WASL_AUTHZ_OFFER_ANSWER, f), "not_your_offer", "agent");
    assert_refused(decide(&PAIR, WASL_AUTHZ_OFFER_ANSWER, f), "not_your_offer", "agent");
    /* Not even a supervisor accepts for someone else, whichever agent it names. */
    f.actor = "badr";
    assert_refused(decide(&SUPER, WASL_AUTHZ_OFFER_ANSWER, f), "not_your_offer", "agent");
    assert_refused(decide(&ADMIN, WASL_AUTHZ_OFFER_ANSWER, f), "not_your_offer", "agent");
    assert_true(decide(&PAIR, WASL_AUTHZ_OFFER_ANSWER, f).allowed);
    /* No such offer: allowed for the agent's own client, which then gets a 404. */
    wasl_authz_facts_t gone = {.actor = "aisha", .missing = true};
    assert_true(decide(&AISHA, WASL_AUTHZ_OFFER_ANSWER, gone).allowed);
}

static void test_ticket_matrix(void **state)
{
    (void)state;
    /* One rule for every act on a ticket, reading it included (issue 15: a note on a
     * colleague's assigned ticket is refused too, as the desk always decided). */
    const wasl_authz_action_t owner_actions[] = {WASL_AUTHZ_TICKET_VIEW, WASL_AUTHZ_NOTE,
                                                 WASL_AUTHZ_REPLY,       WASL_AUTHZ_TRANSFER,
                                                 WASL_AUTHZ_RESOLVE,     WASL_AUTHZ_REOPEN};
    for (size_t i = 0; i < sizeof owner_actions / sizeof owner_actions[0]; i++) {
        wasl_authz_action_t act = owner_actions[i];
        wasl_authz_facts_t f = {.actor = "aisha", .actor_field = "agent", .assignee = "aisha"};
        assert_true(decide(&AISHA, act, f).allowed); /* the assignee */
        f.assignee = "badr";
        f.in_queue = true; /* a member of the queue, but the ticket is badr's */
        assert_refused(decide(&AISHA, act, f), "not_your_ticket", "agent");
        assert_true(decide(&SUPER, act, f).allowed);
        assert_true(decide(&ADMIN, act, f).allowed);
        f.assignee = NULL; /* unassigned: members of the queue */
        assert_true(decide(&AISHA, act, f).allowed);
        f.in_queue = false;
        assert_refused(decide(&AISHA, act, f), "not_your_ticket", "agent");
        assert_true(decide(&SUPER, act, f).allowed);
    }
}

static void test_reads(void **state)
{
    (void)state;
    wasl_authz_facts_t q = {.in_queue = false};
    assert_refused(decide(&AISHA, WASL_AUTHZ_QUEUE_VIEW, q), "not_a_member", "queue");
    assert_refused(decide(&NOBODY, WASL_AUTHZ_QUEUE_VIEW, q), "not_a_member", "queue");
    assert_true(decide(&SUPER, WASL_AUTHZ_QUEUE_VIEW, q).allowed);
    q.in_queue = true;
    assert_true(decide(&AISHA, WASL_AUTHZ_QUEUE_VIEW, q).allowed);
    wasl_authz_facts_t a = {.actor = "aisha", .actor_field = "id"};
    assert_true(decide(&AISHA, WASL_AUTHZ_AGENT_VIEW, a).allowed);
    assert_true(decide(&SUPER, WASL_AUTHZ_AGENT_VIEW, a).allowed);
    a.actor = "badr";
    assert_refused(decide(&AISHA, WASL_AUTHZ_AGENT_VIEW, a), "not_bound", "id");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listed_whole_ids),
        cmocka_unit_test(test_role_words),
        cmocka_unit_test(test_acting_for_another_agent_is_refused),
        cmocka_unit_test(test_agent_admin_needs_admin),
        cmocka_unit_test(test_presence),
        cmocka_unit_test(test_offers_only_by_their_agent),
        cmocka_unit_test(test_ticket_matrix),
        cmocka_unit_test(test_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
