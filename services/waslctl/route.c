/* route — `waslctl route explain REF` (every routing decision of a ticket and why) and
 * `waslctl route replay --since TIME --config FILE` (past decisions against another rules file,
 * read-only). */
#include "ctl.h"
#include "wasl_config.h"
#include "wasl_pg.h"
#include "wasl_ref.h"

/* The router's rules and agent choice, linked from the router's objects (see the Makefile, "the
 * router library"), so that replay and bench decide exactly as the daemon does. */
#include "../router/rules.h"
#include "../router/select.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPLAY_LIMIT_DEFAULT 10000
#define REPLAY_LIMIT_MAX     1000000
#define ENTITIES_MAX         8
#define EXPLAIN_AGENTS_MAX   "50"
#define REOFFER_AFTER_S      "600" /* wasl-router's WASL_ROUTER_REOFFER_AFTER_S default */

static int usage(void)
{
    fprintf(stderr,
            "Usage: waslctl route explain REF\n"
            "       waslctl route replay --since TIME --config FILE [--limit N]\n"
            "       waslctl route bench [--agents N] [--queues N] [--rounds N]\n"
            "explain prints a ticket's routing history: the rule that matched and its input, the\n"
            "SLA, every offer with its candidates and why each was passed over, expiries,\n"
            "escalations, overflow, transfers. replay re-decides the tickets routed since TIME\n"
            "(e.g. 2026-11-01, or '2026-11-28 08:00+03') with the rules in FILE, each at the\n"
            "instant it was routed, and prints every ticket whose queue, priority or SLA would\n"
            "change; it writes nothing. Uses WASL_PG_URL. bench measures decisions per second\n"
            "in memory (rules and agent choice; no database).\n");
    return CTL_USAGE;
}

static void print_event(const char *at, const char *kind, const char *actor, json_t *d)
{
    printf("%s  %-16s %-12s", at, kind, actor);
    const char *ks = kind;
    if (!strcmp(ks, "routed")) {
        json_t *in = json_object_get(d, "input");
        printf(" rule %s (line %lld) → queue %s, priority %s (was %s)\n",
               json_string_value(json_object_get(d, "rule")),
               (long long)json_integer_value(json_object_get(d, "rule_line")),
               json_string_value(json_object_get(d, "queue")),
               json_string_value(json_object_get(d, "priority")),
               json_string_value(json_object_get(d, "priority_from")));
        char *input = json_dumps(in, JSON_COMPACT);
        char *skills = json_dumps(json_object_get(d, "skills"), JSON_COMPACT);
        char *sla = json_dumps(json_object_get(d, "sla_s"), JSON_COMPACT);
        printf("%46s input %s\n%46s skills %s, SLA seconds %s%s, business hours: %s\n"
               "%46s auto-answer: %s\n",
               "", input ? input : "{}", "", skills ? skills : "[]", sla ? sla : "{}",
               json_is_true(json_object_get(d, "business_time_sla")) ? " (business time)" : "",
               json_is_true(json_object_get(d, "business_hours")) ? "yes" : "no", "",
               json_string_value(json_object_get(d, "auto_answer")));
        free(input);
        free(skills);
        free(sla);
        return;
    }
    if (!strcmp(ks, "offered")) {
        printf(" offer %lld to %s, expires %s\n",
               (long long)json_integer_value(json_object_get(d, "offer")),
               json_string_value(json_object_get(d, "agent")),
               json_string_value(json_object_get(d, "expires_at")));
        char *order = json_dumps(json_object_get(d, "order"), JSON_COMPACT);
        printf("%46s order %s; choice: %s\n", "", order ? order : "{}",
               json_string_value(json_object_get(d, "rule")));
        free(order);
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(d, "candidates"), i, c)
        {
            const char *ex = json_string_value(json_object_get(c, "excluded"));
            if (ex) {
                printf("%46s   %-16s excluded: %s\n", "",
                       json_string_value(json_object_get(c, "agent")), ex);
            } else {
                printf("%46s   %-16s eligible, score %lld\n", "",
                       json_string_value(json_object_get(c, "agent")),
                       (long long)json_integer_value(json_object_get(c, "score")));
            }
        }
        return;
    }
    char *text = json_dumps(d, JSON_COMPACT);
    printf(" %s\n", text ? text : "");
    free(text);
}

/* For a ticket still waiting without an offer: every agent of its queue now and why each
 * cannot take it (the same tests as the router's dispatch, read-only). $1 ticket id, $2 the
 * reoffer window in seconds. */
static const char *const waiting_sql =
    "SELECT a.id, CASE"
    "  WHEN NOT (a.skills ?& t.skills) THEN 'missing skill'"
    "  WHEN NOT (t.language IS NULL OR t.language = 'mixed'"
    "            OR t.language = ANY (a.languages)) THEN 'language'"
    "  WHEN a.presence_until IS NULL OR a.presence_until <= now() THEN 'offline'"
    "  WHEN a.presence <> 'available' THEN a.presence"
    "  WHEN a.wrapup_until > now() THEN 'wrap-up'"
    "  WHEN EXISTS (SELECT 1 FROM offers o WHERE o.ticket_id = t.id AND o.agent_id = a.id"
    "    AND o.state IN ('rejected', 'expired')"
    "    AND o.answered_at > now() - make_interval(secs => $2::int))"
    "    THEN 'declined this ticket'"
    "  WHEN coalesce((a.capacity->>t.channel)::int, 0) <= (SELECT count(*) FROM tickets x"
    "    WHERE x.assignee = a.id AND x.status = 'assigned' AND x.channel = t.channel)"
    "    + (SELECT count(*) FROM offers o WHERE o.agent_id = a.id AND o.state = 'offered'"
    "    AND o.channel = t.channel) THEN 'at capacity'"
    "  ELSE 'eligible: the next dispatch round offers it' END,"
    "  t.queue, t.no_agent_since::text"
    " FROM tickets t JOIN agents a ON a.enabled AND a.skills ? t.queue"
    " WHERE t.id = $1::bigint ORDER BY a.id LIMIT " EXPLAIN_AGENTS_MAX;
enum { WAITING_AGENT, WAITING_WHY, WAITING_QUEUE, WAITING_NO_AGENT_SINCE, WAITING_COLS };

static void explain_waiting(wasl_pg_t *pg, const char *ticket_id)
{
    const char *p[] = {ticket_id, REOFFER_AFTER_S};
    PGresult *res = wasl_pg_query(pg, waiting_sql, 2, p);
    if (!wasl_pg_arity(res, WAITING_COLS, "route explain: agents of the queue")) {
        PQclear(res);
        return;
    }
    printf("\nnow: waiting for an offer; agents of the queue:\n");
    if (PQntuples(res) == 0) {
        printf("  no enabled agent serves this queue (the overflow timer runs)\n");
    }
    for (int r = 0; r < PQntuples(res); r++) {
        printf("  %-16s %s\n", PQgetvalue(res, r, WAITING_AGENT), PQgetvalue(res, r, WAITING_WHY));
    }
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, WAITING_NO_AGENT_SINCE)) {
        printf("  no eligible agent present since %s (overflow timer)\n",
               PQgetvalue(res, 0, WAITING_NO_AGENT_SINCE));
    }
    PQclear(res);
}

/* $1 ref: the ticket as explain prints it. */
static const char *const ticket_sql =
    "SELECT id, status, coalesce(category, '-'), coalesce(priority, '-'),"
    "  coalesce(queue, '-'), coalesce(assignee, '-'), coalesce(first_response_due::text, '-'),"
    "  coalesce(resolution_due::text, '-'), coalesce(waiting_since::text, '-'),"
    "  coalesce(route_rule, '-'), channel, coalesce(language, '-'),"
    "  status = 'routed' AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.ticket_id = t.id"
    "    AND o.state = 'offered')"
    " FROM tickets t WHERE ref = $1";
enum {
    TICKET_ID,
    TICKET_STATUS,
    TICKET_CATEGORY,
    TICKET_PRIORITY,
    TICKET_QUEUE,
    TICKET_ASSIGNEE,
    TICKET_FR_DUE,
    TICKET_RES_DUE,
    TICKET_WAITING_SINCE,
    TICKET_RULE,
    TICKET_CHANNEL,
    TICKET_LANGUAGE,
    TICKET_WAITING, /* routed with no live offer */
    TICKET_COLS
};

/* $1 ticket id: its history but the contact's own events. */
static const char *const events_sql =
    "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), kind, actor, data::text"
    " FROM ticket_events WHERE ticket_id = $1 AND kind NOT IN ('received', 'message.received')"
    " ORDER BY id";
enum { EVENT_AT, EVENT_KIND, EVENT_ACTOR, EVENT_DATA, EVENT_COLS };

/* Prints the ticket's head lines and copies its id; false (printed) when there is none. */
static bool print_ticket(wasl_pg_t *pg, const char *ref, char *ticket_id, size_t cap, bool *waiting)
{
    const char *p[] = {ref};
    PGresult *t = wasl_pg_query(pg, ticket_sql, 1, p);
    if (!t || !wasl_pg_arity(t, TICKET_COLS, "route explain: ticket") || PQntuples(t) == 0) {
        fprintf(stderr, "waslctl route: %s\n",
                t && PQntuples(t) == 0 ? "no such ticket" : wasl_pg_error(pg));
        PQclear(t);
        return false;
    }
    printf("ticket %s: %s, %s via %s (%s), priority %s\n", ref, PQgetvalue(t, 0, TICKET_STATUS),
           PQgetvalue(t, 0, TICKET_CATEGORY), PQgetvalue(t, 0, TICKET_CHANNEL),
           PQgetvalue(t, 0, TICKET_LANGUAGE), PQgetvalue(t, 0, TICKET_PRIORITY));
    printf("queue %s (rule %s), assignee %s, waiting since %s\n", PQgetvalue(t, 0, TICKET_QUEUE),
           PQgetvalue(t, 0, TICKET_RULE), PQgetvalue(t, 0, TICKET_ASSIGNEE),
           PQgetvalue(t, 0, TICKET_WAITING_SINCE));
    printf("first response due %s, resolution due %s\n\n", PQgetvalue(t, 0, TICKET_FR_DUE),
           PQgetvalue(t, 0, TICKET_RES_DUE));
    snprintf(ticket_id, cap, "%s", PQgetvalue(t, 0, TICKET_ID));
    *waiting = strcmp(PQgetvalue(t, 0, TICKET_WAITING), "t") == 0;
    PQclear(t);
    return true;
}

static int route_explain(const char *arg)
{
    char ref[WASL_REF_LEN + 1];
    wasl_ref_status_t st = wasl_ref_parse(arg, ref);
    if (st != WASL_REF_OK) {
        fprintf(stderr, "waslctl route: %s: %s\n", arg, wasl_ref_strerror(st));
        return CTL_USAGE;
    }
    wasl_pg_t *pg = ctl_pg_connect("route");
    if (!pg) {
        return CTL_FAILED;
    }
    char ticket_id[24];
    bool waiting;
    if (!print_ticket(pg, ref, ticket_id, sizeof ticket_id, &waiting)) {
        wasl_pg_destroy(&pg);
        return CTL_FAILED;
    }
    const char *ip[] = {ticket_id};
    PGresult *ev = wasl_pg_query(pg, events_sql, 1, ip);
    if (!wasl_pg_arity(ev, EVENT_COLS, "route explain: events")) {
        fprintf(stderr, "waslctl route: %s\n", wasl_pg_error(pg));
        PQclear(ev);
        wasl_pg_destroy(&pg);
        return CTL_FAILED;
    }
    for (int r = 0; r < PQntuples(ev); r++) {
        json_t *d = json_loads(PQgetvalue(ev, r, EVENT_DATA), 0, NULL);
        print_event(PQgetvalue(ev, r, EVENT_AT), PQgetvalue(ev, r, EVENT_KIND),
                    PQgetvalue(ev, r, EVENT_ACTOR), d);
        json_decref(d);
    }
    PQclear(ev);
    if (waiting) {
        explain_waiting(pg, ticket_id);
    }
    wasl_pg_destroy(&pg);
    return CTL_OK;
}

static const char *jstr(json_t *o, const char *k, const char *def)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : def;
}

/* $1 since, $2 limit: the first routing decision of each ticket, its recorded input and
 * outcome. */
static const char *const replay_sql =
    "SELECT DISTINCT ON (e.ticket_id) t.ref, e.data::text FROM ticket_events e"
    " JOIN tickets t ON t.id = e.ticket_id"
    " WHERE e.kind = 'routed' AND e.at >= $1::timestamptz"
    " ORDER BY e.ticket_id, e.id LIMIT $2::int";
enum { REPLAY_REF, REPLAY_DATA, REPLAY_COLS };

/* Re-decides one recorded `routed` event (its JSON text) with `rules`, each at the instant it
 * was routed; prints the ticket when its queue, priority or SLA would change. Returns 1 when it
 * would, 0 when not, -1 when the event has no input (skipped). */
static int replay_one(const rules_t *rules, const char *ref, const char *data)
{
    json_t *d = json_loads(data, 0, NULL);
    json_t *in = json_object_get(d, "input");
    if (!in) {
        json_decref(d);
        return -1;
    }
    const char *kinds[ENTITIES_MAX];
    size_t nk = 0, i;
    json_t *k;
    json_array_foreach(json_object_get(in, "entities"), i, k)
    {
        if (nk < ENTITIES_MAX && json_is_string(k)) {
            kinds[nk++] = json_string_value(k);
        }
    }
    route_input_t ri = {.category = jstr(in, "category", "triage"),
                        .priority = jstr(in, "priority", "normal"),
                        .channel = jstr(in, "channel", "web"),
                        .language = jstr(in, "language", "ar"),
                        .beneficiary = jstr(in, "beneficiary", "public"),
                        .entities = kinds,
                        .nentities = nk,
                        .now = (time_t)json_integer_value(json_object_get(in, "now"))};
    route_decision_t nd;
    rules_decide(rules, &ri, &nd);
    const char *oq = jstr(d, "queue", "?"), *op = jstr(d, "priority", "?");
    json_t *sla = json_object_get(d, "sla_s");
    long ofr = (long)json_integer_value(json_object_get(sla, "first_response"));
    long ores = (long)json_integer_value(json_object_get(sla, "resolution"));
    int changed = strcmp(oq, nd.queue) || strcmp(op, nd.priority) || ofr != nd.first_response_s ||
                  ores != nd.resolution_s;
    if (changed) {
        printf("%s  %s: queue %s → %s, priority %s → %s, first response %lds → %lds, "
               "resolution %lds → %lds (rule %s → %s)\n",
               ref, ri.category, oq, nd.queue, op, nd.priority, ofr, nd.first_response_s, ores,
               nd.resolution_s, jstr(d, "rule", "?"), nd.rule);
    }
    json_decref(d);
    return changed;
}

static int route_replay(int argc, char **argv)
{
    const char *since = NULL, *config = NULL;
    long limit = REPLAY_LIMIT_DEFAULT;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--since")) {
            since = argv[i + 1];
        } else if (!strcmp(argv[i], "--config")) {
            config = argv[i + 1];
        } else if (!strcmp(argv[i], "--limit")) {
            limit = strtol(argv[i + 1], NULL, 10);
        } else {
            return usage();
        }
    }
    if (argc % 2 || !since || !config || limit < 1 || limit > REPLAY_LIMIT_MAX) {
        return usage();
    }
    char err[512];
    rules_t *rules = rules_load(config, err, sizeof err);
    if (!rules) {
        fprintf(stderr, "waslctl route: %s\n", err);
        return CTL_USAGE;
    }
    wasl_pg_t *pg = ctl_pg_connect("route");
    if (!pg) {
        rules_destroy(&rules);
        return CTL_FAILED;
    }
    char lim[24];
    snprintf(lim, sizeof lim, "%ld", limit);
    const char *p[] = {since, lim};
    PGresult *res = wasl_pg_query(pg, replay_sql, 2, p);
    int rc = CTL_OK;
    if (!wasl_pg_arity(res, REPLAY_COLS, "route replay")) {
        fprintf(stderr, "waslctl route: %s\n", wasl_pg_error(pg));
        rc = CTL_FAILED;
    } else {
        int changed = 0, total = PQntuples(res);
        for (int r = 0; r < total; r++) {
            changed += replay_one(rules, PQgetvalue(res, r, REPLAY_REF),
                                  PQgetvalue(res, r, REPLAY_DATA)) == 1;
        }
        printf("replayed %d tickets routed since %s against %s: %d would change, %d would not\n",
               total, since, config, changed, total - changed);
    }
    PQclear(res);
    rules_destroy(&rules);
    wasl_pg_destroy(&pg);
    return rc;
}

/* The bench's rules: `nqueues` queues, one rule per (category, channel) pair with a queue
 * each, the last queue the default. NULL (err says why) when they do not parse. */
static const char *const bench_cats[] = {"case_inquiry",   "eservice_support", "judicial_support",
                                         "staff_services", "complaint",        "general_inquiry"};
static const char *const bench_chans[] = {"web", "api", "email", "sms"};

static rules_t *bench_rules(long nqueues, char *err, size_t errcap)
{
    size_t cap = 64 * 1024, o = 0;
    char *yaml = malloc(cap);
    if (!yaml) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    o += (size_t)snprintf(yaml + o, cap - o,
                          "version: 1\ndefault_queue: q%02ld\nescalation:\n"
                          "  supervisor_queue: q00\n  alert_email: s@example.org\n"
                          "  overflow_queue: q00\nqueues:\n",
                          nqueues - 1);
    for (long q = 0; q < nqueues; q++) {
        o += (size_t)snprintf(yaml + o, cap - o,
                              "  q%02ld: {sla: {urgent: {first_response: 15m, resolution: 4h},"
                              " default: {first_response: 4h, resolution: 3d}}}\n",
                              q);
    }
    o += (size_t)snprintf(yaml + o, cap - o, "rules:\n");
    for (long r = 0; r < nqueues - 1 && r < 24; r++) {
        o += (size_t)snprintf(yaml + o, cap - o,
                              "  - {name: r%02ld, match: {category: %s, channel: %s}, queue: "
                              "q%02ld}\n",
                              r, bench_cats[r / 4], bench_chans[r % 4], r);
    }
    rules_t *rules = rules_parse(yaml, o, "bench.yaml", err, errcap);
    free(yaml);
    return rules;
}

/* The bench's agents: 3 queues each, levels 1..9, capacity 3 per channel, one in ten offline.
 * A new array the caller frees, or NULL. */
static select_agent_t *bench_agents(long nagents, long nqueues)
{
    select_agent_t *agents = calloc((size_t)nagents, sizeof *agents);
    for (long i = 0; agents && i < nagents; i++) {
        select_agent_t *a = &agents[i];
        snprintf(a->id, sizeof a->id, "a%ld", i);
        for (long k = 0; k < 3; k++) {
            snprintf(a->skill[k], sizeof a->skill[k], "q%02ld", (i + k * 7) % nqueues);
            a->level[k] = (int)(1 + (i * (k + 3)) % 9);
        }
        a->nskills = 3;
        snprintf(a->lang[0], sizeof a->lang[0], "ar");
        a->nlangs = 1;
        for (int c = 0; c < SELECT_CHANNELS; c++) {
            a->capacity[c] = 3;
        }
        a->idle_since_ms = i;
        a->absent = i % 10 == 0 ? "offline" : NULL;
    }
    return agents;
}

/* In memory, no database: rules decisions and agent choices per second for `agents` agents
 * spread over `queues` queues. */
static int route_bench(int argc, char **argv)
{
    long nagents = 500, nqueues = 20, rounds = 200000;
    for (int i = 2; i + 1 < argc; i += 2) {
        long v = strtol(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--agents") && v > 0 && v <= 5000) {
            nagents = v;
        } else if (!strcmp(argv[i], "--queues") && v > 0 && v <= 60) {
            nqueues = v;
        } else if (!strcmp(argv[i], "--rounds") && v > 0) {
            rounds = v;
        } else {
            return usage();
        }
    }
    char err[512];
    rules_t *rules = bench_rules(nqueues, err, sizeof err);
    select_agent_t *agents = bench_agents(nagents, nqueues);
    if (!rules || !agents) {
        fprintf(stderr, "waslctl route: %s\n", rules ? "out of memory" : err);
        rules_destroy(&rules);
        free(agents);
        return CTL_FAILED;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long chosen = 0;
    for (long n = 0; n < rounds; n++) {
        route_input_t in = {.category = bench_cats[n % 6],
                            .priority = "normal",
                            .channel = bench_chans[(n / 6) % 4],
                            .language = "ar",
                            .beneficiary = "public",
                            .now = (time_t)(1700000000 + n)};
        route_decision_t d;
        rules_decide(rules, &in, &d);
        select_ticket_t t = {
            .id = n, .queue = d.queue, .channel = select_channel(in.channel), .language = "ar"};
        bool present;
        int best = select_agent(agents, (size_t)nagents, &t, &present, NULL);
        if (best >= 0) {
            chosen++;
            /* Hand the ticket back at once: the agents stay eligible for the next round. */
            agents[best].idle_since_ms += nagents;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("agents=%ld queues=%ld decisions=%ld chosen=%ld seconds=%.3f "
           "decisions_per_s=%.0f\n",
           nagents, nqueues, rounds, chosen, secs, (double)rounds / secs);
    rules_destroy(&rules);
    free(agents);
    return CTL_OK;
}

int ctl_route(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "bench")) {
        return route_bench(argc, argv);
    }
    if (argc == 3 && !strcmp(argv[1], "explain")) {
        return route_explain(argv[2]);
    }
    if (argc >= 2 && !strcmp(argv[1], "replay")) {
        return route_replay(argc, argv);
    }
    return usage();
}
