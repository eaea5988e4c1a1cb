/* writer — group commit: HTTP threads hand contacts to writer threads, which commit many per
 * transaction, answer each request only after COMMIT, and nudge the classifier over the bus. */
#ifndef WASL_INTAKE_WRITER_H
#define WASL_INTAKE_WRITER_H

#include "intake.h"

typedef struct intake_writers intake_writers_t;

/* Starts cfg->writers writer threads (each with its own PostgreSQL connection and bus socket)
 * and the deadline reaper. `cfg` and `zmq` are borrowed and must outlive the pool. NULL on
 * failure (logged). */
intake_writers_t *intake_writers_new(const intake_config_t *cfg, wasl_zmq_t *zmq);

/* Stops accepting jobs (a later intake_writers_submit returns -1), finishes those queued (or
 * answers them 503 after the deadline) and joins the threads; the pool itself stays valid, so
 * an HTTP thread that passed the draining check just before can still call submit safely.
 * Safe twice. */
void intake_writers_stop(intake_writers_t *self);

/* intake_writers_stop, then frees the pool: call it only once no HTTP thread can reach the
 * pool (after intake_server_destroy). Safe twice. */
void intake_writers_destroy(intake_writers_t **self_p);

/* A new job with one reference, owned by the caller. NULL on allocation failure. */
intake_job_t *intake_job_new(intake_job_kind_t kind, const char *endpoint, int64_t deadline_ms);

/* Drops one reference; the last one frees the job, its contact, arg and reply. */
void intake_job_release(intake_job_t **job_p);

/* Queues a job; the pool takes its own reference. job->on_done is called exactly once, from a
 * writer or the reaper thread, when job->reply is final. Returns 0, or -1 when the pool is
 * stopping (the caller answers 503 itself). */
int intake_writers_submit(intake_writers_t *self, intake_job_t *job);

/* Readiness for /readyz: the last PostgreSQL round trip of any writer succeeded. */
bool intake_writers_ready(intake_writers_t *self, char *why, size_t cap);

/* Inside a transaction function: commits tickets for n contacts in the open transaction (new
 * tickets with their first event, message, participants and classify work; existing ones
 * found by their idempotency key: channel, client (except for email) and external_id). out[i]
 * receives each one's ticket; a new ticket's ticket.received is sent on the bus after COMMIT.
 * Returns 0, -1 on a database error, or INTAKE_TXN_RETRY when a concurrent transaction is
 * creating one of these tickets (return it from the transaction function: the job runs again).
 * At most 16 contacts. */
#define INTAKE_TXN_RETRY (-2)
int intake_writer_create(intake_writer_t *w, intake_contact_t *contacts, size_t n,
                         intake_ticket_t *out);

/* The pool's configuration (for transaction functions). */
const intake_config_t *intake_writer_config(const intake_writer_t *w);

#endif
