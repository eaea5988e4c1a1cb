/* wasl_zmq — ZeroMQ sockets the Wasl way: size limits, heartbeats, optional CURVE + ZAP allow-list.
 */
#include "wasl_zmq.h"
#include "wasl_log.h"

#include <assert.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* A closing socket keeps unsent messages this long, so a drain does not drop them. */
#define WASL_ZMQ_LINGER_MS 2000

struct wasl_zmq {
    char *curve_dir;
    char *public_dir;
    zcert_t *self_cert;
    char *server_public; /* Z85 text of the server's public key */
    zactor_t *auth;      /* ZAP handler, started by the first CURVE server socket */
    size_t maxmsgsize;
    int heartbeat_ivl_ms;
};

wasl_zmq_t *wasl_zmq_new(const wasl_zmq_opts_t *opts)
{
    assert(opts);
    wasl_zmq_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->maxmsgsize = opts->maxmsgsize ? opts->maxmsgsize : WASL_ZMQ_MAXMSGSIZE_DEFAULT;
    self->heartbeat_ivl_ms =
        opts->heartbeat_ivl_ms ? opts->heartbeat_ivl_ms : WASL_ZMQ_HEARTBEAT_IVL_MS;
    if (!opts->curve_dir || !*opts->curve_dir) {
        return self;
    }
    assert(opts->self_name && opts->server_name);
    self->curve_dir = strdup(opts->curve_dir);
    self->public_dir = zsys_sprintf("%s/public", opts->curve_dir);
    char *secret_path = zsys_sprintf("%s/%s.secret", opts->curve_dir, opts->self_name);
    char *server_path = zsys_sprintf("%s/%s.pub", self->public_dir, opts->server_name);
    if (!self->curve_dir || !self->public_dir || !secret_path || !server_path) {
        goto error;
    }
    self->self_cert = zcert_load(secret_path);
    if (!self->self_cert || !zcert_secret_txt(self->self_cert) ||
        strcmp(zcert_secret_txt(self->self_cert), "0000000000000000000000000000000000000000") ==
            0) {
        wasl_error("zmq: cannot load this process's secret certificate", "{s:s}", "file",
                   secret_path);
        goto error;
    }
    zcert_t *server = zcert_load(server_path);
    if (!server) {
        wasl_error("zmq: cannot load the server's public certificate", "{s:s}", "file",
                   server_path);
        goto error;
    }
    self->server_public = strdup(zcert_public_txt(server));
    zcert_destroy(&server);
    if (!self->server_public) {
        goto error;
    }
    zstr_free(&secret_path);
    zstr_free(&server_path);
    return self;
error:
    zstr_free(&secret_path);
    zstr_free(&server_path);
    wasl_zmq_destroy(&self);
    return NULL;
}

void wasl_zmq_destroy(wasl_zmq_t **self_p)
{
    assert(self_p);
    wasl_zmq_t *self = *self_p;
    if (!self) {
        return;
    }
    zactor_destroy(&self->auth);
    zcert_destroy(&self->self_cert);
    free(self->curve_dir);
    zstr_free(&self->public_dir);
    free(self->server_public);
    free(self);
    *self_p = NULL;
}

bool wasl_zmq_curve(const wasl_zmq_t *self)
{
    return self->self_cert != NULL;
}

/* Options every Wasl socket has. */
static void apply_common(const wasl_zmq_t *self, zsock_t *sock)
{
    zsock_set_maxmsgsize(sock, self->maxmsgsize > INT_MAX ? INT_MAX : (int)self->maxmsgsize);
    zsock_set_heartbeat_ivl(sock, self->heartbeat_ivl_ms);
    zsock_set_heartbeat_timeout(sock, self->heartbeat_ivl_ms * 3);
    zsock_set_heartbeat_ttl(sock, self->heartbeat_ivl_ms * 3);
    zsock_set_linger(sock, WASL_ZMQ_LINGER_MS);
    zsock_set_ipv6(sock, 1);
}

/* Calls `fn` for each endpoint of the comma-separated list; -1 at the first failure. */
static int each_endpoint(zsock_t *sock, const char *endpoints, bool bind)
{
    char *list = strdup(endpoints);
    if (!list) {
        return -1;
    }
    int rc = 0, count = 0;
    char *save = NULL;
    for (char *ep = strtok_r(list, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        while (*ep == ' ') {
            ep++;
        }
        if (!*ep) {
            continue;
        }
        count++;
        int r = bind ? zsock_bind(sock, "%s", ep) : zsock_connect(sock, "%s", ep);
        if (r < 0) {
            wasl_error(bind ? "zmq: cannot bind" : "zmq: cannot connect", "{s:s, s:s}", "endpoint",
                       ep, "error", zmq_strerror(zmq_errno()));
            rc = -1;
            break;
        }
    }
    free(list);
    if (rc == 0 && count == 0) {
        wasl_error("zmq: no endpoint given", NULL);
        rc = -1;
    }
    return rc;
}

/* A new socket with the options every Wasl socket has; NULL (logged) on failure. */
static zsock_t *new_socket(const wasl_zmq_t *self, int type)
{
    zsock_t *sock = zsock_new(type);
    if (!sock) {
        wasl_error("zmq: cannot create socket", "{s:s}", "error", zmq_strerror(zmq_errno()));
        return NULL;
    }
    apply_common(self, sock);
    return sock;
}

zsock_t *wasl_zmq_bind(wasl_zmq_t *self, int type, const char *endpoints)
{
    zsock_t *sock = new_socket(self, type);
    if (!sock) {
        return NULL;
    }
    if (self->self_cert) {
        if (!self->auth) {
            /* One ZAP handler per process serves every CURVE server socket; it admits the
             * public keys found in <curve_dir>/public. */
            self->auth = zactor_new(zauth, NULL);
            if (!self->auth) {
                wasl_error("zmq: cannot start the ZAP authenticator", NULL);
                zsock_destroy(&sock);
                return NULL;
            }
            zstr_sendx(self->auth, "CURVE", self->public_dir, NULL);
            zsock_wait(self->auth);
        }
        zsock_set_zap_domain(sock, WASL_ZAP_DOMAIN);
        zcert_apply(self->self_cert, sock);
        zsock_set_curve_server(sock, 1);
    }
    if (each_endpoint(sock, endpoints, true) < 0) {
        zsock_destroy(&sock);
        return NULL;
    }
    return sock;
}

zsock_t *wasl_zmq_connect(wasl_zmq_t *self, int type, const char *endpoints)
{
    zsock_t *sock = new_socket(self, type);
    if (!sock) {
        return NULL;
    }
    if (self->self_cert) {
        zcert_apply(self->self_cert, sock);
        zsock_set_curve_serverkey(sock, self->server_public);
    }
    if (each_endpoint(sock, endpoints, false) < 0) {
        zsock_destroy(&sock);
        return NULL;
    }
    return sock;
}

int wasl_bus_stage_index(const char *stages, const char *stage)
{
    if (!stages || !stage || !*stage) {
        return -1;
    }
    size_t slen = strlen(stage);
    int idx = 0;
    for (const char *p = stages;; idx++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == slen && strncmp(p, stage, len) == 0) {
            return idx;
        }
        if (!comma) {
            return -1;
        }
        p = comma + 1;
    }
}

char *wasl_bus_endpoints(const char *buses, const char *stages, const char *stage,
                         wasl_bus_side_t side)
{
    int offset;
    if (side == WASL_BUS_RPC_CLIENT) {
        offset = 0;
    } else if (side == WASL_BUS_RPC_WORKER) {
        offset = 1;
    } else {
        int idx = wasl_bus_stage_index(stages, stage);
        if (idx < 0) {
            return NULL;
        }
        offset = 2 + 2 * idx + (side == WASL_BUS_PULL ? 1 : 0);
    }
    char *list = strdup(buses ? buses : "");
    size_t cap = strlen(buses ? buses : "") + 64;
    char *out = NULL;
    size_t olen = 0;
    if (!list) {
        return NULL;
    }
    char *save = NULL;
    for (char *ep = strtok_r(list, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        while (*ep == ' ') {
            ep++;
        }
        char *colon = strrchr(ep, ':');
        if (strncmp(ep, "tcp://", 6) != 0 || !colon || colon < ep + 6 || !colon[1]) {
            goto error;
        }
        char *end = NULL;
        long base = strtol(colon + 1, &end, 10);
        long port = base + offset;
        if (*end != '\0' || base < 1 || port > 65535) {
            goto error;
        }
        cap += (size_t)(colon - ep) + 16;
        char *grown = realloc(out, cap);
        if (!grown) {
            goto error;
        }
        out = grown;
        olen += (size_t)snprintf(out + olen, cap - olen, "%s%.*s:%ld", olen ? "," : "",
                                 (int)(colon - ep), ep, port);
    }
    free(list);
    return out; /* NULL when the list was empty */
error:
    free(list);
    free(out);
    return NULL;
}
