/* offer — the offer round's choices, apart from the database: an agent as read (skills with
 * levels, languages, capacity and load per channel, why absent), what someone can take now
 * ("queue/channel" pairs), and for each waiting ticket, in the order PostgreSQL gives them, the
 * agent select_agent() chooses, with the offer and its explanation. Pure: no I/O, no clock;
 * tests/unit/test_router_dispatch.c drives it with rows made by hand. dispatch.c reads the rows
 * and writes the offers. */
#ifndef WASL_ROUTER_OFFER_H
#define WASL_ROUTER_OFFER_H

#include "select.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* One agent as read, text as PostgreSQL gives it; borrowed, never NULL. */
typedef struct {
    const char *id;
    const char *skills;        /* JSON object: skill → level, e.g. {"general": 3} */
    const char *languages;     /* "ar,en" */
    const char *capacity;      /* JSON object: channel → most tickets at once */
    const char *idle_since_ms; /* decimal; smaller = idle longer */
    const char *absent;        /* "" when available now; else "offline", "away", "busy", … */
    const char *load;          /* JSON object: channel → assigned tickets and live offers */
} offer_agent_row_t;

/* Fills `a` from the row (copied). An absent reason other than offline, away or busy reads as
 * "wrap-up" (the only other one agents_sql gives). */
void offer_read_agent(select_agent_t *a, const offer_agent_row_t *row);

/* The "queue/channel" pairs someone present can take now, each once: every queue an available
 * agent has as a skill, on every channel where they have room. A text[] literal the caller
 * frees ("{}" when none), or NULL when out of memory. */
char *offer_servable(const select_agent_t *agents, size_t n);

/* One waiting ticket as read; borrowed. NULL where PostgreSQL gave NULL (language, dues). */
typedef struct {
    int64_t id;
    const char *queue, *channel;
    const char *language;
    const char *skills;   /* required besides the queue, "a,b" */
    const char *declined; /* agents who rejected it or let it expire lately, "a,b" */
    const char *priority, *first_response_due, *waiting_since;
} offer_ticket_row_t;

/* Offers `t` to the agent select_agent() chooses among agents[0..n): that agent's load on the
 * ticket's channel grows by one (the offer counts against capacity from now). Returns the
 * offer for offer_sql ({ticket_id, agent, channel, explain: the candidates, the rule and the
 * order}; a new reference), or NULL when nobody can take it. */
json_t *offer_make(select_agent_t *agents, size_t n, const offer_ticket_row_t *t);

#endif
