/* wasl_text — the one UTF-8 decoder, validation and sanitizing, and folding of every decimal
 * digit (Arabic-Indic, Persian…) to ASCII. */
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

/* U+FFFD REPLACEMENT CHARACTER: the code point and its UTF-8 bytes. */
#define WASL_UTF8_REPLACEMENT_CP 0xFFFDu
#define WASL_UTF8_REPLACEMENT    "\xEF\xBF\xBD"

/* The one UTF-8 decoder: decodes the code point at s[0..left) (left >= 1) into *cp and returns
 * how many bytes it takes (1..4). Every other module decodes through it (or validates first
 * with wasl_utf8_valid), so that all agree on what is a character.
 * Invalid input: "U+FFFD substitution of maximal subparts", the practice the Unicode standard
 * recommends (chapter 3, "U+FFFD Substitution of Maximal Subparts") and ICU and the WHATWG
 * encoding standard follow. An ill-formed sequence gives *cp = U+FFFD and consumes its maximal
 * subpart: the longest start of a well-formed sequence (wasl_utf8_seq_len's prefix), at least
 * one byte. So truncated "\xE2\x82" is one U+FFFD; overlong "\xC0\xAF", surrogate
 * "\xED\xA0\x80" and "\xF4\x90\x80\x80" (above U+10FFFF) are one U+FFFD per byte; a lone
 * continuation byte is one. *ill_formed (may be NULL) tells a replacement from a U+FFFD that
 * was in the text. NUL decodes as U+0000 like any character. */
size_t wasl_utf8_decode(const char *s, size_t left, uint32_t *cp, bool *ill_formed);

/* Copies s[0..len) with each maximal ill-formed subpart replaced by U+FFFD (the policy of
 * wasl_utf8_decode): a new NUL-terminated string the caller frees, its length in *out_len
 * (may be NULL). NUL bytes are kept. NULL on allocation failure. For text shown to people or
 * searched (a careless mailer's body); an identifier or a reference is refused instead. */
char *wasl_utf8_sanitize(const char *s, size_t len, size_t *out_len);

/* The largest length <= max that does not split a UTF-8 sequence of s[0..len): where to cut a
 * text that must fit max bytes. len when len <= max. */
size_t wasl_utf8_cut(const char *s, size_t len, size_t max);

/* Offset of the first occurrence of needle (NUL-terminated, ASCII letters compared without
 * case) in s[0..n), or n when there is none. For markup and header values, where "charset=",
 * "</SCRIPT" and "Octet-Stream" are all the same word; s may hold NULs and need not end. */
size_t wasl_ascii_find_ci(const char *s, size_t n, const char *needle);

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
