/* auth — who a desk request is (see auth.h). */
#include "auth.h"
#include "server.h"
#include "wasl_domain.h"
#include "wasl_log.h"
#include "wasl_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define RETRY_AFTER_S  2
#define PERSON_CLIENT  "desk" /* the `client` the functions record for a person */
#define BEARER_PREFIX  "Bearer "
#define SESSION_COOKIE "wasl_sid"

struct desk_auth {
    const desk_config_t *cfg;
    wasl_clients_t *clients;
    wasl_counter_t *refused;
    wasl_counter_t *limited;
    wasl_counter_t *rl_unavailable;
};

desk_auth_t *desk_auth_new(const desk_config_t *cfg)
{
    desk_auth_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->cfg = cfg;
    self->clients =
        wasl_clients_new(cfg->pg_url, cfg->clients_refresh_s, WASL_CLIENTS_TOKENS, "desk");
    if (!self->clients) {
        wasl_error("desk: cannot start reading the clients table", NULL);
        free(self);
        return NULL;
    }
    self->refused = wasl_counter("wasl_desk_token_refused_total",
                                 "Bearer requests refused for an unknown or malformed token, or "
                                 "a client without the agents scope",
                                 NULL);
    self->limited = wasl_counter("wasl_desk_rate_limited_total",
                                 "Bearer requests refused by the client's rate limit", NULL);
    self->rl_unavailable = wasl_counter("wasl_desk_ratelimit_unavailable_total",
                                        "Bearer requests let through because Redis was "
                                        "unreachable",
                                        NULL);
    return self;
}

void desk_auth_destroy(desk_auth_t **self_p)
{
    desk_auth_t *self = *self_p;
    if (!self) {
        return;
    }
    wasl_clients_destroy(&self->clients);
    free(self);
    *self_p = NULL;
}

wasl_clients_t *desk_auth_clients(desk_auth_t *self)
{
    return self->clients;
}

bool desk_auth_ready(desk_auth_t *self, char *why, size_t cap)
{
    bool loaded = wasl_clients_loaded(self->clients);
    if (!loaded) {
        snprintf(why, cap, "clients not loaded");
    }
    return loaded;
}

/* ---- tokens ------------------------------------------------------------------------------ */

static int token_refused(desk_auth_t *self, desk_reply_t *reply, const char *why)
{
    wasl_counter_inc(self->refused);
    desk_error(reply, 401, "unauthorized", NULL, "%s", why);
    return -1;
}

/* The client of `authorization`, its scope and its rate: 0 with req->principal, or -1. */
static int bearer(desk_auth_t *self, desk_req_t *req, const char *authorization,
                  desk_reply_t *reply)
{
    if (!wasl_clients_loaded(self->clients)) {
        desk_error(reply, 503, "unavailable", NULL, "credentials are not loaded yet; retry");
        reply->retry_after_s = RETRY_AFTER_S;
        return -1;
    }
    size_t plen = strlen(BEARER_PREFIX);
    if (strncasecmp(authorization, BEARER_PREFIX, plen) != 0 || !authorization[plen]) {
        return token_refused(self, reply, "Authorization must be \"Bearer <token>\"");
    }
    wasl_client_t client;
    if (!wasl_clients_bearer(self->clients, authorization + plen, &client)) {
        return token_refused(self, reply, "unknown bearer token");
    }
    if (!(client.scopes & WASL_SCOPE_AGENTS)) {
        wasl_counter_inc(self->refused);
        desk_error(reply, 403, "forbidden", NULL, "client %s may not use the agent API", client.id);
        return -1;
    }
    int over = wasl_clients_rate(req->db->redis, &client, (long long)time(NULL));
    if (over < 0) {
        wasl_counter_inc(self->rl_unavailable);
    } else if (over > 0) {
        wasl_counter_inc(self->limited);
        desk_error(reply, 429, "rate_limited", NULL,
                   "more than %ld requests per second from this client", client.rate_per_s);
        reply->retry_after_s = 1;
        return -1;
    }
    desk_principal_t *p = &req->principal;
    *p = (desk_principal_t){.kind = DESK_PRINCIPAL_TOKEN, .role = client.role};
    snprintf(p->id, sizeof p->id, "%s", client.id);
    snprintf(p->act_as, sizeof p->act_as, "%s", client.act_as);
    snprintf(p->client, sizeof p->client, "%s", client.id);
    snprintf(p->key_owner, sizeof p->key_owner, "%s", client.id);
    return 0;
}

/* ---- sessions ---------------------------------------------------------------------------- */

/* A state change must come from our own pages: an Origin header, when sent, names this host. */
static bool origin_ok(const desk_req_t *req)
{
    const char *origin = desk_header(req, "Origin");
    if (!origin) {
        return true;
    }
    const char *host = desk_header(req, "Host");
    const char *sep = strstr(origin, "://");
    return host && sep && (!strncmp(origin, "http://", 7) || !strncmp(origin, "https://", 8)) &&
           strcasecmp(sep + 3, host) == 0;
}

/* CSRF on a state change: the session's token in X-CSRF-Token, and our own Origin. */
static int csrf_ok(const desk_req_t *req, desk_reply_t *r)
{
    if (!origin_ok(req)) {
        desk_error(r, 403, "csrf", "Origin", "a state change must come from this server's pages");
        return -1;
    }
    if (!wasl_session_csrf_ok(&req->session, desk_header(req, "X-CSRF-Token"))) {
        desk_error(r, 403, "csrf", "X-CSRF-Token",
                   "a state change needs the session's CSRF token in X-CSRF-Token");
        return -1;
    }
    return 0;
}

/* The session of the request's cookie: 0 with req->principal, or -1 (401; 503 Redis down). */
static int session(desk_auth_t *self, desk_req_t *req, desk_reply_t *r)
{
    const char *token = MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, SESSION_COOKIE);
    wasl_session_limits_t lim = {(int)self->cfg->idle_s, (int)self->cfg->absolute_s};
    int rc =
        token ? wasl_session_get(req->db->redis, token, &lim, desk_wall_ms(), &req->session) : 0;
    if (rc < 0) {
        desk_error(r, 503, "unavailable", NULL, "sessions cannot be read right now; retry");
        r->retry_after_s = RETRY_AFTER_S;
        return -1;
    }
    if (rc == 0) {
        desk_error(r, 401, "unauthenticated", NULL, "sign in first (POST /v1/login)");
        return -1;
    }
    req->has_session = true;
    desk_principal_t *p = &req->principal;
    *p = (desk_principal_t){.kind = DESK_PRINCIPAL_PERSON,
                            .role = wasl_authz_role_parse(req->session.role)};
    snprintf(p->id, sizeof p->id, "%s", req->session.agent);
    snprintf(p->act_as, sizeof p->act_as, "%s", req->session.agent);
    snprintf(p->client, sizeof p->client, "%s", PERSON_CLIENT);
    snprintf(p->key_owner, sizeof p->key_owner, "agent:%s", req->session.agent);
    return 0;
}

int desk_auth_request(desk_auth_t *self, desk_req_t *req, unsigned accepts, desk_reply_t *reply)
{
    req->principal = (desk_principal_t){0};
    const char *authorization = desk_header(req, "Authorization");
    if (authorization) {
        if (!(accepts & DESK_AUTH_TOKEN)) {
            desk_error(reply, 403, "people_only", "Authorization",
                       "this endpoint is for a signed-in person, not a token");
            return -1;
        }
        return bearer(self, req, authorization, reply);
    }
    if (!(accepts & DESK_AUTH_PERSON)) {
        return token_refused(self, reply, "credentials required: Authorization: Bearer <token>");
    }
    if (session(self, req, reply) < 0) {
        return -1;
    }
    bool reads = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    return reads ? 0 : csrf_ok(req, reply);
}

/* ---- acting -------------------------------------------------------------------------------- */

wasl_authz_principal_t desk_principal_authz(const desk_req_t *req)
{
    return (wasl_authz_principal_t){.role = req->principal.role, .act_as = req->principal.act_as};
}

int desk_actor(const desk_req_t *req, json_t *doc, const char **agent, desk_reply_t *reply)
{
    json_t *v = json_object_get(doc, "agent");
    const char *named = json_is_string(v) ? json_string_value(v) : NULL;
    *agent = NULL;
    if (v && !json_is_null(v) &&
        (!named || strlen(named) != json_string_length(v) || !wasl_agent_id_ok(named))) {
        desk_error(reply, 400, "invalid_agent", "agent",
                   "agent is an agent id (a-z, 0-9, '.', '_', '-')");
        return -1;
    }
    if (req->principal.kind == DESK_PRINCIPAL_PERSON) {
        /* A person acts only as themself, whatever the body says. */
        if (named && strcmp(named, req->principal.id) != 0) {
            desk_error(reply, 403, "not_yourself", "agent",
                       "a signed-in person acts only as their own agent");
            return -1;
        }
        *agent = req->principal.id;
        return 0;
    }
    if (!named) {
        desk_error(reply, 400, "missing_field", "agent",
                   "agent is required: the agent this token acts for");
        return -1;
    }
    *agent = named;
    return 0;
}

void desk_refused(const desk_req_t *req, const wasl_authz_decision_t *d, const char *target,
                  desk_reply_t *reply)
{
    wasl_info("desk: action refused", "{s:s, s:s, s:s, s:s}", "by", req->principal.id, "code",
              d->code, "target", target, "endpoint", req->path_arg ? req->path_arg : "");
    desk_error(reply, 403, d->code, d->field, "%s", d->why);
}
