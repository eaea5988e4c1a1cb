/* wasl_normalize — the one text normalization used to build classifier features, at training
 * and at inference: Arabic orthographic variants folded, digits to ASCII, punctuation to spaces. */
#include "wasl_normalize.h"
#include "wasl_text.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utf8.h>

static bool is_mark_to_strip(UChar32 c)
{
    return (c >= 0x064B && c <= 0x065F) || c == 0x0670 || c == 0x0640 ||
           (c >= 0x06D6 && c <= 0x06DC) || (c >= 0x06DF && c <= 0x06E8) ||
           (c >= 0x06EA && c <= 0x06ED);
}

/* ICU's answers for the code points below U+0700 (Latin, Arabic: nearly every character of a
 * contact), asked once: asking ICU for each character was a tenth of classifying. Above, ICU
 * is asked directly. The answers are ICU's either way. */
#define PROPS_CACHED 0x0700
enum { PROP_ALNUM = 1, PROP_ALPHA = 2, PROP_NSM = 4 };
static struct {
    int8_t digit; /* the Nd digit value, or -1 */
    uint8_t flags;
} props[PROPS_CACHED];
static pthread_once_t props_once = PTHREAD_ONCE_INIT;

static void props_init(void)
{
    for (UChar32 c = 0; c < PROPS_CACHED; c++) {
        props[c].digit =
            (int8_t)(u_charType(c) == U_DECIMAL_DIGIT_NUMBER ? u_charDigitValue(c) : -1);
        props[c].flags =
            (uint8_t)((u_isalnum(c) ? PROP_ALNUM : 0) | (u_isalpha(c) ? PROP_ALPHA : 0) |
                      (u_getIntPropertyValue(c, UCHAR_GENERAL_CATEGORY) == U_NON_SPACING_MARK
                           ? PROP_NSM
                           : 0));
    }
}

/* The decimal digit value of c when it is an Nd digit, else -1. */
static int32_t digit_of(UChar32 c)
{
    if (c >= 0 && c < PROPS_CACHED) {
        return props[c].digit;
    }
    return u_charType(c) == U_DECIMAL_DIGIT_NUMBER ? u_charDigitValue(c) : -1;
}

static bool has_prop(UChar32 c, int prop)
{
    if (c >= 0 && c < PROPS_CACHED) {
        return props[c].flags & prop;
    }
    switch (prop) {
    case PROP_ALNUM:
        return u_isalnum(c);
    case PROP_ALPHA:
        return u_isalpha(c);
    default:
        return u_getIntPropertyValue(c, UCHAR_GENERAL_CATEGORY) == U_NON_SPACING_MARK;
    }
}

/* The letter-level maps; returns the replacement of c (c itself when none applies). */
static UChar32 map_letter(UChar32 c, unsigned steps)
{
    if (steps & WASL_NORM_ALEF) {
        if (c == 0x0622 || c == 0x0623 || c == 0x0625 || c == 0x0671 || c == 0x0672 ||
            c == 0x0673) {
            return 0x0627;
        }
    }
    if (steps & WASL_NORM_YEH) {
        if (c == 0x0649 || c == 0x06CC) {
            return 0x064A;
        }
        if (c == 0x06A9) {
            return 0x0643;
        }
    }
    if ((steps & WASL_NORM_TEH_MARBUTA) && c == 0x0629) {
        return 0x0647;
    }
    if ((steps & WASL_NORM_HAMZA_SEAT) && (c == 0x0624 || c == 0x0626)) {
        return 0x0621;
    }
    return c;
}

/* NFKC_Casefold of the UTF-16 text; returns a new buffer and its length, NULL with *out_len
 * = n when the text is already in that form (most contacts: lower-case Arabic; normalizing
 * them anyway was a tenth of the time of classifying), or NULL with *out_len = -1 on error. */
static UChar *casefold(const UChar *in, int32_t n, int32_t *out_len)
{
    UErrorCode err = U_ZERO_ERROR;
    *out_len = -1;
    const UNormalizer2 *nfkc = unorm2_getNFKCCasefoldInstance(&err);
    if (U_FAILURE(err)) {
        return NULL;
    }
    if (unorm2_spanQuickCheckYes(nfkc, in, n, &err) == n && U_SUCCESS(err)) {
        *out_len = n;
        return NULL;
    }
    err = U_ZERO_ERROR;
    /* Casefolding and compatibility decomposition can grow the text; ask ICU for the size. */
    int32_t need = unorm2_normalize(nfkc, in, n, NULL, 0, &err);
    if (err != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(err)) {
        return NULL;
    }
    err = U_ZERO_ERROR;
    UChar *out = malloc(((size_t)need + 1) * sizeof(UChar));
    if (!out) {
        return NULL;
    }
    unorm2_normalize(nfkc, in, n, out, need + 1, &err);
    if (U_FAILURE(err)) {
        free(out);
        return NULL;
    }
    *out_len = need;
    return out;
}

/* UTF-8 -> UTF-16 for ICU: a new buffer (the caller frees it) of *n16 units plus a NUL, or NULL
 * when the text cannot be converted or memory is short. */
static UChar *to_utf16(const char *text, size_t len, int32_t *n16)
{
    UErrorCode err = U_ZERO_ERROR;
    u_strFromUTF8(NULL, 0, n16, text, (int32_t)len, &err);
    if (err != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(err)) {
        return NULL;
    }
    err = U_ZERO_ERROR;
    UChar *u16 = malloc(((size_t)*n16 + 1) * sizeof(UChar));
    if (!u16) {
        return NULL;
    }
    u_strFromUTF8(u16, *n16 + 1, NULL, text, (int32_t)len, &err);
    if (U_FAILURE(err)) {
        free(u16);
        return NULL;
    }
    return u16;
}

char *wasl_normalize_ex(const char *text, size_t len, unsigned steps)
{
    if (!text || len > INT32_MAX / 4 || !wasl_utf8_valid(text, len, false)) {
        return NULL;
    }
    int32_t n16 = 0;
    UChar *u16 = to_utf16(text, len, &n16);
    if (!u16) {
        return NULL;
    }
    if (steps & WASL_NORM_NFKC_CASEFOLD) {
        int32_t folded_len = 0;
        UChar *folded = casefold(u16, n16, &folded_len);
        if (folded) {
            free(u16);
            u16 = folded;
            n16 = folded_len;
        } else if (folded_len < 0) {
            free(u16);
            return NULL;
        }
    }
    /* Each UTF-16 unit becomes at most 3 UTF-8 bytes; the maps never lengthen the text. */
    size_t cap = (size_t)n16 * 3 + 1;
    char *out = malloc(cap);
    if (!out) {
        free(u16);
        return NULL;
    }
    pthread_once(&props_once, props_init);
    size_t o = 0;
    UChar32 last = -1;
    int repeats = 0;
    bool pending_space = false;
    for (int32_t i = 0; i < n16;) {
        UChar32 c;
        U16_NEXT(u16, i, n16, c);
        if ((steps & WASL_NORM_STRIP_MARKS) && is_mark_to_strip(c)) {
            continue;
        }
        if ((steps & WASL_NORM_DIGITS) && c >= 0x80) {
            int32_t d = digit_of(c);
            if (d >= 0 && d <= 9) {
                c = '0' + d;
            }
        }
        c = map_letter(c, steps);
        if (steps & WASL_NORM_SEPARATORS) {
            bool keep = has_prop(c, PROP_ALNUM) ||
                        (has_prop(c, PROP_NSM) && !(steps & WASL_NORM_STRIP_MARKS));
            if (!keep) {
                pending_space = o > 0;
                last = -1;
                continue;
            }
            if (pending_space) {
                out[o++] = ' ';
                pending_space = false;
            }
        }
        if (steps & WASL_NORM_CAP_REPEATS) {
            if (c == last && has_prop(c, PROP_ALPHA)) {
                if (++repeats >= WASL_NORM_MAX_REPEAT) {
                    continue;
                }
            } else {
                repeats = 0;
            }
            last = c;
        }
        U8_APPEND_UNSAFE(out, o, c);
    }
    out[o] = '\0';
    free(u16);
    return out;
}

char *wasl_normalize(const char *text, size_t len)
{
    return wasl_normalize_ex(text, len, WASL_NORM_ALL);
}

/* Arabizi writes the Arabic letters Latin lacks with digits that look like them. */
static const char *arabizi_letter(char d)
{
    switch (d) {
    case '2':
        return "\xD8\xA1"; /* ء */
    case '3':
        return "\xD8\xB9"; /* ع */
    case '5':
        return "\xD8\xAE"; /* خ */
    case '6':
        return "\xD8\xB7"; /* ط */
    case '7':
        return "\xD8\xAD"; /* ح */
    case '9':
        return "\xD9\x82"; /* ق */
    default:
        return NULL;
    }
}

/* True when the space-delimited word around norm[i] has an ASCII letter: only such words are
 * Arabizi; a run of digits alone (a case number, a date, an amount) is left as written. */
static bool word_has_latin(const char *word, size_t wlen)
{
    for (size_t i = 0; i < wlen; i++) {
        if ((word[i] >= 'a' && word[i] <= 'z') || (word[i] >= 'A' && word[i] <= 'Z')) {
            return true;
        }
    }
    return false;
}

char *wasl_arabizi(const char *norm)
{
    size_t len = strlen(norm);
    char *out = malloc(2 * len + 1); /* each digit becomes at most two bytes */
    if (!out) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t end = i;
        while (end < len && norm[end] != ' ') {
            end++;
        }
        bool latin = word_has_latin(norm + i, end - i);
        for (; i < end; i++) {
            const char *ar = latin ? arabizi_letter(norm[i]) : NULL;
            if (ar) {
                memcpy(out + o, ar, 2);
                o += 2;
            } else {
                out[o++] = norm[i];
            }
        }
        while (i < len && norm[i] == ' ') {
            out[o++] = norm[i++];
        }
    }
    out[o] = '\0';
    return out;
}
