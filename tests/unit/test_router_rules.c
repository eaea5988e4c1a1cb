/* test_router_rules — the routing rules file: parsing and its errors (file:line), every match
 * dimension, priority changes and SLA targets, the business-hours calendar (injected instants),
 * and the agent choice (skills, language, presence, capacity, declines, longest idle). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../services/router/rules.h"
#include "../../services/router/select.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERR_CAP         512
#define DEFAULT_RULES   "deploy/config/routing.yaml"
#define MUTATION_ROUNDS 1500

/* A UTC instant for a Riyadh wall-clock time (UTC+3). */
static time_t riyadh(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return timegm(&tm) - 3 * 3600;
}

static const char *const base_yaml =
    "version: 1\n"                        /* 1 */
    "default_queue: general\n"            /* 2 */
    "calendar:\n"                         /* 3 */
    "  utc_offset: \"+03:00\"\n"          /* 4 */
    "  days: [sun, mon, tue, wed, thu]\n" /* 5 */
    "  open: \"08:00\"\n"                 /* 6 */
    "  close: \"16:00\"\n"                /* 7 */
    "  holidays: [2026-12-01]\n"          /* 8 */
    "escalation:\n"                       /* 9 */
    "  supervisor_queue: sup\n"           /* 10 */
    "  alert_email: sup@example.org\n"    /* 11 */
    "  overflow_queue: general\n"         /* 12 */
    "  overflow_after: 5m\n"              /* 13 */
    "  offer_timeout: 20s\n"              /* 14 */
    "queues:\n"                           /* 15 */
    "  general: {sla: {default: {first_response: 4h, resolution: 2d}}}\n"
    "  sup: {sla: {default: {first_response: 15m, resolution: 4h}}}\n"
    "  cases:\n" /* 18 */
    "    skills: [legal]\n"
    "    sla:\n"
    "      urgent: {first_response: 10m, resolution: 1h}\n"
    "      default: {first_response: 1h, resolution: 1d}\n"
    "  staff:\n"
    "    business_time: true\n"
    "    sla: {default: {first_response: 2h, resolution: 8h}}\n";

static rules_t *parse_with(const char *extra, char *err)
{
    char buf[8192];
    snprintf(buf, sizeof buf, "%s%s", base_yaml, extra);
    return rules_parse(buf, strlen(buf), "t.yaml", err, ERR_CAP);
}

static route_input_t input(const char *category)
{
    route_input_t in = {.category = category,
                        .priority = "normal",
                        .channel = "web",
                        .language = "ar",
                        .beneficiary = "public",
                        .now = riyadh(2026, 11, 29, 10, 0)}; /* a Sunday morning */
    return in;
}

static void test_default_file_parses(void **state)
{
    (void)state;
    char err[ERR_CAP];
    rules_t *r = rules_load(DEFAULT_RULES, err, sizeof err);
    assert_non_null(r);
    assert_true(rules_auto_answer(r)); /* verified case inquiries go to caselookup */
    const char *expect[][2] = {{"case_inquiry", "case-status"},
                               {"eservice_support", "eservices-support"},
                               {"judicial_support", "judicial-support"},
                               {"staff_services", "staff-services"},
                               {"complaint", "complaints"},
                               {"general_inquiry", "general"},
                               {"triage", "triage"}};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        route_input_t in = input(expect[i][0]);
        route_decision_t d;
        rules_decide(r, &in, &d);
        assert_string_equal(d.queue, expect[i][1]);
        assert_true(d.first_response_due > in.now);
        assert_true(d.resolution_due >= d.first_response_due);
    }
    rules_destroy(&r);
    rules_destroy(&r); /* safe twice */
}

static void test_syntax_error_names_line(void **state)
{
    (void)state;
    char err[ERR_CAP];
    assert_null(parse_with("rules:\n  - name: x\n    queue: [general\n", err));
    assert_non_null(strstr(err, "t.yaml:"));
}

static void assert_error(const char *extra, const char *where, const char *what)
{
    char err[ERR_CAP];
    rules_t *r = parse_with(extra, err);
    if (r) {
        rules_destroy(&r);
        fail_msg("accepted: %s", extra);
    }
    if (!strstr(err, where) || !strstr(err, what)) {
        fail_msg("error \"%s\" lacks \"%s\" or \"%s\"", err, where, what);
    }
}

static void test_semantic_errors_name_line(void **state)
{
    (void)state;
    /* The base file has 25 lines; "rules:" is line 26, the first rule line 27. */
    assert_error("rules:\n  - name: a\n    match: {category: bogus}\n    queue: general\n",
                 "t.yaml:28:", "unknown value \"bogus\"");
    assert_error("rules:\n  - name: a\n    queue: nowhere\n", "t.yaml:27:", "not defined");
    assert_error("rules:\n  - name: a\n    match: {priority: critical}\n    queue: general\n",
                 "t.yaml:28:", "critical");
    assert_error("rules:\n  - name: a\n    match: {colour: red}\n    queue: general\n",
                 "t.yaml:28:", "unknown key \"colour\"");
    assert_error("rules:\n  - name: a\n    queue: general\n  - name: a\n    queue: general\n",
                 "t.yaml:29:", "used twice");
    assert_error("rules:\n  - match: {channel: sms}\n    queue: general\n",
                 "t.yaml:27:", "needs a name");
    assert_error("  bad: {sla: {urgent: {first_response: 1h, resolution: 2h}}}\n",
                 "t.yaml:26:", "no first_response and resolution for high");
    assert_error("  bad2: {sla: {default: {first_response: soon, resolution: 2h}}}\n",
                 "t.yaml:26:", "duration");
    assert_error("  bad3: {sla: {default: {first_response: 2h, resolution: 1h}}}\n",
                 "t.yaml:26:", "shorter");
    char err[ERR_CAP];
    const char *no_default = "version: 1\nqueues:\n  a: {sla: {default: {first_response: 1h, "
                             "resolution: 2h}}}\n";
    assert_null(rules_parse(no_default, strlen(no_default), "n.yaml", err, sizeof err));
    assert_non_null(strstr(err, "default_queue"));
    assert_null(rules_load("/nonexistent/routing.yaml", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/routing.yaml"));
}

static const char *decide_queue(const rules_t *r, const route_input_t *in)
{
    static route_decision_t d;
    rules_decide(r, in, &d);
    return d.queue;
}

static void test_every_match_dimension(void **state)
{
    (void)state;
    char err[ERR_CAP];
    rules_t *r =
        parse_with("rules:\n"
                   "  - {name: by-category, match: {category: case_inquiry}, queue: cases}\n"
                   "  - {name: by-priority, match: {priority: [urgent, high]}, queue: sup}\n"
                   "  - {name: by-channel, match: {channel: sms}, queue: cases}\n"
                   "  - {name: by-language, match: {language: en}, queue: staff}\n"
                   "  - {name: by-beneficiary, match: {beneficiary: staff}, queue: staff}\n"
                   "  - {name: by-entity, match: {entities: [national_id, phone]}, queue: cases}\n"
                   "  - {name: after-hours, match: {business_hours: false}, queue: sup}\n",
                   err);
    assert_non_null(r);
    route_input_t in = input("complaint");
    assert_string_equal(decide_queue(r, &in), "general"); /* nothing matches: default */
    route_decision_t d;
    rules_decide(r, &in, &d);
    assert_string_equal(d.rule, "default");
    in.category = "case_inquiry";
    assert_string_equal(decide_queue(r, &in), "cases");
    in = input("complaint");
    in.priority = "high";
    assert_string_equal(decide_queue(r, &in), "sup");
    in = input("complaint");
    in.channel = "sms";
    assert_string_equal(decide_queue(r, &in), "cases");
    in = input("complaint");
    in.language = "en";
    assert_string_equal(decide_queue(r, &in), "staff");
    in = input("complaint");
    in.beneficiary = "staff";
    assert_string_equal(decide_queue(r, &in), "staff");
    in = input("complaint");
    const char *one[] = {"national_id"}, *both[] = {"phone", "national_id"};
    in.entities = one;
    in.nentities = 1;
    assert_string_equal(decide_queue(r, &in), "general"); /* needs both kinds */
    in.entities = both;
    in.nentities = 2;
    assert_string_equal(decide_queue(r, &in), "cases");
    in = input("complaint");
    in.now = riyadh(2026, 11, 29, 20, 0); /* Sunday evening */
    assert_string_equal(decide_queue(r, &in), "sup");
    rules_decide(r, &in, &d);
    assert_string_equal(d.rule, "after-hours");
    assert_false(d.in_business_hours);
    rules_destroy(&r);
}

static void test_priority_skills_sla(void **state)
{
    (void)state;
    char err[ERR_CAP];
    rules_t *r = parse_with("rules:\n"
                            "  - name: hearing\n"
                            "    match: {category: judicial_support}\n"
                            "    queue: cases\n"
                            "    priority: urgent\n"
                            "    skills: [hearings]\n"
                            "    auto_answer: true\n",
                            err);
    assert_non_null(r);
    route_input_t in = input("judicial_support");
    route_decision_t d;
    rules_decide(r, &in, &d);
    assert_string_equal(d.priority, "urgent");
    assert_int_equal(d.prio_rank, 0);
    assert_int_equal(d.nskills, 2); /* the queue's skill, then the rule's */
    assert_string_equal(d.skills[0], "legal");
    assert_string_equal(d.skills[1], "hearings");
    assert_int_equal(d.first_response_s, 600);
    assert_int_equal(d.resolution_s, 3600);
    assert_int_equal(d.first_response_due, in.now + 600);
    assert_true(d.auto_answer_asked);
    assert_false(d.auto_answer); /* the file's auto_answer is off */
    assert_int_equal(d.rule_line, 27);
    rules_destroy(&r);
}

static void test_business_hours_calendar(void **state)
{
    (void)state;
    char err[ERR_CAP];
    rules_t *r = parse_with("", err);
    assert_non_null(r);
    assert_true(rules_in_business_hours(r, riyadh(2026, 11, 29, 8, 0)));   /* Sun open */
    assert_false(rules_in_business_hours(r, riyadh(2026, 11, 29, 7, 59))); /* before */
    assert_false(rules_in_business_hours(r, riyadh(2026, 11, 29, 16, 0))); /* closed */
    assert_true(rules_in_business_hours(r, riyadh(2026, 12, 3, 15, 59)));  /* Thursday */
    assert_false(rules_in_business_hours(r, riyadh(2026, 12, 4, 10, 0)));  /* Friday */
    assert_false(rules_in_business_hours(r, riyadh(2026, 12, 5, 10, 0)));  /* Saturday */
    assert_false(rules_in_business_hours(r, riyadh(2026, 12, 1, 10, 0)));  /* holiday */
    assert_true(rules_in_business_hours(r, riyadh(2026, 12, 2, 10, 0)));
    /* Thursday 15:00 + 2h of business time: 1h on Thursday, 1h on Sunday morning. */
    assert_int_equal(rules_add_business_s(r, riyadh(2026, 12, 3, 15, 0), 7200),
                     riyadh(2026, 12, 6, 9, 0));
    /* Monday evening + 2h skips the Tuesday holiday: Wednesday 10:00. */
    assert_int_equal(rules_add_business_s(r, riyadh(2026, 11, 30, 18, 0), 7200),
                     riyadh(2026, 12, 2, 10, 0));
    /* The staff queue counts business time. */
    route_input_t in = input("complaint");
    in.beneficiary = "staff";
    rules_destroy(&r);
    r = parse_with("rules:\n  - {name: s, match: {beneficiary: staff}, queue: staff}\n", err);
    assert_non_null(r);
    in.now = riyadh(2026, 12, 3, 15, 30);
    route_decision_t d;
    rules_decide(r, &in, &d);
    assert_true(d.business_time);
    assert_int_equal(d.first_response_due, riyadh(2026, 12, 6, 9, 30));
    rules_destroy(&r);
}

/* ---- the agent choice ---- */

static select_agent_t agent(const char *id, const char *queue, int level, int64_t idle)
{
    select_agent_t a;
    memset(&a, 0, sizeof a);
    snprintf(a.id, sizeof a.id, "%s", id);
    snprintf(a.skill[0], sizeof a.skill[0], "%s", queue);
    a.level[0] = level;
    a.nskills = 1;
    snprintf(a.lang[0], sizeof a.lang[0], "ar");
    a.nlangs = 1;
    for (int c = 0; c < SELECT_CHANNELS; c++) {
        a.capacity[c] = 2;
    }
    a.idle_since_ms = idle;
    return a;
}

static void test_select_agent(void **state)
{
    (void)state;
    select_agent_t a[5] = {agent("a1", "cases", 5, 100), agent("a2", "cases", 5, 50),
                           agent("a3", "cases", 9, 900), agent("a4", "general", 9, 1),
                           agent("a5", "cases", 9, 10)};
    a[4].absent = "offline";
    select_ticket_t t = {
        .id = 1, .queue = "cases", .channel = select_channel("web"), .language = "ar"};
    bool present;
    json_t *why = json_array();
    /* The best matched (a3, level 9) wins over the longer idle a1/a2; offline a5 never. */
    assert_int_equal(select_agent(a, 5, &t, &present, why), 2);
    assert_true(present);
    assert_int_equal(json_array_size(why), 4); /* a4 is not in the queue: not listed */
    json_decref(why);
    /* Full: the next best, longest idle among equals (a2 idle since 50). */
    a[2].load[t.channel] = 2;
    assert_int_equal(select_agent(a, 5, &t, &present, NULL), 1);
    /* Declined: skipped. */
    const char *declined[] = {"a2"};
    t.declined = declined;
    t.ndeclined = 1;
    assert_int_equal(select_agent(a, 5, &t, &present, NULL), 0);
    /* Language. */
    t.language = "en";
    assert_int_equal(select_agent(a, 5, &t, &present, NULL), -1);
    assert_false(present);
    snprintf(a[0].lang[1], sizeof a[0].lang[1], "en");
    a[0].nlangs = 2;
    assert_int_equal(select_agent(a, 5, &t, &present, NULL), 0);
    /* Required extra skill. */
    t.language = "mixed";
    const char *skills[] = {"hearings"};
    t.skills = skills;
    t.nskills = 1;
    assert_int_equal(select_agent(a, 5, &t, &present, NULL), -1);
    snprintf(a[1].skill[1], sizeof a[1].skill[1], "hearings");
    a[1].level[1] = 3;
    a[1].nskills = 2;
    t.ndeclined = 0;
    assert_int_equal(select_agent(a, 5, &t, &present, NULL), 1);
    /* Capacity per channel: a phone call needs a phone slot. */
    a[1].capacity[select_channel("phone")] = 0;
    t.channel = select_channel("phone");
    assert_int_equal(select_agent(a, 5, &t, &present, NULL), -1);
    assert_true(present); /* present but full: no overflow timer */
    assert_int_equal(select_channel("fax"), -1);
}

/* Mutated rules files never crash the parser (ASan/valgrind watch): each is accepted or
 * refused with "file:line: ...". */
static void test_mutated_files_never_crash(void **state)
{
    (void)state;
    FILE *f = fopen(DEFAULT_RULES, "rb");
    assert_non_null(f);
    static char text[1 << 16];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    static const char noise[] = "[]{}:,-#&*!|>'\"%@` \n\t0aZ\xd8\xa7";
    uint32_t x = 2463534242u;
    for (int round = 0; round < MUTATION_ROUNDS; round++) {
        static char copy[1 << 16];
        memcpy(copy, text, len);
        for (int m = 0; m < 1 + round % 4; m++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            copy[x % len] = noise[(x >> 8) % (sizeof noise - 1)];
        }
        char err[ERR_CAP];
        rules_t *r =
            rules_parse(copy, len - (round % 7 == 0 ? x % len : 0), "m.yaml", err, sizeof err);
        if (r) {
            route_input_t in = input("complaint");
            route_decision_t d;
            rules_decide(r, &in, &d);
            assert_non_null(d.queue);
            rules_destroy(&r);
        } else {
            assert_true(strncmp(err, "m.yaml:", 7) == 0);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_file_parses),
        cmocka_unit_test(test_syntax_error_names_line),
        cmocka_unit_test(test_semantic_errors_name_line),
        cmocka_unit_test(test_every_match_dimension),
        cmocka_unit_test(test_priority_skills_sla),
        cmocka_unit_test(test_business_hours_calendar),
        cmocka_unit_test(test_select_agent),
        cmocka_unit_test(test_mutated_files_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
