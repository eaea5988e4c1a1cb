/* wasl_zmq — ZeroMQ sockets the Wasl way: size limits, heartbeats, optional CURVE + ZAP allow-list.
 */
#include "wasl_zmq.h"
#include "wasl_clock.h"
#include "wasl_log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A closing socket keeps unsent messages this long, so a drain does not drop them. */
#define WASL_ZMQ_LINGER_MS 2000
/* Where libzmq sends ZAP requests (RFC 27); one handler per process (per ZeroMQ context). */
#define ZAP_ENDPOINT      "inproc://zeromq.zap.01"
#define ZAP_BIND_WAIT_MS  2000
#define ZAP_BIND_RETRY_MS 10
/* A CURVE public key: 32 bytes, 40 characters of Z85 (+ NUL). */
#define CURVE_KEY_BYTES 32
#define CURVE_KEY_Z85   41
/* A ZAP domain: "wasl:" + the allow-list (libzmq's limit is 254 bytes). */
#define ZAP_DOMAIN_MAX (sizeof WASL_ZAP_DOMAIN + WASL_ZAP_ALLOW_MAX + 1)

struct wasl_zmq {
    char *curve_dir;
    char *public_dir;
    zcert_t *self_cert;
    char *server_public; /* Z85 text of the server's public key */
    zactor_t *auth;      /* ZAP handler (zap_actor), started by the first CURVE server socket */
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

/* Options every Wasl socket has. ZMTP heartbeats only on request/reply sockets: a pipeline
 * socket's input stops whenever its pipe is full (a consumer slower than its producers, which
 * is normal under load), and an engine that is not reading cannot see the peer's PINGs, so the
 * heartbeat timeout drops a healthy connection — losing what was in flight, and in libzmq 4.3.4
 * the reconnect can abort the whole process ("Assertion failed: _input_stopped", libzmq issue
 * 3937; seen here as wasl-router dying under `make bench`). Pipelines find a dead peer with TCP
 * keepalive instead (WASL_ZMQ_KEEPALIVE_*: about 25 s), which backpressure does not fool. */
static void apply_common(const wasl_zmq_t *self, zsock_t *sock, int type)
{
    zsock_set_maxmsgsize(sock, self->maxmsgsize > INT_MAX ? INT_MAX : (int)self->maxmsgsize);
    if (type == ZMQ_DEALER || type == ZMQ_ROUTER || type == ZMQ_REQ || type == ZMQ_REP) {
        zsock_set_heartbeat_ivl(sock, self->heartbeat_ivl_ms);
        zsock_set_heartbeat_timeout(sock, self->heartbeat_ivl_ms * 3);
        zsock_set_heartbeat_ttl(sock, self->heartbeat_ivl_ms * 3);
    }
    zsock_set_tcp_keepalive(sock, 1);
    zsock_set_tcp_keepalive_idle(sock, WASL_ZMQ_KEEPALIVE_IDLE_S);
    zsock_set_tcp_keepalive_intvl(sock, WASL_ZMQ_KEEPALIVE_INTVL_S);
    zsock_set_tcp_keepalive_cnt(sock, WASL_ZMQ_KEEPALIVE_CNT);
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
    apply_common(self, sock, type);
    return sock;
}

bool wasl_zap_admits(const char *domain, const char *role)
{
    if (!domain || !role || !*role) {
        return false;
    }
    size_t plen = strlen(WASL_ZAP_DOMAIN);
    if (strncmp(domain, WASL_ZAP_DOMAIN, plen) != 0) {
        return false;
    }
    if (domain[plen] == '\0') {
        return true;
    }
    if (domain[plen] != ':') {
        return false;
    }
    size_t rlen = strlen(role);
    for (const char *p = domain + plen + 1;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == rlen && strncmp(p, role, len) == 0) {
            return true;
        }
        if (!comma) {
            return false;
        }
        p = comma + 1;
    }
}

/* ---- the ZAP handler -----------------------------------------------------------------------
 * Our own rather than CZMQ's zauth: zauth admits any key of the directory on every socket, and
 * a bus must admit on each socket only the roles that belong there (a key of the router must
 * not register as a caselookup worker and receive national IDs). A key's role is its file's
 * name, <public_dir>/<role>.pub, as `waslctl keygen` writes it; the socket's ZAP domain carries
 * the roles it admits (wasl_zap_admits). The directory is re-read when its mtime changes, so a
 * key added or removed takes effect at the next handshake. */

typedef struct {
    const char *public_dir; /* borrowed from wasl_zmq_t, which outlives the actor */
    zhashx_t *roles;        /* Z85 public key -> role name */
    struct timespec mtime;  /* of public_dir when last read */
} keyring_t;

/* What the actor is started with: the keys' directory and the REP socket already bound to
 * ZAP_ENDPOINT (bound by the caller, so a failure is seen there; the thread start is the fence
 * that hands the socket over, and the actor destroys it). */
typedef struct {
    const char *public_dir;
    zsock_t *handler;
} zap_start_t;

/* Re-reads the public keys when the directory changed since the last read. On an unreadable
 * directory the ring is emptied: nobody is admitted rather than yesterday's keys. */
static void keyring_refresh(keyring_t *ring)
{
    struct stat st;
    if (stat(ring->public_dir, &st) == 0 && st.st_mtim.tv_sec == ring->mtime.tv_sec &&
        st.st_mtim.tv_nsec == ring->mtime.tv_nsec && zhashx_size(ring->roles) > 0) {
        return;
    }
    zhashx_purge(ring->roles);
    DIR *dir = opendir(ring->public_dir);
    if (!dir) {
        wasl_error("zmq: cannot read the public keys", "{s:s}", "dir", ring->public_dir);
        return;
    }
    ring->mtime = st.st_mtim;
    const char *suffix = ".pub";
    size_t slen = strlen(suffix);
    for (struct dirent *e = readdir(dir); e; e = readdir(dir)) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len <= slen || strcmp(e->d_name + len - slen, suffix) != 0) {
            continue;
        }
        char *path = zsys_sprintf("%s/%s", ring->public_dir, e->d_name);
        zcert_t *cert = path ? zcert_load(path) : NULL;
        if (cert) {
            char *role = zsys_sprintf("%.*s", (int)(len - slen), e->d_name);
            if (role) {
                zhashx_update(ring->roles, zcert_public_txt(cert), role);
            }
            zstr_free(&role);
        } else {
            wasl_warn("zmq: skipping an unreadable public key", "{s:s}", "file",
                      path ? path : e->d_name);
        }
        zcert_destroy(&cert);
        zstr_free(&path);
    }
    closedir(dir);
}

/* Answers one ZAP request (RFC 27): 200 with the role as user id when the CURVE key is known
 * and its role is admitted by the socket's domain, else 400. A malformed request from libzmq
 * gets a 400 as well (never a crash). */
static void zap_answer(keyring_t *ring, zsock_t *handler, zmsg_t *req)
{
    char *version = zmsg_popstr(req), *request_id = zmsg_popstr(req);
    char *domain = zmsg_popstr(req), *address = zmsg_popstr(req);
    char *identity = zmsg_popstr(req), *mechanism = zmsg_popstr(req);
    zframe_t *key = zmsg_pop(req);
    const char *role = NULL;
    bool ok = false;
    if (version && strcmp(version, "1.0") == 0 && mechanism && strcmp(mechanism, "CURVE") == 0 &&
        key && zframe_size(key) == CURVE_KEY_BYTES) {
        char key_txt[CURVE_KEY_Z85];
        zmq_z85_encode(key_txt, zframe_data(key), CURVE_KEY_BYTES);
        keyring_refresh(ring);
        role = zhashx_lookup(ring->roles, key_txt);
        ok = wasl_zap_admits(domain, role);
    }
    if (!ok) {
        /* The bus's monitor counts and logs the refusal with the peer's address. */
        wasl_debug("zmq: ZAP refused a peer", "{s:s, s:s, s:s}", "domain", domain ? domain : "",
                   "role", role ? role : "(unknown key)", "address", address ? address : "");
    }
    zmsg_t *reply = zmsg_new();
    if (reply) {
        zmsg_addstr(reply, "1.0");
        zmsg_addstr(reply, request_id ? request_id : "");
        zmsg_addstr(reply, ok ? "200" : "400");
        zmsg_addstr(reply, ok ? "OK" : "not allowed on this socket");
        zmsg_addstr(reply, ok ? role : "");
        zmsg_addmem(reply, "", 0); /* no metadata */
        zmsg_send(&reply, handler);
    }
    zframe_destroy(&key);
    zstr_free(&version);
    zstr_free(&request_id);
    zstr_free(&domain);
    zstr_free(&address);
    zstr_free(&identity);
    zstr_free(&mechanism);
}

/* The handler's thread (a zactor): answers ZAP requests until the pipe says $TERM. */
static void zap_actor(zsock_t *pipe, void *arg)
{
    const zap_start_t *start = arg;
    keyring_t ring = {.public_dir = start->public_dir, .roles = zhashx_new()};
    zsock_t *handler = start->handler; /* ours now */
    zpoller_t *poller = ring.roles ? zpoller_new(pipe, handler, NULL) : NULL;
    /* zactor_new waits for this signal; a failure shows as an actor that refuses everything
     * (libzmq denies when no handler answers) and a log line. */
    zsock_signal(pipe, 0);
    if (!poller) {
        wasl_error("zmq: cannot start the ZAP handler", NULL);
        goto done;
    }
    zhashx_set_destructor(ring.roles, (zhashx_destructor_fn *)zstr_free);
    zhashx_set_duplicator(ring.roles, (zhashx_duplicator_fn *)strdup);
    keyring_refresh(&ring);
    /* SIGTERM sets zsys_interrupted; we stop on $TERM only, after our owner's sockets. */
    zpoller_set_nonstop(poller, true);
    for (;;) {
        void *which = zpoller_wait(poller, -1);
        if (which == pipe) {
            char *cmd = zstr_recv(pipe);
            bool term = !cmd || strcmp(cmd, "$TERM") == 0;
            zstr_free(&cmd);
            if (term) {
                break;
            }
        } else if (which == handler) {
            zmsg_t *req = zmsg_recv(handler);
            if (req) {
                zap_answer(&ring, handler, req);
                zmsg_destroy(&req);
            }
        } else if (zpoller_terminated(poller)) {
            break;
        }
    }
done:
    zpoller_destroy(&poller);
    zsock_destroy(&handler);
    zhashx_destroy(&ring.roles);
}

/* True when `allow` is a list of role names: [a-z0-9_-]+ separated by commas, not too long. */
static bool allow_list_valid(const char *allow)
{
    size_t len = strlen(allow);
    if (len > WASL_ZAP_ALLOW_MAX) {
        return false;
    }
    bool name_started = false;
    for (const char *p = allow; *p; p++) {
        if (*p == ',') {
            if (!name_started) {
                return false;
            }
            name_started = false;
        } else if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-') {
            name_started = true;
        } else {
            return false;
        }
    }
    return len == 0 || name_started;
}

zsock_t *wasl_zmq_bind(wasl_zmq_t *self, int type, const char *endpoints)
{
    return wasl_zmq_bind_allow(self, type, endpoints, NULL);
}

/* Binds the ZAP handler's endpoint. A handler closed just before (another wasl_zmq_t of this
 * process destroyed: the unit tests do it, so could a daemon re-creating its context) releases
 * the inproc endpoint asynchronously, in libzmq's reaper thread, so EADDRINUSE is retried for a
 * bounded time (seen in CI under ASan as "cannot start the ZAP authenticator"). 0 or -1. */
static int bind_zap_handler(zsock_t *handler)
{
    int64_t give_up = wasl_clock_ms() + ZAP_BIND_WAIT_MS;
    while (zsock_bind(handler, ZAP_ENDPOINT) < 0) {
        if (zmq_errno() != EADDRINUSE || wasl_clock_ms() >= give_up) {
            return -1;
        }
        zclock_sleep(ZAP_BIND_RETRY_MS);
    }
    return 0;
}

zsock_t *wasl_zmq_bind_allow(wasl_zmq_t *self, int type, const char *endpoints, const char *allow)
{
    char domain[ZAP_DOMAIN_MAX];
    if (allow && !allow_list_valid(allow)) {
        wasl_error("zmq: bad allow-list of roles", "{s:s}", "allow", allow);
        return NULL;
    }
    if (allow && !*allow) {
        /* Admits nobody: a domain no role matches (an empty list would read as "everyone"). */
        snprintf(domain, sizeof domain, "%s:,", WASL_ZAP_DOMAIN);
    } else if (allow) {
        snprintf(domain, sizeof domain, "%s:%s", WASL_ZAP_DOMAIN, allow);
    } else {
        snprintf(domain, sizeof domain, "%s", WASL_ZAP_DOMAIN);
    }
    zsock_t *sock = new_socket(self, type);
    if (!sock) {
        return NULL;
    }
    if (self->self_cert) {
        if (!self->auth) {
            /* One ZAP handler per process serves every CURVE server socket. */
            zap_start_t start = {.public_dir = self->public_dir, .handler = zsock_new(ZMQ_REP)};
            if (!start.handler || bind_zap_handler(start.handler) < 0) {
                wasl_error("zmq: cannot start the ZAP authenticator", "{s:s}", "error",
                           zmq_strerror(zmq_errno()));
                zsock_destroy(&start.handler);
                zsock_destroy(&sock);
                return NULL;
            }
            /* zactor_new returns once the actor took `start` (it signals first thing). */
            self->auth = zactor_new(zap_actor, &start);
            if (!self->auth) {
                wasl_error("zmq: cannot start the ZAP authenticator", NULL);
                zsock_destroy(&start.handler);
                zsock_destroy(&sock);
                return NULL;
            }
        }
        zsock_set_zap_domain(sock, domain);
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
