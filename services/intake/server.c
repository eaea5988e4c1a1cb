/* server — intake's public HTTP port: routing, body limits, authentication, replies, metrics. */
#include "server.h"
#include "wasl_clock.h"
#include "handlers.h"
#include "wasl_log.h"
#include "wasl_metrics.h"
#include "wasl_offload.h"
#include "wasl_text.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SERVER_CONNECTION_LIMIT     10000
#define SERVER_CONNECTION_TIMEOUT_S 30
#define RETRY_AFTER_S               2
/* Longest method we keep a copy of for an offloaded handler (DELETE, OPTIONS…). */
#define METHOD_MAX 16
/* Bytes of a request target (path and query) kept for the signature; MHD refuses longer lines
 * anyway (its connection memory limit). */
#define TARGET_MAX 8192
/* Bodies arrive in MHD's reads (a few KiB); a chunked body is charged to the budget a step at a
 * time, and this first reservation saves a round through the atomics for the usual case. */
#define CHUNKED_RESERVE_STEP (64 * 1024)

typedef struct {
    const char *method; /* "GET", "POST", or "GET|POST" */
    const char *path;   /* exact, or a prefix ending in '/' for a path argument, or in "/" "*"
                         * for an argument that may hold '/' (/v1/agents/{id}/presence) */
    bool has_arg;
    const char *endpoint; /* metric label */
    unsigned scope;
    bool email_sized; /* the email limit instead of the JSON one */
    bool query_token; /* a ?token= is accepted (gateways that cannot send headers) */
    intake_handler_fn *handle;
} route_t;

static const route_t routes[] = {
    {"POST", "/v1/reports", false, "reports", INTAKE_SCOPE_REPORTS, false, false,
     intake_handle_report},
    {"POST", "/v1/calls/events", false, "calls", INTAKE_SCOPE_CALLS, false, false,
     intake_handle_call_event},
    {"POST", "/v1/cti", false, "cti", INTAKE_SCOPE_CALLS, false, false, intake_handle_cti},
    {"GET|POST", "/v1/sms/inbound", false, "sms", INTAKE_SCOPE_SMS, false, true, intake_handle_sms},
    {"GET|POST", "/v1/sms/dlr", false, "sms_dlr", INTAKE_SCOPE_SMS, false, true,
     intake_handle_sms_dlr},
    {"POST", "/v1/email/inbound", false, "email", INTAKE_SCOPE_EMAIL, true, false,
     intake_handle_email},
    {"GET", "/v1/tickets/", true, "tickets", INTAKE_SCOPE_TICKETS_READ, false, false,
     intake_handle_ticket_get},
    {"GET", "/v1/cases/", true, "cases", INTAKE_SCOPE_CASES, false, false, intake_handle_case_get},
    /* The agent desk (services/intake/agents.c). */
    {"GET", "/v1/agents", false, "agents", INTAKE_SCOPE_AGENTS, false, false, intake_handle_agents},
    {"GET|PUT|DELETE", "/v1/agents/*", true, "agents", INTAKE_SCOPE_AGENTS, false, false,
     intake_handle_agents},
    {"POST", "/v1/offers/*", true, "offers", INTAKE_SCOPE_AGENTS, false, false,
     intake_handle_offers},
    {"GET", "/v1/queues/*", true, "queues", INTAKE_SCOPE_AGENTS, false, false,
     intake_handle_queues},
    {"POST", "/v1/tickets/*", true, "ticket_actions", INTAKE_SCOPE_AGENTS, false, false,
     intake_handle_ticket_action},
};

struct intake_server {
    const intake_config_t *cfg;
    intake_auth_t *auth;
    intake_writers_t *writers;
    struct MHD_Daemon *mhd;
    atomic_bool draining;
    wasl_histogram_t *latency;
    wasl_offload_t *pools[INTAKE_POOL_COUNT];
    /* Bytes of request bodies reserved across every connection (WASL_INTAKE_INFLIGHT_MAX). */
    atomic_size_t inflight;
    size_t inflight_max;
    wasl_gauge_t *inflight_gauge;
    wasl_counter_t *refused_budget;
    wasl_counter_t *refused_early; /* refused on the headers, before any body byte was read */
};

/* Per-connection request state, from the first callback to the completion notice. */
typedef struct {
    const route_t *route;
    char *target; /* the request target as sent (path?query), for signatures */
    char *path_arg;
    char *body;
    size_t len, cap, limit;
    size_t reserved; /* bytes of the in-flight budget this request holds */
    bool too_big;
    bool over_budget;
    /* Authentication done on the headers; a signed request is finished on its body. */
    bool authenticated, signed_pending;
    intake_client_t client;
    int64_t started_ms;
    intake_job_t *job; /* submitted, waiting for a writer */
    /* An offloaded handler part: its own copy of the request, and its reply. */
    bool started; /* the headers were seen (the first call of on_request) */
    bool offloaded, offload_done;
    intake_request_t off_req;
    intake_reply_t off_reply;
    char method[METHOD_MAX];
    char ctype[128];
    intake_server_t *server;
    struct MHD_Connection *conn;
} request_state_t;

/* ---- replies ---------------------------------------------------------------------------- */

intake_reply_t *intake_error(intake_reply_t *r, unsigned status, const char *code,
                             const char *field, const char *fmt, ...)
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

static void count_request(intake_server_t *self, const char *endpoint, const intake_reply_t *r,
                          int64_t started_ms)
{
    char labels[128];
    snprintf(labels, sizeof labels, "endpoint=\"%s\",status=\"%u\"", endpoint, r->status);
    wasl_counter_inc(
        wasl_counter("wasl_intake_requests_total", "Requests by endpoint and status", labels));
    if (r->error_code) {
        snprintf(labels, sizeof labels, "endpoint=\"%s\",code=\"%s\"", endpoint, r->error_code);
        wasl_counter_inc(wasl_counter("wasl_intake_http_errors_total",
                                      "Error replies by endpoint and error code", labels));
    }
    wasl_histogram_observe(self->latency, (double)(wasl_clock_ms() - started_ms) / 1000.0);
}

/* Queues `r` on the connection (taking its body). */
static enum MHD_Result send_reply(intake_server_t *self, struct MHD_Connection *conn,
                                  const char *endpoint, intake_reply_t *r, int64_t started_ms)
{
    if (!r->body || !r->status) {
        intake_error(r, 500, "internal", NULL, "no reply was produced");
    }
    count_request(self, endpoint, r, started_ms);
    char *text = json_dumps(r->body, JSON_COMPACT);
    json_decref(r->body);
    r->body = NULL;
    if (!text) {
        return MHD_NO;
    }
    size_t len = strlen(text);
    /* A trailing newline makes curl output readable; clients parse JSON either way. */
    char *with_nl = realloc(text, len + 2);
    if (with_nl) {
        text = with_nl;
        text[len++] = '\n';
        text[len] = '\0';
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (r->retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", r->retry_after_s);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    enum MHD_Result rc = MHD_queue_response(conn, r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* ---- request helpers -------------------------------------------------------------------- */

const char *intake_header(const intake_request_t *req, const char *name)
{
    return req->conn ? MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name) : NULL;
}

const char *intake_query(const intake_request_t *req, const char *name, size_t *len)
{
    const char *value = NULL;
    size_t vlen = 0;
    if (!req->conn || MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, name,
                                                    strlen(name), &value, &vlen) != MHD_YES) {
        return NULL;
    }
    if (len) {
        *len = vlen;
    }
    return value ? value : "";
}

json_t *intake_body_json(const intake_request_t *req, intake_reply_t *reply)
{
    if (strcmp(req->content_type, "application/json") != 0) {
        intake_error(reply, 415, "unsupported_media_type", NULL,
                     "send Content-Type: application/json (got \"%s\")", req->content_type);
        return NULL;
    }
    if (!wasl_utf8_valid(req->body, req->len, false)) {
        intake_error(reply, 400, "invalid_utf8", NULL, "the body is not valid UTF-8");
        return NULL;
    }
    json_error_t err;
    json_t *doc = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, &err);
    if (!doc) {
        intake_error(reply, 400, "invalid_json", NULL, "malformed JSON at line %d column %d: %s",
                     err.line, err.column, err.text);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        intake_error(reply, 400, "invalid_json", NULL, "the body must be a JSON object");
        return NULL;
    }
    return doc;
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

/* ---- the MHD callbacks ------------------------------------------------------------------ */

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

static const route_t *match_route(const char *method, const char *url, const char **arg,
                                  bool *method_mismatch)
{
    *method_mismatch = false;
    *arg = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const route_t *r = &routes[i];
        size_t plen = strlen(r->path);
        bool sub_path = plen > 0 && r->path[plen - 1] == '*';
        plen -= sub_path;
        bool path_ok = r->has_arg ? strncmp(url, r->path, plen) == 0 && url[plen] != '\0' &&
                                        (sub_path || !strchr(url + plen, '/'))
                                  : strcmp(url, r->path) == 0;
        if (!path_ok) {
            continue;
        }
        if (!method_allowed(r->method, method)) {
            *method_mismatch = true;
            continue;
        }
        *arg = r->has_arg ? url + plen : NULL;
        return r;
    }
    return NULL;
}

static void on_job_done(intake_job_t *job)
{
    /* Called from a writer or the reaper: wake the connection so MHD calls us again. */
    MHD_resume_connection(job->on_done_arg);
}

/* Lower-cased media type of the request without parameters, in buf. */
static const char *media_type(struct MHD_Connection *conn, char *buf, size_t cap)
{
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    size_t o = 0;
    for (const char *p = ct ? ct : ""; *p && *p != ';' && o + 1 < cap; p++) {
        if (!isspace((unsigned char)*p)) {
            buf[o++] = (char)tolower((unsigned char)*p);
        }
    }
    buf[o] = '\0';
    return buf;
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

static void refuse_over_budget(intake_server_t *self, intake_reply_t *r)
{
    wasl_counter_inc(self->refused_budget);
    intake_error(r, 503, "busy", NULL,
                 "intake holds as many request bodies as it may right now; retry");
    r->retry_after_s = RETRY_AFTER_S;
}

/* ---- authentication on the headers ---------------------------------------------------------- */

/* What the request presents, with the target split as sent. `path` is a buffer of TARGET_MAX
 * bytes. */
static void credentials(const request_state_t *st, struct MHD_Connection *conn, const char *method,
                        char *path, intake_credentials_t *cred)
{
    const char *target = st->target ? st->target : "";
    size_t plen = strcspn(target, "?");
    if (plen >= TARGET_MAX) {
        plen = TARGET_MAX - 1;
    }
    memcpy(path, target, plen);
    path[plen] = '\0';
    const char *query_token = NULL;
    if (st->route->query_token) {
        query_token = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token");
    }
    *cred = (intake_credentials_t){
        .authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"),
        .signature = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Wasl-Signature"),
        .client_id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Wasl-Client"),
        .query_token = query_token,
        .method = method,
        .path = path,
        .query = target[plen] == '?' ? target + plen + 1 : "",
    };
}

/* Scope and rate of an authenticated client. 0, or -1 with r filled. */
static int admit_client(intake_server_t *self, const request_state_t *st, intake_reply_t *r)
{
    if (!(st->client.scopes & st->route->scope)) {
        intake_error(r, 403, "forbidden", NULL, "client %s may not use %s", st->client.id,
                     st->route->path);
        return -1;
    }
    return intake_auth_rate(self->auth, &st->client, r);
}

/* The first callback, headers only: authenticates bearer and query tokens in full and signed
 * requests as far as the headers go, so that nothing of a body is read for a caller who may not
 * send it; then reserves the body's declared size from the budget. 0, or -1 with r filled. */
static int admit_headers(intake_server_t *self, request_state_t *st, struct MHD_Connection *conn,
                         const char *method, intake_reply_t *r)
{
    if (atomic_load(&self->draining)) {
        intake_error(r, 503, "unavailable", NULL, "intake is shutting down; retry");
        r->retry_after_s = RETRY_AFTER_S;
        return -1;
    }
    /* MHD frames only chunked bodies; with any other transfer coding it would wait for the
     * end of a body it cannot find until the connection times out (found by fuzz_http). */
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
    if (te && strcasecmp(te, "chunked") != 0) {
        intake_error(r, 400, "invalid_field", "Transfer-Encoding",
                     "only Transfer-Encoding: chunked is supported (or send Content-Length)");
        return -1;
    }
    char path[TARGET_MAX];
    intake_credentials_t cred;
    credentials(st, conn, method, path, &cred);
    int rc = intake_auth_precheck(self->auth, &cred, &st->client, r);
    if (rc < 0) {
        return -1;
    }
    st->signed_pending = rc == INTAKE_AUTH_NEEDS_BODY;
    st->authenticated = !st->signed_pending;
    if (st->authenticated && admit_client(self, st, r) < 0) {
        return -1;
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    unsigned long long declared = cl ? strtoull(cl, NULL, 10) : 0;
    if (declared > st->limit) {
        intake_error(r, 413, "too_large", NULL, "the request is over %zu bytes", st->limit);
        return -1;
    }
    /* A declared body is reserved whole before its first byte is read; a chunked one is charged
     * as it arrives (on_upload). */
    if (declared > 0) {
        if (!budget_take(self, (size_t)declared)) {
            refuse_over_budget(self, r);
            return -1;
        }
        st->reserved = (size_t)declared;
    }
    return 0;
}

/* ---- offloaded handler parts -------------------------------------------------------------- */

static void offload_run(void *arg)
{
    request_state_t *st = arg;
    st->off_req.offload(&st->off_req, &st->off_reply);
}

static void offload_done(void *arg, bool ran)
{
    request_state_t *st = arg;
    if (!ran) {
        json_decref(st->off_reply.body);
        st->off_reply = (intake_reply_t){0};
        intake_error(&st->off_reply, 503, "unavailable", NULL,
                     "no thread was free to answer before the deadline; retry");
        st->off_reply.retry_after_s = RETRY_AFTER_S;
    } else if (st->off_req.job) {
        /* The handler's part made a transaction: on to a writer, the connection stays
         * suspended until the writer (or the reaper) resumes it. Ownership: the state keeps
         * the handler's reference to the job. */
        json_decref(st->off_reply.body);
        st->off_reply.body = NULL;
        st->job = st->off_req.job;
        st->off_req.job = NULL;
        st->job->on_done = on_job_done;
        st->job->on_done_arg = st->conn;
        if (intake_writers_submit(st->server->writers, st->job) == 0) {
            return;
        }
        intake_reply_t r = {0};
        intake_error(&r, 503, "unavailable", NULL, "intake is shutting down; retry");
        r.retry_after_s = RETRY_AFTER_S;
        st->job->reply = r;
        atomic_store(&st->job->state, 1);
    }
    st->offload_done = true;
    MHD_resume_connection(st->conn);
}

/* Suspends the connection and hands the handler's remaining part to its pool. The request is
 * copied into the state: what the handler's first part saw on this thread's stack is gone when
 * the pool runs it. */
static enum MHD_Result offload(intake_server_t *self, struct MHD_Connection *conn,
                               request_state_t *st, intake_request_t *req, intake_reply_t *reply)
{
    json_decref(reply->body); /* a handler that offloads has not replied */
    *reply = (intake_reply_t){0};
    st->off_reply = (intake_reply_t){0};
    snprintf(st->method, sizeof st->method, "%s", req->method);
    snprintf(st->ctype, sizeof st->ctype, "%s", req->content_type);
    st->off_req = *req;
    st->off_req.conn = NULL;
    st->off_req.method = st->method;
    st->off_req.content_type = st->ctype;
    st->offloaded = true;
    MHD_suspend_connection(conn);
    wasl_offload_t *pool = self->pools[req->offload_pool];
    if (wasl_offload_submit(pool, offload_run, offload_done, st, req->deadline_ms) < 0) {
        intake_error(&st->off_reply, 503, "unavailable", NULL,
                     "too many requests are waiting for a slow dependency; retry");
        st->off_reply.retry_after_s = RETRY_AFTER_S;
        st->offload_done = true;
        MHD_resume_connection(conn);
    }
    return MHD_YES;
}

static enum MHD_Result dispatch(intake_server_t *self, struct MHD_Connection *conn,
                                request_state_t *st, const char *method)
{
    const route_t *route = st->route;
    intake_reply_t reply = {0};
    char ctype[128];
    intake_request_t req = {
        .conn = conn,
        .cfg = self->cfg,
        .method = method,
        .path_arg = st->path_arg,
        .body = st->body ? st->body : "",
        .len = st->len,
        .content_type = media_type(conn, ctype, sizeof ctype),
        .deadline_ms = st->started_ms + self->cfg->deadline_ms,
        .auth = self->auth,
    };
    if (atomic_load(&self->draining)) {
        intake_error(&reply, 503, "unavailable", NULL, "intake is shutting down; retry");
        reply.retry_after_s = RETRY_AFTER_S;
        return send_reply(self, conn, route->endpoint, &reply, st->started_ms);
    }
    if (st->signed_pending) {
        char path[TARGET_MAX];
        intake_credentials_t cred;
        credentials(st, conn, method, path, &cred);
        if (intake_auth_check_signed(self->auth, &cred, req.body, req.len, &st->client, &reply) <
                0 ||
            admit_client(self, st, &reply) < 0) {
            return send_reply(self, conn, route->endpoint, &reply, st->started_ms);
        }
        st->signed_pending = false;
        st->authenticated = true;
    }
    assert(st->authenticated);
    req.client = st->client;
    route->handle(&req, &reply);
    if (req.offload) {
        return offload(self, conn, st, &req, &reply);
    }
    if (!req.job) {
        return send_reply(self, conn, route->endpoint, &reply, st->started_ms);
    }
    json_decref(reply.body);
    /* Suspend before submitting, so that a writer can only ever resume a suspended
     * connection. Ownership: the state keeps the handler's reference to the job. */
    st->job = req.job;
    st->job->on_done = on_job_done;
    st->job->on_done_arg = conn;
    MHD_suspend_connection(conn);
    if (intake_writers_submit(self->writers, st->job) < 0) {
        intake_reply_t r = {0};
        intake_error(&r, 503, "unavailable", NULL, "intake is shutting down; retry");
        r.retry_after_s = RETRY_AFTER_S;
        st->job->reply = r;
        atomic_store(&st->job->state, 1);
        MHD_resume_connection(conn);
    }
    return MHD_YES;
}

/* Stores one piece of the body, charging what goes beyond the reservation to the budget.
 * Returns 0, or -1 when the body must be refused (too big or over budget: flags set). */
static int on_upload(intake_server_t *self, request_state_t *st, const char *upload, size_t n)
{
    if (st->len + n > st->limit) {
        st->too_big = true;
        return -1;
    }
    if (st->len + n > st->reserved) {
        /* Chunked (or longer than declared, which MHD does not allow): reserve a step. */
        size_t need = st->len + n - st->reserved;
        size_t step = need > CHUNKED_RESERVE_STEP ? need : CHUNKED_RESERVE_STEP;
        if (step > st->limit - st->reserved) {
            step = need;
        }
        if (!budget_take(self, step)) {
            st->over_budget = true;
            return -1;
        }
        st->reserved += step;
    }
    if (st->len + n + 1 > st->cap) {
        size_t cap = st->cap ? st->cap : 4096;
        while (cap < st->len + n + 1) {
            cap *= 2;
        }
        /* Never more than the reservation (+1 for the NUL): the budget is real memory. */
        if (cap > st->reserved + 1) {
            cap = st->reserved + 1;
        }
        char *grown = realloc(st->body, cap);
        if (!grown) {
            return -1;
        }
        st->body = grown;
        st->cap = cap;
    }
    memcpy(st->body + st->len, upload, n);
    st->len += n;
    st->body[st->len] = '\0';
    return 0;
}

/* The error reply for a body refused by on_upload. */
static void refused_body(intake_server_t *self, const request_state_t *st, intake_reply_t *r)
{
    if (st->over_budget) {
        refuse_over_budget(self, r);
    } else {
        intake_error(r, 413, "too_large", NULL, "the request is over %zu bytes", st->limit);
    }
}

/* MHD's first notice of a request, before its headers are parsed: keeps the request target as
 * sent (MHD hands on_request the decoded path without the query), which signatures cover. The
 * return value becomes the connection's *con_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    intake_server_t *self = cls;
    request_state_t *st = calloc(1, sizeof *st);
    if (!st) {
        return NULL;
    }
    st->server = self;
    st->conn = conn;
    st->started_ms = wasl_clock_ms();
    st->target = strndup(uri ? uri : "", TARGET_MAX);
    return st;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    intake_server_t *self = cls;
    request_state_t *st = *con_cls;
    if (!st) {
        if (!(st = on_uri(self, url, conn))) {
            return MHD_NO;
        }
        *con_cls = st;
    }
    if (!st->started) {
        st->started = true;
        bool wrong_method;
        const char *arg;
        st->route = match_route(method, url, &arg, &wrong_method);
        if (!st->route) {
            intake_reply_t r = {0};
            if (wrong_method) {
                intake_error(&r, 405, "method_not_allowed", NULL, "%s is not allowed on %s", method,
                             url);
            } else {
                intake_error(&r, 404, "not_found", NULL, "no endpoint %s", url);
            }
            return send_reply(self, conn, "unknown", &r, st->started_ms);
        }
        if (arg && !(st->path_arg = strdup(arg))) {
            return MHD_NO;
        }
        st->limit = (size_t)(st->route->email_sized ? self->cfg->email_max : self->cfg->json_max);
        intake_reply_t r = {0};
        if (admit_headers(self, st, conn, method, &r) < 0) {
            /* Answered before the body: MHD reads no more of it and closes the connection. */
            wasl_counter_inc(self->refused_early);
            return send_reply(self, conn, st->route->endpoint, &r, st->started_ms);
        }
        return MHD_YES;
    }
    if (!st->route) {
        return MHD_NO; /* answered 404/405 already */
    }
    if (st->job) {
        /* Resumed: the job's reply is final. */
        intake_reply_t r = st->job->reply;
        st->job->reply.body = NULL;
        return send_reply(self, conn, st->route->endpoint, &r, st->started_ms);
    }
    if (st->offloaded) {
        /* Resumed by offload_done with the reply (the job case is above). */
        assert(st->offload_done);
        intake_reply_t r = st->off_reply;
        st->off_reply.body = NULL;
        return send_reply(self, conn, st->route->endpoint, &r, st->started_ms);
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        /* Refused in the middle (too big, over budget): the rest is read and dropped, and
         * the answer comes at the end — a reply sent while the client still writes is lost
         * to the TCP reset of closing a socket with unread data. */
        if (st->too_big || st->over_budget || on_upload(self, st, upload, n) == 0 || st->too_big ||
            st->over_budget) {
            return MHD_YES;
        }
        return MHD_NO; /* out of memory */
    }
    if (st->too_big || st->over_budget) {
        intake_reply_t r = {0};
        refused_body(self, st, &r);
        return send_reply(self, conn, st->route->endpoint, &r, st->started_ms);
    }
    return dispatch(self, conn, st, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    intake_server_t *self = cls;
    request_state_t *st = *con_cls;
    if (!st) {
        return;
    }
    budget_give(self, st->reserved);
    intake_job_release(&st->job);
    intake_job_release(&st->off_req.job);
    json_decref(st->off_reply.body);
    if (st->off_req.offload_arg_free) {
        st->off_req.offload_arg_free(st->off_req.offload_arg);
    }
    free(st->target);
    free(st->path_arg);
    free(st->body);
    free(st);
    *con_cls = NULL;
}

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
    atomic_init(&self->draining, false);
    atomic_init(&self->inflight, 0);
    self->inflight_max = (size_t)cfg->inflight_max;
    self->latency = wasl_histogram("wasl_intake_request_seconds", "Time to answer a request", NULL,
                                   wasl_latency_buckets_s, wasl_latency_buckets_n);
    self->inflight_gauge = wasl_gauge("wasl_intake_inflight_body_bytes",
                                      "Request body bytes reserved by requests in flight", NULL);
    self->refused_budget =
        wasl_counter("wasl_intake_inflight_refused_total",
                     "Requests refused (503) because the in-flight body budget was spent", NULL);
    self->refused_early = wasl_counter("wasl_intake_refused_before_body_total",
                                       "Requests answered on their headers, before any body byte "
                                       "was read (credentials, scope, rate, size, budget)",
                                       NULL);
    self->pools[INTAKE_POOL_LOOKUP] =
        wasl_offload_new("intake_lookup", (size_t)cfg->lookup_threads, (size_t)cfg->offload_queue);
    self->pools[INTAKE_POOL_PARSE] =
        wasl_offload_new("intake_parse", (size_t)cfg->parse_threads, (size_t)cfg->offload_queue);
    if (!self->pools[INTAKE_POOL_LOOKUP] || !self->pools[INTAKE_POOL_PARSE]) {
        pools_destroy(self);
        free(self);
        return NULL;
    }
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *addr;
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, cfg->http_bind, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)cfg->http_port);
        addr = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, cfg->http_bind, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)cfg->http_port);
        addr = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        wasl_error("intake: WASL_HTTP_BIND is not an IP address", "{s:s}", "bind", cfg->http_bind);
        pools_destroy(self);
        free(self);
        return NULL;
    }
    self->mhd = MHD_start_daemon(
        flags, (uint16_t)cfg->http_port, NULL, NULL, on_request, self, MHD_OPTION_SOCK_ADDR, addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)SERVER_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)SERVER_CONNECTION_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, on_completed, self,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, self, MHD_OPTION_END);
    if (!self->mhd) {
        wasl_error("intake: cannot listen", "{s:s, s:i, s:s}", "bind", cfg->http_bind, "port",
                   (int)cfg->http_port, "error", strerror(errno));
        pools_destroy(self);
        free(self);
        return NULL;
    }
    return self;
}

void intake_server_drain(intake_server_t *self)
{
    atomic_store(&self->draining, true);
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
    MHD_stop_daemon(self->mhd);
    free(self);
    *self_p = NULL;
}
