/* call_decide — what a telephony event does to its call's ticket, decided without I/O.
 *
 * A call's events arrive in any order and may repeat. calls.c records each one (call_events),
 * folds every event recorded so far into a call_state_t, asks call_decide() what to do, and does
 * it in the same transaction. Keeping the decision pure lets tests/unit/test_intake_calls.c
 * walk every transition. */
#ifndef WASL_INTAKE_CALL_DECIDE_H
#define WASL_INTAKE_CALL_DECIDE_H

#include <stdbool.h>
#include <stddef.h>

/* The events of /v1/calls/events (the generic CTI form is mapped onto them). */
typedef enum {
    CALL_EV_NONE = 0, /* not an event name */
    CALL_EV_STARTED,
    CALL_EV_IVR,
    CALL_EV_NOTE,
    CALL_EV_ANSWERED,
    CALL_EV_ENDED,
    CALL_EV_RINGING, /* the call rings on an agent's phone: the desk's screen pop */
} call_event_t;

/* The event named `name` ("call.started" ...), or CALL_EV_NONE for any other string or NULL. */
call_event_t call_event_parse(const char *name);

/* The wire name of an event ("call.note"), or NULL for CALL_EV_NONE. Static storage. */
const char *call_event_name(call_event_t ev);

/* True when `id` can be an agent's id (agents.id's CHECK: [a-z0-9][a-z0-9._-]{0,63}). A ring
 * names the agent whose desk pops; anything else is refused at the edge. */
bool call_agent_id_valid(const char *id);

/* The generic CTI form has no sequence numbers: its newCall, answer and hangup have fixed
 * places (1, 2, 3). Its ringing has one place per agent, CALL_CTI_SEQ_RING + a hash of the
 * agent's id below 1000000, so that a hunt group ringing three agents pops three desks while a
 * repeated ring of one agent is a duplicate. Its place after the hangup is harmless: a ring
 * changes nothing the fold keeps but the numbers, which every event of a call shares. */
#define CALL_CTI_SEQ_RING 1000
long long call_cti_ring_seq(const char *agent);

/* One recorded event's fields as call_events.data holds them; NULL when absent. Borrowed. */
typedef struct {
    call_event_t event;
    const char *from, *to, *queue, *cause, *menu, *duration_s, *agent;
} call_event_row_t;

/* What the call's events so far say, whatever order they came in. The strings are borrowed
 * from the rows folded in. */
typedef struct {
    const char *from, *to, *queue, *cause, *agent;
    bool answered, ended, report_requested;
    long long duration_s; /* -1: not known */
} call_state_t;

/* An empty call: nothing known. */
void call_state_init(call_state_t *s);

/* Folds one recorded event (in seq order) into `s`: the first caller and callee numbers seen,
 * the last queue, answered on call.answered or call.note (someone took a note: the caller
 * reached a person or the IVR), the end's cause and duration, and report_requested on a
 * call.ivr whose menu is "report". */
void call_state_fold(call_state_t *s, const call_event_row_t *row);

/* A call ended abandoned when its cause says so, or — for the generic CTI form, which has no
 * "abandoned" cause of its own — when it waited in a queue and nobody answered. calls.c marks
 * such an end's row ("abandoned", "abandoned_queue"), and the desk's wallboard counts the marks:
 * this is the rule's one home. */
bool call_abandoned(const call_state_t *s, bool cti);

/* What the event does to the call's ticket. */
typedef enum {
    CALL_DO_NOTHING = 0,     /* recorded; no ticket to make or join */
    CALL_DO_DUPLICATE,       /* the same (call, seq) again: answer as before, change nothing */
    CALL_DO_APPEND_NOTE,     /* a note on a call that has its ticket: a message on that ticket */
    CALL_DO_CREATE_NOTE,     /* a note on a call without a ticket: the ticket, with the note */
    CALL_DO_CREATE_REPORT,   /* the caller chose "leave a report" in the IVR: the ticket */
    CALL_DO_CREATE_CALLBACK, /* abandoned in a queue: a ticket asking to call them back */
} call_action_t;

/* The decision for the event just recorded: `duplicate` when (call, seq) was already recorded,
 * `has_ticket` when the call already has its ticket, `s` the fold of every recorded event
 * including this one, `cti` for the generic CTI form. A ring is recorded and nothing more: it
 * pops the call on the agent's desk (migration 0021's trigger), and a ringing phone is no
 * request and no abandonment. */
call_action_t call_decide(call_event_t ev, bool duplicate, bool has_ticket, bool cti,
                          const call_state_t *s);

/* True when the action makes the call's ticket. */
bool call_action_creates(call_action_t a);

/* The call_kind recorded in a new ticket's history ("note", "ivr_report", "callback"), or
 * NULL for an action that makes no ticket. Static storage. */
const char *call_action_kind(call_action_t a);

/* The ticket text for CALL_DO_CREATE_REPORT and CALL_DO_CREATE_CALLBACK into out (cap bytes,
 * truncated, always terminated); "" for the others (a note's text is the note). Returns out. */
char *call_ticket_text(call_action_t a, const call_state_t *s, char *out, size_t cap);

#endif
