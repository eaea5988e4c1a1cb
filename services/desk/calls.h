/* calls — the screen pop: a call that rings for an agent (intake's call.ringing, or the first
 * call.answered naming an agent who was not rung) appears on that agent's page with the
 * caller's number, queue, IVR path and tickets, and one click makes the call's ticket.
 * docs/desk.md, "Screen pop". */
#ifndef WASL_DESK_CALLS_H
#define WASL_DESK_CALLS_H

#include "events.h"
#include "server.h"
#include "wasl_authz.h"

#include <libpq-fe.h>
#include <stdbool.h>

/* How long a call that rang and has not ended stays in GET /v1/me/calls. */
#define DESK_CALLS_RECENT_S 300
/* The caller's tickets in a pop: the open ones and those changed within this many days, at
 * most DESK_CALLS_TICKETS_MAX, newest change first (wasl_tickets_of_phone). */
#define DESK_CALLS_TICKET_DAYS 30
#define DESK_CALLS_TICKETS_MAX 10

/* The beneficiary's tickets by phone as JSON (SQL text: an expression): the ticket view's
 * "other_tickets" and the pop's "tickets", one query for both (wasl_tickets_of_phone). `phone`,
 * `except` and `viewer` are SQL expressions: the E.164 number, the ticket to leave out (or
 * NULL), and the agent they are shown to. Each ticket carries "assignee" and "in_queue" (the
 * viewer serves its queue) for desk_phone_tickets_shown() to decide on; neither is shown. */
// clang-format off
#define DESK_PHONE_TICKETS_JSON(phone, except, viewer)                                        \
    "(SELECT coalesce(json_agg(json_build_object("                                            \
    "    'ticket', o.ref, 'status', o.status, 'category', o.category, 'subject', o.subject,"   \
    "    'channel', o.channel, 'open', o.open, 'assignee', o.assignee,"                        \
    "    'in_queue', coalesce((SELECT g.skills ? o.queue FROM agents g"                         \
    "                           WHERE g.id = " viewer " AND g.enabled), false),"              \
    "    'updated_at', to_char(o.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))" \
    "  ORDER BY o.updated_at DESC, o.id DESC), '[]')"                                          \
    "  FROM wasl_tickets_of_phone(" phone ", " except ", " DESK_STR(DESK_CALLS_TICKET_DAYS) ", " \
    DESK_STR(DESK_CALLS_TICKETS_MAX) ") o)"
#define DESK_STR2(x) #x
#define DESK_STR(x)  DESK_STR2(x)
// clang-format on

/* {"ar", "en"} for a category code (common/wasl_domain, the one source), or JSON null for NULL
 * or an unknown code. A new reference. */
json_t *desk_category_label(const char *code);

/* Readies `list`, a JSON array as DESK_PHONE_TICKETS_JSON makes it (borrowed; NULL or not an
 * array: nothing), to be shown to `who` acting as `viewer`: each ticket gets "readable" — the
 * ticket view's own decision (wasl_authz, as GET /v1/tickets/{ref} decides) — and, when
 * readable, "category_label" ({ar, en} or null, common/wasl_domain); one that is not readable
 * keeps only its reference, status, channel, openness and time: its subject, category and
 * assignee are removed, so a caller's history never shows an agent what another queue holds.
 * "in_queue" is removed from all. */
void desk_phone_tickets_shown(json_t *list, const wasl_authz_principal_t *who,
                              const char *viewer);

/* On the LISTEN thread, for each notification: when `payload` is a pop
 * ({"t":"call","a":agent,"id":call event}, migration 0021), reads the pop on `pg` and sends
 * `event: call` to that agent's streams only, and returns true; false for any other payload
 * (left to the other kinds). A pop that cannot be read is logged and dropped: the page's
 * GET /v1/me/calls at its next load still shows it. */
bool desk_calls_notified(desk_events_t *hub, PGconn *pg, const char *payload);

/* GET /v1/me/calls: {"calls": [pop, …]} — the session's agent's calls that rang (or were first
 * answered) in the last DESK_CALLS_RECENT_S seconds and have not ended, newest first, at most
 * 10, each as the `call` event carries it. */
desk_handler_fn desk_handle_my_calls;

/* POST /v1/calls/{call_id}/ticket {subject?, text?}: the call's ticket, made assigned to the
 * agent it rang for (wasl_tickets_call_ticket), or the one it has (idempotent: 201 made,
 * 200 found). Only that agent or a supervisor or admin (403 not_your_call); 404 when no call
 * with that id rang for an agent; 409 unknown_agent when the agent rung is no enabled agent;
 * 400 naming the field. */
desk_handler_fn desk_handle_call_post;

#endif
