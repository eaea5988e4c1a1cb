/* wasl-desk — entry point: configuration, the connection pool, the live events, the HTTP edge
 * for people, a graceful drain. */
#include "auth.h"
#include "casepanel.h"
#include "db.h"
#include "desk.h"
#include "events.h"
#include "server.h"
#include "tickets.h"
#include "wasl_admin.h"
#include "wasl_config.h"
#include "wasl_log.h"
#include "wasl_signal.h"
#include "wasl_zmq.h"
#include "www.h"

#include <sodium.h>
#include <stdlib.h>

typedef struct {
    desk_db_t *db;
    desk_events_t *events;
    desk_auth_t *auth;
} readiness_t;

static bool ready(void *arg, char *why, size_t cap)
{
    readiness_t *r = arg;
    return desk_events_ready(r->events, why, cap) && desk_db_ready(r->db, why, cap) &&
           desk_auth_ready(r->auth, why, cap);
}

static void configure_sessions(wasl_config_t *cfg, desk_config_t *c)
{
    wasl_config_int(cfg, "WASL_DESK_IDLE_S", 1800, 1, 86400,
                    "a session unused this long ends (seconds)", &c->idle_s);
    wasl_config_int(cfg, "WASL_DESK_ABSOLUTE_S", 43200, 1, 7 * 86400,
                    "a session ends this long after sign-in, used or not (seconds)",
                    &c->absolute_s);
    wasl_config_bool(cfg, "WASL_DESK_COOKIE_SECURE", true,
                     "the session cookie's Secure flag (0 only for plain-http localhost)",
                     &c->cookie_secure);
    wasl_config_int(cfg, "WASL_DESK_LOGIN_ACCOUNT_MAX", 5, 1, 1000,
                    "failed sign-ins per account within the window before 429",
                    &c->login_account_max);
    wasl_config_int(cfg, "WASL_DESK_LOGIN_ADDR_MAX", 30, 1, 100000,
                    "failed sign-ins per client address within the window before 429",
                    &c->login_addr_max);
    wasl_config_int(cfg, "WASL_DESK_LOGIN_WINDOW_S", 900, 1, 86400,
                    "the window of failed sign-ins, from the first (seconds)", &c->login_window_s);
    wasl_config_int(cfg, "WASL_DESK_VERIFY_THREADS", 2, 1, 16,
                    "password verifications at once (Argon2id, 64 MiB each)", &c->verify_threads);
    wasl_config_int(cfg, "WASL_DESK_VERIFY_QUEUE", 64, 1, 4096,
                    "sign-ins that may wait for a verification; past it 503", &c->verify_queue);
    wasl_config_str(cfg, "WASL_DESK_TRUSTED_PROXIES", "",
                    "comma-separated addresses of the reverse proxies in front of the desk: "
                    "their X-Forwarded-For names the address sign-ins are throttled by (empty: "
                    "the TCP peer, the header ignored)",
                    &c->trusted_proxies);
    wasl_config_str(cfg, "WASL_DESK_REPLIES", "deploy/templates/replies",
                    "directory of the canned replies (<id>.json, checked at start)", &c->replies);
    wasl_config_str(cfg, "WASL_DESK_WRAPUP_CODES",
                    "answered,information_given,case_status_given,referred,duplicate,no_response",
                    "comma-separated wrap-up codes an agent picks from when resolving a ticket",
                    &c->wrapup_codes);
    wasl_config_int(cfg, "WASL_DESK_CLIENTS_REFRESH_S", 10, 1, 3600,
                    "how often the clients table (integrations' bearer tokens) is re-read",
                    &c->clients_refresh_s);
    wasl_config_int(cfg, "WASL_DESK_DEADLINE_MS", 10000, 100, 600000,
                    "a sign-in not verified within this answers 503", &c->deadline_ms);
}

static void configure(wasl_config_t *cfg, desk_config_t *c)
{
    wasl_config_str(cfg, "WASL_DESK_BIND", "127.0.0.1", "address of the desk's HTTP port",
                    &c->bind);
    wasl_config_int(cfg, "WASL_DESK_PORT", 8090, 1, 65535, "the desk's HTTP port", &c->port);
    wasl_config_str(cfg, "WASL_DESK_WWW", "services/desk/www",
                    "directory of the console's files (read once at start)", &c->www);
    wasl_config_pg_url(cfg, &c->pg_url);
    wasl_config_redis_url(cfg, &c->redis_url);
    wasl_config_int(cfg, "WASL_DESK_THREADS", 4, 1, 256, "HTTP threads", &c->threads);
    wasl_config_int(cfg, "WASL_DESK_STREAMS_MAX", 2000, 1, 100000, "event streams at once",
                    &c->streams_max);
    wasl_config_int(cfg, "WASL_DESK_STREAMS_PER_AGENT", 10, 1, 1000,
                    "event streams of one agent at once", &c->streams_per_agent);
    wasl_config_int(cfg, "WASL_DESK_STREAM_BUFFER", 256L << 10, 4096, 64L << 20,
                    "bytes a stream may hold unsent; past it the stream is ended (the page "
                    "reconnects and refetches)",
                    &c->stream_buffer);
    wasl_config_int(cfg, "WASL_DESK_PING_S", 15, 1, 3600,
                    "a comment on every stream this often (dead peers are noticed then)",
                    &c->ping_s);
    wasl_config_int(cfg, "WASL_DESK_JSON_MAX", 64L << 10, 1024, 16L << 20,
                    "largest request body, in bytes", &c->json_max);
    wasl_config_int(cfg, "WASL_REDIS_TIMEOUT_MS", 500, 10, 60000, "Redis connect/command timeout",
                    &c->redis_timeout_ms);
    wasl_config_int(cfg, "WASL_DESK_VIEWING_TTL_S", 40, 1, 3600,
                    "a ticket's viewer whose page has not beaten for this long is gone (the "
                    "collision warning; the page beats every 15 s)",
                    &c->viewing_ttl_s);
    wasl_config_int(cfg, "WASL_DESK_VIEWERS_MAX", 16, 1, 200,
                    "people on one ticket at once (the collision warning)", &c->viewers_max);
    configure_sessions(cfg, c);
    /* The desk asks caselookup only when told where: case data leaves it only on purpose. */
    wasl_config_str(cfg, "WASL_DESK_BUS", "",
                    "bus base endpoints for the case panel's lookups (empty: the panel says "
                    "unavailable)",
                    &c->bus);
    wasl_config_str(cfg, "WASL_BUS_STAGES", WASL_BUS_STAGES_DEFAULT,
                    "pipeline stages, in the bus's port order (the same everywhere)",
                    &c->bus_stages);
    wasl_config_str(cfg, "WASL_CURVE_DIR", "",
                    "key directory from `waslctl keygen` (empty: no CURVE)", &c->curve_dir);
    wasl_config_str(cfg, "WASL_CURVE_NAME", "desk", "this daemon's certificate name",
                    &c->curve_name);
    wasl_config_daemon(cfg, DESK_ADMIN_PORT);
}

int main(int argc, char **argv)
{
    desk_config_t c = {0};
    wasl_config_t *cfg = wasl_config_new(
        "wasl-desk", "The HTTP edge for people: agents and supervisors sign in, see their offers "
                     "live (Server-Sent Events from PostgreSQL's NOTIFY) and answer them.");
    if (!cfg) {
        return 1;
    }
    configure(cfg, &c);
    wasl_config_parse(cfg, argc, argv);
    wasl_log_init("wasl-desk", (wasl_log_level_t)wasl_config_log_level(cfg));
    wasl_signal_install();
    if (sodium_init() < 0) {
        wasl_error("desk: libsodium cannot start", NULL);
        return 1;
    }
    int rc = 1;
    wasl_admin_t *admin = NULL;
    desk_server_t *server = NULL;
    desk_events_t *events = NULL;
    desk_auth_t *auth = NULL;
    /* One pair per HTTP thread and verification thread, and one for /readyz. */
    desk_db_t *db = desk_db_new(c.pg_url, c.redis_url, (int)c.redis_timeout_ms,
                                (size_t)(c.threads + c.verify_threads + 1));
    desk_www_t *www = desk_www_load(c.www);
    if (!db || !www || desk_wrapup_codes_check(c.wrapup_codes) < 0 ||
        desk_replies_load(c.replies) < 0 || desk_casepanel_init(&c) < 0 ||
        !(events = desk_events_new(&c)) || !(auth = desk_auth_new(&c)) ||
        !(server = desk_server_new(&c, db, events, www, auth))) {
        goto done;
    }
    admin = wasl_admin_new("wasl-desk", wasl_config_admin_bind(cfg), wasl_config_admin_port(cfg));
    if (!admin) {
        goto done;
    }
    readiness_t readiness = {db, events, auth};
    wasl_admin_set_ready(admin, ready, &readiness);
    wasl_info("desk: started", "{s:s, s:i, s:i, s:i, s:b}", "bind", c.bind, "port", (int)c.port,
              "admin_port", wasl_admin_port(admin), "console_files", (int)desk_www_count(www),
              "cookie_secure", c.cookie_secure);
    while (!wasl_signal_wait(-1)) {
    }
    /* Drain: refuse new requests, finish the sign-ins in flight, end the streams (libmicrohttpd
     * must not stop with suspended connections), then close. */
    wasl_info("desk: draining", NULL);
    wasl_admin_set_draining(admin);
    desk_server_drain(server);
    desk_server_stop_offload(server);
    rc = 0;
done:
    desk_events_stop(events);
    desk_server_destroy(&server);
    desk_events_destroy(&events);
    desk_auth_destroy(&auth);
    wasl_admin_destroy(&admin);
    desk_www_destroy(&www);
    desk_replies_free();
    desk_casepanel_free();
    desk_db_destroy(&db);
    wasl_config_destroy(&cfg);
    if (rc == 0) {
        wasl_info("desk: stopped", NULL);
    }
    return rc;
}
