/* sink — the SMS gateway for `make bench`: answers wasl-notifier's JSON webhook (WASL_SMS_MODE=
 * webhook) with 200 and a provider id, and counts what it received: requests, distinct
 * notification ids, and duplicates (the same id sent twice). It costs little CPU (libmicrohttpd,
 * one thread per connection, nothing per request but a hash-set insert), so the notifier and
 * not the sink is what the benchmark measures.
 *
 *   sink PORT          serves 127.0.0.1:PORT until SIGTERM/SIGINT, then prints its counts
 *   GET /stats         {"received":N,"unique":N,"duplicates":N} at any time
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BODY_MAX 8192
#define SET_BITS 22 /* 4 M slots: room for every notification a bench run makes */

static struct {
    pthread_mutex_t lock;
    int64_t *slots; /* open addressing, 0 = empty; ids are positive */
    size_t used;
    unsigned long received, duplicates, bad;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* Records `id`; false when it was already there. */
static bool remember(int64_t id)
{
    size_t mask = ((size_t)1 << SET_BITS) - 1;
    size_t i = (size_t)((uint64_t)id * 0x9E3779B97F4A7C15ull >> (64 - SET_BITS));
    while (g.slots[i] != 0) {
        if (g.slots[i] == id) {
            return false;
        }
        i = (i + 1) & mask;
    }
    if (g.used + 1 >= mask) {
        return true; /* full: count, do not store (never in a bench-sized run) */
    }
    g.slots[i] = id;
    g.used++;
    return true;
}

static void stats_json(char *out, size_t cap)
{
    pthread_mutex_lock(&g.lock);
    snprintf(out, cap, "{\"received\":%lu,\"unique\":%zu,\"duplicates\":%lu,\"bad\":%lu}",
             g.received, g.used, g.duplicates, g.bad);
    pthread_mutex_unlock(&g.lock);
}

typedef struct {
    char body[BODY_MAX];
    size_t len;
} req_t;

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_len, void **state)
{
    (void)cls, (void)version;
    if (strcmp(method, "GET") == 0 && strcmp(url, "/stats") == 0) {
        char buf[256];
        stats_json(buf, sizeof buf);
        return reply(c, MHD_HTTP_OK, buf);
    }
    req_t *r = *state;
    if (!r) {
        if (!(r = calloc(1, sizeof *r))) {
            return MHD_NO;
        }
        *state = r;
        return MHD_YES;
    }
    if (*data_len) {
        size_t n = *data_len < BODY_MAX - 1 - r->len ? *data_len : BODY_MAX - 1 - r->len;
        memcpy(r->body + r->len, data, n);
        r->len += n;
        *data_len = 0;
        return MHD_YES;
    }
    r->body[r->len] = '\0';
    const char *p = strstr(r->body, "\"id\":");
    long long id = p ? strtoll(p + 5, NULL, 10) : 0;
    pthread_mutex_lock(&g.lock);
    if (id > 0) {
        g.received++;
        if (!remember(id)) {
            g.duplicates++;
        }
    } else {
        g.bad++;
    }
    pthread_mutex_unlock(&g.lock);
    if (id <= 0) {
        return reply(c, MHD_HTTP_BAD_REQUEST, "{\"error\":\"id\"}");
    }
    char out[64];
    snprintf(out, sizeof out, "{\"id\":\"sink-%lld\"}", id);
    return reply(c, MHD_HTTP_OK, out);
}

static void on_done(void *cls, struct MHD_Connection *c, void **state,
                    enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    free(*state);
    *state = NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: sink PORT\n");
        return 2;
    }
    g.slots = calloc((size_t)1 << SET_BITS, sizeof *g.slots);
    if (!g.slots) {
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL, on_request, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
        MHD_OPTION_CONNECTION_LIMIT, 1024u, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "sink: cannot listen on 127.0.0.1:%s\n", argv[1]);
        return 1;
    }
    while (!g_stop) {
        pause();
    }
    MHD_stop_daemon(d);
    char buf[256];
    stats_json(buf, sizeof buf);
    printf("%s\n", buf);
    free(g.slots);
    return 0;
}
