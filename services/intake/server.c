/* server — intake's public HTTP port on the shared edge (common/wasl_http): routes,
 * authentication, the in-flight body budget, writer jobs and offloaded handler parts. */
#include "server.h"
#include "handlers.h"
#include "wasl_clock.h"
#include "wasl_log.h"
#include "wasl_metrics.h"
#include "wasl_offload.h"
#include "wasl_text.h"

#include <assert.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SERVER_CONNECTION_LIMIT     10000
#define SERVER_CONNECTION_TIMEOUT_S 30
#define RETRY_AFTER_S               WASL_HTTP_RETRY_AFTER_S
/* Longest method we keep a copy of for an offloaded handler (DELETE, OPTIONS…). */
#define METHOD_MAX 16
/* Bytes of a request path kept for the signature; MHD refuses longer lines anyway (its
 * connection memory limit). */
#define TARGET_MAX 8192

/* A route of the shared table (wasl_http_route_t first) and what intake adds to it. */
typedef struct {
    wasl_http_route_t http; /* method, path, metric label, large_body: the email limit */
    unsigned scope;
    bool query_token; /* a ?token= is accepted (gateways that cannot send headers) */
    intake_handler_fn *handle;
} route_t;

static const route_t routes[] = {
    {{"POST", "/v1/reports", "reports", false}, INTAKE_SCOPE_REPORTS, false, intake_handle_report},
    {{"POST", "/v1/calls/events", "calls", false},
     INTAKE_SCOPE_CALLS,
     false,
     intake_handle_call_event},
    {{"POST", "/v1/cti", "cti", false}, INTAKE_SCOPE_CALLS, false, intake_handle_cti},
    {{"GET|POST", "/v1/sms/inbound", "sms", false}, INTAKE_SCOPE_SMS, true, intake_handle_sms},
    {{"GET|POST", "/v1/sms/dlr", "sms_dlr", false}, INTAKE_SCOPE_SMS, true, intake_handle_sms_dlr},
    {{"POST", "/v1/email/inbound", "email", true}, INTAKE_SCOPE_EMAIL, false, intake_handle_email},
    {{"GET", "/v1/tickets/{}", "tickets", false},
     INTAKE_SCOPE_TICKETS_READ,
     false,
     intake_handle_ticket_get},
    {{"GET", "/v1/cases/{}", "cases", false}, INTAKE_SCOPE_CASES, false, intake_handle_case_get},
};

struct intake_server {
    const intake_config_t *cfg;
    intake_auth_t *auth;
    intake_writers_t *writers;
    wasl_http_t *http;
    wasl_offload_t *pools[INTAKE_POOL_COUNT];
    /* Bytes of request bodies reserved across every connection (WASL_INTAKE_INFLIGHT_MAX). */
    atomic_size_t inflight;
    size_t inflight_max;
    wasl_gauge_t *inflight_gauge;
    wasl_counter_t *refused_budget;
};

/* Intake's part of one request (wasl_http_state), zeroed by the edge. */
typedef struct {
    intake_server_t *server; /* for the offloaded part */
    /* Authentication done on the headers; a signed request is finished on its body. */
    bool authenticated, signed_pending;
    intake_client_t client;
    intake_job_t *job; /* submitted, waiting for a writer */
    /* An offloaded handler part: its own copy of the request. */
    intake_request_t off_req;
    char method[METHOD_MAX];
    char ctype[128];
} request_state_t;

static const route_t *route_of(const wasl_http_conn_t *c)
{
    /* The edge hands back the entry of our table it matched; wasl_http_route_t is its first
     * member. */
    return (const route_t *)wasl_http_route(c);
}

/* ---- replies and request helpers ---------------------------------------------------------- */

intake_reply_t *intake_error(intake_reply_t *r, unsigned status, const char *code,
                             const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    wasl_http_verror(r, status, code, field, fmt, ap);
    va_end(ap);
    return r;
}

const char *intake_header(const intake_request_t *req, const char *name)
{
    return req->conn ? wasl_http_header(req->conn, name) : NULL;
}

const char *intake_query(const intake_request_t *req, const char *name, size_t *len)
{
    return req->conn ? wasl_http_query(req->conn, name, len) : NULL;
}

json_t *intake_body_json(const intake_request_t *req, intake_reply_t *reply)
{
    return wasl_http_json_object(req->content_type, req->body, req->len, reply);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..len) ('+' is a space); returns a new buffer (NUL-terminated) or NULL. */
static char *form_decode(const char *s, size_t len, size_t *out_len)
{
    char *out = malloc(len + 1);
    if (!out) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%') {
            if (i + 2 >= len || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

int intake_form_parse(intake_form_t *form, const char *text, size_t len)
{
    memset(form, 0, sizeof *form);
    size_t start = 0;
    while (start <= len) {
        size_t end = start;
        while (end < len && text[end] != '&') {
            end++;
        }
        if (end > start) {
            const char *eq = memchr(text + start, '=', end - start);
            size_t klen = eq ? (size_t)(eq - (text + start)) : end - start;
            const char *v = eq ? eq + 1 : text + end;
            size_t vlen = eq ? (size_t)(text + end - v) : 0;
            intake_form_field_t *grown =
                realloc(form->fields, (form->n + 1) * sizeof *form->fields);
            if (!grown) {
                intake_form_clear(form);
                return -1;
            }
            form->fields = grown;
            intake_form_field_t *f = &form->fields[form->n];
            size_t kl;
            f->key = form_decode(text + start, klen, &kl);
            f->value = form_decode(v, vlen, &f->value_len);
            if (!f->key || !f->value) {
                free(f->key);
                free(f->value);
                intake_form_clear(form);
                return -1;
            }
            form->n++;
        }
        start = end + 1;
    }
    return 0;
}

const char *intake_form_get(const intake_form_t *form, const char *key, size_t *len)
{
    for (size_t i = 0; i < form->n; i++) {
        if (strcmp(form->fields[i].key, key) == 0) {
            if (len) {
                *len = form->fields[i].value_len;
            }
            return form->fields[i].value;
        }
    }
    return NULL;
}

void intake_form_clear(intake_form_t *form)
{
    for (size_t i = 0; i < form->n; i++) {
        free(form->fields[i].key);
        free(form->fields[i].value);
    }
    free(form->fields);
    memset(form, 0, sizeof *form);
}

int intake_json_str(json_t *obj, const char *key, const char *field, bool required,
                    size_t max_bytes, const char **out, intake_reply_t *reply)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required) {
            intake_error(reply, 400, "missing_field", field, "%s is required", field);
            return -1;
        }
        return 0;
    }
    if (!json_is_string(v)) {
        intake_error(reply, 400, "invalid_field", field, "%s must be a string", field);
        return -1;
    }
    size_t len = json_string_length(v);
    if (len > max_bytes) {
        unsigned status = strcmp(field, "body") == 0 ? 413 : 400;
        intake_error(reply, status, status == 413 ? "too_large" : "invalid_field", field,
                     "%s is longer than %zu bytes", field, max_bytes);
        return -1;
    }
    if (required && len == 0) {
        intake_error(reply, 400, "invalid_field", field, "%s must not be empty", field);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

int intake_json_int(json_t *obj, const char *key, const char *field, bool required, long long min,
                    long long max, long long *out, bool *present, intake_reply_t *reply)
{
    json_t *v = json_object_get(obj, key);
    *present = false;
    if (!v || json_is_null(v)) {
        if (required) {
            intake_error(reply, 400, "missing_field", field, "%s is required", field);
            return -1;
        }
        return 0;
    }
    long long n;
    if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if (json_is_string(v) && wasl_parse_number(json_string_value(v), &n) == 0) {
        /* A number typed by a person or sent as text by a PBX ("٣", "3"). */
    } else {
        intake_error(reply, 400, "invalid_field", field, "%s must be an integer", field);
        return -1;
    }
    if (n < min || n > max) {
        intake_error(reply, 400, "invalid_field", field, "%s must be in %lld..%lld", field, min,
                     max);
        return -1;
    }
    *out = n;
    *present = true;
    return 0;
}

bool intake_rfc3339_valid(const char *s)
{
    /* YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM) */
    int y, mo, d, h, mi, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%*[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
        n != 19) {
        return false;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970) {
        return false;
    }
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) {
            return false;
        }
        while (isdigit((unsigned char)*p)) {
            p++;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        return p[1] == '\0';
    }
    if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
        p[3] == ':' && isdigit((unsigned char)p[4]) && isdigit((unsigned char)p[5]) &&
        p[6] == '\0') {
        return true;
    }
    return false;
}

/* ---- the in-flight body budget ------------------------------------------------------------ */

/* Takes n bytes of the server's budget; false (nothing taken) when they do not fit. */
static bool budget_take(intake_server_t *self, size_t n)
{
    size_t cur = atomic_load(&self->inflight);
    do {
        if (n > self->inflight_max - cur) {
            return false;
        }
    } while (!atomic_compare_exchange_weak(&self->inflight, &cur, cur + n));
    wasl_gauge_add(self->inflight_gauge, (double)n);
    return true;
}

static void budget_give(intake_server_t *self, size_t n)
{
    if (n) {
        atomic_fetch_sub(&self->inflight, n);
        wasl_gauge_add(self->inflight_gauge, -(double)n);
    }
}

/* The edge's reserve hook: a body's declared length before its first byte, then the steps of a
 * chunked one. */
static int reserve_body(void *arg, wasl_http_conn_t *c, size_t bytes, intake_reply_t *r)
{
    (void)c;
    intake_server_t *self = arg;
    if (budget_take(self, bytes)) {
        return 0;
    }
    wasl_counter_inc(self->refused_budget);
    intake_error(r, 503, "busy", NULL,
                 "intake holds as many request bodies as it may right now; retry");
    r->retry_after_s = RETRY_AFTER_S;
    return -1;
}

/* ---- authentication on the headers ---------------------------------------------------------- */

/* What the request presents, with the target split as sent. `path` is a buffer of TARGET_MAX
 * bytes. */
static void credentials(wasl_http_conn_t *c, const char *method, char *path,
                        intake_credentials_t *cred)
{
    const char *target = wasl_http_target(c);
    size_t plen = strcspn(target, "?");
    if (plen >= TARGET_MAX) {
        plen = TARGET_MAX - 1;
    }
    memcpy(path, target, plen);
    path[plen] = '\0';
    const char *query_token = NULL;
    if (route_of(c)->query_token) {
        query_token = wasl_http_query(c, "token", NULL);
    }
    *cred = (intake_credentials_t){
        .authorization = wasl_http_header(c, "Authorization"),
        .signature = wasl_http_header(c, "X-Wasl-Signature"),
        .client_id = wasl_http_header(c, "X-Wasl-Client"),
        .query_token = query_token,
        .method = method,
        .path = path,
        .query = target[plen] == '?' ? target + plen + 1 : "",
    };
}

/* Scope and rate of an authenticated client. 0, or -1 with r filled. */
static int admit_client(intake_server_t *self, wasl_http_conn_t *c, const request_state_t *st,
                        intake_reply_t *r)
{
    if (!(st->client.scopes & route_of(c)->scope)) {
        intake_error(r, 403, "forbidden", NULL, "client %s may not use %s", st->client.id,
                     route_of(c)->http.path);
        return -1;
    }
    return intake_auth_rate(self->auth, &st->client, r);
}

/* The edge's admit hook, headers only: authenticates bearer and query tokens in full and signed
 * requests as far as the headers go, so that nothing of a body is read for a caller who may not
 * send it. 0, or -1 with r filled. */
static int admit_headers(void *arg, wasl_http_conn_t *c, const char *method, intake_reply_t *r)
{
    intake_server_t *self = arg;
    request_state_t *st = wasl_http_state(c);
    char path[TARGET_MAX];
    intake_credentials_t cred;
    credentials(c, method, path, &cred);
    int rc = intake_auth_precheck(self->auth, &cred, &st->client, r);
    if (rc < 0) {
        return -1;
    }
    st->signed_pending = rc == INTAKE_AUTH_NEEDS_BODY;
    st->authenticated = !st->signed_pending;
    return st->authenticated ? admit_client(self, c, st, r) : 0;
}

/* ---- writer jobs and offloaded handler parts ----------------------------------------------- */

static void on_job_done(intake_job_t *job)
{
    /* Called from a writer or the reaper, once: the job's reply answers the request. */
    wasl_http_resume(job->on_done_arg, &job->reply);
}

/* Hands the handler's job to a writer; the request is suspended already. 0, or -1 when the
 * writers are stopping (r filled). Ownership: the state keeps the handler's reference. */
static int submit_job(intake_server_t *self, wasl_http_conn_t *c, intake_job_t *job,
                      intake_reply_t *r)
{
    request_state_t *st = wasl_http_state(c);
    st->job = job;
    job->on_done = on_job_done;
    job->on_done_arg = c;
    if (intake_writers_submit(self->writers, job) == 0) {
        return 0; /* from here the writer may resume c, which may then be gone */
    }
    intake_error(r, 503, "unavailable", NULL, "intake is shutting down; retry");
    r->retry_after_s = RETRY_AFTER_S;
    return -1;
}

/* The offloaded part, on a pool thread: true with the reply, or false when it made a
 * transaction that is now a writer's, which resumes the request. */
static bool offload_work(wasl_http_conn_t *c, intake_reply_t *reply)
{
    request_state_t *st = wasl_http_state(c);
    st->off_req.offload(&st->off_req, reply);
    if (!st->off_req.job) {
        return true;
    }
    json_decref(reply->body);
    *reply = (intake_reply_t){0};
    intake_job_t *job = st->off_req.job;
    st->off_req.job = NULL;
    return submit_job(st->server, c, job, reply) < 0;
}

/* Suspends the request and hands the handler's remaining part to its pool. The request is
 * copied into the state: what the handler's first part saw on this thread's stack is gone when
 * the pool runs it. */
static void offload(intake_server_t *self, wasl_http_conn_t *c, intake_request_t *req,
                    intake_reply_t *reply)
{
    request_state_t *st = wasl_http_state(c);
    json_decref(reply->body); /* a handler that offloads has not replied */
    *reply = (intake_reply_t){0};
    snprintf(st->method, sizeof st->method, "%s", req->method);
    snprintf(st->ctype, sizeof st->ctype, "%s", req->content_type);
    st->off_req = *req;
    st->off_req.conn = NULL;
    st->off_req.method = st->method;
    st->off_req.content_type = st->ctype;
    st->server = self;
    if (wasl_http_offload(c, self->pools[req->offload_pool], offload_work, req->deadline_ms) < 0) {
        intake_error(reply, 503, "unavailable", NULL,
                     "too many requests are waiting for a slow dependency; retry");
        reply->retry_after_s = RETRY_AFTER_S;
    }
}

/* The edge's handle hook: the whole body is in. */
static void dispatch(void *arg, wasl_http_conn_t *c, const char *method, intake_reply_t *reply)
{
    intake_server_t *self = arg;
    request_state_t *st = wasl_http_state(c);
    const route_t *route = route_of(c);
    char ctype[128];
    size_t len;
    const char *body = wasl_http_body(c, &len);
    intake_request_t req = {
        .conn = c,
        .cfg = self->cfg,
        .method = method,
        .path_arg = wasl_http_path_arg(c),
        .body = body,
        .len = len,
        .content_type = wasl_http_media_type(c, ctype, sizeof ctype),
        .deadline_ms = wasl_http_started_ms(c) + self->cfg->deadline_ms,
        .auth = self->auth,
    };
    if (st->signed_pending) {
        char path[TARGET_MAX];
        intake_credentials_t cred;
        credentials(c, method, path, &cred);
        if (intake_auth_check_signed(self->auth, &cred, body, len, &st->client, reply) < 0 ||
            admit_client(self, c, st, reply) < 0) {
            return;
        }
        st->signed_pending = false;
        st->authenticated = true;
    }
    assert(st->authenticated);
    req.client = st->client;
    route->handle(&req, reply);
    if (req.offload) {
        offload(self, c, &req, reply);
    } else if (req.job) {
        json_decref(reply->body);
        *reply = (intake_reply_t){0};
        /* Suspend before submitting, so that a writer only ever resumes a suspended request. */
        wasl_http_suspend(c);
        submit_job(self, c, req.job, reply);
    }
}

/* The edge's done hook: the request is over. */
static void request_done(void *arg, wasl_http_conn_t *c)
{
    intake_server_t *self = arg;
    request_state_t *st = wasl_http_state(c);
    budget_give(self, wasl_http_reserved(c));
    intake_job_release(&st->job);
    intake_job_release(&st->off_req.job);
    if (st->off_req.offload_arg_free) {
        st->off_req.offload_arg_free(st->off_req.offload_arg);
    }
}

/* ---- the server ------------------------------------------------------------------------------ */

static void pools_stop(intake_server_t *self)
{
    for (size_t i = 0; i < INTAKE_POOL_COUNT; i++) {
        if (self->pools[i]) {
            wasl_offload_stop(self->pools[i]);
        }
    }
}

static void pools_destroy(intake_server_t *self)
{
    for (size_t i = 0; i < INTAKE_POOL_COUNT; i++) {
        wasl_offload_destroy(&self->pools[i]);
    }
}

static wasl_http_t *start_http(intake_server_t *self)
{
    const intake_config_t *cfg = self->cfg;
    wasl_http_config_t http = {
        .name = "intake",
        .drain_who = "intake",
        .bind = cfg->http_bind,
        .port = (int)cfg->http_port,
        .threads = (int)cfg->threads,
        .connection_limit = SERVER_CONNECTION_LIMIT,
        .connection_timeout_s = SERVER_CONNECTION_TIMEOUT_S,
        .body_max = (size_t)cfg->json_max,
        .large_body_max = (size_t)cfg->email_max,
        .json_newline = true,
        .state_size = sizeof(request_state_t),
        .routes = routes,
        .route_count = sizeof routes / sizeof routes[0],
        .route_size = sizeof routes[0],
        .hooks = {.admit = admit_headers,
                  .reserve = reserve_body,
                  .handle = dispatch,
                  .unrouted = intake_moved,
                  .done = request_done},
        .arg = self,
    };
    return wasl_http_new(&http);
}

intake_server_t *intake_server_new(const intake_config_t *cfg, intake_auth_t *auth,
                                   intake_writers_t *writers)
{
    intake_server_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->cfg = cfg;
    self->auth = auth;
    self->writers = writers;
    atomic_init(&self->inflight, 0);
    self->inflight_max = (size_t)cfg->inflight_max;
    self->inflight_gauge = wasl_gauge("wasl_intake_inflight_body_bytes",
                                      "Request body bytes reserved by requests in flight", NULL);
    self->refused_budget =
        wasl_counter("wasl_intake_inflight_refused_total",
                     "Requests refused (503) because the in-flight body budget was spent", NULL);
    self->pools[INTAKE_POOL_LOOKUP] =
        wasl_offload_new("intake_lookup", (size_t)cfg->lookup_threads, (size_t)cfg->offload_queue);
    self->pools[INTAKE_POOL_PARSE] =
        wasl_offload_new("intake_parse", (size_t)cfg->parse_threads, (size_t)cfg->offload_queue);
    if (!self->pools[INTAKE_POOL_LOOKUP] || !self->pools[INTAKE_POOL_PARSE] ||
        !(self->http = start_http(self))) {
        pools_destroy(self);
        free(self);
        return NULL;
    }
    return self;
}

void intake_server_drain(intake_server_t *self)
{
    wasl_http_drain(self->http);
}

void intake_server_stop_offload(intake_server_t *self)
{
    /* Lets the queued parts run (or answers them 503 past their deadline) and joins the
     * threads; what they submit still reaches the writers, which stop after this. The pools
     * stay allocated (a late submit is refused) until intake_server_destroy(). */
    pools_stop(self);
}

void intake_server_destroy(intake_server_t **self_p)
{
    assert(self_p);
    intake_server_t *self = *self_p;
    if (!self) {
        return;
    }
    pools_destroy(self);
    wasl_http_destroy(&self->http);
    free(self);
    *self_p = NULL;
}
