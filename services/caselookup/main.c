/* wasl-caselookup — entry point: configuration, the lookup worker behind the bus, a graceful
 * stop. */
#include "lookup.h"
#include "wasl_admin.h"
#include "wasl_config.h"
#include "wasl_log.h"
#include "wasl_pii.h"
#include "wasl_signal.h"

#include <stdlib.h>

int main(int argc, char **argv)
{
    lookup_config_t c = {0};
    const char *curve_dir, *curve_name, *pii_key, *pii_key_file;
    wasl_config_t *cfg = wasl_config_new(
        "wasl-caselookup", "Answers case status questions over the bus's request/reply port, "
                           "only to a verified party of the case, and audits every lookup.");
    if (!cfg) {
        return 1;
    }
    wasl_config_pg_url(cfg, &c.pg_url);
    wasl_config_redis_url(cfg, &c.redis_url);
    wasl_config_bus_client(cfg, "caselookup", &c.bus, NULL, &curve_dir, &curve_name);
    wasl_config_int(cfg, "WASL_REDIS_TIMEOUT_MS", 200, 10, 60000, "Redis command timeout",
                    &c.redis_timeout_ms);
    wasl_config_bool(cfg, "WASL_CASELOOKUP_CACHE", true,
                     "keep cases in Redis (false: every lookup reads PostgreSQL)", &c.cache);
    wasl_config_int(cfg, "WASL_CASELOOKUP_CACHE_TTL_S", 30, 1, 86400,
                    "seconds a case stays cached in Redis (a change drops it at once)",
                    &c.cache_ttl_s);
    wasl_config_pii_key(cfg, &pii_key, &pii_key_file);
    wasl_config_int(cfg, "WASL_CASELOOKUP_MAX_FAILURES", 5, 1, 1000,
                    "failed lookups per verifier (national ID or phone), every channel together, "
                    "within the window before it is locked",
                    &c.max_failures);
    wasl_config_int(cfg, "WASL_CASELOOKUP_LINE_MAX_FAILURES", 10, 1, 10000,
                    "failed lookups per caller line (a trusted caller ID) within the window",
                    &c.line_max_failures);
    wasl_config_int(cfg, "WASL_CASELOOKUP_CLIENT_MAX_FAILURES", 1000, 1, 1000000,
                    "failed lookups per asking client without a caller line within the window",
                    &c.client_max_failures);
    wasl_config_int(cfg, "WASL_CASELOOKUP_WINDOW_S", 900, 1, 86400,
                    "window in which failures are counted", &c.window_s);
    wasl_config_int(cfg, "WASL_CASELOOKUP_LOCK_S", 900, 1, 86400,
                    "how long a spent budget (verifier, line, client or case) stays locked",
                    &c.lock_s);
    wasl_config_int(cfg, "WASL_CASELOOKUP_CASE_MAX_FAILURES", 20, 1, 100000,
                    "failed lookups on one case, all callers together, before it is locked",
                    &c.case_max_failures);
    wasl_config_int(cfg, "WASL_CASELOOKUP_BATCH", 256, 1, 4096,
                    "most requests answered per audit commit", &c.batch_max);
    wasl_config_enum(cfg, "WASL_CASELOOKUP_DIGITS", "arabic", "latin|arabic",
                     "digits in Arabic text and speech (arabic: Arabic-Indic)", &c.digits);
    wasl_config_daemon(cfg, CASELOOKUP_ADMIN_PORT);
    wasl_config_parse(cfg, argc, argv);
    wasl_pii_key_load_or_exit("wasl-caselookup", pii_key, pii_key_file);
    wasl_log_init("wasl-caselookup", (wasl_log_level_t)wasl_config_log_level(cfg));
    wasl_signal_install();

    int rc = 1;
    wasl_admin_t *admin = NULL;
    lookup_t *lookup = NULL;
    wasl_zmq_opts_t zopts = {.curve_dir = curve_dir, .self_name = curve_name, .server_name = "bus"};
    wasl_zmq_t *zmq = wasl_zmq_new(&zopts);
    if (!zmq || !(lookup = lookup_new(&c, zmq))) {
        goto done;
    }
    admin =
        wasl_admin_new("wasl-caselookup", wasl_config_admin_bind(cfg), wasl_config_admin_port(cfg));
    if (!admin) {
        goto done;
    }
    wasl_admin_set_ready(admin, lookup_ready, lookup);
    wasl_info("caselookup: started", "{s:i}", "admin_port", wasl_admin_port(admin));
    lookup_run(lookup);
    wasl_info("caselookup: stopping", NULL);
    wasl_admin_set_draining(admin);
    rc = 0;
done:
    wasl_admin_destroy(&admin);
    lookup_destroy(&lookup);
    wasl_zmq_destroy(&zmq);
    wasl_config_destroy(&cfg);
    zsys_shutdown();
    if (rc == 0) {
        wasl_info("caselookup: stopped", NULL);
    }
    return rc;
}
