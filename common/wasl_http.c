/* wasl_http — the HTTP edge intake and the desk share (see wasl_http.h). */
#include "wasl_http.h"
#include "wasl_clock.h"
#include "wasl_log.h"
#include "wasl_metrics.h"
#include "wasl_text.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Bytes of a request target (path and query) kept for signatures; MHD refuses longer lines
 * anyway (its connection memory limit). */
#define TARGET_MAX 8192
/* Bodies arrive in MHD's reads (a few KiB); a chunked body is reserved a step at a time, and
 * this first step saves a round through the daemon's reserve hook (intake's atomics) for the
 * usual case. */
#define CHUNKED_RESERVE_STEP (64 * 1024)
/* A body buffer starts this big and doubles. */
#define BODY_FIRST_CAP  4096
#define METRIC_NAME_MAX 96

struct wasl_http {
    wasl_http_config_t cfg;
    struct MHD_Daemon *mhd;
    atomic_bool draining;
    wasl_histogram_t *latency;
    wasl_counter_t *refused_early;
    char requests_name[METRIC_NAME_MAX], errors_name[METRIC_NAME_MAX];
};

struct wasl_http_conn {
    wasl_http_t *server;
    struct MHD_Connection *mhd;
    const wasl_http_route_t *route;
    const char *label; /* metric label when no route matched */
    char *target;
    char *path_arg;
    char *body;
    size_t len, cap, limit, reserved;
    int64_t started_ms;
    bool started;   /* the headers were seen */
    bool answered;  /* a response is queued: later calls end the request */
    bool refused;   /* the body was refused (too big, reserve hook): `reply` goes at its end */
    bool suspended; /* by the handler: `reply` is set by whoever resumes */
    wasl_http_reply_t reply;
    wasl_http_work_fn *work;
    alignas(max_align_t) unsigned char state[];
};

/* ---- replies ------------------------------------------------------------------------------- */

wasl_http_reply_t *wasl_http_verror(wasl_http_reply_t *r, unsigned status, const char *code,
                                    const char *field, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    json_decref(r->body);
    r->status = status;
    r->error_code = code;
    r->body =
        json_pack("{s:{s:s, s:s?, s:s}}", "error", "code", code, "field", field, "message", msg);
    return r;
}

wasl_http_reply_t *wasl_http_error(wasl_http_reply_t *r, unsigned status, const char *code,
                                   const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    wasl_http_verror(r, status, code, field, fmt, ap);
    va_end(ap);
    return r;
}

wasl_http_reply_t *wasl_http_unavailable(wasl_http_reply_t *r, const char *code, const char *msg)
{
    wasl_http_error(r, 503, code, NULL, "%s", msg);
    r->retry_after_s = WASL_HTTP_RETRY_AFTER_S;
    return r;
}

json_t *wasl_http_json_object(const char *media_type, const char *body, size_t len,
                              wasl_http_reply_t *r)
{
    if (strcmp(media_type, "application/json") != 0) {
        wasl_http_error(r, 415, "unsupported_media_type", NULL,
                        "send Content-Type: application/json (got \"%s\")", media_type);
        return NULL;
    }
    if (!wasl_utf8_valid(body, len, false)) {
        wasl_http_error(r, 400, "invalid_utf8", NULL, "the body is not valid UTF-8");
        return NULL;
    }
    json_error_t err;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    if (!doc) {
        wasl_http_error(r, 400, "invalid_json", NULL, "malformed JSON at line %d column %d: %s",
                        err.line, err.column, err.text);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        wasl_http_error(r, 400, "invalid_json", NULL, "the body must be a JSON object");
        return NULL;
    }
    return doc;
}

static void count_request(wasl_http_t *self, const char *endpoint, const wasl_http_reply_t *r,
                          int64_t started_ms)
{
    char labels[128];
    snprintf(labels, sizeof labels, "endpoint=\"%s\",status=\"%u\"", endpoint, r->status);
    wasl_counter_inc(wasl_counter(self->requests_name, "Requests by endpoint and status", labels));
    if (r->error_code) {
        snprintf(labels, sizeof labels, "endpoint=\"%s\",code=\"%s\"", endpoint, r->error_code);
        wasl_counter_inc(
            wasl_counter(self->errors_name, "Error replies by endpoint and error code", labels));
    }
    wasl_histogram_observe(self->latency, (double)(wasl_clock_ms() - started_ms) / 1000.0);
}

/* The JSON text of a reply (taking its body), with the optional newline; NULL on failure. */
static char *reply_text(const wasl_http_t *self, wasl_http_reply_t *r, size_t *len)
{
    char *text = r->body ? json_dumps(r->body, JSON_COMPACT) : strdup("");
    json_decref(r->body);
    r->body = NULL;
    if (!text) {
        return NULL;
    }
    *len = strlen(text);
    if (self->cfg.json_newline && *len) {
        /* A trailing newline makes curl output readable; clients parse JSON either way. */
        char *with_nl = realloc(text, *len + 2);
        if (with_nl) {
            text = with_nl;
            text[(*len)++] = '\n';
            text[*len] = '\0';
        }
    }
    return text;
}

static struct MHD_Response *json_response(const wasl_http_t *self, wasl_http_reply_t *r)
{
    size_t len;
    char *text = reply_text(self, r, &len);
    if (!text) {
        return NULL;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return NULL;
    }
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
    return resp;
}

/* Queues r on the request (taking its body or raw response) and counts it. */
static enum MHD_Result send_reply(wasl_http_conn_t *c, wasl_http_reply_t *r)
{
    wasl_http_t *self = c->server;
    c->answered = true;
    if (!r->raw && (!r->status || (!r->body && r->status != 204))) {
        wasl_http_error(r, 500, "internal", NULL, "no reply was produced");
    }
    count_request(self,
                  c->route   ? c->route->endpoint
                  : c->label ? c->label
                             : "unknown",
                  r, c->started_ms);
    struct MHD_Response *resp = r->raw ? r->raw : json_response(self, r);
    r->raw = NULL;
    if (!resp) {
        return MHD_NO;
    }
    if (self->cfg.hooks.headers) {
        self->cfg.hooks.headers(self->cfg.arg, resp);
    }
    enum MHD_Result rc = MHD_queue_response(c->mhd, r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* ---- routes -------------------------------------------------------------------------------- */

/* True when `method` is one of the '|'-separated words of `list`. */
static bool method_allowed(const char *list, const char *method)
{
    size_t mlen = strlen(method);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, "|");
        if (len == mlen && strncmp(p, method, len) == 0) {
            return true;
        }
        p += len + (p[len] == '|');
    }
    return false;
}

/* Does `path` match route path `pattern`? *arg is where the argument starts (NULL if none). */
static bool path_matches(const char *pattern, const char *path, const char **arg)
{
    size_t plen = strlen(pattern);
    bool rest = plen >= 1 && pattern[plen - 1] == '*';
    bool segment = plen >= 2 && strcmp(pattern + plen - 2, "{}") == 0;
    *arg = NULL;
    if (!rest && !segment) {
        return strcmp(pattern, path) == 0;
    }
    plen -= rest ? 1 : 2;
    if (strncmp(path, pattern, plen) != 0 || path[plen] == '\0' ||
        (segment && strchr(path + plen, '/'))) {
        return false;
    }
    *arg = path + plen;
    return true;
}

const wasl_http_route_t *wasl_http_match(const void *routes, size_t n, size_t size,
                                         const char *method, const char *path, const char **arg,
                                         bool *wrong_method)
{
    *wrong_method = false;
    *arg = NULL;
    for (size_t i = 0; i < n; i++) {
        const wasl_http_route_t *r =
            (const wasl_http_route_t *)((const unsigned char *)routes + i * size);
        const char *a;
        if (!path_matches(r->path, path, &a)) {
            continue;
        }
        if (!method_allowed(r->method, method)) {
            *wrong_method = true;
            continue;
        }
        *arg = a;
        return r;
    }
    return NULL;
}

/* ---- one request: accessors ---------------------------------------------------------------- */

void *wasl_http_state(wasl_http_conn_t *c)
{
    return c->state;
}

const wasl_http_route_t *wasl_http_route(const wasl_http_conn_t *c)
{
    return c->route;
}

const char *wasl_http_path_arg(const wasl_http_conn_t *c)
{
    return c->path_arg;
}

const char *wasl_http_target(const wasl_http_conn_t *c)
{
    return c->target ? c->target : "";
}

const char *wasl_http_body(const wasl_http_conn_t *c, size_t *len)
{
    if (len) {
        *len = c->len;
    }
    return c->body ? c->body : "";
}

size_t wasl_http_reserved(const wasl_http_conn_t *c)
{
    return c->reserved;
}

int64_t wasl_http_started_ms(const wasl_http_conn_t *c)
{
    return c->started_ms;
}

struct MHD_Connection *wasl_http_mhd(wasl_http_conn_t *c)
{
    return c->mhd;
}

const char *wasl_http_header(wasl_http_conn_t *c, const char *name)
{
    return MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, name);
}

const char *wasl_http_cookie(wasl_http_conn_t *c, const char *name)
{
    return MHD_lookup_connection_value(c->mhd, MHD_COOKIE_KIND, name);
}

const char *wasl_http_query(wasl_http_conn_t *c, const char *name, size_t *len)
{
    const char *value = NULL;
    size_t vlen = 0;
    if (MHD_lookup_connection_value_n(c->mhd, MHD_GET_ARGUMENT_KIND, name, strlen(name), &value,
                                      &vlen) != MHD_YES) {
        return NULL;
    }
    if (len) {
        *len = vlen;
    }
    return value ? value : "";
}

const char *wasl_http_media_type(wasl_http_conn_t *c, char *buf, size_t cap)
{
    const char *ct = wasl_http_header(c, "Content-Type");
    size_t o = 0;
    for (const char *p = ct ? ct : ""; *p && *p != ';' && o + 1 < cap; p++) {
        if (!isspace((unsigned char)*p)) {
            buf[o++] = (char)tolower((unsigned char)*p);
        }
    }
    buf[o] = '\0';
    return buf;
}

/* ---- suspension ---------------------------------------------------------------------------- */

void wasl_http_suspend(wasl_http_conn_t *c)
{
    assert(!c->suspended);
    c->suspended = true;
    MHD_suspend_connection(c->mhd);
}

void wasl_http_resume(wasl_http_conn_t *c, wasl_http_reply_t *reply)
{
    assert(c->suspended);
    c->reply = *reply;
    *reply = (wasl_http_reply_t){0};
    /* After this call the HTTP thread may answer and free c at any moment. */
    MHD_resume_connection(c->mhd);
}

/* Runs on a pool thread. A work that answers is resumed from here: once it handed the request
 * on, the other thread may resume and free it, so nothing of c is touched after work(). */
static void offload_run(void *arg)
{
    wasl_http_conn_t *c = arg;
    wasl_http_reply_t r = {0};
    if (c->work(c, &r)) {
        wasl_http_resume(c, &r);
    } else {
        json_decref(r.body);
    }
}

static void offload_done(void *arg, bool ran)
{
    if (!ran) {
        wasl_http_reply_t r = {0};
        wasl_http_unavailable(&r, "unavailable",
                              "no thread was free to answer before the deadline; retry");
        wasl_http_resume(arg, &r);
    }
}

int wasl_http_offload(wasl_http_conn_t *c, wasl_offload_t *pool, wasl_http_work_fn *work,
                      int64_t deadline_ms)
{
    c->work = work;
    /* Suspend before submitting, so that a pool thread only ever resumes a suspended
     * connection; a refusal is answered by the handler (see on_body_done). */
    wasl_http_suspend(c);
    return wasl_offload_submit(pool, offload_run, offload_done, c, deadline_ms);
}

/* ---- the MHD callbacks ---------------------------------------------------------------------- */

static void drain_reply(const wasl_http_t *self, wasl_http_reply_t *r)
{
    wasl_http_error(r, 503, "unavailable", NULL, "%s is shutting down; retry", self->cfg.drain_who);
    r->retry_after_s = WASL_HTTP_RETRY_AFTER_S;
}

/* Asks the daemon for `bytes` more of reservation; 0, or -1 with c->reply filled. */
static int reserve(wasl_http_conn_t *c, size_t bytes)
{
    wasl_http_t *self = c->server;
    if (!self->cfg.hooks.reserve) {
        c->reserved += bytes;
        return 0;
    }
    if (self->cfg.hooks.reserve(self->cfg.arg, c, bytes, &c->reply) < 0) {
        return -1;
    }
    c->reserved += bytes;
    return 0;
}

/* A matched route's headers: drain, transfer coding, the daemon's admission, the declared
 * length. 0 to read the body, or -1 with c->reply to send now. */
static int admit_headers(wasl_http_conn_t *c, const char *method)
{
    wasl_http_t *self = c->server;
    if (atomic_load(&self->draining)) {
        drain_reply(self, &c->reply);
        return -1;
    }
    /* MHD frames only chunked bodies; with any other transfer coding it would wait for the end
     * of a body it cannot find until the connection times out (found by fuzz_http). */
    const char *te = wasl_http_header(c, "Transfer-Encoding");
    if (te && strcasecmp(te, "chunked") != 0) {
        wasl_http_error(&c->reply, 400, "invalid_field", "Transfer-Encoding",
                        "only Transfer-Encoding: chunked is supported (or send Content-Length)");
        return -1;
    }
    if (self->cfg.hooks.admit && self->cfg.hooks.admit(self->cfg.arg, c, method, &c->reply) < 0) {
        return -1;
    }
    const char *cl = wasl_http_header(c, "Content-Length");
    unsigned long long declared = cl ? strtoull(cl, NULL, 10) : 0;
    if (declared > c->limit) {
        wasl_http_error(&c->reply, 413, "too_large", NULL, "the request is over %zu bytes",
                        c->limit);
        return -1;
    }
    /* A declared body is reserved whole before its first byte is read; a chunked one as it
     * arrives (on_upload). */
    return declared > 0 ? reserve(c, (size_t)declared) : 0;
}

static enum MHD_Result on_headers(wasl_http_conn_t *c, const char *url, const char *method)
{
    wasl_http_t *self = c->server;
    bool wrong_method;
    const char *arg;
    c->route = wasl_http_match(self->cfg.routes, self->cfg.route_count, self->cfg.route_size,
                               method, url, &arg, &wrong_method);
    if (!c->route) {
        wasl_http_reply_t r = {0};
        if (self->cfg.hooks.unrouted) {
            c->label = self->cfg.hooks.unrouted(self->cfg.arg, c, method, url, wrong_method, &r);
        }
        if (!c->label) {
            json_decref(r.body);
            r = (wasl_http_reply_t){0};
            if (wrong_method) {
                wasl_http_error(&r, 405, "method_not_allowed", NULL, "%s is not allowed on %s",
                                method, url);
            } else {
                wasl_http_error(&r, 404, "not_found", NULL, "no endpoint %s", url);
            }
        }
        return send_reply(c, &r);
    }
    if (arg && !(c->path_arg = strdup(arg))) {
        return MHD_NO;
    }
    c->limit = c->route->large_body ? self->cfg.large_body_max : self->cfg.body_max;
    if (admit_headers(c, method) < 0) {
        /* Answered before the body: MHD reads no more of it and closes the connection. */
        wasl_counter_inc(self->refused_early);
        return send_reply(c, &c->reply);
    }
    return MHD_YES;
}

/* Stores one piece of the body, reserving what goes beyond the reservation. 0, or -1 when the
 * body is refused (c->refused and c->reply set) or memory ran out (c->refused unset). */
static int on_upload(wasl_http_conn_t *c, const char *upload, size_t n)
{
    if (c->len + n > c->limit) {
        wasl_http_error(&c->reply, 413, "too_large", NULL, "the request is over %zu bytes",
                        c->limit);
        c->refused = true;
        return -1;
    }
    if (c->len + n > c->reserved) {
        /* Chunked (or longer than declared, which MHD does not allow): reserve a step. */
        size_t need = c->len + n - c->reserved;
        size_t step = need > CHUNKED_RESERVE_STEP ? need : CHUNKED_RESERVE_STEP;
        if (step > c->limit - c->reserved) {
            step = need;
        }
        if (reserve(c, step) < 0) {
            c->refused = true;
            return -1;
        }
    }
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : BODY_FIRST_CAP;
        while (cap < c->len + n + 1) {
            cap *= 2;
        }
        /* Never more than the reservation (+1 for the NUL): the reservation is real memory. */
        if (cap > c->reserved + 1) {
            cap = c->reserved + 1;
        }
        char *grown = realloc(c->body, cap);
        if (!grown) {
            return -1;
        }
        c->body = grown;
        c->cap = cap;
    }
    memcpy(c->body + c->len, upload, n);
    c->len += n;
    c->body[c->len] = '\0';
    return 0;
}

/* The whole body is in: the daemon's handler answers now or suspends. */
static enum MHD_Result on_body_done(wasl_http_conn_t *c, const char *method)
{
    wasl_http_t *self = c->server;
    wasl_http_reply_t r = {0};
    if (atomic_load(&self->draining)) {
        drain_reply(self, &r);
        return send_reply(c, &r);
    }
    self->cfg.hooks.handle(self->cfg.arg, c, method, &r);
    if (!c->suspended) {
        return send_reply(c, &r);
    }
    if (r.status || r.raw) {
        /* Suspended, then the hand-off was refused: the handler answered itself. Nobody else
         * holds the request, so it is resumed here and answered on MHD's next call. */
        c->reply = r;
        MHD_resume_connection(c->mhd);
    }
    return MHD_YES;
}

/* MHD's first notice of a request, before its headers are parsed: keeps the request target as
 * sent (MHD hands on_request the decoded path without the query). The return value becomes the
 * connection's *con_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    wasl_http_t *self = cls;
    wasl_http_conn_t *c = calloc(1, sizeof *c + self->cfg.state_size);
    if (!c) {
        return NULL;
    }
    c->server = self;
    c->mhd = conn;
    c->started_ms = wasl_clock_ms();
    c->target = strndup(uri ? uri : "", TARGET_MAX);
    return c;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    wasl_http_conn_t *c = *con_cls;
    if (!c && !(c = *con_cls = on_uri(cls, url, conn))) {
        return MHD_NO;
    }
    if (!c->started) {
        c->started = true;
        return on_headers(c, url, method);
    }
    if (c->answered) {
        return MHD_NO;
    }
    if (c->suspended) {
        /* Resumed: whoever resumed left the answer. */
        c->suspended = false;
        wasl_http_reply_t r = c->reply;
        c->reply = (wasl_http_reply_t){0};
        return send_reply(c, &r);
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        /* Refused in the middle (too big, over a budget): the rest is read and dropped, and the
         * answer comes at the end — a reply sent while the client still writes is lost to the
         * TCP reset of closing a socket with unread data. */
        return c->refused || on_upload(c, upload, n) == 0 || c->refused ? MHD_YES : MHD_NO;
    }
    if (c->refused) {
        wasl_http_reply_t r = c->reply;
        c->reply = (wasl_http_reply_t){0};
        return send_reply(c, &r);
    }
    return on_body_done(c, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    wasl_http_t *self = cls;
    wasl_http_conn_t *c = *con_cls;
    if (!c) {
        return;
    }
    if (self->cfg.hooks.done) {
        self->cfg.hooks.done(self->cfg.arg, c);
    }
    json_decref(c->reply.body);
    if (c->reply.raw) {
        MHD_destroy_response(c->reply.raw);
    }
    if (c->body) {
        /* Bodies carry passwords (the desk's sign-in). */
        explicit_bzero(c->body, c->cap);
    }
    free(c->body);
    free(c->target);
    free(c->path_arg);
    free(c);
    *con_cls = NULL;
}

/* ---- the server ----------------------------------------------------------------------------- */

static struct MHD_Daemon *start(wasl_http_t *self)
{
    const wasl_http_config_t *cfg = &self->cfg;
    struct sockaddr_in a4 = {0};
    struct sockaddr_in6 a6 = {0};
    struct sockaddr *addr;
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
        wasl_error("http: the bind address is not an IP address", "{s:s, s:s}", "server", cfg->name,
                   "bind", cfg->bind);
        return NULL;
    }
    struct MHD_Daemon *mhd = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, on_request, self, MHD_OPTION_SOCK_ADDR, addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads, MHD_OPTION_CONNECTION_LIMIT,
        cfg->connection_limit, MHD_OPTION_CONNECTION_TIMEOUT, cfg->connection_timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, self, MHD_OPTION_URI_LOG_CALLBACK, on_uri, self,
        MHD_OPTION_END);
    if (!mhd) {
        wasl_error("http: cannot listen", "{s:s, s:s, s:i, s:s}", "server", cfg->name, "bind",
                   cfg->bind, "port", cfg->port, "error", strerror(errno));
    }
    return mhd;
}

wasl_http_t *wasl_http_new(const wasl_http_config_t *cfg)
{
    assert(cfg->hooks.handle && cfg->route_size >= sizeof(wasl_http_route_t));
    wasl_http_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->cfg = *cfg;
    atomic_init(&self->draining, false);
    char name[METRIC_NAME_MAX];
    snprintf(self->requests_name, sizeof self->requests_name, "wasl_%s_requests_total", cfg->name);
    snprintf(self->errors_name, sizeof self->errors_name, "wasl_%s_http_errors_total", cfg->name);
    snprintf(name, sizeof name, "wasl_%s_request_seconds", cfg->name);
    self->latency = wasl_histogram(name, "Time to answer a request", NULL, wasl_latency_buckets_s,
                                   wasl_latency_buckets_n);
    snprintf(name, sizeof name, "wasl_%s_refused_before_body_total", cfg->name);
    self->refused_early = wasl_counter(name,
                                       "Requests answered on their headers, before any body byte "
                                       "was read (credentials, scope, rate, size, budget)",
                                       NULL);
    if (!(self->mhd = start(self))) {
        free(self);
        return NULL;
    }
    return self;
}

int wasl_http_port(const wasl_http_t *self)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->mhd, MHD_DAEMON_INFO_BIND_PORT);
    return info ? (int)info->port : -1;
}

void wasl_http_drain(wasl_http_t *self)
{
    atomic_store(&self->draining, true);
}

bool wasl_http_draining(const wasl_http_t *self)
{
    return atomic_load(&((wasl_http_t *)self)->draining);
}

void wasl_http_destroy(wasl_http_t **self_p)
{
    assert(self_p);
    wasl_http_t *self = *self_p;
    if (!self) {
        return;
    }
    MHD_stop_daemon(self->mhd);
    free(self);
    *self_p = NULL;
}
