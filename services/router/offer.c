/* offer — the offer round's choices, pure (see offer.h). */
#include "offer.h"
#include "wasl_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_SEP     ","
#define DECLINED_MAX 64
#define SERVABLE_MAX 96 /* bytes of one "queue/channel" pair */

static const char *const channel_names[SELECT_CHANNELS] = {"web", "api", "email", "sms", "phone"};

/* Adds each channel → integer of a JSON object to per[channel]. */
static void per_channel(const char *text, int *per)
{
    json_t *obj = json_loads(text, 0, NULL);
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        int c = select_channel(k);
        if (c >= 0 && json_is_integer(v)) {
            per[c] = (int)json_integer_value(v);
        }
    }
    json_decref(obj);
}

void offer_read_agent(select_agent_t *a, const offer_agent_row_t *row)
{
    memset(a, 0, sizeof *a);
    snprintf(a->id, sizeof a->id, "%s", row->id);
    json_t *skills = json_loads(row->skills, 0, NULL);
    const char *k;
    json_t *v;
    json_object_foreach(skills, k, v)
    {
        if (a->nskills < SELECT_SKILLS_MAX && strlen(k) < sizeof a->skill[0]) {
            snprintf(a->skill[a->nskills], sizeof a->skill[0], "%s", k);
            a->level[a->nskills++] = json_is_integer(v) ? (int)json_integer_value(v) : 1;
        }
    }
    json_decref(skills);
    char langs[64];
    snprintf(langs, sizeof langs, "%s", row->languages);
    char *save = NULL;
    for (char *l = strtok_r(langs, LIST_SEP, &save); l && a->nlangs < SELECT_LANGS_MAX;
         l = strtok_r(NULL, LIST_SEP, &save)) {
        snprintf(a->lang[a->nlangs++], sizeof a->lang[0], "%s", l);
    }
    per_channel(row->capacity, a->capacity);
    per_channel(row->load, a->load);
    a->idle_since_ms = strtoll(row->idle_since_ms, NULL, 10);
    const char *absent = row->absent;
    a->absent = !*absent                         ? NULL
                : strcmp(absent, "offline") == 0 ? "offline"
                : strcmp(absent, "away") == 0    ? "away"
                : strcmp(absent, "busy") == 0    ? "busy"
                                                 : "wrap-up";
}

char *offer_servable(const select_agent_t *agents, size_t n)
{
    json_t *queues = json_array();
    for (size_t i = 0; i < n; i++) {
        const select_agent_t *a = &agents[i];
        for (size_t s = 0; !a->absent && s < a->nskills; s++) {
            for (int c = 0; c < SELECT_CHANNELS; c++) {
                if (a->load[c] >= a->capacity[c]) {
                    continue;
                }
                char key[SERVABLE_MAX];
                snprintf(key, sizeof key, "%s/%s", a->skill[s], channel_names[c]);
                bool seen = false; /* once each: `= ANY` compares every element for every row */
                size_t j;
                json_t *q;
                json_array_foreach(queues, j, q)
                {
                    seen = seen || strcmp(json_string_value(q), key) == 0;
                }
                if (!seen) {
                    json_array_append_new(queues, json_string(key));
                }
            }
        }
    }
    /* A $n::text[] parameter, every element quoted by wasl_pg_text_array. */
    size_t nq = json_array_size(queues), idx;
    const char **items = malloc((nq ? nq : 1) * sizeof *items);
    char *qarr = NULL;
    if (items) {
        json_t *q;
        json_array_foreach(queues, idx, q)
        {
            items[idx] = json_string_value(q);
        }
        qarr = wasl_pg_text_array(items, nq);
        free(items);
    }
    json_decref(queues);
    return qarr;
}

/* Splits "a,b" (copied into buf) into at most max items; returns how many. */
static size_t split(const char *csv, char *buf, size_t cap, const char **items, size_t max)
{
    snprintf(buf, cap, "%s", csv ? csv : "");
    size_t n = 0;
    char *save = NULL;
    for (char *s = strtok_r(buf, LIST_SEP, &save); s && n < max;
         s = strtok_r(NULL, LIST_SEP, &save)) {
        items[n++] = s;
    }
    return n;
}

json_t *offer_make(select_agent_t *agents, size_t n, const offer_ticket_row_t *row)
{
    char skills_buf[1024], declined_buf[2048];
    const char *skills[SELECT_SKILLS_MAX], *declined[DECLINED_MAX];
    select_ticket_t t = {.id = row->id,
                         .queue = row->queue,
                         .channel = select_channel(row->channel),
                         .language = row->language,
                         .skills = skills,
                         .declined = declined};
    t.nskills = split(row->skills, skills_buf, sizeof skills_buf, skills, SELECT_SKILLS_MAX);
    t.ndeclined = split(row->declined, declined_buf, sizeof declined_buf, declined, DECLINED_MAX);
    json_t *candidates = json_array();
    bool present;
    int best = select_agent(agents, n, &t, &present, candidates);
    if (best < 0) {
        json_decref(candidates);
        return NULL;
    }
    select_agent_t *a = &agents[best];
    a->load[t.channel]++; /* the offer counts against capacity from now */
    return json_pack("{s:I, s:s, s:s, s:{s:s, s:s, s:o, s:{s:s, s:s?, s:s?}}}", "ticket_id",
                     (json_int_t)t.id, "agent", a->id, "channel", row->channel, "explain", "agent",
                     a->id, "rule", "best matched (queue + skill levels), then longest idle",
                     "candidates", candidates, "order", "priority", row->priority,
                     "first_response_due", row->first_response_due, "waiting_since",
                     row->waiting_since);
}
