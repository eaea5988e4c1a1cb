/* tickets — the desk's ticket endpoints: "my work", the ticket view, and note, transfer and
 * resolve through the wasl_tickets_* functions (proto/functions/tickets.sql), as the session's
 * agent. docs/desk.md, "Tickets". */
#ifndef WASL_DESK_TICKETS_H
#define WASL_DESK_TICKETS_H

#include "server.h"

#define REPLY_TEXT_MAX 1000

/* GET /v1/me/tickets: the tickets assigned to the session's agent, in the router's order
 * (priority, first-response deadline, place in line), with their SLA deadlines and the seconds
 * left to each (negative: overdue). */
desk_handler_fn desk_handle_my_tickets;

/* GET /v1/tickets/{ref}: the ticket, its inbound and outbound messages, its notifications and
 * their state, and its history (ticket_events, the route explanation included). Allowed to a
 * supervisor or admin, to the assignee, and to a member of the ticket's queue while it is
 * unassigned; 403 otherwise, 404 for no such ticket. */
desk_handler_fn desk_handle_ticket_get;

/* For viewers.c: whether the session may read ticket `ref`, decided as GET /v1/tickets/{ref}
 * decides it. The row (assignee, in_queue, the session agent's name), which the caller clears,
 * or NULL with the reply set (404, 403, 503). */
PGresult *desk_ticket_readable(desk_req_t *req, const char *ref, desk_reply_t *reply);
/* For casepanel.c: the same decision; the row is (assignee, in_queue, case_number,
 * from_national_id), cleared by the caller, or NULL with the reply set. */
PGresult *desk_ticket_case_readable(desk_req_t *req, const char *ref, desk_reply_t *reply);

/* POST /v1/tickets/{ref}/notes {text} | /transfer {queue, reason?} | /resolve {wrapup,
 * resolution?} | /reply {text | reply_id} (wasl_tickets_reply: one message on the beneficiary's
 * channel, sent once per Idempotency-Key, or per agent and text without one; a canned reply in
 * the ticket's language with {ref} filled; 409 no_contact without a contact to reply to): the same
 * authorization as the view, decided on the row locked in the transaction that changes it; 403 and
 * nothing changed otherwise. `wrapup` is one of cfg->wrapup_codes. */
desk_handler_fn desk_handle_ticket_post;

#endif

/* ---- canned replies ---- */

/* Loads every <id>.json of `dir` ({"id", "title": {ar, en}, "text": {ar, en}}; id the file's
 * name, [a-z0-9_-], 1..64; texts non-empty, at most REPLY_TEXT_MAX bytes, placeholders only
 * `{ref}`), sorted by id, for the life of the process. A missing directory is no replies (a
 * warning); a malformed file refuses the start: -1 (logged). Call once before the server. */
int desk_replies_load(const char *dir);
void desk_replies_free(void);

/* Checks the configured wrap-up codes (comma-separated) against tickets.wrapup_code's CHECK
 * (migration 0022: [a-z0-9][a-z0-9_.-]{0,63}) and that there is at least one: 0, or -1
 * (logged, naming the code) to refuse the start — never a 503 at the first resolve. */
int desk_wrapup_codes_check(const char *codes);

/* GET /v1/replies: {"replies": [..] as loaded, "wrapup_codes": [..] (cfg->wrapup_codes)}. */
desk_handler_fn desk_handle_replies;
