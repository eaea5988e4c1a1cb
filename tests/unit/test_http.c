/* test_http — wasl_http, the shared HTTP edge, over a real loopback socket: routes (exact, one
 * segment, rest of the path; 404/405), body limits (413 on the declared length and on a chunked
 * body), the reserve hook's refusals, JSON errors naming the field, a request suspended and
 * answered from another thread, an offloaded part past its deadline (503 + Retry-After), a full
 * pool, drain, the headers and done hooks. */
#include "wasl_clock.h"
#include "wasl_http.h"
#include "wasl_offload.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#define BODY_MAX       1024
#define LARGE_BODY_MAX 4096
/* The reserve hook's budget across requests: above the JSON limit, below the large one. */
#define BUDGET         2000
#define DEADLINE_MS    100
#define REPLY_MAX      (64 * 1024)
#define RECV_TIMEOUT_S 10

typedef struct {
    wasl_http_route_t http;
    int kind;
} test_route_t;

enum { R_ECHO, R_ITEM, R_FILE, R_SLOW, R_OFFLOAD };

static const test_route_t routes[] = {
    {{"POST", "/v1/echo", "echo", false}, R_ECHO},
    {{"GET|PUT", "/v1/items/{}", "items", false}, R_ITEM},
    {{"POST", "/v1/files/*", "files", true}, R_FILE},
    {{"GET", "/v1/slow", "slow", false}, R_SLOW},
    {{"GET", "/v1/offload", "offload", false}, R_OFFLOAD},
};

/* What the hooks share with the tests. */
static struct {
    wasl_http_t *http;
    int port;
    wasl_offload_t *pool;
    atomic_size_t reserved;
    atomic_int done_calls, state_seen;
    pthread_t resumer;
    bool resumer_started;
    /* A gate that holds the pool's only thread. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool gate_open;
    int gate_running;
} T;

typedef struct {
    int magic; /* zeroed by the edge; set by handle, checked by done */
} test_state_t;

/* ---- the hooks ---- */

static int reserve_hook(void *arg, wasl_http_conn_t *c, size_t bytes, wasl_http_reply_t *r)
{
    (void)arg;
    (void)c;
    size_t cur = atomic_load(&T.reserved);
    do {
        if (bytes > BUDGET - cur) {
            wasl_http_unavailable(r, "busy", "over the budget");
            return -1;
        }
    } while (!atomic_compare_exchange_weak(&T.reserved, &cur, cur + bytes));
    return 0;
}

static void done_hook(void *arg, wasl_http_conn_t *c)
{
    (void)arg;
    atomic_fetch_sub(&T.reserved, wasl_http_reserved(c));
    test_state_t *st = wasl_http_state(c);
    if (st->magic == 42) {
        atomic_fetch_add(&T.state_seen, 1);
    }
    atomic_fetch_add(&T.done_calls, 1);
}

static void headers_hook(void *arg, struct MHD_Response *resp)
{
    (void)arg;
    MHD_add_response_header(resp, "X-Test", "edge");
}

static const char *unrouted_hook(void *arg, wasl_http_conn_t *c, const char *method,
                                 const char *url, bool wrong_method, wasl_http_reply_t *r)
{
    (void)arg;
    (void)c;
    (void)wrong_method;
    if (strcmp(url, "/static.txt") != 0 || strcmp(method, "GET") != 0) {
        return NULL;
    }
    static const char text[] = "plain";
    r->raw = MHD_create_response_from_buffer(sizeof text - 1, (void *)text, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r->raw, "Content-Type", "text/plain");
    r->status = 200;
    return "static";
}

static void *resume_later(void *arg)
{
    wasl_http_reply_t r = {.status = 200, .body = json_pack("{s:s}", "from", "thread")};
    wasl_http_resume(arg, &r);
    return NULL;
}

static bool offload_work(wasl_http_conn_t *c, wasl_http_reply_t *r)
{
    (void)c;
    r->status = 200;
    r->body = json_pack("{s:s}", "from", "pool");
    return true;
}

static void echo(wasl_http_conn_t *c, wasl_http_reply_t *r)
{
    char mt[64];
    size_t len;
    const char *body = wasl_http_body(c, &len);
    json_t *doc = wasl_http_json_object(wasl_http_media_type(c, mt, sizeof mt), body, len, r);
    if (!doc) {
        return;
    }
    json_t *name = json_object_get(doc, "name");
    if (!json_is_string(name)) {
        wasl_http_error(r, 400, "invalid_field", "name", "name must be a string");
    } else {
        r->status = 200;
        r->body = json_pack("{s:O}", "name", name);
        snprintf(r->set_cookie, sizeof r->set_cookie, "sid=abc; HttpOnly");
    }
    json_decref(doc);
}

static void handle_hook(void *arg, wasl_http_conn_t *c, const char *method, wasl_http_reply_t *r)
{
    (void)arg;
    ((test_state_t *)wasl_http_state(c))->magic = 42;
    const test_route_t *route = (const test_route_t *)wasl_http_route(c);
    size_t len;
    switch (route->kind) {
    case R_ECHO:
        echo(c, r);
        return;
    case R_ITEM:
    case R_FILE:
        wasl_http_body(c, &len);
        r->status = 200;
        r->body = json_pack("{s:s, s:s, s:I}", "method", method, "arg", wasl_http_path_arg(c),
                            "len", (json_int_t)len);
        return;
    case R_SLOW:
        wasl_http_suspend(c);
        T.resumer_started = pthread_create(&T.resumer, NULL, resume_later, c) == 0;
        assert_true(T.resumer_started);
        return;
    case R_OFFLOAD:
        if (wasl_http_offload(c, T.pool, offload_work, wasl_clock_ms() + DEADLINE_MS) < 0) {
            wasl_http_unavailable(r, "busy", "the pool is full");
        }
        return;
    }
}

/* ---- a raw HTTP client ---- */

typedef struct {
    int status;
    char text[REPLY_MAX]; /* headers and body */
    const char *body;
} reply_t;

/* Sends `req` (already framed) with Connection: close semantics and reads to EOF. */
static void exchange(const char *req, size_t len, reply_t *out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {RECV_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)T.port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    for (size_t off = 0; off < len;) {
        ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (n <= 0) {
            break; /* answered early and closed: what was sent is enough */
        }
        off += (size_t)n;
    }
    size_t got = 0;
    ssize_t n;
    while (got + 1 < sizeof out->text &&
           (n = recv(fd, out->text + got, sizeof out->text - 1 - got, 0)) > 0) {
        got += (size_t)n;
    }
    out->text[got] = '\0';
    close(fd);
    out->status = 0;
    sscanf(out->text, "HTTP/1.1 %d", &out->status);
    const char *sep = strstr(out->text, "\r\n\r\n");
    out->body = sep ? sep + 4 : "";
}

static void request(const char *method, const char *path, const char *headers, const char *body,
                    reply_t *out)
{
    static char req[16384];
    int n =
        snprintf(req, sizeof req,
                 "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s"
                 "Content-Length: %zu\r\n\r\n%s",
                 method, path, headers ? headers : "", body ? strlen(body) : 0, body ? body : "");
    assert_true(n > 0 && (size_t)n < sizeof req);
    exchange(req, (size_t)n, out);
}

/* POSTs `total` bytes of 'x' in chunks of 100. */
static void request_chunked(const char *path, size_t total, reply_t *out)
{
    size_t cap = total * 2 + 1024;
    char *req = malloc(cap);
    assert_non_null(req);
    size_t o = (size_t)snprintf(req, cap,
                                "POST %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                                "Content-Type: application/octet-stream\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n",
                                path);
    for (size_t sent = 0; sent < total; sent += 100) {
        size_t n = total - sent < 100 ? total - sent : 100;
        o += (size_t)snprintf(req + o, cap - o, "%zx\r\n", n);
        memset(req + o, 'x', n);
        o += n;
        o += (size_t)snprintf(req + o, cap - o, "\r\n");
    }
    o += (size_t)snprintf(req + o, cap - o, "0\r\n\r\n");
    exchange(req, o, out);
    free(req);
}

static json_t *body_json(const reply_t *r)
{
    json_t *doc = json_loads(r->body, 0, NULL);
    assert_non_null(doc);
    return doc;
}

/* The error code and field of an error reply. */
static void assert_error(const reply_t *r, int status, const char *code, const char *field)
{
    assert_int_equal(r->status, status);
    json_t *doc = body_json(r);
    json_t *err = json_object_get(doc, "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), code);
    assert_non_null(json_string_value(json_object_get(err, "message")));
    if (field) {
        assert_string_equal(json_string_value(json_object_get(err, "field")), field);
    } else {
        json_t *f = json_object_get(err, "field");
        assert_true(!f || json_is_null(f));
    }
    json_decref(doc);
}

static bool has_header(const reply_t *r, const char *line)
{
    const char *end = strstr(r->text, "\r\n\r\n");
    const char *at = strstr(r->text, line);
    return at && (!end || at < end);
}

/* ---- setup ---- */

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    atomic_init(&T.reserved, 0);
    atomic_init(&T.done_calls, 0);
    atomic_init(&T.state_seen, 0);
    pthread_mutex_init(&T.lock, NULL);
    pthread_cond_init(&T.cond, NULL);
    T.pool = wasl_offload_new("test_http", 1, 1);
    wasl_http_config_t cfg = {
        .name = "test",
        .drain_who = "the test server",
        .bind = "127.0.0.1",
        .port = 0,
        .threads = 2,
        .connection_limit = 64,
        .connection_timeout_s = 10,
        .body_max = BODY_MAX,
        .large_body_max = LARGE_BODY_MAX,
        .json_newline = true,
        .state_size = sizeof(test_state_t),
        .routes = routes,
        .route_count = sizeof routes / sizeof routes[0],
        .route_size = sizeof routes[0],
        .hooks = {.reserve = reserve_hook,
                  .handle = handle_hook,
                  .unrouted = unrouted_hook,
                  .headers = headers_hook,
                  .done = done_hook},
    };
    T.http = wasl_http_new(&cfg);
    assert_non_null(T.http);
    T.port = wasl_http_port(T.http);
    assert_true(T.port > 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    /* A failed test may have left the pool's thread held. */
    pthread_mutex_lock(&T.lock);
    T.gate_open = true;
    pthread_cond_broadcast(&T.cond);
    pthread_mutex_unlock(&T.lock);
    wasl_offload_destroy(&T.pool);
    wasl_http_destroy(&T.http);
    wasl_http_destroy(&T.http); /* safe twice */
    /* Every request's reservation came back through the done hook. */
    assert_int_equal(atomic_load(&T.reserved), 0);
    pthread_cond_destroy(&T.cond);
    pthread_mutex_destroy(&T.lock);
    return 0;
}

/* ---- tests ---- */

static void test_match(void **state)
{
    (void)state;
    const size_t n = sizeof routes / sizeof routes[0], size = sizeof routes[0];
    const char *arg;
    bool wrong;
    const wasl_http_route_t *r =
        wasl_http_match(routes, n, size, "PUT", "/v1/items/7", &arg, &wrong);
    assert_non_null(r);
    assert_string_equal(r->endpoint, "items");
    assert_string_equal(arg, "7");
    /* One segment: no '/' in the argument, and not empty. */
    assert_null(wasl_http_match(routes, n, size, "GET", "/v1/items/7/x", &arg, &wrong));
    assert_false(wrong);
    assert_null(wasl_http_match(routes, n, size, "GET", "/v1/items/", &arg, &wrong));
    /* The rest of the path may hold '/'. */
    r = wasl_http_match(routes, n, size, "POST", "/v1/files/a/b", &arg, &wrong);
    assert_non_null(r);
    assert_string_equal(arg, "a/b");
    /* Exact paths: no argument, no prefix match. */
    r = wasl_http_match(routes, n, size, "POST", "/v1/echo", &arg, &wrong);
    assert_non_null(r);
    assert_null(arg);
    assert_null(wasl_http_match(routes, n, size, "POST", "/v1/echoes", &arg, &wrong));
    assert_false(wrong);
    /* A method that is a prefix of an allowed one is not allowed. */
    assert_null(wasl_http_match(routes, n, size, "GE", "/v1/items/7", &arg, &wrong));
    assert_true(wrong);
    assert_null(wasl_http_match(routes, n, size, "DELETE", "/v1/items/7", &arg, &wrong));
    assert_true(wrong);
}

static void test_routes(void **state)
{
    (void)state;
    reply_t r;
    request("GET", "/v1/items/abc", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "X-Test: edge"));
    assert_true(has_header(&r, "Cache-Control: no-store"));
    json_t *doc = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(doc, "arg")), "abc");
    assert_string_equal(json_string_value(json_object_get(doc, "method")), "GET");
    json_decref(doc);
    request("GET", "/v1/nothing", NULL, NULL, &r);
    assert_error(&r, 404, "not_found", NULL);
    assert_true(has_header(&r, "X-Test: edge"));
    request("DELETE", "/v1/items/abc", NULL, NULL, &r);
    assert_error(&r, 405, "method_not_allowed", NULL);
    /* The daemon's own answer for a path without a route (the desk's files). */
    request("GET", "/static.txt", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "plain");
    assert_true(has_header(&r, "Content-Type: text/plain"));
    assert_true(has_header(&r, "X-Test: edge"));
}

static void test_json_errors(void **state)
{
    (void)state;
    reply_t r;
    const char *json = "Content-Type: application/json; charset=utf-8\r\n";
    request("POST", "/v1/echo", json, "{\"name\":\"\xd9\x88\xd8\xb5\xd9\x84\"}", &r);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Set-Cookie: sid=abc; HttpOnly"));
    assert_true(has_header(&r, "Content-Type: application/json; charset=utf-8"));
    assert_int_equal(r.body[strlen(r.body) - 1], '\n');
    request("POST", "/v1/echo", json, "{\"name\":3}", &r);
    assert_error(&r, 400, "invalid_field", "name");
    request("POST", "/v1/echo", json, "{\"name\":", &r);
    assert_error(&r, 400, "invalid_json", NULL);
    request("POST", "/v1/echo", json, "[1]", &r);
    assert_error(&r, 400, "invalid_json", NULL);
    request("POST", "/v1/echo", json, "{\"name\":\"\xff\"}", &r);
    assert_error(&r, 400, "invalid_utf8", NULL);
    request("POST", "/v1/echo", "Content-Type: text/plain\r\n", "{\"name\":\"a\"}", &r);
    assert_error(&r, 415, "unsupported_media_type", NULL);
    /* A transfer coding MHD cannot frame is refused on the headers, naming the header. */
    request("POST", "/v1/echo", "Transfer-Encoding: gzip\r\n", NULL, &r);
    assert_error(&r, 400, "invalid_field", "Transfer-Encoding");
}

static void test_body_limits(void **state)
{
    (void)state;
    reply_t r;
    /* Declared too long: answered on the headers, before any body byte is sent. */
    static const char declared[] = "POST /v1/echo HTTP/1.1\r\nHost: localhost\r\n"
                                   "Content-Type: application/json\r\n"
                                   "Content-Length: 1025\r\n\r\n";
    exchange(declared, sizeof declared - 1, &r);
    assert_error(&r, 413, "too_large", NULL);
    /* Chunked past the limit: read and dropped, then 413. */
    request_chunked("/v1/echo", BODY_MAX + 1, &r);
    assert_error(&r, 413, "too_large", NULL);
    /* Exactly at the limit goes through (and reaches the handler: 415, not 413). */
    request_chunked("/v1/echo", BODY_MAX, &r);
    assert_error(&r, 415, "unsupported_media_type", NULL);
    /* A route with the large limit. */
    request_chunked("/v1/files/a/b", 700, &r);
    assert_int_equal(r.status, 200);
    json_t *doc = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(doc, "len")), 700);
    assert_string_equal(json_string_value(json_object_get(doc, "arg")), "a/b");
    json_decref(doc);
    request_chunked("/v1/files/x", LARGE_BODY_MAX + 1, &r);
    /* Over the reserve hook's budget before the large limit. */
    assert_error(&r, 503, "busy", NULL);
}

static void test_reserve_refused(void **state)
{
    (void)state;
    reply_t r;
    char body[BUDGET + 100];
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    /* Declared over the budget: the hook's answer on the headers. */
    request("POST", "/v1/files/a", NULL, body, &r);
    assert_error(&r, 503, "busy", NULL);
    assert_true(has_header(&r, "Retry-After: 2"));
    /* Chunked: the hook is asked step by step and refuses at the end. */
    request_chunked("/v1/files/a", BUDGET + 100, &r);
    assert_error(&r, 503, "busy", NULL);
    assert_int_equal(atomic_load(&T.reserved), 0);
}

static void test_suspend_resume(void **state)
{
    (void)state;
    reply_t r;
    request("GET", "/v1/slow", NULL, NULL, &r);
    assert_true(T.resumer_started);
    pthread_join(T.resumer, NULL);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "X-Test: edge"));
    json_t *doc = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(doc, "from")), "thread");
    json_decref(doc);
}

static void gate_wait(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&T.lock);
    T.gate_running++;
    pthread_cond_broadcast(&T.cond);
    while (!T.gate_open) {
        pthread_cond_wait(&T.cond, &T.lock);
    }
    pthread_mutex_unlock(&T.lock);
}

static void gate_done(void *arg, bool ran)
{
    (void)arg;
    (void)ran;
}

static void gate_open(void)
{
    pthread_mutex_lock(&T.lock);
    T.gate_open = true;
    pthread_cond_broadcast(&T.cond);
    pthread_mutex_unlock(&T.lock);
}

/* Holds the pool's only thread until gate_open(), and returns once it is held. */
static void gate_hold(void)
{
    T.gate_open = false;
    assert_int_equal(wasl_offload_submit(T.pool, gate_wait, gate_done, NULL, 0), 0);
    pthread_mutex_lock(&T.lock);
    while (T.gate_running == 0) {
        pthread_cond_wait(&T.cond, &T.lock);
    }
    pthread_mutex_unlock(&T.lock);
}

static void test_offload(void **state)
{
    (void)state;
    reply_t r;
    request("GET", "/v1/offload", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *doc = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(doc, "from")), "pool");
    json_decref(doc);
    /* The pool's only thread is held: the request waits in the queue past its deadline. */
    gate_hold();
    int64_t t0 = wasl_clock_ms();
    request("GET", "/v1/offload", NULL, NULL, &r);
    assert_error(&r, 503, "unavailable", NULL);
    assert_true(has_header(&r, "Retry-After: 2"));
    assert_true(wasl_clock_ms() - t0 >= DEADLINE_MS);
    /* A full queue (one place, taken): the handler's own answer after the refused hand-off. */
    assert_int_equal(wasl_offload_submit(T.pool, gate_wait, gate_done, NULL, 0), 0);
    request("GET", "/v1/offload", NULL, NULL, &r);
    assert_error(&r, 503, "busy", NULL);
    gate_open();
    /* Once the second holder has started, the queue has room again. */
    pthread_mutex_lock(&T.lock);
    while (T.gate_running < 2) {
        pthread_cond_wait(&T.cond, &T.lock);
    }
    pthread_mutex_unlock(&T.lock);
    request("GET", "/v1/offload", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
}

static void test_drain(void **state)
{
    (void)state;
    reply_t r;
    int before = atomic_load(&T.done_calls);
    assert_false(wasl_http_draining(T.http));
    wasl_http_drain(T.http);
    assert_true(wasl_http_draining(T.http));
    request("GET", "/v1/items/1", NULL, NULL, &r);
    assert_error(&r, 503, "unavailable", NULL);
    assert_true(has_header(&r, "Retry-After: 2"));
    assert_non_null(strstr(r.body, "the test server is shutting down"));
    /* Unknown paths are still unknown. */
    request("GET", "/v1/nothing", NULL, NULL, &r);
    assert_error(&r, 404, "not_found", NULL);
    /* The done hook ran for each request. */
    assert_int_equal(atomic_load(&T.done_calls) - before, 2);
}

static void test_state(void **state)
{
    (void)state;
    reply_t r;
    int before = atomic_load(&T.state_seen);
    request("GET", "/v1/items/1", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    /* The handler's state is the one the done hook sees. */
    assert_int_equal(atomic_load(&T.state_seen) - before, 1);
}

static void test_bad_bind(void **state)
{
    (void)state;
    wasl_http_config_t cfg = {.name = "test",
                              .drain_who = "test",
                              .bind = "not-an-address",
                              .threads = 1,
                              .routes = routes,
                              .route_count = 1,
                              .route_size = sizeof routes[0],
                              .hooks = {.handle = handle_hook}};
    assert_null(wasl_http_new(&cfg));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reserve_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_suspend_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
        cmocka_unit_test(test_bad_bind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
