/* Unit tests of the notifier's templates, bidi isolation, SMS parts, quiet hours, backoff and
 * the MIME message it builds. */
#define _GNU_SOURCE /* strcasestr */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../services/notifier/governor.h"
#include "../../services/notifier/notifier.h"
#include "../../services/notifier/provider.h"
#include "../../services/notifier/template.h"

#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEMPLATES "deploy/templates"
/* A notification's msgid_token (random per row in the database). */
#define TOKEN "0123456789abcdef0123456789abcdef"

static void test_shipped_templates_load_and_render_in_both_languages(void **state)
{
    (void)state;
    char err[512] = "";
    tmpl_set_t *t = tmpl_set_load(TEMPLATES, err, sizeof err);
    assert_non_null(t);
    json_t *p =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ref", "2600000018", "category_label",
                  "case_inquiry", "resolution", "done", "answer", "next hearing", "queue", "q1",
                  "priority", "urgent", "due", "2026-11-29 10:00", "text", "an agent's reply");
    for (size_t i = 0; tmpl_names[i]; i++) {
        for (int l = 0; l < 2; l++) {
            const char *lang = l ? "en" : "ar";
            char *subject = NULL;
            char *sms = tmpl_render(t, lang, "sms", tmpl_names[i], p, NULL, err, sizeof err);
            char *mail = tmpl_render(t, lang, "email", tmpl_names[i], p, &subject, err, sizeof err);
            assert_non_null(sms);
            assert_non_null(mail);
            assert_non_null(subject);
            assert_non_null(strstr(sms, "2600000018"));
            assert_non_null(strstr(subject, "2600000018"));
            assert_null(strstr(mail, "{{"));
            free(sms);
            free(mail);
            free(subject);
        }
    }
    json_decref(p);
    tmpl_set_destroy(&t);
    tmpl_set_destroy(&t); /* safe twice */
}

static void test_arabic_reference_is_isolated(void **state)
{
    (void)state;
    char err[256];
    tmpl_set_t *t = tmpl_set_load(TEMPLATES, err, sizeof err);
    assert_non_null(t);
    json_t *p = json_pack("{s:s, s:s}", "ref", "2600000018", "category", "complaint");
    char *ar = tmpl_render(t, "ar", "sms", "ack", p, NULL, err, sizeof err);
    assert_non_null(ar);
    assert_non_null(strstr(ar, TMPL_FSI "2600000018" TMPL_PDI));
    assert_non_null(strstr(ar, TMPL_FSI "شكوى" TMPL_PDI)); /* the code became the Arabic label */
    char *en = tmpl_render(t, "en", "sms", "ack", p, NULL, err, sizeof err);
    assert_non_null(en);
    assert_non_null(strstr(en, " 2600000018 (Complaint)")); /* LTR in LTR: no isolates needed */
    assert_null(strstr(en, TMPL_FSI));
    free(ar);
    free(en);
    json_decref(p);
    /* An Arabic value in English text is isolated; bidi controls in values are removed. */
    p = json_pack("{s:s, s:s}", "ref",
                  "26\xe2\x80\xae"
                  "00000018",
                  "answer", "الجلسة غدًا");
    en = tmpl_render(t, "en", "sms", "case_answer", p, NULL, err, sizeof err);
    assert_non_null(en);
    assert_non_null(strstr(en, "request 2600000018:"));
    assert_non_null(strstr(en, TMPL_FSI "الجلسة غدًا" TMPL_PDI));
    free(en);
    json_decref(p);
    tmpl_set_destroy(&t);
}

static void test_missing_value_is_an_error_naming_it(void **state)
{
    (void)state;
    char err[256] = "";
    tmpl_set_t *t = tmpl_set_load(TEMPLATES, err, sizeof err);
    json_t *p = json_pack("{s:s}", "ref", "2600000018");
    char *subject = NULL;
    assert_null(tmpl_render(t, "ar", "email", "resolved", p, &subject, err, sizeof err));
    assert_non_null(strstr(err, "resolution"));
    assert_null(tmpl_render(t, "ar", "sms", "nope", p, NULL, err, sizeof err));
    assert_null(tmpl_render(t, "fr", "sms", "ack", p, NULL, err, sizeof err));
    json_decref(p);
    tmpl_set_destroy(&t);
}

static void test_due_time_is_shown_in_riyadh_time(void **state)
{
    (void)state;
    char err[256];
    tmpl_set_t *t = tmpl_set_load(TEMPLATES, err, sizeof err);
    json_t *p = json_pack("{s:s, s:s, s:s, s:s}", "ref", "2600000018", "queue", "q1", "priority",
                          "urgent", "due", "2026-11-29T07:30:00Z");
    char *ar = tmpl_render(t, "ar", "sms", "sla_alert", p, NULL, err, sizeof err);
    assert_non_null(ar);
    assert_non_null(strstr(ar, TMPL_FSI "2026-11-29 10:30" TMPL_PDI));
    assert_non_null(strstr(ar, TMPL_FSI "عاجلة" TMPL_PDI));
    free(ar);
    json_object_set_new(p, "due", json_string("2026-11-29T23:15:00.5+03:00"));
    char *en = tmpl_render(t, "en", "sms", "sla_alert", p, NULL, err, sizeof err);
    assert_non_null(strstr(en, "due at 2026-11-29 23:15"));
    free(en);
    json_object_set_new(p, "due", json_string("tomorrow 10am"));
    en = tmpl_render(t, "en", "sms", "sla_alert", p, NULL, err, sizeof err);
    assert_non_null(strstr(en, "due at tomorrow 10am"));
    free(en);
    json_decref(p);
    tmpl_set_destroy(&t);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Copies the shipped templates into dir, then overwrites one file with `text`. */
static void make_dir_with(const char *dir, const char *file, const char *text)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "rm -rf %s && mkdir -p %s && cp -r " TEMPLATES "/ar " TEMPLATES "/en %s/", dir, dir,
             dir);
    assert_int_equal(system(cmd), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (text) {
        write_file(path, text);
    } else {
        unlink(path);
    }
}

static void test_bad_templates_are_refused_at_load(void **state)
{
    (void)state;
    char dir[64], err[512];
    snprintf(dir, sizeof dir, "/tmp/wasl-tmpl-%d", (int)getpid());
    make_dir_with(dir, "ar/ack.sms", "طلبك {{ref}} {{categroy_label}}");
    assert_null(tmpl_set_load(dir, err, sizeof err));
    assert_non_null(strstr(err, "categroy_label"));
    make_dir_with(dir, "en/survey.sms", "how did we do?");
    assert_null(tmpl_set_load(dir, err, sizeof err));
    assert_non_null(strstr(err, "{{ref}}"));
    make_dir_with(dir, "en/ack.email", "no subject {{ref}}");
    assert_null(tmpl_set_load(dir, err, sizeof err));
    assert_non_null(strstr(err, "Subject"));
    make_dir_with(dir, "ar/resolved.email", NULL);
    assert_null(tmpl_set_load(dir, err, sizeof err));
    assert_non_null(strstr(err, "resolved.email"));
    make_dir_with(dir, "en/ack.sms", "open {{ref");
    assert_null(tmpl_set_load(dir, err, sizeof err));
    make_dir_with(dir, "en/ack.sms", "bad \xff {{ref}}");
    assert_null(tmpl_set_load(dir, err, sizeof err));
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static char *repeat(const char *unit, int n)
{
    size_t len = strlen(unit);
    char *s = malloc(len * (size_t)n + 1);
    for (int i = 0; i < n; i++) {
        memcpy(s + (size_t)i * len, unit, len);
    }
    s[len * (size_t)n] = '\0';
    return s;
}

static void check_parts(const char *unit, int n, int parts, bool ucs2)
{
    char *s = repeat(unit, n);
    bool u = !ucs2;
    assert_int_equal(tmpl_sms_segments(s, &u), parts);
    assert_int_equal(u, ucs2);
    free(s);
}

static void test_sms_segments(void **state)
{
    (void)state;
    assert_int_equal(tmpl_sms_segments("", NULL), 0);
    check_parts("a", 160, 1, false);
    check_parts("a", 161, 2, false);
    check_parts("a", 306, 2, false);
    check_parts("a", 307, 3, false);
    check_parts("{", 80, 1, false); /* extension characters take two septets */
    check_parts("{", 81, 2, false);
    check_parts("é", 160, 1, false);
    check_parts("ب", 70, 1, true);
    check_parts("ب", 71, 2, true);
    check_parts("ب", 134, 2, true);
    check_parts("ب", 135, 3, true);
    check_parts("`", 1, 1, true);                 /* not in GSM 03.38 */
    check_parts("\xf0\x9f\x98\x80", 35, 1, true); /* outside the BMP: two UTF-16 units */
    check_parts("\xf0\x9f\x98\x80", 36, 2, true);
    assert_int_equal(tmpl_sms_segments("\xff", NULL), -1);
}

static void test_quiet_hours_in_riyadh(void **state)
{
    (void)state;
    const time_t day = 1795824000; /* 2026-11-28 00:00:00 UTC = 03:00 Riyadh */
    assert_int_equal(governor_quiet_wait_s(day + 20 * 3600, 22, 7), 8 * 3600); /* 23:00 */
    assert_int_equal(governor_quiet_wait_s(day + 19 * 3600, 22, 7), 3600 * 9); /* 22:00 */
    assert_int_equal(governor_quiet_wait_s(day + 18 * 3600, 22, 7), 0);        /* 21:00 */
    assert_int_equal(governor_quiet_wait_s(day + 4 * 3600, 22, 7), 0);         /* 07:00 */
    assert_int_equal(governor_quiet_wait_s(day + 4 * 3600 - 60, 22, 7), 60);   /* 06:59 */
    assert_int_equal(governor_quiet_wait_s(day, 22, 7), 4 * 3600);             /* 03:00 */
    assert_int_equal(governor_quiet_wait_s(day, 1, 5), 2 * 3600);
    assert_int_equal(governor_quiet_wait_s(day, 5, 5), 0);
}

static void test_backoff_doubles_with_jitter_and_a_ceiling(void **state)
{
    (void)state;
    for (int i = 0; i < 200; i++) {
        long a1 = notifier_backoff_ms(1000, 60000, 1);
        long a3 = notifier_backoff_ms(1000, 60000, 3);
        long a20 = notifier_backoff_ms(1000, 60000, 20);
        assert_in_range(a1, 500, 1000);
        assert_in_range(a3, 2000, 4000);
        assert_in_range(a20, 30000, 60000);
    }
}

static void test_mail_is_multipart_rtl_with_threading_headers(void **state)
{
    (void)state;
    sms_config_t sms = {.url = "http://127.0.0.1:1/",
                        .user = "",
                        .password = "",
                        .from = "",
                        .dlr_url = "",
                        .timeout_ms = 1000};
    mail_config_t mc = {.smtp_url = "smtp://127.0.0.1:1",
                        .user = "",
                        .password = "",
                        .from = "ديوان المظالم <noreply@bog.test>",
                        .domain = "bog.test",
                        .timeout_ms = 1000};
    provider_t *p = provider_new(&sms, &mc);
    assert_non_null(p);
    mail_msg_t m = {.id = 42,
                    .msgid_token = TOKEN,
                    .to = "a@example.sa",
                    .lang = "ar",
                    .subject = "استلام طلبك رقم " TMPL_FSI "2600000018" TMPL_PDI,
                    .text = "السلام عليكم\n\nطلبك <رقم> " TMPL_FSI "2600000018" TMPL_PDI,
                    .in_reply_to = "<abc@x>",
                    .references = "<abc@x>"};
    char *raw = provider_build_mail(p, &m);
    assert_non_null(raw);
    assert_non_null(strstr(raw, "Auto-Submitted: auto-replied\r\n"));
    assert_non_null(strcasestr(raw, "Message-Id: <wasl.n42." TOKEN "@bog.test>\r\n"));
    assert_non_null(strstr(raw, "In-Reply-To: <abc@x>"));
    if (!strstr(raw, "Subject: =?utf-8?") && !strstr(raw, "Subject: =?UTF-8?")) {
        fprintf(stderr, "%.600s\n", raw);
        fail();
    }
    assert_non_null(strstr(raw, "multipart/alternative"));
    free(raw);
    char *html = provider_text_to_html(m.text, "ar", m.subject);
    assert_non_null(strstr(html, "<html lang=\"ar\" dir=\"rtl\">"));
    assert_non_null(strstr(html, "<p dir=\"auto\">"));
    assert_non_null(strstr(html, "&lt;رقم&gt;"));
    free(html);
    html = provider_text_to_html("Hello", "en", "t");
    assert_non_null(strstr(html, "dir=\"ltr\""));
    free(html);
    char id[128];
    assert_string_equal(provider_message_id(p, 7, TOKEN, id, sizeof id),
                        "<wasl.n7." TOKEN "@bog.test>");
    provider_destroy(&p);
    provider_destroy(&p);
}

int main(void)
{
    g_mime_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_templates_load_and_render_in_both_languages),
        cmocka_unit_test(test_arabic_reference_is_isolated),
        cmocka_unit_test(test_missing_value_is_an_error_naming_it),
        cmocka_unit_test(test_due_time_is_shown_in_riyadh_time),
        cmocka_unit_test(test_bad_templates_are_refused_at_load),
        cmocka_unit_test(test_sms_segments),
        cmocka_unit_test(test_quiet_hours_in_riyadh),
        cmocka_unit_test(test_backoff_doubles_with_jitter_and_a_ceiling),
        cmocka_unit_test(test_mail_is_multipart_rtl_with_threading_headers),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    g_mime_shutdown();
    return rc;
}
