/* wasl-router — entry point: configuration, the rules, the routing loop, a graceful stop. */
#include "router.h"
#include "wasl_admin.h"
#include "wasl_config.h"
#include "wasl_log.h"
#include "wasl_signal.h"

#include <stdio.h>
#include <stdlib.h>

/* Every option of the router, into `c` (and the bus's CURVE key names). Borrowed from cfg. */
static void declare_options(wasl_config_t *cfg, router_config_t *c, const char **curve_dir,
                            const char **curve_name)
{
    wasl_config_pg_url(cfg, &c->pg_url);
    wasl_config_pg_sync_commit(cfg, &c->pg_sync_commit);
    wasl_config_bus_client(cfg, "router", &c->bus, &c->bus_stages, curve_dir, curve_name);
    wasl_config_str(cfg, "WASL_ROUTER_RULES", "deploy/config/routing.yaml",
                    "routing rules file (YAML); SIGHUP reloads it", &c->rules_path);
    wasl_config_bool(cfg, "WASL_ROUTER_AUTO_ANSWER", true,
                     "answer verified case inquiries through caselookup (rules file decides which)",
                     &c->auto_answer);
    wasl_config_int(cfg, "WASL_ROUTER_LEASE_S", 30, 1, 3600,
                    "how long a claimed route row is this worker's", &c->lease_s);
    wasl_config_int(cfg, "WASL_ROUTER_SWEEP_MS", 1000, 50, 600000,
                    "how often route rows without a nudge are looked for", &c->sweep_ms);
    wasl_config_int(cfg, "WASL_ROUTER_SWEEP_AGE_MS", 2000, 0, 600000,
                    "a pending row is swept once it is this old", &c->sweep_min_age_ms);
    wasl_config_int(cfg, "WASL_ROUTER_BATCH", 512, 1, 4096, "most tickets routed per transaction",
                    &c->batch_max);
    wasl_config_int(cfg, "WASL_ROUTER_RETRY_MS", 1000, 0, 600000,
                    "backoff per attempt after a failed batch", &c->retry_backoff_ms);
    wasl_config_int(cfg, "WASL_ROUTER_DISPATCH_MS", 250, 10, 60000,
                    "how often waiting tickets are offered to agents", &c->dispatch_ms);
    wasl_config_int(cfg, "WASL_ROUTER_DISPATCH_MAX", 500, 1, 20000,
                    "waiting tickets considered per dispatch round", &c->dispatch_max);
    wasl_config_int(cfg, "WASL_ROUTER_TIMERS_MS", 1000, 50, 600000,
                    "how often presence, overflow and SLA timers are checked", &c->timers_ms);
    wasl_config_int(cfg, "WASL_ROUTER_STAFFING_MS", 60000, 50, 3600000,
                    "waiting tickets are checked for an eligible agent present (the overflow "
                    "timer) when who is present changes, and at least this often",
                    &c->staffing_ms);
    wasl_config_int(cfg, "WASL_ROUTER_STATS_MS", 5000, 100, 600000,
                    "how often queue and SLA gauges are refreshed", &c->stats_ms);
    wasl_config_int(cfg, "WASL_ROUTER_REOFFER_AFTER_S", 600, 0, 86400,
                    "an agent who declined a ticket is not offered it again before",
                    &c->reoffer_after_s);
    wasl_config_int(cfg, "WASL_ROUTER_CLOCK_OFFSET_S", 0, -31536000, 31536000,
                    "tests only: shifts the router's clock (SLA, overflow, offers)",
                    &c->clock_offset_s);
}

int main(int argc, char **argv)
{
    router_config_t c = {0};
    const char *curve_dir, *curve_name;
    wasl_config_t *cfg = wasl_config_new(
        "wasl-router", "Routes classified tickets by the rules file (queue, priority, SLA), "
                       "offers them to agents, escalates SLA breaches and explains each decision.");
    if (!cfg) {
        return 1;
    }
    declare_options(cfg, &c, &curve_dir, &curve_name);
    wasl_config_daemon(cfg, ROUTER_ADMIN_PORT);
    wasl_config_parse(cfg, argc, argv);
    wasl_log_init("wasl-router", (wasl_log_level_t)wasl_config_log_level(cfg));
    wasl_signal_install();

    /* A rules file that does not validate is a configuration error: exit 2 with file:line. */
    char err[512];
    rules_t *probe = rules_load(c.rules_path, err, sizeof err);
    if (!probe) {
        fprintf(stderr, "wasl-router: %s\n", err);
        wasl_config_destroy(&cfg);
        return WASL_EXIT_CONFIG;
    }
    rules_destroy(&probe);

    int rc = 1;
    wasl_admin_t *admin = NULL;
    router_t *router = NULL;
    wasl_zmq_opts_t zopts = {.curve_dir = curve_dir, .self_name = curve_name, .server_name = "bus"};
    wasl_zmq_t *zmq = wasl_zmq_new(&zopts);
    if (!zmq || !(router = router_new(&c, zmq))) {
        goto done;
    }
    admin = wasl_admin_new("wasl-router", wasl_config_admin_bind(cfg), wasl_config_admin_port(cfg));
    if (!admin) {
        goto done;
    }
    wasl_admin_set_ready(admin, router_ready, router);
    wasl_info("router: started", "{s:s, s:b, s:i}", "rules", c.rules_path, "auto_answer",
              c.auto_answer, "admin_port", wasl_admin_port(admin));
    router_run(router);
    wasl_info("router: stopping", NULL);
    wasl_admin_set_draining(admin);
    rc = 0;
done:
    wasl_admin_destroy(&admin);
    router_destroy(&router);
    wasl_zmq_destroy(&zmq);
    wasl_config_destroy(&cfg);
    zsys_shutdown();
    if (rc == 0) {
        wasl_info("router: stopped", NULL);
    }
    return rc;
}
