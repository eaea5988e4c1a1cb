/* moved — the agent API's old paths on intake answer 404 (issue 15: it is served by wasl-desk
 * now; intake stays the edge for machines). */
#include "handlers.h"

#include <string.h>

/* The agent API's paths: /v1/agents[/…], /v1/offers/…, /v1/queues/…, and any method but GET on
 * /v1/tickets/… (GET /v1/tickets/{ref}, the machines' read, stays). */
static bool agent_path(const char *method, const char *url)
{
    return strcmp(url, "/v1/agents") == 0 || strncmp(url, "/v1/agents/", 11) == 0 ||
           strncmp(url, "/v1/offers/", 11) == 0 || strncmp(url, "/v1/queues/", 11) == 0 ||
           (strncmp(url, "/v1/tickets/", 12) == 0 && strcmp(method, "GET") != 0);
}

const char *intake_moved(void *arg, wasl_http_conn_t *c, const char *method, const char *url,
                         bool wrong_method, wasl_http_reply_t *r)
{
    (void)arg;
    (void)c;
    (void)wrong_method;
    if (!agent_path(method, url)) {
        return NULL; /* the edge's own 404/405 */
    }
    /* 404 and not 405 next to GET /v1/tickets/{ref}: there is no such endpoint here at all. */
    wasl_http_error(r, 404, "not_found", NULL,
                    "the agent API is served by wasl-desk (WASL_DESK_URL), not intake");
    return "agent_api_moved";
}
