/* wasl_phone — phone numbers as people type them and gateways send them, normalized to E.164. */
#ifndef WASL_PHONE_H
#define WASL_PHONE_H

#include <stdbool.h>

#define WASL_PHONE_MAX 17 /* '+' + 15 digits + NUL */

/* Normalizes a phone number to E.164 ("+966512345678"). Digits of any script are folded
 * (wasl_fold_digits); ignored anywhere: spaces (U+0020, tab, CR, LF, U+00A0, U+2007, U+2009,
 * U+202F), dashes ('-', U+2010..U+2015, U+2212), '.', '(', ')' and bidi controls (U+200E,
 * U+200F, U+061C, U+202A..U+202E, U+2066..U+2069). One '+' is allowed, before the first digit.
 *
 * default_cc is the country calling code (1..3 ASCII digits, not starting with 0, e.g.
 * "966") used for national numbers; NULL accepts only international forms. Accepted forms:
 *   "+<cc><n>", "00<cc><n>"               international;
 *   "0<n>"                                 national with trunk prefix -> +<default_cc><n>;
 *   "<default_cc><n>"                      international without '+', when the length is
 *                                          right: 12 digits for 966, 8..15 for other codes;
 *   "5XXXXXXXX" (default_cc "966" only)   bare Saudi mobile, as left after removing +966.
 * Rules: 8..15 digits in all, country code not starting with 0. For +966 the national
 * number is 9 digits and one of
 *   mobile    5XXXXXXXX,
 *   landline  1AXXXXXXX with area code A in {1,2,3,4,6,7} (011 Riyadh, 012 Makkah/Jeddah,
 *             013 Eastern Province, 014 Madinah/North, 016 Qassim/Hail, 017 South);
 * a trunk '0' written after +966 ("+966 (0)55 ...") is dropped. Rejected on purpose:
 *   - toll-free 800XXXXXXX and unified 92XXXXXXX numbers: they cannot be reached from
 *     abroad, never originate calls or SMS, and 800 numbers are 10 digits;
 *   - a bare 9-digit "1AXXXXXXX" without its '0': landlines are always written with the
 *     trunk prefix, and a 9-digit run starting with 1 is as likely a truncated national ID.
 * Returns 0 and writes the number + NUL into out, or -1 with out = "" when invalid (text
 * NULL, invalid UTF-8, any other character). A malformed default_cc or an allocation failure
 * is logged and returns -1. out must not be NULL. */
int wasl_phone_e164(const char *text, const char *default_cc, char out[WASL_PHONE_MAX]);

/* True when e164 is a Saudi mobile in E.164 form: "+9665" and 8 more ASCII digits.
 * False for NULL and for anything not normalized. */
bool wasl_phone_is_sa_mobile(const char *e164);

#endif
