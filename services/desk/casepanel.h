/* casepanel — the case panel of the ticket view: GET /v1/tickets/{ref}/case asks
 * wasl-caselookup about the ticket's case, for the agent, only when the ticket carries a
 * verified party (docs/desk.md, "Case panel"). */
#ifndef WASL_DESK_CASEPANEL_H
#define WASL_DESK_CASEPANEL_H

#include "desk.h"
#include "server.h"

#include <stdbool.h>

/* Prepares the clients for the bus of `cfg` (no socket until the first lookup; no bus
 * configured: every panel says "unavailable"). Returns 0, or -1 on allocation failure. */
int desk_casepanel_init(const desk_config_t *cfg);
/* Closes them; after the HTTP server and its offload threads are stopped. Safe twice. */
void desk_casepanel_free(void);

/* GET /v1/tickets/{ref}/case for `ref` (already parsed): decided as reading the ticket (403,
 * 404 with no lookup), then 200 {state: "no_party" | "unavailable" | "not_found" | "locked" |
 * "ok", case?}: a lookup (audited by caselookup, channel "desk", client the agent, the
 * ticket named) is asked only with a verified party. */
void desk_case_get(desk_req_t *req, const char *ref, desk_reply_t *reply);

#endif
