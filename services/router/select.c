/* select — choosing the agent for a waiting ticket, in memory: eligibility (queue and skills,
 * language, presence, capacity per channel, not declined before), the best matched, then the
 * longest idle; with the reason each other agent was passed over. */
#include "select.h"

#include <assert.h>
#include <string.h>

static const char *const channel_names[SELECT_CHANNELS] = {"web", "api", "email", "sms", "phone"};

int select_channel(const char *name)
{
    for (int i = 0; name && i < SELECT_CHANNELS; i++) {
        if (strcmp(name, channel_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static int skill_level(const select_agent_t *a, const char *skill)
{
    for (size_t i = 0; i < a->nskills; i++) {
        if (strcmp(a->skill[i], skill) == 0) {
            return a->level[i];
        }
    }
    return 0;
}

static bool speaks(const select_agent_t *a, const char *lang)
{
    if (!lang || strcmp(lang, "mixed") == 0) {
        return a->nlangs > 0; /* mixed Arabic/English: either language serves */
    }
    for (size_t i = 0; i < a->nlangs; i++) {
        if (strcmp(a->lang[i], lang) == 0) {
            return true;
        }
    }
    return false;
}

/* 0 with *score when eligible, else the reason. */
static const char *exclusion(const select_agent_t *a, const select_ticket_t *t, int *score,
                             bool *qualified)
{
    *qualified = false;
    int level = skill_level(a, t->queue);
    if (level <= 0) {
        return "not in queue";
    }
    int total = level;
    for (size_t i = 0; i < t->nskills; i++) {
        int l = skill_level(a, t->skills[i]);
        if (l <= 0) {
            return "missing skill";
        }
        total += l;
    }
    if (!speaks(a, t->language)) {
        return "language";
    }
    if (a->absent) {
        return a->absent;
    }
    *qualified = true;
    for (size_t i = 0; i < t->ndeclined; i++) {
        if (strcmp(t->declined[i], a->id) == 0) {
            return "declined this ticket";
        }
    }
    if (t->channel < 0 || a->load[t->channel] >= a->capacity[t->channel]) {
        return "at capacity";
    }
    *score = total;
    return NULL;
}

int select_agent(const select_agent_t *agents, size_t n, const select_ticket_t *t,
                 bool *present_eligible, json_t *explain)
{
    assert(t && present_eligible);
    int best = -1, best_score = 0;
    size_t listed = 0;
    *present_eligible = false;
    for (size_t i = 0; i < n; i++) {
        int score = 0;
        bool qualified;
        const char *why = exclusion(&agents[i], t, &score, &qualified);
        *present_eligible |= qualified;
        if (!why &&
            (best < 0 || score > best_score ||
             (score == best_score && agents[i].idle_since_ms < agents[best].idle_since_ms))) {
            best = (int)i;
            best_score = score;
        }
        /* Agents outside the queue are not candidates: listing them explains nothing. */
        if (explain && listed < SELECT_EXPLAIN_MAX && !(why && strcmp(why, "not in queue") == 0)) {
            json_array_append_new(
                explain, why ? json_pack("{s:s, s:s}", "agent", agents[i].id, "excluded", why)
                             : json_pack("{s:s, s:i}", "agent", agents[i].id, "score", score));
            listed++;
        }
    }
    return best;
}
