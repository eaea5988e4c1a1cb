/* rules — the routing rules file: YAML parsed with libyaml, validated with file:line errors; the
 * routing decision (queue, priority, skills, SLA, auto-answer) and the business-hours calendar. */
#ifndef WASL_ROUTER_RULES_H
#define WASL_ROUTER_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define RULES_LIST_MAX   32 /* values in one match list or skill list */
#define RULES_NAME_MAX   64 /* bytes in a rule, queue or skill name */
#define RULES_PRIORITIES 4  /* urgent, high, normal, low */

typedef struct rules rules_t;

/* What a decision looks at. Strings are borrowed; `entities` lists the entity kinds present
 * (e.g. "case_number"). `now` is the decision's instant (UTC seconds). */
typedef struct {
    const char *category;
    const char *priority;
    const char *channel;
    const char *language;
    const char *beneficiary; /* "public" | "staff" */
    const char *const *entities;
    size_t nentities;
    time_t now;
} route_input_t;

/* A decision. Strings are borrowed from the rules and live as long as they do. */
typedef struct {
    const char *rule; /* the rule that matched, or "default" */
    int rule_line;    /* its line in the file (0 for the default) */
    const char *queue;
    const char *priority; /* after the rule's priority change */
    int prio_rank;        /* 0 urgent … 3 low */
    const char *skills[RULES_LIST_MAX];
    size_t nskills;
    long first_response_s, resolution_s; /* targets */
    time_t first_response_due, resolution_due;
    bool business_time; /* the SLA clock counts business hours only */
    bool in_business_hours;
    bool auto_answer_asked; /* the matching rule asks for an automatic answer */
    bool auto_answer;       /* ... and the file allows it */
} route_decision_t;

/* Parses `len` bytes of YAML named `name` (for messages). NULL on any error, with
 * "name:line: what" in err. The caller owns the result. */
rules_t *rules_parse(const char *text, size_t len, const char *name, char *err, size_t cap);
/* Reads and parses a file; same contract. */
rules_t *rules_load(const char *path, char *err, size_t cap);
void rules_destroy(rules_t **self_p);

/* Decides for one ticket: the first matching rule, else the default queue. Always succeeds. */
void rules_decide(const rules_t *self, const route_input_t *in, route_decision_t *out);

/* The calendar: true when `t` falls in business hours (working day, not a holiday, between
 * open and close in the file's UTC offset). */
bool rules_in_business_hours(const rules_t *self, time_t t);
/* `seconds` of business time after `start` (start itself may be outside hours). */
time_t rules_add_business_s(const rules_t *self, time_t start, long seconds);

/* Priority name ↔ rank (0 urgent … 3 low); -1 / NULL when unknown. */
int rules_priority_rank(const char *priority);
const char *rules_priority_name(int rank);

/* Settings of the file. */
long rules_offer_timeout_s(const rules_t *self);
long rules_overflow_after_s(const rules_t *self);
const char *rules_overflow_queue(const rules_t *self);
const char *rules_supervisor_queue(const rules_t *self);
const char *rules_alert_email(const rules_t *self);
bool rules_auto_answer(const rules_t *self);
/* Skills a queue requires (NULL-free list of n); 0 when the queue is unknown. */
size_t rules_queue_skills(const rules_t *self, const char *queue, const char **out, size_t cap);
/* SLA targets of a queue for a priority; -1 when the queue is unknown. */
int rules_queue_sla(const rules_t *self, const char *queue, int prio_rank, long *first_response_s,
                    long *resolution_s, bool *business_time);
bool rules_has_queue(const rules_t *self, const char *queue);

#endif
