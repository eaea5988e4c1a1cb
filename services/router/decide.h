/* decide — the routing decision for one ticket, apart from the database and the bus: the row as
 * fetched → a plan (the rules' verdict, and whether caselookup is to be asked for an automatic
 * answer) → what caselookup's reply means → the commit statement's input (queue, priority, SLA,
 * the `routed` event with its input, the notifications). Pure: no I/O, no clock, no metrics, so
 * tests/unit/test_router_route.c drives it with rows made by hand. route.c reads the rows and
 * commits the result. */
#ifndef WASL_ROUTER_DECIDE_H
#define WASL_ROUTER_DECIDE_H

#include "rules.h"
#include "wasl_proto.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define ROUTE_KINDS_MAX  8    /* entity kinds a decision looks at */
#define ROUTE_ANSWER_MAX 1024 /* the longest automatic answer sent */

/* One ticket as fetched for routing. Strings are borrowed (from the PGresult in the router) and
 * never NULL: "" when the ticket has none. Not to be copied once its kinds are set: they point
 * into the row's own kinds_buf. */
typedef struct {
    int64_t work_id, ticket_id;
    const char *ref, *channel, *category, *priority, *language, *beneficiary;
    char kinds_buf[256];
    const char *kinds[ROUTE_KINDS_MAX]; /* point into kinds_buf: set by route_row_set_kinds */
    size_t nkinds;
    time_t now; /* the decision's instant (wasl_now() in PostgreSQL) */
    bool auto_submitted;
    /* Typed by the submitter: where the acknowledgement goes; they prove nothing. */
    const char *from_phone, *from_email;
    const char *case_number, *national_id;
    /* A caller line the network gave a telephony client trusted for caller ID, or "": the only
     * phone that may verify a party. */
    const char *trusted_phone;
} route_row_t;

/* Sets the row's entity kinds from "a,b,c" (copied; at most ROUTE_KINDS_MAX, the rest dropped). */
void route_row_set_kinds(route_row_t *row, const char *csv);

/* The rules' verdict for a row and what auto-answer will do. */
typedef struct {
    route_decision_t d;
    /* Why caselookup will not be asked (recorded in the `routed` event); NULL: ask it. */
    const char *auto_answer;
    bool unavailable; /* not asked because caselookup is down: an answer declined */
} route_plan_t;

/* Decides `row` by `rules`. `auto_answer_on` is WASL_ROUTER_AUTO_ANSWER; `caselookup_up` says
 * whether a lookup may be sent now. Caselookup is asked only for a rule that asks it, a file
 * and a router that allow it, a case number and a verifier: the national ID, or else the
 * trusted caller line (never the typed phone). Always fills `out`. */
void route_plan(const rules_t *rules, const route_row_t *row, bool auto_answer_on,
                bool caselookup_up, route_plan_t *out);

/* The case.lookup request for a planned row (national ID, or else the trusted caller line),
 * naming the ticket and asking for the party's contact on file. A new message the caller owns;
 * NULL when out of memory. */
wasl_msg_t *route_lookup_request(const route_row_t *row);

/* What came of an automatic answer. */
typedef struct {
    const char *why;             /* recorded as the `routed` event's auto_answer */
    char text[ROUTE_ANSWER_MAX]; /* the answer sent; "" when none */
    const char *to, *via;        /* the party's contact on file and "sms"/"email"; NULL if none */
} route_answer_t;

/* The answer for an asked row from caselookup's reply (`rep`, borrowed; NULL when it did not
 * answer), in the ticket's language ("en", else Arabic). `to` borrows from `rep`. Only a
 * `found` reply with a contact on file answers, and only there: never the contact typed. */
void route_answer(const wasl_msg_t *rep, const char *lang, route_answer_t *out);

/* The answer of a row that was not asked: plan->auto_answer as the reason, nothing sent. */
void route_no_answer(const route_plan_t *plan, route_answer_t *out);

/* The commit statement's input object for the row (a new reference; NULL when out of memory):
 * work_id, ticket_id, queue, priority, prio_rank, skills, rule, fr_due, res_due, the `routed`
 * event (with the input that `waslctl route replay` re-decides), the notifications (the party's
 * case_answer when answered, the submitter's ack unless auto-submitted or without a contact)
 * and `answered`. */
json_t *route_commit_input(const route_row_t *row, const route_plan_t *plan,
                           const route_answer_t *answer);

#endif
