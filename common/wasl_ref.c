/* wasl_ref — ticket references: 2-digit year + 7-digit sequence + a Verhoeff check digit. */
#include "wasl_ref.h"

#include "wasl_log.h"
#include "wasl_text.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Digits before the check digit: year + sequence. */
#define REF_BODY_LEN (WASL_REF_LEN - 1)
#define REF_SEQ_LEN  7

/* Verhoeff's tables: multiplication in the dihedral group D5, the position permutation
 * (row i applies to the digit i places from the right), and the group inverse. */
static const unsigned char verhoeff_d[10][10] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5}, {2, 3, 4, 0, 1, 7, 8, 9, 5, 6},
    {3, 4, 0, 1, 2, 8, 9, 5, 6, 7}, {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
    {6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3}, {8, 7, 6, 5, 9, 3, 2, 1, 0, 4},
    {9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
};
static const unsigned char verhoeff_p[8][10] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4}, {5, 8, 0, 3, 7, 9, 6, 1, 4, 2},
    {8, 9, 1, 6, 0, 4, 3, 5, 2, 7}, {9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
    {2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8},
};
static const unsigned char verhoeff_inv[10] = {0, 4, 3, 2, 1, 5, 6, 7, 8, 9};
#define VERHOEFF_PERIOD 8

static bool is_ascii_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Runs the Verhoeff checksum over digits[0..len), the rightmost digit taking position
 * `first_pos`. Returns the group element (0..9), or -1 on a non-digit. */
static int verhoeff_sum(const char *digits, size_t len, size_t first_pos)
{
    unsigned c = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = digits[len - 1 - i];
        if (!is_ascii_digit(ch)) {
            return -1;
        }
        c = verhoeff_d[c][verhoeff_p[(i + first_pos) % VERHOEFF_PERIOD][ch - '0']];
    }
    return (int)c;
}

int wasl_verhoeff_check_digit(const char *digits, size_t len)
{
    if (len == 0) {
        return -1;
    }
    assert(digits);
    /* The check digit will sit at position 0, so the body starts at position 1. */
    int c = verhoeff_sum(digits, len, 1);
    return c < 0 ? -1 : verhoeff_inv[c];
}

bool wasl_verhoeff_valid(const char *digits, size_t len)
{
    if (len < 2) {
        return false;
    }
    assert(digits);
    return verhoeff_sum(digits, len, 0) == 0;
}

int wasl_ref_format(int year2, uint32_t seq, char out[WASL_REF_LEN + 1])
{
    assert(out);
    out[0] = '\0';
    if (year2 < 0 || year2 > WASL_REF_YEAR_MAX || seq > WASL_REF_SEQ_MAX) {
        return -1;
    }
    out[0] = (char)('0' + year2 / 10);
    out[1] = (char)('0' + year2 % 10);
    for (int i = REF_BODY_LEN - 1; i >= REF_BODY_LEN - REF_SEQ_LEN; i--) {
        out[i] = (char)('0' + seq % 10);
        seq /= 10;
    }
    int check = wasl_verhoeff_check_digit(out, REF_BODY_LEN);
    assert(check >= 0);
    out[REF_BODY_LEN] = (char)('0' + check);
    out[WASL_REF_LEN] = '\0';
    return 0;
}

/* Characters people put inside a reference that carry no meaning. */
static bool ref_ignorable(uint32_t c)
{
    return wasl_is_number_separator((int32_t)c);
}

wasl_ref_status_t wasl_ref_parse(const char *text, char out[WASL_REF_LEN + 1])
{
    assert(out);
    out[0] = '\0';
    if (!text) {
        return WASL_REF_EMPTY;
    }
    size_t len = strlen(text);
    if (!wasl_utf8_valid(text, len, false)) {
        return WASL_REF_BAD_CHAR;
    }
    char *folded = wasl_fold_digits(text, len);
    if (!folded) {
        wasl_error("ref: cannot fold digits (out of memory)", "{s:I}", "bytes", (long long)len);
        return WASL_REF_BAD_CHAR;
    }

    char digits[WASL_REF_LEN];
    size_t ndigits = 0;
    bool started = false; /* a digit or the '#' was seen: no '#' after this */
    wasl_ref_status_t status = WASL_REF_OK;
    size_t i = 0, n = strlen(folded);
    while (i < n) {
        uint32_t c;
        i += wasl_utf8_decode(folded + i, n - i, &c, NULL); /* valid: checked above */
        if (c >= '0' && c <= '9') {
            if (ndigits < WASL_REF_LEN) {
                digits[ndigits] = (char)c;
            }
            ndigits++;
            started = true;
        } else if (c == '#' && !started) {
            started = true;
        } else if (!ref_ignorable(c)) {
            status = WASL_REF_BAD_CHAR;
            break;
        }
    }
    free(folded);

    if (status != WASL_REF_OK) {
        return status;
    }
    if (ndigits == 0) {
        return WASL_REF_EMPTY;
    }
    if (ndigits != WASL_REF_LEN) {
        return WASL_REF_BAD_LENGTH;
    }
    if (!wasl_verhoeff_valid(digits, WASL_REF_LEN)) {
        return WASL_REF_BAD_CHECK;
    }
    memcpy(out, digits, WASL_REF_LEN);
    out[WASL_REF_LEN] = '\0';
    return WASL_REF_OK;
}

const char *wasl_ref_strerror(wasl_ref_status_t status)
{
    switch (status) {
    case WASL_REF_OK:
        return "the reference is valid";
    case WASL_REF_EMPTY:
        return "no reference was given";
    case WASL_REF_BAD_CHAR:
        return "a reference may contain only digits, spaces and dashes";
    case WASL_REF_BAD_LENGTH:
        return "a reference has exactly 10 digits";
    case WASL_REF_BAD_CHECK:
        return "the check digit is wrong: the reference was mistyped";
    }
    return "unknown reference status";
}

size_t wasl_ref_find(const char *text, void (*fn)(const char *ref, void *arg), void *arg)
{
    if (!text) {
        return 0;
    }
    size_t len = strlen(text);
    if (len > INT32_MAX) {
        wasl_warn("ref: text too long to search", "{s:I}", "bytes", (long long)len);
        return 0;
    }
    char *scrubbed = NULL;
    if (!wasl_utf8_valid(text, len, false)) {
        /* Free text from a careless mailer can still be searched: each ill-formed subpart
         * becomes U+FFFD, which is not a digit, so it separates like any other letter. */
        scrubbed = wasl_utf8_sanitize(text, len, NULL);
        if (!scrubbed) {
            goto nomem;
        }
    }
    const char *src = scrubbed ? scrubbed : text;
    char *folded = wasl_fold_digits(src, strlen(src));
    free(scrubbed);
    if (!folded) {
        goto nomem;
    }

    size_t count = 0;
    const char *p = folded;
    while (*p) {
        if (!is_ascii_digit(*p)) {
            p++;
            continue;
        }
        const char *run = p;
        while (is_ascii_digit(*p)) {
            p++;
        }
        if ((size_t)(p - run) == WASL_REF_LEN && wasl_verhoeff_valid(run, WASL_REF_LEN)) {
            char ref[WASL_REF_LEN + 1];
            memcpy(ref, run, WASL_REF_LEN);
            ref[WASL_REF_LEN] = '\0';
            if (fn) {
                fn(ref, arg); /* ref is borrowed for the call only */
            }
            count++;
        }
    }
    free(folded);
    return count;

nomem:
    wasl_error("ref: out of memory", "{s:I}", "bytes", (long long)len);
    return 0;
}
