/* wasl_ref — ticket references: 2-digit year + 7-digit sequence + a Verhoeff check digit. */
#ifndef WASL_REF_H
#define WASL_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A reference is YY SSSSSSS C: 10 ASCII digits, e.g. "2600000018" (year 26, ticket 1). */
#define WASL_REF_LEN      10
#define WASL_REF_YEAR_MAX 99
#define WASL_REF_SEQ_MAX  9999999u

/* Returns the Verhoeff check digit (0..9) of digits[0..len), or -1 when len is 0 or a
 * character is not an ASCII digit. Verhoeff catches every single-digit substitution and
 * every transposition of adjacent digits, which a mod-10 sum does not. */
int wasl_verhoeff_check_digit(const char *digits, size_t len);

/* True when digits[0..len) are ASCII digits, len >= 2, and the last digit is the check digit
 * of the ones before it. */
bool wasl_verhoeff_valid(const char *digits, size_t len);

/* Formats year2 (0..99) and seq (0..9999999) as a reference into out (11 bytes incl. NUL).
 * Returns 0, or -1 with out = "" when either is out of range. */
int wasl_ref_format(int year2, uint32_t seq, char out[WASL_REF_LEN + 1]);

typedef enum {
    WASL_REF_OK = 0,
    WASL_REF_EMPTY,      /* nothing but separators (or NULL) */
    WASL_REF_BAD_CHAR,   /* a character that is not a digit or a separator, or invalid UTF-8 */
    WASL_REF_BAD_LENGTH, /* not exactly 10 digits */
    WASL_REF_BAD_CHECK   /* 10 digits, but the check digit is wrong */
} wasl_ref_status_t;

/* Parses a reference as a person typed it. Accepted: digits of any script (Unicode Nd:
 * ASCII, Arabic-Indic U+0660.., Persian U+06F0.., ...), folded with wasl_fold_digits;
 * ignored anywhere: spaces (U+0020, tab, CR, LF, U+00A0, U+2007, U+2009, U+202F), dashes
 * ('-', U+2010..U+2015, U+2212) and bidi controls (U+200E, U+200F, U+061C, U+202A..U+202E,
 * U+2066..U+2069); one '#' before the first digit is ignored. The first that applies wins:
 * BAD_CHAR (invalid UTF-8 included), EMPTY (no digit at all, e.g. "" or "#"), BAD_LENGTH,
 * BAD_CHECK.
 * Returns WASL_REF_OK and writes the canonical 10 ASCII digits + NUL into out; on any
 * other status out = "". text may be NULL (WASL_REF_EMPTY); out must not be NULL.
 * An allocation failure is logged and reported as WASL_REF_BAD_CHAR. */
wasl_ref_status_t wasl_ref_parse(const char *text, char out[WASL_REF_LEN + 1]);

/* Returns a static English sentence for an API error message, e.g. "the check digit is wrong:
 * the reference was mistyped". Never NULL, also for an unknown status. */
const char *wasl_ref_strerror(wasl_ref_status_t status);

/* Finds every valid reference inside free text (an email body, an SMS): a run of exactly 10
 * digits of any script, not touching another digit, whose check digit is right. Runs broken
 * by spaces or dashes are not joined: in prose they are more often phone numbers or dates.
 * Calls fn(ref, arg) for each in text order, ref being the 10 ASCII digits + NUL, borrowed
 * for the call only; fn may be NULL to just count. Invalid UTF-8 bytes count as separators.
 * Returns how many were found; 0 for NULL text or on allocation failure (logged). */
size_t wasl_ref_find(const char *text, void (*fn)(const char *ref, void *arg), void *arg);

#endif
