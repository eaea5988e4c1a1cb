/* wasl_text — UTF-8 validation and folding of every decimal digit (Arabic-Indic, Persian…) to
 * ASCII. */
#include "wasl_text.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/utf8.h>

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
    size_t o = 0;
    int32_t i = 0, n = (int32_t)len;
    const uint8_t *u = (const uint8_t *)s;
    while (i < n) {
        int32_t start = i;
        UChar32 c;
        U8_NEXT(u, i, n, c);
        int32_t digit =
            (c >= 0x80 && u_charType(c) == U_DECIMAL_DIGIT_NUMBER) ? u_charDigitValue(c) : -1;
        if (digit >= 0 && digit <= 9) {
            out[o++] = (char)('0' + digit);
        } else {
            memcpy(out + o, s + start, (size_t)(i - start));
            o += (size_t)(i - start);
        }
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
