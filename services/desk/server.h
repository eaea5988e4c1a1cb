/* server — wasl-desk's HTTP port on the shared edge (common/wasl_http): its routes, sessions
 * and CSRF on every request, security headers, the console's files, event streams, and the
 * sign-ins offloaded to the verification threads. */
#ifndef WASL_DESK_SERVER_H
#define WASL_DESK_SERVER_H

#include "addr.h"
#include "auth.h"
#include "db.h"
#include "desk.h"
#include "events.h"
#include "wasl_http.h"
#include "wasl_session.h"
#include "www.h"

#include <jansson.h>
#include <microhttpd.h>

typedef struct desk_server desk_server_t;

/* A handler's answer: the shared edge's reply (common/wasl_http). `body` NULL with status 204
 * is an empty answer; set_cookie is sent when not empty. */
typedef wasl_http_reply_t desk_reply_t;

/* What a handler sees of one request. Borrowed for the handler's call. */
typedef struct desk_req {
    desk_server_t *server;
    const desk_config_t *cfg;
    struct MHD_Connection *conn; /* NULL in an offloaded part */
    const char *method;
    const char *path_arg; /* {id} of /v1/offers/{id}/…, the rest of the path */
    const char *body;
    size_t len;
    const char *media_type; /* of the body: lower-cased, no parameters; "" when none */
    bool has_session;
    wasl_session_t session;     /* a person's (has_session) */
    desk_principal_t principal; /* who asks: a person or a token (services/desk/auth.h) */
    desk_conn_t *db;            /* taken for the request; NULL in the offloaded part */
    desk_events_t *events;
    char client_addr[DESK_ADDR_BUF];
    /* Out: the rest of the handler, to run on a verification thread (the login's Argon2). It
     * gets its own connection pair; `offload_arg` is freed with offload_free when the request
     * ends. */
    void (*offload)(struct desk_req *req, desk_reply_t *reply);
    void *offload_arg;
    void (*offload_free)(void *arg);
    /* Out: an event stream instead of a reply. */
    struct MHD_Response *stream;
} desk_req_t;

typedef void(desk_handler_fn)(desk_req_t *req, desk_reply_t *reply);

/* Starts the server. Everything is borrowed. NULL (logged) on failure. */
desk_server_t *desk_server_new(const desk_config_t *cfg, desk_db_t *db, desk_events_t *events,
                               const desk_www_t *www, desk_auth_t *auth);
/* 503 to every new request from now on. */
void desk_server_drain(desk_server_t *self);
/* Finishes the queued logins and stops the verification threads. */
void desk_server_stop_offload(desk_server_t *self);
/* Closes the port. The event streams must have been ended first (desk_events_stop). */
void desk_server_destroy(desk_server_t **self_p);

/* ---- for handlers ---- */
desk_reply_t *desk_error(desk_reply_t *r, unsigned status, const char *code, const char *field,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));
const char *desk_header(const desk_req_t *req, const char *name);
/* The body as a JSON object (an empty body is {}); NULL with a 400/415 in reply. */
json_t *desk_body_json(const desk_req_t *req, desk_reply_t *reply);
/* A string field of a request body, for every handler of the desk: absent or null is *out NULL
 * (a 400 missing_field naming it with DESK_FIELD_REQUIRED); not a string, longer than `max`
 * bytes, holding a NUL, or — with DESK_FIELD_NONBLANK — only spaces, is a 400 invalid_field
 * naming it. *out borrows from doc. Returns 0 or -1 (reply set). */
enum { DESK_FIELD_OPTIONAL = 0, DESK_FIELD_REQUIRED = 1 << 0, DESK_FIELD_NONBLANK = 1 << 1 };
int desk_str_field(json_t *doc, const char *key, unsigned flags, size_t max, const char **out,
                   desk_reply_t *reply);
/* The answer when the database fails a handler: logged with `what`, 503 + Retry-After. */
void desk_db_failed(desk_reply_t *reply, const char *what);
/* A connection pair for an offloaded part, and its return. */
desk_conn_t *desk_server_take_db(desk_server_t *self);
void desk_server_give_db(desk_server_t *self, desk_conn_t *conn);

/* The handlers (services/desk/api.c). */
desk_handler_fn desk_handle_login, desk_handle_logout, desk_handle_logout_all, desk_handle_me,
    desk_handle_me_offers, desk_handle_presence, desk_handle_offer, desk_handle_events;

#endif
