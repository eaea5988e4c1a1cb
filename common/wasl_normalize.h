/* wasl_normalize — the one text normalization used to build classifier features, at training
 * and at inference: Arabic orthographic variants folded, digits to ASCII, punctuation to spaces.
 * Stored and displayed text is never normalized; this makes feature keys only. */
#ifndef WASL_NORMALIZE_H
#define WASL_NORMALIZE_H

#include <stddef.h>

/* The steps, applied in this order; each can be switched off (tests check them one by one). */
typedef enum {
    WASL_NORM_NFKC_CASEFOLD = 1 << 0, /* ICU NFKC_Casefold: presentation forms, ligatures, case */
    WASL_NORM_DIGITS = 1 << 1,        /* every decimal digit (Nd) to ASCII 0-9 */
    WASL_NORM_STRIP_MARKS = 1 << 2,   /* tashkeel U+064B-065F, superscript alef U+0670, tatweel
                                         U+0640, Quranic marks U+06D6-06ED */
    WASL_NORM_ALEF = 1 << 3,          /* آ أ إ ٱ ٲ ٳ -> ا */
    WASL_NORM_YEH = 1 << 4,           /* ى and Farsi ی -> ي; Farsi ک -> ك */
    WASL_NORM_TEH_MARBUTA = 1 << 5,   /* ة -> ه */
    WASL_NORM_HAMZA_SEAT = 1 << 6,    /* ؤ ئ -> ء */
    WASL_NORM_SEPARATORS = 1 << 7,    /* anything not a letter or digit (Arabic punctuation
                                         ، ؛ ؟ « » included) -> one space; trimmed */
    WASL_NORM_CAP_REPEATS = 1 << 8,   /* a letter repeated more than twice -> twice */
    WASL_NORM_ALL = 0x1ff
} wasl_norm_step_t;

/* The most times a letter may repeat after WASL_NORM_CAP_REPEATS. */
#define WASL_NORM_MAX_REPEAT 2

/* Returns the normalized form of text[0..len) as a new UTF-8 string the caller frees, applying
 * the steps in `steps`. NULL when the input is not valid UTF-8 or on allocation failure. */
char *wasl_normalize_ex(const char *text, size_t len, unsigned steps);

/* wasl_normalize_ex with every step: the feature key of a text. */
char *wasl_normalize(const char *text, size_t len);

/* Arabizi digits to the Arabic letters they stand for (2 ء, 3 ع, 5 خ, 6 ط, 7 ح, 9 ق), inside
 * words that have a Latin letter only ("m3een" -> "mعeen", "ft7" -> "ftح"): a run of digits
 * alone — a case number, a date, an amount — is never touched. `norm` is a normalized text
 * (words separated by spaces, digits ASCII). Returns a new string the caller frees, or NULL
 * on allocation failure. Used for the urgent cues, whose Arabizi forms go through it too. */
char *wasl_arabizi(const char *norm);

#endif
