/* test_sdnotify — wasl_admin's systemd notifications: READY, STOPPING, WATCHDOG, or nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* Long enough for a slow valgrind run; "nothing arrives" waits the short one. */
#define EXPECT_TIMEOUT_MS  5000
#define SILENCE_TIMEOUT_MS 300
/* systemd's WatchdogSec=, in microseconds: short, so the test sees several keep-alives. */
#define TEST_WATCHDOG_USEC "200000"

typedef struct {
    char dir[64];
    char path[96]; /* fits sockaddr_un.sun_path (108) */
    int fd;
} notify_sock_t;

/* Binds a unix datagram socket in a fresh temp dir: what systemd listens on. */
static void notify_sock_open(notify_sock_t *s)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/wasl-sdnotify-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->path, sizeof s->path, "%s/notify", s->dir);
    s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", s->path);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&addr, sizeof addr), 0);
}

static void notify_sock_close(notify_sock_t *s)
{
    close(s->fd);
    unlink(s->path);
    rmdir(s->dir);
}

/* Returns the next datagram's length (text NUL-terminated in buf), or -1 after timeout_ms. */
static long next_msg(const notify_sock_t *s, char *buf, size_t cap, int timeout_ms)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n = recv(s->fd, buf, cap - 1, 0);
    if (n < 0) {
        buf[0] = '\0';
        return -1;
    }
    buf[n] = '\0';
    return (long)n;
}

/* Returns the next datagram that is not a watchdog keep-alive, or -1. */
static long next_state_msg(const notify_sock_t *s, char *buf, size_t cap, int timeout_ms)
{
    long n;
    while ((n = next_msg(s, buf, cap, timeout_ms)) >= 0 && strcmp(buf, "WATCHDOG=1") == 0) {
    }
    return n;
}

static void clear_env(void)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

static void test_ready_then_stopping(void **state)
{
    (void)state;
    notify_sock_t s;
    notify_sock_open(&s);
    clear_env();
    setenv("NOTIFY_SOCKET", s.path, 1);
    char buf[512];

    wasl_admin_t *admin = wasl_admin_new("wasl-test", "127.0.0.1", 0);
    assert_non_null(admin);
    /* Creating the admin port is not "started": nothing yet. */
    assert_int_equal(next_msg(&s, buf, sizeof buf, SILENCE_TIMEOUT_MS), -1);

    wasl_admin_set_ready(admin, NULL, NULL);
    assert_true(next_msg(&s, buf, sizeof buf, EXPECT_TIMEOUT_MS) > 0);
    assert_non_null(strstr(buf, "READY=1\n"));
    char status[128];
    snprintf(status, sizeof status, "STATUS=wasl-test started; admin port %d",
             wasl_admin_port(admin));
    assert_non_null(strstr(buf, status));
    /* READY is said once, however often the check is replaced. */
    wasl_admin_set_ready(admin, NULL, NULL);
    assert_int_equal(next_msg(&s, buf, sizeof buf, SILENCE_TIMEOUT_MS), -1);

    wasl_admin_set_draining(admin);
    assert_true(next_msg(&s, buf, sizeof buf, EXPECT_TIMEOUT_MS) > 0);
    assert_non_null(strstr(buf, "STOPPING=1\n"));
    assert_non_null(strstr(buf, "STATUS=wasl-test draining"));
    wasl_admin_set_draining(admin);
    assert_int_equal(next_msg(&s, buf, sizeof buf, SILENCE_TIMEOUT_MS), -1);
    /* No WatchdogSec: no keep-alive thread either. */
    wasl_admin_destroy(&admin);
    assert_int_equal(next_msg(&s, buf, sizeof buf, SILENCE_TIMEOUT_MS), -1);

    clear_env();
    notify_sock_close(&s);
}

static void test_silent_without_notify_socket(void **state)
{
    (void)state;
    notify_sock_t s;
    notify_sock_open(&s);
    clear_env(); /* the socket exists but nobody advertised it */
    setenv("WATCHDOG_USEC", TEST_WATCHDOG_USEC, 1);
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    char buf[512];

    wasl_admin_t *admin = wasl_admin_new("wasl-test", "127.0.0.1", 0);
    assert_non_null(admin);
    wasl_admin_set_ready(admin, NULL, NULL);
    wasl_admin_set_draining(admin);
    assert_int_equal(next_msg(&s, buf, sizeof buf, SILENCE_TIMEOUT_MS), -1);
    wasl_admin_destroy(&admin);

    clear_env();
    notify_sock_close(&s);
}

static void test_watchdog_keepalive(void **state)
{
    (void)state;
    notify_sock_t s;
    notify_sock_open(&s);
    clear_env();
    setenv("NOTIFY_SOCKET", s.path, 1);
    setenv("WATCHDOG_USEC", TEST_WATCHDOG_USEC, 1);
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    char buf[512];

    /* "0.0.0.0" also checks the probe goes to loopback for a wildcard bind. */
    wasl_admin_t *admin = wasl_admin_new("wasl-test", "0.0.0.0", 0);
    assert_non_null(admin);
    for (int i = 0; i < 3; i++) {
        assert_true(next_msg(&s, buf, sizeof buf, EXPECT_TIMEOUT_MS) > 0);
        assert_string_equal(buf, "WATCHDOG=1");
    }
    /* READY and STOPPING still arrive between keep-alives. */
    wasl_admin_set_ready(admin, NULL, NULL);
    assert_true(next_state_msg(&s, buf, sizeof buf, EXPECT_TIMEOUT_MS) > 0);
    assert_non_null(strstr(buf, "READY=1\n"));
    wasl_admin_set_draining(admin);
    assert_true(next_state_msg(&s, buf, sizeof buf, EXPECT_TIMEOUT_MS) > 0);
    assert_non_null(strstr(buf, "STOPPING=1\n"));

    /* Destroy joins the thread: after what was in flight, silence. */
    wasl_admin_destroy(&admin);
    while (next_msg(&s, buf, sizeof buf, 1) >= 0) {
    }
    assert_int_equal(next_msg(&s, buf, sizeof buf, SILENCE_TIMEOUT_MS), -1);

    clear_env();
    notify_sock_close(&s);
}

static void test_watchdog_for_another_pid(void **state)
{
    (void)state;
    notify_sock_t s;
    notify_sock_open(&s);
    clear_env();
    setenv("NOTIFY_SOCKET", s.path, 1);
    setenv("WATCHDOG_USEC", TEST_WATCHDOG_USEC, 1);
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", (long)getpid() + 1);
    setenv("WATCHDOG_PID", pid, 1); /* inherited from a parent: not ours to keep alive */
    char buf[512];

    wasl_admin_t *admin = wasl_admin_new("wasl-test", "127.0.0.1", 0);
    assert_non_null(admin);
    assert_int_equal(next_msg(&s, buf, sizeof buf, SILENCE_TIMEOUT_MS), -1);
    wasl_admin_destroy(&admin);

    clear_env();
    notify_sock_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_then_stopping),
        cmocka_unit_test(test_silent_without_notify_socket),
        cmocka_unit_test(test_watchdog_keepalive),
        cmocka_unit_test(test_watchdog_for_another_pid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
