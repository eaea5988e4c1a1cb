/* mailgate — hands one message from an MTA to intake over HTTP and maps the answer to sysexits. */
#ifndef WASL_MAILGATE_H
#define WASL_MAILGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define MAILGATE_URL_DEFAULT        "http://127.0.0.1:8080"
#define MAILGATE_PATH               "/v1/email/inbound"
#define MAILGATE_MAX_BYTES_DEFAULT  (25u << 20)
#define MAILGATE_CONNECT_TIMEOUT_MS 5000
#define MAILGATE_TIMEOUT_MS         30000
/* Most of intake's answer kept for the diagnostic line. */
#define MAILGATE_REPLY_MAX 65536
/* Longest error message quoted in the diagnostic line. */
#define MAILGATE_DIAG_MESSAGE_MAX 300

typedef struct {
    const char *url;   /* base URL of intake, borrowed; MAILGATE_PATH is appended */
    const char *token; /* bearer token, borrowed; NULL or "" sends no Authorization */
    long connect_timeout_ms;
    long timeout_ms;
} mailgate_opts_t;

/* Reads all of `in` into a new buffer (*buf, the caller frees; NUL-terminated for convenience).
 * Returns 0, 1 when the input is longer than max_bytes (nothing returned), or -1 on a read or
 * allocation error. */
int mailgate_read_all(FILE *in, size_t max_bytes, char **buf, size_t *len);

/* The sysexits code for intake's HTTP status (0: no answer at all):
 * 2xx → EX_OK; 5xx, 429, 408, 401, 403, no answer, anything else unexpected → EX_TEMPFAIL
 * (the MTA keeps the message and retries: an outage or a credential problem on our side must
 * not bounce a citizen's mail); other 4xx → EX_DATAERR (intake rejected this message). */
int mailgate_exit_code(long status);

/* POSTs msg[0..len) to opts->url + MAILGATE_PATH as message/rfc822. Returns the exit code (as
 * mailgate_exit_code) and, on failure, a one-line reason in diag (HTTP status and intake's error
 * message, or the transport error). Never prints the token. */
int mailgate_post(const mailgate_opts_t *opts, const char *msg, size_t len, char *diag,
                  size_t diaglen);

/* The "message" (and "code") of an intake error body {"error":{"code","message",...}} as one
 * printable line in out, or the body's first line when it is not that JSON. */
void mailgate_error_summary(const char *body, size_t len, char *out, size_t outlen);

#endif
