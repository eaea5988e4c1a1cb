/* fuzz_ref — libFuzzer target: ticket reference parsing and finding against arbitrary bytes.
 *
 * Build (clang):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_DEFAULT_SOURCE \
 *     -D_POSIX_C_SOURCE=200809L -Icommon tests/fuzz/fuzz_ref.c common/wasl_ref.c \
 *     common/wasl_text.c common/wasl_log.c $(pkg-config --cflags --libs icu-uc jansson) \
 *     -o fuzz_ref
 * Run: ./fuzz_ref -max_len=512 build/fuzz-corpus-ref tests/fuzz/corpus/ref
 * (new inputs go into the first directory, so the seeds in the repository stay small)
 *
 * Besides "never crash, never leak", it checks that whatever parses is 10 ASCII digits with a
 * right check digit and parses again to itself, that a failed parse leaves out empty, and that
 * everything wasl_ref_find reports is a valid reference.
 */
#include "wasl_ref.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Invariant checks stay on whatever NDEBUG says. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_reference(const char *ref)
{
    if (strlen(ref) != WASL_REF_LEN) {
        return false;
    }
    for (size_t i = 0; i < WASL_REF_LEN; i++) {
        if (ref[i] < '0' || ref[i] > '9') {
            return false;
        }
    }
    return wasl_verhoeff_valid(ref, WASL_REF_LEN);
}

static void on_found(const char *ref, void *arg)
{
    FUZZ_CHECK(is_reference(ref));
    (*(size_t *)arg)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';

    char out[WASL_REF_LEN + 1];
    wasl_ref_status_t status = wasl_ref_parse(text, out);
    FUZZ_CHECK(status >= WASL_REF_OK && status <= WASL_REF_BAD_CHECK);
    FUZZ_CHECK(wasl_ref_strerror(status) != NULL);
    if (status == WASL_REF_OK) {
        FUZZ_CHECK(is_reference(out));
        char again[WASL_REF_LEN + 1];
        FUZZ_CHECK(wasl_ref_parse(out, again) == WASL_REF_OK);
        FUZZ_CHECK(strcmp(again, out) == 0);
    } else {
        FUZZ_CHECK(out[0] == '\0');
    }

    size_t seen = 0;
    size_t found = wasl_ref_find(text, on_found, &seen);
    FUZZ_CHECK(found == seen);
    FUZZ_CHECK(wasl_ref_find(text, NULL, NULL) == found);

    /* The raw bytes as digits for the checksum itself: it may reject, never misbehave. */
    int check = wasl_verhoeff_check_digit(text, strlen(text));
    FUZZ_CHECK(check >= -1 && check <= 9);
    (void)wasl_verhoeff_valid(text, strlen(text));

    free(text);
    return 0;
}
