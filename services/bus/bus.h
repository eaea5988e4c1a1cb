/* bus — the stateless ZeroMQ forwarder: one PULL→PUSH streamer per stage, one ROUTER→DEALER pair.
 */
#ifndef WASL_BUS_H
#define WASL_BUS_H

#include "wasl_zmq.h"

typedef struct bus bus_t;

typedef struct {
    const char *bind_host; /* e.g. "127.0.0.1", "0.0.0.0" or "*" */
    int base_port;         /* request/reply on base, base+1; stage i on base+2+2i, base+3+2i */
    const char *stages;    /* comma-separated stage names */
} bus_opts_t;

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
