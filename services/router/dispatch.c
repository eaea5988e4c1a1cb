/* dispatch — the offer round: expire unanswered offers, then in one transaction lock the
 * agents who can take work, read every agent with its load, lock the waiting tickets in order
 * and offer each to the agent select_agent() chooses, with the explanation. */
#include "router_int.h"
#include "wasl_log.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---- SQL --------------------------------------------------------------------------------- */

/* Offers nobody answered in time: the ticket goes to the next agent, the agent to 'away' (an
 * agent who lets offers expire is not there, whatever the heartbeat says). */
static const char *const expire_offers_sql =
    "WITH exp AS ("
    "  UPDATE offers SET state = 'expired', answered_at = wasl_now(), reason = 'no answer'"
    "  WHERE state = 'offered' AND expires_at <= wasl_now() RETURNING id, ticket_id, agent_id"
    "), ev AS ("
    "  INSERT INTO ticket_events (ticket_id, kind, actor, data)"
    "  SELECT ticket_id, 'offer.expired', 'router', jsonb_build_object('offer', id, 'agent',"
    "    agent_id) FROM exp"
    "), away AS ("
    "  UPDATE agents a SET presence = 'away', updated_at = now()"
    "  FROM (SELECT DISTINCT agent_id FROM exp) e WHERE a.id = e.agent_id"
    "    AND a.presence = 'available' RETURNING a.id"
    "), aev AS ("
    "  INSERT INTO agent_events (agent_id, kind, actor, data)"
    "  SELECT id, 'presence.away', 'router', '{\"reason\": \"offer not answered\"}' FROM away"
    ")"
    "SELECT count(*) FROM exp";

/* Dispatch, in one transaction: lock the agents who can take work now, read every agent with
 * its load, lock the waiting tickets in order, offer. */
static const char *const lock_agents_sql =
    "SELECT id FROM agents WHERE enabled AND presence = 'available'"
    " AND presence_until > wasl_now() AND (wrapup_until IS NULL OR wrapup_until <= wasl_now())"
    " ORDER BY id FOR UPDATE SKIP LOCKED";

static const char *const agents_sql =
    "SELECT a.id, a.skills::text, array_to_string(a.languages, ','), a.capacity::text,"
    "  (extract(epoch FROM greatest(a.idle_since, coalesce(a.wrapup_until, a.idle_since)))"
    "   * 1000)::bigint,"
    "  CASE WHEN a.presence_until IS NULL OR a.presence_until <= wasl_now() THEN 'offline'"
    "       WHEN a.presence <> 'available' THEN a.presence"
    "       WHEN a.wrapup_until > wasl_now() THEN 'wrap-up' ELSE '' END,"
    "  coalesce((SELECT jsonb_object_agg(ch, n) FROM (SELECT ch, count(*) AS n FROM ("
    "    SELECT t.channel AS ch FROM tickets t WHERE t.assignee = a.id AND t.status = 'assigned'"
    "    UNION ALL SELECT o.channel FROM offers o WHERE o.agent_id = a.id"
    "      AND o.state = 'offered') x GROUP BY ch) y), '{}'::jsonb)::text"
    " FROM agents a WHERE a.enabled ORDER BY a.id";

/* $1 "queue/channel" pairs someone can serve now, $2 reoffer seconds, $3 limit. */
static const char *const waiting_sql =
    "SELECT t.id, t.ref, t.queue, t.channel, t.language, array_to_string(t.skills, ','),"
    "  coalesce((SELECT string_agg(DISTINCT o.agent_id, ',') FROM offers o"
    "    WHERE o.ticket_id = t.id AND o.state IN ('rejected', 'expired')"
    "    AND o.answered_at > wasl_now() - make_interval(secs => $2::double precision)), ''),"
    "  t.priority, t.first_response_due, t.waiting_since"
    " FROM tickets t WHERE t.status = 'routed'"
    "   AND t.queue || '/' || t.channel = ANY ($1::text[])"
    " AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.ticket_id = t.id AND o.state = 'offered')"
    " ORDER BY t.prio_rank, t.first_response_due, t.waiting_since, t.id"
    " LIMIT $3::int FOR UPDATE OF t SKIP LOCKED";

static const char *const offer_sql =
    "WITH input AS ("
    "  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(ticket_id bigint, agent text,"
    "    channel text, explain jsonb)"
    "), ins AS ("
    "  INSERT INTO offers (ticket_id, agent_id, channel, offered_by, expires_at)"
    "  SELECT ticket_id, agent, channel, $2, wasl_now() + make_interval(secs =>"
    "    $3::double precision) FROM input RETURNING id, ticket_id, agent_id, expires_at"
    "), ev AS ("
    "  INSERT INTO ticket_events (ticket_id, kind, actor, data)"
    "  SELECT i.ticket_id, 'offered', 'router', i.explain || jsonb_build_object('offer', n.id,"
    "    'expires_at', n.expires_at) FROM input i JOIN ins n ON n.ticket_id = i.ticket_id"
    ")"
    "SELECT count(*) FROM ins";

/* ---- dispatch: offers ---------------------------------------------------------------------- */

/* Fills one agent from a row of agents_sql. */
static void read_agent(select_agent_t *a, PGresult *res, int r)
{
    memset(a, 0, sizeof *a);
    snprintf(a->id, sizeof a->id, "%s", PQgetvalue(res, r, 0));
    json_t *skills = json_loads(PQgetvalue(res, r, 1), 0, NULL);
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
    snprintf(langs, sizeof langs, "%s", PQgetvalue(res, r, 2));
    char *save = NULL;
    for (char *l = strtok_r(langs, LIST_SEP, &save); l && a->nlangs < SELECT_LANGS_MAX;
         l = strtok_r(NULL, LIST_SEP, &save)) {
        snprintf(a->lang[a->nlangs++], sizeof a->lang[0], "%s", l);
    }
    json_t *cap = json_loads(PQgetvalue(res, r, 3), 0, NULL);
    json_t *load = json_loads(PQgetvalue(res, r, 6), 0, NULL);
    json_object_foreach(cap, k, v)
    {
        int c = select_channel(k);
        if (c >= 0 && json_is_integer(v)) {
            a->capacity[c] = (int)json_integer_value(v);
        }
    }
    json_object_foreach(load, k, v)
    {
        int c = select_channel(k);
        if (c >= 0 && json_is_integer(v)) {
            a->load[c] = (int)json_integer_value(v);
        }
    }
    json_decref(cap);
    json_decref(load);
    a->idle_since_ms = strtoll(PQgetvalue(res, r, 4), NULL, 10);
    const char *absent = PQgetvalue(res, r, 5);
    a->absent = !*absent                         ? NULL
                : strcmp(absent, "offline") == 0 ? "offline"
                : strcmp(absent, "away") == 0    ? "away"
                : strcmp(absent, "busy") == 0    ? "busy"
                                                 : "wrap-up";
}

/* The offers of this round; `n` agents were read. Returns how many offers were made. */
static int offer_round(router_t *self, size_t n, json_t *offers)
{
    /* What someone can take now: "queue/channel" for every queue an agent present has as a
     * skill and every channel where it has room. Tickets nobody could take stay out of the
     * round, so a blocked head of the line never starves the tickets behind it. */
    static const char *const channel_names[SELECT_CHANNELS] = {"web", "api", "email", "sms",
                                                               "phone"};
    json_t *queues = json_array();
    for (size_t i = 0; i < n; i++) {
        const select_agent_t *a = &self->agents[i];
        for (size_t s = 0; !a->absent && s < a->nskills; s++) {
            for (int c = 0; c < SELECT_CHANNELS; c++) {
                if (a->load[c] >= a->capacity[c]) {
                    continue;
                }
                char key[96];
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
    char *qarr = NULL;
    size_t qlen = 2;
    size_t idx;
    json_t *q;
    json_array_foreach(queues, idx, q)
    {
        qlen += strlen(json_string_value(q)) * 2 + 3;
    }
    qarr = malloc(qlen);
    if (!qarr) {
        json_decref(queues);
        return -1;
    }
    size_t o = (size_t)snprintf(qarr, qlen, "{");
    json_array_foreach(queues, idx, q)
    {
        o += (size_t)snprintf(qarr + o, qlen - o, "%s\"%s\"", idx ? "," : "",
                              json_string_value(q)); /* names are [a-z0-9._-] */
    }
    snprintf(qarr + o, qlen - o, "}");
    json_decref(queues);
    char reoffer[32], limit[32];
    snprintf(reoffer, sizeof reoffer, "%ld", self->cfg->reoffer_after_s);
    snprintf(limit, sizeof limit, "%ld", self->cfg->dispatch_max);
    const char *wp[] = {qarr, reoffer, limit};
    PGresult *res = wasl_pg_query(self->pg, waiting_sql, 3, wp);
    free(qarr);
    if (!res) {
        return -1;
    }
    int made = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        char skills_buf[1024], declined_buf[2048];
        snprintf(skills_buf, sizeof skills_buf, "%s", PQgetvalue(res, r, 5));
        snprintf(declined_buf, sizeof declined_buf, "%s", PQgetvalue(res, r, 6));
        const char *skills[SELECT_SKILLS_MAX], *declined[64];
        size_t nskills = 0, ndeclined = 0;
        char *save = NULL;
        for (char *s = strtok_r(skills_buf, LIST_SEP, &save); s && nskills < SELECT_SKILLS_MAX;
             s = strtok_r(NULL, LIST_SEP, &save)) {
            skills[nskills++] = s;
        }
        save = NULL;
        for (char *s = strtok_r(declined_buf, LIST_SEP, &save); s && ndeclined < 64;
             s = strtok_r(NULL, LIST_SEP, &save)) {
            declined[ndeclined++] = s;
        }
        select_ticket_t t = {.id = strtoll(PQgetvalue(res, r, 0), NULL, 10),
                             .queue = PQgetvalue(res, r, 2),
                             .channel = select_channel(PQgetvalue(res, r, 3)),
                             .language = PQgetisnull(res, r, 4) ? NULL : PQgetvalue(res, r, 4),
                             .skills = skills,
                             .nskills = nskills,
                             .declined = declined,
                             .ndeclined = ndeclined};
        json_t *candidates = json_array();
        bool present;
        int best = select_agent(self->agents, n, &t, &present, candidates);
        if (best < 0) {
            json_decref(candidates);
            continue;
        }
        select_agent_t *a = &self->agents[best];
        a->load[t.channel]++; /* the offer counts against capacity from now */
        json_array_append_new(
            offers,
            json_pack("{s:I, s:s, s:s, s:{s:s, s:s, s:o, s:{s:s, s:s?, s:s?}}}", "ticket_id",
                      (json_int_t)t.id, "agent", a->id, "channel", PQgetvalue(res, r, 3), "explain",
                      "agent", a->id, "rule",
                      "best matched (queue + skill levels), then longest idle", "candidates",
                      candidates, "order", "priority", PQgetvalue(res, r, 7), "first_response_due",
                      PQgetisnull(res, r, 8) ? NULL : PQgetvalue(res, r, 8), "waiting_since",
                      PQgetisnull(res, r, 9) ? NULL : PQgetvalue(res, r, 9)));
        made++;
    }
    PQclear(res);
    return made;
}

int router_dispatch(router_t *self)
{
    int64_t t0 = now_ms();
    PGresult *res = wasl_pg_query(self->pg, expire_offers_sql, 0, NULL);
    if (!res) {
        atomic_store(&self->db_ok, false);
        return -1;
    }
    int nexp = atoi(PQgetvalue(res, 0, 0));
    wasl_counter_add(self->expired, (uint64_t)nexp);
    PQclear(res);
    if (wasl_pg_begin(self->pg) < 0) {
        return -1;
    }
    int made = -1;
    json_t *offers = json_array();
    char *param = NULL;
    PGresult *locked = wasl_pg_query(self->pg, lock_agents_sql, 0, NULL);
    if (!locked) {
        goto done;
    }
    if (PQntuples(locked) == 0) {
        PQclear(locked);
        made = 0;
        goto done;
    }
    PGresult *ag = wasl_pg_query(self->pg, agents_sql, 0, NULL);
    if (!ag) {
        PQclear(locked);
        goto done;
    }
    size_t n = 0;
    for (int r = 0; r < PQntuples(ag) && n < AGENTS_MAX; r++) {
        read_agent(&self->agents[n], ag, r);
        if (!self->agents[n].absent) {
            bool mine = false;
            for (int l = 0; l < PQntuples(locked) && !mine; l++) {
                mine = strcmp(PQgetvalue(locked, l, 0), self->agents[n].id) == 0;
            }
            if (!mine) {
                self->agents[n].absent = "held by another router";
            }
        }
        n++;
    }
    PQclear(ag);
    PQclear(locked);
    made = offer_round(self, n, offers);
    if (made > 0) {
        param = json_dumps(offers, JSON_COMPACT);
        char timeout[32];
        snprintf(timeout, sizeof timeout, "%ld", rules_offer_timeout_s(self->rules));
        const char *op[] = {param, self->owner, timeout};
        PGresult *ins = param ? wasl_pg_query(self->pg, offer_sql, 3, op) : NULL;
        if (!ins) {
            made = -1;
        }
        PQclear(ins);
    }
done:
    json_decref(offers);
    free(param);
    if (made < 0 || wasl_pg_commit(self->pg) < 0) {
        wasl_pg_rollback(self->pg);
        wasl_warn("router: dispatch round failed", "{s:s}", "error", wasl_pg_error(self->pg));
        atomic_store(&self->db_ok, false);
        return -1;
    }
    atomic_store(&self->db_ok, true);
    wasl_counter_add(self->offered, (uint64_t)made);
    wasl_histogram_observe(self->dispatch_seconds, (double)(now_ms() - t0) / 1000.0);
    return made + nexp;
}
