/* bus — the stateless ZeroMQ forwarder: one PULL→PUSH streamer per stage, one ROUTER→DEALER pair.
 */
#ifndef WASL_BUS_H
#define WASL_BUS_H

#include "wasl_zmq.h"

typedef struct bus bus_t;

/* Who may connect where when CURVE is on (WASL_BUS_ALLOW): "<stage>=<in>><out>" entries
 * separated by ';', each side a comma-separated list of roles (key names in public/). For a
 * stage, `in` are its producers and `out` its consumers; for "rpc", `in` are the clients and
 * `out` the workers. A stage without an entry cannot start with CURVE on. */
#define BUS_ALLOW_DEFAULT                                                                          \
    "rpc=intake,router,desk>caselookup;classify=intake>classifier;route=classifier>router;"        \
    "notify=router>notifier"

typedef struct {
    const char *bind_host; /* e.g. "127.0.0.1", "0.0.0.0" or "*" */
    int base_port;         /* request/reply on base, base+1; stage i on base+2+2i, base+3+2i */
    const char *stages;    /* comma-separated stage names */
    const char *allow;     /* BUS_ALLOW_DEFAULT's format; used only with CURVE */
} bus_opts_t;

/* Copies into `out` (`cap` bytes) the roles `allow` admits on the `out_side` (consumers,
 * workers) or the in side (producers, clients) of `stage`. Returns 0, -1 when the stage has no
 * entry, -2 when `allow` is malformed (an entry without '=' or '>', a list too long for `out`). */
int bus_allow_lookup(const char *allow, const char *stage, bool out_side, char *out, size_t cap);

/* Checks `allow` against the stage list: NULL when every stage and "rpc" has a well-formed
 * entry, else a static message naming what is wrong. */
const char *bus_allow_check(const char *allow, const char *stages);

/* Binds every socket and starts one proxy thread per stage plus one for request/reply, and a
 * watcher thread that keeps the peer gauges. `zmq` is borrowed and must outlive the bus.
 * Returns NULL (and logs which endpoint failed) when a socket cannot be bound. */
bus_t *bus_new(wasl_zmq_t *zmq, const bus_opts_t *opts);

/* Stops the proxies (queued messages get the sockets' linger time to leave) and joins every
 * thread. Safe twice; NULLs the caller's pointer. */
void bus_destroy(bus_t **self_p);

/* Number of stages served. */
size_t bus_stage_count(const bus_t *self);

#endif
