/* template — the notifier's message templates: loaded from deploy/templates/{ar,en}/, checked at
 * start, rendered with named placeholders made bidi-safe, and the SMS segment arithmetic. */
#ifndef WASL_NOTIFIER_TEMPLATE_H
#define WASL_NOTIFIER_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* U+2068 FIRST STRONG ISOLATE and U+2069 POP DIRECTIONAL ISOLATE, in UTF-8. */
#define TMPL_FSI "\xe2\x81\xa8"
#define TMPL_PDI "\xe2\x81\xa9"

typedef struct tmpl_set tmpl_set_t;

/* Loads every template the notifier can be asked for (each name of tmpl_names, in ar and en,
 * for sms and email) from dir/<lang>/<name>.<channel>. An email template's first line is
 * "Subject: …", then a blank line, then the body. A missing file, a "{{placeholder}}" that the
 * template's name does not define, a template without {{ref}}, an unclosed "{{" or invalid UTF-8
 * is an error: NULL, with the file and the reason in err. The caller owns the set. */
tmpl_set_t *tmpl_set_load(const char *dir, char *err, size_t cap);
void tmpl_set_destroy(tmpl_set_t **self_p);

/* The template names the router may use (NULL-terminated) and whether `name` is one of them. */
extern const char *const tmpl_names[];
bool tmpl_known(const char *name);

/* Renders template `name` for lang ("ar"/"en") and channel ("sms"/"email") with params (a JSON
 * object; strings and numbers are used as text). Every value is stripped of bidi controls and,
 * in Arabic text (or when it holds right-to-left letters), wrapped in FSI…PDI so that
 * references, numbers and dates keep their order. A "category_label" that is a category code
 * (or a "category" param) becomes its word in that language (wasl_category_label), a
 * "priority" code its word (wasl_priority_label), an RFC 3339 "due"
 * becomes Riyadh time "YYYY-MM-DD HH:MM". Returns the body as a new
 * string (and, for email, the subject in *subject, new); NULL when the template does not exist
 * or a placeholder has no value, with the reason in err (a permanent error for that row). */
char *tmpl_render(const tmpl_set_t *self, const char *lang, const char *channel, const char *name,
                  const json_t *params, char **subject, char *err, size_t cap);

/* SMS encoding and parts of a UTF-8 text: GSM 03.38 (7-bit, extension characters count 2) fits
 * 160 septets in one part and 153 per part when concatenated; anything else is UCS-2, 70 UTF-16
 * units in one part, 67 per part. Returns the number of parts (0 for ""), and whether UCS-2 is
 * needed in *ucs2 (may be NULL); -1 on invalid UTF-8. */
int tmpl_sms_segments(const char *text, bool *ucs2);

#endif
