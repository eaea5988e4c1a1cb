/* wasl_zmq — ZeroMQ sockets the Wasl way: size limits, heartbeats, optional CURVE + ZAP allow-list.
 */
#ifndef WASL_ZMQ_H
#define WASL_ZMQ_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct wasl_zmq wasl_zmq_t;

/* Largest message any Wasl socket accepts, unless configured otherwise (WASL_ZMQ_MAXMSGSIZE). */
#define WASL_ZMQ_MAXMSGSIZE_DEFAULT (256 * 1024)
#define WASL_ZMQ_HEARTBEAT_IVL_MS   2000
#define WASL_ZMQ_HEARTBEAT_TTL_MS   6000
/* TCP keepalive on every socket: probes after 10 s idle, every 5 s, 3 unanswered → dead. */
#define WASL_ZMQ_KEEPALIVE_IDLE_S  10
#define WASL_ZMQ_KEEPALIVE_INTVL_S 5
#define WASL_ZMQ_KEEPALIVE_CNT     3
#define WASL_ZAP_DOMAIN            "wasl"
/* Longest allow-list of roles one socket takes (a ZAP domain is at most 254 bytes). */
#define WASL_ZAP_ALLOW_MAX 200

typedef struct {
    /* Directory made by `waslctl keygen`: <dir>/<name>.secret holds each secret certificate,
     * <dir>/public/<name>.pub each public one. Empty or NULL: plain TCP, no CURVE. */
    const char *curve_dir;
    const char *self_name;   /* this process's certificate name, e.g. "intake" */
    const char *server_name; /* the certificate clients expect of servers, e.g. "bus" */
    size_t maxmsgsize;       /* 0: WASL_ZMQ_MAXMSGSIZE_DEFAULT */
    int heartbeat_ivl_ms;    /* 0: WASL_ZMQ_HEARTBEAT_IVL_MS (request/reply sockets only) */
} wasl_zmq_opts_t;

/* Loads the certificates when CURVE is configured. Returns NULL (and logs the file at fault)
 * when a certificate is missing or unreadable. The options' strings are copied. */
wasl_zmq_t *wasl_zmq_new(const wasl_zmq_opts_t *opts);

/* Safe twice; stops the ZAP authenticator if this object started one. */
void wasl_zmq_destroy(wasl_zmq_t **self_p);

bool wasl_zmq_curve(const wasl_zmq_t *self);

/* A server socket of `type` bound to each endpoint of the comma-separated list. With CURVE,
 * it is a CURVE server whose peers must be in <curve_dir>/public (ZAP, started on first use).
 * Returns NULL and logs on failure. The caller owns the socket. */
zsock_t *wasl_zmq_bind(wasl_zmq_t *self, int type, const char *endpoints);

/* wasl_zmq_bind, admitting (with CURVE) only peers whose key is <curve_dir>/public/<role>.pub
 * for a role of `allow` (comma-separated role names, e.g. "intake,router"; at most
 * WASL_ZAP_ALLOW_MAX bytes of [a-z0-9_-] and commas). NULL `allow`: any key in public/. An
 * empty `allow` admits nobody. Without CURVE `allow` is ignored. NULL and a log line on failure
 * or on a malformed list. */
zsock_t *wasl_zmq_bind_allow(wasl_zmq_t *self, int type, const char *endpoints, const char *allow);

/* True when `role` may use a socket whose ZAP domain is `domain`: "wasl" admits every role,
 * "wasl:<role>,<role>…" the roles listed. NULL `role` (an unknown key) is never admitted. */
bool wasl_zap_admits(const char *domain, const char *role);

/* A client socket of `type` connected to each endpoint of the comma-separated list, as a CURVE
 * client of the server certificate when configured. NULL and a log line on failure. */
zsock_t *wasl_zmq_connect(wasl_zmq_t *self, int type, const char *endpoints);

/* ---- bus addressing -------------------------------------------------------------------
 * A bus at base port P serves request/reply on P (clients) and P+1 (workers), and the i-th
 * stage of the stage list (0-based) on P+2+2i (producers push) and P+3+2i (consumers pull). */

/* The stage list every daemon and bus share unless WASL_BUS_STAGES says otherwise. */
#define WASL_BUS_STAGES_DEFAULT "classify,route,notify"
#define WASL_BUS_PORT_DEFAULT   7100

typedef enum {
    WASL_BUS_PUSH = 0, /* a producer into the stage */
    WASL_BUS_PULL,     /* a consumer of the stage */
    WASL_BUS_RPC_CLIENT,
    WASL_BUS_RPC_WORKER
} wasl_bus_side_t;

/* Given `buses` (comma-separated base endpoints such as "tcp://127.0.0.1:7100,tcp://h:7200"),
 * returns the comma-separated endpoints for `side` of `stage` (ignored for RPC sides) as a new
 * string the caller frees. NULL when the stage is not in `stages`, an endpoint is not
 * "tcp://host:port" or a port leaves 1..65535. */
char *wasl_bus_endpoints(const char *buses, const char *stages, const char *stage,
                         wasl_bus_side_t side);

/* Index of `stage` in the comma-separated `stages`, or -1. */
int wasl_bus_stage_index(const char *stages, const char *stage);

#endif
