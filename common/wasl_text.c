/* wasl_text — UTF-8 validation and folding of every decimal digit (Arabic-Indic, Persian…) to
 * ASCII. */
#include "wasl_text.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/utf8.h>

bool wasl_utf8_valid(const char *s, size_t len, bool allow_nul)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if (c == 0 && !allow_nul) {
                return false;
            }
            i++;
            continue;
        }
        /* Table 3-7 of the Unicode standard: the well-formed byte sequences. */
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) {
                lo = 0xA0; /* no overlongs */
            } else if (c == 0xED) {
                hi = 0x9F; /* no surrogates */
            }
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) {
                lo = 0x90;
            } else if (c == 0xF4) {
                hi = 0x8F; /* nothing above U+10FFFF */
            }
        } else {
            return false;
        }
        if (len - i <= need) {
            return false;
        }
        if (p[i + 1] < lo || p[i + 1] > hi) {
            return false;
        }
        for (size_t k = 2; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80) {
                return false;
            }
        }
        i += need + 1;
    }
    return true;
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
