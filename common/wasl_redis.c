/* wasl_redis — a synchronous hiredis connection with timeouts and transparent reconnection. */
#include "wasl_redis.h"
#include "wasl_clock.h"
#include "wasl_log.h"

#include <assert.h>
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define REDIS_DEFAULT_PORT 6379
#define REDIS_PORT_MAX     65535
#define REDIS_ERROR_MAX    256
#define REDIS_URL_TCP      "redis://"
#define REDIS_URL_UNIX     "unix://"

struct wasl_redis {
    /* Parsed from the URL. Exactly one of host and path is set. */
    char *host;
    int port;
    char *path;
    char *username; /* NULL: AUTH with the password alone */
    char *password; /* NULL: no AUTH */
    int db;
    char *display; /* the URL without its password, for logs */
    struct timeval timeout;
    redisContext *ctx; /* NULL when disconnected */
    bool attempted;
    int64_t last_attempt_ms; /* end of the last connection attempt */
    unsigned long connects;
    unsigned long failed_attempts;
    char error[REDIS_ERROR_MAX];
};

static void set_error(wasl_redis_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_error(wasl_redis_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->error, sizeof self->error, fmt, ap);
    va_end(ap);
}

/* ---- URL parsing ----------------------------------------------------------------------- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Returns a NUL-terminated, percent-decoded copy of s[0..len), or NULL when an escape is
 * malformed or decodes to NUL (*oom tells allocation failure apart). */
static char *percent_decode(const char *s, size_t len, bool *oom)
{
    char *out = malloc(len + 1);
    if (!out) {
        *oom = true;
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            out[n++] = s[i];
            continue;
        }
        int hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
        int lo = hi >= 0 ? hex_value(s[i + 2]) : -1;
        if (lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        out[n++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[n] = '\0';
    return out;
}

/* Parses a decimal integer in [min, max] from s[0..len). */
static bool parse_int(const char *s, size_t len, long min, long max, int *out)
{
    if (len == 0 || len > 10) {
        return false;
    }
    long value = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i])) {
            return false;
        }
        value = value * 10 + (s[i] - '0');
    }
    if (value < min || value > max) {
        return false;
    }
    *out = (int)value;
    return true;
}

/* Copies s[0..len) as a new string. */
static char *copy_span(const char *s, size_t len, bool *oom)
{
    char *out = strndup(s, len);
    if (!out) {
        *oom = true;
    }
    return out;
}

/* "[[user]:password@]host[:port][/db]" after "redis://". Sets *why on a malformed URL. */
static bool parse_tcp(wasl_redis_t *self, const char *rest, const char **why, bool *oom)
{
    /* The userinfo ends at the last '@' of the authority (which ends at the first '/'). */
    const char *at = NULL;
    for (const char *c = rest; *c && !strchr("/?#", *c); c++) {
        at = *c == '@' ? c : at;
    }
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (!colon) {
            *why = "userinfo must be [user]:password";
            return false;
        }
        if (colon > rest) {
            self->username = percent_decode(rest, (size_t)(colon - rest), oom);
            if (!self->username) {
                *why = "bad percent-escape in user";
                return false;
            }
        }
        self->password = percent_decode(colon + 1, (size_t)(at - colon - 1), oom);
        if (!self->password) {
            *why = "bad percent-escape in password";
            return false;
        }
        rest = at + 1;
    }
    const char *end = rest + strcspn(rest, "/?#");
    if (*end == '?' || *end == '#') {
        *why = "query and fragment are not supported in redis:// URLs";
        return false;
    }
    const char *host = rest, *host_end, *port_at = NULL;
    if (*host == '[') { /* IPv6 literal */
        host_end = memchr(host, ']', (size_t)(end - host));
        if (!host_end) {
            *why = "unterminated [IPv6] host";
            return false;
        }
        host++;
        port_at = host_end + 1 < end ? host_end + 1 : NULL;
        if (port_at && *port_at != ':') {
            *why = "junk after [IPv6] host";
            return false;
        }
    } else {
        port_at = memchr(host, ':', (size_t)(end - host));
        host_end = port_at ? port_at : end;
    }
    if (host_end == host) {
        *why = "missing host";
        return false;
    }
    self->host = copy_span(host, (size_t)(host_end - host), oom);
    if (!self->host) {
        return false;
    }
    self->port = REDIS_DEFAULT_PORT;
    if (port_at &&
        !parse_int(port_at + 1, (size_t)(end - port_at - 1), 1, REDIS_PORT_MAX, &self->port)) {
        *why = "bad port";
        return false;
    }
    if (*end == '/' && end[1] != '\0' &&
        !parse_int(end + 1, strlen(end + 1), 0, INT_MAX, &self->db)) {
        *why = "bad database number";
        return false;
    }
    return true;
}

/* "/path[?db=N][&password=P]" after "unix://". */
static bool parse_unix(wasl_redis_t *self, const char *rest, const char **why, bool *oom)
{
    if (*rest != '/') {
        *why = "unix:// needs an absolute path (unix:///path)";
        return false;
    }
    size_t path_len = strcspn(rest, "?#");
    if (rest[path_len] == '#') {
        *why = "fragments are not supported";
        return false;
    }
    self->path = copy_span(rest, path_len, oom);
    if (!self->path) {
        return false;
    }
    const char *query = rest[path_len] == '?' ? rest + path_len + 1 : NULL;
    while (query && *query) {
        size_t len = strcspn(query, "&");
        const char *eq = memchr(query, '=', len);
        if (!eq) {
            *why = "query parameters must be key=value";
            return false;
        }
        size_t key_len = (size_t)(eq - query), value_len = len - key_len - 1;
        if (key_len == 2 && memcmp(query, "db", 2) == 0) {
            if (!parse_int(eq + 1, value_len, 0, INT_MAX, &self->db)) {
                *why = "bad database number";
                return false;
            }
        } else if (key_len == 8 && memcmp(query, "password", 8) == 0 && !self->password) {
            self->password = percent_decode(eq + 1, value_len, oom);
            if (!self->password) {
                *why = "bad percent-escape in password";
                return false;
            }
        } else {
            *why = "unknown or repeated query parameter (db and password are supported)";
            return false;
        }
        query += len + (query[len] == '&');
    }
    return true;
}

/* ---- connection -------------------------------------------------------------------------- */

static void drop_connection(wasl_redis_t *self)
{
    if (self->ctx) {
        redisFree(self->ctx);
        self->ctx = NULL;
    }
}

/* Runs a setup command on the fresh connection; a NULL or error reply fails it. */
static bool setup_command(wasl_redis_t *self, const char *what, int argc, const char **argv)
{
    redisReply *reply = redisCommandArgv(self->ctx, argc, argv, NULL);
    bool ok = reply && reply->type != REDIS_REPLY_ERROR;
    if (!reply) {
        set_error(self, "%s: %s", what, self->ctx->errstr);
    } else if (!ok) {
        set_error(self, "%s: %s", what, reply->str);
    }
    freeReplyObject(reply);
    return ok;
}

/* Connects unless connected, at most once per WASL_REDIS_RECONNECT_MS (measured from the end
 * of the last attempt, so a connect timeout does not turn every call into another wait). */
static bool ensure_connected(wasl_redis_t *self)
{
    if (self->ctx) {
        return true;
    }
    int64_t now_ms = wasl_clock_ms();
    if (self->attempted && now_ms - self->last_attempt_ms < WASL_REDIS_RECONNECT_MS) {
        /* self->error still holds the reason of the last attempt */
        wasl_debug("redis: reconnect deferred", "{s:s, s:s}", "url", self->display, "error",
                   self->error);
        return false;
    }
    self->ctx = self->path ? redisConnectUnixWithTimeout(self->path, self->timeout)
                           : redisConnectWithTimeout(self->host, self->port, self->timeout);
    if (!self->ctx) {
        set_error(self, "out of memory allocating a connection");
        goto failed;
    }
    if (self->ctx->err) {
        set_error(self, "connect: %s", self->ctx->errstr);
        goto failed;
    }
    if (redisSetTimeout(self->ctx, self->timeout) != REDIS_OK ||
        (!self->path && redisEnableKeepAlive(self->ctx) != REDIS_OK)) {
        set_error(self, "socket options: %s", self->ctx->errstr);
        goto failed;
    }
    if (self->password) {
        const char *argv[] = {"AUTH", self->username ? self->username : self->password,
                              self->password};
        if (!setup_command(self, "AUTH", self->username ? 3 : 2, argv)) {
            goto failed;
        }
    }
    if (self->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", self->db);
        const char *argv[] = {"SELECT", db};
        if (!setup_command(self, "SELECT", 2, argv)) {
            goto failed;
        }
    }
    self->attempted = true;
    self->last_attempt_ms = wasl_clock_ms();
    wasl_info(self->connects++ ? "redis: reconnected" : "redis: connected", "{s:s, s:i}", "url",
              self->display, "failed_attempts", (int)self->failed_attempts);
    self->failed_attempts = 0;
    self->error[0] = '\0';
    return true;

failed:
    drop_connection(self);
    self->attempted = true;
    self->last_attempt_ms = wasl_clock_ms();
    /* One warning per outage, not one per attempt. */
    if (self->failed_attempts++ == 0) {
        wasl_warn("redis: cannot connect", "{s:s, s:s}", "url", self->display, "error",
                  self->error);
    } else {
        wasl_debug("redis: cannot connect", "{s:s, s:s, s:i}", "url", self->display, "error",
                   self->error, "failed_attempts", (int)self->failed_attempts);
    }
    return false;
}

/* After a command: a NULL reply or an error on the context means the connection's state is
 * unknown (a reply may still be in flight), so it is dropped; the command is not retried. */
static redisReply *check_reply(wasl_redis_t *self, redisReply *reply)
{
    if (reply && !self->ctx->err) {
        return reply; /* ownership passes to the caller */
    }
    set_error(self, "%s", self->ctx->err ? self->ctx->errstr : "no reply");
    wasl_warn("redis: connection dropped", "{s:s, s:s}", "url", self->display, "error",
              self->error);
    freeReplyObject(reply);
    drop_connection(self);
    return NULL;
}

/* ---- public ------------------------------------------------------------------------------ */

wasl_redis_t *wasl_redis_new(const char *url, int timeout_ms)
{
    assert(url);
    assert(timeout_ms > 0);
    const char *why = NULL;
    bool oom = false;
    wasl_redis_t *self = calloc(1, sizeof *self);
    if (!self) {
        oom = true;
        goto failed;
    }
    self->timeout.tv_sec = timeout_ms / 1000;
    self->timeout.tv_usec = (timeout_ms % 1000) * 1000;
    bool parsed = false;
    if (strncmp(url, REDIS_URL_TCP, strlen(REDIS_URL_TCP)) == 0) {
        parsed = parse_tcp(self, url + strlen(REDIS_URL_TCP), &why, &oom);
    } else if (strncmp(url, REDIS_URL_UNIX, strlen(REDIS_URL_UNIX)) == 0) {
        parsed = parse_unix(self, url + strlen(REDIS_URL_UNIX), &why, &oom);
    } else {
        why = "scheme must be redis:// or unix://";
    }
    if (!parsed) {
        goto failed;
    }
    char display[REDIS_ERROR_MAX];
    if (self->path) {
        snprintf(display, sizeof display, "unix://%s?db=%d", self->path, self->db);
    } else {
        snprintf(display, sizeof display, "redis://%s%s%s:%d/%d",
                 strchr(self->host, ':') ? "[" : "", self->host, strchr(self->host, ':') ? "]" : "",
                 self->port, self->db);
    }
    self->display = strdup(display);
    if (!self->display) {
        oom = true;
        goto failed;
    }
    return self;

failed:
    if (oom) {
        wasl_error("redis: out of memory", NULL);
    } else {
        /* The URL itself is not logged: it may hold a password. */
        wasl_error("redis: malformed URL", "{s:s}", "error", why ? why : "unknown");
    }
    wasl_redis_destroy(&self);
    return NULL;
}

void wasl_redis_destroy(wasl_redis_t **self_p)
{
    assert(self_p);
    wasl_redis_t *self = *self_p;
    if (!self) {
        return;
    }
    drop_connection(self);
    free(self->host);
    free(self->path);
    free(self->username);
    free(self->password);
    free(self->display);
    free(self);
    *self_p = NULL;
}

bool wasl_redis_ok(wasl_redis_t *self)
{
    assert(self);
    return ensure_connected(self);
}

redisReply *wasl_redis_cmd(wasl_redis_t *self, const char *fmt, ...)
{
    assert(self);
    assert(fmt);
    if (!ensure_connected(self)) {
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = redisvCommand(self->ctx, fmt, ap);
    va_end(ap);
    return check_reply(self, reply);
}

redisReply *wasl_redis_cmdargv(wasl_redis_t *self, int argc, const char **argv,
                               const size_t *argvlen)
{
    assert(self);
    assert(argc > 0 && argv);
    if (!ensure_connected(self)) {
        return NULL;
    }
    return check_reply(self, redisCommandArgv(self->ctx, argc, argv, argvlen));
}

int wasl_redis_pipeline(wasl_redis_t *self, size_t n, const int *argcs,
                        const char *const *const *argvs, const size_t *const *argvlens,
                        redisReply **replies)
{
    assert(self && argcs && argvs && replies);
    for (size_t i = 0; i < n; i++) {
        replies[i] = NULL;
    }
    if (!ensure_connected(self)) {
        return -1;
    }
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        if (redisAppendCommandArgv(self->ctx, argcs[i], (const char **)argvs[i],
                                   argvlens ? argvlens[i] : NULL) != REDIS_OK) {
            goto failed;
        }
    }
    for (; got < n; got++) {
        void *r = NULL;
        if (redisGetReply(self->ctx, &r) != REDIS_OK || !r) {
            goto failed;
        }
        replies[got] = r;
    }
    return 0;
failed:
    /* The replies still owed would answer the next commands: the connection goes. */
    for (size_t i = 0; i < got; i++) {
        freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
    check_reply(self, NULL);
    return -1;
}

const char *wasl_redis_error(const wasl_redis_t *self)
{
    assert(self);
    return self->error;
}
