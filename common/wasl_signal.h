/* wasl_signal — SIGTERM/SIGINT ask for a graceful drain, SIGHUP asks for a reload. */
#ifndef WASL_SIGNAL_H
#define WASL_SIGNAL_H

#include <stdbool.h>

/* Installs the handlers (and tells CZMQ not to install its own). Call once, early in main. */
void wasl_signal_install(void);

/* True once SIGTERM or SIGINT arrived. Async-signal-safe flag; cheap to poll. */
bool wasl_signal_stopping(void);

/* True once per SIGHUP received (the flag is cleared by reading it). */
bool wasl_signal_take_reload(void);

/* Blocks the caller until a stop signal arrives or `timeout_ms` passes (-1: forever).
 * Returns true when stopping. */
bool wasl_signal_wait(int timeout_ms);

/* Requests a stop from inside the process (tests, fatal errors in a thread). */
void wasl_signal_request_stop(void);

#endif
