/* wasl_rpc — Lazy Pirate request/reply client: timeout, close and reopen, bounded retries; and
 * the batch form, many tagged requests in flight on one DEALER. */
#include "wasl_rpc.h"
#include "wasl_clock.h"
#include "wasl_log.h"
#include "wasl_metrics.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* The tag frame of a batch request: the call's generation, the request's index in the call and
 * the try it was sent on, big-endian. */
#define TAG_SIZE 16

struct wasl_rpc {
    wasl_zmq_t *zmq; /* borrowed */
    char *endpoints;
    int timeout_ms;
    int retries;
    zsock_t *sock;
    zsock_t *dealer; /* wasl_rpc_call_many's, made on first use */
    uint64_t generation;
    unsigned long retried, stale;
    wasl_counter_t *m_retries, *m_failures, *m_stale;
};

/* (Re)makes *sock as a `type` client of the endpoints, linger 0 (closing it drops whatever is
 * still queued: a late reply, or requests for a bus that is not there) and `sndtimeo_ms`. */
static int remake(wasl_rpc_t *self, zsock_t **sock, int type, int sndtimeo_ms)
{
    if (*sock) {
        zsock_set_linger(*sock, 0);
        zsock_destroy(sock);
    }
    *sock = wasl_zmq_connect(self->zmq, type, self->endpoints);
    if (!*sock) {
        return -1;
    }
    zsock_set_linger(*sock, 0);
    zsock_set_sndtimeo(*sock, sndtimeo_ms);
    return 0;
}

/* (Re)makes the REQ socket; a REQ socket that timed out is stuck in its send/recv cycle, and
 * closing it is also what discards the late reply. */
static int reopen(wasl_rpc_t *self)
{
    return remake(self, &self->sock, ZMQ_REQ, self->timeout_ms);
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
    self->m_stale = wasl_counter("wasl_rpc_stale_replies_total",
                                 "Batch replies ignored: an earlier call's, duplicates", NULL);
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
    if (self->dealer) {
        zsock_set_linger(self->dealer, 0);
        zsock_destroy(&self->dealer);
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

unsigned long wasl_rpc_stale(const wasl_rpc_t *self)
{
    return self->stale;
}

int wasl_rpc_request_id(const char *prefix, char *out)
{
    assert(prefix && out);
    assert(strlen(prefix) <= WASL_RPC_REQUEST_ID_PREFIX_MAX);
    unsigned char raw[16];
    out[0] = '\0';
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno != EINTR) {
            wasl_error("rpc: no randomness for a request id", "{s:s}", "error", strerror(errno));
            return -1;
        }
        got += n > 0 ? (size_t)n : 0;
    }
    static const char hex[] = "0123456789abcdef";
    size_t o = (size_t)snprintf(out, WASL_RPC_REQUEST_ID_MAX, "%s-", prefix);
    for (size_t i = 0; i < sizeof raw; i++) {
        out[o++] = hex[raw[i] >> 4];
        out[o++] = hex[raw[i] & 0xf];
    }
    out[o] = '\0';
    return 0;
}

/* ---- many requests at once ----------------------------------------------------------------- */

static void put_be(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t get_be(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* (Re)makes the DEALER. Closing it drops requests still queued for a bus that is not there, so
 * that they do not all arrive at once when it comes back. Its sends never block (ZMQ_DONTWAIT
 * and a poll). */
static int reopen_dealer(wasl_rpc_t *self)
{
    return remake(self, &self->dealer, ZMQ_DEALER, 0);
}

/* One call in flight: where the replies go and how many came. */
typedef struct {
    wasl_rpc_t *rpc;
    void *sock;
    uint64_t gen;
    size_t n, answered;
    char **replies;
    size_t *reply_lens;
} batch_t;

/* Reads one waiting message without blocking. Returns 1 with a well-formed reply (`tag` filled,
 * `body` holding the payload: the caller closes it), 0 when nothing waits, -1 for a message that
 * is not [tag][empty][payload] (read and dropped). */
static int recv_tagged(void *sock, unsigned char *tag, zmq_msg_t *body)
{
    int parts = 0, good = 1;
    zmq_msg_init(body);
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            if (parts == 0) {
                zmq_msg_close(body);
                return 0;
            }
            good = 0; /* cannot happen: the parts of a message arrive together */
            break;
        }
        bool more = zmq_msg_more(&part);
        if (parts == 0) {
            good = zmq_msg_size(&part) == TAG_SIZE && more;
            if (good) {
                memcpy(tag, zmq_msg_data(&part), TAG_SIZE);
            }
        } else if (parts == 1) {
            good = good && zmq_msg_size(&part) == 0 && more;
        } else if (parts == 2 && !more) {
            zmq_msg_move(body, &part);
        } else {
            good = 0;
        }
        zmq_msg_close(&part);
        parts++;
        if (!more) {
            break;
        }
    }
    if (!good || parts != 3) {
        zmq_msg_close(body);
        return -1;
    }
    return 1;
}

/* Takes every reply waiting on the socket, without blocking. The peer is untrusted: a reply
 * that is not this call's, or answers a request already answered, is counted and dropped. */
static void drain_replies(batch_t *b)
{
    while (b->answered < b->n) {
        unsigned char tag[TAG_SIZE];
        zmq_msg_t body;
        int got = recv_tagged(b->sock, tag, &body);
        if (got == 0) {
            return;
        }
        uint64_t idx = got > 0 ? get_be(tag + 8, 4) : 0;
        if (got < 0 || get_be(tag, 8) != b->gen || idx >= b->n || b->replies[idx]) {
            b->rpc->stale++;
            wasl_counter_inc(b->rpc->m_stale);
            if (got > 0) {
                zmq_msg_close(&body);
            }
            continue;
        }
        size_t len = zmq_msg_size(&body);
        char *copy = malloc(len ? len : 1);
        if (copy) {
            memcpy(copy, zmq_msg_data(&body), len);
            b->replies[idx] = copy;
            b->reply_lens[idx] = len;
            b->answered++;
        }
        zmq_msg_close(&body);
    }
}

/* Waits for replies (and, with `want_out`, for room to send) until `deadline_ms`, taking the
 * replies that come. Returns 1 when the socket can send (want_out) or replies were read, 0 at
 * the deadline or when everything is answered, -1 on a poll error other than EINTR. */
static int wait_and_drain(batch_t *b, bool want_out, int64_t deadline_ms)
{
    short events = ZMQ_POLLIN | (want_out ? ZMQ_POLLOUT : 0);
    while (b->answered < b->n) {
        int64_t left = deadline_ms - wasl_clock_ms();
        if (left < 0) {
            left = 0;
        }
        zmq_pollitem_t item = {b->sock, 0, events, 0};
        int rc = zmq_poll(&item, 1, (long)left);
        if (rc < 0 && errno != EINTR) {
            return -1;
        }
        if (rc > 0 && (item.revents & ZMQ_POLLIN)) {
            drain_replies(b);
        }
        if (rc > 0 && (item.revents & (want_out ? ZMQ_POLLOUT : ZMQ_POLLIN))) {
            return 1;
        }
        if (left == 0) {
            return 0;
        }
    }
    return 0;
}

/* Sends [tag][empty][payload] without blocking past `deadline_ms`, reading replies while it
 * waits for room (the bus drops replies to a client whose queue is full). Returns 0 when
 * queued, -1 when the socket could not take it in time. */
static int send_tagged(batch_t *b, const unsigned char *tag, const void *data, size_t len,
                       int64_t deadline_ms)
{
    for (;;) {
        /* The first part decides: once it is queued the rest of the message always is. */
        if (zmq_send(b->sock, tag, TAG_SIZE, ZMQ_SNDMORE | ZMQ_DONTWAIT) == TAG_SIZE) {
            break;
        }
        if ((errno != EAGAIN && errno != EINTR) || wait_and_drain(b, true, deadline_ms) <= 0) {
            return -1;
        }
    }
    if (zmq_send(b->sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(b->sock, data, len, ZMQ_DONTWAIT) < 0) {
        return -1;
    }
    return 0;
}

int wasl_rpc_call_many(wasl_rpc_t *self, size_t n, const void *const *reqs, const size_t *lens,
                       char **replies, size_t *reply_lens)
{
    assert(self && reqs && lens && replies && reply_lens);
    assert(n >= 1 && n <= WASL_RPC_MANY_MAX);
    for (size_t i = 0; i < n; i++) {
        replies[i] = NULL;
        reply_lens[i] = 0;
    }
    if (!self->dealer && reopen_dealer(self) < 0) {
        wasl_warn("rpc: cannot make the batch socket", "{s:s}", "endpoints", self->endpoints);
        wasl_counter_add(self->m_failures, n);
        return 0;
    }
    batch_t b = {.rpc = self,
                 .sock = zsock_resolve(self->dealer),
                 .gen = ++self->generation,
                 .n = n,
                 .replies = replies,
                 .reply_lens = reply_lens};
    for (int attempt = 0; attempt <= self->retries && b.answered < n; attempt++) {
        int64_t deadline = wasl_clock_ms() + self->timeout_ms;
        if (attempt > 0) {
            self->retried += n - b.answered;
            wasl_counter_add(self->m_retries, n - b.answered);
        }
        for (size_t i = 0; i < n; i++) {
            if (replies[i]) {
                continue;
            }
            unsigned char tag[TAG_SIZE];
            put_be(tag, b.gen, 8);
            put_be(tag + 8, i, 4);
            put_be(tag + 12, (uint64_t)attempt, 4);
            if (send_tagged(&b, tag, reqs[i], lens[i], deadline) < 0) {
                break; /* no bus within the try's time: the next try sends the rest */
            }
            drain_replies(&b);
        }
        while (b.answered < n && wait_and_drain(&b, false, deadline) > 0) {
        }
    }
    if (b.answered < n) {
        wasl_counter_add(self->m_failures, n - b.answered);
        /* Drop what is still queued for a missing bus; late replies go to the old identity. */
        if (reopen_dealer(self) < 0) {
            wasl_warn("rpc: cannot reopen the batch socket", "{s:s}", "endpoints", self->endpoints);
        }
    }
    return (int)b.answered;
}

int wasl_rpc_request_many(wasl_rpc_t *self, size_t n, const wasl_msg_t *const *reqs,
                          wasl_msg_t **replies)
{
    assert(self && reqs && replies);
    assert(n >= 1 && n <= WASL_RPC_MANY_MAX);
    char **data = calloc(n, sizeof *data), **reps = calloc(n, sizeof *reps);
    size_t *lens = calloc(n, sizeof *lens), *rep_lens = calloc(n, sizeof *rep_lens);
    const void **bufs = calloc(n, sizeof *bufs);
    size_t *slot = calloc(n, sizeof *slot); /* the request of each encoded buffer */
    int got = 0;
    for (size_t i = 0; i < n; i++) {
        replies[i] = NULL;
    }
    if (!data || !reps || !lens || !rep_lens || !bufs || !slot) {
        wasl_error("rpc: out of memory for a batch", "{s:i}", "requests", (int)n);
        goto done;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        wasl_msg_error_t err;
        if (wasl_msg_encode(reqs[i], &data[m], &lens[m], &err) != 0) {
            wasl_error("rpc: cannot encode the request", "{s:s, s:s, s:s}", "type",
                       wasl_msg_type_name(reqs[i]->type), "error", err.message, "field", err.field);
            continue;
        }
        bufs[m] = data[m];
        slot[m++] = i;
    }
    if (m == 0) {
        goto done;
    }
    int answered = wasl_rpc_call_many(self, m, bufs, lens, reps, rep_lens);
    if ((size_t)answered < m) {
        wasl_warn("rpc: no reply", "{s:s, s:i, s:i, s:i, s:i}", "type",
                  wasl_msg_type_name(reqs[slot[0]]->type), "unanswered", (int)m - answered,
                  "requests", (int)m, "timeout_ms", self->timeout_ms, "retries", self->retries);
    }
    for (size_t j = 0; j < m; j++) {
        if (!reps[j]) {
            continue;
        }
        wasl_msg_error_t err;
        replies[slot[j]] = wasl_msg_decode(reps[j], rep_lens[j], &err);
        if (replies[slot[j]]) {
            got++;
        } else {
            wasl_warn("rpc: undecodable reply", "{s:s, s:s}", "error", err.message, "field",
                      err.field);
        }
    }
done:
    for (size_t i = 0; i < n; i++) {
        free(data ? data[i] : NULL);
        free(reps ? reps[i] : NULL);
    }
    free(data);
    free(reps);
    free(lens);
    free(rep_lens);
    free(bufs);
    free(slot);
    return got;
}
