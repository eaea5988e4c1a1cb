/* wasl_domain — the domain's names and words, one source for every daemon and the desk: what a
 * name (an agent id, a queue, skill or rule name) may be, and the words people read for the
 * codes the system uses (categories, priorities). */
#ifndef WASL_DOMAIN_H
#define WASL_DOMAIN_H

#include <stdbool.h>

/* Longest queue, skill and rule name, in bytes (the router keeps them in 64-byte buffers). */
#define WASL_NAME_MAX 63
/* Longest agent id, in bytes: agents.id's CHECK '^[a-z0-9][a-z0-9._-]{0,63}$'. */
#define WASL_AGENT_ID_MAX 64

/* Whether s is a name: 1..WASL_NAME_MAX bytes of ASCII lower-case letters, digits, '-', '_'
 * and '.', the first a letter or a digit. One rule for intake's desk API, the router's rules
 * file and waslctl, so that a name one program accepts every other accepts too. The rule is
 * the union of what the three checked before (issue 14): intake wanted the letter or digit
 * first, the router and waslctl did not; all took the same characters. NULL is not a name. */
bool wasl_name_ok(const char *s);

/* Whether s is an agent id: the same rule as a name, up to WASL_AGENT_ID_MAX bytes. */
bool wasl_agent_id_ok(const char *s);

/* The word people read for a category code (wasl_categories, or "triage" for a message the
 * classifier could not place) in lang: "en" gives English, anything else (NULL included)
 * Arabic. NULL when the code is unknown. Static strings. */
const char *wasl_category_label(const char *code, const char *lang);

/* The same for a priority code ("urgent", "high", "normal", "low"); the Arabic word agrees
 * with أولوية ("بأولوية عاجلة"). NULL when the code is unknown. */
const char *wasl_priority_label(const char *code, const char *lang);

#endif
