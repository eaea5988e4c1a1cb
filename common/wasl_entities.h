/* wasl_entities — what a contact's text names: case numbers, national/resident IDs, phone
 * numbers (as E.164), e-mail addresses and ticket references; Arabic-Indic digits included. */
#ifndef WASL_ENTITIES_H
#define WASL_ENTITIES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Kinds, in the order they appear in the JSON object. */
#define WASL_ENTITY_CASE        "case_number"
#define WASL_ENTITY_NATIONAL_ID "national_id"
#define WASL_ENTITY_PHONE       "phone"
#define WASL_ENTITY_EMAIL       "email"
#define WASL_ENTITY_TICKET      "ticket_ref"

/* The most entities of one kind kept from a text. */
#define WASL_ENTITIES_MAX_PER_KIND 16

/* Extracts entities from text[0..len) (raw UTF-8). Returns a new JSON object
 * {"case_number": [...], "national_id": [...], "phone": [...], "email": [...],
 *  "ticket_ref": [...]} with only the non-empty kinds, values unique and in order of
 * appearance; NULL when the text is not valid UTF-8 or on allocation failure.
 *
 * Rules (a run of digits is any Nd digits, separated from other digits):
 *  - case number: 10 digits starting with a Hijri year 44, 45 or 46;
 *  - ticket reference: 10 digits with a valid Verhoeff check digit, when preceded within a few
 *    words by a reference cue (رقم الطلب/البلاغ/التذكرة/المرجع, ticket, ref, reference, #) —
 *    or, with no cue, when it does not also read as a national ID (below);
 *  - national/resident ID: 10 digits starting 1 or 2 that pass the ID's Luhn check digit;
 *  - phone: 05XXXXXXXX, 5XXXXXXXX, +9665…, 9665…, 009665… (spaces and dashes inside allowed),
 *    normalized with wasl_phone_e164 (default country `default_cc`);
 *  - e-mail: local@domain.tld, lower-cased. */
json_t *wasl_entities_extract(const char *text, size_t len, const char *default_cc);

/* True when a 10-digit ASCII string passes the Saudi ID check digit (Luhn). */
bool wasl_national_id_valid(const char *digits);

#endif
