/* fuzz_proto — libFuzzer target: the message decoder against arbitrary bytes.
 *
 * Build (clang, after `make proto`):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ibuild/gen tests/fuzz/fuzz_proto.c \
 *     build/gen/wasl_proto.c $(pkg-config --cflags --libs msgpack libczmq libzmq) -o fuzz_proto
 * Run: ./fuzz_proto -max_len=4096 build/fuzz-corpus tests/fuzz/corpus/proto
 * (new inputs go into the first directory, so the seeds in the repository stay small)
 *
 * Besides "never crash, never leak", it checks that whatever decodes also encodes, decodes
 * again to the same type, and that the encoding is canonical (a second round gives the same
 * bytes).
 */
#include "wasl_proto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wasl_msg_error_t err;
    wasl_msg_t *msg = wasl_msg_decode(data, size, &err);
    if (!msg) {
        if (err.code <= WASL_MSG_OK || err.code > WASL_MSG_ENOMEM)
            abort();
        return 0;
    }
    char *first = NULL;
    size_t first_len = 0;
    if (wasl_msg_encode(msg, &first, &first_len, &err) != 0) {
        /* Canonical encoding can outgrow a non-canonical input (float32 becomes float64), so
         * a decodable frame near the limit may fail to re-encode; nothing else may. */
        if (err.code != WASL_MSG_ETOOBIG)
            abort();
        wasl_msg_destroy(&msg);
        return 0;
    }
    wasl_msg_t *back = wasl_msg_decode(first, first_len, &err);
    if (!back || back->type != msg->type)
        abort();
    char *second = NULL;
    size_t second_len = 0;
    if (wasl_msg_encode(back, &second, &second_len, &err) != 0)
        abort();
    if (second_len != first_len || memcmp(first, second, first_len) != 0)
        abort();
    free(second);
    free(first);
    wasl_msg_destroy(&back);
    wasl_msg_destroy(&msg);
    return 0;
}
