/* wasl_cases — the case-lookup clients over the bus (see wasl_cases.h). */
#include "wasl_cases.h"
#include "wasl_log.h"
#include "wasl_rpc.h"
#include "wasl_text.h"
#include "wasl_zmq.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define POOL_MAX 64 /* one client per concurrently asking thread; more are made and dropped */

struct wasl_cases {
    pthread_mutex_t lock;
    char *bus, *stages, *curve_dir, *curve_name;
    int timeout_ms, retries;
    wasl_zmq_t *zmq; /* made on first use, with the endpoints */
    char *endpoints;
    wasl_rpc_t *pool[POOL_MAX]; /* a ZeroMQ socket belongs to one thread at a time */
    size_t n;
};

char *wasl_cases_digits(const char *text, size_t n)
{
    char *s = text ? wasl_fold_digits(text, strlen(text)) : NULL;
    if (!s) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            s[o++] = s[i];
        } else if (s[i] != ' ' && s[i] != '-') {
            free(s);
            return NULL;
        }
    }
    s[o] = '\0';
    if (o != n) {
        free(s);
        return NULL;
    }
    return s;
}

/* Exactly n ASCII digits. */
static bool ascii_digits(const char *s, size_t n)
{
    return s && strlen(s) == n && strspn(s, "0123456789") == n;
}

bool wasl_cases_national_id_shaped(const char *nid)
{
    return ascii_digits(nid, WASL_NATIONAL_ID_DIGITS) && (nid[0] == '1' || nid[0] == '2');
}

bool wasl_cases_party_shaped(const char *case_number, const char *national_id)
{
    return ascii_digits(case_number, WASL_CASE_NUMBER_DIGITS) &&
           wasl_cases_national_id_shaped(national_id);
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

wasl_cases_t *wasl_cases_new(const wasl_cases_config_t *cfg)
{
    wasl_cases_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    self->bus = dup_or_empty(cfg->bus);
    self->stages = dup_or_empty(cfg->bus_stages);
    self->curve_dir = dup_or_empty(cfg->curve_dir);
    self->curve_name = dup_or_empty(cfg->curve_name);
    self->timeout_ms = cfg->timeout_ms;
    self->retries = cfg->retries;
    if (!self->bus || !self->stages || !self->curve_dir || !self->curve_name) {
        wasl_cases_destroy(&self);
    }
    return self;
}

void wasl_cases_destroy(wasl_cases_t **self_p)
{
    wasl_cases_t *self = self_p ? *self_p : NULL;
    if (!self) {
        return;
    }
    while (self->n > 0) {
        wasl_rpc_destroy(&self->pool[--self->n]);
    }
    wasl_zmq_destroy(&self->zmq);
    free(self->endpoints);
    free(self->bus);
    free(self->stages);
    free(self->curve_dir);
    free(self->curve_name);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

bool wasl_cases_configured(const wasl_cases_t *self)
{
    return self && self->bus && *self->bus;
}

/* Takes a client (made on first use). NULL when the bus is not configured or sockets fail. */
static wasl_rpc_t *client_take(wasl_cases_t *self)
{
    wasl_rpc_t *c = NULL;
    pthread_mutex_lock(&self->lock);
    if (!self->endpoints && *self->bus) {
        self->endpoints = wasl_bus_endpoints(self->bus, self->stages, NULL, WASL_BUS_RPC_CLIENT);
        wasl_zmq_opts_t o = {
            .curve_dir = self->curve_dir, .self_name = self->curve_name, .server_name = "bus"};
        self->zmq = wasl_zmq_new(&o);
    }
    if (self->n > 0) {
        c = self->pool[--self->n];
    } else if (self->endpoints && self->zmq) {
        c = wasl_rpc_new(self->zmq, self->endpoints, self->timeout_ms, self->retries);
    }
    pthread_mutex_unlock(&self->lock);
    return c;
}

/* Returns a client to the pool (destroyed when the pool is full); NULLs the caller's pointer. */
static void client_give(wasl_cases_t *self, wasl_rpc_t **c)
{
    pthread_mutex_lock(&self->lock);
    if (self->n < POOL_MAX) {
        self->pool[self->n++] = *c;
        *c = NULL;
    }
    pthread_mutex_unlock(&self->lock);
    wasl_rpc_destroy(c);
}

/* A strdup that keeps NULL as NULL; *ok becomes false when a copy fails. */
static char *opt_dup(const char *s, bool *ok)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d) {
        *ok = false;
    }
    return d;
}

/* The request message for `a` with request id `id` (NULL on allocation failure). */
static wasl_msg_t *request_new(const wasl_cases_ask_t *a, const char *id)
{
    wasl_msg_t *q = wasl_msg_new(WASL_MSG_CASE_LOOKUP_REQUEST);
    if (!q) {
        return NULL;
    }
    wasl_msg_case_lookup_request_t *r = &q->u.case_lookup_request;
    bool ok = a->case_number && a->verifier_kind && a->verifier && a->channel && a->client;
    r->request_id = opt_dup(id, &ok);
    r->case_number = opt_dup(a->case_number, &ok);
    r->verifier_kind = opt_dup(a->verifier_kind, &ok);
    r->verifier = opt_dup(a->verifier, &ok);
    r->channel = opt_dup(a->channel, &ok);
    r->client = opt_dup(a->client, &ok);
    r->call_id = opt_dup(a->call_id, &ok);
    r->caller = opt_dup(a->caller, &ok);
    r->ticket = opt_dup(a->ticket, &ok);
    if (!ok) {
        wasl_msg_destroy(&q);
    }
    return q;
}

wasl_msg_t *wasl_cases_ask(wasl_cases_t *self, const wasl_cases_ask_t *a)
{
    char id[WASL_RPC_REQUEST_ID_MAX];
    if (!wasl_cases_configured(self) || wasl_rpc_request_id(a->id_prefix, id) < 0) {
        return NULL;
    }
    wasl_msg_t *q = request_new(a, id);
    wasl_msg_t *rep = NULL;
    wasl_rpc_t *c = q ? client_take(self) : NULL;
    if (c) {
        rep = wasl_rpc_request(c, q);
        client_give(self, &c);
    }
    wasl_msg_destroy(&q);
    if (rep && (rep->type != WASL_MSG_CASE_LOOKUP_REPLY ||
                strcmp(rep->u.case_lookup_reply.request_id, id) != 0)) {
        wasl_warn("cases: caselookup answered something else", NULL);
        wasl_msg_destroy(&rep);
    }
    return rep;
}

json_t *wasl_cases_found_json(const wasl_msg_case_lookup_reply_t *r)
{
    json_t *next = json_null();
    if (r->hearing_utc) {
        next = json_pack("{s:s, s:s?, s:{s:I, s:I, s:I, s:s?}, s:s?, s:s?}", "utc", r->hearing_utc,
                         "local", r->hearing_local, "hijri", "year", (json_int_t)r->hijri_year,
                         "month", (json_int_t)r->hijri_month, "day", (json_int_t)r->hijri_day,
                         "month_name_ar", r->hijri_month_name_ar, "text_ar", r->hearing_text_ar,
                         "text_en", r->hearing_text_en);
    }
    json_t *ups = json_array();
    for (size_t i = 0; ups && i < r->updates_count; i++) {
        json_array_append_new(ups, json_string(r->updates[i]));
    }
    return json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:o, s:o, s:s?, s:s?}", "case_number",
                     r->case_number, "court", r->court, "circuit", r->circuit, "status", r->status,
                     "status_ar", r->status_ar, "next_hearing", next, "updates", ups, "speech_ar",
                     r->speech_ar, "speech_en", r->speech_en);
}
