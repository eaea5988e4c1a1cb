/* wasl_offload — a small pool of threads for blocking work, with a bounded queue and deadlines. */
#include "wasl_offload.h"
#include "wasl_clock.h"
#include "wasl_log.h"
#include "wasl_metrics.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How often the reaper looks for queued tasks past their deadline: a request waits at most this
 * much longer than its deadline for its 503. */
#define REAPER_PERIOD_MS 50
#define LABELS_MAX       128

typedef struct task {
    wasl_offload_run_fn *run;
    wasl_offload_done_fn *done;
    void *arg;
    int64_t deadline_ms;
    struct task *next;
} task_t;

struct wasl_offload {
    pthread_mutex_t lock;
    pthread_cond_t wake;   /* a task was queued, or the pool is stopping */
    pthread_cond_t reaper; /* the reaper's sleep, cut short when stopping */
    task_t *head, *tail;
    size_t queued, queue_max;
    bool stopping;
    pthread_t *threads;
    size_t nthreads; /* started */
    pthread_t reaper_thread;
    bool reaper_running;
    wasl_gauge_t *queued_gauge;
    wasl_gauge_t *running_gauge;
    wasl_counter_t *ran, *expired, *full;
};

static bool expired(const task_t *t, int64_t now)
{
    return t->deadline_ms > 0 && now >= t->deadline_ms;
}

/* Pops the next task (NULL when stopping with an empty queue). Called with the lock held. */
static task_t *pop_locked(wasl_offload_t *self)
{
    while (!self->head && !self->stopping) {
        pthread_cond_wait(&self->wake, &self->lock);
    }
    task_t *t = self->head;
    if (t) {
        self->head = t->next;
        if (!self->head) {
            self->tail = NULL;
        }
        self->queued--;
    }
    return t;
}

static void *worker(void *arg)
{
    wasl_offload_t *self = arg;
    for (;;) {
        pthread_mutex_lock(&self->lock);
        task_t *t = pop_locked(self);
        pthread_mutex_unlock(&self->lock);
        if (!t) {
            break;
        }
        wasl_gauge_set(self->queued_gauge, (double)wasl_offload_queued(self));
        if (expired(t, wasl_clock_ms())) {
            wasl_counter_inc(self->expired);
            t->done(t->arg, false);
        } else {
            wasl_gauge_add(self->running_gauge, 1);
            t->run(t->arg);
            wasl_gauge_add(self->running_gauge, -1);
            wasl_counter_inc(self->ran);
            t->done(t->arg, true);
        }
        free(t);
    }
    return NULL;
}

/* Answers queued tasks whose deadline passed while every thread was busy: without it a request
 * behind slow tasks would wait for a free thread only to be told it is too late. */
static void *reaper(void *arg)
{
    wasl_offload_t *self = arg;
    pthread_mutex_lock(&self->lock);
    while (!self->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += REAPER_PERIOD_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&self->reaper, &self->lock, &until);
        int64_t now = wasl_clock_ms();
        task_t *gone = NULL, **link = &self->head, *prev = NULL;
        while (*link) {
            task_t *t = *link;
            if (expired(t, now)) {
                *link = t->next;
                self->queued--;
                t->next = gone;
                gone = t;
            } else {
                prev = t;
                link = &t->next;
            }
        }
        self->tail = prev;
        if (!gone) {
            continue;
        }
        pthread_mutex_unlock(&self->lock);
        while (gone) {
            task_t *t = gone;
            gone = t->next;
            wasl_counter_inc(self->expired);
            t->done(t->arg, false);
            free(t);
        }
        pthread_mutex_lock(&self->lock);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

wasl_offload_t *wasl_offload_new(const char *name, size_t threads, size_t queue_max)
{
    assert(name && threads > 0 && queue_max > 0);
    wasl_offload_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    pthread_cond_init(&self->reaper, NULL);
    self->queue_max = queue_max;
    char labels[LABELS_MAX];
    snprintf(labels, sizeof labels, "pool=\"%s\"", name);
    self->queued_gauge =
        wasl_gauge("wasl_offload_queued", "Offloaded tasks waiting for a thread", labels);
    self->running_gauge =
        wasl_gauge("wasl_offload_running", "Offloaded tasks running on a thread", labels);
    const char *help = "Offloaded tasks by outcome (ran; expired before a thread took them; "
                       "refused because the queue was full)";
    snprintf(labels, sizeof labels, "pool=\"%s\",outcome=\"ran\"", name);
    self->ran = wasl_counter("wasl_offload_tasks_total", help, labels);
    snprintf(labels, sizeof labels, "pool=\"%s\",outcome=\"expired\"", name);
    self->expired = wasl_counter("wasl_offload_tasks_total", help, labels);
    snprintf(labels, sizeof labels, "pool=\"%s\",outcome=\"full\"", name);
    self->full = wasl_counter("wasl_offload_tasks_total", help, labels);
    self->threads = calloc(threads, sizeof *self->threads);
    if (!self->threads) {
        goto error;
    }
    for (; self->nthreads < threads; self->nthreads++) {
        if (pthread_create(&self->threads[self->nthreads], NULL, worker, self) != 0) {
            wasl_error("offload: cannot start a thread", "{s:s}", "pool", name);
            goto error;
        }
    }
    if (pthread_create(&self->reaper_thread, NULL, reaper, self) != 0) {
        wasl_error("offload: cannot start the reaper", "{s:s}", "pool", name);
        goto error;
    }
    self->reaper_running = true;
    return self;
error:
    wasl_offload_destroy(&self);
    return NULL;
}

void wasl_offload_stop(wasl_offload_t *self)
{
    pthread_mutex_lock(&self->lock);
    self->stopping = true;
    pthread_cond_broadcast(&self->wake);
    pthread_cond_signal(&self->reaper);
    pthread_mutex_unlock(&self->lock);
    if (self->reaper_running) {
        pthread_join(self->reaper_thread, NULL);
        self->reaper_running = false;
    }
    /* The threads empty the queue before they stop (expired tasks get done(false)). */
    for (size_t i = 0; i < self->nthreads; i++) {
        pthread_join(self->threads[i], NULL);
    }
    self->nthreads = 0;
    /* Without any thread (a failed start) nothing was accepted; still, never drop a task. */
    pthread_mutex_lock(&self->lock);
    while (self->head) {
        task_t *t = self->head;
        self->head = t->next;
        self->queued--;
        pthread_mutex_unlock(&self->lock);
        t->done(t->arg, false);
        free(t);
        pthread_mutex_lock(&self->lock);
    }
    self->tail = NULL;
    pthread_mutex_unlock(&self->lock);
}

void wasl_offload_destroy(wasl_offload_t **self_p)
{
    assert(self_p);
    wasl_offload_t *self = *self_p;
    if (!self) {
        return;
    }
    wasl_offload_stop(self);
    free(self->threads);
    pthread_cond_destroy(&self->reaper);
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

int wasl_offload_submit(wasl_offload_t *self, wasl_offload_run_fn *run, wasl_offload_done_fn *done,
                        void *arg, int64_t deadline_ms)
{
    assert(run && done);
    task_t *t = calloc(1, sizeof *t);
    if (!t) {
        return -1;
    }
    t->run = run;
    t->done = done;
    t->arg = arg;
    t->deadline_ms = deadline_ms;
    pthread_mutex_lock(&self->lock);
    if (self->stopping || self->queued >= self->queue_max) {
        pthread_mutex_unlock(&self->lock);
        wasl_counter_inc(self->full);
        free(t);
        return -1;
    }
    if (self->tail) {
        self->tail->next = t;
    } else {
        self->head = t;
    }
    self->tail = t;
    self->queued++;
    size_t queued = self->queued;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    wasl_gauge_set(self->queued_gauge, (double)queued);
    return 0;
}

size_t wasl_offload_queued(wasl_offload_t *self)
{
    pthread_mutex_lock(&self->lock);
    size_t n = self->queued;
    pthread_mutex_unlock(&self->lock);
    return n;
}
