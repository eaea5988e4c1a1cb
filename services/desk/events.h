/* events — the desk's live events: one LISTEN connection on PostgreSQL's `wasl_desk` channel
 * (migration 0020's trigger), turned into Server-Sent Events on the open streams of the agents
 * concerned (and of supervisors). docs/desk.md, "Live events". */
#ifndef WASL_DESK_EVENTS_H
#define WASL_DESK_EVENTS_H

#include "desk.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct desk_events desk_events_t;

/* The channel the desk LISTENs on (migration 0020's trigger, and viewers.c's announcements). */
#define DESK_EVENTS_CHANNEL "wasl_desk"

/* Starts the LISTEN thread on cfg->pg_url (its own connection). `cfg` is borrowed for the
 * hub's life. NULL (logged) on failure. */
desk_events_t *desk_events_new(const desk_config_t *cfg);

/* Ends every stream (each is resumed and finishes) and refuses new ones, then stops the LISTEN
 * thread. Call before stopping libmicrohttpd, which must not stop with suspended connections.
 * Safe twice. */
void desk_events_stop(desk_events_t *self);
void desk_events_destroy(desk_events_t **self_p);

/* Why a stream could not be opened. */
typedef enum {
    DESK_STREAM_OK = 0,
    DESK_STREAM_FULL,      /* WASL_DESK_STREAMS_MAX streams are open */
    DESK_STREAM_AGENT_MAX, /* the agent has WASL_DESK_STREAMS_PER_AGENT open */
    DESK_STREAM_STOPPING,
    DESK_STREAM_ERROR,
} desk_stream_rc_t;

/* Opens a stream for `conn` (the session's agent, supervisor or not, and its session key, all
 * copied) and returns its response in *out, which the caller queues and destroys. The stream
 * ends when the peer goes, when its session is ended here, when it falls too far behind, or at
 * stop. */
desk_stream_rc_t desk_events_open(desk_events_t *self, struct MHD_Connection *conn,
                                  const char *agent, bool supervisor, const char *session_key,
                                  struct MHD_Response **out);

/* Ends the streams of one session (sign out) or of every session of `agent` (sign out
 * everywhere) on this instance. */
void desk_events_close_session(desk_events_t *self, const char *session_key);
void desk_events_close_agent(desk_events_t *self, const char *agent);

/* True once the LISTEN connection is up (for /readyz); why otherwise. */
bool desk_events_ready(desk_events_t *self, char *why, size_t cap);

/* Sends `event` with `data` (compact JSON) to the streams of `agent` and every supervisor's
 * ("" for the supervisors' only, as the debounced `wallboard` event after ticket and agent
 * events). For the LISTEN thread and the tests. */
void desk_events_publish(desk_events_t *self, const char *agent, const char *event,
                         const json_t *data);
/* The same to `agent`'s own streams only: what only that agent can act on (its offers). A
 * supervisor's console shows its own offer cards, not every agent's (the wallboard counts
 * the others'). */
void desk_events_publish_own(desk_events_t *self, const char *agent, const char *event,
                             const json_t *data);

/* The columns of an offer card, shared by GET /v1/me/offers and the `offer` event; the
 * priority's reason is the classifier's (its event), shown on the card (issue 15). */
// clang-format off
#define DESK_OFFER_COLUMNS                                                                  \
    "SELECT o.id, t.ref, t.queue, t.priority, o.channel, t.language, t.subject, t.category," \
    "       to_char(o.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"   \
    "       to_char(t.first_response_due AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')," \
    "       o.agent_id, t.id,"                                                              \
    "       (SELECT e.data->>'priority_reason' FROM ticket_events e"                        \
    "         WHERE e.ticket_id = t.id AND e.kind = 'classified' ORDER BY e.id DESC LIMIT 1)" \
    "  FROM offers o"                                                                       \
    "  JOIN tickets t ON t.id = o.ticket_id"
// clang-format on
enum {
    DESK_OFFER_ID,
    DESK_OFFER_REF,
    DESK_OFFER_QUEUE,
    DESK_OFFER_PRIORITY,
    DESK_OFFER_CHANNEL,
    DESK_OFFER_LANGUAGE,
    DESK_OFFER_SUBJECT,
    DESK_OFFER_CATEGORY,
    DESK_OFFER_EXPIRES_AT,
    DESK_OFFER_FR_DUE,
    DESK_OFFER_AGENT,
    DESK_OFFER_TICKET_ID,
    DESK_OFFER_PRIORITY_REASON, /* the classifier's, from its latest 'classified' event */
    DESK_OFFER_NCOLS
};

/* One row of DESK_OFFER_COLUMNS as the offer card's JSON (new reference). */
json_t *desk_offer_json(const PGresult *res, int row);

#endif
