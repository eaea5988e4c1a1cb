/* wasl_rpc — Lazy Pirate request/reply client: timeout, close and reopen, bounded retries. */
#include "wasl_rpc.h"
#include "wasl_log.h"
#include "wasl_metrics.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct wasl_rpc {
    wasl_zmq_t *zmq; /* borrowed */
    char *endpoints;
    int timeout_ms;
    int retries;
    zsock_t *sock;
    unsigned long retried;
    wasl_counter_t *m_retries, *m_failures;
};

/* (Re)makes the REQ socket; a REQ socket that timed out is stuck in its send/recv cycle, and
 * closing it is also what discards the late reply. */
static int reopen(wasl_rpc_t *self)
{
    if (self->sock) {
        zsock_set_linger(self->sock, 0);
        zsock_destroy(&self->sock);
    }
    self->sock = wasl_zmq_connect(self->zmq, ZMQ_REQ, self->endpoints);
    if (!self->sock) {
        return -1;
    }
    zsock_set_linger(self->sock, 0);
    zsock_set_sndtimeo(self->sock, self->timeout_ms);
    return 0;
}

wasl_rpc_t *wasl_rpc_new(wasl_zmq_t *zmq, const char *endpoints, int timeout_ms, int retries)
{
    assert(zmq && endpoints);
    assert(timeout_ms > 0 && retries >= 0);
    wasl_rpc_t *self = calloc(1, sizeof *self);
    if (!self || !(self->endpoints = strdup(endpoints))) {
        free(self);
        return NULL;
    }
    self->zmq = zmq;
    self->timeout_ms = timeout_ms;
    self->retries = retries;
    self->m_retries =
        wasl_counter("wasl_rpc_retries_total", "Requests sent again after a reply timeout", NULL);
    self->m_failures = wasl_counter("wasl_rpc_failures_total",
                                    "Requests abandoned after every retry timed out", NULL);
    if (reopen(self) < 0) {
        wasl_rpc_destroy(&self);
        return NULL;
    }
    return self;
}

void wasl_rpc_destroy(wasl_rpc_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    wasl_rpc_t *self = *self_p;
    if (self->sock) {
        zsock_set_linger(self->sock, 0);
        zsock_destroy(&self->sock);
    }
    free(self->endpoints);
    free(self);
    *self_p = NULL;
}

int wasl_rpc_call(wasl_rpc_t *self, const void *req, size_t len, char **reply, size_t *reply_len)
{
    assert(self && reply && reply_len);
    *reply = NULL;
    *reply_len = 0;
    for (int attempt = 0; attempt <= self->retries; attempt++) {
        if (attempt > 0) {
            self->retried++;
            wasl_counter_inc(self->m_retries);
            if (reopen(self) < 0) {
                break;
            }
        } else if (!self->sock && reopen(self) < 0) {
            break;
        }
        zframe_t *out = zframe_new(req, len);
        if (!out || zframe_send(&out, self->sock, 0) != 0) {
            zframe_destroy(&out);
            continue; /* not sent (no peer within the timeout): the next try reopens */
        }
        zmq_pollitem_t item = {zsock_resolve(self->sock), 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, self->timeout_ms);
        if (rc > 0 && (item.revents & ZMQ_POLLIN)) {
            zframe_t *in = zframe_recv(self->sock);
            if (in) {
                *reply_len = zframe_size(in);
                *reply = malloc(*reply_len ? *reply_len : 1);
                if (*reply) {
                    memcpy(*reply, zframe_data(in), *reply_len);
                }
                zframe_destroy(&in);
                return *reply ? 0 : -1;
            }
        }
        /* Timed out (or interrupted): the socket is in an unknown state, reopen it. */
    }
    wasl_counter_inc(self->m_failures);
    /* Leave a clean socket for the next call. */
    if (reopen(self) < 0) {
        wasl_warn("rpc: cannot reopen the socket", "{s:s}", "endpoints", self->endpoints);
    }
    return -1;
}

wasl_msg_t *wasl_rpc_request(wasl_rpc_t *self, const wasl_msg_t *req)
{
    char *data = NULL, *rep = NULL;
    size_t len = 0, rep_len = 0;
    wasl_msg_error_t err;
    if (wasl_msg_encode(req, &data, &len, &err) != 0) {
        wasl_error("rpc: cannot encode the request", "{s:s, s:s, s:s}", "type",
                   wasl_msg_type_name(req->type), "error", err.message, "field", err.field);
        return NULL;
    }
    int rc = wasl_rpc_call(self, data, len, &rep, &rep_len);
    free(data);
    if (rc != 0) {
        wasl_warn("rpc: no reply", "{s:s, s:i, s:i}", "type", wasl_msg_type_name(req->type),
                  "timeout_ms", self->timeout_ms, "retries", self->retries);
        return NULL;
    }
    wasl_msg_t *msg = wasl_msg_decode(rep, rep_len, &err);
    free(rep);
    if (!msg) {
        wasl_warn("rpc: undecodable reply", "{s:s, s:s}", "error", err.message, "field", err.field);
    }
    return msg;
}

unsigned long wasl_rpc_retries(const wasl_rpc_t *self)
{
    return self->retried;
}
