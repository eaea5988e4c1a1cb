/* auth — who a desk request is: a person by the session cookie (with the CSRF token and our own
 * Origin on a state change), or an integration by `Authorization: Bearer` of a client of the
 * clients table with the `agents` scope (common/wasl_clients, the table intake reads), rate
 * limited as on intake. Either way one principal {role, act_as} for wasl_authz, and one rule for
 * the agent a request acts as. docs/desk.md, "Security". */
#ifndef WASL_DESK_AUTH_H
#define WASL_DESK_AUTH_H

#include "desk.h"
#include "wasl_authz.h"
#include "wasl_clients.h"
#include "wasl_session.h"

#include <jansson.h>
#include <stdbool.h>

struct desk_req;
struct wasl_http_reply; /* desk_reply_t (server.h) */

typedef enum {
    DESK_PRINCIPAL_NONE = 0,
    DESK_PRINCIPAL_PERSON, /* a signed-in person: acts only as their own agent */
    DESK_PRINCIPAL_TOKEN,  /* an integration: acts for the agents (or role) it is bound to */
} desk_principal_kind_t;

/* Who asks, for the length of a request. */
typedef struct {
    desk_principal_kind_t kind;
    wasl_authz_role_t role;
    /* A person: their agent. A token: its client's id. */
    char id[WASL_CLIENT_ID_BUF > WASL_SESSION_AGENT_BUF ? WASL_CLIENT_ID_BUF
                                                        : WASL_SESSION_AGENT_BUF];
    /* The agents it may act as: a person's own agent, a token's clients.act_as. */
    char act_as[WASL_CLIENT_ACT_AS_MAX];
    /* The `client` the SQL functions record in the history: "desk" for a person (the agent is
     * the actor), the client's id for a token (intake recorded it so). */
    char client[WASL_CLIENT_ID_BUF];
    /* Whose Idempotency-Keys these are: "agent:<id>" for a person, the client's id for a token
     * (a client id has no ':', so the two never meet in desk_idempotency). */
    char key_owner[WASL_SESSION_AGENT_BUF + 8];
} desk_principal_t;

/* Which principals a route admits. */
typedef enum {
    DESK_AUTH_PUBLIC = 0,      /* nobody needs to be anyone (sign in) */
    DESK_AUTH_PERSON = 1 << 0, /* a session */
    DESK_AUTH_TOKEN = 1 << 1,  /* a bearer token with the agents scope */
    DESK_AUTH_ANY = DESK_AUTH_PERSON | DESK_AUTH_TOKEN,
} desk_auth_accepts_t;

typedef struct desk_auth desk_auth_t;

/* Reads the clients table of cfg->pg_url (tokens only: the desk's role cannot read HMAC secrets)
 * every cfg->clients_refresh_s. `cfg` is borrowed. NULL (logged) on failure. */
desk_auth_t *desk_auth_new(const desk_config_t *cfg);
void desk_auth_destroy(desk_auth_t **self_p);
/* For tests and the fuzzer: the clients to use when cfg->pg_url is "". */
wasl_clients_t *desk_auth_clients(desk_auth_t *self);

/* Authenticates `req` for a route that admits `accepts` (not DESK_AUTH_PUBLIC), filling
 * req->principal (and req->session for a person). With an Authorization header the cookie is
 * ignored and no CSRF token is asked: the header is never sent by a browser on its own, so a
 * forged cross-site request cannot carry it. Returns 0, or -1 with reply set: 401 (no or an
 * unknown credential), 403 (a token without the agents scope or on a route for people; a state
 * change of a session without its CSRF token or from another Origin), 429 (the client's rate),
 * 503 (sessions or clients cannot be read yet). Uses req->db (Redis) and req->conn. */
int desk_auth_request(desk_auth_t *self, struct desk_req *req, unsigned accepts,
                      struct wasl_http_reply *reply);

/* The principal as wasl_authz sees it (borrows req). */
wasl_authz_principal_t desk_principal_authz(const struct desk_req *req);

/* The agent a request acts as, from the body `doc`'s "agent": for a person their own agent
 * (absent is fine; naming another agent is a 403 naming "agent"); for a token the body must name
 * it (400 naming "agent" when absent or not an agent id) — wasl_authz then decides whether the
 * token may act for it. Returns 0 with *agent pointing into req or doc, or -1 with reply set. */
int desk_actor(const struct desk_req *req, json_t *doc, const char **agent,
               struct wasl_http_reply *reply);

/* A 403 from wasl_authz's refusal `d` of an action on `target` (an offer id, a ticket reference,
 * an agent id), logged with who asked. */
void desk_refused(const struct desk_req *req, const wasl_authz_decision_t *d, const char *target,
                  struct wasl_http_reply *reply);

/* True once the clients were loaded (for /readyz). */
bool desk_auth_ready(desk_auth_t *self, char *why, size_t cap);

#endif
