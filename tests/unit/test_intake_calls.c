/* test_intake_calls — the call decision: every event against every kind of call, the fold of a
 * call's events (in any order) and the ticket texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../services/intake/call_decide.h"

#include <string.h>

static const call_event_t all_events[] = {CALL_EV_STARTED,  CALL_EV_IVR,   CALL_EV_NOTE,
                                          CALL_EV_ANSWERED, CALL_EV_ENDED, CALL_EV_RINGING};
#define NEVENTS (sizeof all_events / sizeof all_events[0])

/* The state after folding rows in order. */
static call_state_t fold(const call_event_row_t *rows, size_t n)
{
    call_state_t s;
    call_state_init(&s);
    for (size_t i = 0; i < n; i++)
        call_state_fold(&s, &rows[i]);
    return s;
}

static void test_event_names(void **state)
{
    (void)state;
    for (size_t i = 0; i < NEVENTS; i++) {
        const char *name = call_event_name(all_events[i]);
        assert_non_null(name);
        assert_int_equal(call_event_parse(name), all_events[i]);
    }
    assert_string_equal(call_event_name(CALL_EV_NOTE), "call.note");
    assert_string_equal(call_event_name(CALL_EV_RINGING), "call.ringing");
    assert_int_equal(call_event_parse("call.ringing"), CALL_EV_RINGING);
    assert_int_equal(call_event_parse("ringing"), CALL_EV_NONE); /* the CTI form's name */
    assert_null(call_event_name(CALL_EV_NONE));
    assert_null(call_event_name((call_event_t)99));
    assert_int_equal(call_event_parse(NULL), CALL_EV_NONE);
    assert_int_equal(call_event_parse(""), CALL_EV_NONE);
    assert_int_equal(call_event_parse("call.Note"), CALL_EV_NONE);
    assert_int_equal(call_event_parse("call.note "), CALL_EV_NONE);
    assert_int_equal(call_event_parse("newCall"), CALL_EV_NONE);
}

static void test_fold(void **state)
{
    (void)state;
    call_state_t s = fold(NULL, 0);
    assert_null(s.from);
    assert_false(s.answered || s.ended || s.report_requested);
    assert_true(s.duration_s == -1);

    const call_event_row_t rows[] = {
        {.event = CALL_EV_STARTED, .from = "0551234567", .to = "1900", .queue = "general"},
        {.event = CALL_EV_IVR, .from = "0550000000", .menu = "queue:cases", .queue = "cases"},
        {.event = CALL_EV_ANSWERED, .agent = "agent-7", .to = "2000"},
        {.event = CALL_EV_ENDED, .cause = "normal", .duration_s = "93"},
    };
    s = fold(rows, 4);
    assert_string_equal(s.from, "0551234567"); /* the first number seen */
    assert_string_equal(s.to, "1900");
    assert_string_equal(s.queue, "cases"); /* the last queue */
    assert_true(s.answered && s.ended);
    assert_string_equal(s.agent, "agent-7");
    assert_string_equal(s.cause, "normal");
    assert_true(s.duration_s == 93);
    assert_false(s.report_requested);

    /* A note means someone took the call; only the IVR's "report" menu asks for a report. */
    const call_event_row_t more[] = {{.event = CALL_EV_NOTE},
                                     {.event = CALL_EV_IVR, .menu = "reports"},
                                     {.event = CALL_EV_IVR, .menu = NULL}};
    s = fold(more, 3);
    assert_true(s.answered);
    assert_false(s.report_requested);
    const call_event_row_t report[] = {{.event = CALL_EV_IVR, .menu = "report"},
                                       {.event = CALL_EV_NONE, .menu = "report"}};
    s = fold(report, 1);
    assert_true(s.report_requested);
    s = fold(report + 1, 1); /* an unknown event in the record counts for nothing but numbers */
    assert_false(s.report_requested);
    /* An end without a duration leaves it unknown. */
    const call_event_row_t end[] = {{.event = CALL_EV_ENDED, .cause = "abandoned"}};
    s = fold(end, 1);
    assert_true(s.duration_s == -1);
}

static void test_abandoned(void **state)
{
    (void)state;
    call_state_t s;
    call_state_init(&s);
    s.cause = "abandoned";
    assert_false(call_abandoned(&s, false)); /* not ended yet */
    s.ended = true;
    assert_true(call_abandoned(&s, false));
    assert_true(call_abandoned(&s, true));
    /* Another cause: only the CTI form infers abandonment, from an unanswered queue. */
    s.cause = "normal";
    s.queue = "cases";
    assert_false(call_abandoned(&s, false));
    assert_true(call_abandoned(&s, true));
    s.answered = true;
    assert_false(call_abandoned(&s, true));
    s.answered = false;
    s.queue = "";
    assert_false(call_abandoned(&s, true));
    s.queue = NULL;
    s.cause = NULL;
    assert_false(call_abandoned(&s, true));
}

/* The three kinds of call state that matter to the decision, and one that does not. */
typedef enum { PLAIN, REPORT, ABANDONED, REPORT_AND_ABANDONED, NSTATES } shape_t;

static call_state_t shaped(shape_t shape)
{
    call_state_t s;
    call_state_init(&s);
    if (shape == REPORT || shape == REPORT_AND_ABANDONED)
        s.report_requested = true;
    if (shape == ABANDONED || shape == REPORT_AND_ABANDONED) {
        s.ended = true;
        s.cause = "abandoned";
    }
    return s;
}

/* The expected decision, written out as a table rather than recomputed. */
static call_action_t expected(call_event_t ev, bool duplicate, bool has_ticket, shape_t shape)
{
    if (duplicate)
        return CALL_DO_DUPLICATE;
    if (ev == CALL_EV_NOTE)
        return has_ticket ? CALL_DO_APPEND_NOTE : CALL_DO_CREATE_NOTE;
    if (has_ticket || ev == CALL_EV_RINGING)
        return CALL_DO_NOTHING; /* a ring is only recorded (and pops the desk) */
    static const call_action_t ivr[NSTATES] = {CALL_DO_NOTHING, CALL_DO_CREATE_REPORT,
                                               CALL_DO_CREATE_CALLBACK, CALL_DO_CREATE_REPORT};
    static const call_action_t other[NSTATES] = {CALL_DO_NOTHING, CALL_DO_NOTHING,
                                                 CALL_DO_CREATE_CALLBACK, CALL_DO_CREATE_CALLBACK};
    return ev == CALL_EV_IVR ? ivr[shape] : other[shape];
}

static void test_every_transition(void **state)
{
    (void)state;
    size_t checked = 0;
    for (size_t e = 0; e < NEVENTS; e++)
        for (int dup = 0; dup < 2; dup++)
            for (int ticket = 0; ticket < 2; ticket++)
                for (int shape = 0; shape < NSTATES; shape++)
                    for (int cti = 0; cti < 2; cti++) {
                        call_state_t s = shaped((shape_t)shape);
                        call_action_t got = call_decide(all_events[e], dup, ticket, cti, &s);
                        call_action_t want = expected(all_events[e], dup, ticket, (shape_t)shape);
                        if (got != want)
                            fail_msg("%s dup=%d ticket=%d shape=%d cti=%d: got %d, want %d",
                                     call_event_name(all_events[e]), dup, ticket, shape, cti, got,
                                     want);
                        checked++;
                    }
    assert_int_equal(checked, NEVENTS * 2 * 2 * NSTATES * 2);
}

static void test_cti_hangup_in_queue_asks_for_a_callback(void **state)
{
    (void)state;
    /* newCall in a queue, hangup with no answer: the CTI form's abandoned call. */
    const call_event_row_t rows[] = {
        {.event = CALL_EV_STARTED, .from = "+966551234567", .queue = "cases"},
        {.event = CALL_EV_ENDED, .cause = "normal"},
    };
    call_state_t s = fold(rows, 2);
    assert_int_equal(call_decide(CALL_EV_ENDED, false, false, true, &s), CALL_DO_CREATE_CALLBACK);
    assert_int_equal(call_decide(CALL_EV_ENDED, false, false, false, &s), CALL_DO_NOTHING);
    /* The same hangup arriving before newCall (out of order) decides the same once folded. */
    const call_event_row_t late[] = {rows[1], rows[0]};
    s = fold(late, 2);
    assert_int_equal(call_decide(CALL_EV_STARTED, false, false, true, &s), CALL_DO_CREATE_CALLBACK);
    /* Answered in between: nobody to call back. */
    const call_event_row_t answered[] = {rows[0], {.event = CALL_EV_ANSWERED}, rows[1]};
    s = fold(answered, 3);
    assert_int_equal(call_decide(CALL_EV_ENDED, false, false, true, &s), CALL_DO_NOTHING);
}

/* A ring is recorded and nothing more, whatever the call says, in any order: it neither
 * answers the call nor cancels an abandonment, and it makes no ticket. */
static void test_ringing(void **state)
{
    (void)state;
    const call_event_row_t rows[] = {
        {.event = CALL_EV_STARTED, .from = "+966551234567", .queue = "cases"},
        {.event = CALL_EV_RINGING, .agent = "hala", .from = "+966500000000", .queue = "desk"},
        {.event = CALL_EV_ENDED, .cause = "normal"},
    };
    call_state_t s = fold(rows, 2);
    assert_false(s.answered || s.ended || s.report_requested);
    assert_null(s.agent);                         /* rung is not answered */
    assert_string_equal(s.from, "+966551234567"); /* the first number still */
    assert_string_equal(s.queue, "desk");         /* the last queue, as for any event */
    for (int cti = 0; cti < 2; cti++) {
        assert_int_equal(call_decide(CALL_EV_RINGING, false, false, cti, &s), CALL_DO_NOTHING);
        assert_int_equal(call_decide(CALL_EV_RINGING, false, true, cti, &s), CALL_DO_NOTHING);
        assert_int_equal(call_decide(CALL_EV_RINGING, true, false, cti, &s), CALL_DO_DUPLICATE);
    }
    /* Rung, never answered, hung up in the queue: the CTI form's callback still comes. */
    s = fold(rows, 3);
    assert_int_equal(call_decide(CALL_EV_ENDED, false, false, true, &s), CALL_DO_CREATE_CALLBACK);
    /* The ring arriving last, after the end: recorded, no second decision. */
    const call_event_row_t late[] = {rows[0], rows[2], rows[1]};
    s = fold(late, 3);
    assert_int_equal(call_decide(CALL_EV_RINGING, false, false, true, &s), CALL_DO_NOTHING);
}

static void test_agent_ids_and_cti_ring_places(void **state)
{
    (void)state;
    static const char *const good[] = {"hala", "agent-7", "a", "0", "sara.k_2"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(call_agent_id_valid(good[i]));
    char longest[65], too_long[66];
    memset(longest, 'a', 64);
    longest[64] = '\0';
    memset(too_long, 'a', 65);
    too_long[65] = '\0';
    assert_true(call_agent_id_valid(longest));
    const char *const bad[] = {NULL,     "",     "Hala",   "-hala",    ".x",    "ha la",
                               "hala/1", "هالة", "hala\n", "' OR 1=1", too_long};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (call_agent_id_valid(bad[i]))
            fail_msg("accepted %s", bad[i] ? bad[i] : "NULL");
    /* One place per agent, stable, after the fixed places 1..3 and within the column. */
    long long h = call_cti_ring_seq("hala"), a = call_cti_ring_seq("amal");
    assert_true(h == call_cti_ring_seq("hala"));
    assert_true(h != a);
    assert_true(h >= CALL_CTI_SEQ_RING && h < CALL_CTI_SEQ_RING + 1000000);
    assert_true(call_cti_ring_seq(NULL) == call_cti_ring_seq(""));
    assert_true(call_cti_ring_seq("") == CALL_CTI_SEQ_RING + 2166136261LL % 1000000);
}

static void test_actions(void **state)
{
    (void)state;
    assert_string_equal(call_action_kind(CALL_DO_CREATE_NOTE), "note");
    assert_string_equal(call_action_kind(CALL_DO_CREATE_REPORT), "ivr_report");
    assert_string_equal(call_action_kind(CALL_DO_CREATE_CALLBACK), "callback");
    static const call_action_t none[] = {CALL_DO_NOTHING, CALL_DO_DUPLICATE, CALL_DO_APPEND_NOTE};
    for (size_t i = 0; i < 3; i++) {
        assert_null(call_action_kind(none[i]));
        assert_false(call_action_creates(none[i]));
    }
    assert_true(call_action_creates(CALL_DO_CREATE_NOTE));
    assert_true(call_action_creates(CALL_DO_CREATE_REPORT));
    assert_true(call_action_creates(CALL_DO_CREATE_CALLBACK));
}

static void test_ticket_texts(void **state)
{
    (void)state;
    char out[512];
    call_state_t s;
    call_state_init(&s);
    assert_string_equal(call_ticket_text(CALL_DO_CREATE_REPORT, &s, out, sizeof out),
                        "[IVR] The caller chose to leave a report (menu report).");
    assert_string_equal(call_ticket_text(CALL_DO_CREATE_CALLBACK, &s, out, sizeof out),
                        "[Callback] The caller hung up while waiting in queue -; call them back.");
    s.queue = "cases";
    s.duration_s = 42;
    assert_string_equal(
        call_ticket_text(CALL_DO_CREATE_CALLBACK, &s, out, sizeof out),
        "[Callback] The caller hung up while waiting in queue cases after 42 s; call them back.");
    s.duration_s = 0; /* hung up at once: still a known duration */
    assert_non_null(
        strstr(call_ticket_text(CALL_DO_CREATE_CALLBACK, &s, out, sizeof out), "after 0 s"));
    assert_string_equal(call_ticket_text(CALL_DO_CREATE_NOTE, &s, out, sizeof out), "");
    assert_string_equal(call_ticket_text(CALL_DO_NOTHING, &s, out, sizeof out), "");
    char small[8];
    assert_string_equal(call_ticket_text(CALL_DO_CREATE_REPORT, &s, small, sizeof small),
                        "[IVR] T");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_names),
        cmocka_unit_test(test_fold),
        cmocka_unit_test(test_abandoned),
        cmocka_unit_test(test_every_transition),
        cmocka_unit_test(test_cti_hangup_in_queue_asks_for_a_callback),
        cmocka_unit_test(test_ringing),
        cmocka_unit_test(test_agent_ids_and_cti_ring_places),
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_ticket_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
