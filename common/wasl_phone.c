/* wasl_phone — phone numbers as people type them and gateways send them, normalized to E.164. */
#include "wasl_phone.h"

#include "wasl_log.h"
#include "wasl_text.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/utf8.h>

#define E164_MIN_DIGITS 8
#define E164_MAX_DIGITS 15
#define CC_MAX_DIGITS   3
/* Digits kept while scanning: an E.164 number plus "00" and a stray trunk '0'. Anything
 * longer is invalid whatever its form. */
#define SCAN_MAX_DIGITS (E164_MAX_DIGITS + 3)

#define SA_CC            "966"
#define SA_NSN_DIGITS    9
#define SA_MOBILE_LEAD   '5'
#define SA_LANDLINE_LEAD '1'
#define SA_AREA_CODES    "123467" /* second digit of 1AXXXXXXX */

static bool is_ascii_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool all_digits(const char *s)
{
    for (; *s; s++) {
        if (!is_ascii_digit(*s)) {
            return false;
        }
    }
    return true;
}

/* Punctuation that phone numbers are written with and that carries no digits: what any number
 * may contain, plus dots and parentheses. */
static bool phone_ignorable(UChar32 c)
{
    return wasl_is_number_separator(c) || c == '.' || c == '(' || c == ')';
}

/* A calling code is 1..3 ASCII digits, the first not 0. */
static bool cc_valid(const char *cc)
{
    size_t len = strlen(cc);
    return len >= 1 && len <= CC_MAX_DIGITS && cc[0] != '0' && all_digits(cc);
}

/* Folds text and keeps its digits in digits[] (NUL-terminated). Returns 0, or -1 when text
 * is not valid UTF-8, has a character other than digits and ignorable punctuation, has a
 * '+' after the first digit or twice, or has more than SCAN_MAX_DIGITS digits. *plus tells
 * whether the number began with '+'. */
static int phone_scan(const char *text, char digits[SCAN_MAX_DIGITS + 1], bool *plus)
{
    size_t len = strlen(text);
    if (!wasl_utf8_valid(text, len, false)) {
        return -1;
    }
    char *folded = wasl_fold_digits(text, len);
    if (!folded) {
        wasl_error("phone: cannot fold digits (out of memory)", "{s:I}", "bytes", (long long)len);
        return -1;
    }
    int rc = 0;
    size_t ndigits = 0;
    *plus = false;
    const uint8_t *u = (const uint8_t *)folded;
    int32_t i = 0, n = (int32_t)strlen(folded); /* fits: wasl_fold_digits caps at INT32_MAX */
    while (i < n) {
        UChar32 c;
        U8_NEXT(u, i, n, c);
        if (is_ascii_digit(c)) {
            if (ndigits == SCAN_MAX_DIGITS) {
                rc = -1;
                break;
            }
            digits[ndigits++] = (char)c;
        } else if (c == '+' && ndigits == 0 && !*plus) {
            *plus = true;
        } else if (!phone_ignorable(c)) {
            rc = -1;
            break;
        }
    }
    free(folded);
    digits[ndigits] = '\0';
    return rc;
}

/* Checks a number in international form (digits only, no '+'): the E.164 length and
 * country code rules, and the Saudi numbering plan for +966. */
static bool e164_valid(const char *intl)
{
    size_t len = strlen(intl);
    if (len < E164_MIN_DIGITS || len > E164_MAX_DIGITS || intl[0] == '0') {
        return false;
    }
    if (strncmp(intl, SA_CC, strlen(SA_CC)) != 0) {
        return true; /* calling codes are prefix-free: no other code starts with 966 */
    }
    const char *nsn = intl + strlen(SA_CC);
    if (strlen(nsn) != SA_NSN_DIGITS) {
        return false;
    }
    if (nsn[0] == SA_MOBILE_LEAD) {
        return true;
    }
    return nsn[0] == SA_LANDLINE_LEAD && strchr(SA_AREA_CODES, nsn[1]) != NULL;
}

int wasl_phone_e164(const char *text, const char *default_cc, char out[WASL_PHONE_MAX])
{
    assert(out);
    out[0] = '\0';
    if (!text) {
        return -1;
    }
    if (default_cc && !cc_valid(default_cc)) {
        wasl_error("phone: default country code is not 1..3 digits", "{s:s}", "default_cc",
                   default_cc);
        return -1;
    }
    char digits[SCAN_MAX_DIGITS + 1];
    bool plus;
    if (phone_scan(text, digits, &plus) != 0) {
        return -1;
    }
    size_t ndigits = strlen(digits);
    bool sa_default = default_cc && strcmp(default_cc, SA_CC) == 0;

    /* Resolve the form to international digits (without '+') in intl[]. */
    char intl[SCAN_MAX_DIGITS + CC_MAX_DIGITS + 1];
    if (plus) {
        memcpy(intl, digits, ndigits + 1);
    } else if (digits[0] == '0' && digits[1] == '0') {
        memcpy(intl, digits + 2, ndigits - 1);
    } else if (digits[0] == '0') {
        if (!default_cc) {
            return -1;
        }
        strcpy(intl, default_cc);
        strcat(intl, digits + 1);
    } else if (default_cc && strncmp(digits, default_cc, strlen(default_cc)) == 0 &&
               (sa_default ? ndigits == strlen(SA_CC) + SA_NSN_DIGITS
                           : ndigits >= E164_MIN_DIGITS && ndigits <= E164_MAX_DIGITS)) {
        memcpy(intl, digits, ndigits + 1);
    } else if (sa_default && ndigits == SA_NSN_DIGITS && digits[0] == SA_MOBILE_LEAD) {
        strcpy(intl, SA_CC);
        strcat(intl, digits);
    } else {
        return -1;
    }

    /* "+966 (0)55 ...": the trunk prefix has no place after the country code. */
    size_t sa_len = strlen(SA_CC);
    if (strncmp(intl, SA_CC, sa_len) == 0 && intl[sa_len] == '0') {
        memmove(intl + sa_len, intl + sa_len + 1, strlen(intl + sa_len + 1) + 1);
    }

    if (!e164_valid(intl)) {
        return -1;
    }
    out[0] = '+';
    memcpy(out + 1, intl, strlen(intl) + 1);
    return 0;
}

bool wasl_phone_is_sa_mobile(const char *e164)
{
    static const char prefix[] = "+" SA_CC "5";
    if (!e164 || strncmp(e164, prefix, strlen(prefix)) != 0) {
        return false;
    }
    return strlen(e164) == 1 + strlen(SA_CC) + SA_NSN_DIGITS && all_digits(e164 + 1);
}
