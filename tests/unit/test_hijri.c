/* test_hijri — Umm al-Qura conversions in Asia/Riyadh against published dates, wording, digits,
 * and the refusal outside the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_hijri.h"

#include <string.h>
#include <time.h>

/* Seconds since the epoch of a UTC wall-clock time. */
static int64_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm);
}

typedef struct {
    int gy, gm, gd; /* Gregorian date in Riyadh (converted at 09:00 local = 06:00 UTC) */
    int hy, hm, hd; /* Umm al-Qura date published by the Saudi calendar */
} pair_t;

/* Published Umm al-Qura dates (Saudi announcements of months that are public holidays or well
 * known: Ramadan, Eid, Hijri new year, Arafah). */
static const pair_t pairs[] = {
    {2025, 2, 26, 1446, 8, 27}, /* the example: 27 Sha'ban 1446 */
    {2025, 3, 1, 1446, 9, 1},   /* 1 Ramadan 1446 */
    {2025, 3, 30, 1446, 10, 1}, /* Eid al-Fitr 1446 */
    {2024, 7, 7, 1446, 1, 1},   /* Hijri new year 1446 */
    {2023, 7, 19, 1445, 1, 1},  /* Hijri new year 1445 */
    {2024, 4, 10, 1445, 10, 1}, /* Eid al-Fitr 1445 */
    {2024, 6, 15, 1445, 12, 9}, /* Arafah 1445 */
    {2025, 6, 26, 1447, 1, 1},  /* Hijri new year 1447 */
};

static void test_known_pairs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const pair_t *p = &pairs[i];
        wasl_hijri_date_t d;
        char err[160];
        assert_int_equal(
            wasl_hijri_from_utc(utc(p->gy, p->gm, p->gd, 6, 0), NULL, &d, err, sizeof err), 0);
        if (d.year != p->hy || d.month != p->hm || d.day != p->hd) {
            fail_msg("%04d-%02d-%02d: got %d/%d/%d, want %d/%d/%d", p->gy, p->gm, p->gd, d.year,
                     d.month, d.day, p->hy, p->hm, p->hd);
        }
        assert_int_equal(d.g_year, p->gy);
        assert_int_equal(d.g_month, p->gm);
        assert_int_equal(d.g_day, p->gd);
        assert_int_equal(d.hour, 9);
        assert_int_equal(d.utc_offset_s, 3 * 3600);
    }
}

/* The day changes at midnight Riyadh time, not UTC. */
static void test_zone_boundary(void **state)
{
    (void)state;
    wasl_hijri_date_t d;
    assert_int_equal(wasl_hijri_from_utc(utc(2025, 2, 25, 20, 59), NULL, &d, NULL, 0), 0);
    assert_int_equal(d.day, 26); /* 23:59 on 25 Feb in Riyadh */
    assert_int_equal(d.g_day, 25);
    assert_int_equal(wasl_hijri_from_utc(utc(2025, 2, 25, 21, 0), NULL, &d, NULL, 0), 0);
    assert_int_equal(d.day, 27); /* 00:00 on 26 Feb in Riyadh */
    assert_int_equal(d.g_day, 26);
    assert_int_equal(d.hour, 0);
    /* In UTC itself the same instant is still the 25th. */
    assert_int_equal(wasl_hijri_from_utc(utc(2025, 2, 25, 21, 0), "UTC", &d, NULL, 0), 0);
    assert_int_equal(d.g_day, 25);
}

static void test_out_of_range(void **state)
{
    (void)state;
    wasl_hijri_date_t d;
    char err[160] = "";
    assert_int_equal(wasl_hijri_from_utc(utc(1850, 1, 1, 0, 0), NULL, &d, err, sizeof err), -1);
    assert_non_null(strstr(err, "outside the Umm al-Qura table"));
    err[0] = '\0';
    assert_int_equal(wasl_hijri_from_utc(utc(2200, 1, 1, 0, 0), NULL, &d, err, sizeof err), -1);
    assert_non_null(strstr(err, "outside"));
    assert_int_equal(wasl_hijri_from_utc(0, "Mars/Olympus_Mons", &d, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown time zone"));
}

static void test_wording(void **state)
{
    (void)state;
    wasl_hijri_date_t d;
    char out[512];
    assert_int_equal(wasl_hijri_from_utc(utc(2025, 2, 26, 6, 30), NULL, &d, NULL, 0), 0);
    assert_string_equal(wasl_hijri_month_ar(d.month), "شعبان");
    wasl_hijri_text_ar(&d, WASL_DIGITS_LATIN, out, sizeof out);
    assert_string_equal(out, "الأربعاء 27 شعبان 1446هـ الموافق 26 فبراير 2025م الساعة 9:30 صباحًا");
    wasl_hijri_text_ar(&d, WASL_DIGITS_ARABIC_INDIC, out, sizeof out);
    assert_string_equal(out, "الأربعاء ٢٧ شعبان ١٤٤٦هـ الموافق ٢٦ فبراير ٢٠٢٥م الساعة ٩:٣٠ صباحًا");
    wasl_hijri_text_en(&d, out, sizeof out);
    assert_string_equal(out, "Wednesday 27 Sha'ban 1446 AH (26 February 2025) at 9:30 AM");
    wasl_hijri_local_rfc3339(&d, out, sizeof out);
    assert_string_equal(out, "2025-02-26T09:30:00+03:00");
    assert_int_equal(wasl_hijri_from_utc(utc(2025, 3, 1, 10, 15), NULL, &d, NULL, 0), 0);
    wasl_hijri_text_en(&d, out, sizeof out);
    assert_string_equal(out, "Saturday 1 Ramadan 1446 AH (1 March 2025) at 1:15 PM");
    assert_string_equal(wasl_hijri_month_ar(13), "");
    assert_string_equal(wasl_weekday_en(0), "");
}

static void test_digits_truncation(void **state)
{
    (void)state;
    char out[8];
    /* "١٢٣" is 6 bytes; the 4th digit does not fit with the NUL. */
    assert_int_equal(wasl_digits_write("1234", WASL_DIGITS_ARABIC_INDIC, out, sizeof out), 6);
    assert_string_equal(out, "١٢٣");
    /* A multi-byte letter is never cut. */
    assert_int_equal(wasl_digits_write("abcdeشش", WASL_DIGITS_LATIN, out, sizeof out), 7);
    assert_string_equal(out, "abcdeش");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_pairs),       cmocka_unit_test(test_zone_boundary),
        cmocka_unit_test(test_out_of_range),      cmocka_unit_test(test_wording),
        cmocka_unit_test(test_digits_truncation),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    wasl_hijri_thread_cleanup();
    return rc;
}
