/* wasl_authz — who may do what on the agent desk: one pure decision from the principal (a
 * client's binding today, a person's session in the desk later), the action and the facts of
 * its target (offer, ticket, queue), so that every path asks the same question the same way.
 * The matrix is in docs/architecture.md, "Security" → "Agent actions". */
#ifndef WASL_AUTHZ_H
#define WASL_AUTHZ_H

#include <stdbool.h>

/* The person-role a principal carries, widest last: a supervisor acts for any agent and any
 * queue (reassigns, forces presence offline), an admin also manages the roster. */
typedef enum {
    WASL_AUTHZ_ROLE_NONE = 0,
    WASL_AUTHZ_ROLE_AGENT,
    WASL_AUTHZ_ROLE_SUPERVISOR,
    WASL_AUTHZ_ROLE_ADMIN,
} wasl_authz_role_t;

/* Who asks. Borrowed strings. */
typedef struct {
    wasl_authz_role_t role;
    const char *act_as; /* the agents it is bound to, comma-joined ("" or NULL: none) */
} wasl_authz_principal_t;

typedef enum {
    WASL_AUTHZ_AGENT_VIEW,   /* read agent `actor` (its row, its live offers) */
    WASL_AUTHZ_AGENT_MANAGE, /* create, replace or remove an agent */
    WASL_AUTHZ_PRESENCE,     /* set the presence of `actor` to `presence` */
    WASL_AUTHZ_OFFER_ANSWER, /* accept or reject, as `actor`, an offer made to `offer_agent` */
    WASL_AUTHZ_QUEUE_VIEW,   /* list a queue's open tickets (`in_queue`: one of ours serves it) */
    /* A ticket, as `actor`, with `assignee` and `in_queue`: one rule for all of them — a
     * supervisor any ticket; an agent its own (assignee) and, while unassigned, those of its
     * queues; never a colleague's assigned ticket. */
    WASL_AUTHZ_TICKET_VIEW, /* read it: messages, history, the caller's number */
    WASL_AUTHZ_NOTE,
    WASL_AUTHZ_REPLY, /* write to the beneficiary */
    WASL_AUTHZ_TRANSFER,
    WASL_AUTHZ_RESOLVE,
    WASL_AUTHZ_REOPEN,
} wasl_authz_action_t;

/* What the caller read about the target, in the transaction that will change it (rows locked),
 * so that the decision and the change see the same state. Borrowed strings. */
typedef struct {
    const char *actor;       /* the agent the request acts as (body "agent" or path id) */
    const char *actor_field; /* the request field that named it ("agent", "id") */
    bool missing;            /* the target (agent, offer, ticket) does not exist */
    const char *presence;    /* PRESENCE: the state asked for */
    const char *offer_agent; /* OFFER_ANSWER: the agent the offer was made to */
    const char *assignee;    /* ticket actions: NULL when unassigned */
    bool in_queue; /* ticket actions: the actor has the ticket queue's skill; QUEUE_VIEW: one of
                      the principal's agents has the queue's skill */
} wasl_authz_facts_t;

/* The answer. On a refusal `code`, `field` (the request field that failed) and `why` (one
 * sentence) are static strings for a 403 reply. */
typedef struct {
    bool allowed;
    const char *code;
    const char *field;
    const char *why;
} wasl_authz_decision_t;

/* Decides whether `who` may do `action` with `facts`. Pure: no I/O, no allocation, the same
 * inputs always give the same answer. A missing target is allowed once the principal may act
 * as the actor (the caller then answers 404: there is nothing to protect), so that a principal
 * learns nothing about agents it cannot act for. */
wasl_authz_decision_t wasl_authz_decide(const wasl_authz_principal_t *who,
                                        wasl_authz_action_t action,
                                        const wasl_authz_facts_t *facts);

/* The role named by `word` ("agent", "supervisor", "admin", as in clients.role); ROLE_NONE for
 * NULL, "" or anything else. */
wasl_authz_role_t wasl_authz_role_parse(const char *word);

/* True when `agent` is one of the ids of the comma-joined `list` (whole ids, not prefixes). */
bool wasl_authz_listed(const char *list, const char *agent);

#endif
