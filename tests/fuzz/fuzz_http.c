/* fuzz_http — libFuzzer target: intake's real HTTP server (libmicrohttpd, routing, the
 * authentication on headers and body, the in-flight budget, every handler's validation, the
 * offloaded parts) in-process on loopback. PostgreSQL, Redis and the bus point at closed ports,
 * so what needs them answers 503 fast; everything before them is exercised.
 *
 * Input: [mode][method][path]\0[extra header lines]\0[body]
 *   mode % 5: no credentials, a bearer token for every scope, a correct HMAC signature over the
 *   request as sent (so handlers are reached through the signed path too), a ?token= appended
 *   to the path, a bearer token with no scope. method % 6 picks GET, POST, PUT, DELETE, HEAD,
 *   PATCH. The header lines are sent as given (CR/LF added between lines); a Content-Type
 *   matching the path comes first unless the input gives one. Invariants: the server keeps
 *   accepting connections (connect() is asserted for every input), nothing crashes, reads out
 *   of bounds or leaks (ASan/UBSan/LSan), and no request hangs past REPLY_TIMEOUT_S. */
#include "auth.h"
#include "email.h"
#include "handlers.h"
#include "server.h"
#include "wasl_log.h"
#include "writer.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_ALL          "fuzz-token-all-scopes-0123456789abcdef"
#define TOKEN_NONE         "fuzz-token-no-scope-0123456789abcdef"
#define HMAC_SECRET        "fuzz-hmac-secret-0123456789abcdef0123456789"
#define REQUEST_MAX        (256 * 1024)
#define PATH_MAX_FUZZ      2048
#define HEADERS_MAX        4096
#define REPLY_TIMEOUT_S    10
#define CONNECT_TRIES      100
#define CONNECT_BACKOFF_US 10000

static intake_config_t cfg, auth_cfg;
static intake_auth_t *auth;
static intake_writers_t *writers;
static intake_server_t *server;
static uint16_t port;

static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"};

static uint16_t free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0);
    assert(getsockname(s, (struct sockaddr *)&a, &len) == 0);
    close(s);
    return ntohs(a.sin_port);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Quiet: refusals are the point, and the closed ports log on every try. */
    wasl_log_init("fuzz-http", (wasl_log_level_t)(WASL_LOG_ERROR + 1));
    intake_email_init();
    port = free_port();
    cfg = (intake_config_t){
        .http_bind = "127.0.0.1",
        .http_port = port,
        .pg_url = "host=127.0.0.1 port=1 connect_timeout=1",
        .redis_url = "redis://127.0.0.1:1",
        .bus = "",
        .bus_stages = "classify,route,notify",
        .default_country = "966",
        .threads = 2,
        .writers = 1,
        .batch_max = 16,
        .deadline_ms = 300,
        .json_max = 64 * 1024,
        .email_max = 128 * 1024,
        .body_max = 16 * 1024,
        .sms_thread_h = 72,
        .call_ttl_s = 60,
        .clients_refresh_s = 10,
        .sig_max_age_s = 300,
        .redis_timeout_ms = 50,
        .inflight_max = 512 * 1024,
        .lookup_threads = 2,
        .parse_threads = 1,
        .offload_queue = 16,
    };
    auth_cfg = cfg;
    auth_cfg.pg_url = ""; /* clients from memory */
    auth = intake_auth_new(&auth_cfg);
    intake_client_t all = {.id = "fuzz-all", .scopes = INTAKE_SCOPE_ALL, .rate_per_s = 1000000};
    intake_client_t none = {.id = "fuzz-none", .scopes = 0, .rate_per_s = 1000000};
    snprintf(all.act_as, sizeof all.act_as, "a1,a2");
    all.role = WASL_AUTHZ_ROLE_SUPERVISOR;
    all.trusted_ani = true;
    assert(auth && intake_auth_add_client(auth, &all, TOKEN_ALL, HMAC_SECRET) == 0 &&
           intake_auth_add_client(auth, &none, TOKEN_NONE, NULL) == 0);
    writers = intake_writers_new(&cfg, NULL);
    server = writers ? intake_server_new(&cfg, auth, writers) : NULL;
    assert(server);
    return 0;
}

/* The Content-Type a path's handler wants, so that inputs reach past the media-type check. */
static const char *content_type_for(const char *path)
{
    if (strncmp(path, "/v1/email/", 10) == 0) {
        return "message/rfc822";
    }
    if (strncmp(path, "/v1/sms/", 8) == 0 || strncmp(path, "/v1/cti", 7) == 0) {
        return "application/x-www-form-urlencoded";
    }
    return "application/json";
}

/* Copies the bytes up to the next NUL (or the end) of data[*at..size) into out (cap). */
static size_t take_field(const uint8_t *data, size_t size, size_t *at, char *out, size_t cap)
{
    size_t n = 0;
    while (*at < size && data[*at] != '\0') {
        if (n + 1 < cap) {
            out[n++] = (char)data[*at];
        }
        (*at)++;
    }
    if (*at < size) {
        (*at)++; /* the NUL */
    }
    out[n] = '\0';
    return n;
}

/* Sends the request and reads the answer's status (0 when the connection closed without
 * one). */
static int exchange(const char *req, size_t len)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = REPLY_TIMEOUT_S};
    /* Closed with a reset: hundreds of thousands of connections would otherwise leave as many
     * ports in TIME_WAIT and run the loopback out of ephemeral ports. */
    struct linger reset = {.l_onoff = 1, .l_linger = 0};
    assert(s >= 0);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    int rc = -1;
    for (int tries = 0; tries < CONNECT_TRIES; tries++) {
        if ((rc = connect(s, (struct sockaddr *)&a, sizeof a)) == 0) {
            break;
        }
        /* A busy machine: ports in TIME_WAIT from the server's closes, a full accept queue.
         * Only a server that stays unreachable for the whole second is a failure. */
        fprintf(stderr, "fuzz_http: connect: %s (retrying)\n", strerror(errno));
        close(s);
        usleep(CONNECT_BACKOFF_US);
        s = socket(AF_INET, SOCK_STREAM, 0);
        assert(s >= 0);
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(s, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    }
    assert(rc == 0); /* the server must still be accepting */
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = send(s, req + sent, len - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            break; /* answered and closed before reading it all */
        }
        sent += (size_t)n;
    }
    shutdown(s, SHUT_WR);
    char buf[4096];
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(s, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        if (got == sizeof buf - 1) {
            got = 16; /* only the status line matters; keep draining */
        }
    }
    close(s);
    buf[got] = '\0';
    int status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    unsigned mode = data[0] % 5;
    const char *method = methods[data[1] % (sizeof methods / sizeof methods[0])];
    size_t at = 2;
    char path[PATH_MAX_FUZZ + 64], extra[HEADERS_MAX];
    take_field(data, size, &at, path, PATH_MAX_FUZZ);
    take_field(data, size, &at, extra, sizeof extra);
    const char *body = (const char *)data + at;
    size_t body_len = size - at;
    if (path[0] != '/') {
        memmove(path + 1, path, strlen(path) + 1);
        path[0] = '/';
    }
    /* A request line with spaces or line breaks in its target is a different request: MHD
     * refuses those with 400, which the inputs reach when the mode says nothing else. */
    if (mode == 3) {
        strcat(path, strchr(path, '?') ? "&token=" TOKEN_ALL : "?token=" TOKEN_ALL);
    }
    char *req = malloc(REQUEST_MAX + body_len);
    if (!req) {
        return 0;
    }
    int n = snprintf(req, REQUEST_MAX, "%s %s HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n",
                     method, path);
    if (!strstr(extra, "Content-Type") && !strstr(extra, "content-type")) {
        n += snprintf(req + n, REQUEST_MAX - (size_t)n, "Content-Type: %s\r\n",
                      content_type_for(path));
    }
    if (mode == 1 || mode == 4) {
        n += snprintf(req + n, REQUEST_MAX - (size_t)n, "Authorization: Bearer %s\r\n",
                      mode == 1 ? TOKEN_ALL : TOKEN_NONE);
    } else if (mode == 2) {
        const char *q = strchr(path, '?');
        char p[PATH_MAX_FUZZ + 64];
        size_t plen = q ? (size_t)(q - path) : strlen(path);
        memcpy(p, path, plen);
        p[plen] = '\0';
        static unsigned long counter;
        char nonce[32];
        snprintf(nonce, sizeof nonce, "fuzz%016lx", ++counter);
        unsigned char mac[INTAKE_MAC_BYTES];
        long long t = (long long)time(NULL);
        intake_signature_mac(HMAC_SECRET, method, p, q ? q + 1 : "", t, nonce, body, body_len, mac);
        char hex[2 * INTAKE_MAC_BYTES + 1];
        for (size_t i = 0; i < INTAKE_MAC_BYTES; i++) {
            snprintf(hex + 2 * i, 3, "%02x", mac[i]);
        }
        n += snprintf(req + n, REQUEST_MAX - (size_t)n,
                      "X-Wasl-Client: fuzz-all\r\nX-Wasl-Signature: t=%lld,n=%s,v1=%s\r\n", t,
                      nonce, hex);
    }
    /* The input's own header lines, one per '\n'. */
    for (char *line = extra, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) {
            *next++ = '\0';
        }
        n += snprintf(req + n, REQUEST_MAX - (size_t)n, "%s\r\n", line);
    }
    if (!strstr(extra, "Transfer-Encoding") && !strstr(extra, "Content-Length")) {
        n += snprintf(req + n, REQUEST_MAX - (size_t)n, "Content-Length: %zu\r\n", body_len);
    }
    n += snprintf(req + n, REQUEST_MAX - (size_t)n, "\r\n");
    if ((size_t)n >= REQUEST_MAX) {
        free(req);
        return 0;
    }
    memcpy(req + n, body, body_len);
    int status = exchange(req, (size_t)n + body_len);
    free(req);
    /* MHD closes without an answer only for what it cannot parse as HTTP (a broken header line
     * from the input), so no status is asserted; a hang would have tripped the timeouts. */
    (void)status;
    return 0;
}
