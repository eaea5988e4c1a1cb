/* server — intake's public HTTP port on the shared edge (common/wasl_http): its routes, the
 * authentication on headers and body, the in-flight body budget, writer jobs and offloaded
 * handler parts. */
#ifndef WASL_INTAKE_SERVER_H
#define WASL_INTAKE_SERVER_H

#include "auth.h"
#include "intake.h"
#include "writer.h"

#include "wasl_http.h"

typedef struct intake_server intake_server_t;

/* The thread pools that run slow parts of handlers (wasl_offload). */
typedef enum {
    INTAKE_POOL_LOOKUP = 0, /* waits on caselookup: many threads, little CPU */
    INTAKE_POOL_PARSE,      /* CPU-bound parsing (email): about one thread per core */
    INTAKE_POOL_COUNT
} intake_pool_t;

/* What a handler sees of one request. Everything is borrowed for the handler's call. */
typedef struct intake_request {
    wasl_http_conn_t *conn; /* NULL in an offloaded part */
    const intake_config_t *cfg;
    const char *method;
    const char *path_arg; /* the {ref} of /v1/tickets/{ref}, else NULL */
    const char *body;     /* NUL-terminated copy of the request body */
    size_t len;
    const char *content_type; /* media type only, lower-cased, no parameters; "" when absent */
    intake_client_t client;
    intake_auth_t *auth; /* for the thread's Redis connection */
    int64_t deadline_ms;
    /* Out: a job to run on a writer instead of an immediate reply (the server submits it). */
    intake_job_t *job;
    /* Out: the rest of the handler, to run off the HTTP thread because it waits on a slow
     * dependency (caselookup) or may take long (parsing an email). The server suspends the
     * connection and calls offload(req, reply) on a pool thread of `offload_pool` before the
     * request's deadline (else 503); there it fills reply or sets req->job like any handler.
     * On that thread conn is NULL (no headers or query): copy what it needs into offload_arg,
     * which the server frees with offload_arg_free when the request completes. */
    void (*offload)(struct intake_request *req, intake_reply_t *reply);
    intake_pool_t offload_pool;
    void *offload_arg;
    void (*offload_arg_free)(void *arg);
} intake_request_t;

/* A handler either fills `reply`, sets req->job, or sets req->offload. */
typedef void(intake_handler_fn)(intake_request_t *req, intake_reply_t *reply);

/* Starts the server on cfg->http_bind:http_port. All arguments are borrowed. NULL (logged) on
 * failure. */
intake_server_t *intake_server_new(const intake_config_t *cfg, intake_auth_t *auth,
                                   intake_writers_t *writers);
/* Stops taking connections and closes the port; safe twice. In-flight jobs are answered by the
 * writers before they stop, so call this after intake_writers_destroy() has drained... see
 * main.c for the order. */
void intake_server_destroy(intake_server_t **self_p);
/* Refuse new requests with 503 from now on (graceful drain). */
void intake_server_drain(intake_server_t *self);
/* After the drain, before the writers stop: finishes every offloaded handler part (they may
 * still hand transactions to the writers) and stops their threads. */
void intake_server_stop_offload(intake_server_t *self);

/* ---- helpers for handlers ---- */

/* A request header or query argument (NULL when absent, and always NULL in an offloaded
 * part, where conn is NULL). */
const char *intake_header(const intake_request_t *req, const char *name);
const char *intake_query(const intake_request_t *req, const char *name, size_t *len);

/* Parses the body as a JSON object. On failure fills reply (415 unless the content type is
 * JSON, 400 invalid_utf8 / invalid_json) and returns NULL. New reference. */
json_t *intake_body_json(const intake_request_t *req, intake_reply_t *reply);

/* application/x-www-form-urlencoded, decoded. */
typedef struct {
    char *key;
    char *value;
    size_t value_len;
} intake_form_field_t;
typedef struct {
    intake_form_field_t *fields;
    size_t n;
} intake_form_t;
/* Parses `text` (len bytes); returns 0 or -1 on a malformed escape or allocation failure. */
int intake_form_parse(intake_form_t *form, const char *text, size_t len);
const char *intake_form_get(const intake_form_t *form, const char *key, size_t *len);
void intake_form_clear(intake_form_t *form);

/* Typed getters on a JSON object that fill `reply` with a 400/413 naming `field` on a wrong type
 * or size, and return -1; 0 with *out NULL when absent and not required. Strings are borrowed
 * from the object. */
int intake_json_str(json_t *obj, const char *key, const char *field, bool required,
                    size_t max_bytes, const char **out, intake_reply_t *reply);
int intake_json_int(json_t *obj, const char *key, const char *field, bool required, long long min,
                    long long max, long long *out, bool *present, intake_reply_t *reply);

/* Checks an RFC 3339 timestamp ("2026-11-28T09:41:02Z", "…+03:00", fractions allowed). */
bool intake_rfc3339_valid(const char *s);

#endif
