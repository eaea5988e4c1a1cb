/* zmq_ceiling — raw ZeroMQ throughput through a wasl-bus stage, the ceiling the pipeline's
 * nudges can never beat: one PUSH into the stage's in-port, one PULL from its out-port, N
 * messages of S bytes (a nudge is ~40: type, v, row id), with the daemons' socket options and
 * CURVE when WASL_CURVE_DIR is set (as waslctl). Point it at a bus no daemon consumes from.
 *
 *   zmq_ceiling BUS_ENDPOINT STAGE COUNT SIZE   → one JSON line: msgs, seconds, msgs_per_s
 */
#include "wasl_zmq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    zsock_t *pull;
    long count;
    long got;
    double first_s, last_s;
} sink_t;

static void *drain(void *arg)
{
    sink_t *s = arg;
    zmq_msg_t m;
    zmq_msg_init(&m);
    void *sock = zsock_resolve(s->pull);
    while (s->got < s->count) {
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 5000) <= 0) {
            break; /* nothing for 5 s: the rest is lost, which the count shows */
        }
        while (s->got < s->count && zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) >= 0) {
            if (s->got++ == 0) {
                s->first_s = mono_s();
            }
        }
    }
    s->last_s = mono_s();
    zmq_msg_close(&m);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: zmq_ceiling BUS_ENDPOINT STAGE COUNT SIZE\n");
        return 2;
    }
    long count = atol(argv[3]), size = atol(argv[4]);
    if (count <= 0 || size <= 0 || size > 65536) {
        fprintf(stderr, "zmq_ceiling: COUNT > 0, 0 < SIZE <= 65536\n");
        return 2;
    }
    const char *curve = getenv("WASL_CURVE_DIR");
    wasl_zmq_opts_t opts = {.curve_dir = curve, .self_name = "waslctl", .server_name = "bus"};
    wasl_zmq_t *zmq = wasl_zmq_new(&opts);
    char *in = wasl_bus_endpoints(argv[1], WASL_BUS_STAGES_DEFAULT, argv[2], WASL_BUS_PUSH);
    char *out = wasl_bus_endpoints(argv[1], WASL_BUS_STAGES_DEFAULT, argv[2], WASL_BUS_PULL);
    if (!zmq || !in || !out) {
        fprintf(stderr, "zmq_ceiling: bad endpoint, stage or keys\n");
        return 1;
    }
    sink_t s = {.pull = wasl_zmq_connect(zmq, ZMQ_PULL, out), .count = count};
    zsock_t *push = wasl_zmq_connect(zmq, ZMQ_PUSH, in);
    if (!s.pull || !push) {
        return 1;
    }
    zsock_set_rcvhwm(s.pull, 100000);
    zsock_set_sndhwm(push, 100000);
    /* Both handshakes done before the clock starts: one message through and back. */
    zsock_set_rcvtimeo(s.pull, 5000);
    zstr_send(push, "warm-up");
    char *w = zstr_recv(s.pull);
    if (!w) {
        fprintf(stderr, "zmq_ceiling: nothing came through the bus in 5 s\n");
        return 1;
    }
    zstr_free(&w);
    pthread_t t;
    pthread_create(&t, NULL, drain, &s);
    char *payload = calloc(1, (size_t)size);
    double t0 = mono_s();
    for (long i = 0; i < count; i++) {
        zmq_send(zsock_resolve(push), payload, (size_t)size, 0);
    }
    pthread_join(t, NULL);
    double secs = s.last_s - t0;
    printf("{\"msgs\":%ld,\"sent\":%ld,\"size\":%ld,\"seconds\":%.3f,\"msgs_per_s\":%.0f}\n", s.got,
           count, size, secs, secs > 0 ? (double)s.got / secs : 0.0);
    free(payload);
    zsock_destroy(&push);
    zsock_destroy(&s.pull);
    free(in);
    free(out);
    wasl_zmq_destroy(&zmq);
    return s.got == count ? 0 : 1;
}
