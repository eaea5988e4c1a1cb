/* wasl_log — JSON-lines logging to stderr, with masking of phone numbers and national IDs. */
#ifndef WASL_LOG_H
#define WASL_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

typedef enum { WASL_LOG_DEBUG = 0, WASL_LOG_INFO, WASL_LOG_WARN, WASL_LOG_ERROR } wasl_log_level_t;

/* The words for WASL_LOG_LEVEL, in enum order (for wasl_config_enum). */
#define WASL_LOG_LEVELS "debug|info|warn|error"

/* Sets the service name written on every line and the lowest level written. The name is
 * borrowed. Default before init: service "wasl", level info, stream stderr. */
void wasl_log_init(const char *service, wasl_log_level_t min_level);

/* Redirects output (tests). NULL restores stderr. The stream is borrowed. */
void wasl_log_set_stream(FILE *stream);

/* Writes one line: {"ts","level","service","pid","msg", ...fields}. `fields` is a jansson
 * json_pack() object format (e.g. "{s:s, s:i}") followed by its arguments, or NULL.
 * String values under sensitive keys (phone, national_id, from, to, caller, msisdn,
 * recipient, email, employee_id, verifier, callee, ani, digits) are masked with
 * wasl_mask_pii (e-mail addresses with wasl_mask_email), and digit runs in "error" and
 * "detail" with wasl_mask_text, before writing. Thread-safe; a pack
 * error is itself logged instead of the fields. */
void wasl_log(wasl_log_level_t level, const char *msg, const char *fields, ...);
void wasl_logv(wasl_log_level_t level, const char *msg, const char *fields, va_list ap);

#define wasl_debug(...) wasl_log(WASL_LOG_DEBUG, __VA_ARGS__)
#define wasl_info(...)  wasl_log(WASL_LOG_INFO, __VA_ARGS__)
#define wasl_warn(...)  wasl_log(WASL_LOG_WARN, __VA_ARGS__)
#define wasl_error(...) wasl_log(WASL_LOG_ERROR, __VA_ARGS__)

/* Formats an error for a caller that passed a buffer (err, cap bytes) to receive one; does
 * nothing when err is NULL or cap is 0. For the "char *err, size_t errlen" convention of
 * functions that report why they failed without logging it. */
void wasl_set_err(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* How many trailing digits of an identifier a mask keeps (enough for a person to tell two of
 * their own numbers apart, never enough to look one up). */
#define WASL_MASK_KEEP_DIGITS 2

/* The one mask of personal identifiers — phone numbers, national/resident IDs, employee IDs,
 * whatever key they are logged or stored under: every digit (ASCII, Arabic-Indic, Persian) but
 * the last WASL_MASK_KEEP_DIGITS becomes '*', and so does every letter or other character of
 * any script; '+', spaces, dashes and other ASCII punctuation are kept for the shape. A value
 * with fewer than 7 digits keeps none. "+966512345678" -> "+**********78", "1012345678" ->
 * "********78", "٠٥٥١٢٣٤٥٦٧" -> "********٦٧". Writes a NUL-terminated string of at most cap-1
 * bytes into out (a kept multi-byte digit is never cut) and returns out; NULL in gives "". */
char *wasl_mask_pii(const char *in, char *out, size_t cap);

/* The same mask as wasl_mask_pii (one rule for every identifier; these names say at the call
 * site what is being masked). */
char *wasl_mask_phone(const char *in, char *out, size_t cap);
char *wasl_mask_id(const char *in, char *out, size_t cap);

/* Masks an email address: "ahmed@example.sa" -> "a***@example.sa". */
char *wasl_mask_email(const char *in, char *out, size_t cap);

/* Masks, inside free text, every run of 7 or more digits (ASCII, Arabic-Indic or Persian,
 * optionally with a leading '+'), keeping its last WASL_MASK_KEEP_DIGITS digits. Log fields
 * "error" and "detail" go through it. Returns a new string the caller
 * frees, or NULL on allocation failure. */
char *wasl_mask_text(const char *in);

#endif
