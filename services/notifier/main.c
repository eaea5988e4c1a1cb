/* wasl-notifier — entry point: configuration, templates, providers, the outbox loop, a stop. */
#include "notifier.h"
#include "wasl_admin.h"
#include "wasl_config.h"
#include "wasl_log.h"
#include "wasl_pii.h"
#include "wasl_signal.h"

#include <curl/curl.h>
#include <gmime/gmime.h>
#include <stdlib.h>

/* The outbox: templates, leases, sweeps, retries, quiet hours and the per-recipient limits. */
static void declare_outbox(wasl_config_t *cfg, notifier_config_t *c)
{
    wasl_config_str(cfg, "WASL_NOTIFIER_TEMPLATES", "deploy/templates",
                    "template directory (ar/ and en/ inside), checked at start", &c->templates_dir);
    wasl_config_int(cfg, "WASL_NOTIFIER_LEASE_S", 30, 1, 3600,
                    "how long a claimed notification is this notifier's", &c->lease_s);
    wasl_config_int(cfg, "WASL_NOTIFIER_SWEEP_MS", 1000, 20, 600000,
                    "how often due notifications are looked for without a nudge", &c->sweep_ms);
    wasl_config_int(cfg, "WASL_NOTIFIER_BATCH", 64, 1, 4096, "most notifications claimed at once",
                    &c->batch_max);
    wasl_config_int(cfg, "WASL_NOTIFIER_RETRY_BASE_MS", 2000, 1, 3600000,
                    "backoff before the first retry (doubling, with jitter)", &c->retry_base_ms);
    wasl_config_int(cfg, "WASL_NOTIFIER_RETRY_MAX_MS", 600000, 1, 86400000,
                    "longest backoff between retries", &c->retry_max_ms);
    wasl_config_int(cfg, "WASL_NOTIFIER_QUIET_START_H", 22, 0, 23,
                    "Riyadh hour when non-urgent SMS stop", &c->quiet_start_h);
    wasl_config_int(cfg, "WASL_NOTIFIER_QUIET_END_H", 7, 0, 23,
                    "Riyadh hour when they resume (equal to the start: no quiet hours)",
                    &c->quiet_end_h);
    wasl_config_int(cfg, "WASL_NOTIFIER_CLOCK_S", 0, 0, 4102444800L,
                    "a fixed Unix time for quiet-hour decisions (tests); 0: the real clock",
                    &c->clock_s);
    wasl_config_int(cfg, "WASL_NOTIFIER_RCPT_MAX", 5, 0, 100000,
                    "most notifications per recipient and channel per window (0: no limit)",
                    &c->limits.recipient_max);
    wasl_config_int(cfg, "WASL_NOTIFIER_RCPT_WINDOW_S", 3600, 1, 86400, "the per-recipient window",
                    &c->limits.recipient_window_s);
    wasl_config_int(cfg, "WASL_NOTIFIER_TICKET_MAX", 4, 0, 100000,
                    "most notifications per ticket per window (0: no limit)",
                    &c->limits.ticket_max);
    wasl_config_int(cfg, "WASL_NOTIFIER_TICKET_WINDOW_S", 600, 1, 86400, "the per-ticket window",
                    &c->limits.ticket_window_s);
}

/* The providers: the SMS gateway (Kannel or a webhook) and SMTP. */
static void declare_providers(wasl_config_t *cfg, notifier_config_t *c, int *sms_mode)
{
    wasl_config_enum(cfg, "WASL_SMS_MODE", "kannel", SMS_MODES,
                     "SMS gateway protocol: Kannel sendsms (GET) or a JSON webhook (POST)",
                     sms_mode);
    wasl_config_str(cfg, "WASL_SMS_URL", "http://127.0.0.1:13013/cgi-bin/sendsms",
                    "Kannel sendsms base URL, or the webhook URL", &c->sms.url);
    wasl_config_str(cfg, "WASL_SMS_USER", "wasl", "sendsms username / webhook user", &c->sms.user);
    wasl_config_str(cfg, "WASL_SMS_PASSWORD", "", "sendsms password / webhook password",
                    &c->sms.password);
    wasl_config_str(cfg, "WASL_SMS_FROM", "", "sender id (empty: the gateway's default)",
                    &c->sms.from);
    wasl_config_str(cfg, "WASL_SMS_DLR_URL", "",
                    "where the gateway reports delivery (intake's /v1/sms/dlr, with its token)",
                    &c->sms.dlr_url);
    wasl_config_int(cfg, "WASL_SMS_TIMEOUT_MS", 5000, 100, 120000, "SMS gateway request timeout",
                    &c->sms.timeout_ms);
    wasl_config_str(cfg, "WASL_SMTP_URL", "smtp://127.0.0.1:25",
                    "SMTP server (smtp:// uses STARTTLS when offered; smtps://)",
                    &c->mail.smtp_url);
    wasl_config_str(cfg, "WASL_SMTP_USER", "", "SMTP AUTH user (empty: no AUTH)", &c->mail.user);
    wasl_config_str(cfg, "WASL_SMTP_PASSWORD", "", "SMTP AUTH password", &c->mail.password);
    wasl_config_str(cfg, "WASL_MAIL_FROM", "Board of Grievances <noreply@wasl.local>",
                    "From of every email", &c->mail.from);
    wasl_config_str(cfg, "WASL_MAIL_DOMAIN", "wasl.local", "right-hand side of Message-IDs",
                    &c->mail.domain);
    wasl_config_str(cfg, "WASL_SMTP_CAINFO", "",
                    "CA bundle that signs the SMTP server's certificate (empty: the system's)",
                    &c->mail.cainfo);
    wasl_config_int(cfg, "WASL_SMTP_TIMEOUT_MS", 15000, 100, 300000, "SMTP session timeout",
                    &c->mail.timeout_ms);
}

int main(int argc, char **argv)
{
    notifier_config_t c = {0};
    const char *curve_dir, *curve_name, *pii_key, *pii_key_file;
    int sms_mode = 0;
    wasl_config_t *cfg = wasl_config_new(
        "wasl-notifier", "Sends SMS and email from the notifications outbox: templates in the "
                         "beneficiary's language, retries, dead letters, quiet hours, opt-outs.");
    if (!cfg) {
        return 1;
    }
    wasl_config_pg_url(cfg, &c.pg_url);
    wasl_config_pg_sync_commit(cfg, &c.pg_sync_commit);
    wasl_config_redis_url(cfg, &c.redis_url);
    wasl_config_bus_client(cfg, "notifier", &c.bus, &c.bus_stages, &curve_dir, &curve_name);
    declare_outbox(cfg, &c);
    declare_providers(cfg, &c, &sms_mode);
    wasl_config_pii_key(cfg, &pii_key, &pii_key_file);
    wasl_config_daemon(cfg, NOTIFIER_ADMIN_PORT);
    wasl_config_parse(cfg, argc, argv);
    wasl_pii_key_load_or_exit("wasl-notifier", pii_key, pii_key_file);
    c.sms.mode = (sms_mode_t)sms_mode;
    wasl_log_init("wasl-notifier", (wasl_log_level_t)wasl_config_log_level(cfg));
    wasl_signal_install();
    g_mime_init();

    int rc = 1;
    wasl_admin_t *admin = NULL;
    notifier_t *notifier = NULL;
    wasl_zmq_t *zmq = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        wasl_error("notifier: curl_global_init failed", NULL);
        goto done;
    }
    wasl_zmq_opts_t zopts = {.curve_dir = curve_dir, .self_name = curve_name, .server_name = "bus"};
    zmq = wasl_zmq_new(&zopts);
    if (!zmq || !(notifier = notifier_new(&c, zmq))) {
        goto done;
    }
    admin =
        wasl_admin_new("wasl-notifier", wasl_config_admin_bind(cfg), wasl_config_admin_port(cfg));
    if (!admin) {
        goto done;
    }
    wasl_admin_set_ready(admin, notifier_ready, notifier);
    wasl_info("notifier: started", "{s:s, s:s, s:i}", "templates", c.templates_dir, "sms_mode",
              sms_mode ? "webhook" : "kannel", "admin_port", wasl_admin_port(admin));
    notifier_run(notifier);
    wasl_info("notifier: stopping", NULL);
    wasl_admin_set_draining(admin);
    rc = 0;
done:
    wasl_admin_destroy(&admin);
    notifier_destroy(&notifier);
    wasl_zmq_destroy(&zmq);
    curl_global_cleanup();
    g_mime_shutdown();
    wasl_config_destroy(&cfg);
    zsys_shutdown();
    if (rc == 0) {
        wasl_info("notifier: stopped", NULL);
    }
    return rc;
}
