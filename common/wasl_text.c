/* wasl_text — the one UTF-8 decoder, validation and sanitizing, and folding of every decimal
 * digit (Arabic-Indic, Persian…) to ASCII. */
#include "wasl_text.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>

size_t wasl_utf8_seq_len(const unsigned char *p, size_t left, size_t *prefix)
{
    unsigned char c = p[0];
    *prefix = 1;
    if (c < 0x80) {
        return 1;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* no overlongs */
        hi = c == 0xED ? 0x9F : 0xBF; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    for (size_t k = 1; k <= need; k++) {
        if (k >= left) {
            return 0;
        }
        unsigned char lower = k == 1 ? lo : 0x80, upper = k == 1 ? hi : 0xBF;
        if (p[k] < lower || p[k] > upper) {
            return 0;
        }
        *prefix = k + 1;
    }
    return need + 1;
}

size_t wasl_utf8_decode(const char *s, size_t left, uint32_t *cp, bool *ill_formed)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t prefix;
    size_t n = wasl_utf8_seq_len(p, left, &prefix);
    if (ill_formed) {
        *ill_formed = n == 0;
    }
    switch (n) {
    case 0:
        *cp = WASL_UTF8_REPLACEMENT_CP;
        return prefix;
    case 1:
        *cp = p[0];
        break;
    case 2:
        *cp = ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3Fu);
        break;
    case 3:
        *cp = ((uint32_t)(p[0] & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3Fu);
        break;
    default:
        *cp = ((uint32_t)(p[0] & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) |
              ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3Fu);
        break;
    }
    return n;
}

char *wasl_utf8_sanitize(const char *s, size_t len, size_t *out_len)
{
    /* Each replaced subpart is at least one byte and becomes three: the result is at most 3x. */
    if (len > (SIZE_MAX - 1) / 3) {
        return NULL;
    }
    char *out = malloc(3 * len + 1);
    if (!out) {
        return NULL;
    }
    size_t i = 0, o = 0;
    while (i < len) {
        uint32_t cp;
        bool bad;
        size_t n = wasl_utf8_decode(s + i, len - i, &cp, &bad);
        if (bad) {
            memcpy(out + o, WASL_UTF8_REPLACEMENT, 3);
            o += 3;
        } else {
            memcpy(out + o, s + i, n);
            o += n;
        }
        i += n;
    }
    out[o] = '\0';
    if (out_len) {
        *out_len = o;
    }
    return out;
}

bool wasl_utf8_valid(const char *s, size_t len, bool allow_nul)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, prefix;
    while (i < len) {
        if (p[i] == 0 && !allow_nul) {
            return false;
        }
        size_t n = wasl_utf8_seq_len(p + i, len - i, &prefix);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

size_t wasl_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max) {
        return len;
    }
    size_t cut = max;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) {
        cut--;
    }
    return cut;
}

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

size_t wasl_ascii_find_ci(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++) {
        size_t j = 0;
        while (j < k &&
               ascii_lower((unsigned char)s[i + j]) == ascii_lower((unsigned char)needle[j])) {
            j++;
        }
        if (j == k) {
            return i;
        }
    }
    return n;
}

bool wasl_is_number_separator(int32_t c)
{
    switch (c) {
    case ' ':
    case '\t':
    case '\r':
    case '\n':
    case 0x00A0: /* no-break space */
    case 0x2007: /* figure space */
    case 0x2009: /* thin space */
    case 0x202F: /* narrow no-break space */
    case '-':
    case 0x2212: /* minus sign */
    case 0x061C: /* Arabic letter mark */
    case 0x200E: /* left-to-right mark */
    case 0x200F: /* right-to-left mark */
        return true;
    default:
        return (c >= 0x2010 && c <= 0x2015)     /* hyphen .. horizontal bar */
               || (c >= 0x202A && c <= 0x202E)  /* bidi embeddings and overrides */
               || (c >= 0x2066 && c <= 0x2069); /* bidi isolates */
    }
}

char *wasl_fold_digits(const char *s, size_t len)
{
    if (!wasl_utf8_valid(s, len, false) || len > INT32_MAX) {
        return NULL;
    }
    char *out = malloc(len + 1);
    if (!out) {
        return NULL;
    }
    size_t o = 0, i = 0;
    while (i < len) {
        uint32_t c;
        size_t n = wasl_utf8_decode(s + i, len - i, &c, NULL); /* valid: checked above */
        int32_t digit = (c >= 0x80 && u_charType((UChar32)c) == U_DECIMAL_DIGIT_NUMBER)
                            ? u_charDigitValue((UChar32)c)
                            : -1;
        if (digit >= 0 && digit <= 9) {
            out[o++] = (char)('0' + digit);
        } else {
            memcpy(out + o, s + i, n);
            o += n;
        }
        i += n;
    }
    out[o] = '\0';
    return out;
}

int wasl_parse_number(const char *s, long long *value)
{
    if (!s) {
        return -1;
    }
    char *folded = wasl_fold_digits(s, strlen(s));
    if (!folded) {
        return -1;
    }
    const char *p = folded;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
        p++;
    }
    long long v = 0;
    int ndigits = 0;
    while (*p >= '0' && *p <= '9') {
        int d = *p - '0';
        if (v > (LLONG_MAX - d) / 10) {
            free(folded);
            return -1;
        }
        v = v * 10 + d;
        ndigits++;
        p++;
    }
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
        p++;
    }
    int rc = (ndigits > 0 && *p == '\0') ? 0 : -1;
    free(folded);
    if (rc == 0) {
        *value = v;
    }
    return rc;
}
