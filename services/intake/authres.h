/* authres — whether a trusted MTA authenticated an email's From (RFC 8601 Authentication-Results).
 */
#ifndef WASL_INTAKE_AUTHRES_H
#define WASL_INTAKE_AUTHRES_H

#include <stdbool.h>
#include <stddef.h>

/* The verdict on one message. */
typedef enum {
    INTAKE_AUTHRES_NONE = 0, /* no Authentication-Results from a trusted authserv-id */
    INTAKE_AUTHRES_FAIL,     /* the trusted MTA's header authenticates nothing aligned with From */
    INTAKE_AUTHRES_PASS,     /* the trusted MTA authenticated the From domain */
} intake_authres_t;

/* The most Authentication-Results fields a message keeps (the topmost ones). */
#define INTAKE_AUTHRES_MAX_FIELDS 16

/* Judges the Authentication-Results field values `values[0..n)`, in header order (topmost
 * first), for a message From `from_addr` (an addr-spec; NULL fails).
 *
 * Only the FIRST field whose authserv-id is listed in `trusted` (comma-separated, case-
 * insensitive; NULL or "" trusts none) counts: the receiving MTA prepends its own, and anything
 * below it — or any field with another authserv-id — may have been written by the sender (the
 * MTA must also delete incoming fields carrying its own authserv-id, as RFC 8601 §5 asks).
 * Within that field, PASS when, with D the domain of from_addr (exact, case-insensitive):
 *   - dmarc=pass, and header.from, when given, is D; or
 *   - dkim=pass with header.d = D (or header.i ending in "@D"): strict alignment; or
 *   - spf=pass with smtp.mailfrom (an address or a domain) in D: strict alignment;
 * and no dmarc=fail anywhere in the field (a DMARC failure vetoes a looser pass). Comments in
 * parentheses and quoted strings are handled; a malformed result is skipped, never trusted.
 *
 * `how` (may be NULL) receives what decided: "dmarc", "dkim", "spf", or why not ("no trusted
 * Authentication-Results", "dmarc=fail", "nothing aligned with From passed"). Pure function,
 * thread-safe; allocates only a working copy of one field at a time. */
intake_authres_t intake_authres_check(const char *const *values, size_t n, const char *trusted,
                                      const char *from_addr, char *how, size_t howlen);

#endif
