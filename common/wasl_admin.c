/* wasl_admin — each daemon's small HTTP port: /healthz, /readyz and Prometheus /metrics. */
#include "wasl_admin.h"
#include "wasl_log.h"
#include "wasl_metrics.h"

#include <arpa/inet.h>
#include <assert.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef WASL_VERSION
#define WASL_VERSION "dev"
#endif

/* Scrapes and probes are tiny; a small connection limit keeps the port cheap. */
#define ADMIN_MAX_CONNECTIONS 64
#define ADMIN_TIMEOUT_S       10

struct wasl_admin {
    struct MHD_Daemon *mhd;
    const char *service;
    int port;
    time_t started;
    wasl_admin_ready_fn *_Atomic ready_fn;
    void *_Atomic ready_arg;
    atomic_bool draining;
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
}

void wasl_admin_set_draining(wasl_admin_t *self)
{
    atomic_store(&self->draining, true);
}

void wasl_admin_destroy(wasl_admin_t **self_p)
{
    assert(self_p);
    wasl_admin_t *self = *self_p;
    if (self) {
        MHD_stop_daemon(self->mhd);
        free(self);
        *self_p = NULL;
    }
}
