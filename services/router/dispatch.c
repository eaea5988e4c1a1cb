/* dispatch — the offer round: expire unanswered offers, then in one transaction lock the
 * agents who can take work, read every agent with its load, lock the waiting tickets in order
 * and offer each to the agent select_agent() chooses, with the explanation. */
#include "offer.h"
#include "router_int.h"
#include "wasl_log.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---- SQL --------------------------------------------------------------------------------- */

/* Offers nobody answered in time: the ticket goes to the next agent, the agent to 'away' (an
 * agent who lets offers expire is not there, whatever the heartbeat says). */
static const char *const expire_offers_sql = "SELECT count(*) FROM wasl_offers_expire()";
enum { EXPIRE_COUNT, EXPIRE_COLS };

/* Dispatch, in one transaction: lock the agents who can take work now, read every agent with
 * its load, lock the waiting tickets in order, offer. */
static const char *const lock_agents_sql =
    "SELECT id FROM agents WHERE enabled AND presence = 'available'"
    " AND presence_until > wasl_now() AND (wrapup_until IS NULL OR wrapup_until <= wasl_now())"
    " ORDER BY id FOR UPDATE SKIP LOCKED";
enum { LOCKED_ID, LOCKED_COLS };

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
enum {
    AGENT_ID,
    AGENT_SKILLS,
    AGENT_LANGUAGES,
    AGENT_CAPACITY,
    AGENT_IDLE_SINCE_MS,
    AGENT_ABSENT,
    AGENT_LOAD,
    AGENT_COLS
};

/* $1 "queue/channel" pairs someone can serve now, $2 reoffer seconds, $3 limit. Each pair's
 * waiting tickets are walked in order on tickets_waiting_idx (queue, channel, then the order)
 * up to the limit, the pairs' heads merged in the same order, and only those rows locked: a
 * round reads at most pairs × limit index entries (plus the tickets on offer at the heads),
 * however many tickets wait where nobody can take them. The heads are read back by primary key
 * (= ANY of an array: `IN (SELECT …)` let the planner hash them against a scan of every
 * waiting ticket). A ticket another router locked is skipped (it is that router's this
 * round). */
static const char *const waiting_sql =
    "WITH pairs AS ("
    "  SELECT DISTINCT substring(p FROM '^(.*)/[^/]*$') AS queue,"
    "    substring(p FROM '[^/]*$') AS channel FROM unnest($1::text[]) p"
    "), heads AS ("
    "  SELECT h.id FROM pairs, LATERAL ("
    "    SELECT t.id, t.prio_rank, t.first_response_due, t.waiting_since FROM tickets t"
    "     WHERE t.status = 'routed' AND t.queue = pairs.queue AND t.channel = pairs.channel"
    "       AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.ticket_id = t.id"
    "         AND o.state = 'offered')"
    "     ORDER BY t.prio_rank, t.first_response_due, t.waiting_since, t.id LIMIT $3::int) h"
    "  ORDER BY h.prio_rank, h.first_response_due, h.waiting_since, h.id LIMIT $3::int"
    ")"
    "SELECT t.id, t.ref, t.queue, t.channel, t.language, array_to_string(t.skills, ','),"
    "  coalesce((SELECT string_agg(DISTINCT o.agent_id, ',') FROM offers o"
    "    WHERE o.ticket_id = t.id AND o.state IN ('rejected', 'expired')"
    "    AND o.answered_at > wasl_now() - make_interval(secs => $2::double precision)), ''),"
    "  t.priority, t.first_response_due, t.waiting_since"
    " FROM tickets t WHERE t.id = ANY (ARRAY(SELECT id FROM heads)) AND t.status = 'routed'"
    " AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.ticket_id = t.id AND o.state = 'offered')"
    " ORDER BY t.prio_rank, t.first_response_due, t.waiting_since, t.id"
    " FOR UPDATE OF t SKIP LOCKED";
enum {
    WAITING_ID,
    WAITING_REF,
    WAITING_QUEUE,
    WAITING_CHANNEL,
    WAITING_LANGUAGE,
    WAITING_SKILLS,
    WAITING_DECLINED,
    WAITING_PRIORITY,
    WAITING_FIRST_RESPONSE_DUE,
    WAITING_WAITING_SINCE,
    WAITING_COLS
};

/* $1 the offers (ticket_id, agent, channel, explain), $2 this router, $3 the lease. */
static const char *const offer_sql =
    "SELECT count(*) FROM wasl_offers_make($1::jsonb, $2, $3::double precision)";

/* ---- dispatch: offers ---------------------------------------------------------------------- */

/* A text cell, NULL where PostgreSQL gave NULL. */
static const char *cell(PGresult *res, int r, int c)
{
    return PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
}

/* Reads every enabled agent into self->agents (at most AGENTS_MAX); an available agent this
 * round could not lock is held by another router. Returns how many were read, or -1. */
static int read_agents(router_t *self, PGresult *locked)
{
    PGresult *ag = wasl_pg_query(self->pg, agents_sql, 0, NULL);
    if (!router_checked(&ag, AGENT_COLS, "agents")) {
        return -1;
    }
    size_t n = 0;
    for (int r = 0; r < PQntuples(ag) && n < AGENTS_MAX; r++) {
        offer_agent_row_t row = {.id = PQgetvalue(ag, r, AGENT_ID),
                                 .skills = PQgetvalue(ag, r, AGENT_SKILLS),
                                 .languages = PQgetvalue(ag, r, AGENT_LANGUAGES),
                                 .capacity = PQgetvalue(ag, r, AGENT_CAPACITY),
                                 .idle_since_ms = PQgetvalue(ag, r, AGENT_IDLE_SINCE_MS),
                                 .absent = PQgetvalue(ag, r, AGENT_ABSENT),
                                 .load = PQgetvalue(ag, r, AGENT_LOAD)};
        select_agent_t *a = &self->agents[n++];
        offer_read_agent(a, &row);
        bool mine = false;
        for (int l = 0; !a->absent && l < PQntuples(locked) && !mine; l++) {
            mine = strcmp(PQgetvalue(locked, l, LOCKED_ID), a->id) == 0;
        }
        if (!a->absent && !mine) {
            a->absent = "held by another router";
        }
    }
    PQclear(ag);
    return (int)n;
}

/* The offers of this round, appended to `offers`; `n` agents were read. Tickets nobody could
 * take stay out of the round (offer_servable), so a blocked head of the line never starves the
 * tickets behind it. Returns how many offers were made, or -1. */
static int offer_round(router_t *self, size_t n, json_t *offers)
{
    char *qarr = offer_servable(self->agents, n);
    if (!qarr) {
        return -1;
    }
    char reoffer[32], limit[32];
    snprintf(reoffer, sizeof reoffer, "%ld", self->cfg->reoffer_after_s);
    snprintf(limit, sizeof limit, "%ld", self->cfg->dispatch_max);
    const char *wp[] = {qarr, reoffer, limit};
    PGresult *res = wasl_pg_query(self->pg, waiting_sql, 3, wp);
    free(qarr);
    if (!router_checked(&res, WAITING_COLS, "waiting tickets")) {
        return -1;
    }
    int made = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        offer_ticket_row_t t = {.id = strtoll(PQgetvalue(res, r, WAITING_ID), NULL, 10),
                                .queue = PQgetvalue(res, r, WAITING_QUEUE),
                                .channel = PQgetvalue(res, r, WAITING_CHANNEL),
                                .language = cell(res, r, WAITING_LANGUAGE),
                                .skills = PQgetvalue(res, r, WAITING_SKILLS),
                                .declined = PQgetvalue(res, r, WAITING_DECLINED),
                                .priority = PQgetvalue(res, r, WAITING_PRIORITY),
                                .first_response_due = cell(res, r, WAITING_FIRST_RESPONSE_DUE),
                                .waiting_since = cell(res, r, WAITING_WAITING_SINCE)};
        json_t *offer = offer_make(self->agents, n, &t);
        if (offer) {
            json_array_append_new(offers, offer);
            made++;
        }
    }
    PQclear(res);
    return made;
}

/* Writes the round's offers with their events and leases; 0, or -1 on a database error. */
static int write_offers(router_t *self, json_t *offers)
{
    char *param = json_dumps(offers, JSON_COMPACT);
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%ld", rules_offer_timeout_s(self->rules));
    const char *op[] = {param, self->owner, timeout};
    PGresult *ins = param ? wasl_pg_query(self->pg, offer_sql, 3, op) : NULL;
    free(param);
    if (!ins) {
        return -1;
    }
    PQclear(ins);
    return 0;
}

/* Inside the round's transaction: lock the agents who can take work now, read every agent
 * with its load, choose and write the offers. Returns how many were made, or -1 (the caller
 * rolls back). */
static int dispatch_txn(router_t *self)
{
    PGresult *locked = wasl_pg_query(self->pg, lock_agents_sql, 0, NULL);
    if (!router_checked(&locked, LOCKED_COLS, "lock agents")) {
        return -1;
    }
    int n = PQntuples(locked) == 0 ? 0 : read_agents(self, locked);
    PQclear(locked);
    if (n <= 0) {
        return n;
    }
    json_t *offers = json_array();
    int made = offer_round(self, (size_t)n, offers);
    if (made > 0 && write_offers(self, offers) < 0) {
        made = -1;
    }
    json_decref(offers);
    return made;
}

int router_offer_round(router_t *self)
{
    int64_t t0 = wasl_clock_ms();
    if (wasl_pg_command(self->pg, "SAVEPOINT offer_round") < 0) {
        return -1;
    }
    int made = dispatch_txn(self);
    if (made < 0) {
        wasl_warn("router: offer round failed; the batch's decisions stand", "{s:s}", "error",
                  wasl_pg_error(self->pg));
        return wasl_pg_command(self->pg, "ROLLBACK TO SAVEPOINT offer_round") < 0 ? -1 : 0;
    }
    if (wasl_pg_command(self->pg, "RELEASE SAVEPOINT offer_round") < 0) {
        return -1;
    }
    wasl_histogram_observe(self->dispatch_seconds, (double)(wasl_clock_ms() - t0) / 1000.0);
    return made;
}

int router_dispatch(router_t *self)
{
    int64_t t0 = wasl_clock_ms();
    PGresult *res = wasl_pg_query(self->pg, expire_offers_sql, 0, NULL);
    if (!router_checked(&res, EXPIRE_COLS, "expire offers")) {
        atomic_store(&self->db_ok, false);
        return -1;
    }
    int nexp = atoi(PQgetvalue(res, 0, EXPIRE_COUNT));
    wasl_counter_add(self->expired, (uint64_t)nexp);
    PQclear(res);
    if (wasl_pg_begin(self->pg) < 0) {
        return -1;
    }
    int made = dispatch_txn(self);
    if (made < 0 || wasl_pg_commit(self->pg) < 0) {
        wasl_pg_rollback(self->pg);
        wasl_warn("router: dispatch round failed", "{s:s}", "error", wasl_pg_error(self->pg));
        atomic_store(&self->db_ok, false);
        return -1;
    }
    atomic_store(&self->db_ok, true);
    wasl_counter_add(self->offered, (uint64_t)made);
    wasl_histogram_observe(self->dispatch_seconds, (double)(wasl_clock_ms() - t0) / 1000.0);
    return made + nexp;
}
