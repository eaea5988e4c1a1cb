/* test_caselookup_render — caselookup's pure parts: the cached case, verifier hashes, the found,
 * denied and locked replies (denials identical whatever the reason). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../services/caselookup/lookup.h"
#include "wasl_log.h"
#include "wasl_pii.h"

#include <sodium.h>
#include <string.h>
#include <time.h>

#define TEST_KEY "unit-test-key-0123456789abcdef-0123456789"

/* The JSON lookup.c's case query makes, with keyed hashes of "national_id:1000000008" and
 * "caller_phone:+966551230001". Hearings: 2025-01-01 (past) and 2025-02-26 06:30 UTC. */
static char *case_json(void)
{
    char a[65], b[65], *out = malloc(4096);
    lookup_verifier_hash("national_id", "1000000008", a);
    lookup_verifier_hash("caller_phone", "+966551230001", b);
    snprintf(out, 4096,
             "{\"case_number\":\"4512345670\",\"version\":3,\"status\":\"in_hearing\","
             "\"court_ar\":\"المحكمة الإدارية بالرياض\",\"court_en\":\"Administrative Court in "
             "Riyadh\",\"circuit_ar\":\"الدائرة الإدارية الثالثة\",\"circuit_en\":\"Third "
             "Administrative Circuit\",\"tz\":\"Asia/Riyadh\",\"verifiers\":[\"%s\",\"%s\"],"
             "\"hearings\":[[1735725600,\"جلسة مرافعة\",\"pleading\"],[1740551400,\"جلسة النطق "
             "بالحكم\",\"pronouncement of judgment\"]],\"updates\":[[\"حجزت القضية للحكم 2\","
             "\"Reserved\"],[\"تم التأجيل\",\"Adjourned\"],[\"قيد\",\"Filed\"],[\"x\",\"y\"]]}",
             a, b);
    return out;
}

static wasl_msg_t *new_reply(void)
{
    wasl_msg_t *m = wasl_msg_new(WASL_MSG_CASE_LOOKUP_REPLY);
    assert_non_null(m);
    m->u.case_lookup_reply.request_id = strdup("r-1");
    return m;
}

static void test_verifiers(void **state)
{
    (void)state;
    char *json = case_json();
    lookup_case_t *c = lookup_case_parse(json);
    assert_non_null(c);
    char h[65];
    lookup_verifier_hash("national_id", "1000000008", h);
    assert_true(lookup_case_has_verifier(c, h));
    lookup_verifier_hash("caller_phone", "+966551230001", h);
    assert_true(lookup_case_has_verifier(c, h));
    /* The kind is part of the hash: an ID typed as a phone is not a match. */
    lookup_verifier_hash("caller_phone", "1000000008", h);
    assert_false(lookup_case_has_verifier(c, h));
    lookup_verifier_hash("national_id", "1000000016", h);
    assert_false(lookup_case_has_verifier(c, h));
    lookup_case_destroy(&c);
    lookup_case_destroy(&c);
    free(json);
}

/* The row PostgreSQL gives carries the verifiers in clear; what is kept and cached carries
 * their keyed hashes, and a bare SHA-256 of the ID (what enumeration would find) is not there. */
static void test_key_verifiers(void **state)
{
    (void)state;
    json_t *doc = json_pack("{s:[s, s]}", "verifiers", "national_id:1000000008",
                            "caller_phone:+966551230001");
    assert_int_equal(lookup_case_key_verifiers(doc), 0);
    char *text = json_dumps(doc, JSON_COMPACT);
    assert_null(strstr(text, "1000000008"));
    assert_null(strstr(text, "+966551230001"));
    /* sha256("national_id:1000000008") */
    unsigned char d[crypto_hash_sha256_BYTES];
    char bare[65], h[65];
    const char *v = "national_id:1000000008";
    crypto_hash_sha256(d, (const unsigned char *)v, strlen(v));
    sodium_bin2hex(bare, sizeof bare, d, sizeof d);
    assert_null(strstr(text, bare));
    lookup_verifier_hash("national_id", "1000000008", h);
    assert_non_null(strstr(text, h));
    free(text);
    /* Another key, another hash: the hash depends on the secret. */
    assert_int_equal(wasl_pii_key_set("another-key-0123456789abcdef-0123456789", 39), 0);
    char h2[65];
    lookup_verifier_hash("national_id", "1000000008", h2);
    assert_string_not_equal(h, h2);
    assert_int_equal(wasl_pii_key_set(TEST_KEY, strlen(TEST_KEY)), 0);
    json_decref(doc);
    /* A verifier without its kind is refused. */
    doc = json_pack("{s:[s]}", "verifiers", "1000000008");
    assert_int_equal(lookup_case_key_verifiers(doc), -1);
    json_decref(doc);
}

static void test_malformed_cache(void **state)
{
    (void)state;
    assert_null(lookup_case_parse("null"));
    assert_null(lookup_case_parse("{\"case_number\":1}"));
    assert_null(lookup_case_parse("not json"));
    assert_null(lookup_case_parse("{\"case_number\":\"1\",\"status\":\"x\",\"court_ar\":\"\","
                                  "\"court_en\":\"\",\"circuit_ar\":\"\",\"circuit_en\":\"\","
                                  "\"tz\":\"\",\"verifiers\":[],\"updates\":[],"
                                  "\"hearings\":[[\"bad\"]]}"));
}

static void test_found(void **state)
{
    (void)state;
    char *json = case_json();
    lookup_case_t *c = lookup_case_parse(json);
    wasl_msg_t *m = new_reply();
    wasl_msg_case_lookup_reply_t *r = &m->u.case_lookup_reply;
    /* "now" is 2025-02-01: the February hearing is next. */
    assert_int_equal(lookup_render_found(c, 1738368000, WASL_DIGITS_LATIN, r), 0);
    assert_string_equal(r->outcome, "found");
    assert_string_equal(r->circuit, "الدائرة الإدارية الثالثة");
    assert_string_equal(r->status_ar, "منظورة");
    assert_string_equal(r->hearing_utc, "2025-02-26T06:30:00Z");
    assert_string_equal(r->hearing_local, "2025-02-26T09:30:00+03:00");
    assert_true(r->hijri_year == 1446 && r->hijri_month == 8 && r->hijri_day == 27);
    assert_string_equal(r->hijri_month_name_ar, "شعبان");
    assert_string_equal(r->hearing_text_en,
                        "Wednesday 27 Sha'ban 1446 AH (26 February 2025) at 9:30 AM");
    assert_int_equal(r->updates_count, 3);
    assert_string_equal(r->updates[0], "حجزت القضية للحكم 2");
    assert_non_null(strstr(r->speech_ar, "4 5 1 2 3 4 5 6 7 0"));
    assert_non_null(strstr(r->speech_ar, "جلسة النطق بالحكم"));
    assert_non_null(strstr(r->speech_en, "Third Administrative Circuit"));
    assert_non_null(strstr(r->speech_en, "Latest update: Reserved."));
    /* The whole reply encodes within the model's limits. */
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(wasl_msg_encode(m, &data, &len, NULL), 0);
    free(data);
    wasl_msg_destroy(&m);

    /* Arabic-Indic digits, and no hearing ahead. */
    m = new_reply();
    r = &m->u.case_lookup_reply;
    assert_int_equal(lookup_render_found(c, 1800000000, WASL_DIGITS_ARABIC_INDIC, r), 0);
    assert_null(r->hearing_utc);
    assert_false(r->has_hijri_year);
    assert_non_null(strstr(r->speech_ar, "لا توجد جلسة قادمة"));
    assert_non_null(strstr(r->speech_ar, "٤ ٥ ١ ٢"));
    assert_string_equal(r->updates[0], "حجزت القضية للحكم ٢");
    wasl_msg_destroy(&m);
    lookup_case_destroy(&c);
    free(json);
}

/* Encodes a reply rendered for `reason` (NULL: found) into *out; returns its length. */
static size_t render_bytes(const char *reason, const lookup_case_t *c, char **out)
{
    wasl_msg_t *m = new_reply();
    assert_int_equal(
        lookup_render_verdict(reason, c, 1738368000, WASL_DIGITS_LATIN, &m->u.case_lookup_reply),
        0);
    size_t len = 0;
    assert_int_equal(wasl_msg_encode(m, out, &len, NULL), 0);
    wasl_msg_destroy(&m);
    return len;
}

/* Every real reason for a denial — a malformed request, no such case, a case of someone else
 * (rendered with that case at hand) — gives the same bytes: the caller learns nothing about
 * which. The reasons come from lookup_denial_reason, as the daemon's do. */
static void test_denied_identical(void **state)
{
    (void)state;
    char *json = case_json();
    lookup_case_t *c = lookup_case_parse(json);
    assert_non_null(c);
    char party[65], stranger[65];
    lookup_verifier_hash("national_id", "1000000008", party);
    lookup_verifier_hash("national_id", "1000000016", stranger);
    struct {
        const char *want;
        bool well_formed;
        const lookup_case_t *c;
        const char *vhash;
    } cases[] = {
        {"bad_request", false, c, party}, /* even with a case and a party's verifier */
        {"no_case", true, NULL, party},
        {"not_party", true, c, stranger},
    };
    char *first = NULL;
    size_t first_len = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *reason = lookup_denial_reason(cases[i].well_formed, cases[i].c, cases[i].vhash);
        assert_non_null(reason);
        assert_string_equal(reason, cases[i].want);
        char *bytes = NULL;
        size_t len = render_bytes(reason, cases[i].c, &bytes);
        if (!first) {
            first = bytes;
            first_len = len;
            wasl_msg_t *back = wasl_msg_decode(bytes, len, NULL);
            assert_non_null(back);
            assert_string_equal(back->u.case_lookup_reply.outcome, "denied");
            assert_null(back->u.case_lookup_reply.court);
            assert_null(back->u.case_lookup_reply.case_number);
            wasl_msg_destroy(&back);
            continue;
        }
        if (len != first_len || memcmp(bytes, first, len) != 0)
            fail_msg("the %s denial differs from the %s one", cases[i].want, cases[0].want);
        free(bytes);
    }
    /* A party is not denied, and the found reply is not the denial. */
    assert_null(lookup_denial_reason(true, c, party));
    char *found = NULL;
    size_t found_len = render_bytes(NULL, c, &found);
    assert_false(found_len == first_len && memcmp(found, first, found_len) == 0);
    free(found);
    free(first);
    lookup_case_destroy(&c);
    free(json);
}

/* A case shared by the parse memo and a verdict lives until its last reference goes (ASan
 * reports a double free or a leak otherwise); rendering it twice, the second time from the
 * Hijri memo, gives the same reply byte for byte. */
static void test_shared_case_renders_the_same(void **state)
{
    (void)state;
    char *json = case_json();
    lookup_case_t *c = lookup_case_parse(json);
    assert_non_null(c);
    lookup_case_t *again = lookup_case_ref(c);
    assert_ptr_equal(again, c);
    char *data[2] = {NULL, NULL};
    size_t len[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        wasl_msg_t *m = new_reply();
        assert_int_equal(lookup_render_found(i ? again : c, 1740000000, WASL_DIGITS_ARABIC_INDIC,
                                             &m->u.case_lookup_reply),
                         0);
        assert_non_null(m->u.case_lookup_reply.hearing_text_ar);
        assert_int_equal(wasl_msg_encode(m, &data[i], &len[i], NULL), 0);
        wasl_msg_destroy(&m);
    }
    assert_int_equal(len[0], len[1]);
    assert_memory_equal(data[0], data[1], len[0]);
    lookup_case_destroy(&c);
    assert_null(c);
    assert_true(lookup_case_has_verifier(again, "0") == false); /* still alive */
    lookup_case_destroy(&again);
    free(data[0]);
    free(data[1]);
    free(json);
}

static void test_locked(void **state)
{
    (void)state;
    wasl_msg_t *m = new_reply();
    assert_int_equal(lookup_render_locked(&m->u.case_lookup_reply, 0), 0);
    assert_string_equal(m->u.case_lookup_reply.outcome, "locked");
    assert_true(m->u.case_lookup_reply.retry_after_s == 1); /* never "0 seconds" */
    wasl_msg_destroy(&m);
}

int main(void)
{
    wasl_log_init("test_caselookup_render", WASL_LOG_ERROR);
    if (wasl_pii_key_set(TEST_KEY, strlen(TEST_KEY)) < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verifiers),
        cmocka_unit_test(test_malformed_cache),
        cmocka_unit_test(test_found),
        cmocka_unit_test(test_denied_identical),
        cmocka_unit_test(test_locked),
        cmocka_unit_test(test_key_verifiers),
        cmocka_unit_test(test_shared_case_renders_the_same),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    wasl_hijri_thread_cleanup();
    return rc;
}
