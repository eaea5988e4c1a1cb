/* agents — the agent API that moved from intake (issue 15): the roster and one agent (admins
 * create, replace and remove agents through wasl_agents_save / wasl_agents_remove), a named
 * agent's presence and live offers, and a queue's open tickets. For people and tokens alike
 * (services/desk/auth.h), each decided by wasl_authz on the rows read in the request's own
 * transaction; state changes honour Idempotency-Key (idempotency.h). docs/desk.md, "API". */
#ifndef WASL_DESK_AGENTS_H
#define WASL_DESK_AGENTS_H

#include "server.h"

/* GET /v1/agents: the agents the principal may see (its own; all for a supervisor). */
desk_handler_fn desk_handle_agents_list;
/* GET /v1/agents/{id} (the agent's row), /v1/agents/{id}/offers (its live offers), and
 * /v1/agents/{id}/tickets (a supervisor's view of its work: wallboard.h). */
desk_handler_fn desk_handle_agents_get;
/* PUT /v1/agents/{id} {name, skills, languages?, capacity?, wrapup_s?} (admins; 201 when new)
 * and PUT /v1/agents/{id}/presence {state, ttl_s?}. */
desk_handler_fn desk_handle_agents_put;
/* DELETE /v1/agents/{id}: disabled, never deleted (admins). */
desk_handler_fn desk_handle_agents_delete;
/* GET /v1/queues/{queue}/tickets: the queue's waiting and assigned tickets in the router's
 * order (a member of the queue, or a supervisor). */
desk_handler_fn desk_handle_queue;

#endif
