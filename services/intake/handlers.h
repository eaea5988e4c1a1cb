/* handlers — one function per public endpoint: validate, build the contact or transaction, reply. */
#ifndef WASL_INTAKE_HANDLERS_H
#define WASL_INTAKE_HANDLERS_H

#include "server.h"

void intake_handle_report(intake_request_t *req, intake_reply_t *reply);
void intake_handle_call_event(intake_request_t *req, intake_reply_t *reply);
void intake_handle_cti(intake_request_t *req, intake_reply_t *reply);
void intake_handle_sms(intake_request_t *req, intake_reply_t *reply);
void intake_handle_email(intake_request_t *req, intake_reply_t *reply);
void intake_handle_ticket_get(intake_request_t *req, intake_reply_t *reply);

/* Shared validation: each fills `reply` with a 400 naming `field` and returns -1 when invalid.
 * On success *out is a new string (or NULL when `text` is NULL). */
int intake_norm_phone(const char *text, const char *field, const intake_config_t *cfg, char **out,
                      intake_reply_t *reply);
int intake_norm_digits(const char *text, const char *field, size_t ndigits, const char *first,
                       char **out, intake_reply_t *reply);
int intake_norm_email(const char *text, const char *field, char **out, intake_reply_t *reply);

/* Runs a parameterized statement that must succeed; NULL (and the transaction fails) else. */
PGresult *intake_sql(wasl_pg_t *pg, const char *sql, int n, const char *const *params);

/* Appends an inbound message to an existing ticket with a 'message.received' history event and
 * bumps the ticket's updated_at. Returns 0 or -1. */
int intake_append_message(wasl_pg_t *pg, const char *ticket_id, const intake_contact_t *c,
                          const char *msg_external_id);

#endif
