/* wallboard — the supervisor's view of the contact center: per queue (waiting, oldest wait, in
 * service, first-response SLA attainment, abandoned calls, CSAT and wrap-up codes today) and every enabled
 * agent (state and time in it, tickets in service), one agent's work, and forcing an agent
 * offline. Supervisors and admins only (403 for agents, nothing read or changed). docs/desk.md,
 * "Wallboard". */
#ifndef WASL_DESK_WALLBOARD_H
#define WASL_DESK_WALLBOARD_H

#include "server.h"

/* "Today" starts at midnight in this zone (the Board's working day). */
#define DESK_WALLBOARD_TZ "Asia/Riyadh"

/* GET /v1/wallboard: {"at", "day": {"start", "tz"}, "queues": [...], "agents": [...]}. */
desk_handler_fn desk_handle_wallboard;
/* GET /v1/queues: {"queues": [names]}, the queues enabled agents serve (their skills), sorted —
 * the ones a transfer is accepted to (POST /v1/tickets/{ref}/transfer answers 400
 * unknown_queue for any other). Any signed-in person: the transfer picker. */
desk_handler_fn desk_handle_queues;
/* GET /v1/agents/{id}/tickets: the agent's tickets in service and live offers. The agent
 * itself or a supervisor. */
desk_handler_fn desk_handle_agent_get;
/* POST /v1/agents/{id}/force-offline: through wasl_agents_set_presence (its live offers are
 * withdrawn). Supervisors only, for another agent. */
desk_handler_fn desk_handle_agent_post;

#endif
