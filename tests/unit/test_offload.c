/* test_offload — wasl_offload: every accepted task is done exactly once (ran, or expired in the
 * queue, or at stop), a full queue refuses, and a stop finishes what was accepted. */
#include "wasl_offload.h"
#include "wasl_clock.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#define MANY 200

typedef struct {
    atomic_int ran, done_ran, done_expired;
    pthread_mutex_t gate_lock;
    pthread_cond_t gate_cond;
    bool gate_open;
} counts_t;

static void gate_wait(counts_t *c)
{
    pthread_mutex_lock(&c->gate_lock);
    while (!c->gate_open) {
        pthread_cond_wait(&c->gate_cond, &c->gate_lock);
    }
    pthread_mutex_unlock(&c->gate_lock);
}

static void gate_open(counts_t *c)
{
    pthread_mutex_lock(&c->gate_lock);
    c->gate_open = true;
    pthread_cond_broadcast(&c->gate_cond);
    pthread_mutex_unlock(&c->gate_lock);
}

static void counts_init(counts_t *c, bool open)
{
    atomic_init(&c->ran, 0);
    atomic_init(&c->done_ran, 0);
    atomic_init(&c->done_expired, 0);
    pthread_mutex_init(&c->gate_lock, NULL);
    pthread_cond_init(&c->gate_cond, NULL);
    c->gate_open = open;
}

static void counts_fini(counts_t *c)
{
    pthread_cond_destroy(&c->gate_cond);
    pthread_mutex_destroy(&c->gate_lock);
}

static void run_count(void *arg)
{
    counts_t *c = arg;
    gate_wait(c); /* a slow dependency until the test opens the gate */
    atomic_fetch_add(&c->ran, 1);
}

static void done_count(void *arg, bool ran)
{
    counts_t *c = arg;
    atomic_fetch_add(ran ? &c->done_ran : &c->done_expired, 1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_every_task_runs_and_is_done_once(void **state)
{
    (void)state;
    counts_t c;
    counts_init(&c, true);
    wasl_offload_t *p = wasl_offload_new("t_all", 4, MANY);
    assert_non_null(p);
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(wasl_offload_submit(p, run_count, done_count, &c, 0), 0);
    }
    wasl_offload_destroy(&p);
    assert_null(p);
    wasl_offload_destroy(&p); /* safe twice */
    assert_int_equal(atomic_load(&c.ran), MANY);
    assert_int_equal(atomic_load(&c.done_ran), MANY);
    assert_int_equal(atomic_load(&c.done_expired), 0);
    counts_fini(&c);
}

static void test_full_queue_refuses_and_deadlines_expire_queued_tasks(void **state)
{
    (void)state;
    counts_t busy, queued;
    counts_init(&busy, false);
    counts_init(&queued, true);
    wasl_offload_t *p = wasl_offload_new("t_deadline", 1, 2);
    assert_non_null(p);
    /* The only thread is held by a task that waits on the gate. */
    assert_int_equal(wasl_offload_submit(p, run_count, done_count, &busy, 0), 0);
    while (wasl_offload_queued(p) != 0) {
        sleep_ms(1); /* until the thread took it */
    }
    int64_t soon = wasl_clock_ms() + 20;
    assert_int_equal(wasl_offload_submit(p, run_count, done_count, &queued, soon), 0);
    assert_int_equal(wasl_offload_submit(p, run_count, done_count, &queued, soon), 0);
    /* The queue holds two: a third is refused and never called. */
    assert_int_equal(wasl_offload_submit(p, run_count, done_count, &queued, soon), -1);
    /* The reaper answers the queued ones at their deadline, while the thread is still busy. */
    while (atomic_load(&queued.done_expired) < 2) {
        sleep_ms(5);
    }
    assert_int_equal(atomic_load(&queued.ran), 0);
    assert_int_equal(atomic_load(&busy.ran), 0);
    gate_open(&busy);
    wasl_offload_destroy(&p);
    assert_int_equal(atomic_load(&busy.done_ran), 1);
    assert_int_equal(atomic_load(&queued.done_ran), 0);
    assert_int_equal(atomic_load(&queued.done_expired), 2);
    counts_fini(&busy);
    counts_fini(&queued);
}

static void *open_later(void *arg)
{
    sleep_ms(30);
    gate_open(arg);
    return NULL;
}

static void test_stop_finishes_what_was_accepted_and_then_refuses(void **state)
{
    (void)state;
    counts_t c;
    counts_init(&c, false);
    wasl_offload_t *p = wasl_offload_new("t_stop", 2, 16);
    assert_non_null(p);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(wasl_offload_submit(p, run_count, done_count, &c, 0), 0);
    }
    pthread_t opener;
    assert_int_equal(pthread_create(&opener, NULL, open_later, &c), 0);
    wasl_offload_stop(p); /* waits for every accepted task */
    pthread_join(opener, NULL);
    assert_int_equal(atomic_load(&c.done_ran), 10);
    assert_int_equal(wasl_offload_submit(p, run_count, done_count, &c, 0), -1);
    wasl_offload_destroy(&p);
    assert_int_equal(atomic_load(&c.done_ran) + atomic_load(&c.done_expired), 10);
    counts_fini(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_task_runs_and_is_done_once),
        cmocka_unit_test(test_full_queue_refuses_and_deadlines_expire_queued_tasks),
        cmocka_unit_test(test_stop_finishes_what_was_accepted_and_then_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
