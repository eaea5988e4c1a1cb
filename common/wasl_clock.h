/* wasl_clock — the monotonic clock every timeout, deadline, lease wait and latency is measured
 * on (CLOCK_MONOTONIC: a wall-clock step never shortens a timeout or makes a latency negative). */
#ifndef WASL_CLOCK_H
#define WASL_CLOCK_H

#include <stdint.h>

/* Milliseconds since an arbitrary start (the boot), never going back. */
int64_t wasl_clock_ms(void);

/* The same clock in seconds, with nanosecond resolution: for latencies. */
double wasl_clock_s(void);

#endif
