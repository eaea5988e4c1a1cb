/* wasl_authz — the agent desk's authorization decision (see wasl_authz.h). */
#include "wasl_authz.h"

#include <stddef.h>
#include <string.h>

static const wasl_authz_decision_t ALLOWED = {.allowed = true};

static wasl_authz_decision_t refuse(const char *code, const char *field, const char *why)
{
    return (wasl_authz_decision_t){.allowed = false, .code = code, .field = field, .why = why};
}

wasl_authz_role_t wasl_authz_role_parse(const char *word)
{
    static const struct {
        const char *word;
        wasl_authz_role_t role;
    } roles[] = {{"agent", WASL_AUTHZ_ROLE_AGENT},
                 {"supervisor", WASL_AUTHZ_ROLE_SUPERVISOR},
                 {"admin", WASL_AUTHZ_ROLE_ADMIN}};
    for (size_t i = 0; word && i < sizeof roles / sizeof roles[0]; i++) {
        if (strcmp(word, roles[i].word) == 0) {
            return roles[i].role;
        }
    }
    return WASL_AUTHZ_ROLE_NONE;
}

bool wasl_authz_listed(const char *list, const char *agent)
{
    if (!list || !agent || !*agent) {
        return false;
    }
    size_t len = strlen(agent);
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == len && memcmp(p, agent, len) == 0) {
            return true;
        }
        if (!comma) {
            break;
        }
        p = comma + 1;
    }
    return false;
}

static bool same(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

wasl_authz_decision_t wasl_authz_decide(const wasl_authz_principal_t *who,
                                        wasl_authz_action_t action, const wasl_authz_facts_t *facts)
{
    bool supervisor = who->role >= WASL_AUTHZ_ROLE_SUPERVISOR;
    /* Roster and queue questions do not name an agent to act as. */
    if (action == WASL_AUTHZ_AGENT_MANAGE) {
        return who->role == WASL_AUTHZ_ROLE_ADMIN
                   ? ALLOWED
                   : refuse("admin_only", "role", "managing agents needs the admin role");
    }
    if (action == WASL_AUTHZ_QUEUE_VIEW) {
        return supervisor || facts->in_queue
                   ? ALLOWED
                   : refuse("not_a_member", "queue",
                            "none of the client's agents serves this queue");
    }
    /* Everything else acts as one agent: one of the principal's own, or any for a supervisor. */
    bool own = wasl_authz_listed(who->act_as, facts->actor);
    const char *actor_field = facts->actor_field ? facts->actor_field : "agent";
    if (!own && !supervisor) {
        return refuse("not_bound", actor_field, "the client may not act for this agent");
    }
    if (facts->missing) {
        return ALLOWED;
    }
    switch (action) {
    case WASL_AUTHZ_AGENT_VIEW:
        return ALLOWED;
    case WASL_AUTHZ_PRESENCE:
        /* Presence is the agent's own statement; a supervisor may only take someone off the
         * line (a forgotten session keeps receiving offers otherwise). */
        return own || same(facts->presence, "offline")
                   ? ALLOWED
                   : refuse("offline_only", "state",
                            "a supervisor may only force another agent offline");
    case WASL_AUTHZ_OFFER_ANSWER:
        /* Accepting is the agent's own act, never a supervisor's on its behalf: a supervisor
         * moves work with transfer instead. */
        if (!own) {
            return refuse("not_your_offer", actor_field,
                          "an offer is answered only by a client bound to its agent");
        }
        return same(facts->offer_agent, facts->actor)
                   ? ALLOWED
                   : refuse("not_your_offer", actor_field, "the offer was made to another agent");
    case WASL_AUTHZ_TICKET_VIEW:
    case WASL_AUTHZ_NOTE:
    case WASL_AUTHZ_REPLY:
    case WASL_AUTHZ_TRANSFER:
    case WASL_AUTHZ_RESOLVE:
    case WASL_AUTHZ_REOPEN:
        if (supervisor) {
            return ALLOWED;
        }
        if (facts->assignee) {
            return same(facts->assignee, facts->actor)
                       ? ALLOWED
                       : refuse("not_your_ticket", actor_field,
                                "the ticket is assigned to another agent");
        }
        return facts->in_queue ? ALLOWED
                               : refuse("not_your_ticket", actor_field,
                                        "an unassigned ticket is handled by members of its queue");
    case WASL_AUTHZ_AGENT_MANAGE:
    case WASL_AUTHZ_QUEUE_VIEW:
        break; /* decided above */
    }
    return refuse("forbidden", actor_field, "unknown action");
}
