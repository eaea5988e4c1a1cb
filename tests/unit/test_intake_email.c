/* test_intake_email — the email parser against tests/data/email and generated hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../services/intake/email.h"
#include "wasl_text.h"

#include <glib.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATA_DIR      "tests/data/email/"
#define ERR_LEN       256
#define THREADS       4
#define THREAD_ROUNDS 5

/* ---- helpers -------------------------------------------------------------------------------- */

/* Reads a whole file into a new NUL-terminated buffer (free it); fails the test if missing. */
static char *slurp(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, DATA_DIR "%s", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail_msg("cannot open %s (run the tests from the repository root)", path);
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    buf[size] = '\0';
    *len = (size_t)size;
    return buf;
}

static void assert_utf8(const char *s)
{
    if (s) {
        assert_true(wasl_utf8_valid(s, strlen(s), false));
    }
}

/* Every string of a parsed message is valid UTF-8 and the one-line fields have no newline. */
static void assert_well_formed(const intake_email_t *m)
{
    assert_non_null(m->message_id);
    assert_non_null(m->subject);
    assert_non_null(m->body);
    assert_non_null(m->references);
    assert_utf8(m->message_id);
    assert_utf8(m->from_addr);
    assert_utf8(m->from_name);
    assert_utf8(m->subject);
    assert_utf8(m->body);
    assert_utf8(m->in_reply_to);
    assert_utf8(m->date);
    assert_utf8(m->auto_submitted);
    assert_null(strpbrk(m->subject, "\r\n\t"));
    if (m->from_name) {
        assert_null(strpbrk(m->from_name, "\r\n\t"));
    }
    for (size_t i = 0; i < m->nreferences; i++) {
        assert_utf8(m->references[i]);
    }
    assert_null(m->references[m->nreferences]);
    for (size_t i = 0; i < m->nattachments; i++) {
        assert_utf8(m->attachments[i].name);
        assert_non_null(m->attachments[i].type);
        assert_int_equal(strlen(m->attachments[i].sha256), 64);
    }
}

static intake_email_t *parse_with(const char *raw, size_t len, const intake_email_limits_t *lim)
{
    char err[ERR_LEN];
    intake_email_t *m = intake_email_parse(raw, len, lim, err, sizeof err);
    if (!m) {
        fail_msg("parse failed: %s", err);
    }
    assert_well_formed(m);
    return m;
}

static intake_email_t *parse_file(const char *name)
{
    size_t len;
    char *raw = slurp(name, &len);
    intake_email_t *m = parse_with(raw, len, NULL);
    free(raw);
    return m;
}

/* Parses text expecting failure; checks the reason. */
static void assert_parse_error(const char *raw, size_t len, const intake_email_limits_t *lim,
                               const char *reason)
{
    char err[ERR_LEN] = "unset";
    intake_email_t *m = intake_email_parse(raw, len, lim, err, sizeof err);
    if (m) {
        intake_email_destroy(&m);
        fail_msg("parsed, expected \"%s\"", reason);
    }
    assert_string_equal(err, reason);
}

static void sha256_hex(const void *data, size_t len, char hex[65])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, data, len);
    sodium_bin2hex(hex, 65, digest, sizeof digest);
}

/* ---- the sample messages -------------------------------------------------------------------- */

static void test_windows1256_qp(void **state)
{
    (void)state;
    intake_email_t *m = parse_file("01-windows1256-qp.eml");
    assert_string_equal(m->message_id, "20250112071500.A1B2C3@mail.example.sa");
    assert_false(m->message_id_synthesized);
    assert_string_equal(m->from_addr, "mohammed.alotaibi@example.sa");
    assert_string_equal(m->from_name, "محمد العتيبي");
    assert_string_equal(m->subject, "استفسار عن موعد الجلسة");
    assert_string_equal(m->body, "السلام عليكم ورحمة الله،\n"
                                 "أرجو إفادتي بموعد الجلسة القادمة في القضية رقم 4451234567.\n"
                                 "شكراً لكم.");
    assert_string_equal(m->date, "2025-01-12T07:15:00Z");
    assert_null(m->in_reply_to);
    assert_int_equal(m->nreferences, 0);
    assert_null(m->auto_submitted);
    assert_int_equal(m->nattachments, 0);
    assert_int_equal(m->nparts, 1);
    intake_email_destroy(&m);
    assert_null(m);
    intake_email_destroy(&m); /* safe twice */
}

static void test_utf8_base64(void **state)
{
    (void)state;
    intake_email_t *m = parse_file("02-utf8-base64.eml");
    assert_string_equal(m->message_id, "CAF=q8x+Yk2@mail.gmail.example");
    assert_string_equal(m->from_addr, "noura.q@gmail.example");
    assert_string_equal(m->from_name, "نورة القحطاني");
    assert_string_equal(m->subject, "طلب نسخة من الحكم");
    assert_string_equal(
        m->body, "السادة ديوان المظالم المحترمين،\n\n"
                 "أرغب في الحصول على نسخة مصدقة من الحكم الصادر في القضية رقم ٤٤٥١٢٣٤٥٦٧.\n\n"
                 "مع التحية،\nنورة القحطاني");
    assert_string_equal(m->date, "2025-01-13T08:01:02Z");
    assert_null(m->auto_submitted);
    intake_email_destroy(&m);
}

static void test_iso8859_6(void **state)
{
    (void)state;
    intake_email_t *m = parse_file("03-iso8859-6.eml");
    assert_string_equal(m->subject, "شكوى بخصوص تأخير");
    assert_string_equal(m->body,
                        "نرجو النظر في تأخير البت في الدعوى المقدمة منذ ستة أشهر؛ هل من جديد؟");
    assert_string_equal(m->from_name, "Khalid");
    assert_string_equal(m->date, "2025-01-15T04:30:00Z"); /* -0500 to UTC, next day */
    intake_email_destroy(&m);
}

static void test_html_only(void **state)
{
    (void)state;
    intake_email_t *m = parse_file("04-html-only.eml");
    assert_string_equal(m->subject, "استفسار");
    /* no <title>, <style>, <script> or comment; <br>, <p>, <div>, <li> as lines; entities */
    assert_string_equal(m->body, "السلام عليكم،\n"
                                 "أود الاستفسار عن حالة طلبي «رقم 77» & المرفقات.\n"
                                 "شكراً لكم.\n"
                                 "- الأول\n"
                                 "- الثاني\n"
                                 "<لا> \"نص\" مع &unknown; x < 5");
    assert_int_equal(m->nattachments, 0);
    intake_email_destroy(&m);
}

/* An HTML body wrapped in a message, for the converter's edge cases. */
static char *html_body(const char *html)
{
    GString *s = g_string_new("From: a@example.sa\nSubject: x\n"
                              "Content-Type: text/html; charset=utf-8\n\n");
    g_string_append(s, html);
    intake_email_t *m = parse_with(s->str, s->len, NULL);
    char *body = strdup(m->body);
    intake_email_destroy(&m);
    g_string_free(s, TRUE);
    return body;
}

static void test_html_edge_cases(void **state)
{
    (void)state;
    static const struct {
        const char *html, *text;
    } cases[] = {
        {"<p class=\"x>kept</p>", "kept"}, /* a quote never closed */
        {"<a title='a > b'>link</a> after", "link after"},
        {"a<br><br><br><br>b", "a\n\nb"},
        {"<p>&nbsp;</p><p>x</p><p>&nbsp;</p><p>&nbsp;</p><p>y</p>", "x\n\ny"},
        {"&#0; &#xD800; &#x110000; &#65;&#x42;&#1605",
         "\xef\xbf\xbd \xef\xbf\xbd \xef\xbf\xbd ABم"},
        {"<script>never closed", ""},
        {"<!-- never closed", ""},
        {"<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"},
        /* the MIME part's charset (utf-8) wins over the document's <meta> */
        {"<head><meta charset=\"windows-1256\"></head>\xd8\xe1\xc8",
         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *body = html_body(cases[i].html);
        assert_string_equal(body, cases[i].text);
        free(body);
    }
    /* <meta charset> counts only when the MIME part names no charset */
    static const char meta[] = "From: a@example.sa\nSubject: x\nContent-Type: text/html\n\n"
                               "<meta charset=windows-1256>\xd8\xe1\xc8";
    intake_email_t *m = parse_with(meta, sizeof meta - 1, NULL);
    assert_string_equal(m->body, "طلب");
    intake_email_destroy(&m);

    /* thousands of broken tags cost linear time */
    GString *s = g_string_new(NULL);
    for (int i = 0; i < 50000; i++) {
        g_string_append(s, i % 2 ? "<i '" : "<b \"x>");
    }
    char *body = html_body(s->str);
    assert_true(strlen(body) < s->len);
    free(body);
    g_string_free(s, TRUE);
}

static void test_alternative_prefers_text(void **state)
{
    (void)state;
    intake_email_t *m = parse_file("05-alternative.eml");
    assert_string_equal(m->subject, "تجربة بديلة");
    assert_string_equal(m->body, "نص عادي يجب أن يفوز.\nالسطر الثاني.");
    assert_int_equal(m->nattachments, 0); /* the losing HTML is not an attachment */
    assert_int_equal(m->nparts, 3);
    intake_email_destroy(&m);
}

static void test_attachment_rfc2231(void **state)
{
    (void)state;
    intake_email_t *m = parse_file("06-attachment-rfc2231.eml");
    assert_string_equal(m->subject, "مرفق: صك الحكم");
    assert_string_equal(m->body, "مرفق صك الحكم للاطلاع.");
    assert_int_equal(m->nparts, 3);
    assert_int_equal(m->nattachments, 1);
    assert_string_equal(m->attachments[0].name, "صك الحكم.pdf");
    assert_string_equal(m->attachments[0].type, "application/pdf");
    assert_int_equal(m->attachments[0].size, 148);
    /* sha256 of the 148 decoded PDF bytes */
    assert_string_equal(m->attachments[0].sha256,
                        "6ed7f3aebfaf2ee3913347e0844980ccf8101f72be9f2e7858922276768012da");
    assert_false(m->attachments[0].oversized);

    json_t *json = intake_email_attachments_json(m);
    assert_non_null(json);
    assert_int_equal(json_array_size(json), 1);
    json_t *a = json_array_get(json, 0);
    assert_string_equal(json_string_value(json_object_get(a, "name")), "صك الحكم.pdf");
    assert_string_equal(json_string_value(json_object_get(a, "type")), "application/pdf");
    assert_int_equal(json_integer_value(json_object_get(a, "size")), 148);
    assert_string_equal(json_string_value(json_object_get(a, "sha256")), m->attachments[0].sha256);
    assert_null(json_object_get(a, "oversized"));
    assert_int_equal(json_object_size(a), 4);
    json_decref(json);
    intake_email_destroy(&m);
}

static void test_oversized_attachment_is_flagged(void **state)
{
    (void)state;
    intake_email_limits_t lim = INTAKE_EMAIL_LIMITS_DEFAULT;
    lim.max_attachment_bytes = 100;
    size_t len;
    char *raw = slurp("06-attachment-rfc2231.eml", &len);
    intake_email_t *m = parse_with(raw, len, &lim);
    assert_int_equal(m->nattachments, 1);
    assert_true(m->attachments[0].oversized);
    assert_int_equal(m->attachments[0].size, 148); /* the full size, still hashed whole */
    assert_string_equal(m->attachments[0].sha256,
                        "6ed7f3aebfaf2ee3913347e0844980ccf8101f72be9f2e7858922276768012da");
    json_t *json = intake_email_attachments_json(m);
    assert_true(json_is_true(json_object_get(json_array_get(json, 0), "oversized")));
    json_decref(json);
    intake_email_destroy(&m);
    free(raw);
}

static void test_auto_replies(void **state)
{
    (void)state;
    static const struct {
        const char *file, *reason;
    } cases[] = {
        {"07-auto-replied.eml", "auto-submitted:auto-replied"},
        {"08-oof-x-auto-response-suppress.eml", "x-auto-response-suppress"},
        {"09-precedence-bulk.eml", "precedence:bulk"},
        {"10-bounce-dsn.eml", "delivery-status"},
        {"19-read-receipt-mdn.eml", "disposition-notification"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        intake_email_t *m = parse_file(cases[i].file);
        assert_non_null(m->auto_submitted);
        assert_string_equal(m->auto_submitted, cases[i].reason);
        intake_email_destroy(&m);
    }

    intake_email_t *m = parse_file("07-auto-replied.eml");
    assert_string_equal(m->subject, "خارج المكتب: Re: [#2600000018] استفسار");
    assert_string_equal(m->body, "أنا خارج المكتب حتى ٢٥ يناير. سأرد على رسالتك عند عودتي.");
    intake_email_destroy(&m);

    m = parse_file("08-oof-x-auto-response-suppress.eml");
    assert_string_equal(m->subject, "رد تلقائي: طلب موعد");
    assert_string_equal(m->body, "أنا في إجازة حتى نهاية الأسبوع.");
    assert_string_equal(m->from_name, "Reem Alshehri");
    intake_email_destroy(&m);

    /* a person's mail: none of the reasons, and List-Id alone is not one */
    static const char plain[] = "From: a@example.sa\nSubject: x\nList-Id: <l.example.sa>\n"
                                "Auto-Submitted: no\nPrecedence: first-class\n"
                                "X-Auto-Response-Suppress: None\n\nhello\n";
    m = parse_with(plain, sizeof plain - 1, NULL);
    assert_null(m->auto_submitted);
    intake_email_destroy(&m);

    static const char loop[] = "From: a@example.sa\nSubject: x\nX-Loop: wasl\n\nhello\n";
    m = parse_with(loop, sizeof loop - 1, NULL);
    assert_string_equal(m->auto_submitted, "x-loop");
    intake_email_destroy(&m);

    static const char junk[] = "From: a@example.sa\nSubject: x\nPrecedence: JUNK\n\nhello\n";
    m = parse_with(junk, sizeof junk - 1, NULL);
    assert_string_equal(m->auto_submitted, "precedence:junk");
    intake_email_destroy(&m);
}

static void test_bounce(void **state)
{
    (void)state;
    intake_email_t *m = parse_file("10-bounce-dsn.eml");
    assert_string_equal(m->auto_submitted, "delivery-status");
    assert_string_equal(m->from_addr, "mailer-daemon@mx.wasl.local");
    assert_string_equal(m->subject, "Undelivered Mail Returned to Sender");
    assert_non_null(strstr(m->body, "could not\nbe delivered to one or more recipients."));
    assert_int_equal(m->nparts, 4);
    assert_int_equal(m->nattachments, 2);
    assert_string_equal(m->attachments[0].type, "message/delivery-status");
    assert_string_equal(m->attachments[1].type, "text/rfc822-headers");
    assert_null(m->attachments[0].name);
    intake_email_destroy(&m);
}

static void test_reply_threading(void **state)
{
    (void)state;
    static const char *const files[] = {"11-reply-ticket.eml", "12-reply-stranger.eml"};
    static const char *const from[] = {"mohammed.alotaibi@example.sa",
                                       "someone.else@elsewhere.example"};
    for (size_t i = 0; i < 2; i++) {
        intake_email_t *m = parse_file(files[i]);
        assert_string_equal(m->from_addr, from[i]);
        assert_string_equal(m->subject, "Re: [#2600000018] تم استلام طلبك");
        assert_string_equal(m->in_reply_to, "t.2600000018.1@wasl.local");
        assert_int_equal(m->nreferences, 2);
        assert_string_equal(m->references[0], "20250112071500.A1B2C3@mail.example.sa");
        assert_string_equal(m->references[1], "t.2600000018.1@wasl.local");
        /* format=flowed: the soft line break is joined */
        assert_string_equal(m->body, "شكراً لكم، هذه معلومات إضافية عن طلبي.\n\n"
                                     "On 21/01/2025 10:00, info@court.example.gov.sa wrote:\n"
                                     "> تم استلام طلبك برقم 2600000018.");
        assert_null(m->auto_submitted);
        intake_email_destroy(&m);
    }
}

static void test_no_message_id(void **state)
{
    (void)state;
    size_t len;
    char *raw = slurp("13-no-message-id.eml", &len);
    intake_email_t *m = parse_with(raw, len, NULL);
    char hex[65], expect[80];
    sha256_hex(raw, len, hex);
    snprintf(expect, sizeof expect, "sha256:%s", hex);
    assert_true(m->message_id_synthesized);
    assert_string_equal(m->message_id, expect);
    assert_string_equal(m->subject, "بدون معرف");
    assert_null(m->from_name);
    assert_string_equal(m->from_addr, "citizen@example.sa");
    intake_email_destroy(&m);

    /* The same message with CRLF, or behind an mbox "From " line, gets the same id. */
    GString *crlf = g_string_new("From citizen@example.sa  Thu Jan 23 08:00:00 2025\r\n");
    for (size_t i = 0; i < len; i++) {
        if (raw[i] == '\n') {
            g_string_append_c(crlf, '\r');
        }
        g_string_append_c(crlf, raw[i]);
    }
    m = parse_with(crlf->str, crlf->len, NULL);
    assert_string_equal(m->message_id, expect);
    intake_email_destroy(&m);
    g_string_free(crlf, TRUE);
    free(raw);

    /* An unusable Message-ID is replaced too. */
    static const char bad[] = "From: a@example.sa\nMessage-ID: <>\nSubject: x\n\nhi\n";
    m = parse_with(bad, sizeof bad - 1, NULL);
    assert_true(m->message_id_synthesized);
    assert_true(strncmp(m->message_id, "sha256:", 7) == 0);
    intake_email_destroy(&m);
}

static void test_forwarded_message(void **state)
{
    (void)state;
    /* sha256 of the inner message's bytes as they stand in both files */
    static const char inner_sha[] =
        "8eedece9776f944ff52bd38566b8cc53d0dc19ad5144e933b27f39220216a1f7";
    intake_email_t *m = parse_file("14-forward-attached.eml");
    assert_string_equal(m->body, "أرفقت لكم القرار المتظلم منه.");
    assert_int_equal(m->nparts, 4); /* mixed, text, message/rfc822, its text */
    assert_int_equal(m->nattachments, 1);
    assert_string_equal(m->attachments[0].type, "message/rfc822");
    assert_string_equal(m->attachments[0].name, "قرار إداري.eml");
    assert_int_equal(m->attachments[0].size, 323);
    assert_string_equal(m->attachments[0].sha256, inner_sha);
    /* the forwarded message's own headers do not leak into ours */
    assert_string_equal(m->message_id, "fwd-1@example.sa");
    assert_string_equal(m->from_addr, "abdullah@example.sa");
    intake_email_destroy(&m);

    m = parse_file("15-forward-only.eml"); /* nothing around it: its text is the body */
    assert_string_equal(m->body, "نص القرار الإداري.");
    assert_int_equal(m->nattachments, 1);
    assert_string_equal(m->attachments[0].sha256, inner_sha);
    assert_string_equal(m->message_id, "fwd-2@example.sa");
    intake_email_destroy(&m);
}

static void test_broken_charsets(void **state)
{
    (void)state;
    intake_email_t *m = parse_file("16-unknown-charset.eml"); /* unknown: windows-1256 */
    assert_string_equal(m->subject, "طلب");
    assert_string_equal(m->body, "طلب مراجعة الحكم");
    intake_email_destroy(&m);

    m = parse_file("20-mbox-from-line-mislabelled.eml"); /* us-ascii with 8-bit bytes */
    assert_string_equal(m->body, "مرحبا");
    assert_string_equal(m->message_id, "mislabel-1@example.sa");
    assert_string_equal(m->from_addr, "citizen@example.sa");
    intake_email_destroy(&m);

    /* Declared ISO-8859-1, actually UTF-8: kept as UTF-8. */
    static const char latin[] = "From: a@example.sa\nSubject: x\n"
                                "Content-Type: text/plain; charset=iso-8859-1\n\n"
                                "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7\n";
    m = parse_with(latin, sizeof latin - 1, NULL);
    assert_string_equal(m->body, "مرحبا");
    intake_email_destroy(&m);

    /* Real ISO-8859-1 stays ISO-8859-1. */
    static const char real_latin[] = "From: a@example.sa\nSubject: x\n"
                                     "Content-Type: text/plain; charset=iso-8859-1\n\ncaf\xe9\n";
    m = parse_with(real_latin, sizeof real_latin - 1, NULL);
    assert_string_equal(m->body, "café");
    intake_email_destroy(&m);

    /* Raw 8-bit windows-1256 in the Subject header. */
    static const char raw_subject[] = "From: a@example.sa\nSubject: \xd8\xe1\xc8\n\nx\n";
    m = parse_with(raw_subject, sizeof raw_subject - 1, NULL);
    assert_string_equal(m->subject, "طلب");
    intake_email_destroy(&m);
}

static void test_invalid_utf8_body(void **state)
{
    (void)state;
    static const char raw[] = "From: a@example.sa\nSubject: x\n"
                              "Content-Type: text/plain; charset=utf-8\n\n"
                              "caf\xc3 \xff ok \xed\xa0\x80 \xf0\x9f\x98 end \xe2\x82";
    intake_email_t *m = parse_with(raw, sizeof raw - 1, NULL);
    /* one U+FFFD per maximal ill-formed subpart */
    assert_string_equal(m->body, "caf\xef\xbf\xbd \xef\xbf\xbd ok \xef\xbf\xbd\xef\xbf\xbd"
                                 "\xef\xbf\xbd \xef\xbf\xbd end \xef\xbf\xbd");
    intake_email_destroy(&m);
}

static void test_header_injection(void **state)
{
    (void)state;
    intake_email_t *m = parse_file("17-header-injection.eml");
    assert_string_equal(m->subject, "طلب Bcc: victim@example.com X");
    assert_string_equal(m->from_name, "محتال Bcc: victim@example.com");
    assert_string_equal(m->from_addr, "evil@example.com");
    intake_email_destroy(&m);
}

static void test_missing_boundary(void **state)
{
    (void)state;
    intake_email_t *m = parse_file("18-missing-boundary.eml");
    assert_string_equal(m->body, "النص بدون حدود.");
    assert_int_equal(m->nattachments, 0);
    intake_email_destroy(&m);
}

static void test_body_truncated(void **state)
{
    (void)state;
    intake_email_limits_t lim = INTAKE_EMAIL_LIMITS_DEFAULT;
    lim.max_body_bytes = 40;
    size_t len;
    char *raw = slurp("02-utf8-base64.eml", &len);
    intake_email_t *m = parse_with(raw, len, &lim);
    size_t n = strlen(m->body);
    assert_true(n <= 40);
    const char *marker = "\n[…]";
    assert_string_equal(m->body + n - strlen(marker), marker);
    /* cut on a character boundary: the Arabic text before the marker is whole */
    assert_true(strncmp(m->body, "السادة ديوان", strlen("السادة ديوان")) == 0);
    intake_email_destroy(&m);
    free(raw);
}

static void test_every_file_parses(void **state)
{
    (void)state;
    static const char *const files[] = {
        "01-windows1256-qp.eml",   "02-utf8-base64.eml",
        "03-iso8859-6.eml",        "04-html-only.eml",
        "05-alternative.eml",      "06-attachment-rfc2231.eml",
        "07-auto-replied.eml",     "08-oof-x-auto-response-suppress.eml",
        "09-precedence-bulk.eml",  "10-bounce-dsn.eml",
        "11-reply-ticket.eml",     "12-reply-stranger.eml",
        "13-no-message-id.eml",    "14-forward-attached.eml",
        "15-forward-only.eml",     "16-unknown-charset.eml",
        "17-header-injection.eml", "18-missing-boundary.eml",
        "19-read-receipt-mdn.eml", "20-mbox-from-line-mislabelled.eml",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        intake_email_t *m = parse_file(files[i]);
        assert_non_null(m->date);
        assert_false(m->message_id_synthesized && i != 12);
        intake_email_destroy(&m);
    }
}

/* ---- hostile input -------------------------------------------------------------------------- */

static void test_many_parts(void **state)
{
    (void)state;
    GString *s = g_string_new("From: a@example.sa\nSubject: parts\n"
                              "Content-Type: multipart/mixed; boundary=b\n\n");
    for (int i = 0; i < 2000; i++) {
        g_string_append(s, "--b\nContent-Type: text/plain\n\nx\n");
    }
    g_string_append(s, "--b--\n");
    assert_parse_error(s->str, s->len, NULL, "too many MIME parts (max 100)");

    /* parts without a Content-Type of their own are counted too */
    g_string_assign(s, "From: a@example.sa\nSubject: parts\n"
                       "Content-Type: multipart/mixed; boundary=b\n\n");
    for (int i = 0; i < 2000; i++) {
        g_string_append(s, "--b\n\nx\n");
    }
    g_string_append(s, "--b--\n");
    assert_parse_error(s->str, s->len, NULL, "too many MIME parts (max 100)");
    g_string_free(s, TRUE);
}

/* A message whose body is `depth` multiparts (or message/rfc822s) inside each other. */
static GString *nested(int depth, bool rfc822)
{
    GString *s = g_string_new("From: a@example.sa\nSubject: deep\n");
    for (int i = 0; i < depth; i++) {
        if (rfc822) {
            g_string_append(s, "Content-Type: message/rfc822\n\nSubject: inner\n");
        } else {
            g_string_append_printf(s, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i,
                                   i);
        }
    }
    g_string_append(s, "Content-Type: text/plain\n\ndeepest\n");
    for (int i = depth - 1; i >= 0 && !rfc822; i--) {
        g_string_append_printf(s, "--b%d--\n", i);
    }
    return s;
}

static void test_deep_nesting(void **state)
{
    (void)state;
    GString *s = nested(50, false);
    assert_parse_error(s->str, s->len, NULL, "MIME nesting too deep (max 8)");
    g_string_free(s, TRUE);
    /* the scan stops at the ninth level: the 491 below it are never read */
    s = nested(500, false);
    assert_parse_error(s->str, s->len, NULL, "MIME nesting too deep (max 8)");
    g_string_free(s, TRUE);
    s = nested(50, true);
    assert_parse_error(s->str, s->len, NULL, "MIME nesting too deep (max 8)");
    g_string_free(s, TRUE);

    /* 8 levels are fine */
    s = nested(8, false);
    intake_email_t *m = parse_with(s->str, s->len, NULL);
    assert_string_equal(m->body, "deepest");
    assert_int_equal(m->nparts, 9);
    intake_email_destroy(&m);
    g_string_free(s, TRUE);
}

static void test_huge_headers(void **state)
{
    (void)state;
    /* one 200 KB header line */
    GString *s = g_string_new("From: a@example.sa\nSubject: ");
    for (int i = 0; i < 200 * 1024; i++) {
        g_string_append_c(s, 'a');
    }
    g_string_append(s, "\n\nbody\n");
    assert_parse_error(s->str, s->len, NULL, "header too large (max 65536 bytes)");

    /* 100 KB in hundreds of header lines */
    g_string_assign(s, "From: a@example.sa\n");
    for (int i = 0; i < 900; i++) {
        g_string_append_printf(s, "X-Filler-%03d: %0100d\n", i, i);
    }
    g_string_append(s, "\nbody\n");
    assert_parse_error(s->str, s->len, NULL, "header too large (max 65536 bytes)");

    /* thousands of short fields: each costs GMime an object, so they are counted */
    g_string_assign(s, "From: a@example.sa\n");
    for (int i = 0; i < 5000; i++) {
        g_string_append(s, "X:\n");
    }
    g_string_append(s, "\nbody\n");
    assert_parse_error(s->str, s->len, NULL, "too many header fields (max 1000)");

    /* a huge header inside a MIME part */
    g_string_assign(s, "From: a@example.sa\nSubject: x\n"
                       "Content-Type: multipart/mixed; boundary=b\n\n--b\nX-Big: ");
    for (int i = 0; i < 100 * 1024; i++) {
        g_string_append_c(s, 'b');
    }
    g_string_append(s, "\n\nx\n--b--\n");
    assert_parse_error(s->str, s->len, NULL, "header too large (max 65536 bytes)");
    g_string_free(s, TRUE);
}

/* ---- the pre-scan: exact limits, and never below what GMime builds ------------------------- */

/* A multipart/mixed message with `children` empty text parts (1 + children entities). */
static GString *with_children(int children)
{
    GString *s = g_string_new("From: a@example.sa\nSubject: parts\n"
                              "Content-Type: multipart/mixed; boundary=b\n\n");
    for (int i = 0; i < children; i++) {
        g_string_append(s, "--b\n\nx\n");
    }
    g_string_append(s, "--b--\n");
    return s;
}

static intake_email_limit_t scan(const GString *s, const intake_email_limits_t *lim,
                                 intake_email_shape_t *shape)
{
    char err[ERR_LEN];
    return intake_email_prescan(s->str, s->len, lim, shape, err, sizeof err);
}

static void test_prescan_parts_exact(void **state)
{
    (void)state;
    intake_email_limits_t lim = INTAKE_EMAIL_LIMITS_DEFAULT;
    lim.max_parts = 10;
    intake_email_shape_t shape;
    GString *s = with_children(9); /* 10 entities: allowed */
    assert_int_equal(scan(s, &lim, &shape), INTAKE_EMAIL_FITS);
    assert_int_equal(shape.parts, 10);
    assert_int_equal(shape.depth, 1);
    intake_email_t *m = parse_with(s->str, s->len, &lim);
    assert_int_equal(m->nparts, 10); /* the scan counted exactly what GMime built */
    intake_email_destroy(&m);
    g_string_free(s, TRUE);

    s = with_children(10); /* 11: refused */
    assert_int_equal(scan(s, &lim, &shape), INTAKE_EMAIL_OVER_PARTS);
    assert_string_equal(intake_email_limit_name(INTAKE_EMAIL_OVER_PARTS), "max_parts");
    assert_parse_error(s->str, s->len, &lim, "too many MIME parts (max 10)");
    g_string_free(s, TRUE);
}

static void test_prescan_depth_exact(void **state)
{
    (void)state;
    intake_email_limits_t lim = INTAKE_EMAIL_LIMITS_DEFAULT;
    lim.max_depth = 3;
    intake_email_shape_t shape;
    for (int rfc822 = 0; rfc822 <= 1; rfc822++) {
        GString *s = nested(3, rfc822);
        assert_int_equal(scan(s, &lim, &shape), INTAKE_EMAIL_FITS);
        assert_int_equal(shape.depth, 3);
        intake_email_t *m = parse_with(s->str, s->len, &lim);
        assert_int_equal(m->nparts, shape.parts);
        intake_email_destroy(&m);
        g_string_free(s, TRUE);

        s = nested(4, rfc822);
        assert_int_equal(scan(s, &lim, &shape), INTAKE_EMAIL_OVER_DEPTH);
        assert_parse_error(s->str, s->len, &lim, "MIME nesting too deep (max 3)");
        g_string_free(s, TRUE);
    }
}

static void test_prescan_headers_exact(void **state)
{
    (void)state;
    intake_email_limits_t lim = INTAKE_EMAIL_LIMITS_DEFAULT;
    lim.max_headers = 20;
    intake_email_shape_t shape;
    /* 4 fields on top, 2 in each of 8 parts: 20, counted across the header blocks */
    GString *s = g_string_new("From: a@example.sa\nSubject: h\nMIME-Version: 1.0\n"
                              "Content-Type: multipart/mixed;\n boundary=b\n\n");
    for (int i = 0; i < 8; i++) {
        g_string_append(s, "--b\nContent-Type: text/plain\nX-N: 1\n\nx\n");
    }
    g_string_append(s, "--b--\n");
    assert_int_equal(scan(s, &lim, &shape), INTAKE_EMAIL_FITS);
    assert_int_equal(shape.headers, 20); /* the folded line is one field */
    intake_email_t *m = parse_with(s->str, s->len, &lim);
    intake_email_destroy(&m);
    g_string_insert(s, 0, "X-One-More: 1\n");
    assert_int_equal(scan(s, &lim, &shape), INTAKE_EMAIL_OVER_HEADERS);
    assert_parse_error(s->str, s->len, &lim, "too many header fields (max 20)");

    /* header block bytes: exactly the limit passes, one more byte does not */
    lim = (intake_email_limits_t)INTAKE_EMAIL_LIMITS_DEFAULT;
    g_string_assign(s, "From: a@example.sa\nX-Pad: ");
    size_t target = 1000;
    while (s->len + 1 < target) {
        g_string_append_c(s, 'p');
    }
    g_string_append_c(s, '\n');
    assert_int_equal(s->len, target);
    g_string_append(s, "\nbody\n");
    lim.max_header_bytes = target;
    assert_int_equal(scan(s, &lim, &shape), INTAKE_EMAIL_FITS);
    assert_int_equal(shape.header_block_bytes, target);
    lim.max_header_bytes = target - 1;
    assert_int_equal(scan(s, &lim, &shape), INTAKE_EMAIL_OVER_HEADER_BYTES);
    g_string_free(s, TRUE);
}

static void test_prescan_content_bytes(void **state)
{
    (void)state;
    intake_email_limits_t lim = INTAKE_EMAIL_LIMITS_DEFAULT;
    intake_email_shape_t shape;
    GString *s = g_string_new("From: a@example.sa\nContent-Type: multipart/mixed; boundary=b\n\n"
                              "--b\nContent-Transfer-Encoding: base64\n\nQUJD\nREVG\n--b--\n");
    assert_int_equal(scan(s, &lim, &shape), INTAKE_EMAIL_FITS);
    assert_int_equal(shape.content_bytes, 10); /* two lines of 4 + LF */
    lim.max_decoded_bytes = 10;
    assert_int_equal(scan(s, &lim, &shape), INTAKE_EMAIL_FITS);
    lim.max_decoded_bytes = 9;
    assert_int_equal(scan(s, &lim, &shape), INTAKE_EMAIL_OVER_DECODED_BYTES);
    assert_parse_error(s->str, s->len, &lim, "MIME content too large (max 9 bytes)");
    g_string_free(s, TRUE);
}

/* The reviewer's bomb: one multipart header, then 300,000 empty parts (1.5 MB). The scan stops
 * at part 101 without building anything. */
static void test_prescan_part_bomb(void **state)
{
    (void)state;
    GString *s = g_string_new("From: a@example.sa\nSubject: bomb\n"
                              "Content-Type: multipart/mixed; boundary=b\n\n");
    for (int i = 0; i < 300000; i++) {
        g_string_append(s, "--b\n\n");
    }
    intake_email_shape_t shape;
    assert_int_equal(scan(s, NULL, &shape), INTAKE_EMAIL_OVER_PARTS);
    assert_int_equal(shape.parts, 101);
    assert_parse_error(s->str, s->len, NULL, "too many MIME parts (max 100)");
    g_string_free(s, TRUE);
}

/* GMime's quirks the scan follows; for each, its count is at least GMime's (the walk counts
 * every object GMime built), and equal where nothing is ambiguous. */
static void test_prescan_follows_gmime(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        size_t gmime_parts;
    } cases[] = {
        /* the LAST Content-Type decides type and boundary */
        {"From: a\nContent-Type: multipart/mixed; boundary=a\nContent-Type: multipart/mixed; "
         "boundary=b\n\n--a\n\nA\n--a\n\nB\n--b\n\nC\n--b\n\nD\n--b\n\nE\n",
         4},
        {"From: a\nContent-Type: text/plain\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\n"
         "C\n--b\n\nD\n",
         3},
        {"From: a\nContent-Type: multipart/mixed; boundary=b\nContent-Type: text/plain\n\n--b\n\n"
         "C\n--b\n\nD\n",
         1},
        /* in a digest, a part without a usable type is a message */
        {"From: a\nContent-Type: multipart/digest; boundary=b\n\n--b\n\nSubject: x\n\nhi\n--b\n"
         "Content-Type: ###\n\nSubject: y\n\nhi\n--b--\n",
         5},
        /* trailing white space after a boundary; "--bx" is not one */
        {"From: a\nContent-Type: multipart/mixed; boundary=b\n\n--b  \r\n\nC\n--b\t\n\nD\n--bx\n\n"
         "E\n",
         3},
        /* name case, space before the colon, folding, RFC 2231, quoting */
        {"From: a\nCONTENT-TYPE : multipart/mixed; boundary=b\n\n--b\n\nC\n--b\n\nD\n", 3},
        {"From: a\nContent-Type: multipart/mixed;\n boundary=b\n\n--b\n\nC\n--b\n\nD\n", 3},
        {"From: a\nContent-Type: multipart/mixed; boundary*0=b; boundary*1=c\n\n--bc\n\nC\n--bc\n\n"
         "D\n",
         3},
        {"From: a\nContent-Type: multipart/mixed; boundary=\"b c\"\n\n--b c\n\nC\n--b c\n\nD\n", 3},
        /* invalid lines do not end a header block */
        {"From: a\nnot a header\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b\n\ny\n",
         3},
        /* a boundary line ends a part's header block */
        {"From: a\nContent-Type: multipart/mixed; boundary=b\n\n--b\nX-A: 1\n--b\nX-B: 2\n\nz\n"
         "--b\n\nq\n",
         4},
        /* a Content-Type on a continuation line is not one */
        {"From: a\nX-A: 1\n Content-Type: multipart/mixed; boundary=b\n\n--b\n\n--b\n\n", 1},
        /* message/news and message/global are messages; message/partial is not */
        {"From: a\nContent-Type: message/news\n\nSubject: x\nContent-Type: multipart/mixed; "
         "boundary=q\n\n--q\n\nA\n--q\n\nB\n--q--\n",
         4},
        {"From: a\nContent-Type: message/partial\n\nSubject: x\nContent-Type: multipart/mixed; "
         "boundary=q\n\n--q\n\nA\n--q\n\nB\n--q--\n",
         1},
        /* an empty message/rfc822 part: the next line is a boundary */
        {"From: a\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822"
         "\n\n--b\n\nx\n--b--\n",
         3},
        /* an outer boundary closes the inner multipart */
        {"From: a\nContent-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/mixed;"
         " boundary=i\n\n--i\n\nA\n--o\n\nB\n--i\n\nnot a part\n--o--\n",
         4},
    };
    intake_email_limits_t lim = INTAKE_EMAIL_LIMITS_DEFAULT;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        intake_email_shape_t shape;
        char err[ERR_LEN];
        size_t len = strlen(cases[i].raw);
        assert_int_equal(intake_email_prescan(cases[i].raw, len, &lim, &shape, err, sizeof err),
                         INTAKE_EMAIL_FITS);
        intake_email_t *m = parse_with(cases[i].raw, len, &lim);
        if (m->nparts != cases[i].gmime_parts || shape.parts < m->nparts) {
            fail_msg("case %zu: GMime built %zu (expected %zu), the scan counted %zu", i, m->nparts,
                     cases[i].gmime_parts, shape.parts);
        }
        intake_email_destroy(&m);
    }
}

/* On the real samples the scan counts exactly what GMime builds: nothing legitimate is refused
 * for a count the scan inflated. */
static void test_prescan_exact_on_samples(void **state)
{
    (void)state;
    static const char *const files[] = {
        "01-windows1256-qp.eml",   "02-utf8-base64.eml",
        "03-iso8859-6.eml",        "04-html-only.eml",
        "05-alternative.eml",      "06-attachment-rfc2231.eml",
        "07-auto-replied.eml",     "08-oof-x-auto-response-suppress.eml",
        "09-precedence-bulk.eml",  "10-bounce-dsn.eml",
        "11-reply-ticket.eml",     "12-reply-stranger.eml",
        "13-no-message-id.eml",    "14-forward-attached.eml",
        "15-forward-only.eml",     "16-unknown-charset.eml",
        "17-header-injection.eml", "18-missing-boundary.eml",
        "19-read-receipt-mdn.eml", "20-mbox-from-line-mislabelled.eml",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t len;
        char *raw = slurp(files[i], &len);
        intake_email_shape_t shape;
        char err[ERR_LEN];
        assert_int_equal(intake_email_prescan(raw, len, NULL, &shape, err, sizeof err),
                         INTAKE_EMAIL_FITS);
        intake_email_t *m = parse_with(raw, len, NULL);
        if (m->nparts != shape.parts) {
            fail_msg("%s: GMime built %zu, the scan counted %zu", files[i], m->nparts, shape.parts);
        }
        intake_email_destroy(&m);
        free(raw);
    }
}

static void test_not_a_message(void **state)
{
    (void)state;
    assert_parse_error("", 0, NULL, "empty message");
    assert_parse_error(NULL, 0, NULL, "empty message");
    static const char from_line_only[] = "From someone Thu Jan  1 00:00:00 2025\n";
    assert_parse_error(from_line_only, strlen(from_line_only), NULL, "empty message");
    static const char garbage[] = "\x00\xff\xfe\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR";
    assert_parse_error(garbage, sizeof garbage - 1, NULL, "not an RFC 5322 message");
    assert_parse_error("\n\nbody only\n", strlen("\n\nbody only\n"), NULL,
                       "not an RFC 5322 message");
    assert_parse_error("<html><body>hi</body></html>", strlen("<html><body>hi</body></html>"), NULL,
                       "not an RFC 5322 message");
    assert_parse_error("X-Nothing: useful\n\nbody\n", strlen("X-Nothing: useful\n\nbody\n"), NULL,
                       "not an RFC 5322 message");
    static const char nul[] = "From: a@example.sa\nSubject: a\0b\n\nbody\n";
    assert_parse_error(nul, sizeof nul - 1, NULL, "NUL byte in the header");
    /* err may be NULL */
    assert_null(intake_email_parse("", 0, NULL, NULL, 0));
}

static void test_binary_garbage(void **state)
{
    (void)state;
    uint32_t seed = 2600000018u;
    char buf[4096];
    for (int round = 0; round < 300; round++) {
        size_t len = 1 + (size_t)(round * 13 % (int)sizeof buf);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = (char)(seed >> 16);
        }
        if (round % 3 == 0) { /* sometimes a plausible start, to reach GMime */
            memcpy(buf, "Subject: x\n", len < 11 ? len : 11);
        }
        char err[ERR_LEN];
        intake_email_t *m = intake_email_parse(buf, len, NULL, err, sizeof err);
        if (m) {
            assert_well_formed(m);
            intake_email_destroy(&m);
        } else {
            assert_true(err[0] != '\0');
            assert_null(strchr(err, '\n'));
        }
    }
}

static void test_only_headers(void **state)
{
    (void)state;
    static const char raw[] = "From: \"Ali\" <Ali@Example.SA>\nSubject: hi\nDate: garbage";
    intake_email_t *m = parse_with(raw, sizeof raw - 1, NULL);
    assert_string_equal(m->subject, "hi");
    assert_string_equal(m->body, "");
    assert_string_equal(m->from_addr, "ali@example.sa");
    assert_string_equal(m->from_name, "Ali");
    assert_null(m->date);
    assert_int_equal(m->nattachments, 0);
    intake_email_destroy(&m);

    static const char nosubject[] = "From: a@example.sa\n\n";
    m = parse_with(nosubject, sizeof nosubject - 1, NULL);
    assert_string_equal(m->subject, "");
    intake_email_destroy(&m);

    static const char nofrom[] = "Subject: x\nFrom: not an address\n\nbody\n";
    m = parse_with(nofrom, sizeof nofrom - 1, NULL);
    assert_null(m->from_addr);
    intake_email_destroy(&m);
}

static void test_references_capped(void **state)
{
    (void)state;
    GString *s = g_string_new("From: a@example.sa\nSubject: x\nIn-Reply-To: <p149@x> <other@x>\n"
                              "References:");
    for (int i = 0; i < 150; i++) {
        g_string_append_printf(s, " <p%d@x>\n", i);
    }
    g_string_append(s, "\nbody\n");
    intake_email_t *m = parse_with(s->str, s->len, NULL);
    assert_int_equal(m->nreferences, INTAKE_EMAIL_MAX_REFERENCES);
    assert_string_equal(m->references[0], "p0@x");
    assert_string_equal(m->references[1], "p51@x");
    assert_string_equal(m->references[INTAKE_EMAIL_MAX_REFERENCES - 1], "p149@x");
    assert_string_equal(m->in_reply_to, "p149@x");
    intake_email_destroy(&m);
    g_string_free(s, TRUE);
}

/* ---- threads -------------------------------------------------------------------------------- */

typedef struct {
    char *raw;
    size_t len;
    int failures;
} thread_arg_t;

static void *parse_loop(void *p)
{
    thread_arg_t *arg = p;
    for (int i = 0; i < THREAD_ROUNDS; i++) {
        char err[ERR_LEN];
        intake_email_t *m = intake_email_parse(arg->raw, arg->len, NULL, err, sizeof err);
        if (!m || strcmp(m->subject, "مرفق: صك الحكم") != 0 || m->nattachments != 1 ||
            strcmp(m->attachments[0].name, "صك الحكم.pdf") != 0) {
            arg->failures++;
        }
        intake_email_destroy(&m);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    thread_arg_t args[THREADS];
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i].raw = slurp("06-attachment-rfc2231.eml", &args[i].len);
        args[i].failures = 0;
        assert_int_equal(pthread_create(&threads[i], NULL, parse_loop, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(args[i].failures, 0);
        free(args[i].raw);
    }
}

int main(void)
{
    intake_email_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_windows1256_qp),
        cmocka_unit_test(test_utf8_base64),
        cmocka_unit_test(test_iso8859_6),
        cmocka_unit_test(test_html_only),
        cmocka_unit_test(test_html_edge_cases),
        cmocka_unit_test(test_alternative_prefers_text),
        cmocka_unit_test(test_attachment_rfc2231),
        cmocka_unit_test(test_oversized_attachment_is_flagged),
        cmocka_unit_test(test_auto_replies),
        cmocka_unit_test(test_bounce),
        cmocka_unit_test(test_reply_threading),
        cmocka_unit_test(test_no_message_id),
        cmocka_unit_test(test_forwarded_message),
        cmocka_unit_test(test_broken_charsets),
        cmocka_unit_test(test_invalid_utf8_body),
        cmocka_unit_test(test_header_injection),
        cmocka_unit_test(test_missing_boundary),
        cmocka_unit_test(test_body_truncated),
        cmocka_unit_test(test_every_file_parses),
        cmocka_unit_test(test_many_parts),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_huge_headers),
        cmocka_unit_test(test_prescan_parts_exact),
        cmocka_unit_test(test_prescan_depth_exact),
        cmocka_unit_test(test_prescan_headers_exact),
        cmocka_unit_test(test_prescan_content_bytes),
        cmocka_unit_test(test_prescan_part_bomb),
        cmocka_unit_test(test_prescan_follows_gmime),
        cmocka_unit_test(test_prescan_exact_on_samples),
        cmocka_unit_test(test_not_a_message),
        cmocka_unit_test(test_binary_garbage),
        cmocka_unit_test(test_only_headers),
        cmocka_unit_test(test_references_capped),
        cmocka_unit_test(test_threads),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    intake_email_shutdown();
    return failed;
}
