/* wasl_agents — statements on the agent roster that more than one program runs (the agent
 * desk API in intake, waslctl agent). */
#ifndef WASL_AGENTS_H
#define WASL_AGENTS_H

/* Removes agent $1 (disabled, offline), withdraws its open offers and records both, with $2 as
 * the actor in the agent's and the tickets' history. One row (the id) when an enabled agent
 * was removed, none when there was none. */
extern const char *const wasl_agent_remove_sql;

#endif
