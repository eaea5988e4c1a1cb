/* wasl-bus — entry point: configuration, the forwarder, the admin port, a graceful stop. */
#include "bus.h"
#include "wasl_admin.h"
#include "wasl_config.h"
#include "wasl_log.h"
#include "wasl_signal.h"
#include "wasl_zmq.h"

#include <stdio.h>
#include <stdlib.h>

#define BUS_ADMIN_PORT 9100

/* What the bus is configured with. Borrowed from the configuration. */
typedef struct {
    const char *bind_host, *stages, *curve_dir, *curve_name, *allow;
    long base_port, maxmsgsize;
} bus_settings_t;

static void declare_options(wasl_config_t *cfg, bus_settings_t *s)
{
    wasl_config_str(cfg, "WASL_BUS_BIND", "127.0.0.1", "host or address the bus binds ('*': all)",
                    &s->bind_host);
    wasl_config_int(cfg, "WASL_BUS_PORT", WASL_BUS_PORT_DEFAULT, 1, 65535 - 2 * 33,
                    "base port: rpc clients on it, rpc workers on +1, stage i on +2+2i (in) "
                    "and +3+2i (out)",
                    &s->base_port);
    wasl_config_str(cfg, "WASL_BUS_STAGES", WASL_BUS_STAGES_DEFAULT,
                    "pipeline stages, in port order (every daemon must use the same list)",
                    &s->stages);
    wasl_config_str(cfg, "WASL_CURVE_DIR", "",
                    "key directory from `waslctl keygen` (empty: no CURVE encryption)",
                    &s->curve_dir);
    wasl_config_str(cfg, "WASL_CURVE_NAME", "bus", "this daemon's certificate name",
                    &s->curve_name);
    wasl_config_str(cfg, "WASL_BUS_ALLOW", BUS_ALLOW_DEFAULT,
                    "with CURVE, the roles (key names in public/) each socket admits: "
                    "<stage>=<producers>><consumers>;… and rpc=<clients>><workers>",
                    &s->allow);
    wasl_config_int(cfg, "WASL_ZMQ_MAXMSGSIZE", WASL_ZMQ_MAXMSGSIZE_DEFAULT, 1024, 64L << 20,
                    "largest message accepted from a peer, in bytes", &s->maxmsgsize);
}

int main(int argc, char **argv)
{
    bus_settings_t set;
    wasl_config_t *cfg = wasl_config_new(
        "wasl-bus", "Stateless ZeroMQ forwarder between Wasl daemons: one PULL->PUSH streamer "
                    "per pipeline stage and one ROUTER->DEALER pair for request/reply.");
    if (!cfg) {
        return 1;
    }
    declare_options(cfg, &set);
    wasl_config_daemon(cfg, BUS_ADMIN_PORT);
    wasl_config_parse(cfg, argc, argv);
    const char *allow_problem = *set.curve_dir ? bus_allow_check(set.allow, set.stages) : NULL;
    if (allow_problem) {
        fprintf(stderr, "wasl-bus: WASL_BUS_ALLOW: %s (stages: rpc,%s)\n", allow_problem,
                set.stages);
        wasl_config_destroy(&cfg);
        return 2;
    }

    wasl_log_init("wasl-bus", (wasl_log_level_t)wasl_config_log_level(cfg));
    wasl_signal_install();

    int rc = 1;
    wasl_admin_t *admin = NULL;
    bus_t *bus = NULL;
    wasl_zmq_opts_t zopts = {.curve_dir = set.curve_dir,
                             .self_name = set.curve_name,
                             .server_name = set.curve_name,
                             .maxmsgsize = (size_t)set.maxmsgsize};
    wasl_zmq_t *zmq = wasl_zmq_new(&zopts);
    if (!zmq) {
        goto done;
    }
    bus_opts_t opts = {.bind_host = set.bind_host,
                       .base_port = (int)set.base_port,
                       .stages = set.stages,
                       .allow = set.allow};
    bus = bus_new(zmq, &opts);
    if (!bus) {
        goto done;
    }
    admin = wasl_admin_new("wasl-bus", wasl_config_admin_bind(cfg), wasl_config_admin_port(cfg));
    if (!admin) {
        goto done;
    }
    wasl_info("bus: started", "{s:s, s:i, s:s, s:b, s:i}", "bind", set.bind_host, "port",
              (int)set.base_port, "stages", set.stages, "curve", wasl_zmq_curve(zmq), "admin_port",
              wasl_admin_port(admin));
    wasl_admin_set_ready(admin, NULL, NULL); /* readiness = liveness; tells systemd READY=1 */
    while (!wasl_signal_wait(-1)) {
    }
    wasl_info("bus: stopping", NULL);
    wasl_admin_set_draining(admin);
    rc = 0;
done:
    /* The admin port goes first: its scrape hook reads the bus. */
    wasl_admin_destroy(&admin);
    bus_destroy(&bus);
    wasl_zmq_destroy(&zmq);
    wasl_config_destroy(&cfg);
    zsys_shutdown();
    if (rc == 0) {
        wasl_info("bus: stopped", NULL);
    }
    return rc;
}
