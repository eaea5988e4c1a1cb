/* wasl_signal — SIGTERM/SIGINT ask for a graceful drain, SIGHUP asks for a reload. */
#include "wasl_signal.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_flag = 0;
static volatile sig_atomic_t reload_flag = 0;
/* A self-pipe wakes wasl_signal_wait() without polling. */
static int wake_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGHUP) {
        reload_flag = 1;
    } else {
        stop_flag = 1;
        /* zloop-based daemons stop on CZMQ's flag too. */
        zsys_interrupted = 1;
        if (wake_pipe[1] >= 0) {
            ssize_t rc = write(wake_pipe[1], "x", 1);
            (void)rc;
        }
    }
    errno = saved;
}

void wasl_signal_install(void)
{
    /* CZMQ would install its own SIGINT/SIGTERM handler on first use; ours replaces it. */
    zsys_handler_set(NULL);
    if (wake_pipe[0] < 0 && pipe(wake_pipe) == 0) {
        for (int i = 0; i < 2; i++) {
            int fl = fcntl(wake_pipe[i], F_GETFL);
            fcntl(wake_pipe[i], F_SETFL, fl | O_NONBLOCK);
            fcntl(wake_pipe[i], F_SETFD, FD_CLOEXEC);
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool wasl_signal_stopping(void)
{
    return stop_flag != 0;
}

bool wasl_signal_take_reload(void)
{
    if (reload_flag) {
        reload_flag = 0;
        return true;
    }
    return false;
}

bool wasl_signal_wait(int timeout_ms)
{
    if (stop_flag || wake_pipe[0] < 0) {
        return stop_flag != 0;
    }
    struct pollfd pfd = {.fd = wake_pipe[0], .events = POLLIN};
    int rc = poll(&pfd, 1, timeout_ms);
    if (rc > 0) {
        char buf[16];
        while (read(wake_pipe[0], buf, sizeof buf) > 0) {
        }
    }
    return stop_flag != 0;
}

void wasl_signal_request_stop(void)
{
    on_signal(SIGTERM);
}
