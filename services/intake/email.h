/* email — parses one raw RFC 5322 message (GMime) into the fields intake turns into a ticket. */
#ifndef WASL_INTAKE_EMAIL_H
#define WASL_INTAKE_EMAIL_H

#include "authres.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* One attachment's metadata; the content itself is not kept. Plain data. */
typedef struct {
    char *name;      /* UTF-8 (RFC 2231/2047 decoded, directories stripped), may be NULL */
    char *type;      /* lower-cased media type: "application/pdf" */
    size_t size;     /* decoded bytes (the whole content, even when oversized) */
    char sha256[65]; /* hex of the decoded content (libsodium crypto_hash_sha256) */
    bool oversized;  /* size > limits->max_attachment_bytes: recorded, not an error */
} intake_attachment_t;

/* A parsed message. Every string is owned by the struct (malloc'd) and valid UTF-8. */
typedef struct {
    char *message_id; /* without <>; when missing or unusable: "sha256:" + hex of the
                         message (see intake_email_parse) */
    bool message_id_synthesized;
    char *from_addr;      /* lower-cased addr-spec, NULL if none parseable */
    char *from_name;      /* UTF-8 display name or NULL; one line */
    char *subject;        /* decoded to UTF-8; "" if none; one line */
    char *body;           /* UTF-8 text, "" if none: text/plain preferred in
                             multipart/alternative, HTML converted to text, at most
                             max_body_bytes (longer text ends with "\n[…]") */
    char *in_reply_to;    /* first msg-id without <>, or NULL */
    char **references;    /* msg-ids without <>, NULL-terminated, never NULL itself */
    size_t nreferences;   /* at most INTAKE_EMAIL_MAX_REFERENCES */
    char *date;           /* RFC 3339 UTC ("2025-01-31T09:15:00Z") or NULL */
    char *auto_submitted; /* NULL for a person's mail, else the reason (below) */
    char **auth_results;  /* Authentication-Results values, topmost first, unfolded, at most
                             INTAKE_AUTHRES_MAX_FIELDS (see authres.h); judged by intake */
    size_t nauth_results;
    intake_attachment_t *attachments;
    size_t nattachments;
    size_t nparts; /* MIME parts seen, forwarded messages' parts included */
} intake_email_t;

/* The reasons in auto_submitted, checked in this order (the first that applies wins):
 *   "delivery-status"            a bounce: multipart/report; report-type=delivery-status, a
 *                                message/delivery-status part, or a MAILER-DAEMON sender
 *   "disposition-notification"   a read receipt (report-type=disposition-notification or a
 *                                message/disposition-notification part)
 *   "auto-submitted:<value>"     RFC 3834 Auto-Submitted with any value but "no"
 *   "x-auto-response-suppress"   the header with any value but "None" (Exchange/Outlook)
 *   "precedence:<bulk|junk|list>"
 *   "x-loop"
 * List-Id alone is not a reason. */

/* Limits against hostile input. Exceeding one is an error, except the two noted. The first
 * five are checked by intake_email_prescan() on the raw bytes before GMime builds anything. */
typedef struct {
    size_t max_parts;            /* MIME entities in the whole tree (default 100) */
    size_t max_depth;            /* nested multiparts and message/rfc822 (default 8) */
    size_t max_attachment_bytes; /* per attachment (default 10 MiB): NOT an error, the attachment
                                    is recorded with its full size and hash and oversized=true,
                                    so a citizen's mail is never lost over an attachment */
    size_t max_body_bytes;       /* body text (default 64 KiB): NOT an error, the text is cut at
                                    a UTF-8 boundary and ends with "\n[…]" */
    size_t max_header_bytes;     /* raw bytes of each header block, the message's and each
                                    part's (default 64 KiB) */
    size_t max_headers;          /* header fields of all header blocks together (default 1000) */
    size_t max_decoded_bytes;    /* content bytes of all parts together (default 25 MiB). A
                                    transfer encoding never expands (base64, quoted-printable,
                                    uuencode only shrink), so the encoded bytes counted here
                                    bound the decoded ones */
} intake_email_limits_t;
#define INTAKE_EMAIL_LIMITS_DEFAULT                                                                \
    {                                                                                              \
        100, 8, 10u << 20, 64u << 10, 64u << 10, 1000, 25u << 20                                   \
    }

/* Which limit the pre-scan found exceeded. */
typedef enum {
    INTAKE_EMAIL_FITS = 0,
    INTAKE_EMAIL_OVER_PARTS,
    INTAKE_EMAIL_OVER_DEPTH,
    INTAKE_EMAIL_OVER_HEADERS,
    INTAKE_EMAIL_OVER_HEADER_BYTES,
    INTAKE_EMAIL_OVER_DECODED_BYTES,
    INTAKE_EMAIL_NO_MEMORY, /* not the message's fault */
} intake_email_limit_t;

/* What the pre-scan counted (up to where it stopped, when a limit was exceeded). Plain data. */
typedef struct {
    size_t parts;              /* entities GMime would build, at least */
    size_t depth;              /* deepest nesting of multiparts and messages */
    size_t headers;            /* header fields, all blocks */
    size_t header_block_bytes; /* the largest header block */
    size_t content_bytes;      /* content lines (bodies, prefaces, postfaces) */
} intake_email_shape_t;

/* Measures raw[0..len) (a leading mbox "From " line skipped) in one pass without building
 * anything, following GMime's own parsing rules so that the counts are never below what GMime
 * would build: parts, nesting depth, header fields, header block bytes, content bytes. Returns
 * INTAKE_EMAIL_FITS, or the first limit exceeded with a one-line reason in err (the same text
 * intake_email_parse gives); stops scanning there, so a bomb costs only the bytes before the
 * limit. `limits` NULL means INTAKE_EMAIL_LIMITS_DEFAULT; err may be NULL. Allocates only the
 * boundary stack (at most max_depth entries). Thread-safe after intake_email_init(). */
intake_email_limit_t intake_email_prescan(const char *raw, size_t len,
                                          const intake_email_limits_t *limits,
                                          intake_email_shape_t *shape, char *err, size_t errlen);

/* The limit's name for an API answer and a metric label: "max_parts", "max_depth",
 * "max_headers", "max_header_bytes", "max_decoded_bytes" ("" for FITS / NO_MEMORY). */
const char *intake_email_limit_name(intake_email_limit_t limit);

/* References beyond this many keep the first (the thread's root) and the latest ones. */
#define INTAKE_EMAIL_MAX_REFERENCES 100

/* Parses raw[0..len). A leading mbox "From " line (Postfix mailbox_command) is skipped.
 * Returns a new message the caller destroys with intake_email_destroy(), or NULL with a one-line
 * reason in err (e.g. "empty message", "not an RFC 5322 message", "too many MIME parts (max
 * 100)", "MIME nesting too deep (max 8)", "header too large (max 65536 bytes)"). It runs
 * intake_email_prescan() first, so no limit is exceeded inside GMime. `limits` NULL
 * means INTAKE_EMAIL_LIMITS_DEFAULT; err may be NULL. A synthesized message_id hashes the whole
 * message after the "From " line with CRLF read as LF, so a redelivery gets the same id.
 * Never crashes on hostile input. Thread-safe after intake_email_init(). */
intake_email_t *intake_email_parse(const char *raw, size_t len, const intake_email_limits_t *limits,
                                   char *err, size_t errlen);

/* Frees the message and everything in it. Safe twice; NULLs the caller's pointer. */
void intake_email_destroy(intake_email_t **self_p);

/* Call once per process before any parse (g_mime_init, sodium_init); idempotent, thread-safe. */
void intake_email_init(void);

/* g_mime_shutdown, for clean valgrind runs. No parse may run during or after it (until a new
 * intake_email_init()). */
void intake_email_shutdown(void);

/* The attachments as a new jansson array of {name (string or null), type, size, sha256}, plus
 * "oversized": true on an oversized one. NULL on allocation failure. */
json_t *intake_email_attachments_json(const intake_email_t *self);

#endif
