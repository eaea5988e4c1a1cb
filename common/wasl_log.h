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
 * recipient, email, employee_id, verifier) are masked before writing. Thread-safe; a pack
 * error is itself logged instead of the fields. */
void wasl_log(wasl_log_level_t level, const char *msg, const char *fields, ...);
void wasl_logv(wasl_log_level_t level, const char *msg, const char *fields, va_list ap);

#define wasl_debug(...) wasl_log(WASL_LOG_DEBUG, __VA_ARGS__)
#define wasl_info(...)  wasl_log(WASL_LOG_INFO, __VA_ARGS__)
#define wasl_warn(...)  wasl_log(WASL_LOG_WARN, __VA_ARGS__)
#define wasl_error(...) wasl_log(WASL_LOG_ERROR, __VA_ARGS__)

/* Masks a phone number, keeping a leading '+', the country/operator prefix (first 4 digits)
 * and the last 2 digits: "+966512345678" -> "+9665******78". Writes a NUL-terminated string
 * of at most cap-1 bytes into out and returns out. Non-digit characters are kept. */
char *wasl_mask_phone(const char *in, char *out, size_t cap);

/* Masks a national/resident ID or any identifier: keeps the first and the last 2
 * characters: "1012345678" -> "1*******78". Short inputs (< 5) become all '*'. */
char *wasl_mask_id(const char *in, char *out, size_t cap);

/* Masks an email address: "ahmed@example.sa" -> "a***@example.sa". */
char *wasl_mask_email(const char *in, char *out, size_t cap);

/* Masks, inside free text, every run of 7 or more digits (ASCII, Arabic-Indic or Persian,
 * optionally with a leading '+'), keeping its last 2 digits. Returns a new string the caller
 * frees, or NULL on allocation failure. */
char *wasl_mask_text(const char *in);

#endif
