/* fuzz_phone — libFuzzer target: phone normalization to E.164 against arbitrary bytes.
 *
 * Build (clang):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_DEFAULT_SOURCE \
 *     -D_POSIX_C_SOURCE=200809L -Icommon tests/fuzz/fuzz_phone.c common/wasl_phone.c \
 *     common/wasl_text.c common/wasl_log.c $(pkg-config --cflags --libs icu-uc jansson) \
 *     -o fuzz_phone
 * Run: ./fuzz_phone -max_len=256 build/fuzz-corpus-phone tests/fuzz/corpus/phone
 * (new inputs go into the first directory, so the seeds in the repository stay small)
 *
 * Besides "never crash, never leak", it checks that every accepted number is '+' and 8..15
 * ASCII digits, that a Saudi one has a 9-digit national number, that normalizing is
 * idempotent, and that a rejected number leaves out empty.
 */
#include "wasl_phone.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_e164(const char *e164, const char *default_cc)
{
    size_t len = strlen(e164);
    FUZZ_CHECK(e164[0] == '+');
    FUZZ_CHECK(len >= 1 + 8 && len <= 1 + 15);
    FUZZ_CHECK(e164[1] != '0');
    for (size_t i = 1; i < len; i++) {
        FUZZ_CHECK(e164[i] >= '0' && e164[i] <= '9');
    }
    if (strncmp(e164, "+966", 4) == 0) {
        FUZZ_CHECK(len == 4 + 9);
        FUZZ_CHECK(e164[4] == '5' || e164[4] == '1');
        FUZZ_CHECK(wasl_phone_is_sa_mobile(e164) == (e164[4] == '5'));
    } else {
        FUZZ_CHECK(!wasl_phone_is_sa_mobile(e164));
    }
    char again[WASL_PHONE_MAX];
    FUZZ_CHECK(wasl_phone_e164(e164, default_cc, again) == 0);
    FUZZ_CHECK(strcmp(again, e164) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';

    static const char *const default_ccs[] = {"966", "44", "1", NULL};
    for (size_t i = 0; i < sizeof default_ccs / sizeof default_ccs[0]; i++) {
        char out[WASL_PHONE_MAX];
        if (wasl_phone_e164(text, default_ccs[i], out) == 0) {
            check_e164(out, default_ccs[i]);
        } else {
            FUZZ_CHECK(out[0] == '\0');
        }
    }
    (void)wasl_phone_is_sa_mobile(text);

    free(text);
    return 0;
}
