/* select — choosing the agent for a waiting ticket, in memory: eligibility (queue and skills,
 * language, presence, capacity per channel, not declined before), the best matched, then the
 * longest idle; with the reason each other agent was passed over. */
#ifndef WASL_ROUTER_SELECT_H
#define WASL_ROUTER_SELECT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SELECT_CHANNELS    5 /* web, api, email, sms, phone */
#define SELECT_SKILLS_MAX  32
#define SELECT_LANGS_MAX   4
#define SELECT_EXPLAIN_MAX 25 /* agents listed in one explanation */

typedef struct {
    char id[65];
    char skill[SELECT_SKILLS_MAX][64];
    int level[SELECT_SKILLS_MAX];
    size_t nskills;
    char lang[SELECT_LANGS_MAX][8];
    size_t nlangs;
    int capacity[SELECT_CHANNELS];
    int load[SELECT_CHANNELS]; /* assigned tickets and live offers */
    int64_t idle_since_ms;     /* smaller = idle longer */
    /* NULL when the agent can take an offer now; else why not ("offline", "away", "busy",
     * "wrap-up", "held by another router"). */
    const char *absent;
} select_agent_t;

typedef struct {
    int64_t id;
    const char *queue;
    int channel;               /* select_channel() */
    const char *language;      /* "ar" | "en" | "mixed" | NULL */
    const char *const *skills; /* extra skills besides the queue */
    size_t nskills;
    const char *const *declined; /* agents who rejected it or let it expire recently */
    size_t ndeclined;
} select_ticket_t;

/* Index of a channel name, or -1. */
int select_channel(const char *name);

/* Chooses an agent among agents[0..n) for `t`. Returns the index, or -1 when none can take it.
 * *present_eligible is set when at least one present agent qualifies by queue, skills and
 * language (full or declined ones included): without one the overflow timer runs. When
 * `explain` is an array, the candidates and why each was excluded are appended to it (at most
 * SELECT_EXPLAIN_MAX). Pure: the caller adds the load of the offer it makes. */
int select_agent(const select_agent_t *agents, size_t n, const select_ticket_t *t,
                 bool *present_eligible, json_t *explain);

#endif
