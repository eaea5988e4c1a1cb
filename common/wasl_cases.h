/* wasl_cases — asking wasl-caselookup over the bus, for the daemons that ask on behalf of a
 * person (intake for a caller, the desk for an agent): a pool of RPC clients, the request and
 * the JSON of a found answer. caselookup verifies and audits every lookup itself. */
#ifndef WASL_CASES_H
#define WASL_CASES_H

#include "wasl_proto.h"

#include <jansson.h>
#include <stddef.h>

/* The shapes an asker checks before it asks (caselookup verifies the rest): a case number is
 * 10 digits, a national or resident ID 10 digits starting with 1 (citizen) or 2 (resident). */
#define WASL_CASE_NUMBER_DIGITS 10
#define WASL_NATIONAL_ID_DIGITS 10

/* A number as a person typed it: digits of any script (Arabic-Indic, Persian, ASCII…) folded to
 * ASCII, the spaces and dashes people type between groups dropped. Returns a new string of
 * exactly `n` ASCII digits (the caller frees it), or NULL when `text` is NULL, holds anything
 * else, has another count of digits, or memory ran out. */
char *wasl_cases_digits(const char *text, size_t n);

/* True when `nid` is a national or resident ID in ASCII digits (NULL: false). */
bool wasl_cases_national_id_shaped(const char *nid);

/* True when a case number and a national ID, both in ASCII digits as intake stores them on a
 * ticket, make a party caselookup can verify (NULLs: false). */
bool wasl_cases_party_shaped(const char *case_number, const char *national_id);

typedef struct {
    const char *bus;        /* base endpoints; NULL or empty: no bus (every ask answers NULL) */
    const char *bus_stages; /* as wasl_config_bus_client gives them */
    const char *curve_dir;  /* "" or NULL: no CURVE */
    const char *curve_name; /* this daemon's certificate name */
    int timeout_ms;         /* one try's wait for the answer */
    int retries;            /* tries after the first (Lazy Pirate) */
} wasl_cases_config_t;

typedef struct wasl_cases wasl_cases_t;

/* A pool for `cfg` (its strings are copied). No socket is made until the first ask. NULL on
 * allocation failure. */
wasl_cases_t *wasl_cases_new(const wasl_cases_config_t *cfg);
/* Closes every client; safe twice; NULLs the caller's pointer. No ask may be running. */
void wasl_cases_destroy(wasl_cases_t **self_p);
/* Whether a bus is configured at all (false: every ask answers NULL at once). */
bool wasl_cases_configured(const wasl_cases_t *self);

/* What one lookup says (all borrowed; NULL optional fields are left out). */
typedef struct {
    const char *id_prefix;     /* wasl_rpc_request_id's prefix: the asking daemon/channel */
    const char *case_number;   /* ASCII digits */
    const char *verifier_kind; /* "national_id" | "caller_phone" */
    const char *verifier;
    const char *channel; /* as audited: "api", "phone", "desk" … */
    const char *client;  /* as audited: who asks (an intake client, "desk:<agent>") */
    const char *call_id; /* optional */
    const char *caller;  /* optional: a line the network vouched for */
    const char *ticket;  /* optional: the ticket the lookup is for (audited) */
} wasl_cases_ask_t;

/* Asks caselookup (blocking up to timeout_ms * (1 + retries)); thread-safe, one pooled client
 * per concurrent caller. Returns the case.lookup.reply to this request (the caller destroys it),
 * or NULL when there is no bus, a socket or allocation failed, nobody answered in time, or the
 * answer was to something else. */
wasl_msg_t *wasl_cases_ask(wasl_cases_t *self, const wasl_cases_ask_t *a);

/* The JSON of a found reply: {case_number, court, circuit, status, status_ar, next_hearing:
 * null | {utc, local, hijri: {year, month, day, month_name_ar}, text_ar, text_en}, updates,
 * speech_ar, speech_en} (new reference; NULL on allocation failure). */
json_t *wasl_cases_found_json(const wasl_msg_case_lookup_reply_t *r);

#endif
