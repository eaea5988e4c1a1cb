/* fuzz_mime — libFuzzer target: structure-aware MIME trees through intake's parse entry point.
 *
 * The input is not the message: it is a recipe. Each byte decides the next choice — how many
 * header fields (floods), how many Content-Type fields and which wins, how many parts, how deep,
 * which boundary (boundaries chosen to be prefixes of each other: "b", "b-", "b--", "bb"), how a
 * boundary line is written (trailing blanks, CR, a stray suffix, the closing form missing or
 * repeated, one inside a header block), which transfer encoding, message/rfc822 or a digest —
 * so the fuzzer explores trees rather than bytes that GMime rejects on the first line.
 *
 * Invariants:
 * 1. intake_email_parse() with the default limits parses or refuses with a reason and never
 *    crashes (ASan/UBSan), and whatever it returns is valid UTF-8;
 * 2. when intake_email_prescan() lets a message through, GMime itself (with no limits of ours)
 *    never builds more entities, nor nests deeper, than the scan counted — the property that
 *    makes the limits hold before anything is built. */
#include "email.h"
#include "wasl_text.h"

#include <gmime/gmime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds on what one recipe may generate, so each run stays fast. */
#define MAX_CHILDREN      12
#define MAX_GEN_DEPTH     10
#define MAX_FLOOD_FIELDS  1200
#define MAX_MESSAGE_BYTES (512u << 10)

typedef struct {
    const uint8_t *data;
    size_t size, pos;
} recipe_t;

static unsigned take(recipe_t *r, unsigned n)
{
    if (n == 0) {
        return 0;
    }
    unsigned v = r->pos < r->size ? r->data[r->pos++] : 0;
    return v % n;
}

static const char *const boundaries[] = {"b", "b-", "b--", "bb", "=_x", "b c", "b\tc"};
#define NBOUNDARIES (sizeof boundaries / sizeof boundaries[0])

static void boundary_line(GString *out, recipe_t *r, const char *b, bool end)
{
    g_string_append_printf(out, "--%s%s", b, end ? "--" : "");
    switch (take(r, 8)) {
    case 1:
        g_string_append(out, "  ");
        break;
    case 2:
        g_string_append(out, "\r");
        break;
    case 3:
        g_string_append(out, "x"); /* not a boundary for GMime */
        break;
    case 4:
        g_string_append(out, " \t\r");
        break;
    default:
        break;
    }
    g_string_append_c(out, '\n');
}

static void content_type(GString *out, recipe_t *r, const char *value)
{
    switch (take(r, 6)) {
    case 1:
        g_string_append_printf(out, "CONTENT-TYPE : %s\n", value);
        break;
    case 2: /* folded */
        g_string_append_printf(out, "Content-Type:\n %s\n", value);
        break;
    case 3: /* a decoy before the real one: the last wins */
        g_string_append_printf(out, "Content-Type: text/plain\nContent-Type: %s\n", value);
        break;
    case 4: /* a decoy after it */
        g_string_append_printf(out, "Content-Type: %s\nContent-Type: %s\n", value,
                               take(r, 2) ? "application/octet-stream" : "multipart/mixed");
        break;
    default:
        g_string_append_printf(out, "Content-Type: %s\n", value);
        break;
    }
}

static void header_noise(GString *out, recipe_t *r)
{
    unsigned n = take(r, 4);
    for (unsigned i = 0; i < n; i++) {
        switch (take(r, 5)) {
        case 0:
            g_string_append(out, "X-A: 1\n");
            break;
        case 1:
            g_string_append(out, "not a header line\n");
            break;
        case 2:
            g_string_append(out, " continued\n");
            break;
        case 3:
            g_string_append(out, "Content-Transfer-Encoding: base64\n");
            break;
        default: {
            unsigned flood = take(r, 4) == 0 ? MAX_FLOOD_FIELDS : take(r, 50);
            for (unsigned k = 0; k < flood; k++) {
                g_string_append(out, "X:\n");
            }
            break;
        }
        }
    }
}

static void leaf_body(GString *out, recipe_t *r)
{
    switch (take(r, 4)) {
    case 0:
        break;
    case 1:
        g_string_append(out, "SGVsbG8gd29ybGQ=\n");
        break;
    case 2:
        g_string_append(out, "caf=C3=A9 =\nsoft\n");
        break;
    default: {
        unsigned n = take(r, 64);
        for (unsigned i = 0; i < n && r->pos < r->size; i++) {
            char c = (char)r->data[r->pos++];
            g_string_append_c(out, c == '\0' ? ' ' : c);
        }
        g_string_append_c(out, '\n');
        break;
    }
    }
}

/* One entity's header block (without the empty line) and content, at `depth`. */
static void entity(GString *out, recipe_t *r, unsigned depth, const char *parent_boundary)
{
    if (out->len > MAX_MESSAGE_BYTES) {
        return;
    }
    unsigned kind = depth >= MAX_GEN_DEPTH ? 0 : take(r, 6);
    header_noise(out, r);
    if (kind <= 2) {
        if (take(r, 3)) {
            content_type(out, r, take(r, 2) ? "text/plain; charset=utf-8" : "text/html");
        }
        if (parent_boundary && take(r, 6) == 0) {
            boundary_line(out, r, parent_boundary, false); /* a boundary inside the headers */
        }
        g_string_append(out, take(r, 8) ? "\n" : "\r\n");
        leaf_body(out, r);
        return;
    }
    if (kind == 3) {
        static const char *const messages[] = {"message/rfc822", "message/news", "message/global",
                                               "message/partial"};
        content_type(out, r, messages[take(r, 4)]);
        g_string_append(out, "\n");
        if (take(r, 5) == 0) {
            return; /* an empty message part */
        }
        g_string_append(out, "Subject: inner\n");
        entity(out, r, depth + 1, parent_boundary);
        return;
    }
    const char *b = boundaries[take(r, NBOUNDARIES)];
    char value[96];
    snprintf(value, sizeof value, "multipart/%s; boundary=\"%s\"", kind == 4 ? "mixed" : "digest",
             b);
    content_type(out, r, value);
    g_string_append(out, "\n");
    if (take(r, 3) == 0) {
        g_string_append(out, "preface\n");
    }
    unsigned children = take(r, MAX_CHILDREN + 1);
    if (take(r, 16) == 0) {
        children = 300; /* a run of empty parts: the bomb in small */
    }
    for (unsigned i = 0; i < children && out->len <= MAX_MESSAGE_BYTES; i++) {
        boundary_line(out, r, b, false);
        if (children > MAX_CHILDREN) {
            g_string_append(out, "\n");
            continue;
        }
        entity(out, r, depth + 1, b);
    }
    switch (take(r, 4)) {
    case 0:
        break; /* never closed */
    case 1:
        if (parent_boundary) {
            boundary_line(out, r, parent_boundary, take(r, 2)); /* the parent closes it */
        }
        break;
    default:
        boundary_line(out, r, b, true);
        if (take(r, 3) == 0) {
            g_string_append(out, "postface\n");
        }
        break;
    }
}

/* Entities and depth of GMime's own tree, counted as intake's walk counts them. */
static size_t gmime_count(GMimeObject *obj, size_t depth, size_t *max_depth)
{
    size_t n = 1;
    if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        GMimeObject *body = inner ? g_mime_message_get_mime_part(inner) : NULL;
        if (depth + 1 > *max_depth) {
            *max_depth = depth + 1;
        }
        if (body) {
            n += gmime_count(body, depth + 1, max_depth);
        }
    } else if (GMIME_IS_MULTIPART(obj)) {
        if (depth + 1 > *max_depth) {
            *max_depth = depth + 1;
        }
        int count = g_mime_multipart_get_count(GMIME_MULTIPART(obj));
        for (int i = 0; i < count; i++) {
            n += gmime_count(g_mime_multipart_get_part(GMIME_MULTIPART(obj), i), depth + 1,
                             max_depth);
        }
    }
    return n;
}

static void check_scan_is_an_upper_bound(const char *raw, size_t len)
{
    intake_email_shape_t shape;
    char err[256];
    if (intake_email_prescan(raw, len, NULL, &shape, err, sizeof err) != INTAKE_EMAIL_FITS) {
        return;
    }
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(raw, len);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
    g_object_unref(parser);
    g_object_unref(stream);
    GMimeObject *top = msg ? g_mime_message_get_mime_part(msg) : NULL;
    if (top) {
        size_t depth = 0;
        size_t parts = gmime_count(top, 0, &depth);
        if (parts > shape.parts || depth > shape.depth) {
            fprintf(stderr, "GMime built %zu entities %zu deep, the scan counted %zu, %zu deep\n",
                    parts, depth, shape.parts, shape.depth);
            abort();
        }
    }
    if (msg) {
        g_object_unref(msg);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        intake_email_init();
        ready = 1;
    }
    recipe_t r = {.data = data, .size = size};
    GString *out = g_string_new("From: a@example.sa\nSubject: fuzz\nMessage-ID: <f@x>\n");
    entity(out, &r, 0, NULL);

    check_scan_is_an_upper_bound(out->str, out->len);

    char err[256] = "";
    intake_email_t *m = intake_email_parse(out->str, out->len, NULL, err, sizeof err);
    if (!m) {
        if (err[0] == '\0') {
            abort();
        }
    } else {
        if (!wasl_utf8_valid(m->subject, strlen(m->subject), false) ||
            !wasl_utf8_valid(m->body, strlen(m->body), false)) {
            abort();
        }
        intake_email_destroy(&m);
    }
    g_string_free(out, TRUE);
    return 0;
}
