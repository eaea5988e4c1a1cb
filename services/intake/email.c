/* email — parses one raw RFC 5322 message (GMime) into the fields intake turns into a ticket. */
#include "email.h"
#include "wasl_log.h"

#include "wasl_convert.h"
#include "wasl_text.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Raw bytes read from one text part, as a multiple of max_body_bytes: HTML markup can be far
 * larger than the text it carries, but a part is never read without bound. */
#define TEXT_READ_FACTOR 16
/* Longest msg-id and addr-spec kept (RFC 5322 line limit; RFC 5321 path limit). */
#define MSGID_MAX_BYTES 998
#define ADDR_MAX_BYTES  320
/* Longest Auto-Submitted / Precedence token kept in the reason. */
#define REASON_TOKEN_MAX      64
#define READ_CHUNK_BYTES      8192
#define BODY_TRUNCATED_MARKER "\n[…]"

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool initialized;

/* What one walk over the MIME tree does with the parts it meets. */
enum {
    WALK_COUNT = 1,  /* count parts, check depth and header limits */
    WALK_BODY = 2,   /* append body text */
    WALK_ATTACH = 4, /* record attachments, note reports */
};

typedef struct {
    const intake_email_limits_t *limits;
    intake_email_t *out;
    GString *body;
    bool body_truncated;
    size_t attachments_cap;
    GMimeMessagePart *first_forward; /* borrowed: the first message/rfc822 of the outer tree */
    bool saw_delivery_status;
    bool saw_disposition_notification;
    char *err;
    size_t errlen;
} parse_ctx_t;

/* ---- reading parts -------------------------------------------------------------------------- */

typedef void(content_sink_fn)(void *arg, const char *data, size_t len);

/* Streams the transfer-decoded content of `part` to sink, stopping after `cap` bytes (SIZE_MAX:
 * no cap). Returns the bytes passed to sink; *cut says whether more was left. */
static size_t read_decoded(GMimePart *part, size_t cap, content_sink_fn *sink, void *arg, bool *cut)
{
    *cut = false;
    GMimeDataWrapper *wrapper = g_mime_part_get_content(part);
    GMimeStream *raw = wrapper ? g_mime_data_wrapper_get_stream(wrapper) : NULL;
    if (!raw) {
        return 0;
    }
    g_mime_stream_reset(raw);
    GMimeStream *filtered = g_mime_stream_filter_new(raw);
    GMimeContentEncoding encoding = g_mime_data_wrapper_get_encoding(wrapper);
    if (encoding == GMIME_CONTENT_ENCODING_BASE64 ||
        encoding == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
        encoding == GMIME_CONTENT_ENCODING_UUENCODE) {
        GMimeFilter *decoder = g_mime_filter_basic_new(encoding, FALSE);
        g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered), decoder);
        g_object_unref(decoder); /* the filter stream holds its own reference */
    }
    char buf[READ_CHUNK_BYTES];
    size_t total = 0;
    for (;;) {
        ssize_t n = g_mime_stream_read(filtered, buf, sizeof buf);
        if (n <= 0) {
            break;
        }
        size_t take = (size_t)n;
        if (take > cap - total) {
            take = cap - total;
            *cut = true;
        }
        sink(arg, buf, take);
        total += take;
        if (*cut) {
            break;
        }
    }
    g_object_unref(filtered);
    return total;
}

static void sink_gstring(void *arg, const char *data, size_t len)
{
    g_string_append_len(arg, data, (gssize)len);
}

static void sink_sha256(void *arg, const char *data, size_t len)
{
    crypto_hash_sha256_update(arg, (const unsigned char *)data, len);
}

static void hex_digest(crypto_hash_sha256_state *st, char hex[65])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(st, digest);
    sodium_bin2hex(hex, 65, digest, sizeof digest);
}

/* Whether a leaf part is body text rather than an attachment. */
static bool is_body_text(GMimeObject *obj)
{
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    if (!g_mime_content_type_is_type(ct, "text", "plain") &&
        !g_mime_content_type_is_type(ct, "text", "html")) {
        return false;
    }
    GMimePart *part = GMIME_PART(obj);
    return !g_mime_part_is_attachment(part) && g_mime_part_get_filename(part) == NULL;
}

/* The UTF-8 text of a text/plain or text/html part, shaped for reading: a new GString. Reads at
 * most `cap` raw bytes; *cut says whether the part was longer. */
static GString *part_text(GMimeObject *obj, size_t cap, bool *cut)
{
    GMimePart *part = GMIME_PART(obj);
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    bool html = g_mime_content_type_is_type(ct, "text", "html");
    GString *raw = g_string_new(NULL);
    read_decoded(part, cap, sink_gstring, raw, cut);

    const char *charset = g_mime_content_type_get_parameter(ct, "charset");
    char *meta = NULL;
    if (html && (!charset || !*charset)) {
        meta = wasl_convert_html_charset(raw->str, raw->len);
        charset = meta;
    }
    GString *text = g_string_sized_new(raw->len);
    wasl_convert_append_utf8(text, raw->str, raw->len, charset);
    g_free(meta);
    g_string_free(raw, TRUE);
    wasl_convert_newlines(text);

    GString *shaped = NULL;
    if (html) {
        shaped = wasl_convert_html_to_text(text->str, text->len);
    } else {
        const char *format = g_mime_content_type_get_parameter(ct, "format");
        if (format && g_ascii_strcasecmp(format, "flowed") == 0) {
            const char *delsp = g_mime_content_type_get_parameter(ct, "delsp");
            shaped = wasl_convert_unflow(text, delsp && g_ascii_strcasecmp(delsp, "yes") == 0);
        }
    }
    if (shaped) {
        g_string_free(text, TRUE);
        text = shaped;
    }
    return text;
}

static bool blank(const GString *s)
{
    for (size_t i = 0; i < s->len; i++) {
        if (!g_ascii_isspace(s->str[i])) {
            return false;
        }
    }
    return true;
}

static size_t text_read_cap(const parse_ctx_t *ctx)
{
    size_t max = ctx->limits->max_body_bytes;
    return max > SIZE_MAX / TEXT_READ_FACTOR ? SIZE_MAX : max * TEXT_READ_FACTOR + 4096;
}

static void body_append(parse_ctx_t *ctx, const GString *text, bool cut)
{
    if (blank(text)) {
        return;
    }
    if (ctx->body->len > 0) {
        g_string_append(ctx->body, "\n\n");
    }
    g_string_append_len(ctx->body, text->str, (gssize)text->len);
    if (cut) {
        ctx->body_truncated = true;
    }
}

/* Appends the text of a body part, unless the body is already full. */
static void add_body_part(parse_ctx_t *ctx, GMimeObject *obj)
{
    if (ctx->body->len > ctx->limits->max_body_bytes) {
        ctx->body_truncated = true;
        return;
    }
    bool cut;
    GString *text = part_text(obj, text_read_cap(ctx), &cut);
    body_append(ctx, text, cut);
    g_string_free(text, TRUE);
}

/* ---- attachments ---------------------------------------------------------------------------- */

/* A file name fit to show: valid UTF-8, one line, no directory part. NULL when nothing is
 * left. New string (malloc). */
static char *clean_filename(const char *name)
{
    if (!name) {
        return NULL;
    }
    char *line = wasl_convert_one_line(name);
    if (!line) {
        return NULL;
    }
    const char *base = line;
    for (const char *p = line; *p; p++) {
        if (*p == '/' || *p == '\\') {
            base = p + 1;
        }
    }
    char *result = *base ? strdup(base) : NULL;
    free(line);
    return result;
}

static intake_attachment_t *new_attachment(parse_ctx_t *ctx)
{
    intake_email_t *m = ctx->out;
    if (m->nattachments == ctx->attachments_cap) {
        size_t cap = ctx->attachments_cap ? ctx->attachments_cap * 2 : 4;
        intake_attachment_t *grown = realloc(m->attachments, cap * sizeof *grown);
        if (!grown) {
            return NULL;
        }
        m->attachments = grown;
        ctx->attachments_cap = cap;
    }
    intake_attachment_t *a = &m->attachments[m->nattachments++];
    memset(a, 0, sizeof *a);
    return a;
}

static char *lower_mime_type(GMimeObject *obj)
{
    char *type = g_mime_content_type_get_mime_type(g_mime_object_get_content_type(obj));
    char *lower = g_ascii_strdown(type ? type : "application/octet-stream", -1);
    g_free(type);
    char *result = strdup(lower);
    g_free(lower);
    return result;
}

static int add_leaf_attachment(parse_ctx_t *ctx, GMimeObject *obj)
{
    intake_attachment_t *a = new_attachment(ctx);
    if (!a) {
        goto nomem;
    }
    a->name = clean_filename(g_mime_part_get_filename(GMIME_PART(obj)));
    a->type = lower_mime_type(obj);
    if (!a->type) {
        goto nomem;
    }
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    bool cut;
    a->size = read_decoded(GMIME_PART(obj), SIZE_MAX, sink_sha256, &st, &cut);
    hex_digest(&st, a->sha256);
    a->oversized = a->size > ctx->limits->max_attachment_bytes;
    return 0;
nomem:
    wasl_set_err(ctx->err, ctx->errlen, "out of memory");
    return -1;
}

/* A forwarded message becomes one attachment: its file name (or its subject + ".eml") and the
 * hash of the message as GMime writes it back. */
static int add_forward_attachment(parse_ctx_t *ctx, GMimeObject *obj, GMimeMessage *inner)
{
    intake_attachment_t *a = new_attachment(ctx);
    if (!a) {
        goto nomem;
    }
    const char *filename = g_mime_object_get_content_disposition_parameter(obj, "filename");
    if (!filename) {
        filename = g_mime_object_get_content_type_parameter(obj, "name");
    }
    if (filename) {
        a->name = clean_filename(filename);
    } else if (inner && g_mime_message_get_subject(inner)) {
        char *subject = wasl_convert_one_line(g_mime_message_get_subject(inner));
        if (subject && *subject) {
            for (char *p = subject; *p; p++) {
                if (*p == '/' || *p == '\\') {
                    *p = '_';
                }
            }
            size_t n = strlen(subject) + sizeof ".eml";
            a->name = malloc(n);
            if (a->name) {
                snprintf(a->name, n, "%s.eml", subject);
            }
        }
        free(subject);
    }
    a->type = lower_mime_type(obj);
    if (!a->type) {
        goto nomem;
    }
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    if (inner) {
        GMimeStream *mem = g_mime_stream_mem_new();
        g_mime_object_write_to_stream(GMIME_OBJECT(inner), NULL, mem);
        GByteArray *bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
        crypto_hash_sha256_update(&st, bytes->data, bytes->len);
        a->size = bytes->len;
        g_object_unref(mem);
    }
    hex_digest(&st, a->sha256);
    a->oversized = a->size > ctx->limits->max_attachment_bytes;
    return 0;
nomem:
    wasl_set_err(ctx->err, ctx->errlen, "out of memory");
    return -1;
}

/* ---- the walk ------------------------------------------------------------------------------- */

static size_t header_block_bytes(GMimeObject *obj)
{
    GMimeHeaderList *list = g_mime_object_get_header_list(obj);
    int count = list ? g_mime_header_list_get_count(list) : 0;
    size_t total = 0;
    for (int i = 0; i < count; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(list, i);
        const char *name = g_mime_header_get_raw_name(h);
        const char *value = g_mime_header_get_raw_value(h);
        total += (name ? strlen(name) : 0) + 1 + (value ? strlen(value) : 0);
    }
    return total;
}

static void note_report(parse_ctx_t *ctx, GMimeObject *obj)
{
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    if (g_mime_content_type_is_type(ct, "multipart", "report")) {
        const char *kind = g_mime_content_type_get_parameter(ct, "report-type");
        if (kind && g_ascii_strcasecmp(kind, "delivery-status") == 0) {
            ctx->saw_delivery_status = true;
        } else if (kind && g_ascii_strcasecmp(kind, "disposition-notification") == 0) {
            ctx->saw_disposition_notification = true;
        }
    } else if (g_mime_content_type_is_type(ct, "message", "delivery-status") ||
               g_mime_content_type_is_type(ct, "message", "global-delivery-status")) {
        ctx->saw_delivery_status = true;
    } else if (g_mime_content_type_is_type(ct, "message", "disposition-notification") ||
               g_mime_content_type_is_type(ct, "message", "global-disposition-notification")) {
        ctx->saw_disposition_notification = true;
    }
}

static int walk(parse_ctx_t *ctx, GMimeObject *obj, size_t depth, unsigned mode);

/* The child of a multipart/alternative that is the body: the first text/plain with text in it,
 * else the first text/html, else the first multipart (related: HTML with its images). -1: none.
 * RFC 2046 orders alternatives from plainest to richest; we want the plainest we can read. */
static int pick_alternative(parse_ctx_t *ctx, GMimeMultipart *mp)
{
    int n = g_mime_multipart_get_count(mp);
    int plain = -1, html = -1, nested = -1;
    for (int i = 0; i < n; i++) {
        GMimeObject *child = g_mime_multipart_get_part(mp, i);
        GMimeContentType *ct = g_mime_object_get_content_type(child);
        if (GMIME_IS_MULTIPART(child)) {
            if (nested < 0) {
                nested = i;
            }
        } else if (GMIME_IS_PART(child) && is_body_text(child)) {
            if (g_mime_content_type_is_type(ct, "text", "plain")) {
                if (plain < 0) {
                    bool cut;
                    GString *text = part_text(child, text_read_cap(ctx), &cut);
                    if (!blank(text)) {
                        plain = i;
                    }
                    g_string_free(text, TRUE);
                }
            } else if (html < 0) {
                html = i;
            }
        }
    }
    return plain >= 0 ? plain : html >= 0 ? html : nested;
}

static int walk_message_part(parse_ctx_t *ctx, GMimeObject *obj, size_t depth, unsigned mode)
{
    GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
    if ((mode & WALK_COUNT) && depth + 1 > ctx->limits->max_depth) {
        wasl_set_err(ctx->err, ctx->errlen, "MIME nesting too deep (max %zu)",
                     ctx->limits->max_depth);
        return -1;
    }
    if ((mode & WALK_COUNT) && inner &&
        header_block_bytes(GMIME_OBJECT(inner)) > ctx->limits->max_header_bytes) {
        wasl_set_err(ctx->err, ctx->errlen, "header too large (max %zu bytes)",
                     ctx->limits->max_header_bytes);
        return -1;
    }
    if (mode & WALK_ATTACH) {
        if (add_forward_attachment(ctx, obj, inner) < 0) {
            return -1;
        }
        if (!ctx->first_forward) {
            ctx->first_forward = GMIME_MESSAGE_PART(obj);
        }
    }
    GMimeObject *body = inner ? g_mime_message_get_mime_part(inner) : NULL;
    if (!body) {
        return 0;
    }
    /* A forwarded message's parts count against the limits, but its text and attachments stay
     * inside it (unless it is all there is: see intake_email_parse). */
    unsigned inner_mode = mode & WALK_COUNT;
    if (mode == WALK_BODY && depth == 0) {
        inner_mode = WALK_BODY; /* the fallback walk into the only content */
    }
    return inner_mode ? walk(ctx, body, depth + 1, inner_mode) : 0;
}

static int walk_multipart(parse_ctx_t *ctx, GMimeObject *obj, size_t depth, unsigned mode)
{
    GMimeMultipart *mp = GMIME_MULTIPART(obj);
    if ((mode & WALK_COUNT) && depth + 1 > ctx->limits->max_depth) {
        wasl_set_err(ctx->err, ctx->errlen, "MIME nesting too deep (max %zu)",
                     ctx->limits->max_depth);
        return -1;
    }
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    int n = g_mime_multipart_get_count(mp);
    if (n == 0 && (mode & WALK_BODY)) {
        /* No boundary, or one that never appears: GMime leaves everything in the prologue. */
        const char *prologue = g_mime_multipart_get_prologue(mp);
        if (prologue) {
            size_t len = strlen(prologue), cap = text_read_cap(ctx);
            GString *text = g_string_new(NULL);
            wasl_convert_append_utf8(text, prologue, len < cap ? len : cap,
                                     g_mime_content_type_get_parameter(ct, "charset"));
            wasl_convert_newlines(text);
            body_append(ctx, text, len > cap);
            g_string_free(text, TRUE);
        }
        return 0;
    }
    int chosen = -1; /* the one child that gets `mode` (the others are only counted); -1: all */
    if ((mode & WALK_BODY) && g_mime_content_type_is_type(ct, "multipart", "alternative")) {
        chosen = pick_alternative(ctx, mp); /* -1, nothing readable: attachments, then */
    } else if (g_mime_content_type_is_type(ct, "multipart", "signed")) {
        chosen = 0; /* the signature is not an attachment anyone sent */
    }
    for (int i = 0; i < n; i++) {
        GMimeObject *child = g_mime_multipart_get_part(mp, i);
        unsigned child_mode = chosen < 0 || chosen == i ? mode : mode & WALK_COUNT;
        if (child_mode && walk(ctx, child, depth + 1, child_mode) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Visits obj (nested in `depth` multiparts/messages) and its descendants. Returns 0, or -1 with
 * ctx->err set when a limit is exceeded. Depth is checked before descending, so the recursion
 * never goes deeper than max_depth. */
static int walk(parse_ctx_t *ctx, GMimeObject *obj, size_t depth, unsigned mode)
{
    if (mode & WALK_COUNT) {
        if (++ctx->out->nparts > ctx->limits->max_parts) {
            wasl_set_err(ctx->err, ctx->errlen, "too many MIME parts (max %zu)",
                         ctx->limits->max_parts);
            return -1;
        }
        if (header_block_bytes(obj) > ctx->limits->max_header_bytes) {
            wasl_set_err(ctx->err, ctx->errlen, "header too large (max %zu bytes)",
                         ctx->limits->max_header_bytes);
            return -1;
        }
    }
    if (mode & WALK_ATTACH) {
        note_report(ctx, obj);
    }
    if (GMIME_IS_MESSAGE_PART(obj)) {
        return walk_message_part(ctx, obj, depth, mode);
    }
    if (GMIME_IS_MULTIPART(obj)) {
        return walk_multipart(ctx, obj, depth, mode);
    }
    if (!GMIME_IS_PART(obj)) {
        return 0;
    }
    if ((mode & WALK_BODY) && is_body_text(obj)) {
        add_body_part(ctx, obj);
        return 0;
    }
    if (mode & WALK_ATTACH) {
        return add_leaf_attachment(ctx, obj);
    }
    return 0;
}

/* ---- headers -------------------------------------------------------------------------------- */

/* Whether a msg-id (without <>) is fit to keep: 1..998 bytes of valid UTF-8, no white space,
 * no control characters, no angle brackets. */
static bool msgid_ok(const char *id)
{
    if (!id) {
        return false;
    }
    size_t len = strlen(id);
    if (len == 0 || len > MSGID_MAX_BYTES || !wasl_utf8_valid(id, len, false)) {
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        if (*p <= 0x20 || *p == 0x7F || *p == '<' || *p == '>') {
            return false;
        }
    }
    return true;
}

/* The msg-ids of a References/In-Reply-To value, in order, as a new GPtrArray of g_strdup'd
 * strings (g_free each); unusable ids are skipped. */
static GPtrArray *parse_msgids(GMimeParserOptions *options, const char *value)
{
    GPtrArray *ids = g_ptr_array_new_with_free_func(g_free);
    if (!value) {
        return ids;
    }
    GMimeReferences *refs = g_mime_references_parse(options, value);
    if (!refs) {
        return ids;
    }
    int n = g_mime_references_length(refs);
    for (int i = 0; i < n; i++) {
        const char *id = g_mime_references_get_message_id(refs, i);
        if (msgid_ok(id)) {
            g_ptr_array_add(ids, g_strdup(id));
        }
    }
    g_mime_references_free(refs);
    return ids;
}

/* The message's Authentication-Results values, topmost first (the receiving MTA's own is the
 * first it added, so the top ones matter): raw, unfolded, at most INTAKE_AUTHRES_MAX_FIELDS. */
static int set_auth_results(intake_email_t *m, GMimeObject *msg)
{
    GMimeHeaderList *list = g_mime_object_get_header_list(msg);
    int count = list ? g_mime_header_list_get_count(list) : 0;
    m->auth_results = calloc(INTAKE_AUTHRES_MAX_FIELDS, sizeof *m->auth_results);
    if (!m->auth_results) {
        return -1;
    }
    for (int i = 0; i < count && m->nauth_results < INTAKE_AUTHRES_MAX_FIELDS; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(list, i);
        const char *name = g_mime_header_get_name(h);
        const char *value = g_mime_header_get_raw_value(h);
        if (!name || !value || g_ascii_strcasecmp(name, "Authentication-Results") != 0) {
            continue;
        }
        char *copy = strdup(value);
        if (!copy) {
            return -1;
        }
        for (char *p = copy; *p; p++) {
            if (*p == '\r' || *p == '\n') {
                *p = ' '; /* unfolded */
            }
        }
        m->auth_results[m->nauth_results++] = copy;
    }
    return 0;
}

static int set_references(intake_email_t *m, GMimeParserOptions *options, GMimeObject *msg)
{
    GPtrArray *ids = parse_msgids(options, g_mime_object_get_header(msg, "References"));
    size_t n = ids->len;
    size_t keep = n > INTAKE_EMAIL_MAX_REFERENCES ? INTAKE_EMAIL_MAX_REFERENCES : n;
    m->references = calloc(keep + 1, sizeof *m->references);
    if (!m->references) {
        g_ptr_array_free(ids, TRUE);
        return -1;
    }
    for (size_t i = 0; i < keep; i++) {
        /* the root first, then the latest keep-1 */
        size_t from = i == 0 ? 0 : n - keep + i;
        m->references[i] = strdup(g_ptr_array_index(ids, from));
        if (!m->references[i]) {
            g_ptr_array_free(ids, TRUE);
            return -1;
        }
        m->nreferences++;
    }
    g_ptr_array_free(ids, TRUE);

    GPtrArray *irt = parse_msgids(options, g_mime_object_get_header(msg, "In-Reply-To"));
    if (irt->len > 0) {
        m->in_reply_to = strdup(g_ptr_array_index(irt, 0));
    }
    g_ptr_array_free(irt, TRUE);
    return 0;
}

/* A lower-cased addr-spec when `addr` is usable: valid UTF-8, no white space or controls, one
 * '@' with something on both sides. NULL otherwise. New string (malloc). */
static char *clean_addr(const char *addr)
{
    if (!addr) {
        return NULL;
    }
    size_t len = strlen(addr);
    if (len < 3 || len > ADDR_MAX_BYTES || !wasl_utf8_valid(addr, len, false)) {
        return NULL;
    }
    const char *at = strrchr(addr, '@');
    if (!at || at == addr || at[1] == '\0') {
        return NULL;
    }
    for (const unsigned char *p = (const unsigned char *)addr; *p; p++) {
        if (*p <= 0x20 || *p == 0x7F || *p == '<' || *p == '>' || *p == ',') {
            return NULL;
        }
    }
    char *lower = strdup(addr);
    if (lower) {
        for (char *p = lower; *p; p++) {
            *p = g_ascii_tolower(*p);
        }
    }
    return lower;
}

/* The first mailbox of From (a group's first member counts). */
static InternetAddressMailbox *first_mailbox(InternetAddressList *list)
{
    int n = list ? internet_address_list_length(list) : 0;
    for (int i = 0; i < n; i++) {
        InternetAddress *ia = internet_address_list_get_address(list, i);
        if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
            return INTERNET_ADDRESS_MAILBOX(ia);
        }
        if (INTERNET_ADDRESS_IS_GROUP(ia)) {
            InternetAddressMailbox *mb =
                first_mailbox(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)));
            if (mb) {
                return mb;
            }
        }
    }
    return NULL;
}

static int set_from(intake_email_t *m, GMimeMessage *msg)
{
    InternetAddressMailbox *mb = first_mailbox(g_mime_message_get_from(msg));
    if (!mb) {
        return 0;
    }
    m->from_addr = clean_addr(internet_address_mailbox_get_addr(mb));
    const char *name = internet_address_get_name(INTERNET_ADDRESS(mb));
    if (name) {
        m->from_name = wasl_convert_one_line(name);
        if (!m->from_name) {
            return -1;
        }
        if (!*m->from_name) {
            free(m->from_name);
            m->from_name = NULL;
        }
    }
    return 0;
}

static int set_date(intake_email_t *m, GMimeMessage *msg)
{
    GDateTime *dt = g_mime_message_get_date(msg); /* owned by msg */
    if (!dt) {
        return 0;
    }
    GDateTime *utc = g_date_time_to_utc(dt);
    if (!utc) {
        return 0;
    }
    char *s = g_date_time_format(utc, "%Y-%m-%dT%H:%M:%SZ");
    g_date_time_unref(utc);
    if (s) {
        m->date = strdup(s);
        g_free(s);
        if (!m->date) {
            return -1;
        }
    }
    return 0;
}

/* The first token of a header value, lower-cased, up to `max` bytes: "Auto-Replied (x)" gives
 * "auto-replied". "" when the header is absent or has no token. */
static void header_token(GMimeObject *obj, const char *name, char *out, size_t max)
{
    out[0] = '\0';
    const char *v = g_mime_object_get_header(obj, name);
    if (!v) {
        return;
    }
    while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n') {
        v++;
    }
    size_t k = 0;
    while (*v && k + 1 < max && (g_ascii_isalnum(*v) || *v == '-' || *v == '_' || *v == '.')) {
        out[k++] = g_ascii_tolower(*v++);
    }
    out[k] = '\0';
}

static bool from_local_part_is(const intake_email_t *m, const char *local)
{
    if (!m->from_addr) {
        return false;
    }
    size_t n = strlen(local);
    return strncmp(m->from_addr, local, n) == 0 && m->from_addr[n] == '@';
}

/* The auto_submitted reason (see email.h for the order), or NULL for a person's mail. */
static char *auto_reason(const parse_ctx_t *ctx, GMimeObject *msg)
{
    const intake_email_t *m = ctx->out;
    if (ctx->saw_delivery_status || from_local_part_is(m, "mailer-daemon")) {
        return strdup("delivery-status");
    }
    if (ctx->saw_disposition_notification) {
        return strdup("disposition-notification");
    }
    char token[REASON_TOKEN_MAX + 1];
    char reason[REASON_TOKEN_MAX + 32];
    header_token(msg, "Auto-Submitted", token, sizeof token);
    if (token[0] && strcmp(token, "no") != 0) {
        snprintf(reason, sizeof reason, "auto-submitted:%s", token);
        return strdup(reason);
    }
    header_token(msg, "X-Auto-Response-Suppress", token, sizeof token);
    if (token[0] && strcmp(token, "none") != 0) {
        return strdup("x-auto-response-suppress");
    }
    header_token(msg, "Precedence", token, sizeof token);
    if (strcmp(token, "bulk") == 0 || strcmp(token, "junk") == 0 || strcmp(token, "list") == 0) {
        snprintf(reason, sizeof reason, "precedence:%s", token);
        return strdup(reason);
    }
    if (g_mime_object_get_header(msg, "X-Loop")) {
        return strdup("x-loop");
    }
    return NULL;
}

/* ---- before GMime --------------------------------------------------------------------------- */

/* Length of the mbox "From " line at the start of raw (0 when there is none). */
static size_t mbox_from_line(const char *raw, size_t len)
{
    if (len < 5 || memcmp(raw, "From ", 5) != 0) {
        return 0;
    }
    const char *nl = memchr(raw, '\n', len);
    return nl ? (size_t)(nl - raw) + 1 : len;
}

/* Whether the text starts like a header field: a name of printable ASCII, then ':'. */
static bool starts_with_field(const char *raw, size_t len)
{
    size_t i = 0;
    while (i < len && raw[i] != ':') {
        unsigned char c = (unsigned char)raw[i];
        if (c < 33 || c > 126) {
            return false;
        }
        i++;
    }
    return i > 0 && i < len;
}

/* Checks what GMime should not have to cope with in the top-level header block: a NUL byte.
 * (Its size is the pre-scan's business.) */
static int top_header_nul(const char *raw, size_t len, char *err, size_t errlen)
{
    size_t header_end = len;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(raw + i, '\n', len - i);
        size_t eol = nl ? (size_t)(nl - raw) : len;
        size_t n = eol - i;
        if (n == 0 || (n == 1 && raw[i] == '\r')) {
            header_end = i;
            break;
        }
        i = eol + 1;
    }
    if (memchr(raw, '\0', header_end)) {
        wasl_set_err(err, errlen, "NUL byte in the header");
        return -1;
    }
    return 0;
}

/* ---- the pre-scan: the tree's shape from the raw bytes, before GMime builds anything -------- */

/* Why a streaming scan of our own rather than GMime with limits: GMime 3.2 has no limit on parts
 * or headers and builds the whole tree in one call (one multipart header and 300,000 empty parts
 * cost ~390 MB in 0.74 s). The scan walks the bytes once and follows GMime 3.2's own rules (read
 * from its parser, checked against it by tests/fuzz/fuzz_mime.c), so that its counts are never
 * below what GMime would build:
 * - a header block ends at an empty line (CR allowed), at a boundary line of an open multipart,
 *   or at the end; a line starting with SP/HT continues the previous field; every other line is
 *   a field, valid or not (GMime keeps invalid ones);
 * - the LAST Content-Type field of a block decides the type and the boundary; none, or one GMime
 *   cannot parse, means text/plain — or message/rfc822 in a multipart/digest;
 * - a boundary line is "--" + boundary (+ "--" for the end) followed only by SP, HT or CR; every
 *   open multipart's boundary is checked, the innermost first, and one of an outer multipart
 *   closes the inner ones;
 * - message/rfc822, message/news and message/global are parsed as a message: its header block
 *   follows, unless the next line is a boundary (an empty message). */

/* One open multipart: an entry of GMime's boundary stack. */
typedef struct {
    char *marker; /* "--" + boundary (malloc) */
    size_t marker_len;
    size_t depth; /* the multipart's own nesting depth */
    bool digest;  /* multipart/digest: a child without a usable type is a message */
} scan_level_t;

typedef struct {
    const char *raw;
    size_t len;
    size_t pos; /* start of the next line */
    const intake_email_limits_t *limits;
    intake_email_shape_t *shape;
    scan_level_t *levels; /* [0] outermost; at most limits->max_depth */
    size_t nlevels;
} scan_t;

typedef enum { SCAN_LEAF, SCAN_MULTIPART, SCAN_MESSAGE } scan_kind_t;

/* The line at s->pos: its length without the LF, and where the next one starts. */
static size_t scan_line(const scan_t *s, size_t *next)
{
    const char *nl = memchr(s->raw + s->pos, '\n', s->len - s->pos);
    size_t eol = nl ? (size_t)(nl - s->raw) : s->len;
    *next = nl ? eol + 1 : s->len;
    return eol - s->pos;
}

static bool lwsp_only(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') {
            return false;
        }
    }
    return true;
}

/* The open multipart whose boundary the line is (innermost first, as GMime checks), or -1;
 * *end says whether it is the closing "--boundary--". */
static long scan_boundary(const scan_t *s, const char *line, size_t n, bool *end)
{
    if (n > 0 && line[n - 1] == '\r') {
        n--;
    }
    if (n < 2 || line[0] != '-' || line[1] != '-') {
        return -1;
    }
    for (size_t i = s->nlevels; i-- > 0;) {
        const scan_level_t *l = &s->levels[i];
        size_t m = l->marker_len;
        if (n < m || memcmp(line, l->marker, m) != 0) {
            continue;
        }
        if (n >= m + 2 && line[m] == '-' && line[m + 1] == '-' &&
            lwsp_only(line + m + 2, n - m - 2)) {
            *end = true;
            return (long)i;
        }
        if (lwsp_only(line + m, n - m)) {
            *end = false;
            return (long)i;
        }
    }
    return -1;
}

/* Whether the field on this line is Content-Type (name trimmed, any case). */
static bool is_content_type_field(const char *line, size_t n)
{
    const char *colon = memchr(line, ':', n);
    if (!colon) {
        return false;
    }
    const char *a = line, *b = colon;
    while (a < b && (*a == ' ' || *a == '\t')) {
        a++;
    }
    while (b > a && (b[-1] == ' ' || b[-1] == '\t')) {
        b--;
    }
    static const char name[] = "content-type";
    return (size_t)(b - a) == sizeof name - 1 && g_ascii_strncasecmp(a, name, sizeof name - 1) == 0;
}

/* Reads the header block at s->pos, counting its fields and bytes. On return s->pos is at the
 * content's first line (past the empty line) or at the boundary line that ended the block;
 * ct_at, ct_len are the last Content-Type field with its continuation lines (*ct_len 0: none). */
static intake_email_limit_t scan_headers(scan_t *s, size_t *ct_at, size_t *ct_len, char *err,
                                         size_t errlen)
{
    const intake_email_limits_t *lim = s->limits;
    size_t block = 0;
    bool any = false, in_ct = false;
    *ct_len = 0;
    while (s->pos < s->len) {
        size_t next, n = scan_line(s, &next);
        const char *line = s->raw + s->pos;
        if (n == 0 || (n == 1 && line[0] == '\r')) {
            s->pos = next;
            break;
        }
        bool end;
        if (scan_boundary(s, line, n, &end) >= 0) {
            break;
        }
        block += next - s->pos;
        if (block > lim->max_header_bytes) {
            wasl_set_err(err, errlen, "header too large (max %zu bytes)", lim->max_header_bytes);
            return INTAKE_EMAIL_OVER_HEADER_BYTES;
        }
        if (any && (line[0] == ' ' || line[0] == '\t')) {
            if (in_ct) {
                *ct_len = next - *ct_at;
            }
        } else {
            any = true;
            if (++s->shape->headers > lim->max_headers) {
                wasl_set_err(err, errlen, "too many header fields (max %zu)", lim->max_headers);
                return INTAKE_EMAIL_OVER_HEADERS;
            }
            in_ct = is_content_type_field(line, n);
            if (in_ct) {
                *ct_at = s->pos;
                *ct_len = next - s->pos;
            }
        }
        s->pos = next;
    }
    if (block > s->shape->header_block_bytes) {
        s->shape->header_block_bytes = block;
    }
    return INTAKE_EMAIL_FITS;
}

/* What GMime makes of the Content-Type field raw[at..at+n) (n 0: none), parsed by GMime itself;
 * *boundary is the multipart's boundary (new string, g_free) or NULL. */
static scan_kind_t scan_content_type(const char *raw, size_t at, size_t n, bool in_digest,
                                     char **boundary, bool *digest)
{
    *boundary = NULL;
    *digest = false;
    scan_kind_t fallback = in_digest ? SCAN_MESSAGE : SCAN_LEAF;
    const char *colon = n ? memchr(raw + at, ':', n) : NULL;
    if (!colon) {
        return fallback;
    }
    size_t vlen = n - (size_t)(colon + 1 - (raw + at));
    char *value = g_strndup(colon + 1, vlen); /* stops at a NUL, as GMime's strings do */
    for (char *p = value; *p; p++) {
        if (*p == '\r' || *p == '\n') {
            *p = ' '; /* unfolded */
        }
    }
    GMimeContentType *ct = g_mime_content_type_parse(NULL, value);
    const char *type = g_mime_content_type_get_media_type(ct);
    const char *subtype = g_mime_content_type_get_media_subtype(ct);
    scan_kind_t kind = SCAN_LEAF;
    if (!type || !subtype) {
        kind = fallback;
    } else if (g_ascii_strcasecmp(type, "application") == 0 &&
               g_ascii_strcasecmp(subtype, "octet-stream") == 0 &&
               wasl_ascii_find_ci(value, strlen(value), "octet-stream") == strlen(value)) {
        kind = fallback; /* GMime's answer for a value it could not parse */
    } else if (g_ascii_strcasecmp(type, "multipart") == 0) {
        kind = SCAN_MULTIPART;
        const char *b = g_mime_content_type_get_parameter(ct, "boundary");
        *boundary = b ? g_strdup(b) : NULL;
    } else if (g_ascii_strcasecmp(type, "message") == 0 &&
               (g_ascii_strcasecmp(subtype, "rfc822") == 0 ||
                g_ascii_strcasecmp(subtype, "news") == 0 ||
                g_ascii_strcasecmp(subtype, "global") == 0)) {
        kind = SCAN_MESSAGE;
    }
    *digest = kind == SCAN_MULTIPART && g_ascii_strcasecmp(subtype, "digest") == 0;
    g_object_unref(ct);
    g_free(value);
    return kind;
}

static void scan_pop(scan_t *s, size_t keep)
{
    while (s->nlevels > keep) {
        free(s->levels[--s->nlevels].marker);
    }
}

/* Pushes the boundary of a multipart whose header block was just read at `depth`; -1 when out
 * of memory. depth + 1 <= max_depth and each level is one deeper, so room is left. */
static int scan_push(scan_t *s, const char *boundary, size_t depth, bool digest)
{
    scan_level_t *l = &s->levels[s->nlevels];
    l->marker_len = 2 + strlen(boundary);
    l->marker = malloc(l->marker_len + 1);
    if (!l->marker) {
        return -1;
    }
    snprintf(l->marker, l->marker_len + 1, "--%s", boundary);
    l->depth = depth;
    l->digest = digest;
    s->nlevels++;
    return 0;
}

/* One entity's header block at s->pos, the entity being at *depth (a child of a digest when
 * *in_digest): counts it, checks the limits, pushes a multipart's boundary. For a
 * message/rfc822 whose own header block follows at once, moves *depth one down and sets
 * *want_headers again. Returns FITS or the limit exceeded (with err). */
static intake_email_limit_t scan_entity(scan_t *s, size_t *depth, bool *in_digest,
                                        bool *want_headers, char *err, size_t errlen)
{
    const intake_email_limits_t *lim = s->limits;
    *want_headers = false;
    if (++s->shape->parts > lim->max_parts) {
        wasl_set_err(err, errlen, "too many MIME parts (max %zu)", lim->max_parts);
        return INTAKE_EMAIL_OVER_PARTS;
    }
    size_t ct_at = 0, ct_len = 0;
    intake_email_limit_t over = scan_headers(s, &ct_at, &ct_len, err, errlen);
    if (over != INTAKE_EMAIL_FITS) {
        return over;
    }
    char *boundary = NULL;
    bool digest = false;
    scan_kind_t kind = scan_content_type(s->raw, ct_at, ct_len, *in_digest, &boundary, &digest);
    if (kind != SCAN_LEAF) {
        if (*depth + 1 > lim->max_depth) {
            g_free(boundary);
            wasl_set_err(err, errlen, "MIME nesting too deep (max %zu)", lim->max_depth);
            return INTAKE_EMAIL_OVER_DEPTH;
        }
        if (*depth + 1 > s->shape->depth) {
            s->shape->depth = *depth + 1;
        }
    }
    if (kind == SCAN_MULTIPART && boundary) {
        if (scan_push(s, boundary, *depth, digest) < 0) {
            g_free(boundary);
            wasl_set_err(err, errlen, "out of memory");
            return INTAKE_EMAIL_NO_MEMORY;
        }
    } else if (kind == SCAN_MESSAGE) {
        bool end;
        size_t next, n = s->pos < s->len ? scan_line(s, &next) : 0;
        if (s->pos >= s->len || scan_boundary(s, s->raw + s->pos, n, &end) < 0) {
            (*depth)++; /* the forwarded message's own header block follows */
            *in_digest = false;
            *want_headers = true;
        }
    }
    g_free(boundary);
    return INTAKE_EMAIL_FITS;
}

/* The whole scan (raw already past any mbox "From " line). */
static intake_email_limit_t scan_message(scan_t *s, char *err, size_t errlen)
{
    const intake_email_limits_t *lim = s->limits;
    size_t depth = 0;       /* depth of the entity whose header block comes next */
    bool in_digest = false; /* that entity is a child of a multipart/digest */
    bool want_headers = true;
    for (;;) {
        if (want_headers) {
            intake_email_limit_t over =
                scan_entity(s, &depth, &in_digest, &want_headers, err, errlen);
            if (over != INTAKE_EMAIL_FITS) {
                return over;
            }
            continue;
        }
        if (s->pos >= s->len) {
            return INTAKE_EMAIL_FITS;
        }
        size_t next, n = scan_line(s, &next);
        bool end;
        long k = scan_boundary(s, s->raw + s->pos, n, &end);
        s->pos = next;
        if (k < 0) {
            s->shape->content_bytes += n + 1;
            if (s->shape->content_bytes > lim->max_decoded_bytes) {
                wasl_set_err(err, errlen, "MIME content too large (max %zu bytes)",
                             lim->max_decoded_bytes);
                return INTAKE_EMAIL_OVER_DECODED_BYTES;
            }
            continue;
        }
        if (end) {
            scan_pop(s, (size_t)k); /* closes it and every multipart inside it */
            continue;
        }
        scan_pop(s, (size_t)k + 1);
        depth = s->levels[k].depth + 1;
        in_digest = s->levels[k].digest;
        want_headers = true;
    }
}

static intake_email_limit_t prescan(const char *raw, size_t len,
                                    const intake_email_limits_t *limits,
                                    intake_email_shape_t *shape, char *err, size_t errlen)
{
    memset(shape, 0, sizeof *shape);
    scan_t s = {.raw = raw, .len = len, .limits = limits, .shape = shape};
    s.levels = calloc(limits->max_depth + 1, sizeof *s.levels);
    if (!s.levels) {
        wasl_set_err(err, errlen, "out of memory");
        return INTAKE_EMAIL_NO_MEMORY;
    }
    intake_email_limit_t over = scan_message(&s, err, errlen);
    scan_pop(&s, 0);
    free(s.levels);
    return over;
}

/* "sha256:" + hex of raw with every CRLF read as LF, into a new string. */
static char *synthesize_msgid(const char *raw, size_t len)
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    size_t start = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (raw[i] == '\r' && raw[i + 1] == '\n') {
            crypto_hash_sha256_update(&st, (const unsigned char *)raw + start, i - start);
            start = i + 1;
        }
    }
    crypto_hash_sha256_update(&st, (const unsigned char *)raw + start, len - start);
    char hex[65];
    hex_digest(&st, hex);
    char *id = malloc(sizeof "sha256:" + 64);
    if (id) {
        snprintf(id, sizeof "sha256:" + 64, "sha256:%s", hex);
    }
    return id;
}

/* ---- public API ----------------------------------------------------------------------------- */

void intake_email_init(void)
{
    if (atomic_load(&initialized)) {
        return;
    }
    pthread_mutex_lock(&init_lock);
    if (!atomic_load(&initialized)) {
        g_mime_init();
        /* -1 only when no random source exists; SHA-256 does not need one. */
        if (sodium_init() < 0) {
            fprintf(stderr, "intake email: sodium_init failed (SHA-256 still works)\n");
        }
        atomic_store(&initialized, true);
    }
    pthread_mutex_unlock(&init_lock);
}

void intake_email_shutdown(void)
{
    pthread_mutex_lock(&init_lock);
    if (atomic_load(&initialized)) {
        g_mime_shutdown();
        atomic_store(&initialized, false);
    }
    pthread_mutex_unlock(&init_lock);
}

void intake_email_destroy(intake_email_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    intake_email_t *m = *self_p;
    free(m->message_id);
    free(m->from_addr);
    free(m->from_name);
    free(m->subject);
    free(m->body);
    free(m->in_reply_to);
    if (m->references) {
        for (size_t i = 0; m->references[i]; i++) {
            free(m->references[i]);
        }
        free(m->references);
    }
    free(m->date);
    free(m->auto_submitted);
    for (size_t i = 0; i < m->nauth_results; i++) {
        free(m->auth_results[i]);
    }
    free(m->auth_results);
    for (size_t i = 0; i < m->nattachments; i++) {
        free(m->attachments[i].name);
        free(m->attachments[i].type);
    }
    free(m->attachments);
    free(m);
    *self_p = NULL;
}

/* Header names any real message carries at least one of. */
static bool looks_like_message(GMimeObject *msg)
{
    static const char *const names[] = {"From",        "Sender",       "To",       "Cc",
                                        "Date",        "Message-ID",   "Subject",  "Received",
                                        "Return-Path", "MIME-Version", "Reply-To", NULL};
    for (size_t i = 0; names[i]; i++) {
        if (g_mime_object_get_header(msg, names[i])) {
            return true;
        }
    }
    return false;
}

static int finish_body(parse_ctx_t *ctx)
{
    GString *clean = wasl_convert_clean_body(ctx->body);
    size_t max = ctx->limits->max_body_bytes;
    size_t marker = strlen(BODY_TRUNCATED_MARKER);
    if (clean->len > max || ctx->body_truncated) {
        size_t room = max > marker ? max - marker : 0;
        g_string_truncate(clean, wasl_utf8_cut(clean->str, clean->len, room));
        g_string_append(clean, BODY_TRUNCATED_MARKER);
    }
    ctx->out->body = strdup(clean->str);
    g_string_free(clean, TRUE);
    return ctx->out->body ? 0 : -1;
}

/* Skips a leading mbox "From " line (moving *raw, *len) and refuses what is empty, not a
 * message, or over a limit, before GMime builds anything. 0, or -1 with err. */
static int admit(const char **raw, size_t *len, const intake_email_limits_t *limits, char *err,
                 size_t errlen)
{
    if (!*raw || *len == 0) {
        wasl_set_err(err, errlen, "empty message");
        return -1;
    }
    size_t skip = mbox_from_line(*raw, *len);
    *raw += skip;
    *len -= skip;
    if (*len == 0 || !starts_with_field(*raw, *len)) {
        wasl_set_err(err, errlen, *len == 0 ? "empty message" : "not an RFC 5322 message");
        return -1;
    }
    intake_email_shape_t shape;
    if (top_header_nul(*raw, *len, err, errlen) < 0 ||
        prescan(*raw, *len, limits, &shape, err, errlen) != INTAKE_EMAIL_FITS) {
        return -1;
    }
    return 0;
}

/* The fields taken from the top header block: Message-ID (synthesized from raw[0..len) when
 * unusable), Subject, From, threading, Date, Authentication-Results. -1 when out of memory. */
static int set_header_fields(intake_email_t *m, GMimeMessage *msg, GMimeParserOptions *options,
                             const char *raw, size_t len)
{
    const char *mid = g_mime_message_get_message_id(msg);
    if (msgid_ok(mid)) {
        m->message_id = strdup(mid);
    } else {
        m->message_id = synthesize_msgid(raw, len);
        m->message_id_synthesized = true;
    }
    m->subject = wasl_convert_one_line(g_mime_message_get_subject(msg));
    if (!m->message_id || !m->subject || set_from(m, msg) < 0 ||
        set_references(m, options, GMIME_OBJECT(msg)) < 0 || set_date(m, msg) < 0 ||
        set_auth_results(m, GMIME_OBJECT(msg)) < 0) {
        return -1;
    }
    return 0;
}

intake_email_t *intake_email_parse(const char *raw, size_t len, const intake_email_limits_t *limits,
                                   char *err, size_t errlen)
{
    static const intake_email_limits_t defaults = INTAKE_EMAIL_LIMITS_DEFAULT;
    static const char *const fallback_charsets[] = {"UTF-8", "windows-1256", "iso-8859-1", NULL};
    if (!limits) {
        limits = &defaults;
    }
    wasl_set_err(err, errlen, "%s", "");
    intake_email_init();

    if (admit(&raw, &len, limits, err, errlen) < 0) {
        return NULL;
    }

    parse_ctx_t ctx = {.limits = limits, .err = err, .errlen = errlen};
    GMimeParserOptions *options = g_mime_parser_options_new();
    g_mime_parser_options_set_fallback_charsets(options, (const char **)fallback_charsets);
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(raw, len);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    GMimeMessage *msg = g_mime_parser_construct_message(parser, options);
    g_object_unref(parser);
    g_object_unref(stream); /* the message's parts hold their own references to it */
    intake_email_t *m = NULL;
    if (!msg || !looks_like_message(GMIME_OBJECT(msg))) {
        wasl_set_err(err, errlen, "not an RFC 5322 message");
        goto error;
    }
    m = calloc(1, sizeof *m);
    ctx.out = m;
    ctx.body = g_string_new(NULL);
    if (!m) {
        goto nomem;
    }

    GMimeObject *top = g_mime_message_get_mime_part(msg);
    if (top && walk(&ctx, top, 0, WALK_COUNT | WALK_BODY | WALK_ATTACH) < 0) {
        goto error;
    }
    if (blank(ctx.body) && ctx.first_forward) {
        /* Forwarded as an attachment with nothing written around it: its text is the body. */
        walk(&ctx, GMIME_OBJECT(ctx.first_forward), 0, WALK_BODY);
    }
    if (finish_body(&ctx) < 0) {
        goto nomem;
    }

    if (set_header_fields(m, msg, options, raw, len) < 0) {
        goto nomem;
    }
    m->auto_submitted = auto_reason(&ctx, GMIME_OBJECT(msg));

    g_string_free(ctx.body, TRUE);
    g_object_unref(msg);
    g_mime_parser_options_free(options);
    return m;

nomem:
    wasl_set_err(err, errlen, "out of memory");
error:
    if (ctx.body) {
        g_string_free(ctx.body, TRUE);
    }
    intake_email_destroy(&m);
    if (msg) {
        g_object_unref(msg);
    }
    g_mime_parser_options_free(options);
    return NULL;
}

intake_email_limit_t intake_email_prescan(const char *raw, size_t len,
                                          const intake_email_limits_t *limits,
                                          intake_email_shape_t *shape, char *err, size_t errlen)
{
    static const intake_email_limits_t defaults = INTAKE_EMAIL_LIMITS_DEFAULT;
    wasl_set_err(err, errlen, "%s", "");
    intake_email_init(); /* GMime parses the Content-Type values */
    size_t skip = raw ? mbox_from_line(raw, len) : 0;
    return prescan(raw ? raw + skip : "", raw ? len - skip : 0, limits ? limits : &defaults, shape,
                   err, errlen);
}

const char *intake_email_limit_name(intake_email_limit_t limit)
{
    switch (limit) {
    case INTAKE_EMAIL_OVER_PARTS:
        return "max_parts";
    case INTAKE_EMAIL_OVER_DEPTH:
        return "max_depth";
    case INTAKE_EMAIL_OVER_HEADERS:
        return "max_headers";
    case INTAKE_EMAIL_OVER_HEADER_BYTES:
        return "max_header_bytes";
    case INTAKE_EMAIL_OVER_DECODED_BYTES:
        return "max_decoded_bytes";
    case INTAKE_EMAIL_FITS:
    case INTAKE_EMAIL_NO_MEMORY:
        break;
    }
    return "";
}

json_t *intake_email_attachments_json(const intake_email_t *self)
{
    json_t *array = json_array();
    if (!array || !self) {
        return array;
    }
    for (size_t i = 0; i < self->nattachments; i++) {
        const intake_attachment_t *a = &self->attachments[i];
        json_t *item = json_pack("{s:s?, s:s, s:I, s:s}", "name", a->name, "type", a->type, "size",
                                 (json_int_t)a->size, "sha256", a->sha256);
        if (item && a->oversized && json_object_set_new(item, "oversized", json_true()) < 0) {
            json_decref(item);
            item = NULL;
        }
        if (!item || json_array_append_new(array, item) < 0) {
            json_decref(array);
            return NULL;
        }
    }
    return array;
}
