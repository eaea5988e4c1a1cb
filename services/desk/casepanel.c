/* casepanel — the ticket's case, asked of wasl-caselookup for the agent (see casepanel.h). */
#include "casepanel.h"
#include "tickets.h"
#include "wasl_cases.h"
#include "wasl_log.h"
#include "wasl_ref.h"

#include <stdlib.h>
#include <string.h>

/* An agent waits for the panel, not a PBX: 1 s a try, one retry; then "unavailable". */
#define RPC_TIMEOUT_MS 1000
#define RPC_RETRIES    1
#define CLIENT_MAX     64 /* the request's client field (proto: max=64) */

static wasl_cases_t *cases;

int desk_casepanel_init(const desk_config_t *cfg)
{
    wasl_cases_config_t cc = {.bus = cfg->bus,
                              .bus_stages = cfg->bus_stages,
                              .curve_dir = cfg->curve_dir,
                              .curve_name = cfg->curve_name,
                              .timeout_ms = RPC_TIMEOUT_MS,
                              .retries = RPC_RETRIES};
    cases = wasl_cases_new(&cc);
    return cases ? 0 : -1;
}

void desk_casepanel_free(void)
{
    wasl_cases_destroy(&cases);
}

/* What the lookup needs, taken on the HTTP thread. */
typedef struct {
    char ref[WASL_REF_LEN + 1];
    char number[WASL_CASE_NUMBER_DIGITS + 1];
    char nid[WASL_NATIONAL_ID_DIGITS + 1];
    char client[CLIENT_MAX + 1];
} case_arg_t;

static void state_only(desk_reply_t *reply, const char *state)
{
    reply->status = 200;
    reply->body = json_pack("{s:s}", "state", state);
}

/* The slow part, on an offload thread: caselookup may take up to its timeouts (or not
 * answer). */
static void case_ask(desk_req_t *req, desk_reply_t *reply)
{
    const case_arg_t *a = req->offload_arg;
    wasl_cases_ask_t q = {.id_prefix = "desk",
                          .case_number = a->number,
                          .verifier_kind = "national_id",
                          .verifier = a->nid,
                          .channel = "desk",
                          .client = a->client,
                          .ticket = a->ref};
    wasl_msg_t *rep = wasl_cases_ask(cases, &q);
    if (!rep) {
        state_only(reply, "unavailable");
        return;
    }
    const wasl_msg_case_lookup_reply_t *r = &rep->u.case_lookup_reply;
    if (strcmp(r->outcome, "found") == 0) {
        json_t *c = wasl_cases_found_json(r);
        reply->status = c ? 200 : 503;
        reply->body = c ? json_pack("{s:s, s:o}", "state", "ok", "case", c)
                        : json_pack("{s:s}", "error", "out_of_memory");
    } else if (strcmp(r->outcome, "denied") == 0) {
        /* No such case, or the ID is not a party of it: caselookup does not say which. */
        state_only(reply, "not_found");
    } else if (strcmp(r->outcome, "locked") == 0) {
        state_only(reply, "locked");
    } else {
        state_only(reply, "unavailable");
    }
    wasl_msg_destroy(&rep);
}

void desk_case_get(desk_req_t *req, const char *ref, desk_reply_t *reply)
{
    PGresult *res = desk_ticket_case_readable(req, ref, reply);
    if (!res) {
        return; /* 403/404/503: nothing asked, nothing audited */
    }
    const char *number = PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2);
    const char *nid = PQgetisnull(res, 0, 3) ? NULL : PQgetvalue(res, 0, 3);
    bool party = wasl_cases_party_shaped(number, nid);
    case_arg_t *a = party ? calloc(1, sizeof *a) : NULL;
    if (a) {
        snprintf(a->ref, sizeof a->ref, "%s", ref);
        snprintf(a->number, sizeof a->number, "%s", number);
        snprintf(a->nid, sizeof a->nid, "%s", nid);
        /* The audit's asker: channel "desk", client the agent (a session's agent id is at most
         * 64 bytes, the field's limit). */
        snprintf(a->client, sizeof a->client, "%s", req->principal.id);
    }
    PQclear(res);
    if (!party) {
        state_only(reply, "no_party");
    } else if (!a) {
        desk_error(reply, 503, "unavailable", NULL, "out of memory");
    } else if (!wasl_cases_configured(cases)) {
        free(a);
        state_only(reply, "unavailable");
    } else {
        req->offload = case_ask;
        req->offload_arg = a;
        req->offload_free = free;
    }
}
