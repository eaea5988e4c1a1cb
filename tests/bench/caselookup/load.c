/* load — closed-loop load generator for wasl-caselookup: T threads, each a Lazy Pirate client
 * on the bus's request port, cycling through "case<TAB>kind<TAB>verifier" lines for D seconds;
 * prints one JSON line with throughput, latency percentiles and outcomes. */
#define _GNU_SOURCE /* memmem */
#include "wasl_log.h"
#include "wasl_rpc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINE_MAX_BYTES 256
#define THREADS_MAX    64
#define FRAME_MAX      4096 /* a case.lookup.request is a few hundred bytes */
#define TIMEOUT_MS     2000
#define RETRIES        1

typedef struct {
    char **frames;
    size_t *lens;
    size_t *id_at; /* where each frame's request id starts */
    size_t n;
    const char *endpoint;
    double duration_s;
    size_t offset;
    double *lat_ms;
    size_t nlat, cap;
    unsigned long found, denied, locked, errors;
} worker_arg_t;

static wasl_zmq_t *zmq_ctx;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *run(void *p)
{
    worker_arg_t *a = p;
    wasl_rpc_t *rpc = wasl_rpc_new(zmq_ctx, a->endpoint, TIMEOUT_MS, RETRIES);
    if (!rpc) {
        return NULL;
    }
    static _Thread_local char frame[FRAME_MAX];
    double end = now_s() + a->duration_s;
    size_t i = a->offset;
    while (now_s() < end) {
        char *rep = NULL;
        size_t len = 0;
        double t0 = now_s();
        /* Each call is a new request: caselookup answers a repeated request id from its dedup
         * store, so the frame gets a fresh id (same length, written where the old one is). */
        size_t k = i % a->n, at = a->id_at[k];
        char id[WASL_RPC_REQUEST_ID_MAX];
        if (a->lens[k] > FRAME_MAX || wasl_rpc_request_id("bench", id) < 0) {
            a->errors++;
            i++;
            continue;
        }
        memcpy(frame, a->frames[k], a->lens[k]);
        memcpy(frame + at, id, strlen(id));
        int rc = wasl_rpc_call(rpc, frame, a->lens[k], &rep, &len);
        double ms = (now_s() - t0) * 1000.0;
        i++;
        if (rc != 0) {
            a->errors++;
            continue;
        }
        wasl_msg_t *m = wasl_msg_decode(rep, len, NULL);
        free(rep);
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
    wasl_rpc_destroy(&rpc);
    return NULL;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: load ENDPOINT REQUESTS.tsv THREADS SECONDS\n");
        return 2;
    }
    wasl_log_init("bench-load", WASL_LOG_ERROR);
    zsys_init(); /* once, before the threads: CZMQ's lazy init is not safe to race */
    int threads = atoi(argv[3]);
    double duration = atof(argv[4]);
    if (threads < 1 || threads > THREADS_MAX || duration <= 0) {
        fprintf(stderr, "load: bad THREADS or SECONDS\n");
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
    pthread_t tid[THREADS_MAX];
    worker_arg_t args[THREADS_MAX];
    memset(args, 0, sizeof args);
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        args[i] = (worker_arg_t){.frames = frames,
                                 .lens = lens,
                                 .id_at = id_at,
                                 .n = n,
                                 .endpoint = argv[1],
                                 .duration_s = duration,
                                 .offset = (size_t)i * (n / threads)};
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
           "\"denied\":%lu,\"locked\":%lu,\"errors\":%lu,\"threads\":%d,\"seconds\":%.1f}\n",
           total, total / elapsed, p50, p99, found, denied, locked, errors, threads, elapsed);
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
