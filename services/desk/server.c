/* server — wasl-desk's HTTP port on the shared edge (common/wasl_http; see server.h). */
#include "server.h"
#include "addr.h"
#include "agents.h"
#include "calls.h"
#include "tickets.h"
#include "viewers.h"
#include "wallboard.h"
#include "wasl_clock.h"
#include "wasl_log.h"
#include "wasl_offload.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CONNECTION_LIMIT     10000
#define CONNECTION_TIMEOUT_S 60
#define RETRY_AFTER_S        WASL_HTTP_RETRY_AFTER_S
#define METHOD_MAX           16
#define MEDIA_TYPE_MAX       128

/* The headers of every answer (docs/desk.md, "Shape"). */
static const char CSP[] = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                          "form-action 'self'";

/* A route: the shared edge's part first ({method, path, metric label, large body}; a path
 * ending in '*' hands the rest to the handler as path_arg), then who may call it, and the
 * handler. The first entry whose path and method match wins. */
typedef struct {
    wasl_http_route_t http;
    unsigned accepts; /* desk_auth_accepts_t: who may call it */
    desk_handler_fn *handle;
} route_t;

static const route_t routes[] = {
    {{"POST", "/v1/login", "login", false}, DESK_AUTH_PUBLIC, desk_handle_login},
    {{"POST", "/v1/logout", "logout", false}, DESK_AUTH_PERSON, desk_handle_logout},
    {{"POST", "/v1/logout/all", "logout_all", false}, DESK_AUTH_PERSON, desk_handle_logout_all},
    {{"GET", "/v1/me", "me", false}, DESK_AUTH_PERSON, desk_handle_me},
    {{"GET", "/v1/me/offers", "me_offers", false}, DESK_AUTH_PERSON, desk_handle_me_offers},
    {{"PUT", "/v1/me/presence", "presence", false}, DESK_AUTH_PERSON, desk_handle_presence},
    {{"POST", "/v1/offers/*", "offers", false}, DESK_AUTH_ANY, desk_handle_offer},
    {{"GET", "/v1/events", "events", false}, DESK_AUTH_PERSON, desk_handle_events},
    {{"GET", "/v1/me/tickets", "my_tickets", false}, DESK_AUTH_PERSON, desk_handle_my_tickets},
    {{"GET", "/v1/tickets/*", "ticket", false}, DESK_AUTH_PERSON, desk_handle_ticket_get},
    {{"POST", "/v1/tickets/*", "ticket_action", false}, DESK_AUTH_ANY, desk_handle_ticket_post},
    {{"PUT", "/v1/tickets/*", "viewing", false}, DESK_AUTH_PERSON, desk_handle_viewing_put},
    {{"DELETE", "/v1/tickets/*", "viewing", false}, DESK_AUTH_PERSON, desk_handle_viewing_delete},
    {{"GET", "/v1/wallboard", "wallboard", false}, DESK_AUTH_PERSON, desk_handle_wallboard},
    {{"GET", "/v1/queues", "queues", false}, DESK_AUTH_PERSON, desk_handle_queues},
    {{"GET", "/v1/agents", "agents", false}, DESK_AUTH_ANY, desk_handle_agents_list},
    {{"GET", "/v1/agents/*", "agents", false}, DESK_AUTH_ANY, desk_handle_agents_get},
    {{"PUT", "/v1/agents/*", "agents", false}, DESK_AUTH_ANY, desk_handle_agents_put},
    {{"DELETE", "/v1/agents/*", "agents", false}, DESK_AUTH_ANY, desk_handle_agents_delete},
    {{"GET", "/v1/queues/*", "queue", false}, DESK_AUTH_ANY, desk_handle_queue},
    {{"POST", "/v1/agents/*", "agents", false}, DESK_AUTH_PERSON, desk_handle_agent_post},
    {{"GET", "/v1/replies", "replies", false}, DESK_AUTH_PERSON, desk_handle_replies},
    {{"GET", "/v1/me/calls", "my_calls", false}, DESK_AUTH_PERSON, desk_handle_my_calls},
    {{"POST", "/v1/calls/*", "call_ticket", false}, DESK_AUTH_PERSON, desk_handle_call_post},
};

struct desk_server {
    const desk_config_t *cfg;
    desk_db_t *db;
    desk_events_t *events;
    const desk_www_t *www;
    desk_auth_t *auth;
    wasl_http_t *http;
    wasl_offload_t *verify;
};

/* The desk's part of one request (wasl_http_state), zeroed by the edge. */
typedef struct {
    desk_server_t *server;
    /* The offloaded part of a handler: its own copy of the request. */
    desk_req_t off_req;
    char method[METHOD_MAX];
    char media_type[MEDIA_TYPE_MAX];
} request_state_t;

int64_t desk_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- replies ----------------------------------------------------------------------------- */

desk_reply_t *desk_error(desk_reply_t *r, unsigned status, const char *code, const char *field,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    wasl_http_verror(r, status, code, field, fmt, ap);
    va_end(ap);
    return r;
}

/* The edge's headers hook: on every answer, files and event streams included. */
static void security_headers(void *arg, struct MHD_Response *resp)
{
    (void)arg;
    MHD_add_response_header(resp, "Content-Security-Policy", CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
}

/* The edge's unrouted hook: a path outside /v1/ is a console file (HEAD gets the headers
 * only); an unknown /v1/ path gets the edge's 404/405. */
static const char *send_static(void *arg, wasl_http_conn_t *c, const char *method, const char *url,
                               bool wrong_method, desk_reply_t *r)
{
    (void)c;
    (void)wrong_method;
    desk_server_t *self = arg;
    if (strncmp(url, "/v1/", 4) == 0) {
        return NULL;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        desk_error(r, 405, "method_not_allowed", NULL, "the console's files are read with GET");
        return "static";
    }
    const desk_www_file_t *f = desk_www_find(self->www, url);
    if (!f) {
        desk_error(r, 404, "not_found", NULL, "no such file");
        return "static";
    }
    r->raw = MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
    if (r->raw) {
        MHD_add_response_header(r->raw, "Content-Type", f->content_type);
        MHD_add_response_header(r->raw, "Cache-Control", "no-cache");
        r->status = 200;
    }
    return "static";
}

/* ---- request helpers --------------------------------------------------------------------- */

const char *desk_header(const desk_req_t *req, const char *name)
{
    return req->conn ? MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name) : NULL;
}

json_t *desk_body_json(const desk_req_t *req, desk_reply_t *reply)
{
    if (req->len == 0) {
        return json_object();
    }
    return wasl_http_json_object(req->media_type, req->body, req->len, reply);
}

int desk_str_field(json_t *doc, const char *key, unsigned flags, size_t max, const char **out,
                   desk_reply_t *reply)
{
    json_t *v = json_object_get(doc, key);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (flags & DESK_FIELD_REQUIRED) {
            desk_error(reply, 400, "missing_field", key, "%s is required", key);
            return -1;
        }
        return 0;
    }
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    bool blank = s && s[strspn(s, " \t\r\n")] == '\0';
    if (!s || json_string_length(v) > max || strlen(s) != json_string_length(v) ||
        ((flags & DESK_FIELD_NONBLANK) && blank)) {
        desk_error(reply, 400, "invalid_field", key, "%s must be a%s string of at most %zu bytes",
                   key, flags & DESK_FIELD_NONBLANK ? " non-blank" : "", max);
        return -1;
    }
    *out = s;
    return 0;
}

void desk_db_failed(desk_reply_t *reply, const char *what)
{
    wasl_error("desk: database failed", "{s:s}", "op", what);
    desk_error(reply, 503, "unavailable", NULL, "the database cannot answer right now; retry");
    reply->retry_after_s = 2;
}

desk_conn_t *desk_server_take_db(desk_server_t *self)
{
    return desk_db_take(self->db);
}

void desk_server_give_db(desk_server_t *self, desk_conn_t *conn)
{
    desk_db_give(self->db, conn);
}

/* The address throttling counts: the peer, or behind a trusted proxy the client it names. */
static void client_address(const desk_server_t *self, struct MHD_Connection *conn,
                           char out[DESK_ADDR_BUF])
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char peer[DESK_ADDR_BUF] = "-";
    const struct sockaddr *sa = info ? info->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, peer, sizeof peer);
    } else if (sa && sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, peer, sizeof peer);
    }
    const char *xff = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-For");
    desk_client_addr(peer, xff, self->cfg->trusted_proxies, out);
}

/* ---- offloaded parts ---------------------------------------------------------------------- */

/* On a verification thread: the handler's part with a connection pair of its own. */
static bool offload_work(wasl_http_conn_t *c, desk_reply_t *reply)
{
    request_state_t *st = wasl_http_state(c);
    st->off_req.db = desk_db_take(st->server->db);
    st->off_req.offload(&st->off_req, reply);
    desk_db_give(st->server->db, st->off_req.db);
    st->off_req.db = NULL;
    return true;
}

/* Suspends the request and hands the handler's remaining part to the verification pool. The
 * request is copied into the state: the handler's first part saw it on this thread's stack. */
static void offload(desk_server_t *self, wasl_http_conn_t *c, desk_req_t *req, desk_reply_t *reply)
{
    request_state_t *st = wasl_http_state(c);
    json_decref(reply->body);
    *reply = (desk_reply_t){0};
    snprintf(st->method, sizeof st->method, "%s", req->method);
    st->server = self;
    st->off_req = *req;
    st->off_req.conn = NULL;
    st->off_req.db = NULL;
    st->off_req.method = st->method;
    if (wasl_http_offload(c, self->verify, offload_work, wasl_clock_ms() + self->cfg->deadline_ms) <
        0) {
        desk_error(reply, 503, "busy", NULL, "too many sign-ins at once; retry");
        reply->retry_after_s = RETRY_AFTER_S;
    }
}

/* ---- dispatch ---------------------------------------------------------------------------- */

/* An event stream instead of a reply: sent as is, with its own headers. */
static void stream_reply(struct MHD_Response *stream, desk_reply_t *reply)
{
    json_decref(reply->body);
    *reply = (desk_reply_t){.status = 200, .raw = stream};
    MHD_add_response_header(stream, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header(stream, "Cache-Control", "no-store");
    MHD_add_response_header(stream, "X-Accel-Buffering", "no");
}

/* The edge's handle hook: the whole body is in. Who asks (services/desk/auth.c), then the
 * handler. */
static void dispatch(void *arg, wasl_http_conn_t *c, const char *method, desk_reply_t *reply)
{
    desk_server_t *self = arg;
    request_state_t *st = wasl_http_state(c);
    const route_t *route = (const route_t *)wasl_http_route(c); /* our table's entry */
    struct MHD_Connection *conn = wasl_http_mhd(c);
    size_t len;
    const char *body = wasl_http_body(c, &len);
    desk_req_t req = {.server = self,
                      .cfg = self->cfg,
                      .conn = conn,
                      .method = method,
                      .path_arg = wasl_http_path_arg(c),
                      .body = body,
                      .len = len,
                      .media_type = wasl_http_media_type(c, st->media_type, sizeof st->media_type),
                      .events = self->events};
    client_address(self, conn, req.client_addr);
    req.db = desk_db_take(self->db);
    if (route->accepts == DESK_AUTH_PUBLIC ||
        desk_auth_request(self->auth, &req, route->accepts, reply) == 0) {
        route->handle(&req, reply);
    }
    desk_db_give(self->db, req.db);
    req.db = NULL;
    if (req.offload) {
        offload(self, c, &req, reply);
    } else if (req.stream) {
        stream_reply(req.stream, reply);
    }
}

/* The edge's done hook: the request is over. */
static void request_done(void *arg, wasl_http_conn_t *c)
{
    (void)arg;
    request_state_t *st = wasl_http_state(c);
    if (st->off_req.offload_free) {
        st->off_req.offload_free(st->off_req.offload_arg);
    }
}

/* ---- the server ---------------------------------------------------------------------------- */

static wasl_http_t *start_http(desk_server_t *self)
{
    const desk_config_t *cfg = self->cfg;
    wasl_http_config_t http = {
        .name = "desk",
        .drain_who = "the desk",
        .bind = cfg->bind,
        .port = (int)cfg->port,
        .threads = (int)cfg->threads,
        .connection_limit = CONNECTION_LIMIT,
        .connection_timeout_s = CONNECTION_TIMEOUT_S,
        .body_max = (size_t)cfg->json_max,
        .large_body_max = (size_t)cfg->json_max,
        .state_size = sizeof(request_state_t),
        .routes = routes,
        .route_count = sizeof routes / sizeof routes[0],
        .route_size = sizeof routes[0],
        .hooks = {.handle = dispatch,
                  .unrouted = send_static,
                  .headers = security_headers,
                  .done = request_done},
        .arg = self,
    };
    return wasl_http_new(&http);
}

desk_server_t *desk_server_new(const desk_config_t *cfg, desk_db_t *db, desk_events_t *events,
                               const desk_www_t *www, desk_auth_t *auth)
{
    desk_server_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    *self = (desk_server_t){.cfg = cfg, .db = db, .events = events, .www = www, .auth = auth};
    self->verify =
        wasl_offload_new("desk_verify", (size_t)cfg->verify_threads, (size_t)cfg->verify_queue);
    if (!self->verify || !(self->http = start_http(self))) {
        wasl_offload_destroy(&self->verify);
        free(self);
        return NULL;
    }
    return self;
}

void desk_server_drain(desk_server_t *self)
{
    wasl_http_drain(self->http);
}

void desk_server_stop_offload(desk_server_t *self)
{
    if (self) {
        wasl_offload_stop(self->verify);
    }
}

void desk_server_destroy(desk_server_t **self_p)
{
    desk_server_t *self = *self_p;
    if (!self) {
        return;
    }
    wasl_offload_destroy(&self->verify);
    wasl_http_destroy(&self->http);
    free(self);
    *self_p = NULL;
}
