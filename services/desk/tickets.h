/* tickets — the desk's ticket endpoints: "my work", the ticket view, and note, transfer and
 * resolve through the wasl_tickets_* functions (proto/functions/tickets.sql), as the session's
 * agent. docs/desk.md, "Tickets". */
#ifndef WASL_DESK_TICKETS_H
#define WASL_DESK_TICKETS_H

#include "server.h"

/* GET /v1/me/tickets: the tickets assigned to the session's agent, in the router's order
 * (priority, first-response deadline, place in line), with their SLA deadlines and the seconds
 * left to each (negative: overdue). */
desk_handler_fn desk_handle_my_tickets;

/* GET /v1/tickets/{ref}: the ticket, its inbound and outbound messages, its notifications and
 * their state, and its history (ticket_events, the route explanation included). Allowed to a
 * supervisor or admin, to the assignee, and to a member of the ticket's queue while it is
 * unassigned; 403 otherwise, 404 for no such ticket. */
desk_handler_fn desk_handle_ticket_get;

/* POST /v1/tickets/{ref}/notes {text} | /transfer {queue, reason?} | /resolve {wrapup,
 * resolution?}: the same authorization as the view, decided on the row locked in the
 * transaction that changes it; 403 and nothing changed otherwise. `wrapup` is one of
 * cfg->wrapup_codes. */
desk_handler_fn desk_handle_ticket_post;

#endif
