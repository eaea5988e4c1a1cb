/* test_proto — the generated message codec: round trips, every decoding error, a mutation loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_proto.h"

#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Mutations the pseudo-random loop applies; a fixed seed keeps failures reproducible. */
#define MUTATION_ROUNDS 20000
#define MUTATION_SEED   0x9e3779b97f4a7c15ull

/* ---- building messages ------------------------------------------------------------------- */

static char *dup_or_die(const char *s)
{
    char *copy = strdup(s);
    assert_non_null(copy);
    return copy;
}

/* A malloc'd string of `len` copies of `c`. */
static char *repeat(char c, size_t len)
{
    char *s = malloc(len + 1);
    assert_non_null(s);
    memset(s, c, len);
    s[len] = '\0';
    return s;
}

/* A NULL-terminated list of `count` copies of `item`, as a decoded strlist would be. */
static char **strlist(size_t count, const char *item)
{
    char **items = calloc(count + 1, sizeof *items);
    assert_non_null(items);
    for (size_t i = 0; i < count; i++)
        items[i] = dup_or_die(item);
    return items;
}

/* A message of type `t` with every required field set and, when `full`, every optional one. A
 * message added to the model fails here until this test learns it. */
static wasl_msg_t *make_msg(wasl_msg_type_t t, bool full)
{
    wasl_msg_t *msg = wasl_msg_new(t);
    assert_non_null(msg);
    switch (t) {
    case WASL_MSG_TICKET_RECEIVED:
        msg->u.ticket_received.work_id = UINT64_MAX;
        break;
    case WASL_MSG_TICKET_CLASSIFIED:
        msg->u.ticket_classified.work_id = 7;
        break;
    case WASL_MSG_NOTIFY_REQUESTED:
        msg->u.notify_requested.notification_id = 1ull << 40;
        break;
    case WASL_MSG_CASE_LOOKUP_REQUEST: {
        wasl_msg_case_lookup_request_t *m = &msg->u.case_lookup_request;
        m->request_id = dup_or_die("ivr-call-77:3");
        m->case_number = dup_or_die("4512345678");
        m->verifier_kind = dup_or_die("national_id");
        m->verifier = dup_or_die("1012345672");
        m->channel = dup_or_die("phone");
        m->client = dup_or_die("pbx");
        if (full) {
            m->call_id = dup_or_die("call-77");
            m->caller = dup_or_die("+966551234567");
        }
        break;
    }
    case WASL_MSG_CASE_LOOKUP_REPLY: {
        wasl_msg_case_lookup_reply_t *m = &msg->u.case_lookup_reply;
        m->request_id = dup_or_die("ivr-call-77:3");
        m->outcome = dup_or_die(full ? "found" : "denied");
        if (full) {
            m->retry_after_s = 900;
            m->has_retry_after_s = true;
            m->case_number = dup_or_die("4512345678");
            m->court = dup_or_die("المحكمة الإدارية بالرياض");
            m->circuit = dup_or_die("الدائرة الإدارية الثالثة");
            m->status = dup_or_die("in_hearing");
            m->status_ar = dup_or_die("منظورة");
            m->hearing_utc = dup_or_die("2025-02-26T06:30:00Z");
            m->hearing_local = dup_or_die("2025-02-26T09:30:00+03:00");
            m->hijri_year = 1446;
            m->has_hijri_year = true;
            m->hijri_month = 8;
            m->has_hijri_month = true;
            m->hijri_day = 27;
            m->has_hijri_day = true;
            m->hijri_month_name_ar = dup_or_die("شعبان");
            m->hearing_text_ar = dup_or_die("الأربعاء ٢٧ شعبان ١٤٤٦هـ الساعة ٩:٣٠ صباحًا");
            m->hearing_text_en =
                dup_or_die("Wednesday 27 Sha'ban 1446 AH (26 February 2025), 9:30 AM");
            m->updates = strlist(3, "تم قيد الدعوى");
            m->updates_count = 3;
            m->speech_ar = dup_or_die("جلستكم القادمة يوم الأربعاء");
            m->speech_en = dup_or_die("Your next hearing is on Wednesday");
        }
        break;
    }
    default:
        fail_msg("test_proto.c has no sample of %s: add it", wasl_msg_type_name(t));
    }
    return msg;
}

/* ---- comparing messages ------------------------------------------------------------------ */

static void assert_str_same(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

/* `b` is the decoded side, which must also be NULL-terminated. */
static void assert_strlist_same(char **a, size_t a_count, char **b, size_t b_count)
{
    assert_int_equal(a_count, b_count);
    assert_int_equal(a == NULL, b == NULL);
    for (size_t i = 0; i < a_count; i++)
        assert_string_equal(a[i], b[i]);
    if (b)
        assert_null(b[b_count]);
}

static void assert_msg_same(const wasl_msg_t *x, const wasl_msg_t *y)
{
    assert_int_equal(x->type, y->type);
    switch (x->type) {
    case WASL_MSG_TICKET_RECEIVED:
        assert_true(x->u.ticket_received.work_id == y->u.ticket_received.work_id);
        break;
    case WASL_MSG_TICKET_CLASSIFIED:
        assert_true(x->u.ticket_classified.work_id == y->u.ticket_classified.work_id);
        break;
    case WASL_MSG_NOTIFY_REQUESTED:
        assert_true(x->u.notify_requested.notification_id == y->u.notify_requested.notification_id);
        break;
    case WASL_MSG_CASE_LOOKUP_REQUEST: {
        const wasl_msg_case_lookup_request_t *a = &x->u.case_lookup_request,
                                             *b = &y->u.case_lookup_request;
        assert_str_same(a->request_id, b->request_id);
        assert_str_same(a->case_number, b->case_number);
        assert_str_same(a->verifier_kind, b->verifier_kind);
        assert_str_same(a->verifier, b->verifier);
        assert_str_same(a->channel, b->channel);
        assert_str_same(a->client, b->client);
        assert_str_same(a->call_id, b->call_id);
        assert_str_same(a->caller, b->caller);
        break;
    }
    case WASL_MSG_CASE_LOOKUP_REPLY: {
        const wasl_msg_case_lookup_reply_t *a = &x->u.case_lookup_reply,
                                           *b = &y->u.case_lookup_reply;
        assert_str_same(a->request_id, b->request_id);
        assert_str_same(a->outcome, b->outcome);
        assert_int_equal(a->has_retry_after_s, b->has_retry_after_s);
        assert_true(a->retry_after_s == b->retry_after_s);
        assert_str_same(a->case_number, b->case_number);
        assert_str_same(a->court, b->court);
        assert_str_same(a->circuit, b->circuit);
        assert_str_same(a->status, b->status);
        assert_str_same(a->status_ar, b->status_ar);
        assert_str_same(a->hearing_utc, b->hearing_utc);
        assert_str_same(a->hearing_local, b->hearing_local);
        assert_int_equal(a->has_hijri_year, b->has_hijri_year);
        assert_true(a->hijri_year == b->hijri_year && a->hijri_month == b->hijri_month &&
                    a->hijri_day == b->hijri_day);
        assert_str_same(a->hijri_month_name_ar, b->hijri_month_name_ar);
        assert_str_same(a->hearing_text_ar, b->hearing_text_ar);
        assert_str_same(a->hearing_text_en, b->hearing_text_en);
        assert_strlist_same(a->updates, a->updates_count, b->updates, b->updates_count);
        assert_str_same(a->speech_ar, b->speech_ar);
        assert_str_same(a->speech_en, b->speech_en);
        break;
    }
    default:
        fail_msg("test_proto.c cannot compare %s: add it", wasl_msg_type_name(x->type));
    }
}

/* ---- encoding helpers -------------------------------------------------------------------- */

static char *encode_ok(const wasl_msg_t *msg, size_t *len)
{
    char *data = NULL;
    wasl_msg_error_t err;
    int rc = wasl_msg_encode(msg, &data, len, &err);
    if (rc != 0)
        fail_msg("encode %s: %s (%s)", wasl_msg_type_name(msg->type), err.message, err.field);
    assert_non_null(data);
    return data;
}

/* The encoding of a sample message (see make_msg); the caller frees it. */
static char *sample(wasl_msg_type_t t, bool full, size_t *len)
{
    wasl_msg_t *msg = make_msg(t, full);
    char *data = encode_ok(msg, len);
    wasl_msg_destroy(&msg);
    return data;
}

/* Decodes bytes that must fail, and checks the code and (unless NULL) the field. */
static void expect_error(const void *data, size_t len, int code, const char *field)
{
    wasl_msg_error_t err;
    memset(&err, 0x5a, sizeof err); /* the decoder must overwrite all of it */
    wasl_msg_t *msg = wasl_msg_decode(data, len, &err);
    if (msg) {
        wasl_msg_destroy(&msg);
        fail_msg("decoded, expected %s", wasl_msg_strerror(code));
    }
    if (err.code != code)
        fail_msg("got %s (%s: %s), expected %s", wasl_msg_strerror(err.code), err.field,
                 err.message, wasl_msg_strerror(code));
    assert_non_null(memchr(err.field, '\0', sizeof err.field));
    assert_non_null(memchr(err.message, '\0', sizeof err.message));
    assert_true(strlen(err.message) > 0);
    if (field)
        assert_string_equal(err.field, field);
}

static wasl_msg_t *decode_ok(const void *data, size_t len)
{
    wasl_msg_error_t err;
    wasl_msg_t *msg = wasl_msg_decode(data, len, &err);
    if (!msg)
        fail_msg("decode: %s (%s: %s)", wasl_msg_strerror(err.code), err.field, err.message);
    assert_int_equal(err.code, WASL_MSG_OK);
    return msg;
}

/* ---- rewriting encodings ----------------------------------------------------------------- */

/* Packs one value into `pk`; `ctx` is the value's description. */
typedef void (*value_fn)(msgpack_packer *pk, const void *ctx);

typedef struct {
    const char *bytes;
    size_t len;
} raw_t;

/* Appends raw bytes: lets a test write any msgpack encoding, valid or not. */
static void pack_raw(msgpack_packer *pk, const void *ctx)
{
    const raw_t *raw = ctx;
    assert_int_equal(pk->callback(pk->data, raw->bytes, raw->len), 0);
}

static void pack_text(msgpack_packer *pk, const void *ctx)
{
    const raw_t *raw = ctx;
    msgpack_pack_str(pk, raw->len);
    msgpack_pack_str_body(pk, raw->bytes, raw->len);
}

static void pack_nil(msgpack_packer *pk, const void *ctx)
{
    (void)ctx;
    msgpack_pack_nil(pk);
}

static void pack_empty_map(msgpack_packer *pk, const void *ctx)
{
    (void)ctx;
    msgpack_pack_map(pk, 0);
}

static void pack_u64(msgpack_packer *pk, const void *ctx)
{
    msgpack_pack_uint64(pk, *(const uint64_t *)ctx);
}

static void pack_i64(msgpack_packer *pk, const void *ctx)
{
    msgpack_pack_int64(pk, *(const int64_t *)ctx);
}

/* An array of `*ctx` strings of one byte each. */
static void pack_items(msgpack_packer *pk, const void *ctx)
{
    size_t count = *(const size_t *)ctx;
    msgpack_pack_array(pk, count);
    for (size_t i = 0; i < count; i++) {
        msgpack_pack_str(pk, 1);
        msgpack_pack_str_body(pk, "x", 1);
    }
}

/* A bin of `*ctx` zero bytes. */
static void pack_zero_bin(msgpack_packer *pk, const void *ctx)
{
    size_t len = *(const size_t *)ctx;
    char *zeros = calloc(len ? len : 1, 1);
    assert_non_null(zeros);
    msgpack_pack_bin(pk, len);
    msgpack_pack_bin_body(pk, zeros, len);
    free(zeros);
}

/* Re-packs the map encoded in `data`, leaving out key `drop` (unless NULL) and then appending
 * key `add` (unless NULL) with a value from `value`. Returns a malloc'd encoding. */
static char *rewrite(const char *data, size_t len, const char *drop, const char *add,
                     value_fn value, const void *ctx, size_t *out_len)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&unpacked, data, len, &off), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object_map *map = &unpacked.data.via.map;
    assert_int_equal(unpacked.data.type, MSGPACK_OBJECT_MAP);
    size_t kept = 0;
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object_str *key = &map->ptr[i].key.via.str;
        if (!drop || key->size != strlen(drop) || memcmp(key->ptr, drop, key->size) != 0)
            kept++;
    }
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, kept + (add ? 1 : 0));
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object_str *key = &map->ptr[i].key.via.str;
        if (drop && key->size == strlen(drop) && memcmp(key->ptr, drop, key->size) == 0)
            continue;
        msgpack_pack_object(&pk, map->ptr[i].key);
        msgpack_pack_object(&pk, map->ptr[i].val);
    }
    if (add) {
        msgpack_pack_str(&pk, strlen(add));
        msgpack_pack_str_body(&pk, add, strlen(add));
        value(&pk, ctx);
    }
    msgpack_unpacked_destroy(&unpacked);
    *out_len = sbuf.size;
    return msgpack_sbuffer_release(&sbuf);
}

/* Replaces (or adds) one key of a sample and expects the decoder to refuse it. */
static void expect_field_error(wasl_msg_type_t t, const char *key, value_fn value, const void *ctx,
                               int code, const char *field)
{
    size_t len, bad_len;
    char *data = sample(t, true, &len);
    char *bad = rewrite(data, len, key, key, value, ctx, &bad_len);
    expect_error(bad, bad_len, code, field);
    free(bad);
    free(data);
}

/* Replaces (or adds) one key of a sample and returns the decoded message. */
static wasl_msg_t *decode_with(wasl_msg_type_t t, const char *key, value_fn value, const void *ctx)
{
    size_t len, new_len;
    char *data = sample(t, true, &len);
    char *rewritten = rewrite(data, len, key, key, value, ctx, &new_len);
    wasl_msg_t *msg = decode_ok(rewritten, new_len);
    free(rewritten);
    free(data);
    return msg;
}

/* ---- tests: metadata --------------------------------------------------------------------- */

static void test_type_metadata(void **state)
{
    (void)state;
    assert_string_equal(wasl_msg_type_name(WASL_MSG_TICKET_RECEIVED), "ticket.received");
    assert_string_equal(wasl_msg_type_stage(WASL_MSG_TICKET_RECEIVED), "classify");
    assert_int_equal(wasl_msg_type_version(WASL_MSG_TICKET_RECEIVED), 2);
    assert_string_equal(wasl_msg_type_name(WASL_MSG_TICKET_CLASSIFIED), "ticket.classified");
    assert_string_equal(wasl_msg_type_stage(WASL_MSG_TICKET_CLASSIFIED), "route");
    assert_int_equal(wasl_msg_type_version(WASL_MSG_TICKET_CLASSIFIED), 2);
    assert_string_equal(wasl_msg_type_name(WASL_MSG_NOTIFY_REQUESTED), "notify.requested");
    assert_string_equal(wasl_msg_type_stage(WASL_MSG_NOTIFY_REQUESTED), "notify");
    assert_int_equal(wasl_msg_type_version(WASL_MSG_NOTIFY_REQUESTED), 2);
    for (int t = 1; t <= WASL_MSG_TYPE_COUNT; t++) {
        assert_true(wasl_msg_type_version((wasl_msg_type_t)t) >= 1);
        assert_string_not_equal(wasl_msg_type_name((wasl_msg_type_t)t), "unknown");
    }
    assert_string_equal(wasl_msg_type_name(WASL_MSG_NONE), "unknown");
    assert_string_equal(wasl_msg_type_stage((wasl_msg_type_t)(WASL_MSG_TYPE_COUNT + 1)), "unknown");
    assert_int_equal(wasl_msg_type_version(WASL_MSG_NONE), 0);
    assert_true(WASL_MSG_LIMIT > 0);
    for (int code = WASL_MSG_OK; code <= WASL_MSG_ESEND; code++)
        assert_string_not_equal(wasl_msg_strerror(code), "unknown error");
    assert_string_equal(wasl_msg_strerror(-7), "unknown error");
}

static void test_new_destroy(void **state)
{
    (void)state;
    assert_null(wasl_msg_new(WASL_MSG_NONE));
    assert_null(wasl_msg_new((wasl_msg_type_t)(WASL_MSG_TYPE_COUNT + 1)));
    wasl_msg_t *msg = wasl_msg_new(WASL_MSG_CASE_LOOKUP_REPLY);
    assert_non_null(msg);
    assert_int_equal(msg->type, WASL_MSG_CASE_LOOKUP_REPLY);
    assert_null(msg->u.case_lookup_reply.request_id);
    assert_null(msg->u.case_lookup_reply.updates);
    wasl_msg_destroy(&msg);
    assert_null(msg);
    wasl_msg_destroy(&msg);
    msg = make_msg(WASL_MSG_CASE_LOOKUP_REPLY, true);
    wasl_msg_destroy(&msg);
    assert_null(msg);
}

/* ---- tests: round trips ------------------------------------------------------------------ */

static void round_trip(bool full)
{
    for (int t = 1; t <= WASL_MSG_TYPE_COUNT; t++) {
        wasl_msg_t *msg = make_msg((wasl_msg_type_t)t, full);
        size_t len;
        char *data = encode_ok(msg, &len);
        assert_true(len <= WASL_MSG_LIMIT);
        wasl_msg_t *back = decode_ok(data, len);
        assert_msg_same(msg, back);
        /* The encoding is canonical: encoding the decoded message gives the same bytes. */
        size_t again_len;
        char *again = encode_ok(back, &again_len);
        assert_int_equal(again_len, len);
        assert_memory_equal(again, data, len);
        free(again);
        free(data);
        wasl_msg_destroy(&back);
        wasl_msg_destroy(&msg);
    }
}

static void test_round_trip_all_fields(void **state)
{
    (void)state;
    round_trip(true);
}

static void test_round_trip_required_only(void **state)
{
    (void)state;
    round_trip(false);
}

static void test_round_trip_limits(void **state)
{
    (void)state;
    /* Every field at its max decodes. */
    wasl_msg_t *msg = make_msg(WASL_MSG_CASE_LOOKUP_REQUEST, true);
    wasl_msg_case_lookup_request_t *q = &msg->u.case_lookup_request;
    free(q->request_id);
    q->request_id = repeat('r', 64);
    free(q->case_number);
    q->case_number = repeat('1', 32);
    free(q->call_id);
    q->call_id = repeat('c', 128);
    size_t len;
    char *data = encode_ok(msg, &len);
    wasl_msg_t *back = decode_ok(data, len);
    assert_msg_same(msg, back);
    free(data);
    wasl_msg_destroy(&back);
    wasl_msg_destroy(&msg);

    msg = make_msg(WASL_MSG_CASE_LOOKUP_REPLY, true);
    wasl_msg_case_lookup_reply_t *r = &msg->u.case_lookup_reply;
    for (size_t i = 0; i < r->updates_count; i++)
        free(r->updates[i]);
    free(r->updates);
    r->updates = strlist(3, "u");
    for (size_t i = 0; i < 3; i++) {
        free(r->updates[i]);
        r->updates[i] = repeat('u', 1024);
    }
    r->updates_count = 3;
    free(r->speech_ar);
    r->speech_ar = repeat('s', 4096);
    data = encode_ok(msg, &len);
    back = decode_ok(data, len);
    assert_msg_same(msg, back);
    free(data);
    wasl_msg_destroy(&back);
    wasl_msg_destroy(&msg);

    /* A present-but-empty optional strlist stays present. */
    msg = make_msg(WASL_MSG_CASE_LOOKUP_REPLY, false);
    msg->u.case_lookup_reply.updates = calloc(1, sizeof(char *));
    assert_non_null(msg->u.case_lookup_reply.updates);
    data = encode_ok(msg, &len);
    back = decode_ok(data, len);
    assert_non_null(back->u.case_lookup_reply.updates);
    assert_int_equal(back->u.case_lookup_reply.updates_count, 0);
    free(data);
    wasl_msg_destroy(&back);
    wasl_msg_destroy(&msg);
}

static void test_decode_lenient_numbers(void **state)
{
    (void)state;
    /* Non-canonical int encodings that fit are fine. (No message has an i64 or f64 field since
     * the nudges carry only their work row; the decoder's paths for them are kept, like bin's.) */
    raw_t int8_five = {"\xd0\x05", 2};
    wasl_msg_t *msg = decode_with(WASL_MSG_TICKET_RECEIVED, "work_id", pack_raw, &int8_five);
    assert_true(msg->u.ticket_received.work_id == 5);
    wasl_msg_destroy(&msg);
    raw_t u64_small = {"\xcf\x00\x00\x00\x00\x00\x00\x00\x07", 9};
    msg = decode_with(WASL_MSG_TICKET_CLASSIFIED, "work_id", pack_raw, &u64_small);
    assert_true(msg->u.ticket_classified.work_id == 7);
    wasl_msg_destroy(&msg);
    /* nil is absent: fine for an optional field. */
    msg = decode_with(WASL_MSG_CASE_LOOKUP_REQUEST, "call_id", pack_nil, NULL);
    assert_null(msg->u.case_lookup_request.call_id);
    wasl_msg_destroy(&msg);
    msg = decode_with(WASL_MSG_CASE_LOOKUP_REPLY, "retry_after_s", pack_nil, NULL);
    assert_false(msg->u.case_lookup_reply.has_retry_after_s);
    wasl_msg_destroy(&msg);
}

static void test_decode_skips_unknown_fields(void **state)
{
    (void)state;
    size_t len, len2, len3;
    wasl_msg_t *msg = make_msg(WASL_MSG_TICKET_RECEIVED, true);
    char *data = encode_ok(msg, &len);
    raw_t future = {"from a newer sender", 19};
    char *more = rewrite(data, len, NULL, "future_field", pack_text, &future, &len2);
    raw_t nested = {"\x82\xa1\x61\x92\x01\x02\xa1\x62\xc0", 9}; /* {"a":[1,2],"b":nil}: depth 3 */
    char *most = rewrite(more, len2, NULL, "zz_nested", pack_raw, &nested, &len3);
    wasl_msg_t *back = decode_ok(most, len3);
    assert_msg_same(msg, back);
    wasl_msg_destroy(&back);
    free(most);
    free(more);
    free(data);
    wasl_msg_destroy(&msg);
}

/* ---- tests: decoding errors -------------------------------------------------------------- */

static void test_decode_empty(void **state)
{
    (void)state;
    expect_error("", 0, WASL_MSG_ETRUNCATED, "");
    expect_error(NULL, 0, WASL_MSG_ETRUNCATED, "");
    wasl_msg_error_t err;
    assert_null(wasl_msg_recv_frame(NULL, &err));
    assert_int_equal(err.code, WASL_MSG_ETRUNCATED);
}

static void test_decode_truncated_everywhere(void **state)
{
    (void)state;
    for (int t = 1; t <= WASL_MSG_TYPE_COUNT; t++) {
        size_t len;
        char *data = sample((wasl_msg_type_t)t, true, &len);
        for (size_t cut = 0; cut < len; cut++) {
            char *copy = malloc(cut ? cut : 1); /* exact size, so ASan sees any overread */
            assert_non_null(copy);
            memcpy(copy, data, cut);
            expect_error(copy, cut, WASL_MSG_ETRUNCATED, "");
            free(copy);
        }
        free(data);
    }
}

static void test_decode_garbage(void **state)
{
    (void)state;
    expect_error("\xc1", 1, WASL_MSG_EGARBAGE, "");
    expect_error("hello, world", 12, WASL_MSG_EGARBAGE, "");
    expect_error("\x81\xa1x\xc1", 4, WASL_MSG_EGARBAGE, "");     /* 0xc1 inside */
    expect_error("\x81\x01\x02", 3, WASL_MSG_EGARBAGE, "");      /* int key */
    expect_error("\x81\xc4\x01x\x02", 5, WASL_MSG_EGARBAGE, ""); /* bin key */
    expect_error("\xa4type", 5, WASL_MSG_EGARBAGE, "");          /* a lone string */
    expect_error("\x80", 1, WASL_MSG_EMISSING, "type");          /* {} */
}

static void test_decode_top_level_array(void **state)
{
    (void)state;
    size_t len;
    char *data = sample(WASL_MSG_NOTIFY_REQUESTED, true, &len);
    char *wrapped = malloc(len + 1);
    assert_non_null(wrapped);
    wrapped[0] = (char)0x91; /* [message] */
    memcpy(wrapped + 1, data, len);
    expect_error(wrapped, len + 1, WASL_MSG_EGARBAGE, "");
    free(wrapped);
    free(data);
}

static void test_decode_trailing_bytes(void **state)
{
    (void)state;
    size_t len;
    char *data = sample(WASL_MSG_NOTIFY_REQUESTED, true, &len);
    char *twice = malloc(2 * len);
    assert_non_null(twice);
    memcpy(twice, data, len);
    memcpy(twice + len, data, len);
    expect_error(twice, len + 1, WASL_MSG_EGARBAGE, "");
    expect_error(twice, 2 * len, WASL_MSG_EGARBAGE, "");
    free(twice);
    free(data);
}

static void test_decode_unknown_type_and_version(void **state)
{
    (void)state;
    raw_t name = {"ticket.exploded", 15};
    expect_field_error(WASL_MSG_TICKET_RECEIVED, "type", pack_text, &name, WASL_MSG_EUNKNOWN,
                       "type");
    raw_t odd = {"\x01\xff\n", 3};
    expect_field_error(WASL_MSG_TICKET_RECEIVED, "type", pack_text, &odd, WASL_MSG_EUNKNOWN,
                       "type");
    /* v1 carried subject and body: an older sender's nudge is refused (its row waits for the
     * sweep), and so is a version from the future. */
    uint64_t v1 = 1, v3 = 3;
    expect_field_error(WASL_MSG_TICKET_RECEIVED, "v", pack_u64, &v1, WASL_MSG_EUNKNOWN, "v");
    expect_field_error(WASL_MSG_TICKET_RECEIVED, "v", pack_u64, &v3, WASL_MSG_EUNKNOWN, "v");
    uint64_t huge = UINT64_MAX;
    expect_field_error(WASL_MSG_NOTIFY_REQUESTED, "v", pack_u64, &huge, WASL_MSG_EUNKNOWN, "v");
    /* Malformed envelope values are type errors. */
    uint64_t five = 5;
    expect_field_error(WASL_MSG_TICKET_RECEIVED, "type", pack_u64, &five, WASL_MSG_ETYPE, "type");
    uint64_t zero = 0;
    expect_field_error(WASL_MSG_TICKET_RECEIVED, "v", pack_u64, &zero, WASL_MSG_ETYPE, "v");
    int64_t minus = -1;
    expect_field_error(WASL_MSG_TICKET_RECEIVED, "v", pack_i64, &minus, WASL_MSG_ETYPE, "v");
    raw_t one = {"1", 1};
    expect_field_error(WASL_MSG_TICKET_RECEIVED, "v", pack_text, &one, WASL_MSG_ETYPE, "v");
}

/* Drops every key of each type's required-only sample in turn: each one is required. */
static void test_decode_missing_required(void **state)
{
    (void)state;
    for (int t = 1; t <= WASL_MSG_TYPE_COUNT; t++) {
        size_t len;
        char *data = sample((wasl_msg_type_t)t, false, &len);
        msgpack_unpacked unpacked;
        msgpack_unpacked_init(&unpacked);
        size_t off = 0;
        assert_int_equal(msgpack_unpack_next(&unpacked, data, len, &off), MSGPACK_UNPACK_SUCCESS);
        const msgpack_object_map *map = &unpacked.data.via.map;
        assert_true(map->size >= 2);
        for (uint32_t i = 0; i < map->size; i++) {
            char key[64] = {0};
            assert_true(map->ptr[i].key.via.str.size < sizeof key);
            memcpy(key, map->ptr[i].key.via.str.ptr, map->ptr[i].key.via.str.size);
            size_t bad_len;
            char *bad = rewrite(data, len, key, NULL, NULL, NULL, &bad_len);
            expect_error(bad, bad_len, WASL_MSG_EMISSING, key);
            free(bad);
            /* nil counts as absent, except in the envelope where it is just wrong */
            bool envelope = strcmp(key, "type") == 0 || strcmp(key, "v") == 0;
            bad = rewrite(data, len, key, key, pack_nil, NULL, &bad_len);
            expect_error(bad, bad_len, envelope ? WASL_MSG_ETYPE : WASL_MSG_EMISSING, key);
            free(bad);
        }
        msgpack_unpacked_destroy(&unpacked);
        free(data);
    }
}

/* Replaces every field of each type's full sample with a map: wrong for every kind. */
static void test_decode_wrong_type(void **state)
{
    (void)state;
    for (int t = 1; t <= WASL_MSG_TYPE_COUNT; t++) {
        size_t len;
        char *data = sample((wasl_msg_type_t)t, true, &len);
        msgpack_unpacked unpacked;
        msgpack_unpacked_init(&unpacked);
        size_t off = 0;
        assert_int_equal(msgpack_unpack_next(&unpacked, data, len, &off), MSGPACK_UNPACK_SUCCESS);
        const msgpack_object_map *map = &unpacked.data.via.map;
        for (uint32_t i = 0; i < map->size; i++) {
            char key[64] = {0};
            memcpy(key, map->ptr[i].key.via.str.ptr, map->ptr[i].key.via.str.size);
            size_t bad_len;
            char *bad = rewrite(data, len, key, key, pack_empty_map, NULL, &bad_len);
            expect_error(bad, bad_len, WASL_MSG_ETYPE, key);
            free(bad);
        }
        msgpack_unpacked_destroy(&unpacked);
        free(data);
    }
    raw_t text = {"12", 2};
    expect_field_error(WASL_MSG_TICKET_RECEIVED, "work_id", pack_text, &text, WASL_MSG_ETYPE,
                       "work_id");
    int64_t minus = -1;
    expect_field_error(WASL_MSG_TICKET_RECEIVED, "work_id", pack_i64, &minus, WASL_MSG_ETYPE,
                       "work_id");
    raw_t dbl = {"\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", 9}; /* 1.0 is not an integer */
    expect_field_error(WASL_MSG_TICKET_CLASSIFIED, "work_id", pack_raw, &dbl, WASL_MSG_ETYPE,
                       "work_id");
    raw_t bin = {"\xc4\x02\x61\x62", 4}; /* bin is not str */
    expect_field_error(WASL_MSG_CASE_LOOKUP_REQUEST, "case_number", pack_raw, &bin,
                       WASL_MSG_ETYPE, "case_number");
    raw_t list = {"\x92\xa1x\x05", 4}; /* ["x", 5] */
    expect_field_error(WASL_MSG_CASE_LOOKUP_REPLY, "updates", pack_raw, &list, WASL_MSG_ETYPE,
                       "updates");
    raw_t yes = {"yes", 3}; /* a bool is not text */
    expect_field_error(WASL_MSG_CASE_LOOKUP_REQUEST, "contact", pack_text, &yes, WASL_MSG_ETYPE,
                       "contact");
}

static void test_decode_too_big_fields(void **state)
{
    (void)state;
    char *number = repeat('1', 33);
    raw_t long_number = {number, 33};
    expect_field_error(WASL_MSG_CASE_LOOKUP_REQUEST, "case_number", pack_text, &long_number,
                       WASL_MSG_ETOOBIG, "case_number");
    free(number);
    char *speech = repeat('s', 4097);
    raw_t long_speech = {speech, 4097};
    expect_field_error(WASL_MSG_CASE_LOOKUP_REPLY, "speech_ar", pack_text, &long_speech,
                       WASL_MSG_ETOOBIG, "speech_ar");
    free(speech);
    size_t too_many = 4;
    expect_field_error(WASL_MSG_CASE_LOOKUP_REPLY, "updates", pack_items, &too_many,
                       WASL_MSG_ETOOBIG, "updates");
    size_t most = 3;
    wasl_msg_t *msg = decode_with(WASL_MSG_CASE_LOOKUP_REPLY, "updates", pack_items, &most);
    assert_int_equal(msg->u.case_lookup_reply.updates_count, 3);
    wasl_msg_destroy(&msg);
    char item[4 + 1025];
    memcpy(item, "\x91\xda\x04\x01", 4); /* [str16 of 1025 bytes] */
    memset(item + 4, 'i', 1025);
    raw_t long_item = {item, sizeof item};
    expect_field_error(WASL_MSG_CASE_LOOKUP_REPLY, "updates", pack_raw, &long_item,
                       WASL_MSG_ETOOBIG, "updates");
}

static void test_decode_invalid_utf8(void **state)
{
    (void)state;
    static const raw_t bad[] = {
        {"\xc0\xaf", 2},             /* overlong '/' */
        {"\xe0\x80\xaf", 3},         /* overlong, 3 bytes */
        {"\xf0\x80\x80\xaf", 4},     /* overlong, 4 bytes */
        {"\xed\xa0\x80", 3},         /* surrogate U+D800 */
        {"\xed\xbf\xbf", 3},         /* surrogate U+DFFF */
        {"\xf4\x90\x80\x80", 4},     /* U+110000 */
        {"\xf8\x88\x80\x80\x80", 5}, /* old 5-byte form */
        {"\x80", 1},                 /* lone continuation */
        {"ok\xd9", 3},               /* truncated Arabic letter */
        {"\xe2\x82", 2},             /* truncated 3-byte */
        {"\xe2\x28\xa1", 3},         /* bad continuation */
        {"\xff", 1},
        {"a\0b", 3}, /* NUL */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_field_error(WASL_MSG_CASE_LOOKUP_REQUEST, "case_number", pack_text, &bad[i],
                           WASL_MSG_ETYPE, "case_number");
        expect_field_error(WASL_MSG_CASE_LOOKUP_REQUEST, "call_id", pack_text, &bad[i],
                           WASL_MSG_ETYPE, "call_id");
    }
    raw_t bad_item = {"\x92\xa1x\xa2\xc0\xaf", 6}; /* ["x", overlong] */
    expect_field_error(WASL_MSG_CASE_LOOKUP_REPLY, "updates", pack_raw, &bad_item, WASL_MSG_ETYPE,
                       "updates");
    static const raw_t good[] = {
        {"\xd8\xb3\xd9\x84\xd8\xa7\xd9\x85", 8}, /* سلام */
        {"\xf0\x9f\x98\x80", 4},                 /* emoji */
        {"\xef\xbf\xbf", 3},                     /* U+FFFF */
        {"\xf4\x8f\xbf\xbf", 4},                 /* U+10FFFF */
        {"\xed\x9f\xbf", 3},                     /* U+D7FF */
        {"\xee\x80\x80", 3},                     /* U+E000 */
        {"\xc2\x80", 2},                         /* U+0080 */
        {"", 0},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        wasl_msg_t *msg =
            decode_with(WASL_MSG_CASE_LOOKUP_REQUEST, "case_number", pack_text, &good[i]);
        assert_int_equal(strlen(msg->u.case_lookup_request.case_number), good[i].len);
        assert_memory_equal(msg->u.case_lookup_request.case_number, good[i].bytes, good[i].len);
        wasl_msg_destroy(&msg);
    }
}

static void test_decode_frame_over_limit(void **state)
{
    (void)state;
    /* Any frame over the limit is refused before it is looked at. */
    char *big = calloc(WASL_MSG_LIMIT + 1, 1);
    assert_non_null(big);
    big[0] = (char)0x80;
    expect_error(big, WASL_MSG_LIMIT + 1, WASL_MSG_ETOOBIG, "");
    free(big);
    /* A real message padded by an unknown field to exactly the limit decodes; one byte more
     * does not. */
    size_t len, padded_len;
    char *data = sample(WASL_MSG_TICKET_RECEIVED, true, &len);
    size_t pad = 65536; /* bin32 header from here on: length grows byte for byte */
    char *padded = rewrite(data, len, NULL, "padding", pack_zero_bin, &pad, &padded_len);
    free(padded);
    pad += WASL_MSG_LIMIT - padded_len;
    padded = rewrite(data, len, NULL, "padding", pack_zero_bin, &pad, &padded_len);
    assert_int_equal(padded_len, WASL_MSG_LIMIT);
    wasl_msg_t *msg = decode_ok(padded, padded_len);
    wasl_msg_destroy(&msg);
    free(padded);
    pad++;
    padded = rewrite(data, len, NULL, "padding", pack_zero_bin, &pad, &padded_len);
    expect_error(padded, padded_len, WASL_MSG_ETOOBIG, "");
    free(padded);
    free(data);
}

static void test_decode_huge_declared_lengths(void **state)
{
    (void)state;
    /* msgpack-c would allocate 2^32-1 elements up front for each of these. */
    expect_error("\xdf\xff\xff\xff\xff\x00", 6, WASL_MSG_ETRUNCATED, ""); /* map32 */
    expect_error("\xdd\xff\xff\xff\xff\x00", 6, WASL_MSG_EGARBAGE, "");   /* array32 top level */
    expect_error("\x81\xa1x\xdd\xff\xff\xff\xff", 8, WASL_MSG_ETRUNCATED, "");
    expect_error("\x81\xa1x\xdf\xff\xff\xff\xff", 8, WASL_MSG_ETRUNCATED, "");
    expect_error("\x81\xa1x\xdb\xff\xff\xff\xff", 8, WASL_MSG_ETRUNCATED, "");     /* str32 */
    expect_error("\x81\xa1x\xc6\xff\xff\xff\xff", 8, WASL_MSG_ETRUNCATED, "");     /* bin32 */
    expect_error("\x81\xa1x\xc9\xff\xff\xff\xff\x01", 9, WASL_MSG_ETRUNCATED, ""); /* ext32 */
    /* An array of 3 needs at least 3 more bytes. */
    expect_error("\x81\xa1x\x93\x01\x02", 6, WASL_MSG_ETRUNCATED, "");
    expect_error("\x82\xa1x\x01", 4, WASL_MSG_ETRUNCATED, "");
}

static void test_decode_deep_nesting(void **state)
{
    (void)state;
    raw_t depth3 = {"\x91\x91\x01", 3}; /* [[1]] under the top-level map */
    wasl_msg_t *msg = decode_with(WASL_MSG_NOTIFY_REQUESTED, "extra", pack_raw, &depth3);
    wasl_msg_destroy(&msg);
    raw_t depth4 = {"\x91\x91\x91\x01", 4};
    expect_field_error(WASL_MSG_NOTIFY_REQUESTED, "extra", pack_raw, &depth4, WASL_MSG_EGARBAGE,
                       "");
    raw_t empty4 = {"\x91\x81\xa1k\x90", 5}; /* [{"k": []}]: even an empty container counts */
    expect_field_error(WASL_MSG_NOTIFY_REQUESTED, "extra", pack_raw, &empty4, WASL_MSG_EGARBAGE,
                       "");
    char deep[1001];
    deep[0] = (char)0x81;
    deep[1] = (char)0xa1;
    deep[2] = 'x';
    memset(deep + 3, 0x91, sizeof deep - 4);
    deep[sizeof deep - 1] = 0x01;
    expect_error(deep, sizeof deep, WASL_MSG_EGARBAGE, "");
}

static void test_decode_duplicate_keys(void **state)
{
    (void)state;
    uint64_t value = 99;
    size_t len, len2, len3;
    char *data = sample(WASL_MSG_TICKET_RECEIVED, true, &len);
    char *dup = rewrite(data, len, NULL, "work_id", pack_u64, &value, &len2);
    expect_error(dup, len2, WASL_MSG_EGARBAGE, "");
    free(dup);
    raw_t type = {"ticket.received", 15};
    dup = rewrite(data, len, NULL, "type", pack_text, &type, &len2);
    expect_error(dup, len2, WASL_MSG_EGARBAGE, "");
    free(dup);
    char *once = rewrite(data, len, NULL, "zz", pack_nil, NULL, &len2);
    dup = rewrite(once, len2, NULL, "zz", pack_nil, NULL, &len3);
    expect_error(dup, len3, WASL_MSG_EGARBAGE, "");
    free(dup);
    free(once);
    free(data);
}

/* ---- tests: encoding errors -------------------------------------------------------------- */

static void expect_encode_error(const wasl_msg_t *msg, int code, const char *field)
{
    char *data = (char *)"untouched";
    size_t len = 99;
    wasl_msg_error_t err;
    assert_int_equal(wasl_msg_encode(msg, &data, &len, &err), -1);
    assert_null(data);
    assert_int_equal(len, 0);
    if (err.code != code)
        fail_msg("got %s (%s), expected %s", wasl_msg_strerror(err.code), err.message,
                 wasl_msg_strerror(code));
    assert_string_equal(err.field, field);
}

static void test_encode_errors(void **state)
{
    (void)state;
    wasl_msg_t *msg = make_msg(WASL_MSG_CASE_LOOKUP_REQUEST, true);
    wasl_msg_case_lookup_request_t *q = &msg->u.case_lookup_request;
    free(q->case_number);
    q->case_number = NULL;
    expect_encode_error(msg, WASL_MSG_EMISSING, "case_number");
    q->case_number = repeat('1', 33);
    expect_encode_error(msg, WASL_MSG_ETOOBIG, "case_number");
    free(q->case_number);
    q->case_number = dup_or_die("4512345678");
    free(q->call_id);
    q->call_id = dup_or_die("\xed\xa0\x80");
    expect_encode_error(msg, WASL_MSG_ETYPE, "call_id");
    free(q->call_id);
    q->call_id = repeat('c', 129);
    expect_encode_error(msg, WASL_MSG_ETOOBIG, "call_id");
    wasl_msg_destroy(&msg);

    msg = make_msg(WASL_MSG_CASE_LOOKUP_REPLY, true);
    wasl_msg_case_lookup_reply_t *r = &msg->u.case_lookup_reply;
    char **updates = r->updates;
    size_t count = r->updates_count;
    r->updates = strlist(4, "x");
    r->updates_count = 4;
    expect_encode_error(msg, WASL_MSG_ETOOBIG, "updates");
    for (size_t i = 0; i < 4; i++)
        free(r->updates[i]);
    free(r->updates);
    r->updates = updates;
    r->updates_count = count;
    free(r->updates[1]);
    r->updates[1] = NULL;
    expect_encode_error(msg, WASL_MSG_EMISSING, "updates");
    r->updates[1] = repeat('e', 1025);
    expect_encode_error(msg, WASL_MSG_ETOOBIG, "updates");
    wasl_msg_destroy(&msg);

    msg = make_msg(WASL_MSG_CASE_LOOKUP_REPLY, false);
    msg->u.case_lookup_reply.updates_count = 2; /* count without items */
    expect_encode_error(msg, WASL_MSG_ETYPE, "updates");
    msg->u.case_lookup_reply.updates_count = 0;
    msg->type = WASL_MSG_NONE;
    expect_encode_error(msg, WASL_MSG_EUNKNOWN, "type");
    msg->type = WASL_MSG_CASE_LOOKUP_REPLY;
    wasl_msg_destroy(&msg);

    /* err may be NULL */
    msg = wasl_msg_new(WASL_MSG_CASE_LOOKUP_REQUEST);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(wasl_msg_encode(msg, &data, &len, NULL), -1);
    assert_null(wasl_msg_decode("\xc1", 1, NULL));
    wasl_msg_destroy(&msg);
}

/* ---- tests: CZMQ ------------------------------------------------------------------------- */

static void test_send_recv(void **state)
{
    (void)state;
    zsock_t *server = zsock_new_pair("@inproc://test-proto");
    zsock_t *client = zsock_new_pair(">inproc://test-proto");
    assert_non_null(server);
    assert_non_null(client);
    wasl_msg_t *msg = make_msg(WASL_MSG_CASE_LOOKUP_REPLY, true);
    wasl_msg_error_t err;
    assert_int_equal(wasl_msg_send(msg, client, &err), 0);
    zframe_t *frame = zframe_recv(server);
    assert_non_null(frame);
    wasl_msg_t *back = wasl_msg_recv_frame(frame, &err);
    assert_non_null(back);
    assert_msg_same(msg, back);
    zframe_destroy(&frame);
    wasl_msg_destroy(&back);
    /* An invalid message is not sent. */
    free(msg->u.case_lookup_reply.request_id);
    msg->u.case_lookup_reply.request_id = NULL;
    assert_int_equal(wasl_msg_send(msg, client, &err), -1);
    assert_int_equal(err.code, WASL_MSG_EMISSING);
    wasl_msg_destroy(&msg);
    zsock_destroy(&client);
    zsock_destroy(&server);
}

/* ---- tests: mutations -------------------------------------------------------------------- */

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Decodes mutated valid encodings: the decoder must never crash or leak, and whatever it
 * accepts must encode and decode again. */
static void test_decode_mutations(void **state)
{
    (void)state;
    static const unsigned char interesting[] = {
        0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc4, 0xc6,
        0xc9, 0xca, 0xcb, 0xcf, 0xd3, 0xd8, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff};
    enum { SAMPLES = 2 * WASL_MSG_TYPE_COUNT };
    char *samples[SAMPLES];
    size_t lens[SAMPLES];
    size_t longest = 0;
    for (int i = 0; i < SAMPLES; i++) {
        samples[i] = sample((wasl_msg_type_t)(1 + i / 2), i % 2 == 0, &lens[i]);
        if (lens[i] > longest)
            longest = lens[i];
    }
    size_t capacity = longest + 16;
    unsigned char *buf = malloc(capacity);
    assert_non_null(buf);
    uint64_t seed = MUTATION_SEED;
    int decoded = 0, refused = 0;
    for (int round = 0; round < MUTATION_ROUNDS; round++) {
        int pick = (int)(xorshift64(&seed) % SAMPLES);
        size_t len = lens[pick];
        memcpy(buf, samples[pick], len);
        int edits = 1 + (int)(xorshift64(&seed) % 4);
        for (int e = 0; e < edits && len > 0; e++) {
            uint64_t r = xorshift64(&seed);
            size_t at = (size_t)((r >> 8) % len);
            switch (r % 5) {
            case 0: /* flip bits */
                buf[at] ^= (unsigned char)(1 + (r >> 40) % 255);
                break;
            case 1: /* an interesting byte */
                buf[at] = interesting[(r >> 40) % sizeof interesting];
                break;
            case 2: /* truncate */
                len = at;
                break;
            case 3: /* insert */
                if (len < capacity) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = (unsigned char)(r >> 48);
                    len++;
                }
                break;
            default: /* delete */
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
                break;
            }
        }
        wasl_msg_error_t err;
        wasl_msg_t *msg = wasl_msg_decode(buf, len, &err);
        if (msg) {
            decoded++;
            assert_int_equal(err.code, WASL_MSG_OK);
            assert_true(msg->type > WASL_MSG_NONE && msg->type <= WASL_MSG_TYPE_COUNT);
            char *again = NULL;
            size_t again_len = 0;
            assert_int_equal(wasl_msg_encode(msg, &again, &again_len, &err), 0);
            wasl_msg_t *back = decode_ok(again, again_len);
            assert_msg_same(msg, back);
            wasl_msg_destroy(&back);
            free(again);
            wasl_msg_destroy(&msg);
        } else {
            refused++;
            assert_true(err.code > WASL_MSG_OK && err.code <= WASL_MSG_ENOMEM);
            assert_int_not_equal(err.code, WASL_MSG_ENOMEM);
        }
    }
    assert_true(decoded > 0);
    assert_true(refused > 0);
    free(buf);
    for (int i = 0; i < SAMPLES; i++)
        free(samples[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_metadata),
        cmocka_unit_test(test_new_destroy),
        cmocka_unit_test(test_round_trip_all_fields),
        cmocka_unit_test(test_round_trip_required_only),
        cmocka_unit_test(test_round_trip_limits),
        cmocka_unit_test(test_decode_lenient_numbers),
        cmocka_unit_test(test_decode_skips_unknown_fields),
        cmocka_unit_test(test_decode_empty),
        cmocka_unit_test(test_decode_truncated_everywhere),
        cmocka_unit_test(test_decode_garbage),
        cmocka_unit_test(test_decode_top_level_array),
        cmocka_unit_test(test_decode_trailing_bytes),
        cmocka_unit_test(test_decode_unknown_type_and_version),
        cmocka_unit_test(test_decode_missing_required),
        cmocka_unit_test(test_decode_wrong_type),
        cmocka_unit_test(test_decode_too_big_fields),
        cmocka_unit_test(test_decode_invalid_utf8),
        cmocka_unit_test(test_decode_frame_over_limit),
        cmocka_unit_test(test_decode_huge_declared_lengths),
        cmocka_unit_test(test_decode_deep_nesting),
        cmocka_unit_test(test_decode_duplicate_keys),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_send_recv),
        cmocka_unit_test(test_decode_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
