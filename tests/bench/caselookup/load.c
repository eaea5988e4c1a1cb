/* load — closed-loop load generator for wasl-caselookup: C clients (requests in flight), spread
 * over S DEALER sockets (one thread each) on the bus's request port, cycling through
 * "case<TAB>kind<TAB>verifier" lines for D seconds; each reply sends that client's next request
 * at once. Prints one JSON line with throughput, latency percentiles and outcomes.
 *
 * Why DEALERs and not one REQ per client: a REQ thread per client costs a thread wakeup and a
 * TCP round of its own per request, and on a 2-core machine the generator then used as much CPU
 * as the bus (86 µs per lookup, measured): it, not caselookup, set the ceiling. A DEALER carries
 * many requests at once, each tagged with its client and sequence ([tag][empty][body], as
 * wasl_rpc_call_many frames them); a reply whose sequence is not the client's current one (late,
 * after a timeout) is ignored. */
#define _GNU_SOURCE /* memmem */
#include "wasl_log.h"
#include "wasl_rpc.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINE_MAX_BYTES 256
#define CLIENTS_MAX    1024
#define SOCKETS_MAX    16
#define FRAME_MAX      4096 /* a case.lookup.request is a few hundred bytes */
#define TIMEOUT_MS     2000
#define TAG_SIZE       8 /* client index, sequence: big-endian uint32 each */

typedef struct {
    char **frames;
    size_t *lens;
    size_t *id_at; /* where each frame's request id starts */
    size_t n;
    const char *endpoint;
    double duration_s;
    size_t offset;
    int clients; /* this socket's requests in flight */
    double *lat_ms;
    size_t nlat, cap;
    unsigned long found, denied, locked, errors;
} worker_arg_t;

/* One client: its request in flight. */
typedef struct {
    uint32_t seq;
    double sent_s;
    size_t next; /* the next line it sends */
} client_t;

static wasl_zmq_t *zmq_ctx;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Sends client c's next request: a fresh request id each time (caselookup answers a repeated id
 * from its dedup store), written where the line's old one is (same length). 0, or -1. */
static int send_next(worker_arg_t *a, void *sock, client_t *cl, uint32_t c)
{
    static _Thread_local char frame[FRAME_MAX];
    size_t k = cl->next++ % a->n, at = a->id_at[k];
    char id[WASL_RPC_REQUEST_ID_MAX];
    if (a->lens[k] > FRAME_MAX || wasl_rpc_request_id("bench", id) < 0) {
        return -1;
    }
    memcpy(frame, a->frames[k], a->lens[k]);
    memcpy(frame + at, id, strlen(id));
    unsigned char tag[TAG_SIZE];
    put_u32(tag, c);
    put_u32(tag + 4, ++cl->seq);
    cl->sent_s = now_s();
    if (zmq_send(sock, tag, TAG_SIZE, ZMQ_SNDMORE) < 0 || zmq_send(sock, "", 0, ZMQ_SNDMORE) < 0 ||
        zmq_send(sock, frame, a->lens[k], 0) < 0) {
        return -1;
    }
    return 0;
}

/* Counts one reply's outcome and latency. */
static void record(worker_arg_t *a, const void *body, size_t len, double ms)
{
    wasl_msg_t *m = wasl_msg_decode(body, len, NULL);
    const char *o =
        m && m->type == WASL_MSG_CASE_LOOKUP_REPLY ? m->u.case_lookup_reply.outcome : "error";
    if (!strcmp(o, "found")) {
        a->found++;
    } else if (!strcmp(o, "denied")) {
        a->denied++;
    } else if (!strcmp(o, "locked")) {
        a->locked++;
    } else {
        a->errors++;
    }
    wasl_msg_destroy(&m);
    if (a->nlat == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 65536;
        a->lat_ms = realloc(a->lat_ms, a->cap * sizeof *a->lat_ms);
    }
    a->lat_ms[a->nlat++] = ms;
}

/* Reads one waiting reply ([tag][empty][body]) without blocking: 1 with *c, *seq and body set
 * (the caller closes body), 0 when nothing waits, -1 for a malformed one (dropped). */
static int recv_reply(void *sock, uint32_t *c, uint32_t *seq, zmq_msg_t *body)
{
    zmq_msg_t part;
    int parts = 0, good = 1;
    zmq_msg_init(body);
    for (int more = 1; more; parts++) {
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, parts ? 0 : ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            return parts ? -1 : 0;
        }
        more = zmq_msg_more(&part);
        if (parts == 0 && zmq_msg_size(&part) == TAG_SIZE) {
            *c = get_u32(zmq_msg_data(&part));
            *seq = get_u32((unsigned char *)zmq_msg_data(&part) + 4);
        } else if (parts == 0 || (parts == 1 && zmq_msg_size(&part) != 0) || parts > 2) {
            good = 0;
        } else if (parts == 2) {
            zmq_msg_move(body, &part);
        }
        zmq_msg_close(&part);
    }
    return good && parts == 3 ? 1 : -1;
}

static void *run(void *p)
{
    worker_arg_t *a = p;
    zsock_t *s = wasl_zmq_connect(zmq_ctx, ZMQ_DEALER, a->endpoint);
    client_t *cl = calloc((size_t)a->clients, sizeof *cl);
    if (!s || !cl) {
        a->errors++;
        zsock_destroy(&s);
        free(cl);
        return NULL;
    }
    zsock_set_linger(s, 0);
    void *sock = zsock_resolve(s);
    double end = now_s() + a->duration_s;
    for (int c = 0; c < a->clients; c++) {
        cl[c].next = a->offset + (size_t)c * 7919; /* spread over the lines */
        if (send_next(a, sock, &cl[c], (uint32_t)c) < 0) {
            a->errors++;
        }
    }
    while (now_s() < end) {
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 100) < 0) {
            continue;
        }
        uint32_t c = 0, seq = 0;
        zmq_msg_t body;
        int got;
        while ((got = recv_reply(sock, &c, &seq, &body)) != 0) {
            if (got < 0 || c >= (uint32_t)a->clients || seq != cl[c].seq) {
                if (got > 0) {
                    zmq_msg_close(&body); /* late: that request timed out already */
                }
                continue;
            }
            double t = now_s();
            record(a, zmq_msg_data(&body), zmq_msg_size(&body), (t - cl[c].sent_s) * 1000.0);
            zmq_msg_close(&body);
            if (t < end && send_next(a, sock, &cl[c], c) < 0) {
                a->errors++;
            }
        }
        double t = now_s();
        for (int i = 0; i < a->clients && t < end; i++) {
            if ((t - cl[i].sent_s) * 1000.0 > TIMEOUT_MS) {
                a->errors++; /* unanswered in time: counted, and the client moves on */
                if (send_next(a, sock, &cl[i], (uint32_t)i) < 0) {
                    a->errors++;
                }
            }
        }
    }
    zsock_destroy(&s);
    free(cl);
    return NULL;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: load ENDPOINT REQUESTS.tsv CLIENTS SECONDS [SOCKETS]\n");
        return 2;
    }
    wasl_log_init("bench-load", WASL_LOG_ERROR);
    zsys_init(); /* once, before the threads: CZMQ's lazy init is not safe to race */
    int clients = atoi(argv[3]), threads = argc == 6 ? atoi(argv[5]) : 2;
    double duration = atof(argv[4]);
    if (threads > clients) {
        threads = clients;
    }
    if (clients < 1 || clients > CLIENTS_MAX || threads < 1 || threads > SOCKETS_MAX ||
        duration <= 0) {
        fprintf(stderr, "load: bad CLIENTS, SECONDS or SOCKETS\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    char line[LINE_MAX_BYTES];
    size_t n = 0, cap = 0;
    char **frames = NULL;
    size_t *lens = NULL, *id_at = NULL;
    while (fgets(line, sizeof line, f)) {
        char *num = strtok(line, "\t\n"), *kind = strtok(NULL, "\t\n"), *ver = strtok(NULL, "\t\n");
        if (!num || !kind || !ver) {
            continue;
        }
        wasl_msg_t *m = wasl_msg_new(WASL_MSG_CASE_LOOKUP_REQUEST);
        wasl_msg_case_lookup_request_t *r = &m->u.case_lookup_request;
        char id[WASL_RPC_REQUEST_ID_MAX];
        if (wasl_rpc_request_id("bench", id) < 0) {
            wasl_msg_destroy(&m);
            continue;
        }
        r->request_id = strdup(id);
        r->case_number = strdup(num);
        r->verifier_kind = strdup(kind);
        r->verifier = strdup(ver);
        r->channel = strdup("api");
        r->client = strdup("bench");
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            frames = realloc(frames, cap * sizeof *frames);
            lens = realloc(lens, cap * sizeof *lens);
            id_at = realloc(id_at, cap * sizeof *id_at);
        }
        if (wasl_msg_encode(m, &frames[n], &lens[n], NULL) == 0) {
            const char *where = memmem(frames[n], lens[n], id, strlen(id));
            if (where) {
                id_at[n] = (size_t)(where - frames[n]);
                n++;
            } else {
                free(frames[n]);
            }
        }
        wasl_msg_destroy(&m);
    }
    fclose(f);
    if (n == 0) {
        fprintf(stderr, "load: no requests\n");
        return 1;
    }
    wasl_zmq_opts_t o = {0};
    zmq_ctx = wasl_zmq_new(&o);
    pthread_t tid[SOCKETS_MAX];
    worker_arg_t args[SOCKETS_MAX];
    memset(args, 0, sizeof args);
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        args[i] = (worker_arg_t){.frames = frames,
                                 .lens = lens,
                                 .id_at = id_at,
                                 .n = n,
                                 .endpoint = argv[1],
                                 .duration_s = duration,
                                 .offset = (size_t)i * (n / threads),
                                 .clients = clients / threads + (i < clients % threads)};
        pthread_create(&tid[i], NULL, run, &args[i]);
    }
    size_t total = 0;
    unsigned long found = 0, denied = 0, locked = 0, errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        total += args[i].nlat;
        found += args[i].found;
        denied += args[i].denied;
        locked += args[i].locked;
        errors += args[i].errors;
    }
    double elapsed = now_s() - t0;
    double *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + k, args[i].lat_ms, args[i].nlat * sizeof *all);
        k += args[i].nlat;
        free(args[i].lat_ms);
    }
    qsort(all, total, sizeof *all, cmp_double);
    double p50 = total ? all[total / 2] : 0, p99 = total ? all[(size_t)(total * 0.99)] : 0;
    printf("{\"requests\":%zu,\"per_s\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"found\":%lu,"
           "\"denied\":%lu,\"locked\":%lu,\"errors\":%lu,\"clients\":%d,\"sockets\":%d,"
           "\"seconds\":%.1f}\n",
           total, total / elapsed, p50, p99, found, denied, locked, errors, clients, threads,
           elapsed);
    free(all);
    for (size_t i = 0; i < n; i++) {
        free(frames[i]);
    }
    free(frames);
    free(lens);
    free(id_at);
    wasl_zmq_destroy(&zmq_ctx);
    zsys_shutdown();
    return errors ? 1 : 0;
}
