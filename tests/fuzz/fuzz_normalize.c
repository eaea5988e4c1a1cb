/* fuzz_normalize — libFuzzer target: the classifier's normalization, features and entities on
 * arbitrary bytes. Invariants: invalid UTF-8 is refused, valid input gives valid UTF-8 output,
 * normalization is idempotent, feature vectors are unit length. `make fuzz` builds and runs it. */
#include "wasl_classify.h"
#include "wasl_entities.h"
#include "wasl_normalize.h"
#include "wasl_text.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *) data;
    bool valid = wasl_utf8_valid(text, size, false);
    char *norm = wasl_normalize(text, size);
    assert((norm != NULL) == valid);
    if (norm) {
        size_t n = strlen(norm);
        assert(wasl_utf8_valid(norm, n, false));
        char *again = wasl_normalize(norm, n);
        assert(again && strcmp(again, norm) == 0);
        free(again);
        free(norm);
    }
    static wasl_features_t f;
    if (wasl_features_extract(text, size, &f) == 0 && f.n > 0) {
        double sum = 0;
        for (size_t i = 0; i < f.n; i++) {
            assert(f.idx[i] < WASL_FEATURE_DIM);
            sum += (double) f.val[i] * f.val[i];
        }
        assert(fabs(sum - 1.0) < 1e-3);
    }
    json_t *e = wasl_entities_extract(text, size, "966");
    assert((e != NULL) == valid);
    json_decref(e);
    return 0;
}
