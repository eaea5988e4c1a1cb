/* server — wasl-desk's HTTP port (see server.h). */
#include "server.h"
#include "addr.h"
#include "calls.h"
#include "tickets.h"
#include "viewers.h"
#include "wallboard.h"
#include "wasl_clock.h"
#include "wasl_log.h"
#include "wasl_metrics.h"
#include "wasl_offload.h"
#include "wasl_text.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONNECTION_LIMIT     10000
#define CONNECTION_TIMEOUT_S 60
#define RETRY_AFTER_S        2
#define METHOD_MAX           16

/* The headers of every answer (docs/desk.md, "Shape"). */
static const char CSP[] = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                          "form-action 'self'";

typedef struct {
    const char *method;
    const char *path; /* exact, or a prefix ending in '*' */
    unsigned accepts; /* desk_auth_accepts_t: who may call it */
    const char *endpoint;
    desk_handler_fn *handle;
} route_t;

static const route_t routes[] = {
    {"POST", "/v1/login", DESK_AUTH_PUBLIC, "login", desk_handle_login},
    {"POST", "/v1/logout", DESK_AUTH_PERSON, "logout", desk_handle_logout},
    {"POST", "/v1/logout/all", DESK_AUTH_PERSON, "logout_all", desk_handle_logout_all},
    {"GET", "/v1/me", DESK_AUTH_PERSON, "me", desk_handle_me},
    {"GET", "/v1/me/offers", DESK_AUTH_PERSON, "me_offers", desk_handle_me_offers},
    {"PUT", "/v1/me/presence", DESK_AUTH_PERSON, "presence", desk_handle_presence},
    {"POST", "/v1/offers/*", DESK_AUTH_ANY, "offers", desk_handle_offer},
    {"GET", "/v1/events", DESK_AUTH_PERSON, "events", desk_handle_events},
    {"GET", "/v1/me/tickets", DESK_AUTH_PERSON, "my_tickets", desk_handle_my_tickets},
    {"GET", "/v1/tickets/*", DESK_AUTH_PERSON, "ticket", desk_handle_ticket_get},
    {"POST", "/v1/tickets/*", DESK_AUTH_ANY, "ticket_action", desk_handle_ticket_post},
    {"PUT", "/v1/tickets/*", DESK_AUTH_PERSON, "viewing", desk_handle_viewing_put},
    {"DELETE", "/v1/tickets/*", DESK_AUTH_PERSON, "viewing", desk_handle_viewing_delete},
    {"GET", "/v1/wallboard", DESK_AUTH_PERSON, "wallboard", desk_handle_wallboard},
    {"GET", "/v1/agents/*", DESK_AUTH_PERSON, "agents", desk_handle_agent_get},
    {"POST", "/v1/agents/*", DESK_AUTH_PERSON, "agents", desk_handle_agent_post},
    {"GET", "/v1/replies", DESK_AUTH_PERSON, "replies", desk_handle_replies},
    {"GET", "/v1/me/calls", DESK_AUTH_PERSON, "my_calls", desk_handle_my_calls},
    {"POST", "/v1/calls/*", DESK_AUTH_PERSON, "call_ticket", desk_handle_call_post},
};

struct desk_server {
    const desk_config_t *cfg;
    desk_db_t *db;
    desk_events_t *events;
    const desk_www_t *www;
    desk_auth_t *auth;
    struct MHD_Daemon *mhd;
    wasl_offload_t *verify;
    atomic_bool draining;
    wasl_histogram_t *latency;
};

typedef struct {
    desk_server_t *server;
    struct MHD_Connection *conn;
    bool started;
    const route_t *route; /* NULL: a static file (or an unknown API path, answered at once) */
    char *path_arg;
    char *body;
    size_t len, cap;
    bool too_big;
    int64_t started_ms;
    /* The offloaded part of a handler and its answer. */
    bool offloaded, offload_done;
    desk_req_t off_req;
    desk_reply_t off_reply;
    char method[METHOD_MAX];
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
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_decref(r->body);
    r->status = status;
    r->error_code = code;
    r->body =
        json_pack("{s:{s:s, s:s?, s:s}}", "error", "code", code, "field", field, "message", msg);
    return r;
}

static void security_headers(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "Content-Security-Policy", CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
}

static void count_request(desk_server_t *self, const char *endpoint, unsigned status,
                          const char *code, int64_t started_ms)
{
    char labels[128];
    snprintf(labels, sizeof labels, "endpoint=\"%s\",status=\"%u\"", endpoint, status);
    wasl_counter_inc(
        wasl_counter("wasl_desk_requests_total", "Requests by endpoint and status", labels));
    if (code) {
        snprintf(labels, sizeof labels, "endpoint=\"%s\",code=\"%s\"", endpoint, code);
        wasl_counter_inc(wasl_counter("wasl_desk_http_errors_total",
                                      "Error replies by endpoint and error code", labels));
    }
    wasl_histogram_observe(self->latency, (double)(wasl_clock_ms() - started_ms) / 1000.0);
}

static enum MHD_Result send_reply(desk_server_t *self, struct MHD_Connection *conn,
                                  const char *endpoint, desk_reply_t *r, int64_t started_ms)
{
    if (!r->status || (!r->body && r->status != 204)) {
        desk_error(r, 500, "internal", NULL, "no reply was produced");
    }
    count_request(self, endpoint, r->status, r->error_code, started_ms);
    char *text = r->body ? json_dumps(r->body, JSON_COMPACT) : strdup("");
    json_decref(r->body);
    r->body = NULL;
    if (!text) {
        return MHD_NO;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    security_headers(resp);
    if (r->status != 204) {
        MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
    }
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (r->retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", r->retry_after_s);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    if (r->set_cookie[0]) {
        MHD_add_response_header(resp, "Set-Cookie", r->set_cookie);
    }
    enum MHD_Result rc = MHD_queue_response(conn, r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result send_error(desk_server_t *self, struct MHD_Connection *conn,
                                  const char *endpoint, int64_t started_ms, unsigned status,
                                  const char *code, const char *field, const char *msg)
{
    desk_reply_t r = {0};
    desk_error(&r, status, code, field, "%s", msg);
    if (status == 503) {
        r.retry_after_s = RETRY_AFTER_S;
    }
    return send_reply(self, conn, endpoint, &r, started_ms);
}

/* A console file, with the same security headers; HEAD gets the headers only. */
static enum MHD_Result send_static(desk_server_t *self, struct MHD_Connection *conn,
                                   const char *url, const char *method, int64_t started_ms)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        return send_error(self, conn, "static", started_ms, 405, "method_not_allowed", NULL,
                          "the console's files are read with GET");
    }
    const desk_www_file_t *f = desk_www_find(self->www, url);
    if (!f) {
        return send_error(self, conn, "static", started_ms, 404, "not_found", NULL, "no such file");
    }
    count_request(self, "static", 200, NULL, started_ms);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        return MHD_NO;
    }
    security_headers(resp);
    MHD_add_response_header(resp, "Content-Type", f->content_type);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    enum MHD_Result rc = MHD_queue_response(conn, 200, resp);
    MHD_destroy_response(resp);
    return rc;
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
    const char *ct = desk_header(req, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) != 0) {
        desk_error(reply, 415, "unsupported_media_type", NULL,
                   "send Content-Type: application/json");
        return NULL;
    }
    if (!wasl_utf8_valid(req->body, req->len, false)) {
        desk_error(reply, 400, "invalid_utf8", NULL, "the body is not valid UTF-8");
        return NULL;
    }
    json_error_t err;
    json_t *doc = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(doc)) {
        json_decref(doc);
        desk_error(reply, 400, "invalid_json", NULL, "the body must be a JSON object");
        return NULL;
    }
    return doc;
}

desk_conn_t *desk_server_take_db(desk_server_t *self)
{
    return desk_db_take(self->db);
}

void desk_server_give_db(desk_server_t *self, desk_conn_t *conn)
{
    desk_db_give(self->db, conn);
}

static const route_t *match_route(const char *method, const char *url, const char **arg,
                                  bool *wrong_method)
{
    *wrong_method = false;
    *arg = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const route_t *r = &routes[i];
        size_t plen = strlen(r->path);
        bool prefix = r->path[plen - 1] == '*';
        bool ok = prefix ? strncmp(url, r->path, plen - 1) == 0 && url[plen - 1] != '\0'
                         : strcmp(url, r->path) == 0;
        if (!ok) {
            continue;
        }
        if (strcmp(method, r->method) != 0) {
            *wrong_method = true;
            continue;
        }
        *arg = prefix ? url + plen - 1 : NULL;
        return r;
    }
    return NULL;
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

static void offload_run(void *arg)
{
    request_state_t *st = arg;
    st->off_req.db = desk_db_take(st->server->db);
    st->off_req.offload(&st->off_req, &st->off_reply);
    desk_db_give(st->server->db, st->off_req.db);
    st->off_req.db = NULL;
}

static void offload_done(void *arg, bool ran)
{
    request_state_t *st = arg;
    if (!ran) {
        desk_error(&st->off_reply, 503, "unavailable", NULL,
                   "no thread was free to answer before the deadline; retry");
        st->off_reply.retry_after_s = RETRY_AFTER_S;
    }
    st->offload_done = true;
    MHD_resume_connection(st->conn);
}

static enum MHD_Result offload(desk_server_t *self, struct MHD_Connection *conn,
                               request_state_t *st, desk_req_t *req, desk_reply_t *reply)
{
    json_decref(reply->body);
    *reply = (desk_reply_t){0};
    st->off_reply = (desk_reply_t){0};
    snprintf(st->method, sizeof st->method, "%s", req->method);
    st->off_req = *req;
    st->off_req.conn = NULL;
    st->off_req.db = NULL;
    st->off_req.method = st->method;
    st->offloaded = true;
    MHD_suspend_connection(conn);
    if (wasl_offload_submit(self->verify, offload_run, offload_done, st,
                            wasl_clock_ms() + self->cfg->deadline_ms) < 0) {
        desk_error(&st->off_reply, 503, "busy", NULL, "too many sign-ins at once; retry");
        st->off_reply.retry_after_s = RETRY_AFTER_S;
        st->offload_done = true;
        MHD_resume_connection(conn);
    }
    return MHD_YES;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static enum MHD_Result dispatch(desk_server_t *self, struct MHD_Connection *conn,
                                request_state_t *st, const char *method)
{
    const route_t *route = st->route;
    desk_reply_t reply = {0};
    desk_req_t req = {.server = self,
                      .cfg = self->cfg,
                      .conn = conn,
                      .method = method,
                      .path_arg = st->path_arg,
                      .body = st->body ? st->body : "",
                      .len = st->len,
                      .events = self->events};
    client_address(self, conn, req.client_addr);
    if (atomic_load(&self->draining)) {
        return send_error(self, conn, route->endpoint, st->started_ms, 503, "unavailable", NULL,
                          "the desk is shutting down; retry");
    }
    req.db = desk_db_take(self->db);
    if (route->accepts == DESK_AUTH_PUBLIC ||
        desk_auth_request(self->auth, &req, route->accepts, &reply) == 0) {
        route->handle(&req, &reply);
    }
    desk_db_give(self->db, req.db);
    req.db = NULL;
    if (req.offload) {
        return offload(self, conn, st, &req, &reply);
    }
    if (req.stream) {
        count_request(self, route->endpoint, 200, NULL, st->started_ms);
        security_headers(req.stream);
        MHD_add_response_header(req.stream, "Content-Type", "text/event-stream; charset=utf-8");
        MHD_add_response_header(req.stream, "Cache-Control", "no-store");
        MHD_add_response_header(req.stream, "X-Accel-Buffering", "no");
        enum MHD_Result rc = MHD_queue_response(conn, 200, req.stream);
        MHD_destroy_response(req.stream);
        return rc;
    }
    return send_reply(self, conn, route->endpoint, &reply, st->started_ms);
}

static int on_upload(desk_server_t *self, request_state_t *st, const char *data, size_t n)
{
    if (st->too_big || st->len + n > (size_t)self->cfg->json_max) {
        st->too_big = true;
        return 0;
    }
    if (st->len + n + 1 > st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 1024;
        while (cap < st->len + n + 1) {
            cap *= 2;
        }
        char *grown = realloc(st->body, cap);
        if (!grown) {
            return -1;
        }
        st->body = grown;
        st->cap = cap;
    }
    memcpy(st->body + st->len, data, n);
    st->len += n;
    st->body[st->len] = '\0';
    return 0;
}

/* The headers of a request: its route, or an answer at once (a file, 404, 405, 413). MHD_YES
 * with *answered false to go on reading the body. */
static enum MHD_Result on_headers(desk_server_t *self, request_state_t *st,
                                  struct MHD_Connection *conn, const char *url, const char *method,
                                  bool *answered)
{
    *answered = true;
    if (strncmp(url, "/v1/", 4) != 0) {
        return send_static(self, conn, url, method, st->started_ms);
    }
    bool wrong_method;
    const char *arg;
    st->route = match_route(method, url, &arg, &wrong_method);
    if (!st->route) {
        return wrong_method ? send_error(self, conn, "unknown", st->started_ms, 405,
                                         "method_not_allowed", NULL, "method not allowed here")
                            : send_error(self, conn, "unknown", st->started_ms, 404, "not_found",
                                         NULL, "no such endpoint");
    }
    if (arg && !(st->path_arg = strdup(arg))) {
        return MHD_NO;
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > (unsigned long long)self->cfg->json_max) {
        return send_error(self, conn, st->route->endpoint, st->started_ms, 413, "too_large", NULL,
                          "the request body is too large");
    }
    *answered = false;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    desk_server_t *self = cls;
    request_state_t *st = *con_cls;
    if (!st) {
        if (!(st = calloc(1, sizeof *st))) {
            return MHD_NO;
        }
        st->server = self;
        st->conn = conn;
        st->started_ms = wasl_clock_ms();
        *con_cls = st;
    }
    if (!st->started) {
        st->started = true;
        bool answered;
        enum MHD_Result rc = on_headers(self, st, conn, url, method, &answered);
        if (answered || rc == MHD_NO) {
            st->route = NULL;
            st->offload_done = true; /* marks "answered": later calls do nothing */
            return rc;
        }
        return MHD_YES;
    }
    if (!st->route) {
        return MHD_NO;
    }
    if (st->offloaded) {
        assert(st->offload_done);
        desk_reply_t r = st->off_reply;
        st->off_reply.body = NULL;
        return send_reply(self, conn, st->route->endpoint, &r, st->started_ms);
    }
    if (*upload_size) {
        int rc = on_upload(self, st, upload, *upload_size);
        *upload_size = 0;
        return rc == 0 ? MHD_YES : MHD_NO;
    }
    if (st->too_big) {
        return send_error(self, conn, st->route->endpoint, st->started_ms, 413, "too_large", NULL,
                          "the request body is too large");
    }
    return dispatch(self, conn, st, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    request_state_t *st = *con_cls;
    if (!st) {
        return;
    }
    json_decref(st->off_reply.body);
    if (st->off_req.offload_free) {
        st->off_req.offload_free(st->off_req.offload_arg);
    }
    free(st->path_arg);
    if (st->body) {
        sodium_memzero(st->body, st->cap);
    }
    free(st->body);
    free(st);
    *con_cls = NULL;
}

desk_server_t *desk_server_new(const desk_config_t *cfg, desk_db_t *db, desk_events_t *events,
                               const desk_www_t *www, desk_auth_t *auth)
{
    desk_server_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    *self = (desk_server_t){.cfg = cfg, .db = db, .events = events, .www = www, .auth = auth};
    atomic_init(&self->draining, false);
    self->latency = wasl_histogram("wasl_desk_request_seconds", "Time to answer a request", NULL,
                                   wasl_latency_buckets_s, wasl_latency_buckets_n);
    self->verify =
        wasl_offload_new("desk_verify", (size_t)cfg->verify_threads, (size_t)cfg->verify_queue);
    struct sockaddr_in a4 = {0};
    struct sockaddr_in6 a6 = {0};
    struct sockaddr *addr = NULL;
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;
    if (inet_pton(AF_INET, cfg->bind, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)cfg->port);
        addr = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, cfg->bind, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)cfg->port);
        addr = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        wasl_error("desk: WASL_DESK_BIND is not an IP address", "{s:s}", "bind", cfg->bind);
    }
    if (addr && self->verify) {
        self->mhd = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, self,
                                     MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_THREAD_POOL_SIZE,
                                     (unsigned)cfg->threads, MHD_OPTION_CONNECTION_LIMIT,
                                     (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
                                     (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED,
                                     on_completed, self, MHD_OPTION_END);
        if (!self->mhd) {
            wasl_error("desk: cannot listen", "{s:s, s:i, s:s}", "bind", cfg->bind, "port",
                       (int)cfg->port, "error", strerror(errno));
        }
    }
    if (!self->mhd) {
        wasl_offload_destroy(&self->verify);
        free(self);
        return NULL;
    }
    return self;
}

void desk_server_drain(desk_server_t *self)
{
    atomic_store(&self->draining, true);
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
    MHD_stop_daemon(self->mhd);
    free(self);
    *self_p = NULL;
}
