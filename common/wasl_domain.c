/* wasl_domain — the domain's names and words. */
#include "wasl_domain.h"

#include <stddef.h>
#include <string.h>

static bool name_shape(const char *s, size_t max)
{
    if (!s) {
        return false;
    }
    size_t len = strlen(s);
    if (len == 0 || len > max) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '-' && c != '_' && c != '.'))) {
            return false;
        }
    }
    return true;
}

bool wasl_name_ok(const char *s)
{
    return name_shape(s, WASL_NAME_MAX);
}

bool wasl_agent_id_ok(const char *s)
{
    return name_shape(s, WASL_AGENT_ID_MAX);
}

typedef struct {
    const char *code, *ar, *en;
} word_t;

/* Category labels. Until issue 14 the router and the notifier each had a table and they
 * disagreed; these are the words chosen (docs/architecture.md, «Text»): the indefinite noun of
 * the kind, as the acknowledgement reads "وتصنيفه: شكوى"; English in sentence case, as the desk
 * lists them. */
static const word_t categories[] = {
    {"case_inquiry", "استفسار عن قضية", "Case inquiry"},
    {"eservice_support", "دعم الخدمات الإلكترونية", "E-services support"},
    {"judicial_support", "الدعم القضائي", "Judicial support"},
    {"staff_services", "خدمات الموظفين", "Staff services"},
    {"complaint", "شكوى", "Complaint"},
    {"general_inquiry", "استفسار عام", "General inquiry"},
    {"triage", "طلب عام", "General request"},
};

static const word_t priorities[] = {
    {"urgent", "عاجلة", "urgent"},
    {"high", "عالية", "high"},
    {"normal", "عادية", "normal"},
    {"low", "منخفضة", "low"},
};

static const char *word(const word_t *words, size_t n, const char *code, const char *lang)
{
    bool en = lang && strcmp(lang, "en") == 0;
    for (size_t i = 0; code && i < n; i++) {
        if (strcmp(words[i].code, code) == 0) {
            return en ? words[i].en : words[i].ar;
        }
    }
    return NULL;
}

const char *wasl_category_label(const char *code, const char *lang)
{
    return word(categories, sizeof categories / sizeof categories[0], code, lang);
}

const char *wasl_priority_label(const char *code, const char *lang)
{
    return word(priorities, sizeof priorities / sizeof priorities[0], code, lang);
}
