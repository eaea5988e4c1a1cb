/* test_router_route — the routing decision for one ticket, without a database (decide.c): the
 * row → the rules' verdict (rule, queue, priority, SLA due times, entity kinds), whether
 * caselookup is asked (and with which verifier: a trusted caller line verifies, a typed phone
 * never does), what its reply means, and the commit statement's input (event, notifications). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../services/router/decide.h"
#include "../../services/router/router.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERR_CAP       512
#define SHIPPED_RULES "deploy/config/routing.yaml"
#define HOUR          3600L
#define DAY           86400L

/* A UTC instant for a Riyadh wall-clock time (UTC+3). */
static time_t riyadh(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return timegm(&tm) - 3 * 3600;
}

static int setup(void **state)
{
    char err[ERR_CAP];
    rules_t *r = rules_load(SHIPPED_RULES, err, sizeof err);
    if (!r) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    rules_t *r = *state;
    rules_destroy(&r);
    return 0;
}

/* A web ticket of `category`, Arabic, public, normal, on a Sunday morning, no contacts. Filled
 * in place: a row's kinds point into the row itself. */
static void row_of(route_row_t *out, const char *category)
{
    route_row_t row = {.work_id = 7,
                       .ticket_id = 42,
                       .ref = "BOG-2026-000042",
                       .channel = "web",
                       .category = category,
                       .priority = "normal",
                       .language = "ar",
                       .beneficiary = "public",
                       .now = riyadh(2026, 11, 29, 10, 0),
                       .from_phone = "",
                       .from_email = "",
                       .case_number = "",
                       .national_id = "",
                       .trusted_phone = ""};
    *out = row;
    route_row_set_kinds(out, "");
}

/* Plans and builds the commit input of a row that was not asked (or whose lookup `rep` is
 * given); the caller json_decref()s the result. */
static json_t *decide(const rules_t *rules, const route_row_t *row, const wasl_msg_t *rep,
                      route_plan_t *plan)
{
    route_plan(rules, row, true, true, plan);
    route_answer_t answer;
    if (plan->auto_answer) {
        route_no_answer(plan, &answer);
    } else {
        route_answer(rep, row->language, &answer);
    }
    json_t *in = route_commit_input(row, plan, &answer);
    assert_non_null(in);
    return in;
}

static const char *str_at(json_t *obj, const char *path1, const char *path2)
{
    json_t *v = json_object_get(obj, path1);
    if (path2) {
        v = json_object_get(v, path2);
    }
    return json_string_value(v);
}

static json_int_t int_at(json_t *obj, const char *path1, const char *path2)
{
    json_t *v = json_object_get(obj, path1);
    if (path2) {
        v = json_object_get(v, path2);
    }
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static void test_rule_queue_and_sla(void **state)
{
    route_row_t row;
    row_of(&row, "eservice_support");
    route_plan_t plan;
    json_t *in = decide(*state, &row, NULL, &plan);
    assert_int_equal(int_at(in, "work_id", NULL), 7);
    assert_int_equal(int_at(in, "ticket_id", NULL), 42);
    assert_string_equal(str_at(in, "queue", NULL), "eservices-support");
    assert_string_equal(str_at(in, "rule", NULL), "eservices");
    assert_string_equal(str_at(in, "priority", NULL), "normal");
    assert_int_equal(int_at(in, "prio_rank", NULL), 2);
    /* default SLA of the queue: 4 h first response, 2 d resolution, wall-clock time */
    assert_int_equal(int_at(in, "fr_due", NULL), row.now + 4 * HOUR);
    assert_int_equal(int_at(in, "res_due", NULL), row.now + 2 * DAY);
    json_t *ev = json_object_get(in, "event");
    assert_int_equal(int_at(ev, "sla_s", "first_response"), 4 * HOUR);
    assert_int_equal(int_at(ev, "sla_s", "resolution"), 2 * DAY);
    assert_true(int_at(ev, "rule_line", NULL) > 0);
    /* the recorded input is what `waslctl route replay` re-decides */
    assert_string_equal(str_at(ev, "input", "category"), "eservice_support");
    assert_string_equal(str_at(ev, "input", "channel"), "web");
    assert_string_equal(str_at(ev, "input", "beneficiary"), "public");
    assert_int_equal(int_at(ev, "input", "now"), row.now);
    assert_false(json_is_true(json_object_get(in, "answered")));
    assert_int_equal(json_array_size(json_object_get(in, "notes")), 0); /* no contact: no ack */
    json_decref(in);
}

static void test_triage_and_unknown_category(void **state)
{
    route_row_t row;
    row_of(&row, "triage");
    route_plan_t plan;
    json_t *in = decide(*state, &row, NULL, &plan);
    assert_string_equal(str_at(in, "queue", NULL), "triage");
    assert_string_equal(str_at(in, "rule", NULL), "triage");
    assert_int_equal(int_at(in, "fr_due", NULL), row.now + 1 * HOUR);
    json_decref(in);
    /* a category no rule names falls to the default queue */
    row_of(&row, "something_new");
    in = decide(*state, &row, NULL, &plan);
    assert_string_equal(str_at(in, "queue", NULL), "general");
    assert_string_equal(str_at(in, "rule", NULL), "default");
    json_decref(in);
}

static void test_priority_changes_sla_and_rank(void **state)
{
    route_row_t row;
    row_of(&row, "case_inquiry");
    row.priority = "urgent";
    route_plan_t plan;
    json_t *in = decide(*state, &row, NULL, &plan);
    assert_string_equal(str_at(in, "queue", NULL), "case-status");
    assert_int_equal(int_at(in, "prio_rank", NULL), 0);
    assert_int_equal(int_at(in, "fr_due", NULL), row.now + 15 * 60);
    assert_int_equal(int_at(in, "res_due", NULL), row.now + 4 * HOUR);
    json_decref(in);
    /* a hearing at risk after hours: the rule raises the priority, the event says from what */
    row_of(&row, "judicial_support");
    row.now = riyadh(2026, 11, 29, 20, 0);
    in = decide(*state, &row, NULL, &plan);
    assert_string_equal(str_at(in, "rule", NULL), "judicial-after-hours");
    assert_string_equal(str_at(in, "priority", NULL), "high");
    assert_int_equal(int_at(in, "prio_rank", NULL), 1);
    assert_string_equal(str_at(in, "event", "priority_from"), "normal");
    assert_false(json_is_true(json_object_get(json_object_get(in, "event"), "business_hours")));
    assert_int_equal(int_at(in, "fr_due", NULL), row.now + 30 * 60);
    json_decref(in);
}

static void test_entity_kinds_choose_the_rule(void **state)
{
    route_row_t row;
    row_of(&row, "case_inquiry");
    route_row_set_kinds(&row, "national_id,case_number");
    route_plan_t plan;
    json_t *in = decide(*state, &row, NULL, &plan);
    assert_string_equal(str_at(in, "rule", NULL), "case-status-auto");
    json_t *kinds =
        json_object_get(json_object_get(json_object_get(in, "event"), "input"), "entities");
    assert_int_equal(json_array_size(kinds), 2);
    assert_string_equal(json_string_value(json_array_get(kinds, 1)), "case_number");
    json_decref(in);
    /* without the kind, the plain rule */
    route_row_set_kinds(&row, "national_id");
    in = decide(*state, &row, NULL, &plan);
    assert_string_equal(str_at(in, "rule", NULL), "case-status");
    json_decref(in);
    /* at most ROUTE_KINDS_MAX kinds are kept */
    route_row_set_kinds(&row, "a,b,c,d,e,f,g,h,i,j");
    assert_int_equal(row.nkinds, ROUTE_KINDS_MAX);
    assert_string_equal(row.kinds[ROUTE_KINDS_MAX - 1], "h");
}

/* A case inquiry with a case number, as the auto-answer rule wants it. */
static void inquiry(route_row_t *row)
{
    row_of(row, "case_inquiry");
    route_row_set_kinds(row, "case_number");
    row->case_number = "1447/5/123";
}

static void test_auto_answer_who_is_asked(void **state)
{
    const rules_t *rules = *state;
    route_plan_t plan;
    route_row_t row;
    row_of(&row, "general_inquiry");
    route_plan(rules, &row, true, true, &plan);
    assert_string_equal(plan.auto_answer, "not asked");

    inquiry(&row);
    row.national_id = "1234567890";
    route_plan(rules, &row, false, true, &plan);
    assert_string_equal(plan.auto_answer, "off (WASL_ROUTER_AUTO_ANSWER)");
    route_plan(rules, &row, true, false, &plan);
    assert_string_equal(plan.auto_answer, "not answered: caselookup unavailable");
    assert_true(plan.unavailable);
    route_plan(rules, &row, true, true, &plan);
    assert_null(plan.auto_answer); /* ask */
    assert_false(plan.unavailable);

    row.case_number = "";
    route_plan(rules, &row, true, true, &plan);
    assert_string_equal(plan.auto_answer, "not answered: no case number");
}

static void test_typed_phone_never_verifies(void **state)
{
    route_plan_t plan;
    route_row_t row;
    inquiry(&row);
    row.channel = "phone";
    row.from_phone = "+966500000001"; /* typed, or a caller ID nobody vouched for */
    route_plan(*state, &row, true, true, &plan);
    assert_string_equal(plan.auto_answer,
                        "not answered: no national ID or trusted caller line to verify");
    /* a caller line from a telephony client trusted for caller ID verifies, and it is the one
     * sent, whatever number the ticket carries besides */
    row.trusted_phone = "+966500000001";
    row.from_phone = "+966500000009";
    route_plan(*state, &row, true, true, &plan);
    assert_null(plan.auto_answer);
    wasl_msg_t *req = route_lookup_request(&row);
    assert_non_null(req);
    const wasl_msg_case_lookup_request_t *q = &req->u.case_lookup_request;
    assert_string_equal(q->verifier_kind, "caller_phone");
    assert_string_equal(q->verifier, "+966500000001");
    assert_string_equal(q->case_number, "1447/5/123");
    assert_string_equal(q->ticket, "BOG-2026-000042");
    assert_true(q->contact);
    assert_null(q->caller); /* the router never claims a caller line */
    wasl_msg_destroy(&req);
    /* a national ID comes first */
    row.national_id = "1234567890";
    req = route_lookup_request(&row);
    assert_string_equal(req->u.case_lookup_request.verifier_kind, "national_id");
    assert_string_equal(req->u.case_lookup_request.verifier, "1234567890");
    wasl_msg_destroy(&req);
}

static void test_file_switch_off(void **state)
{
    (void)state;
    static const char yaml[] = "version: 1\n"
                               "auto_answer: false\n"
                               "default_queue: general\n"
                               "escalation: {supervisor_queue: general, alert_email: s@x.org,"
                               " overflow_queue: general}\n"
                               "queues:\n"
                               "  general: {sla: {default: {first_response: 1h, resolution: 1d}}}\n"
                               "rules:\n"
                               "  - {name: auto, match: {category: case_inquiry}, queue: general,"
                               " auto_answer: true}\n";
    char err[ERR_CAP];
    rules_t *rules = rules_parse(yaml, sizeof yaml - 1, "off.yaml", err, sizeof err);
    assert_non_null(rules);
    route_row_t row;
    inquiry(&row);
    row.national_id = "1234567890";
    route_plan_t plan;
    route_plan(rules, &row, true, true, &plan);
    assert_string_equal(plan.auto_answer, "off (auto_answer: false in the rules file)");
    rules_destroy(&rules);
}

/* A case.lookup reply; NULL fields stay absent. */
static wasl_msg_t *reply(const char *outcome, const char *phone, const char *email)
{
    wasl_msg_t *m = wasl_msg_new(WASL_MSG_CASE_LOOKUP_REPLY);
    assert_non_null(m);
    wasl_msg_case_lookup_reply_t *a = &m->u.case_lookup_reply;
    a->request_id = strdup("router-1");
    a->outcome = strdup(outcome);
    a->speech_ar = strdup("قضيتك في مرحلة المرافعة");
    a->speech_en = strdup("Your case is in pleading");
    a->contact_phone = phone ? strdup(phone) : NULL;
    a->contact_email = email ? strdup(email) : NULL;
    return m;
}

static void test_reply_outcomes(void **state)
{
    (void)state;
    route_answer_t ans;
    route_answer(NULL, "ar", &ans);
    assert_string_equal(ans.why, "not answered: caselookup did not answer");
    assert_string_equal(ans.text, "");
    wasl_msg_t *rep = reply("locked", "+966511111111", NULL);
    route_answer(rep, "ar", &ans);
    assert_string_equal(ans.why, "not answered: the beneficiary is locked out of lookups");
    assert_null(ans.to);
    wasl_msg_destroy(&rep);
    rep = reply("not_found", "+966511111111", NULL);
    route_answer(rep, "ar", &ans);
    assert_string_equal(ans.why, "not answered: not verified as a party of this case");
    assert_string_equal(ans.text, "");
    wasl_msg_destroy(&rep);
    rep = reply("found", NULL, NULL);
    route_answer(rep, "ar", &ans);
    assert_string_equal(ans.why, "not answered: the party has no contact on file");
    assert_string_equal(ans.text, "");
    wasl_msg_destroy(&rep);
    rep = reply("found", NULL, "party@example.org");
    route_answer(rep, "en", &ans);
    assert_string_equal(ans.why, "answered to the party's contact on file");
    assert_string_equal(ans.text, "Your case is in pleading");
    assert_string_equal(ans.via, "email");
    assert_string_equal(ans.to, "party@example.org");
    wasl_msg_destroy(&rep);
}

/* Found: the answer goes to the contact on file, never to the phone typed on the ticket; the
 * submitter still gets the same acknowledgement; the agent's event masks the recipient. */
static void test_answer_goes_to_the_contact_on_file(void **state)
{
    route_row_t row;
    inquiry(&row);
    row.national_id = "1234567890";
    row.from_phone = "+966500000009";
    wasl_msg_t *rep = reply("found", "+966511111111", "party@example.org");
    route_plan_t plan;
    json_t *in = decide(*state, &row, rep, &plan);
    assert_true(json_is_true(json_object_get(in, "answered")));
    json_t *notes = json_object_get(in, "notes");
    assert_int_equal(json_array_size(notes), 2);
    json_t *answer = json_array_get(notes, 0), *ack = json_array_get(notes, 1);
    assert_string_equal(str_at(answer, "kind", NULL), "case_answer");
    assert_string_equal(str_at(answer, "channel", NULL), "sms");
    assert_string_equal(str_at(answer, "recipient", NULL), "+966511111111");
    assert_string_equal(str_at(answer, "params", "answer"), "قضيتك في مرحلة المرافعة");
    assert_string_equal(str_at(ack, "kind", NULL), "ack");
    assert_string_equal(str_at(ack, "recipient", NULL), "+966500000009");
    assert_string_equal(str_at(ack, "params", "ref"), "BOG-2026-000042");
    json_t *ev = json_object_get(in, "event");
    assert_string_equal(str_at(ev, "auto_answer", NULL), "answered to the party's contact on file");
    const char *masked = str_at(ev, "auto_answer_detail", "recipient");
    assert_non_null(masked);
    assert_null(strstr(masked, "511111111")); /* the agent sees a masked number */
    json_decref(in);
    wasl_msg_destroy(&rep);
}

static void test_acknowledgement(void **state)
{
    route_plan_t plan;
    route_row_t row;
    row_of(&row, "complaint");
    row.from_email = "someone@example.org";
    json_t *in = decide(*state, &row, NULL, &plan);
    json_t *ack = json_array_get(json_object_get(in, "notes"), 0);
    assert_string_equal(str_at(ack, "channel", NULL), "email");
    assert_string_equal(str_at(ack, "recipient", NULL), "someone@example.org");
    assert_string_equal(str_at(ack, "lang", NULL), "ar");
    assert_string_equal(str_at(ack, "params", "category_label"),
                        router_category_label("complaint", "ar"));
    json_decref(in);
    /* a phone wins over the e-mail; English for an English ticket */
    row.from_phone = "+966500000001";
    row.language = "en";
    in = decide(*state, &row, NULL, &plan);
    ack = json_array_get(json_object_get(in, "notes"), 0);
    assert_string_equal(str_at(ack, "channel", NULL), "sms");
    assert_string_equal(str_at(ack, "lang", NULL), "en");
    json_decref(in);
    /* nothing for an auto-submitted contact (an autoresponder would answer the answer) */
    row.auto_submitted = true;
    in = decide(*state, &row, NULL, &plan);
    assert_int_equal(json_array_size(json_object_get(in, "notes")), 0);
    json_decref(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_queue_and_sla),
        cmocka_unit_test(test_triage_and_unknown_category),
        cmocka_unit_test(test_priority_changes_sla_and_rank),
        cmocka_unit_test(test_entity_kinds_choose_the_rule),
        cmocka_unit_test(test_auto_answer_who_is_asked),
        cmocka_unit_test(test_typed_phone_never_verifies),
        cmocka_unit_test(test_file_switch_off),
        cmocka_unit_test(test_reply_outcomes),
        cmocka_unit_test(test_answer_goes_to_the_contact_on_file),
        cmocka_unit_test(test_acknowledgement),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
