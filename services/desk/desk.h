/* desk — wasl-desk's configuration and the pieces its modules share. */
#ifndef WASL_DESK_H
#define WASL_DESK_H

#include <stdbool.h>
#include <stdint.h>

#define DESK_ADMIN_PORT 9106

typedef struct {
    const char *bind;
    long port;
    const char *www;
    const char *pg_url;
    const char *redis_url;
    long threads;           /* HTTP threads (libmicrohttpd's pool) */
    long idle_s;            /* session idle timeout */
    long absolute_s;        /* session absolute limit */
    bool cookie_secure;     /* the Secure flag on the session cookie */
    long streams_max;       /* event streams at once, all agents */
    long streams_per_agent; /* event streams of one agent */
    long stream_buffer;     /* bytes an event stream may hold unsent before it is closed */
    long ping_s;            /* a comment on every stream this often (and dead peers noticed) */
    long login_account_max; /* failed logins per account within the window */
    long login_addr_max;    /* failed logins per client address within the window */
    long login_window_s;
    long verify_threads; /* Argon2 verifications at once (64 MiB each) */
    long verify_queue;   /* logins that may wait for a verification thread */
    long deadline_ms;    /* a login not verified within this answers 503 */
    long json_max;       /* largest request body */
    long redis_timeout_ms;
    const char *trusted_proxies; /* addresses whose X-Forwarded-For is believed */
    const char *replies;         /* directory of the canned replies (<id>.json) */
    const char *wrapup_codes;    /* comma-separated wrap-up codes a resolution may carry */
    long viewing_ttl_s;          /* a ticket viewer's heartbeat lapses after this (collision) */
    long viewers_max;            /* agents on one ticket at once (collision) */
    long clients_refresh_s;      /* how often the clients table (bearer tokens) is re-read */
    const char *bus;             /* caselookup's bus for the case panel ("": no panel) */
    const char *bus_stages;
    const char *curve_dir;
    const char *curve_name;
} desk_config_t;

/* Wall clock in ms since the epoch (sessions' created_ms). */
int64_t desk_wall_ms(void);

#endif
