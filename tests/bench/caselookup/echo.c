/* echo — the caselookup bench's own ceiling: a stand-in worker on the bus's worker port that
 * answers every request at once with one fixed `found` reply (no Redis, no PostgreSQL, no
 * audit). Run against it, build/bench/caselookup_load measures what the load generator and the
 * bus alone can carry on this machine (tests/bench/caselookup/run.sh, BENCH_ECHO=1). */
#include "wasl_log.h"
#include "wasl_proto.h"
#include "wasl_signal.h"
#include "wasl_zmq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: echo BUS_WORKER_ENDPOINT\n");
        return 2;
    }
    wasl_log_init("bench-echo", WASL_LOG_ERROR);
    wasl_signal_install();
    wasl_msg_t *m = wasl_msg_new(WASL_MSG_CASE_LOOKUP_REPLY);
    m->u.case_lookup_reply.request_id = strdup("echo");
    m->u.case_lookup_reply.outcome = strdup("found");
    char *reply = NULL;
    size_t len = 0;
    if (wasl_msg_encode(m, &reply, &len, NULL) != 0) {
        return 1;
    }
    wasl_msg_destroy(&m);
    wasl_zmq_opts_t o = {0};
    wasl_zmq_t *zmq = wasl_zmq_new(&o);
    zsock_t *s = zmq ? wasl_zmq_connect(zmq, ZMQ_DEALER, argv[1]) : NULL;
    if (!s) {
        return 1;
    }
    zsock_set_rcvtimeo(s, 200);
    while (!wasl_signal_stopping()) {
        zmsg_t *msg = zmsg_recv(s);
        if (!msg) {
            continue;
        }
        zframe_t *body = zmsg_last(msg);
        zmsg_remove(msg, body); /* the envelope stays for the reply */
        zframe_destroy(&body);
        zmsg_addmem(msg, reply, len);
        zmsg_send(&msg, s);
    }
    zsock_destroy(&s);
    wasl_zmq_destroy(&zmq);
    free(reply);
    return 0;
}
