/* handlers — one function per public endpoint: validate, build the contact or transaction, reply.
 */
#ifndef WASL_INTAKE_HANDLERS_H
#define WASL_INTAKE_HANDLERS_H

#include "server.h"

void intake_handle_report(intake_request_t *req, intake_reply_t *reply);
void intake_handle_call_event(intake_request_t *req, intake_reply_t *reply);
void intake_handle_cti(intake_request_t *req, intake_reply_t *reply);
void intake_handle_sms(intake_request_t *req, intake_reply_t *reply);
void intake_handle_email(intake_request_t *req, intake_reply_t *reply);
void intake_handle_ticket_get(intake_request_t *req, intake_reply_t *reply);
/* cases.c: GET /v1/cases/{number}?national_id=…|caller=… through wasl-caselookup. */
void intake_handle_case_get(intake_request_t *req, intake_reply_t *reply);
/* cases.c: one step of the IVR's case_status menu for call `call_id` (session in Redis).
 * Returns {"speech":{"ar","en"},"ivr":{…}} (new reference) to merge into the event's reply. */
json_t *intake_cases_ivr(intake_request_t *req, const char *call_id, long long seq,
                         const char *from, const char *digits);
/* cases.c: closes the pooled caselookup clients; call after the HTTP server stopped and
 * before zsys_shutdown() (otherwise CZMQ reports their sockets as dangling). Safe twice. */
void intake_cases_shutdown(void);
/* moved.c, the server's `unrouted` hook: 404 on the agent API's old paths (/v1/agents…,
 * /v1/offers/…, /v1/queues/…, a state change on /v1/tickets/…), which wasl-desk serves since
 * issue 15; NULL (the edge's own 404/405) for any other path. */
const char *intake_moved(void *arg, wasl_http_conn_t *c, const char *method, const char *url,
                         bool wrong_method, wasl_http_reply_t *r);
void intake_handle_sms_dlr(intake_request_t *req, intake_reply_t *reply);

/* notify_in: inside the SMS transaction, before threading. A reply to our SMS that is not a
 * contact — STOP/«إيقاف» (opt-out), START (opt-in), or a survey score 1–5 (any digits) from a
 * number surveyed within the window — is recorded and `reply` filled: returns 1. Returns 0 for
 * an ordinary message, -1 on a database error. */
int intake_notify_sms_reply(wasl_pg_t *pg, const char *from, const char *text,
                            intake_reply_t *reply);

/* Shared validation: each fills `reply` with a 400 naming `field` and returns -1 when invalid.
 * On success *out is a new string (or NULL when `text` is NULL). */
int intake_norm_phone(const char *text, const char *field, const intake_config_t *cfg, char **out,
                      intake_reply_t *reply);
int intake_norm_digits(const char *text, const char *field, size_t ndigits, const char *first,
                       char **out, intake_reply_t *reply);
int intake_norm_email(const char *text, const char *field, char **out, intake_reply_t *reply);

/* A transaction job for this request: `fn` runs on a writer with a zeroed argument of
 * `arg_size` bytes (job->arg) that `arg_free` releases with the job. NULL with a 503 in reply on
 * allocation failure. The caller fills the argument and sets req->job. */
intake_job_t *intake_txn_job(const intake_request_t *req, const char *endpoint, intake_txn_fn *fn,
                             size_t arg_size, void (*arg_free)(void *), intake_reply_t *reply);

/* The ticket that already holds an inbound message (channel, external_id) from `client_id`
 * (any client for email, whose Message-ID is global: migration 0011): 1 and its reference in
 * ref (16 bytes), 0 when there is none, -1 on a database error. A gateway's retry of an SMS or
 * an email finds its ticket this way, whether the message opened it or joined it. */
int intake_inbound_ticket(wasl_pg_t *pg, const char *channel, const char *external_id,
                          const char *client_id, char ref[16]);

/* Registers the statements intake_inbound_ticket runs on pg (a writer's connection, which every
 * transaction job gets). 0, or -1 when one cannot be prepared. */
int intake_contact_prepare(wasl_pg_t *pg);

/* Registers the statements of the email transaction (the candidates, the participant) and
 * intake_contact_prepare's on a writer's connection. 0, or -1 when one cannot be prepared. */
int intake_inbound_prepare(wasl_pg_t *pg);

/* Runs a parameterized statement that must succeed; NULL (and the transaction fails) else. */
PGresult *intake_sql(wasl_pg_t *pg, const char *sql, int n, const char *const *params);

/* Appends an inbound message to an existing ticket with a 'message.received' history event and
 * bumps the ticket's updated_at. Returns 0 or -1. */
int intake_append_message(wasl_pg_t *pg, const char *ticket_id, const intake_contact_t *c,
                          const char *msg_external_id);

#endif
