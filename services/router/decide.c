/* decide — the routing decision for one ticket, pure (see decide.h). */
#include "decide.h"
#include "router.h"
#include "wasl_log.h"
#include "wasl_rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_SEP ","

void route_row_set_kinds(route_row_t *row, const char *csv)
{
    snprintf(row->kinds_buf, sizeof row->kinds_buf, "%s", csv ? csv : "");
    row->nkinds = 0;
    char *save = NULL;
    for (char *k = strtok_r(row->kinds_buf, LIST_SEP, &save); k && row->nkinds < ROUTE_KINDS_MAX;
         k = strtok_r(NULL, LIST_SEP, &save)) {
        row->kinds[row->nkinds++] = k;
    }
}

void route_plan(const rules_t *rules, const route_row_t *row, bool auto_answer_on,
                bool caselookup_up, route_plan_t *out)
{
    memset(out, 0, sizeof *out);
    route_input_t in = {.category = row->category,
                        .priority = row->priority,
                        .channel = row->channel,
                        .language = row->language,
                        .beneficiary = row->beneficiary,
                        .entities = row->kinds,
                        .nentities = row->nkinds,
                        .now = row->now};
    rules_decide(rules, &in, &out->d);
    /* Answering without an agent: caselookup discloses the case only to a verified party;
     * anything else (not verified, locked out, caselookup down) routes to the queue as usual,
     * with the reason recorded. */
    if (!out->d.auto_answer_asked) {
        out->auto_answer = "not asked";
    } else if (!out->d.auto_answer) {
        out->auto_answer = "off (auto_answer: false in the rules file)";
    } else if (!auto_answer_on) {
        out->auto_answer = "off (WASL_ROUTER_AUTO_ANSWER)";
    } else if (!*row->case_number) {
        out->auto_answer = "not answered: no case number";
    } else if (!*row->national_id && !*row->trusted_phone) {
        out->auto_answer = "not answered: no national ID or trusted caller line to verify";
    } else if (!caselookup_up) {
        out->auto_answer = "not answered: caselookup unavailable";
        out->unavailable = true;
    }
}

wasl_msg_t *route_lookup_request(const route_row_t *row)
{
    wasl_msg_t *req = wasl_msg_new(WASL_MSG_CASE_LOOKUP_REQUEST);
    if (!req) {
        return NULL;
    }
    char rid[WASL_RPC_REQUEST_ID_MAX];
    if (wasl_rpc_request_id("router", rid) < 0) {
        wasl_msg_destroy(&req);
        return NULL;
    }
    const char *nid = row->national_id;
    wasl_msg_case_lookup_request_t *q = &req->u.case_lookup_request;
    q->request_id = strdup(rid);
    q->case_number = strdup(row->case_number);
    q->verifier_kind = strdup(*nid ? "national_id" : "caller_phone");
    q->verifier = strdup(*nid ? nid : row->trusted_phone);
    /* No caller line: a ticket's phone is not a line the network vouched for, so the router's
     * lookups are held by the verifier's budget (the same whatever channel asks), the case's and
     * the router's own as a client (caselookup, "budgets"). */
    q->caller = NULL;
    q->channel = strdup("api");
    q->client = strdup("router");
    /* The answer may only go to the verified party's contact on file: ask for it, and name the
     * ticket, so that the audit row says for which ticket and to whom. */
    q->ticket = strdup(row->ref);
    q->contact = true;
    q->has_contact = true;
    if (!q->request_id || !q->case_number || !q->verifier_kind || !q->verifier || !q->channel ||
        !q->client || !q->ticket) {
        wasl_msg_destroy(&req);
    }
    return req;
}

void route_answer(const wasl_msg_t *rep, const char *lang, route_answer_t *out)
{
    memset(out, 0, sizeof *out);
    if (!rep) {
        out->why = "not answered: caselookup did not answer";
        return;
    }
    const wasl_msg_case_lookup_reply_t *a = &rep->u.case_lookup_reply;
    if (strcmp(a->outcome, "found") != 0) {
        out->why = strcmp(a->outcome, "locked") == 0
                       ? "not answered: the beneficiary is locked out of lookups"
                       : "not answered: not verified as a party of this case";
    } else if (!a->contact_phone && !a->contact_email) {
        out->why = "not answered: the party has no contact on file";
    } else {
        const char *text = strcmp(lang, "en") == 0 ? a->speech_en : a->speech_ar;
        snprintf(out->text, sizeof out->text, "%s", text ? text : "");
        out->why =
            *out->text ? "answered to the party's contact on file" : "not answered: empty answer";
        if (*out->text) {
            out->to = a->contact_phone ? a->contact_phone : a->contact_email;
            out->via = a->contact_phone ? "sms" : "email";
        }
    }
}

void route_no_answer(const route_plan_t *plan, route_answer_t *out)
{
    memset(out, 0, sizeof *out);
    out->why = plan->auto_answer;
}

/* The notifications of a routed row: the party's answer (when given) and the submitter's
 * acknowledgement. A new array. */
static json_t *notes_of(const route_row_t *row, const route_answer_t *answer, const char *nl)
{
    json_t *notes = json_array();
    if (*answer->text) {
        json_array_append_new(notes,
                              json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "kind", "case_answer",
                                        "channel", answer->via, "recipient", answer->to, "lang", nl,
                                        "params", "ref", row->ref, "answer", answer->text));
    }
    const char *phone = row->from_phone, *email = row->from_email;
    if (!row->auto_submitted && (*phone || *email)) {
        /* The submitter's acknowledgement, the same whether or not a party was answered. */
        json_array_append_new(notes, json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "kind", "ack",
                                               "channel", *phone ? "sms" : "email", "recipient",
                                               *phone ? phone : email, "lang", nl, "params", "ref",
                                               row->ref, "category_label",
                                               router_category_label(row->category, nl)));
    }
    return notes;
}

json_t *route_commit_input(const route_row_t *row, const route_plan_t *plan,
                           const route_answer_t *answer)
{
    const route_decision_t *d = &plan->d;
    json_t *skills = json_array(), *entities = json_array();
    for (size_t i = 0; i < d->nskills; i++) {
        json_array_append_new(skills, json_string(d->skills[i]));
    }
    for (size_t i = 0; i < row->nkinds; i++) {
        json_array_append_new(entities, json_string(row->kinds[i]));
    }
    bool answered = answer->text[0] != '\0';
    /* The input is recorded so that `waslctl route replay` re-decides exactly this. */
    json_t *event = json_pack(
        "{s:{s:s, s:s, s:s, s:s, s:s, s:o, s:I}, s:s, s:i, s:s, s:s, s:s, s:O, s:b, s:b,"
        " s:{s:I, s:I}, s:s}",
        "input", "category", row->category, "priority", row->priority, "channel", row->channel,
        "language", row->language, "beneficiary", row->beneficiary, "entities", entities, "now",
        (json_int_t)row->now, "rule", d->rule, "rule_line", d->rule_line, "queue", d->queue,
        "priority", d->priority, "priority_from", row->priority, "skills", skills, "business_hours",
        d->in_business_hours, "business_time_sla", d->business_time, "sla_s", "first_response",
        (json_int_t)d->first_response_s, "resolution", (json_int_t)d->resolution_s, "auto_answer",
        answer->why);
    const char *nl = strcmp(row->language, "en") == 0 ? "en" : "ar";
    if (answered) {
        char masked[320];
        if (strcmp(answer->via, "sms") == 0) {
            wasl_mask_phone(answer->to, masked, sizeof masked);
        } else {
            wasl_mask_email(answer->to, masked, sizeof masked);
        }
        /* For the agent who takes the ticket: the party already has the answer. */
        json_object_set_new(event, "auto_answer_detail",
                            json_pack("{s:s, s:s, s:s, s:s}", "result", answer->why, "answer",
                                      answer->text, "channel", answer->via, "recipient", masked));
    }
    return json_pack("{s:I, s:I, s:s, s:s, s:i, s:o, s:s, s:I, s:I, s:o, s:o, s:b}", "work_id",
                     (json_int_t)row->work_id, "ticket_id", (json_int_t)row->ticket_id, "queue",
                     d->queue, "priority", d->priority, "prio_rank", d->prio_rank, "skills", skills,
                     "rule", d->rule, "fr_due", (json_int_t)d->first_response_due, "res_due",
                     (json_int_t)d->resolution_due, "event", event, "notes",
                     notes_of(row, answer, nl), "answered", answered);
}
