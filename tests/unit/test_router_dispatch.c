/* test_router_dispatch — the offer round's choices, without a database (offer.c): an agent as
 * read, the "queue/channel" pairs someone can take now, and for each waiting ticket the agent
 * chosen (skills, capacity per channel, language, wrap-up and absence, reoffer exclusion, best
 * matched then longest idle), the load the offer adds and the explanation it records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../services/router/offer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WEB   0 /* select_channel("web") */
#define EMAIL 2

/* An agent as agents_sql gives it. */
static select_agent_t agent(const char *id, const char *skills, const char *langs,
                            const char *capacity, const char *load, const char *idle,
                            const char *absent)
{
    offer_agent_row_t row = {.id = id,
                             .skills = skills,
                             .languages = langs,
                             .capacity = capacity,
                             .idle_since_ms = idle,
                             .absent = absent,
                             .load = load};
    select_agent_t a;
    offer_read_agent(&a, &row);
    return a;
}

/* A waiting web ticket of `queue`, Arabic, no extra skills, declined by nobody. */
static offer_ticket_row_t ticket(int64_t id, const char *queue)
{
    offer_ticket_row_t t = {.id = id,
                            .queue = queue,
                            .channel = "web",
                            .language = "ar",
                            .skills = "",
                            .declined = "",
                            .priority = "normal",
                            .first_response_due = "2026-11-29 11:00:00+00",
                            .waiting_since = NULL};
    return t;
}

static const char *offered_to(json_t *offer)
{
    return offer ? json_string_value(json_object_get(offer, "agent")) : NULL;
}

static void test_read_agent(void **state)
{
    (void)state;
    select_agent_t a = agent("a1", "{\"general\": 3, \"legal\": 1, \"x\": \"bad\"}", "ar,en",
                             "{\"web\": 2, \"email\": 5, \"fax\": 9}", "{\"web\": 1}", "1700", "");
    assert_string_equal(a.id, "a1");
    assert_int_equal(a.nskills, 3);
    assert_string_equal(a.skill[0], "general");
    assert_int_equal(a.level[0], 3);
    assert_int_equal(a.level[2], 1); /* a level that is not a number counts as 1 */
    assert_int_equal(a.nlangs, 2);
    assert_string_equal(a.lang[1], "en");
    assert_int_equal(a.capacity[WEB], 2);
    assert_int_equal(a.capacity[EMAIL], 5);
    assert_int_equal(a.load[WEB], 1);
    assert_int_equal(a.load[EMAIL], 0);
    assert_int_equal(a.idle_since_ms, 1700);
    assert_null(a.absent);
    a = agent("a2", "{}", "ar", "{}", "{}", "0", "wrap-up");
    assert_string_equal(a.absent, "wrap-up");
    a = agent("a3", "{}", "ar", "{}", "{}", "0", "offline");
    assert_string_equal(a.absent, "offline");
}

static void test_servable_pairs(void **state)
{
    (void)state;
    select_agent_t agents[] = {
        agent("a1", "{\"general\": 1}", "ar", "{\"web\": 1, \"sms\": 1}", "{\"web\": 1}", "1", ""),
        agent("a2", "{\"general\": 1, \"cases\": 2}", "ar", "{\"sms\": 2}", "{}", "2", ""),
        agent("a3", "{\"vip\": 1}", "ar", "{\"web\": 5}", "{}", "3", "away"),
    };
    char *lit = offer_servable(agents, 3);
    /* a1 is full on web; each pair once; the absent a3 adds nothing */
    assert_string_equal(lit, "{\"general/sms\",\"cases/sms\"}");
    free(lit);
    /* nobody with room: an empty array, not "{" (PostgreSQL refused that, failing the round) */
    lit = offer_servable(agents, 0);
    assert_string_equal(lit, "{}");
    free(lit);
}

static void test_skills_language_and_absence(void **state)
{
    (void)state;
    select_agent_t agents[] = {
        agent("busy", "{\"cases\": 9, \"legal\": 9}", "ar,en", "{\"web\": 3}", "{}", "1", "busy"),
        agent("wrap", "{\"cases\": 9, \"legal\": 9}", "ar,en", "{\"web\": 3}", "{}", "1",
              "wrap-up"),
        agent("ar-only", "{\"cases\": 1, \"legal\": 1}", "ar", "{\"web\": 3}", "{}", "5", ""),
        agent("no-legal", "{\"cases\": 5}", "ar,en", "{\"web\": 3}", "{}", "1", ""),
        agent("en", "{\"cases\": 1, \"legal\": 1}", "en", "{\"web\": 3}", "{}", "9", ""),
    };
    offer_ticket_row_t t = ticket(1, "cases");
    t.skills = "legal";
    json_t *offer = offer_make(agents, 5, &t);
    assert_string_equal(offered_to(offer), "ar-only");
    json_decref(offer);
    t.language = "en";
    offer = offer_make(agents, 5, &t);
    assert_string_equal(offered_to(offer), "en");
    /* the explanation names each candidate and why it was passed over */
    json_t *cands = json_object_get(json_object_get(offer, "explain"), "candidates");
    char *text = json_dumps(cands, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(strstr(text, "{\"agent\":\"busy\",\"excluded\":\"busy\"}"));
    assert_non_null(strstr(text, "{\"agent\":\"wrap\",\"excluded\":\"wrap-up\"}"));
    assert_non_null(strstr(text, "{\"agent\":\"ar-only\",\"excluded\":\"language\"}"));
    assert_non_null(strstr(text, "{\"agent\":\"no-legal\",\"excluded\":\"missing skill\"}"));
    free(text);
    json_decref(offer);
    /* nobody present with the skill and the language: no offer */
    t.skills = "tax";
    assert_null(offer_make(agents, 5, &t));
}

static void test_capacity_per_channel_and_load(void **state)
{
    (void)state;
    select_agent_t agents[] = {
        agent("a1", "{\"general\": 1}", "ar", "{\"web\": 1, \"email\": 2}", "{\"web\": 1}", "1",
              ""),
    };
    offer_ticket_row_t t = ticket(1, "general");
    assert_null(offer_make(agents, 1, &t)); /* full on web */
    t.channel = "email";
    json_t *offer = offer_make(agents, 1, &t);
    assert_string_equal(offered_to(offer), "a1");
    assert_string_equal(json_string_value(json_object_get(offer, "channel")), "email");
    assert_int_equal(json_integer_value(json_object_get(offer, "ticket_id")), 1);
    json_decref(offer);
    assert_int_equal(agents[0].load[EMAIL], 1); /* the offer counts from now */
    t.id = 2;
    offer = offer_make(agents, 1, &t);
    assert_non_null(offer);
    json_decref(offer);
    t.id = 3;
    assert_null(offer_make(agents, 1, &t)); /* the round filled the second e-mail place */
}

static void test_reoffer_exclusion(void **state)
{
    (void)state;
    select_agent_t agents[] = {
        agent("a1", "{\"general\": 5}", "ar", "{\"web\": 3}", "{}", "1", ""),
        agent("a2", "{\"general\": 1}", "ar", "{\"web\": 3}", "{}", "2", ""),
        agent("a3", "{\"general\": 1}", "ar", "{\"web\": 3}", "{}", "3", ""),
    };
    offer_ticket_row_t t = ticket(1, "general");
    t.declined = "a1,a2";
    json_t *offer = offer_make(agents, 3, &t);
    assert_string_equal(offered_to(offer), "a3");
    json_decref(offer);
    t.declined = "a1,a2,a3";
    assert_null(offer_make(agents, 3, &t));
}

/* Best matched (the queue's level plus the required skills'), then the longest idle; and the
 * order of the round: the first ticket PostgreSQL gives takes the one free place. */
static void test_best_matched_then_longest_idle_in_order(void **state)
{
    (void)state;
    select_agent_t agents[] = {
        agent("low", "{\"general\": 1}", "ar", "{\"web\": 1}", "{}", "100", ""),
        agent("high-recent", "{\"general\": 4}", "ar", "{\"web\": 1}", "{}", "900", ""),
        agent("high-idle", "{\"general\": 4}", "ar", "{\"web\": 1}", "{}", "500", ""),
    };
    offer_ticket_row_t t = ticket(1, "general");
    t.priority = "urgent";
    json_t *offer = offer_make(agents, 3, &t);
    assert_string_equal(offered_to(offer), "high-idle");
    json_t *order = json_object_get(json_object_get(offer, "explain"), "order");
    assert_string_equal(json_string_value(json_object_get(order, "priority")), "urgent");
    assert_string_equal(json_string_value(json_object_get(order, "first_response_due")),
                        "2026-11-29 11:00:00+00");
    assert_true(json_is_null(json_object_get(order, "waiting_since"))); /* NULL stays null */
    json_decref(offer);
    t.id = 2;
    offer = offer_make(agents, 3, &t);
    assert_string_equal(offered_to(offer), "high-recent");
    json_decref(offer);
    t.id = 3;
    offer = offer_make(agents, 3, &t);
    assert_string_equal(offered_to(offer), "low");
    json_decref(offer);
    t.id = 4;
    assert_null(offer_make(agents, 3, &t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_agent),
        cmocka_unit_test(test_servable_pairs),
        cmocka_unit_test(test_skills_language_and_absence),
        cmocka_unit_test(test_capacity_per_channel_and_load),
        cmocka_unit_test(test_reoffer_exclusion),
        cmocka_unit_test(test_best_matched_then_longest_idle_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
