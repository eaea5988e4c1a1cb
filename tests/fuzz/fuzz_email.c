/* fuzz_email — libFuzzer target: intake's MIME path (GMime) on arbitrary bytes. Invariant: it
 * parses or refuses with a reason, and everything it returns is valid UTF-8. */
#include "email.h"
#include "wasl_text.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        intake_email_init();
        ready = 1;
    }
    char err[256] = "";
    intake_email_t *m = intake_email_parse((const char *) data, size, NULL, err, sizeof err);
    if (!m) {
        assert(err[0] != '\0');
        return 0;
    }
    assert(m->message_id && m->subject && m->body);
    assert(wasl_utf8_valid(m->subject, strlen(m->subject), false));
    assert(wasl_utf8_valid(m->body, strlen(m->body), false));
    assert(!strchr(m->subject, '\n'));
    intake_email_destroy(&m);
    return 0;
}
