/* wasl_hijri — dates as Saudi courts speak them: ICU's Umm al-Qura calendar in the court's zone,
 * Arabic and English wording, Latin or Arabic-Indic digits. */
#ifndef WASL_HIJRI_H
#define WASL_HIJRI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ICU's Umm al-Qura table covers these Hijri years; outside it ICU silently falls back to the
 * arithmetic calendar, which can be a day off. We refuse instead. */
#define WASL_HIJRI_YEAR_MIN 1300
#define WASL_HIJRI_YEAR_MAX 1600

#define WASL_HIJRI_TZ_DEFAULT "Asia/Riyadh"

/* One instant seen in a zone, in both calendars. */
typedef struct {
    int year, month, day;       /* Hijri (Umm al-Qura), month 1..12 */
    int g_year, g_month, g_day; /* Gregorian, in the same zone */
    int hour, minute, second;   /* local wall clock */
    int weekday;                /* 1 = Sunday .. 7 = Saturday */
    int utc_offset_s;           /* zone + DST offset at that instant */
} wasl_hijri_date_t;

typedef enum { WASL_DIGITS_LATIN = 0, WASL_DIGITS_ARABIC_INDIC } wasl_digits_t;

/* Converts `utc_s` (seconds since the epoch) to its Umm al-Qura and Gregorian dates in time
 * zone `tz` (NULL: Asia/Riyadh). Returns 0, or -1 with a message in err (errlen bytes) when the
 * zone is unknown, ICU fails, or the Hijri year is outside WASL_HIJRI_YEAR_MIN..MAX. Thread-safe:
 * each thread keeps its own pair of ICU calendars for the last zone used. */
int wasl_hijri_from_utc(int64_t utc_s, const char *tz, wasl_hijri_date_t *out, char *err,
                        size_t errlen);

/* Closes the calendars the calling thread keeps for reuse (at thread or process end; tests). */
void wasl_hijri_thread_cleanup(void);

/* Names (static UTF-8 strings; "" out of range): Hijri months 1..12, Gregorian months 1..12,
 * weekdays 1 (Sunday) .. 7. */
const char *wasl_hijri_month_ar(int month);
const char *wasl_hijri_month_en(int month);
const char *wasl_gregorian_month_ar(int month);
const char *wasl_gregorian_month_en(int month);
const char *wasl_weekday_ar(int weekday);
const char *wasl_weekday_en(int weekday);

/* Copies `in` into out (cap bytes, always NUL-terminated, truncated at a character boundary)
 * with every ASCII digit written in `digits`. Returns the bytes written (without the NUL). */
size_t wasl_digits_write(const char *in, wasl_digits_t digits, char *out, size_t cap);

/* "الأربعاء ٢٧ شعبان ١٤٤٦هـ الموافق ٢٦ فبراير ٢٠٢٥م الساعة ٩:٣٠ صباحًا" in `digits`.
 * Returns the length written into out (cap bytes, NUL-terminated, truncated if too small). */
size_t wasl_hijri_text_ar(const wasl_hijri_date_t *d, wasl_digits_t digits, char *out, size_t cap);
/* "Wednesday 27 Sha'ban 1446 AH (26 February 2025) at 9:30 AM". */
size_t wasl_hijri_text_en(const wasl_hijri_date_t *d, char *out, size_t cap);
/* RFC 3339 local time with its offset: "2025-02-26T09:30:00+03:00". */
size_t wasl_hijri_local_rfc3339(const wasl_hijri_date_t *d, char *out, size_t cap);

#endif
