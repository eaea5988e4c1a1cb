/* wasl-classifier — entry point: configuration, the model, the worker loop, a graceful stop. */
#include "wasl_admin.h"
#include "wasl_config.h"
#include "wasl_log.h"
#include "wasl_signal.h"
#include "worker.h"

#include <stdlib.h>

int main(int argc, char **argv)
{
    worker_config_t c = {0};
    const char *curve_dir, *curve_name;
    wasl_config_t *cfg = wasl_config_new(
        "wasl-classifier", "Classifies every received ticket (category, priority, language, "
                           "entities), commits the decision and passes the ticket to the router.");
    if (!cfg) {
        return 1;
    }
    wasl_config_pg_url(cfg, &c.pg_url);
    wasl_config_pg_sync_commit(cfg, &c.pg_sync_commit);
    wasl_config_bus_client(cfg, "classifier", &c.bus, &c.bus_stages, &curve_dir, &curve_name);
    wasl_config_str(cfg, "WASL_CLASSIFIER_MODEL", "build/model/classifier.bin",
                    "model file (waslctl classifier train); SIGHUP reloads it", &c.model_path);
    wasl_config_str(cfg, "WASL_DEFAULT_COUNTRY", "966", "calling code for national numbers",
                    &c.default_country);
    wasl_config_int(cfg, "WASL_CLASSIFIER_LEASE_S", 30, 1, 3600,
                    "how long a claimed row is this worker's", &c.lease_s);
    wasl_config_int(cfg, "WASL_CLASSIFIER_SWEEP_MS", 1000, 50, 600000,
                    "how often rows without a nudge are looked for", &c.sweep_ms);
    wasl_config_int(cfg, "WASL_CLASSIFIER_SWEEP_AGE_MS", 2000, 0, 600000,
                    "a pending row is swept once it is this old", &c.sweep_min_age_ms);
    wasl_config_int(cfg, "WASL_CLASSIFIER_BATCH", 128, 1, 4096,
                    "most tickets classified per transaction", &c.batch_max);
    wasl_config_int(cfg, "WASL_CLASSIFIER_RETRY_MS", 1000, 0, 600000,
                    "backoff per attempt after a failed batch", &c.retry_backoff_ms);
    wasl_config_daemon(cfg, CLASSIFIER_ADMIN_PORT);
    wasl_config_parse(cfg, argc, argv);
    wasl_log_init("wasl-classifier", (wasl_log_level_t)wasl_config_log_level(cfg));
    wasl_signal_install();

    int rc = 1;
    wasl_admin_t *admin = NULL;
    worker_t *worker = NULL;
    wasl_zmq_opts_t zopts = {.curve_dir = curve_dir, .self_name = curve_name, .server_name = "bus"};
    wasl_zmq_t *zmq = wasl_zmq_new(&zopts);
    if (!zmq || !(worker = worker_new(&c, zmq))) {
        goto done;
    }
    admin =
        wasl_admin_new("wasl-classifier", wasl_config_admin_bind(cfg), wasl_config_admin_port(cfg));
    if (!admin) {
        goto done;
    }
    wasl_admin_set_ready(admin, worker_ready, worker);
    wasl_info("classifier: started", "{s:s, s:i}", "model", c.model_path, "admin_port",
              wasl_admin_port(admin));
    worker_run(worker);
    wasl_info("classifier: stopping", NULL);
    wasl_admin_set_draining(admin);
    rc = 0;
done:
    wasl_admin_destroy(&admin);
    worker_destroy(&worker);
    wasl_zmq_destroy(&zmq);
    wasl_config_destroy(&cfg);
    zsys_shutdown();
    if (rc == 0) {
        wasl_info("classifier: stopped", NULL);
    }
    return rc;
}
