/* intake — shared types of wasl-intake: configuration, contacts, jobs and the error replies. */
#ifndef WASL_INTAKE_H
#define WASL_INTAKE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wasl_http.h"
#include "wasl_pg.h"
#include "wasl_zmq.h"

#define INTAKE_ADMIN_PORT 9101

typedef struct {
    const char *http_bind;
    long http_port;
    const char *pg_url;
    const char *redis_url;
    const char *bus;
    const char *bus_stages;
    const char *curve_dir;
    const char *curve_name;
    const char *default_country; /* calling code digits, e.g. "966" */
    const char *pii_key;         /* WASL_PII_KEY / _FILE: loaded into wasl_pii at start */
    const char *pii_key_file;
    long threads;           /* HTTP worker threads */
    long writers;           /* PostgreSQL writer threads (each its own connection) */
    long batch_max;         /* most tickets committed in one transaction */
    long deadline_ms;       /* answer 503 when a contact is not committed by then */
    long json_max;          /* bytes of a JSON/form request */
    long email_max;         /* bytes of a raw email */
    long body_max;          /* bytes of the `body` text */
    long sms_thread_h;      /* an SMS threads into a ticket active this many hours back */
    long call_ttl_s;        /* lifetime of a call session in Redis */
    long ivr_ttl_s;         /* lifetime of an IVR session (the menu's state) in Redis */
    long clients_refresh_s; /* how often the client table is re-read */
    long sig_max_age_s;     /* HMAC signatures older than this are refused */
    long redis_timeout_ms;
    const char *email_trusted_authserv; /* authserv-ids whose Authentication-Results count */
    long inflight_max;   /* bytes of request bodies held at once, across the server */
    long lookup_threads; /* threads waiting on caselookup for requests */
    long parse_threads;  /* threads parsing emails */
    long offload_queue;  /* requests queued for each of those pools */
} intake_config_t;

/* One contact, ready to become a ticket. Strings are owned (malloc'd), NULL when absent. */
typedef struct {
    char *channel; /* web|api|email|sms|phone */
    char *external_id;
    char *client_id;
    char *subject;
    char *body;
    char *lang;
    char *case_number;
    char *from_name;
    char *from_phone; /* E.164 */
    char *from_email; /* lower-cased */
    char *from_national_id;
    char *from_employee_id;
    char *received_at; /* RFC 3339; NULL: now */
    char *message_id;  /* email Message-ID */
    char *auto_submitted;
    char *claimed_ref;
    char *msg_external_id; /* the messages row's own id when not external_id (call notes) */
    char *sender;          /* the messages row's sender when not the beneficiary (an agent) */
    json_t *headers;       /* owned reference or NULL */
    json_t *attachments;   /* owned reference or NULL */
    json_t *event_data;    /* extra data for the 'received' history event, or NULL */
} intake_contact_t;

/* Frees every string and reference; leaves the struct zeroed. */
void intake_contact_clear(intake_contact_t *c);

/* Sets *field to a copy of value (NULL stays NULL). Returns -1 on allocation failure. */
int intake_strset(char **field, const char *value);

/* ---- HTTP results ----------------------------------------------------------------------- */

/* A reply: the edge's (common/wasl_http): status, a JSON body (owned reference), Retry-After,
 * the error code for the metric. */
typedef wasl_http_reply_t intake_reply_t;

/* Fills `r` with {"error":{"code","field","message"}}. `field` may be NULL. Returns r. */
intake_reply_t *intake_error(intake_reply_t *r, unsigned status, const char *code,
                             const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ---- jobs: the work handed from an HTTP thread to a writer ----------------------------- */

typedef struct intake_job intake_job_t;
typedef struct intake_writer intake_writer_t;

/* A transaction body run by a writer between BEGIN and COMMIT on its connection. It fills
 * `reply` (sent only after COMMIT), may create tickets with intake_writer_create(), and returns
 * 0 to commit or -1 to roll back — with `reply` set to a 4xx to send, or left empty for 503. */
typedef int(intake_txn_fn)(intake_job_t *job, intake_writer_t *w, wasl_pg_t *pg,
                           intake_reply_t *reply);

typedef enum { INTAKE_JOB_TICKET, INTAKE_JOB_TXN } intake_job_kind_t;

struct intake_job {
    intake_job_kind_t kind;
    intake_contact_t contact; /* INTAKE_JOB_TICKET */
    intake_txn_fn *txn;       /* INTAKE_JOB_TXN */
    void *arg;                /* the txn's input, freed by arg_free */
    void (*arg_free)(void *arg);
    const char *endpoint; /* for metrics */
    int64_t deadline_ms;  /* monotonic */
    /* Completion: the first of writer and deadline reaper to finish the job wins. */
    atomic_int state;
    intake_reply_t reply;
    void (*on_done)(intake_job_t *job); /* resumes the HTTP connection */
    void *on_done_arg;
    atomic_int refs;
    /* Writer bookkeeping. */
    intake_job_t *next;
    intake_job_t *all_prev, *all_next;
    int attempts;
};

/* A ticket the writer created or found for a contact. */
typedef struct {
    int64_t ticket_id;
    char ref[11];
    int64_t work_id; /* 0 when no classify work was created (duplicate, auto-submitted) */
    bool created;
} intake_ticket_t;

#endif
