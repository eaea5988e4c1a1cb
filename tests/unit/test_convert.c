/* test_convert — charsets, HTML, format=flowed, one-line fields and the body clean-up, called
 * directly (test_intake_email checks that the MIME walker uses them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_convert.h"
#include "wasl_text.h"

#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>

#define FFFD "\xef\xbf\xbd"

static int setup(void **state)
{
    (void)state;
    g_mime_init(); /* the charset table */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    g_mime_shutdown();
    return 0;
}

/* raw converted from charset; a new string (free). */
static char *to_utf8(const char *raw, size_t len, const char *charset)
{
    GString *out = g_string_new(NULL);
    wasl_convert_append_utf8(out, raw, len, charset);
    assert_true(wasl_utf8_valid(out->str, out->len, true));
    return g_string_free(out, FALSE);
}

static void test_charsets(void **state)
{
    (void)state;
    static const struct {
        const char *raw, *charset, *text;
    } cases[] = {
        {"\xd8\xe1\xc8", "windows-1256", "طلب"},
        {"\xd8\xe1\xc8", NULL, "طلب"},           /* undeclared 8-bit: Arabic Windows */
        {"\xd8\xe1\xc8", "us-ascii", "طلب"},     /* mislabelled */
        {"\xd8\xe1\xc8", "x-no-such-cs", "طلب"}, /* unknown to iconv: windows-1256 */
        {"\xd8\xe1\xc8", "bad name!", "طلب"},    /* hostile name: undeclared */
        {"\xe4\xd9\xc8", "iso-8859-6", "لعب"},
        {"caf\xe9", "iso-8859-1", "café"},
        {"\xd9\x85\xd8\xb1", "iso-8859-1", "مر"}, /* declared Latin-1, really UTF-8 */
        {"\xd9\x85\xd8\xb1", "windows-1252", "مر"},
        {"ok \xff", "utf-8", "ok " FFFD}, /* UTF-8 declared: sanitized */
        {"a\xc3", "UTF8", "a" FFFD},
        {"plain", "utf-8", "plain"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = to_utf8(cases[i].raw, strlen(cases[i].raw), cases[i].charset);
        assert_string_equal(text, cases[i].text);
        g_free(text);
    }
    /* a byte iconv rejects is one U+FFFD, the rest converts (0x81 is not in windows-1252) */
    char *text = to_utf8("a\x81z\xe9", 4, "windows-1252");
    assert_string_equal(text, "a" FFFD "zé");
    g_free(text);
}

static void test_html_charset(void **state)
{
    (void)state;
    static const struct {
        const char *html, *charset;
    } cases[] = {
        {"<meta charset=\"windows-1256\">", "windows-1256"},
        {"<META http-equiv=x content='text/html; CHARSET=iso-8859-6'>", "iso-8859-6"},
        {"<p>no meta</p>", NULL},
        {"<meta charset=\"\">", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *cs = wasl_convert_html_charset(cases[i].html, strlen(cases[i].html));
        if (cases[i].charset) {
            assert_non_null(cs);
            assert_string_equal(cs, cases[i].charset);
        } else {
            assert_null(cs);
        }
        g_free(cs);
    }
    /* only the first 2048 bytes are searched */
    GString *late = g_string_new(NULL);
    for (int i = 0; i < 2100; i++) {
        g_string_append_c(late, ' ');
    }
    g_string_append(late, "<meta charset=windows-1256>");
    assert_null(wasl_convert_html_charset(late->str, late->len));
    g_string_free(late, TRUE);
}

/* HTML through the converter and the clean-up, as a body goes. A new string (free). */
static char *html_text(const char *html, size_t len)
{
    GString *text = wasl_convert_html_to_text(html, len);
    GString *clean = wasl_convert_clean_body(text);
    g_string_free(text, TRUE);
    return g_string_free(clean, FALSE);
}

static void test_html(void **state)
{
    (void)state;
    static const struct {
        const char *html, *text;
    } cases[] = {
        {"<html><head><title>T</title><style>p{}</style></head><body><p>السلام عليكم</p>"
         "<script>x()</script><!-- c --><div>«رقم 77» &amp; المرفقات</div>"
         "<ul><li>الأول<li>الثاني</ul>&lt;لا&gt; &quot;نص&quot; &unknown; x < 5</body></html>",
         "السلام عليكم\n«رقم 77» & المرفقات\n- الأول\n- الثاني\n<لا> \"نص\" &unknown; x < 5"},
        {"<p class=\"x>kept</p>", "kept"}, /* a quote never closed */
        {"<a title='a > b'>link</a> after", "link after"},
        {"a<br><br><br><br>b", "a\n\nb"},
        {"<p>&nbsp;</p><p>x</p><p>&nbsp;</p><p>&nbsp;</p><p>y</p>", "x\n\ny"},
        {"&#0; &#xD800; &#x110000; &#65;&#x42;&#1605", FFFD " " FFFD " " FFFD " ABم"},
        {"<script>never closed", ""},
        {"<!-- never closed", ""},
        {"<SCRIPT>x</Script>y", "y"},
        {"<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"},
        {"  many \n\t spaces  ", "many spaces"},
        {"<?xml version='1.0'?><!DOCTYPE html>x", "x"},
        {"a &rlm;b", "a \xe2\x80\x8f"
                     "b"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = html_text(cases[i].html, strlen(cases[i].html));
        assert_string_equal(text, cases[i].text);
        g_free(text);
    }
    /* thousands of broken tags cost linear time */
    GString *s = g_string_new(NULL);
    for (int i = 0; i < 50000; i++) {
        g_string_append(s, i % 2 ? "<i '" : "<b \"x>");
    }
    char *text = html_text(s->str, s->len);
    assert_true(strlen(text) < s->len);
    g_free(text);
    g_string_free(s, TRUE);
}

static void test_unflow_and_newlines(void **state)
{
    (void)state;
    GString *in = g_string_new("a \r\n b\rc \r\n-- \r\nsig\r\n");
    wasl_convert_newlines(in);
    assert_string_equal(in->str, "a \n b\nc \n-- \nsig\n");
    GString *out = wasl_convert_unflow(in, false);
    /* "a " flows into the stuffed " b"; "c " flows into the signature line, which stays */
    assert_string_equal(out->str, "a b\nc -- \nsig\n");
    g_string_free(out, TRUE);
    g_string_assign(in, "long \nword\n");
    out = wasl_convert_unflow(in, true);
    assert_string_equal(out->str, "longword\n"); /* delsp=yes: the flowing space goes */
    g_string_free(out, TRUE);
    g_string_free(in, TRUE);
}

static void test_clean_body(void **state)
{
    (void)state;
    GString *in = g_string_new("\n\n x \t\n\n\n\ny\x01\xc2\x85z\xc2\xa0w\tv  \n\n");
    GString *out = wasl_convert_clean_body(in);
    assert_string_equal(out->str, " x\n\ny"
                                  "z w\tv");
    g_string_free(out, TRUE);
    g_string_assign(in, "bad \xff end");
    out = wasl_convert_clean_body(in);
    assert_string_equal(out->str, "bad " FFFD " end");
    g_string_free(out, TRUE);
    g_string_free(in, TRUE);
}

static void test_one_line(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"  طلب\r\nBcc: x@example.com  ", "طلب Bcc: x@example.com"},
        {"a\xe2\x80\xa8"
         "b\x7f\xc2\x9f"
         "c",
         "a b c"}, /* U+2028, DEL, C1 */
        {"x\xff", "x" FFFD},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *line = wasl_convert_one_line(cases[i].in);
        assert_string_equal(line, cases[i].out);
        free(line);
    }
    char *line = wasl_convert_one_line(NULL);
    assert_string_equal(line, "");
    free(line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_charsets),   cmocka_unit_test(test_html_charset),
        cmocka_unit_test(test_html),       cmocka_unit_test(test_unflow_and_newlines),
        cmocka_unit_test(test_clean_body), cmocka_unit_test(test_one_line),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
