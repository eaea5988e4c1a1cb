/* supervise — what only supervisors (and admins) do to others' work: reassigning a ticket to
 * another agent. An agent gets 403 `supervisors_only` and nothing is read or changed.
 * docs/desk.md, "Supervisors". */
#ifndef WASL_DESK_SUPERVISE_H
#define WASL_DESK_SUPERVISE_H

#include "server.h"

/* POST /v1/tickets/{ref}/assign {agent, reason?}: through wasl_tickets_assign
 * (proto/functions/tickets.sql) — the ticket's live offers withdrawn, the ticket assigned to
 * `agent`, an 'assigned' event {agent, by, from, reason}. The target's presence, capacity and
 * wrap-up are not checked: a supervisor overrides. 200 {ticket, done: "assign", agent, from};
 * 400 naming the field; 403 supervisors_only (agents and integrations' tokens; before the body
 * is even read); 404 no
 * ticket (ref) or no agent (agent); 409 agent_disabled (agent) or wrong_state (ref: not waiting
 * or assigned). Called by desk_handle_ticket_post for the /assign path. */
desk_handler_fn desk_handle_ticket_assign;

#endif
