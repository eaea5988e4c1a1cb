/* wasl_hijri — Umm al-Qura dates through ICU, with Arabic/English wording and digit choice. */
#include "wasl_hijri.h"
#include "wasl_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unicode/ucal.h>
#include <unicode/ustring.h>

#define TZ_MAX_UCHARS 64

static const char *const hijri_ar[] = {"محرم",         "صفر",          "ربيع الأول", "ربيع الآخر",
                                       "جمادى الأولى", "جمادى الآخرة", "رجب",        "شعبان",
                                       "رمضان",        "شوال",         "ذو القعدة",  "ذو الحجة"};
static const char *const hijri_en[] = {
    "Muharram", "Safar",   "Rabi' al-Awwal", "Rabi' al-Thani", "Jumada al-Ula", "Jumada al-Akhirah",
    "Rajab",    "Sha'ban", "Ramadan",        "Shawwal",        "Dhu al-Qa'dah", "Dhu al-Hijjah"};
static const char *const greg_ar[] = {"يناير", "فبراير", "مارس",   "أبريل",  "مايو",   "يونيو",
                                      "يوليو", "أغسطس",  "سبتمبر", "أكتوبر", "نوفمبر", "ديسمبر"};
static const char *const greg_en[] = {"January",   "February", "March",    "April",
                                      "May",       "June",     "July",     "August",
                                      "September", "October",  "November", "December"};
static const char *const wday_ar[] = {"الأحد",  "الاثنين", "الثلاثاء", "الأربعاء",
                                      "الخميس", "الجمعة",  "السبت"};
static const char *const wday_en[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                      "Thursday", "Friday", "Saturday"};

const char *wasl_hijri_month_ar(int m)
{
    return m >= 1 && m <= 12 ? hijri_ar[m - 1] : "";
}
const char *wasl_hijri_month_en(int m)
{
    return m >= 1 && m <= 12 ? hijri_en[m - 1] : "";
}
const char *wasl_gregorian_month_ar(int m)
{
    return m >= 1 && m <= 12 ? greg_ar[m - 1] : "";
}
const char *wasl_gregorian_month_en(int m)
{
    return m >= 1 && m <= 12 ? greg_en[m - 1] : "";
}
const char *wasl_weekday_ar(int d)
{
    return d >= 1 && d <= 7 ? wday_ar[d - 1] : "";
}
const char *wasl_weekday_en(int d)
{
    return d >= 1 && d <= 7 ? wday_en[d - 1] : "";
}

/* Opening an ICU calendar costs tens of microseconds: each thread keeps the last zone's pair
 * (a UCalendar is not thread-safe, so they are per thread). */
static _Thread_local struct {
    char zone[TZ_MAX_UCHARS];
    UCalendar *hijri, *gregorian;
} cached;

void wasl_hijri_thread_cleanup(void)
{
    if (cached.hijri) {
        ucal_close(cached.hijri);
    }
    if (cached.gregorian) {
        ucal_close(cached.gregorian);
    }
    memset(&cached, 0, sizeof cached);
}

/* Returns the calendar of `locale` in zone `tz` set to `utc_ms` (borrowed from the thread's
 * cache, or opened into *slot); NULL with err filled. */
static UCalendar *calendar_at(UCalendar **slot, const char *locale, const UChar *tz, int32_t tz_len,
                              double utc_ms, char *err, size_t errlen)
{
    UErrorCode st = U_ZERO_ERROR;
    if (!*slot) {
        *slot = ucal_open(tz, tz_len, locale, UCAL_DEFAULT, &st);
        if (U_FAILURE(st)) {
            *slot = NULL;
            wasl_set_err(err, errlen, "ICU cannot open calendar %s: %s", locale, u_errorName(st));
            return NULL;
        }
    }
    ucal_clear(*slot);
    ucal_setMillis(*slot, utc_ms, &st);
    if (U_FAILURE(st)) {
        wasl_set_err(err, errlen, "ICU cannot set the time: %s", u_errorName(st));
        return NULL;
    }
    return *slot;
}

int wasl_hijri_from_utc(int64_t utc_s, const char *tz, wasl_hijri_date_t *out, char *err,
                        size_t errlen)
{
    UChar zone[TZ_MAX_UCHARS];
    const char *name = tz && *tz ? tz : WASL_HIJRI_TZ_DEFAULT;
    if (strlen(name) >= TZ_MAX_UCHARS) {
        wasl_set_err(err, errlen, "time zone name too long");
        return -1;
    }
    UErrorCode st = U_ZERO_ERROR;
    if (strcmp(cached.zone, name) != 0) {
        wasl_hijri_thread_cleanup();
        u_uastrcpy(zone, name);
        /* ICU maps an unknown zone to "Etc/Unknown" (GMT) without failing: check it. */
        UChar canon[TZ_MAX_UCHARS];
        UBool system = false;
        ucal_getCanonicalTimeZoneID(zone, -1, canon, TZ_MAX_UCHARS, &system, &st);
        if (U_FAILURE(st) || !system) {
            wasl_set_err(err, errlen, "unknown time zone %s", name);
            return -1;
        }
        snprintf(cached.zone, sizeof cached.zone, "%s", name);
    } else {
        u_uastrcpy(zone, name);
    }
    double ms = (double)utc_s * 1000.0;
    UCalendar *h =
        calendar_at(&cached.hijri, "ar@calendar=islamic-umalqura", zone, -1, ms, err, errlen);
    if (!h) {
        return -1;
    }
    UCalendar *g =
        calendar_at(&cached.gregorian, "en@calendar=gregorian", zone, -1, ms, err, errlen);
    if (!g) {
        return -1;
    }
    memset(out, 0, sizeof *out);
    out->year = ucal_get(h, UCAL_EXTENDED_YEAR, &st);
    out->month = ucal_get(h, UCAL_MONTH, &st) + 1;
    out->day = ucal_get(h, UCAL_DATE, &st);
    out->g_year = ucal_get(g, UCAL_EXTENDED_YEAR, &st);
    out->g_month = ucal_get(g, UCAL_MONTH, &st) + 1;
    out->g_day = ucal_get(g, UCAL_DATE, &st);
    out->hour = ucal_get(g, UCAL_HOUR_OF_DAY, &st);
    out->minute = ucal_get(g, UCAL_MINUTE, &st);
    out->second = ucal_get(g, UCAL_SECOND, &st);
    out->weekday = ucal_get(g, UCAL_DAY_OF_WEEK, &st);
    out->utc_offset_s =
        (ucal_get(g, UCAL_ZONE_OFFSET, &st) + ucal_get(g, UCAL_DST_OFFSET, &st)) / 1000;
    if (U_FAILURE(st)) {
        wasl_set_err(err, errlen, "ICU calendar field error: %s", u_errorName(st));
        return -1;
    }
    if (out->year < WASL_HIJRI_YEAR_MIN || out->year > WASL_HIJRI_YEAR_MAX) {
        wasl_set_err(err, errlen, "Hijri year %d is outside the Umm al-Qura table (%d..%d)",
                     out->year, WASL_HIJRI_YEAR_MIN, WASL_HIJRI_YEAR_MAX);
        return -1;
    }
    return 0;
}

size_t wasl_digits_write(const char *in, wasl_digits_t digits, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0) {
        return 0;
    }
    for (const char *p = in; *p; p++) {
        bool digit = *p >= '0' && *p <= '9';
        size_t need = digit && digits == WASL_DIGITS_ARABIC_INDIC ? 2 : 1;
        /* Never cut a multi-byte character: a continuation byte goes with its lead. */
        if (!digit && ((unsigned char)*p & 0xC0) == 0xC0) {
            size_t n = 1;
            while ((((unsigned char)p[n]) & 0xC0) == 0x80) {
                n++;
            }
            if (o + n >= cap) {
                break;
            }
            memcpy(out + o, p, n);
            o += n;
            p += n - 1;
            continue;
        }
        if (o + need >= cap) {
            break;
        }
        if (need == 2) {
            /* U+0660..U+0669: D9 A0..D9 A9 */
            out[o++] = (char)0xD9;
            out[o++] = (char)(0xA0 + (*p - '0'));
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    return o;
}

size_t wasl_hijri_text_ar(const wasl_hijri_date_t *d, wasl_digits_t digits, char *out, size_t cap)
{
    char latin[512];
    int h12 = d->hour % 12 == 0 ? 12 : d->hour % 12;
    const char *period = d->hour < 12 ? "صباحًا" : "مساءً";
    snprintf(latin, sizeof latin, "%s %d %s %dهـ الموافق %d %s %dم الساعة %d:%02d %s",
             wasl_weekday_ar(d->weekday), d->day, wasl_hijri_month_ar(d->month), d->year, d->g_day,
             wasl_gregorian_month_ar(d->g_month), d->g_year, h12, d->minute, period);
    return wasl_digits_write(latin, digits, out, cap);
}

size_t wasl_hijri_text_en(const wasl_hijri_date_t *d, char *out, size_t cap)
{
    int h12 = d->hour % 12 == 0 ? 12 : d->hour % 12;
    int n = snprintf(out, cap, "%s %d %s %d AH (%d %s %d) at %d:%02d %s",
                     wasl_weekday_en(d->weekday), d->day, wasl_hijri_month_en(d->month), d->year,
                     d->g_day, wasl_gregorian_month_en(d->g_month), d->g_year, h12, d->minute,
                     d->hour < 12 ? "AM" : "PM");
    return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

size_t wasl_hijri_local_rfc3339(const wasl_hijri_date_t *d, char *out, size_t cap)
{
    int off = d->utc_offset_s;
    char sign = off < 0 ? '-' : '+';
    off = off < 0 ? -off : off;
    int n = snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", d->g_year, d->g_month,
                     d->g_day, d->hour, d->minute, d->second, sign, off / 3600, (off % 3600) / 60);
    return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}
