/* call_decide — what a telephony event does to its call's ticket, decided without I/O. */
#include "call_decide.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const event_names[] = {
    [CALL_EV_STARTED] = "call.started", [CALL_EV_IVR] = "call.ivr",
    [CALL_EV_NOTE] = "call.note",       [CALL_EV_ANSWERED] = "call.answered",
    [CALL_EV_ENDED] = "call.ended",     [CALL_EV_RINGING] = "call.ringing",
};
#define EVENT_COUNT (sizeof event_names / sizeof event_names[0])

call_event_t call_event_parse(const char *name)
{
    for (size_t i = 1; name && i < EVENT_COUNT; i++) {
        if (strcmp(event_names[i], name) == 0) {
            return (call_event_t)i;
        }
    }
    return CALL_EV_NONE;
}

const char *call_event_name(call_event_t ev)
{
    return ev > CALL_EV_NONE && (size_t)ev < EVENT_COUNT ? event_names[ev] : NULL;
}

bool call_agent_id_valid(const char *id)
{
    static const char first[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    static const char rest[] = "abcdefghijklmnopqrstuvwxyz0123456789._-";
    if (!id || !*id || !strchr(first, id[0])) {
        return false;
    }
    size_t n = strlen(id);
    return n <= 64 && strspn(id, rest) == n;
}

long long call_cti_ring_seq(const char *agent)
{
    uint32_t h = 2166136261u; /* FNV-1a: stable across builds and machines */
    for (const unsigned char *p = (const unsigned char *)agent; p && *p; p++) {
        h = (h ^ *p) * 16777619u;
    }
    return CALL_CTI_SEQ_RING + (long long)(h % 1000000u);
}

void call_state_init(call_state_t *s)
{
    memset(s, 0, sizeof *s);
    s->duration_s = -1;
}

void call_state_fold(call_state_t *s, const call_event_row_t *row)
{
    if (row->from && !s->from) {
        s->from = row->from;
    }
    if (row->to && !s->to) {
        s->to = row->to;
    }
    if (row->queue) {
        s->queue = row->queue;
    }
    switch (row->event) {
    case CALL_EV_ANSWERED:
        s->answered = true;
        s->agent = row->agent;
        break;
    case CALL_EV_ENDED:
        s->ended = true;
        s->cause = row->cause;
        if (row->duration_s) {
            s->duration_s = strtoll(row->duration_s, NULL, 10);
        }
        break;
    case CALL_EV_IVR:
        if (row->menu && strcmp(row->menu, "report") == 0) {
            s->report_requested = true;
        }
        break;
    case CALL_EV_NOTE:
        s->answered = true;
        break;
    case CALL_EV_STARTED:
    case CALL_EV_RINGING: /* rung is not answered: the agent may never pick up */
    case CALL_EV_NONE:
        break;
    }
}

bool call_abandoned(const call_state_t *s, bool cti)
{
    if (!s->ended) {
        return false;
    }
    if (s->cause && strcmp(s->cause, "abandoned") == 0) {
        return true;
    }
    return cti && s->queue && *s->queue && !s->answered;
}

call_action_t call_decide(call_event_t ev, bool duplicate, bool has_ticket, bool cti,
                          const call_state_t *s)
{
    if (duplicate) {
        return CALL_DO_DUPLICATE;
    }
    if (ev == CALL_EV_NOTE) {
        return has_ticket ? CALL_DO_APPEND_NOTE : CALL_DO_CREATE_NOTE;
    }
    if (has_ticket || ev == CALL_EV_RINGING) {
        return CALL_DO_NOTHING; /* one ticket per call: a report or a callback joins nothing */
    }
    if (ev == CALL_EV_IVR && s->report_requested) {
        return CALL_DO_CREATE_REPORT;
    }
    return call_abandoned(s, cti) ? CALL_DO_CREATE_CALLBACK : CALL_DO_NOTHING;
}

bool call_action_creates(call_action_t a)
{
    return call_action_kind(a) != NULL;
}

const char *call_action_kind(call_action_t a)
{
    switch (a) {
    case CALL_DO_CREATE_NOTE:
        return "note";
    case CALL_DO_CREATE_REPORT:
        return "ivr_report";
    case CALL_DO_CREATE_CALLBACK:
        return "callback";
    default:
        return NULL;
    }
}

char *call_ticket_text(call_action_t a, const call_state_t *s, char *out, size_t cap)
{
    const char *queue = s->queue ? s->queue : "-";
    if (a == CALL_DO_CREATE_REPORT) {
        snprintf(out, cap, "[IVR] The caller chose to leave a report (menu report).");
    } else if (a == CALL_DO_CREATE_CALLBACK && s->duration_s >= 0) {
        snprintf(out, cap,
                 "[Callback] The caller hung up while waiting in queue %s after %lld s; call "
                 "them back.",
                 queue, s->duration_s);
    } else if (a == CALL_DO_CREATE_CALLBACK) {
        snprintf(out, cap,
                 "[Callback] The caller hung up while waiting in queue %s; call them back.", queue);
    } else if (cap) {
        out[0] = '\0';
    }
    return out;
}
