/* test_zmq — bus addressing, socket options, and CURVE with ZAP allow-lists per socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_log.h"
#include "wasl_zmq.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void test_bus_endpoints(void **state)
{
    (void)state;
    const char *stages = "classify,route,notify";
    char *e = wasl_bus_endpoints("tcp://127.0.0.1:7100", stages, "classify", WASL_BUS_PUSH);
    assert_string_equal(e, "tcp://127.0.0.1:7102");
    free(e);
    e = wasl_bus_endpoints("tcp://127.0.0.1:7100,tcp://10.0.0.2:7200", stages, "notify",
                           WASL_BUS_PULL);
    assert_string_equal(e, "tcp://127.0.0.1:7107,tcp://10.0.0.2:7207");
    free(e);
    e = wasl_bus_endpoints("tcp://[::1]:7100", stages, NULL, WASL_BUS_RPC_WORKER);
    assert_string_equal(e, "tcp://[::1]:7101");
    free(e);
    e = wasl_bus_endpoints("tcp://h:7100", stages, NULL, WASL_BUS_RPC_CLIENT);
    assert_string_equal(e, "tcp://h:7100");
    free(e);
    assert_null(wasl_bus_endpoints("tcp://h:7100", stages, "nosuch", WASL_BUS_PUSH));
    assert_null(wasl_bus_endpoints("udp://h:7100", stages, "route", WASL_BUS_PUSH));
    assert_null(wasl_bus_endpoints("tcp://h:x", stages, "route", WASL_BUS_PUSH));
    assert_null(wasl_bus_endpoints("tcp://h:65535", stages, "route", WASL_BUS_PUSH));
    assert_null(wasl_bus_endpoints("", stages, "route", WASL_BUS_PUSH));
    assert_int_equal(wasl_bus_stage_index(stages, "route"), 1);
    assert_int_equal(wasl_bus_stage_index(stages, "rout"), -1);
    assert_int_equal(wasl_bus_stage_index(stages, ""), -1);
}

/* Writes a key pair in the keygen layout: dir/name.secret and dir/public/name.pub. */
static void make_key(const char *dir, const char *name)
{
    char path[512];
    zcert_t *cert = zcert_new();
    snprintf(path, sizeof path, "%s/%s.secret", dir, name);
    assert_int_equal(zcert_save_secret(cert, path), 0);
    snprintf(path, sizeof path, "%s/public/%s.pub", dir, name);
    assert_int_equal(zcert_save_public(cert, path), 0);
    zcert_destroy(&cert);
}

static char keydir[64];

static int setup_keys(void **state)
{
    (void)state;
    snprintf(keydir, sizeof keydir, "/tmp/wasl-test-keys-XXXXXX");
    assert_non_null(mkdtemp(keydir));
    char pub[128];
    snprintf(pub, sizeof pub, "%s/public", keydir);
    mkdir(pub, 0700);
    make_key(keydir, "bus");
    make_key(keydir, "intake");
    /* A stranger: a valid key pair whose public key is NOT in the allow-list directory. */
    char other[128];
    snprintf(other, sizeof other, "%s/other", keydir);
    mkdir(other, 0700);
    snprintf(pub, sizeof pub, "%s/other/public", keydir);
    mkdir(pub, 0700);
    make_key(other, "bus");
    char cmd[256];
    /* The stranger needs the real bus key to even try. */
    snprintf(cmd, sizeof cmd, "cp %s/public/bus.pub %s/other/public/bus.pub", keydir, keydir);
    assert_int_equal(system(cmd), 0);
    make_key(other, "stranger");
    return 0;
}

static int teardown_keys(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", keydir);
    return system(cmd);
}

/* True when `client` can get a message through to `server` within timeout_ms. */
static bool delivers(zsock_t *client, zsock_t *server, int timeout_ms)
{
    zsock_set_sndtimeo(client, timeout_ms);
    if (zstr_send(client, "ping") != 0) {
        return false;
    }
    zsock_set_rcvtimeo(server, timeout_ms);
    char *s = zstr_recv(server);
    bool ok = s && strcmp(s, "ping") == 0;
    zstr_free(&s);
    return ok;
}

static void test_curve_allow_list(void **state)
{
    (void)state;
    wasl_zmq_opts_t server_opts = {.curve_dir = keydir, .self_name = "bus", .server_name = "bus"};
    wasl_zmq_t *server_ctx = wasl_zmq_new(&server_opts);
    assert_non_null(server_ctx);
    assert_true(wasl_zmq_curve(server_ctx));
    zsock_t *server = wasl_zmq_bind(server_ctx, ZMQ_PULL, "tcp://127.0.0.1:*");
    assert_non_null(server);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", atoi(strrchr(zsock_endpoint(server), ':') + 1));

    /* A known key gets through. */
    wasl_zmq_opts_t ok_opts = {.curve_dir = keydir, .self_name = "intake", .server_name = "bus"};
    wasl_zmq_t *ok_ctx = wasl_zmq_new(&ok_opts);
    zsock_t *ok = wasl_zmq_connect(ok_ctx, ZMQ_PUSH, ep);
    assert_non_null(ok);
    assert_true(delivers(ok, server, 5000));

    /* A key not in the allow-list is refused by ZAP: nothing arrives. */
    char other[128];
    snprintf(other, sizeof other, "%s/other", keydir);
    wasl_zmq_opts_t bad_opts = {.curve_dir = other, .self_name = "stranger", .server_name = "bus"};
    wasl_zmq_t *bad_ctx = wasl_zmq_new(&bad_opts);
    assert_non_null(bad_ctx);
    zsock_t *bad = wasl_zmq_connect(bad_ctx, ZMQ_PUSH, ep);
    assert_non_null(bad);
    assert_false(delivers(bad, server, 500));

    /* A peer without CURVE cannot talk to a CURVE server. */
    wasl_zmq_opts_t plain_opts = {0};
    wasl_zmq_t *plain_ctx = wasl_zmq_new(&plain_opts);
    assert_false(wasl_zmq_curve(plain_ctx));
    zsock_t *plain = wasl_zmq_connect(plain_ctx, ZMQ_PUSH, ep);
    assert_non_null(plain);
    assert_false(delivers(plain, server, 500));

    /* And the good client still works afterwards. */
    assert_true(delivers(ok, server, 5000));

    zsock_destroy(&plain);
    zsock_destroy(&bad);
    zsock_destroy(&ok);
    zsock_destroy(&server);
    wasl_zmq_destroy(&plain_ctx);
    wasl_zmq_destroy(&bad_ctx);
    wasl_zmq_destroy(&ok_ctx);
    wasl_zmq_destroy(&server_ctx);
    wasl_zmq_destroy(&server_ctx);
}

static void test_zap_domains(void **state)
{
    (void)state;
    assert_true(wasl_zap_admits("wasl", "intake"));
    assert_true(wasl_zap_admits("wasl:caselookup", "caselookup"));
    assert_true(wasl_zap_admits("wasl:intake,router", "router"));
    assert_true(wasl_zap_admits("wasl:intake,router", "intake"));
    assert_false(wasl_zap_admits("wasl:intake,router", "route"));
    assert_false(wasl_zap_admits("wasl:intake,router", "intake,router"));
    assert_false(wasl_zap_admits("wasl:caselookup", "caselookup2"));
    assert_false(wasl_zap_admits("wasl:,", "intake"));
    assert_false(wasl_zap_admits("wasl", NULL)); /* an unknown key */
    assert_false(wasl_zap_admits("wasl", ""));
    assert_false(wasl_zap_admits("other", "intake"));
    assert_false(wasl_zap_admits("waslx", "intake"));
    assert_false(wasl_zap_admits(NULL, "intake"));
}

/* Each socket admits only its roles: a known key of the wrong role is refused like a
 * stranger's, and a key added to public/ later is admitted without a restart. */
static void test_curve_allow_per_socket(void **state)
{
    (void)state;
    wasl_zmq_opts_t server_opts = {.curve_dir = keydir, .self_name = "bus", .server_name = "bus"};
    wasl_zmq_t *server_ctx = wasl_zmq_new(&server_opts);
    assert_non_null(server_ctx);
    assert_null(wasl_zmq_bind_allow(server_ctx, ZMQ_PULL, "tcp://127.0.0.1:*", "Bad Role"));
    assert_null(wasl_zmq_bind_allow(server_ctx, ZMQ_PULL, "tcp://127.0.0.1:*", "a,,b"));
    zsock_t *workers = wasl_zmq_bind_allow(server_ctx, ZMQ_PULL, "tcp://127.0.0.1:*", "caselookup");
    zsock_t *clients =
        wasl_zmq_bind_allow(server_ctx, ZMQ_PULL, "tcp://127.0.0.1:*", "intake,router");
    zsock_t *nobody = wasl_zmq_bind_allow(server_ctx, ZMQ_PULL, "tcp://127.0.0.1:*", "");
    assert_non_null(workers);
    assert_non_null(clients);
    assert_non_null(nobody);
    char wep[64], cep[64], nep[64];
    snprintf(wep, sizeof wep, "tcp://127.0.0.1:%d",
             atoi(strrchr(zsock_endpoint(workers), ':') + 1));
    snprintf(cep, sizeof cep, "tcp://127.0.0.1:%d",
             atoi(strrchr(zsock_endpoint(clients), ':') + 1));
    snprintf(nep, sizeof nep, "tcp://127.0.0.1:%d", atoi(strrchr(zsock_endpoint(nobody), ':') + 1));

    wasl_zmq_opts_t intake_opts = {
        .curve_dir = keydir, .self_name = "intake", .server_name = "bus"};
    wasl_zmq_t *intake_ctx = wasl_zmq_new(&intake_opts);
    zsock_t *as_worker = wasl_zmq_connect(intake_ctx, ZMQ_PUSH, wep);
    zsock_t *as_client = wasl_zmq_connect(intake_ctx, ZMQ_PUSH, cep);
    zsock_t *as_nobody = wasl_zmq_connect(intake_ctx, ZMQ_PUSH, nep);
    assert_true(delivers(as_client, clients, 5000));
    assert_false(delivers(as_worker, workers, 500)); /* intake is no caselookup worker */
    assert_false(delivers(as_nobody, nobody, 500));

    /* A router key made after the server started: admitted where routers belong. */
    make_key(keydir, "router");
    wasl_zmq_opts_t router_opts = {
        .curve_dir = keydir, .self_name = "router", .server_name = "bus"};
    wasl_zmq_t *router_ctx = wasl_zmq_new(&router_opts);
    zsock_t *router = wasl_zmq_connect(router_ctx, ZMQ_PUSH, cep);
    assert_true(delivers(router, clients, 5000));

    zsock_destroy(&router);
    zsock_destroy(&as_nobody);
    zsock_destroy(&as_client);
    zsock_destroy(&as_worker);
    zsock_destroy(&nobody);
    zsock_destroy(&clients);
    zsock_destroy(&workers);
    wasl_zmq_destroy(&router_ctx);
    wasl_zmq_destroy(&intake_ctx);
    wasl_zmq_destroy(&server_ctx);
}

static void test_missing_keys_fail(void **state)
{
    (void)state;
    wasl_zmq_opts_t opts = {.curve_dir = keydir, .self_name = "nobody", .server_name = "bus"};
    assert_null(wasl_zmq_new(&opts));
    wasl_zmq_opts_t opts2 = {.curve_dir = keydir, .self_name = "intake", .server_name = "none"};
    assert_null(wasl_zmq_new(&opts2));
}

static void test_maxmsgsize_drops_oversized(void **state)
{
    (void)state;
    wasl_zmq_opts_t opts = {.maxmsgsize = 1024};
    wasl_zmq_t *ctx = wasl_zmq_new(&opts);
    zsock_t *server = wasl_zmq_bind(ctx, ZMQ_PULL, "tcp://127.0.0.1:*");
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", atoi(strrchr(zsock_endpoint(server), ':') + 1));
    /* The sender has no limit of its own; the receiver's limit applies. */
    zsock_t *client = zsock_new_push(ep);
    char big[2048];
    memset(big, 'x', sizeof big);
    zsock_set_sndtimeo(client, 1000);
    zmq_send(zsock_resolve(client), big, sizeof big, 0);
    zsock_set_rcvtimeo(server, 500);
    char *s = zstr_recv(server);
    assert_null(s); /* the oversized frame is dropped with its connection */
    zsock_destroy(&client);
    zsock_destroy(&server);
    wasl_zmq_destroy(&ctx);
}

/* A consumer that stops reading (its pipe full: normal backpressure) for many heartbeat
 * intervals keeps its connection and loses nothing once it reads again. With ZMTP heartbeats on
 * pipeline sockets the stalled engine cannot see PINGs and the timeout drops the connection
 * (and libzmq 4.3.4 may abort on the reconnect). */
static void test_stalled_consumer_keeps_its_connection(void **state)
{
    (void)state;
    wasl_zmq_opts_t opts = {.heartbeat_ivl_ms = 50}; /* timeout 150 ms */
    wasl_zmq_t *ctx = wasl_zmq_new(&opts);
    zsock_t *pull = wasl_zmq_bind(ctx, ZMQ_PULL, "tcp://127.0.0.1:*");
    assert_non_null(pull);
    assert_int_equal(
        zmq_socket_monitor(zsock_resolve(pull), "inproc://stall-monitor", ZMQ_EVENT_DISCONNECTED),
        0);
    zsock_t *mon = zsock_new_pair("inproc://stall-monitor");
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", atoi(strrchr(zsock_endpoint(pull), ':') + 1));
    zsock_t *push = wasl_zmq_connect(ctx, ZMQ_PUSH, ep);
    assert_non_null(push);
    /* Fill every buffer between them: the pipes' high-water marks and the kernel's. */
    char payload[256];
    memset(payload, 'n', sizeof payload);
    int sent = 0;
    zsock_set_sndtimeo(push, 200);
    while (zmq_send(zsock_resolve(push), payload, sizeof payload, 0) == sizeof payload) {
        sent++;
    }
    assert_true(sent > 1000);
    /* The stall: 10 heartbeat timeouts without reading. A disconnect would show here. */
    zsock_set_rcvtimeo(mon, 1500);
    zmsg_t *event = zmsg_recv(mon);
    assert_null(event);
    /* Reading again: everything sent arrives. */
    int received = 0;
    zsock_set_rcvtimeo(pull, 1000);
    char buf[sizeof payload];
    while (zmq_recv(zsock_resolve(pull), buf, sizeof buf, 0) == sizeof payload) {
        received++;
    }
    assert_int_equal(received, sent);
    zsock_destroy(&push);
    zmq_socket_monitor(zsock_resolve(pull), NULL, 0);
    zsock_destroy(&mon);
    zsock_destroy(&pull);
    wasl_zmq_destroy(&ctx);
}

int main(void)
{
    wasl_log_init("test_zmq", WASL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bus_endpoints),
        cmocka_unit_test(test_curve_allow_list),
        cmocka_unit_test(test_zap_domains),
        cmocka_unit_test(test_curve_allow_per_socket),
        cmocka_unit_test(test_missing_keys_fail),
        cmocka_unit_test(test_maxmsgsize_drops_oversized),
        cmocka_unit_test(test_stalled_consumer_keeps_its_connection),
    };
    int rc = cmocka_run_group_tests(tests, setup_keys, teardown_keys);
    zsys_shutdown();
    return rc;
}
