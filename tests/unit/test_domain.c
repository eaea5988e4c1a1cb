/* test_domain — the one name rule and the domain's words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_classify.h"
#include "wasl_domain.h"

#include <string.h>

static void test_names(void **state)
{
    (void)state;
    static const char *const good[] = {"a",         "0",       "complaints", "eservice_support",
                                       "a.alharbi", "queue-2", "9lives",     "x_y.z-1"};
    static const char *const bad[] = {"",    "-a",  "_a",  ".a", "A",     "Complaints",
                                      "a b", "a/b", "a:5", "é",  "شكاوى", "a\n"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_true(wasl_name_ok(good[i]));
        assert_true(wasl_agent_id_ok(good[i]));
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(wasl_name_ok(bad[i]));
        assert_false(wasl_agent_id_ok(bad[i]));
    }
    assert_false(wasl_name_ok(NULL));
    assert_false(wasl_agent_id_ok(NULL));

    /* lengths: 63 for a name, 64 for an agent id (agents.id's CHECK) */
    char s[WASL_AGENT_ID_MAX + 2];
    memset(s, 'a', sizeof s);
    s[WASL_NAME_MAX] = '\0';
    assert_true(wasl_name_ok(s));
    s[WASL_NAME_MAX] = 'a';
    s[WASL_NAME_MAX + 1] = '\0';
    assert_false(wasl_name_ok(s));
    assert_true(wasl_agent_id_ok(s));
    s[WASL_AGENT_ID_MAX] = 'a';
    s[WASL_AGENT_ID_MAX + 1] = '\0';
    assert_false(wasl_agent_id_ok(s));
}

static void test_category_labels(void **state)
{
    (void)state;
    /* every category the classifier gives, and triage, has a word in both languages */
    for (size_t i = 0; i <= WASL_CATEGORY_COUNT; i++) {
        const char *code = i < WASL_CATEGORY_COUNT ? wasl_categories[i] : "triage";
        const char *ar = wasl_category_label(code, "ar"), *en = wasl_category_label(code, "en");
        assert_non_null(ar);
        assert_non_null(en);
        assert_string_not_equal(ar, en);
        assert_string_not_equal(ar, code);
    }
    assert_string_equal(wasl_category_label("complaint", "ar"), "شكوى");
    assert_string_equal(wasl_category_label("complaint", NULL), "شكوى");
    assert_string_equal(wasl_category_label("complaint", "en"), "Complaint");
    assert_string_equal(wasl_category_label("case_inquiry", "ar"), "استفسار عن قضية");
    assert_string_equal(wasl_category_label("triage", "ar"), "طلب عام");
    assert_string_equal(wasl_category_label("general_inquiry", "ar"), "استفسار عام");
    assert_null(wasl_category_label("no_such", "ar"));
    assert_null(wasl_category_label(NULL, "en"));
}

static void test_priority_labels(void **state)
{
    (void)state;
    for (size_t i = 0; i < WASL_PRIORITY_COUNT; i++) {
        assert_non_null(wasl_priority_label(wasl_priorities[i], "ar"));
        assert_string_equal(wasl_priority_label(wasl_priorities[i], "en"), wasl_priorities[i]);
    }
    assert_string_equal(wasl_priority_label("urgent", "ar"), "عاجلة");
    assert_string_equal(wasl_priority_label("low", "ar"), "منخفضة");
    assert_null(wasl_priority_label("critical", "ar"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_category_labels),
        cmocka_unit_test(test_priority_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
