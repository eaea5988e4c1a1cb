/* wasl-intake — entry point: configuration, the writers, the HTTP edge, a graceful drain. */
#include "auth.h"
#include "email.h"
#include "handlers.h"
#include "intake.h"
#include "server.h"
#include "wasl_admin.h"
#include "wasl_config.h"
#include "wasl_log.h"
#include "wasl_pii.h"
#include "wasl_signal.h"
#include "writer.h"

#include <stdlib.h>

typedef struct {
    intake_writers_t *writers;
    intake_auth_t *auth;
} readiness_t;

static bool ready(void *arg, char *why, size_t cap)
{
    readiness_t *r = arg;
    return intake_auth_ready(r->auth, why, cap) && intake_writers_ready(r->writers, why, cap);
}

static void configure(wasl_config_t *cfg, intake_config_t *c)
{
    wasl_config_str(cfg, "WASL_HTTP_BIND", "127.0.0.1", "address of the public HTTP port",
                    &c->http_bind);
    wasl_config_int(cfg, "WASL_HTTP_PORT", 8080, 1, 65535, "public HTTP port", &c->http_port);
    wasl_config_pg_url(cfg, &c->pg_url);
    wasl_config_redis_url(cfg, &c->redis_url);
    wasl_config_bus_client(cfg, "intake", &c->bus, &c->bus_stages, &c->curve_dir, &c->curve_name);
    wasl_config_str(cfg, "WASL_DEFAULT_COUNTRY", "966",
                    "calling code for national phone numbers (0…)", &c->default_country);
    wasl_config_int(cfg, "WASL_INTAKE_THREADS", 4, 1, 256, "HTTP worker threads", &c->threads);
    wasl_config_int(cfg, "WASL_INTAKE_WRITERS", 4, 1, 64,
                    "PostgreSQL writer threads (one connection each)", &c->writers);
    wasl_config_int(cfg, "WASL_INTAKE_BATCH_MAX", 256, 1, 4096,
                    "most contacts committed in one transaction", &c->batch_max);
    wasl_config_int(cfg, "WASL_INTAKE_DEADLINE_MS", 3000, 100, 600000,
                    "answer 503 when a contact is not committed within this time", &c->deadline_ms);
    wasl_config_int(cfg, "WASL_INTAKE_JSON_MAX", 1 << 20, 1024, 64L << 20,
                    "largest JSON or form request, in bytes", &c->json_max);
    wasl_config_int(cfg, "WASL_INTAKE_EMAIL_MAX", 10L << 20, 1024, 256L << 20,
                    "largest raw email, in bytes", &c->email_max);
    wasl_config_int(cfg, "WASL_INTAKE_BODY_MAX", 64L << 10, 256, 1L << 20,
                    "largest body text of a contact, in bytes", &c->body_max);
    wasl_config_int(cfg, "WASL_INTAKE_SMS_THREAD_H", 72, 0, 24 * 365,
                    "an SMS joins the sender's ticket active within this many hours",
                    &c->sms_thread_h);
    wasl_config_int(cfg, "WASL_INTAKE_CALL_TTL_S", 3600, 60, 86400,
                    "lifetime of a call's live session in Redis after its last event",
                    &c->call_ttl_s);
    wasl_config_int(cfg, "WASL_INTAKE_IVR_TTL_S", 600, 30, 3600,
                    "lifetime of an IVR menu session in Redis after its last event (a caller "
                    "who pauses longer starts the menu again)",
                    &c->ivr_ttl_s);
    wasl_config_int(cfg, "WASL_INTAKE_CLIENTS_REFRESH_S", 10, 1, 3600,
                    "how often the clients table is re-read", &c->clients_refresh_s);
    wasl_config_int(cfg, "WASL_INTAKE_SIG_MAX_AGE_S", 300, 10, 3600,
                    "HMAC signatures older than this are refused", &c->sig_max_age_s);
    wasl_config_str(cfg, "WASL_EMAIL_TRUSTED_AUTHSERV", "",
                    "authserv-ids (comma-separated) of the receiving MTAs whose "
                    "Authentication-Results header is believed; empty: none (an email then "
                    "threads only by one of our Message-IDs)",
                    &c->email_trusted_authserv);
    wasl_config_int(cfg, "WASL_INTAKE_INFLIGHT_MAX", 64L << 20, 64L << 10, 16L << 30,
                    "request body bytes held at once across the server (reserved from "
                    "Content-Length before reading); past it 503 + Retry-After",
                    &c->inflight_max);
    wasl_config_int(cfg, "WASL_INTAKE_LOOKUP_THREADS", 8, 1, 256,
                    "threads that wait on caselookup for requests (case lookups, IVR)",
                    &c->lookup_threads);
    wasl_config_int(cfg, "WASL_INTAKE_PARSE_THREADS", 2, 1, 64, "threads that parse emails",
                    &c->parse_threads);
    wasl_config_int(cfg, "WASL_INTAKE_OFFLOAD_QUEUE", 256, 1, 65536,
                    "requests that may wait for a lookup or parse thread; past it 503",
                    &c->offload_queue);
    wasl_config_int(cfg, "WASL_REDIS_TIMEOUT_MS", 500, 10, 60000, "Redis connect/command timeout",
                    &c->redis_timeout_ms);
    wasl_config_pii_key(cfg, &c->pii_key, &c->pii_key_file);
    wasl_config_daemon(cfg, INTAKE_ADMIN_PORT);
}

int main(int argc, char **argv)
{
    intake_config_t c = {0};
    wasl_config_t *cfg = wasl_config_new(
        "wasl-intake", "The HTTP edge of Wasl: reports, call events, SMS and email in; a ticket "
                       "acknowledged only after PostgreSQL committed it.");
    if (!cfg) {
        return 1;
    }
    configure(cfg, &c);
    wasl_config_parse(cfg, argc, argv);
    wasl_pii_key_load_or_exit("wasl-intake", c.pii_key, c.pii_key_file);
    wasl_log_init("wasl-intake", (wasl_log_level_t)wasl_config_log_level(cfg));
    wasl_signal_install();
    intake_email_init();

    int rc = 1;
    wasl_admin_t *admin = NULL;
    intake_server_t *server = NULL;
    intake_writers_t *writers = NULL;
    intake_auth_t *auth = NULL;
    wasl_zmq_opts_t zopts = {
        .curve_dir = c.curve_dir, .self_name = c.curve_name, .server_name = "bus"};
    wasl_zmq_t *zmq = wasl_zmq_new(&zopts);
    if (!zmq || !(auth = intake_auth_new(&c)) || !(writers = intake_writers_new(&c, zmq)) ||
        !(server = intake_server_new(&c, auth, writers))) {
        goto done;
    }
    admin = wasl_admin_new("wasl-intake", wasl_config_admin_bind(cfg), wasl_config_admin_port(cfg));
    if (!admin) {
        goto done;
    }
    readiness_t readiness = {writers, auth};
    wasl_admin_set_ready(admin, ready, &readiness);
    wasl_info("intake: started", "{s:s, s:i, s:i, s:i, s:b}", "bind", c.http_bind, "port",
              (int)c.http_port, "admin_port", wasl_admin_port(admin), "writers", (int)c.writers,
              "curve", wasl_zmq_curve(zmq));
    while (!wasl_signal_wait(-1)) {
    }
    /* Drain: refuse new requests, let the writers answer every accepted one, then close. */
    wasl_info("intake: draining", NULL);
    wasl_admin_set_draining(admin);
    intake_server_drain(server);
    intake_server_stop_offload(server);
    rc = 0;
done:
    /* Writers stop (every accepted job answered) before the server goes, but are freed only
     * after it: an HTTP thread that passed the draining check may still submit, and must find
     * a pool that says no rather than freed memory. */
    intake_writers_stop(writers);
    intake_server_destroy(&server);
    intake_writers_destroy(&writers);
    wasl_admin_destroy(&admin);
    intake_auth_destroy(&auth);
    wasl_zmq_destroy(&zmq);
    intake_email_shutdown();
    intake_cases_shutdown(); /* the case-lookup clients' sockets, before CZMQ goes */
    wasl_config_destroy(&cfg);
    zsys_shutdown();
    if (rc == 0) {
        wasl_info("intake: stopped", NULL);
    }
    return rc;
}
