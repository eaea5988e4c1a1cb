/* wasl_text — UTF-8 validation and folding of every decimal digit (Arabic-Indic, Persian…) to
 * ASCII. */
#ifndef WASL_TEXT_H
#define WASL_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when s[0..len) is well-formed UTF-8: no overlong forms, no surrogates, nothing above
 * U+10FFFF, no truncated sequence. NUL bytes are allowed only when allow_nul is true. */
bool wasl_utf8_valid(const char *s, size_t len, bool allow_nul);

/* Length of the well-formed UTF-8 sequence at p[0..left), or 0 when it is not one (Table 3-7
 * of the Unicode standard: no overlongs, surrogates or values above U+10FFFF). `*prefix`
 * receives how many bytes form a valid prefix (at least 1), so that a sanitizer can replace
 * each maximal ill-formed subpart with one U+FFFD. left must be at least 1. */
size_t wasl_utf8_seq_len(const unsigned char *p, size_t left, size_t *prefix);

/* True for the characters people type inside numbers (references, phone numbers, IDs) that
 * carry no digit: spaces of every width, dashes and minus, and the invisible direction marks
 * Arabic keyboards and copy-paste put around digits. */
bool wasl_is_number_separator(int32_t c);

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
