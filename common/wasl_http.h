/* wasl_http — the HTTP edge intake and the desk share: one libmicrohttpd server with a route
 * table, bodies read under a limit, JSON replies and errors, a request suspended while another
 * thread works on it and resumed with its answer, drain, and the per-endpoint metrics. What is
 * a daemon's own (intake's credentials and body budget, the desk's sessions, CSRF, files and
 * event streams) stays in the daemon and plugs in through the hooks below. */
#ifndef WASL_HTTP_H
#define WASL_HTTP_H

#include "wasl_offload.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wasl_http wasl_http_t;
/* One request in flight, from its first header to its completion. Borrowed by the hooks; valid
 * until the `done` hook has run. */
typedef struct wasl_http_conn wasl_http_conn_t;

/* Room for a Set-Cookie value (a session cookie and its attributes). */
#define WASL_HTTP_COOKIE_MAX 192
/* Seconds a client is told to wait (Retry-After) when the edge answers 503 itself. */
#define WASL_HTTP_RETRY_AFTER_S 2

/* An answer. Plain data; the body and `raw` are owned by the reply until it is sent. */
typedef struct wasl_http_reply {
    unsigned status;
    json_t *body;           /* NULL only with 204 (an empty answer) or with raw */
    int retry_after_s;      /* > 0: a Retry-After header */
    const char *error_code; /* a string literal, for the error metric; NULL on success */
    char set_cookie[WASL_HTTP_COOKIE_MAX]; /* "" for none */
    /* A response the daemon prepared itself (a file, an event stream) with its own
     * Content-Type: sent as is with `status`, plus the headers hook's. */
    struct MHD_Response *raw;
} wasl_http_reply_t;

/* Fills r with {"error":{"code","field","message"}} (field omitted when NULL), dropping any body
 * it had. `code` is a string literal. Returns r. */
wasl_http_reply_t *wasl_http_error(wasl_http_reply_t *r, unsigned status, const char *code,
                                   const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
wasl_http_reply_t *wasl_http_verror(wasl_http_reply_t *r, unsigned status, const char *code,
                                    const char *field, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

/* A 503 with Retry-After: WASL_HTTP_RETRY_AFTER_S. Returns r. */
wasl_http_reply_t *wasl_http_unavailable(wasl_http_reply_t *r, const char *code, const char *msg);

/* Parses a body as one JSON object. `media_type` is the request's, lower-cased without
 * parameters (wasl_http_media_type). NULL with r filled on failure: 415 unsupported_media_type
 * unless it is application/json, 400 invalid_utf8, 400 invalid_json (where, in the message).
 * New reference. */
json_t *wasl_http_json_object(const char *media_type, const char *body, size_t len,
                              wasl_http_reply_t *r);

/* A route. A daemon's table is an array of its own struct whose first member is this one, so
 * that each entry also carries the daemon's handler and flags (wasl_http_config_t.route_size).
 * `path` is exact ("/v1/me"), or ends in "{}" for one path segment as argument
 * ("/v1/tickets/{}") or in "*" for an argument that may hold '/' ("/v1/offers/" "*"). The first
 * route whose path and method match wins; a path that matches with none of its methods is a
 * 405. */
typedef struct {
    const char *method; /* "GET", or several: "GET|PUT|DELETE" */
    const char *path;
    const char *endpoint; /* metric label */
    bool large_body;      /* the config's large_body_max instead of body_max */
} wasl_http_route_t;

/* The pure matcher used by the server (exposed for tests): the route of (method, path) in a
 * table of n entries of `size` bytes each, with *arg the argument (a pointer into path; NULL for
 * an exact path); NULL with *wrong_method set when only the method did not match. */
const wasl_http_route_t *wasl_http_match(const void *routes, size_t n, size_t size,
                                         const char *method, const char *path, const char **arg,
                                         bool *wrong_method);

/* The daemon's part. Every hook may be NULL except handle; each gets the config's `arg`. */
typedef struct {
    /* The headers are in and a route matched; nothing of the body is read yet. Return 0 to go
     * on, or -1 with r filled to answer now (the body is not read: MHD closes the connection). */
    int (*admit)(void *arg, wasl_http_conn_t *c, const char *method, wasl_http_reply_t *r);
    /* The body needs `bytes` more than it holds reserved (the declared Content-Length before the
     * first byte, then steps of a chunked body). 0 to grant them, or -1 with r filled (the rest
     * of the body is read and dropped, then r is sent). Without it every body may reach its
     * limit. */
    int (*reserve)(void *arg, wasl_http_conn_t *c, size_t bytes, wasl_http_reply_t *r);
    /* The whole body is in: fill r, or suspend (wasl_http_suspend / wasl_http_offload) and leave
     * r empty — or, when wasl_http_offload refused, fill r. */
    void (*handle)(void *arg, wasl_http_conn_t *c, const char *method, wasl_http_reply_t *r);
    /* No route matched (wrong_method: the path exists with other methods). Fill r and return
     * the metric label, or return NULL for the edge's JSON 404/405. */
    const char *(*unrouted)(void *arg, wasl_http_conn_t *c, const char *method, const char *url,
                            bool wrong_method, wasl_http_reply_t *r);
    /* Adds headers to every answer (the desk's security headers). */
    void (*headers)(void *arg, struct MHD_Response *resp);
    /* The request is over (answered, or the client went away): release what the daemon's state
     * holds. Runs once for every request that got a connection state. */
    void (*done)(void *arg, wasl_http_conn_t *c);
} wasl_http_hooks_t;

typedef struct {
    const char *name;      /* "intake": metric names wasl_<name>_…, log lines */
    const char *drain_who; /* "intake", "the desk": "<who> is shutting down; retry" */
    const char *bind;      /* an IPv4 or IPv6 address */
    int port;              /* 0 picks a free one (wasl_http_port) */
    int threads;
    unsigned connection_limit;
    unsigned connection_timeout_s;
    size_t body_max, large_body_max;
    bool json_newline; /* end JSON bodies with '\n' (readable in curl) */
    size_t state_size; /* bytes of zeroed per-request state for the daemon (wasl_http_state) */
    const void *routes;
    size_t route_count, route_size;
    wasl_http_hooks_t hooks;
    void *arg;
} wasl_http_config_t;

/* Starts the server (its own threads) on cfg->bind:port. cfg is copied; routes, strings and arg
 * are borrowed for the server's life. NULL (logged) on failure. */
wasl_http_t *wasl_http_new(const wasl_http_config_t *cfg);
/* The port actually bound. */
int wasl_http_port(const wasl_http_t *self);
/* 503 + Retry-After to every new routed request from now on (before its body is read). */
void wasl_http_drain(wasl_http_t *self);
bool wasl_http_draining(const wasl_http_t *self);
/* Closes the port and ends every connection; safe on NULL and twice; NULLs *self_p. No request
 * may be suspended (stop what resumes them first: their pools, intake's writers). */
void wasl_http_destroy(wasl_http_t **self_p);

/* ---- one request (for the hooks) ---- */

/* The daemon's zeroed state of config.state_size bytes, aligned for any type. */
void *wasl_http_state(wasl_http_conn_t *c);
/* The matched route (the daemon's struct begins with it); NULL in `unrouted`. */
const wasl_http_route_t *wasl_http_route(const wasl_http_conn_t *c);
/* The path argument (see wasl_http_route_t), or NULL. */
const char *wasl_http_path_arg(const wasl_http_conn_t *c);
/* The request target as the client sent it (path and query, undecoded; for signatures). */
const char *wasl_http_target(const wasl_http_conn_t *c);
/* The body read so far (NUL-terminated; "" when none) and its length. */
const char *wasl_http_body(const wasl_http_conn_t *c, size_t *len);
/* Bytes of the body's reservation granted by the reserve hook (for the done hook to return). */
size_t wasl_http_reserved(const wasl_http_conn_t *c);
/* When the first header arrived (wasl_clock_ms). */
int64_t wasl_http_started_ms(const wasl_http_conn_t *c);
/* The libmicrohttpd connection (an event stream suspends and resumes it itself). */
struct MHD_Connection *wasl_http_mhd(wasl_http_conn_t *c);
/* A header, query argument or cookie; NULL when absent. Only on the HTTP thread, before the
 * request is suspended. */
const char *wasl_http_header(wasl_http_conn_t *c, const char *name);
const char *wasl_http_query(wasl_http_conn_t *c, const char *name, size_t *len);
const char *wasl_http_cookie(wasl_http_conn_t *c, const char *name);
/* The Content-Type's media type, lower-cased, without parameters or spaces, in buf ("" when
 * absent). Returns buf. */
const char *wasl_http_media_type(wasl_http_conn_t *c, char *buf, size_t cap);

/* ---- suspension ---- */

/* From `handle` only: the answer comes later from another thread with wasl_http_resume. */
void wasl_http_suspend(wasl_http_conn_t *c);
/* Answers a suspended request with *reply (taken: the caller's copy is zeroed) from any thread.
 * Exactly once per suspension. */
void wasl_http_resume(wasl_http_conn_t *c, wasl_http_reply_t *reply);

/* A slow part, run on a pool thread: fill reply and return true, or return false when it handed
 * the request on to another thread, which will wasl_http_resume it. */
typedef bool(wasl_http_work_fn)(wasl_http_conn_t *c, wasl_http_reply_t *reply);

/* From `handle` only: suspends the request and runs work(c, …) on `pool` before `deadline_ms`
 * (monotonic; 0 for none); if the deadline passes while it waits, the answer is 503
 * unavailable with Retry-After. Returns 0 (leave the handler's reply empty), or -1 when the
 * pool refused it (full or stopping): then work never runs and the handler fills its reply. */
int wasl_http_offload(wasl_http_conn_t *c, wasl_offload_t *pool, wasl_http_work_fn *work,
                      int64_t deadline_ms);

#endif
