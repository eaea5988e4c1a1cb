/* bus — the stateless ZeroMQ forwarder: one PULL→PUSH streamer per stage, one ROUTER→DEALER pair.
 */
#include "bus.h"
#include "wasl_log.h"
#include "wasl_metrics.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Most messages forwarded in one direction before the other direction and the control socket
 * get their turn. */
#define BUS_BURST 1000
/* Most stages a bus serves (ports are base+2 .. base+2+2*BUS_MAX_STAGES). */
#define BUS_MAX_STAGES 32
/* Connections tracked per monitored socket; more peers still work, they are only not counted. */
#define BUS_MAX_PEERS 1024

typedef struct {
    void *monitor;          /* PAIR reading this socket's events */
    int fds[BUS_MAX_PEERS]; /* connections that completed the handshake */
    size_t nfds;
    wasl_gauge_t *peers;
    wasl_counter_t *auth_failures;
    wasl_counter_t *proto_failures;
} watched_t;

typedef struct {
    char *name;        /* stage name, or "rpc" */
    zsock_t *front;    /* producers / clients connect here */
    zsock_t *back;     /* consumers / workers connect here */
    zsock_t *ctl;      /* our end of the proxy's control pair: any message stops it */
    zsock_t *ctl_peer; /* the proxy's end */
    bool duplex;       /* rpc: replies travel back from back to front */
    pthread_t thread;
    bool running;
    wasl_counter_t *in_msgs, *out_msgs, *in_bytes, *out_bytes;
    watched_t watch[2];
} proxy_t;

struct bus {
    proxy_t proxies[BUS_MAX_STAGES + 1];
    size_t nproxies; /* stages + the rpc pair */
    pthread_t watcher;
    bool watcher_running;
    zsock_t *watch_stop;      /* main's end: a message stops the watcher */
    zsock_t *watch_stop_peer; /* watcher's end */
};

/* Forwards up to BUS_BURST whole messages (every part) from `from` to `to`. A send that would
 * block (the consumers' queues are full) waits for room, or for the control socket, which
 * means stop. Returns 0, 1 when asked to stop, -1 when the context is terminating.
 *
 * Our own loop rather than zmq_proxy_steerable: libzmq 4.3.4's proxy gives up with EAGAIN when
 * a socket that polled readable has no message yet (ZMTP heartbeats make that happen), which
 * silently stopped every stage a few seconds after start while the sweeps hid it. */
static int forward(proxy_t *p, void *from, void *to, void *ctl, zmq_msg_t *msg)
{
    for (int n = 0; n < BUS_BURST; n++) {
        size_t bytes = 0;
        bool first = true;
        for (bool more = true; more; first = false) {
            /* The first part may not be there (the burst is over); the rest of a multi-part
             * message always is: ZeroMQ delivers messages whole. */
            if (zmq_msg_recv(msg, from, first ? ZMQ_DONTWAIT : 0) < 0) {
                if (first && (errno == EAGAIN || errno == EINTR)) {
                    return 0;
                }
                return -1;
            }
            bytes += zmq_msg_size(msg);
            more = zmq_msg_more(msg);
            while (zmq_msg_send(msg, to, ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0)) < 0) {
                if (errno != EAGAIN && errno != EINTR) {
                    return -1;
                }
                zmq_pollitem_t wait[2] = {{ctl, 0, ZMQ_POLLIN, 0}, {to, 0, ZMQ_POLLOUT, 0}};
                if (zmq_poll(wait, 2, -1) < 0 && errno != EINTR) {
                    return -1;
                }
                if (wait[0].revents & ZMQ_POLLIN) {
                    return 1;
                }
            }
        }
        /* Counted once forwarded, both ways for the rpc pair (requests and replies). */
        wasl_counter_inc(p->in_msgs);
        wasl_counter_add(p->in_bytes, bytes);
        wasl_counter_inc(p->out_msgs);
        wasl_counter_add(p->out_bytes, bytes);
    }
    return 0;
}

static void *proxy_thread(void *arg)
{
    proxy_t *p = arg;
    void *front = zsock_resolve(p->front), *back = zsock_resolve(p->back);
    void *ctl = zsock_resolve(p->ctl_peer);
    zmq_pollitem_t items[3] = {
        {ctl, 0, ZMQ_POLLIN, 0}, {front, 0, ZMQ_POLLIN, 0}, {back, 0, ZMQ_POLLIN, 0}};
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    int rc = 0;
    while (rc == 0) {
        if (zmq_poll(items, p->duplex ? 3 : 2, -1) < 0) {
            rc = errno == EINTR ? 0 : -1;
            continue;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            break; /* TERMINATE */
        }
        if (items[1].revents & ZMQ_POLLIN) {
            rc = forward(p, front, back, ctl, &msg);
        }
        if (rc == 0 && p->duplex && (items[2].revents & ZMQ_POLLIN)) {
            rc = forward(p, back, front, ctl, &msg);
        }
    }
    zmq_msg_close(&msg);
    if (rc < 0) {
        wasl_error("bus: stage stopped forwarding", "{s:s, s:s}", "stage", p->name, "error",
                   zmq_strerror(errno));
    }
    return NULL;
}

/* Reads every monitored socket's events and keeps the peer gauges: a peer counts once its
 * handshake succeeded (a refused CURVE key never does) and stops counting when it leaves. */
static void *watcher_thread(void *arg)
{
    bus_t *self = arg;
    size_t n = 0;
    zmq_pollitem_t items[2 * (BUS_MAX_STAGES + 1) + 1];
    watched_t *owners[2 * (BUS_MAX_STAGES + 1)];
    items[n++] = (zmq_pollitem_t){zsock_resolve(self->watch_stop_peer), 0, ZMQ_POLLIN, 0};
    for (size_t i = 0; i < self->nproxies; i++) {
        for (int s = 0; s < 2; s++) {
            owners[n - 1] = &self->proxies[i].watch[s];
            items[n++] = (zmq_pollitem_t){self->proxies[i].watch[s].monitor, 0, ZMQ_POLLIN, 0};
        }
    }
    for (;;) {
        if (zmq_poll(items, (int)n, -1) < 0) {
            if (zmq_errno() == EINTR) {
                continue;
            }
            break;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            break;
        }
        for (size_t k = 1; k < n; k++) {
            if (!(items[k].revents & ZMQ_POLLIN)) {
                continue;
            }
            watched_t *w = owners[k - 1];
            zmq_msg_t ev, addr;
            zmq_msg_init(&ev);
            zmq_msg_init(&addr);
            if (zmq_msg_recv(&ev, w->monitor, 0) >= 0 && zmq_msg_more(&ev) &&
                zmq_msg_recv(&addr, w->monitor, 0) >= 0 && zmq_msg_size(&ev) >= 6) {
                uint16_t event;
                uint32_t fd;
                memcpy(&event, zmq_msg_data(&ev), 2);
                memcpy(&fd, (char *)zmq_msg_data(&ev) + 2, 4);
                if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED && w->nfds < BUS_MAX_PEERS) {
                    w->fds[w->nfds++] = (int)fd;
                    wasl_gauge_set(w->peers, (double)w->nfds);
                } else if (event == ZMQ_EVENT_DISCONNECTED) {
                    for (size_t j = 0; j < w->nfds; j++) {
                        if (w->fds[j] == (int)fd) {
                            w->fds[j] = w->fds[--w->nfds];
                            break;
                        }
                    }
                    wasl_gauge_set(w->peers, (double)w->nfds);
                } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
                    wasl_counter_inc(w->auth_failures);
                    wasl_warn("bus: peer refused by the ZAP allow-list", "{s:s%}", "endpoint",
                              (const char *)zmq_msg_data(&addr), zmq_msg_size(&addr));
                } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                           event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
                    wasl_counter_inc(w->proto_failures);
                }
            }
            zmq_msg_close(&ev);
            zmq_msg_close(&addr);
        }
    }
    return NULL;
}

/* Creates one monitored socket side: the PAIR that reads its events, and the metrics. */
static int watch_socket(watched_t *w, zsock_t *sock, const char *stage, const char *side,
                        const char *tag)
{
    char ep[96];
    snprintf(ep, sizeof ep, "inproc://bus-monitor-%s-%s", tag, side);
    int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    if (zmq_socket_monitor(zsock_resolve(sock), ep, events) != 0) {
        return -1;
    }
    w->monitor = zmq_socket(zsys_init(), ZMQ_PAIR);
    if (!w->monitor || zmq_connect(w->monitor, ep) != 0) {
        return -1;
    }
    char labels[160], esc[64];
    snprintf(labels, sizeof labels, "stage=\"%s\",side=\"%s\"",
             wasl_metrics_escape(stage, esc, sizeof esc), side);
    w->peers =
        wasl_gauge("wasl_bus_peers", "Peers connected (handshake done) per stage side", labels);
    w->auth_failures = wasl_counter("wasl_bus_auth_failures_total",
                                    "Connections refused by the CURVE/ZAP allow-list", labels);
    w->proto_failures = wasl_counter("wasl_bus_handshake_failures_total",
                                     "Connections that failed the ZMTP handshake", labels);
    return 0;
}

int bus_allow_lookup(const char *allow, const char *stage, bool out_side, char *out, size_t cap)
{
    assert(allow && stage && out && cap > 0);
    size_t slen = strlen(stage);
    for (const char *entry = allow; *entry;) {
        const char *end = strchr(entry, ';');
        size_t len = end ? (size_t)(end - entry) : strlen(entry);
        const char *eq = memchr(entry, '=', len);
        const char *gt = eq ? memchr(eq, '>', len - (size_t)(eq - entry)) : NULL;
        if (!eq || !gt) {
            return -2;
        }
        if ((size_t)(eq - entry) == slen && strncmp(entry, stage, slen) == 0) {
            const char *from = out_side ? gt + 1 : eq + 1;
            size_t n = out_side ? len - (size_t)(gt + 1 - entry) : (size_t)(gt - eq - 1);
            if (n >= cap) {
                return -2;
            }
            memcpy(out, from, n);
            out[n] = '\0';
            return 0;
        }
        entry += len + (end ? 1 : 0);
    }
    return -1;
}

const char *bus_allow_check(const char *allow, const char *stages)
{
    char roles[WASL_ZAP_ALLOW_MAX + 1];
    char *list = strdup(stages);
    const char *problem = NULL;
    if (!list) {
        return "out of memory";
    }
    if (bus_allow_lookup(allow, "rpc", false, roles, sizeof roles) == -2) {
        problem = "an entry is not <stage>=<roles>><roles>, or a list is too long";
    } else if (bus_allow_lookup(allow, "rpc", false, roles, sizeof roles) < 0) {
        problem = "no entry for rpc";
    }
    char *save = NULL;
    for (char *name = strtok_r(list, ",", &save); name && !problem;
         name = strtok_r(NULL, ",", &save)) {
        if (bus_allow_lookup(allow, name, false, roles, sizeof roles) < 0) {
            problem = "a stage of WASL_BUS_STAGES has no entry";
        }
    }
    free(list);
    return problem;
}

/* Binds one socket, admitting (with CURVE) only the roles `allow` lists for that side of
 * `name`. NULL (logged) on failure. */
static zsock_t *bind_side(wasl_zmq_t *zmq, const char *allow, const char *name, bool out_side,
                          int type, const char *ep)
{
    if (!wasl_zmq_curve(zmq)) {
        return wasl_zmq_bind(zmq, type, ep);
    }
    char roles[WASL_ZAP_ALLOW_MAX + 1];
    if (!allow || bus_allow_lookup(allow, name, out_side, roles, sizeof roles) < 0) {
        wasl_error("bus: no allow-list for this stage (WASL_BUS_ALLOW)", "{s:s}", "stage", name);
        return NULL;
    }
    zsock_t *sock = wasl_zmq_bind_allow(zmq, type, ep, roles);
    if (sock) {
        wasl_info("bus: socket admits", "{s:s, s:s, s:s}", "stage", name, "side",
                  out_side ? "out" : "in", "roles", roles);
    }
    return sock;
}

/* Binds one proxy's two sockets and starts its thread. */
static int proxy_start(bus_t *self, wasl_zmq_t *zmq, proxy_t *p, const char *name, int front_type,
                       int back_type, const char *host, int front_port, const char *allow)
{
    char ep[160], esc[64], labels[128];
    p->name = strdup(name);
    if (!p->name) {
        return -1;
    }
    p->duplex = front_type == ZMQ_ROUTER;
    snprintf(ep, sizeof ep, "tcp://%s:%d", host, front_port);
    p->front = bind_side(zmq, allow, name, false, front_type, ep);
    snprintf(ep, sizeof ep, "tcp://%s:%d", host, front_port + 1);
    p->back = p->front ? bind_side(zmq, allow, name, true, back_type, ep) : NULL;
    if (!p->back) {
        return -1;
    }
    /* The control pair is named per bus object and stage, so two buses in one process (tests)
     * never collide. */
    char tag[96];
    snprintf(tag, sizeof tag, "%p-%s", (void *)self, name);
    snprintf(ep, sizeof ep, "inproc://bus-ctl-%s", tag);
    p->ctl = zsock_new(ZMQ_PAIR);
    p->ctl_peer = zsock_new(ZMQ_PAIR);
    if (!p->ctl || !p->ctl_peer || zsock_bind(p->ctl, "%s", ep) < 0 ||
        zsock_connect(p->ctl_peer, "%s", ep) < 0) {
        return -1;
    }
    if (watch_socket(&p->watch[0], p->front, name, "in", tag) < 0 ||
        watch_socket(&p->watch[1], p->back, name, "out", tag) < 0) {
        wasl_error("bus: cannot monitor sockets", "{s:s}", "stage", name);
        return -1;
    }
    snprintf(labels, sizeof labels, "stage=\"%s\"", wasl_metrics_escape(name, esc, sizeof esc));
    p->in_msgs = wasl_counter("wasl_bus_received_total", "Messages received per stage", labels);
    p->out_msgs = wasl_counter("wasl_bus_forwarded_total", "Messages forwarded per stage", labels);
    p->in_bytes = wasl_counter("wasl_bus_received_bytes_total", "Bytes received per stage", labels);
    p->out_bytes =
        wasl_counter("wasl_bus_forwarded_bytes_total", "Bytes forwarded per stage", labels);
    if (pthread_create(&p->thread, NULL, proxy_thread, p) != 0) {
        return -1;
    }
    p->running = true;
    wasl_info("bus: stage ready", "{s:s, s:i, s:i}", "stage", name, "in_port", front_port,
              "out_port", front_port + 1);
    return 0;
}

static void proxy_stop(proxy_t *p)
{
    if (p->running) {
        zstr_send(p->ctl, "TERMINATE");
        p->running = false;
        pthread_join(p->thread, NULL);
    }
    for (int s = 0; s < 2; s++) {
        if (p->watch[s].monitor) {
            zmq_close(p->watch[s].monitor);
            p->watch[s].monitor = NULL;
        }
    }
    zsock_destroy(&p->front);
    zsock_destroy(&p->back);
    zsock_destroy(&p->ctl);
    zsock_destroy(&p->ctl_peer);
    free(p->name);
    p->name = NULL;
}

bus_t *bus_new(wasl_zmq_t *zmq, const bus_opts_t *opts)
{
    assert(zmq && opts && opts->stages);
    bus_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    char *stages = strdup(opts->stages);
    if (!stages) {
        goto error;
    }
    /* Request/reply first: ROUTER for clients on base, DEALER for workers on base+1. */
    if (proxy_start(self, zmq, &self->proxies[self->nproxies++], "rpc", ZMQ_ROUTER, ZMQ_DEALER,
                    opts->bind_host, opts->base_port, opts->allow) < 0) {
        goto error;
    }
    char *save = NULL;
    int index = 0;
    for (char *name = strtok_r(stages, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        if (index >= BUS_MAX_STAGES) {
            wasl_error("bus: too many stages", "{s:i}", "max", BUS_MAX_STAGES);
            goto error;
        }
        int port = opts->base_port + 2 + 2 * index++;
        if (proxy_start(self, zmq, &self->proxies[self->nproxies++], name, ZMQ_PULL, ZMQ_PUSH,
                        opts->bind_host, port, opts->allow) < 0) {
            goto error;
        }
    }
    free(stages);
    stages = NULL;
    char ep[96];
    snprintf(ep, sizeof ep, "inproc://bus-watch-stop-%p", (void *)self);
    self->watch_stop = zsock_new(ZMQ_PAIR);
    self->watch_stop_peer = zsock_new(ZMQ_PAIR);
    if (!self->watch_stop || !self->watch_stop_peer || zsock_bind(self->watch_stop, "%s", ep) < 0 ||
        zsock_connect(self->watch_stop_peer, "%s", ep) < 0 ||
        pthread_create(&self->watcher, NULL, watcher_thread, self) != 0) {
        goto error;
    }
    self->watcher_running = true;
    return self;
error:
    free(stages);
    bus_destroy(&self);
    return NULL;
}

size_t bus_stage_count(const bus_t *self)
{
    return self->nproxies - 1;
}

void bus_destroy(bus_t **self_p)
{
    assert(self_p);
    bus_t *self = *self_p;
    if (!self) {
        return;
    }
    if (self->watcher_running) {
        zstr_send(self->watch_stop, "STOP");
        pthread_join(self->watcher, NULL);
    }
    for (size_t i = 0; i < self->nproxies; i++) {
        proxy_stop(&self->proxies[i]);
    }
    zsock_destroy(&self->watch_stop);
    zsock_destroy(&self->watch_stop_peer);
    free(self);
    *self_p = NULL;
}
