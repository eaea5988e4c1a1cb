/* wasl_offload — a small pool of threads for blocking work that an event loop or an HTTP thread
 * must not do itself (an RPC that may wait seconds, a parser that may take a while): a bounded
 * queue, a deadline per task, and exactly one completion call per accepted task. */
#ifndef WASL_OFFLOAD_H
#define WASL_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wasl_offload wasl_offload_t;

/* The slow part; runs on a pool thread. */
typedef void(wasl_offload_run_fn)(void *arg);

/* Called exactly once for every accepted task: with ran=true right after run(arg) on the same
 * pool thread; with ran=false (run was never called) when the task's deadline passed while it
 * waited in the queue, or when the pool was destroyed before it started. Typically it resumes
 * the suspended connection that submitted the task. It may run on any thread. */
typedef void(wasl_offload_done_fn)(void *arg, bool ran);

/* Starts `threads` pool threads (and a reaper for queued deadlines) that take tasks from a queue
 * of at most `queue_max`. `name` (borrowed, a string literal) labels the metrics
 * (wasl_offload_queued, wasl_offload_running, wasl_offload_tasks_total{pool,outcome}). NULL on
 * failure. */
wasl_offload_t *wasl_offload_new(const char *name, size_t threads, size_t queue_max);

/* Stops taking tasks (submit returns -1 from now on), lets the queued tasks whose deadline has
 * not passed run, answers the rest with done(arg, false), and joins the threads. Every accepted
 * task is done when it returns. Safe twice, and from another thread than a concurrent submit. */
void wasl_offload_stop(wasl_offload_t *self);

/* wasl_offload_stop(), then frees the pool. Safe twice; NULLs *self_p. */
void wasl_offload_destroy(wasl_offload_t **self_p);

/* Queues run(arg) then done(arg, true) — or done(arg, false) if `deadline_ms` (monotonic, as
 * wasl_clock_ms(); 0 for none) passes before a thread takes it. Returns 0, or -1 when the
 * queue is full or the pool is stopping: then neither function is ever called and the caller
 * still owns `arg`. */
int wasl_offload_submit(wasl_offload_t *self, wasl_offload_run_fn *run, wasl_offload_done_fn *done,
                        void *arg, int64_t deadline_ms);

/* Tasks queued and not yet started. */
size_t wasl_offload_queued(wasl_offload_t *self);

#endif
