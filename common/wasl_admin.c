/* wasl_admin — each daemon's small HTTP port: /healthz, /readyz and Prometheus /metrics, and
 * the systemd notifications (READY, STOPPING, WATCHDOG) that go with them. */
#include "wasl_admin.h"
#include "wasl_log.h"
#include "wasl_metrics.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#ifndef WASL_VERSION
#define WASL_VERSION "dev"
#endif

/* Scrapes and probes are tiny; a small connection limit keeps the port cheap. */
#define ADMIN_MAX_CONNECTIONS 64
#define ADMIN_TIMEOUT_S       10
/* The watchdog's own /healthz probe gives up after this long (or a quarter of the keep-alive
 * period, if shorter), so a hung admin thread misses keep-alives instead of hanging the probe. */
#define WATCHDOG_PROBE_TIMEOUT_US 1000000ULL
#define WATCHDOG_PROBE_MIN_US     10000ULL

struct wasl_admin {
    struct MHD_Daemon *mhd;
    const char *service;
    int port;
    time_t started;
    wasl_admin_ready_fn *_Atomic ready_fn;
    void *_Atomic ready_arg;
    atomic_bool draining;
    atomic_bool ready_sent;
    /* Where the watchdog probes /healthz: the bound address (loopback for a wildcard). */
    struct sockaddr_storage probe_addr;
    socklen_t probe_len;
    /* The WATCHDOG=1 thread; runs only when systemd set WatchdogSec= for this process. */
    bool watchdog_running;
    uint64_t watchdog_period_us;
    pthread_t watchdog;
    pthread_mutex_t watchdog_lock;
    pthread_cond_t watchdog_wake;
    bool watchdog_quit; /* under watchdog_lock */
};

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *type,
                               char *body)
{
    /* MHD takes ownership of body (MHD_RESPMEM_MUST_FREE). */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static char *json_status(const wasl_admin_t *self, const char *status, const char *reason)
{
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"status\":\"%s\",\"service\":\"%s\",\"version\":\"%s\",\"uptime_s\":%lld%s%s%s}\n",
             status, self->service, WASL_VERSION, (long long)(time(NULL) - self->started),
             reason ? ",\"reason\":\"" : "", reason ? reason : "", reason ? "\"" : "");
    return strdup(buf);
}

/* Makes a reason safe to embed in the JSON string above. */
static void sanitize_reason(char *why)
{
    for (char *p = why; *p; p++) {
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) {
            *p = ' ';
        }
    }
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)con_cls;
    wasl_admin_t *self = cls;
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* ignore any body */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json",
                       strdup("{\"error\":{\"code\":\"method_not_allowed\",\"field\":null,"
                              "\"message\":\"only GET\"}}\n"));
    }
    char *body = NULL;
    if (strcmp(url, "/healthz") == 0) {
        body = json_status(self, "ok", NULL);
        return body ? respond(conn, MHD_HTTP_OK, "application/json", body) : MHD_NO;
    }
    if (strcmp(url, "/readyz") == 0) {
        char why[200] = "";
        bool ready = true;
        if (atomic_load(&self->draining)) {
            ready = false;
            snprintf(why, sizeof why, "draining");
        } else {
            wasl_admin_ready_fn *fn = atomic_load(&self->ready_fn);
            if (fn) {
                ready = fn(atomic_load(&self->ready_arg), why, sizeof why);
            }
        }
        sanitize_reason(why);
        body = json_status(self, ready ? "ready" : "not_ready", ready ? NULL : why);
        return body ? respond(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                              "application/json", body)
                    : MHD_NO;
    }
    if (strcmp(url, "/metrics") == 0) {
        body = wasl_metrics_render();
        return body ? respond(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body)
                    : MHD_NO;
    }
    return respond(conn, MHD_HTTP_NOT_FOUND, "application/json",
                   strdup("{\"error\":{\"code\":\"not_found\",\"field\":null,"
                          "\"message\":\"try /healthz, /readyz or /metrics\"}}\n"));
}

/* Remembers the address the watchdog probes: the bound one, or loopback for a wildcard bind. */
static void set_probe_addr(wasl_admin_t *self, const struct sockaddr *bound)
{
    memset(&self->probe_addr, 0, sizeof self->probe_addr);
    if (bound->sa_family == AF_INET) {
        struct sockaddr_in a = *(const struct sockaddr_in *)bound;
        if (a.sin_addr.s_addr == htonl(INADDR_ANY)) {
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        }
        a.sin_port = htons((uint16_t)self->port);
        memcpy(&self->probe_addr, &a, sizeof a);
        self->probe_len = sizeof a;
    } else {
        struct sockaddr_in6 a = *(const struct sockaddr_in6 *)bound;
        if (IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr)) {
            a.sin6_addr = in6addr_loopback;
        }
        a.sin6_port = htons((uint16_t)self->port);
        memcpy(&self->probe_addr, &a, sizeof a);
        self->probe_len = sizeof a;
    }
}

/* Returns true when GET /healthz on our own port answers 200 within timeout_us: the same
 * liveness an orchestrator's probe sees. */
static bool healthz_ok(const wasl_admin_t *self, uint64_t timeout_us)
{
    int fd = socket(self->probe_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    struct timeval tv = {.tv_sec = (time_t)(timeout_us / 1000000),
                         .tv_usec = (suseconds_t)(timeout_us % 1000000)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    static const char request[] = "GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n";
    char reply[32] = "";
    size_t got = 0;
    bool ok = false;
    if (connect(fd, (const struct sockaddr *)&self->probe_addr, self->probe_len) != 0 ||
        send(fd, request, sizeof request - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof request - 1)) {
        goto done;
    }
    /* "HTTP/1.x 200" is all we need; the status line may arrive in pieces. */
    while (got < sizeof reply - 1) {
        ssize_t n = recv(fd, reply + got, sizeof reply - 1 - got, 0);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    reply[got] = '\0';
    ok = strncmp(reply, "HTTP/1.", 7) == 0 && strncmp(reply + 8, " 200", 4) == 0;
done:
    close(fd);
    return ok;
}

/* Sends WATCHDOG=1 every half period while /healthz answers; stops when told by destroy. A
 * missed keep-alive is logged once per outage; systemd restarts us after the full period. */
static void *watchdog_run(void *arg)
{
    wasl_admin_t *self = arg;
    uint64_t half_us = self->watchdog_period_us / 2;
    uint64_t probe_us = self->watchdog_period_us / 4;
    if (probe_us > WATCHDOG_PROBE_TIMEOUT_US) {
        probe_us = WATCHDOG_PROBE_TIMEOUT_US;
    }
    if (probe_us < WATCHDOG_PROBE_MIN_US) {
        probe_us = WATCHDOG_PROBE_MIN_US;
    }
    bool was_ok = true;
    pthread_mutex_lock(&self->watchdog_lock);
    while (!self->watchdog_quit) {
        pthread_mutex_unlock(&self->watchdog_lock);
        bool ok = healthz_ok(self, probe_us);
        if (ok) {
            sd_notify(0, "WATCHDOG=1");
        } else if (was_ok) {
            wasl_warn("admin: /healthz failed; withholding the systemd watchdog keep-alive",
                      "{s:i}", "port", self->port);
        }
        was_ok = ok;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + (half_us % 1000000) * 1000;
        until.tv_sec += (time_t)(half_us / 1000000 + ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        pthread_mutex_lock(&self->watchdog_lock);
        while (!self->watchdog_quit &&
               pthread_cond_timedwait(&self->watchdog_wake, &self->watchdog_lock, &until) !=
                   ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&self->watchdog_lock);
    return NULL;
}

/* Starts the keep-alive thread when systemd asked for one (WatchdogSec= sets WATCHDOG_USEC and
 * WATCHDOG_PID for this process). Without it, or if the thread cannot start, returns quietly:
 * the daemon works, systemd just does not supervise its liveness. */
static void watchdog_start(wasl_admin_t *self)
{
    uint64_t period_us = 0;
    const char *notify_socket = getenv("NOTIFY_SOCKET"); /* keep-alives to nowhere: no thread */
    if (!notify_socket || !*notify_socket || sd_watchdog_enabled(0, &period_us) <= 0 ||
        period_us == 0) {
        return;
    }
    self->watchdog_period_us = period_us;
    pthread_mutex_init(&self->watchdog_lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* a clock step must not stall it */
    pthread_cond_init(&self->watchdog_wake, &attr);
    pthread_condattr_destroy(&attr);
    self->watchdog_quit = false;
    if (pthread_create(&self->watchdog, NULL, watchdog_run, self) != 0) {
        wasl_error("admin: cannot start the systemd watchdog thread", NULL);
        pthread_cond_destroy(&self->watchdog_wake);
        pthread_mutex_destroy(&self->watchdog_lock);
        return;
    }
    self->watchdog_running = true;
    wasl_info("admin: systemd watchdog on", "{s:i}", "period_ms", (int)(period_us / 1000));
}

static void watchdog_stop(wasl_admin_t *self)
{
    if (!self->watchdog_running) {
        return;
    }
    pthread_mutex_lock(&self->watchdog_lock);
    self->watchdog_quit = true;
    pthread_cond_signal(&self->watchdog_wake);
    pthread_mutex_unlock(&self->watchdog_lock);
    pthread_join(self->watchdog, NULL);
    pthread_cond_destroy(&self->watchdog_wake);
    pthread_mutex_destroy(&self->watchdog_lock);
    self->watchdog_running = false;
}

wasl_admin_t *wasl_admin_new(const char *service, const char *bind, int port)
{
    assert(service && bind);
    wasl_admin_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->service = service;
    self->started = time(NULL);
    atomic_init(&self->ready_fn, NULL);
    atomic_init(&self->ready_arg, NULL);
    atomic_init(&self->draining, false);
    atomic_init(&self->ready_sent, false);

    struct sockaddr_in addr4;
    struct sockaddr_in6 addr6;
    struct sockaddr *addr;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    memset(&addr4, 0, sizeof addr4);
    memset(&addr6, 0, sizeof addr6);
    if (inet_pton(AF_INET, bind, &addr4.sin_addr) == 1) {
        addr4.sin_family = AF_INET;
        addr4.sin_port = htons((uint16_t)port);
        addr = (struct sockaddr *)&addr4;
    } else if (inet_pton(AF_INET6, bind, &addr6.sin6_addr) == 1) {
        addr6.sin6_family = AF_INET6;
        addr6.sin6_port = htons((uint16_t)port);
        addr = (struct sockaddr *)&addr6;
        flags |= MHD_USE_IPv6;
    } else {
        wasl_error("admin: bind address is not an IP address", "{s:s}", "bind", bind);
        free(self);
        return NULL;
    }
    self->mhd =
        MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, self, MHD_OPTION_SOCK_ADDR,
                         addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)ADMIN_MAX_CONNECTIONS,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ADMIN_TIMEOUT_S, MHD_OPTION_END);
    if (!self->mhd) {
        wasl_error("admin: cannot listen", "{s:s, s:i}", "bind", bind, "port", port);
        free(self);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->mhd, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : port;
    set_probe_addr(self, addr);
    watchdog_start(self);
    return self;
}

int wasl_admin_port(const wasl_admin_t *self)
{
    return self->port;
}

void wasl_admin_set_ready(wasl_admin_t *self, wasl_admin_ready_fn *fn, void *arg)
{
    atomic_store(&self->ready_arg, arg);
    atomic_store(&self->ready_fn, fn);
    if (!atomic_exchange(&self->ready_sent, true)) {
        sd_notifyf(0, "READY=1\nSTATUS=%s started; admin port %d", self->service, self->port);
    }
}

void wasl_admin_set_draining(wasl_admin_t *self)
{
    if (!atomic_exchange(&self->draining, true)) {
        sd_notifyf(0, "STOPPING=1\nSTATUS=%s draining", self->service);
    }
}

void wasl_admin_destroy(wasl_admin_t **self_p)
{
    assert(self_p);
    wasl_admin_t *self = *self_p;
    if (self) {
        watchdog_stop(self); /* first: it probes the HTTP server */
        MHD_stop_daemon(self->mhd);
        free(self);
        *self_p = NULL;
    }
}
