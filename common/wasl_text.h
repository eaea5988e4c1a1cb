/* wasl_text — UTF-8 validation and folding of every decimal digit (Arabic-Indic, Persian…) to
 * ASCII. */
#ifndef WASL_TEXT_H
#define WASL_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..len) is well-formed UTF-8: no overlong forms, no surrogates, nothing above
 * U+10FFFF, no truncated sequence. NUL bytes are allowed only when allow_nul is true. */
bool wasl_utf8_valid(const char *s, size_t len, bool allow_nul);

/* Copies s[0..len) replacing every Unicode decimal digit (general category Nd: Arabic-Indic
 * U+0660.., Extended Arabic-Indic/Persian U+06F0.., and the rest) by its ASCII digit.
 * Returns a new NUL-terminated string the caller frees, or NULL when s is not valid UTF-8 or
 * on allocation failure. The result is never longer than the input. */
char *wasl_fold_digits(const char *s, size_t len);

/* Parses an unsigned decimal number typed by a person: ASCII or any Nd digits, surrounding
 * white space ignored. Returns 0 and stores the value, or -1 when the text is empty, has
 * another character, or does not fit in 63 bits. */
int wasl_parse_number(const char *s, long long *value);

#endif
