/* viewers — the collision warning (issue 15): who else has a ticket open, and who is writing a
 * reply to it, live. The open page says so with a heartbeat; the set of a ticket's viewers lives
 * in Redis (session state lives there); a change of the set is announced on the desk's NOTIFY
 * channel so that every desk instance tells the streams of the agents concerned.
 * docs/desk.md, "Collision". */
#ifndef WASL_DESK_VIEWERS_H
#define WASL_DESK_VIEWERS_H

#include "events.h"
#include "server.h"
#include "wasl_redis.h"

#include <jansson.h>

/* At most this many agents on one ticket at once (WASL_DESK_VIEWERS_MAX's default); one more
 * is refused with 409 `too_many_viewers`. */
#define DESK_VIEWERS_MAX_DEFAULT 16
/* A viewer's name is kept (and sent) cut to this many bytes, on a UTF-8 boundary. */
#define DESK_VIEWER_NAME_MAX 120

/* PUT /v1/tickets/{ref}/viewing {state: "viewing" | "replying"}: the page's heartbeat. Allowed
 * as reading the ticket is (403 `not_your_ticket`, 404 `not_found`); 400 naming `state`. Answers
 * {ticket, state, viewers: [{agent, name, state}] (the others)}. Announces the change when the
 * set changed (a new viewer, another state, an expired entry pruned), not for a beat that
 * changes nothing. A refused PUT removes the caller from the set (they may no longer see it).
 * DELETE /v1/tickets/{ref}/viewing: the caller leaves (204, announced when they were there); no
 * ticket authorization, since one may always stop viewing. Both need the session's CSRF token
 * (the server checks it before). */
desk_handler_fn desk_handle_viewing_put, desk_handle_viewing_delete;

/* The other viewers of `ref` for the session's agent, for GET /v1/tickets/{ref} (new reference,
 * an array; [] when Redis cannot answer). Expired entries are pruned by the read, and that is
 * announced. */
json_t *desk_viewers_of_ticket(desk_req_t *req, const char *ref);

/* For the LISTEN thread, on {"t":"viewers","ref":…,"left":[…]?}: reads the set of `ref` from
 * `redis` and sends `event: viewers` {ref, viewers} to the streams of each agent in it and of
 * those in `left`, each without itself. `payload` is borrowed. */
void desk_viewers_heard(desk_events_t *hub, wasl_redis_t *redis, const desk_config_t *cfg,
                        const json_t *payload);

#endif
