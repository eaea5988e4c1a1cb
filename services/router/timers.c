/* timers — the clocks kept in PostgreSQL: heartbeats that stopped, the overflow timer
 * (staffing, then overflow), SLA escalation; and the queue and offer gauges. */
#include "router_int.h"
#include "wasl_log.h"

#include <stdlib.h>
#include <string.h>

/* ---- SQL --------------------------------------------------------------------------------- */

/* The timers' state changes are proto/functions/'s (agents.sql, tickets.sql). */

/* Heartbeats that stopped: the agent is offline and their live offers go to someone else. */
static const char *const expire_presence_sql = "SELECT count(*) FROM wasl_agents_expire_presence()";
/* The one column of expire_presence_sql, staffing_sql and overflow_sql: rows changed. */
enum { COUNT_N, COUNT_COLS };

/* The overflow timer: since when has no eligible agent been present (available or busy with a
 * live heartbeat) for the ticket's queue, skills and language. */
static const char *const staffing_sql = "SELECT wasl_tickets_mark_staffing()";

/* Who could serve a waiting ticket now (wasl_queue_staffed's agents: present, with their
 * skills and languages), as one digest: the staffing pass's answer can only change when this
 * does, or when a ticket comes back to waiting without passing wasl_tickets_route (a
 * transfer). Reads agents only; a heartbeat that extends presence_until changes nothing. */
static const char *const staffing_digest_sql =
    "SELECT md5(coalesce(string_agg(id || ' ' || skills::text || ' ' || languages::text, ','"
    "  ORDER BY id), '')) FROM agents WHERE enabled AND presence IN ('available', 'busy')"
    "  AND presence_until > wasl_now()";
enum { DIGEST_MD5, DIGEST_COLS };

/* $1 overflow queue, $2 its skills, $3 seconds without an agent. */
static const char *const overflow_sql =
    "SELECT wasl_tickets_overflow($1, $2::text[], $3::double precision)";

/* SLA breach: one step up in priority, the supervisor queue, an alert. $1 supervisor queue,
 * $2 its skills, $3 alert address. */
static const char *const escalate_sql =
    "SELECT notification_id, ticket_id, escalated FROM wasl_tickets_escalate($1, $2::text[], $3)";
/* One row per alert written (or one 0, 0 row without any), each with the count escalated. */
enum { ESCALATE_NOTE_ID, ESCALATE_TICKET_ID, ESCALATE_COUNT, ESCALATE_COLS };

/* The queue gauges. The clock is read once, in a one-row subquery kept apart by OFFSET 0:
 * written inline, wasl_now() (now() plus the test offset parsed from a setting) was computed
 * again for each filter of each row — 216,000 rows read 591 ms, 292 ms this way (EXPLAIN
 * ANALYZE, tests/bench/router/backlog.py's database). It still reads every ticket of the last
 * 24 hours: router_run() keeps it off a backlog's path. */
static const char *const queue_stats_sql =
    "SELECT t.queue, count(*) FILTER (WHERE t.status = 'routed'),"
    "  coalesce(extract(epoch FROM c.now - min(t.waiting_since)"
    "    FILTER (WHERE t.status = 'routed')), 0),"
    "  count(*) FILTER (WHERE t.first_response_due BETWEEN c.day AND c.now"
    "    OR t.first_response_at > c.day),"
    "  count(*) FILTER (WHERE (t.first_response_due BETWEEN c.day AND c.now"
    "    OR t.first_response_at > c.day) AND t.first_response_at <= t.first_response_due)"
    " FROM (SELECT wasl_now() AS now, wasl_now() - interval '24 hours' AS day OFFSET 0) c,"
    "  tickets t"
    " WHERE t.queue IS NOT NULL AND (t.status IN ('routed', 'assigned') OR t.updated_at > c.day)"
    " GROUP BY t.queue, c.now";
enum { QSTATS_QUEUE, QSTATS_DEPTH, QSTATS_OLDEST_S, QSTATS_DUE, QSTATS_MET, QSTATS_COLS };

static const char *const offer_stats_sql =
    "SELECT state, count(*) FROM offers WHERE coalesce(answered_at, offered_at)"
    " > wasl_now() - interval '24 hours' GROUP BY state";
enum { OSTATS_STATE, OSTATS_COUNT, OSTATS_COLS };

/* One router at a time keeps the clocks: the rounds change the same rows (SKIP LOCKED makes a
 * second router's round useless, not wrong) and the staffing pass reads every waiting ticket,
 * so N routers side by side did N times that work for nothing — the scaling rows of
 * issue 16 lost most of their time there. A session lock: it goes with the connection. */
static const char *const timers_lock_sql = "SELECT pg_try_advisory_lock(7761230)";
static const char *const timers_unlock_sql = "SELECT pg_advisory_unlock(7761230)";
enum { LOCK_TAKEN, LOCK_COLS };

/* ---- timers: presence, overflow, escalation ------------------------------------------------- */

/* The queue's skills as a $n::text[] parameter (freed by the caller; NULL when out of memory). */
static char *skills_array(const rules_t *rules, const char *queue)
{
    const char *skills[RULES_LIST_MAX];
    size_t n = rules_queue_skills(rules, queue, skills, RULES_LIST_MAX);
    return wasl_pg_text_array(skills, n);
}

static int count_of(router_t *self, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = wasl_pg_query(self->pg, sql, nparams, params);
    if (!res) {
        wasl_warn("router: timer statement failed", "{s:s}", "error", wasl_pg_error(self->pg));
    }
    if (!router_checked(&res, COUNT_COLS, "timer count")) {
        return -1;
    }
    int n = PQntuples(res) ? atoi(PQgetvalue(res, 0, COUNT_N)) : 0;
    PQclear(res);
    return n;
}

/* The overflow timer: tickets_overflow_idx holds the marked tickets only, oldest first, so a
 * round reads what is due. Returns how many moved, or -1. */
static int overflow_round(router_t *self)
{
    char after[32];
    snprintf(after, sizeof after, "%ld", rules_overflow_after_s(self->rules));
    char *oskills = skills_array(self->rules, rules_overflow_queue(self->rules));
    const char *op[] = {rules_overflow_queue(self->rules), oskills, after};
    int n = oskills ? count_of(self, overflow_sql, 3, op) : -1;
    free(oskills);
    if (n > 0) {
        wasl_counter_add(self->overflowed, (uint64_t)n);
    }
    return n;
}

/* Whether the staffing pass is due: who is present changed since this router's last pass,
 * or WASL_ROUTER_STAFFING_MS went by (transfers). 1, 0, or -1 on a database error. */
static int staffing_due(router_t *self, int64_t now, char *digest, size_t cap)
{
    PGresult *res = wasl_pg_query(self->pg, staffing_digest_sql, 0, NULL);
    if (!router_checked(&res, DIGEST_COLS, "staffing digest") || PQntuples(res) != 1) {
        PQclear(res);
        return -1;
    }
    snprintf(digest, cap, "%s", PQgetvalue(res, 0, DIGEST_MD5));
    PQclear(res);
    if (!*self->staffing_digest) {
        /* A router just started: the marks stand as the routers before it left them (and
         * wasl_tickets_route marks what it routes), so N routers starting together do not
         * each read every waiting ticket first; the periodic pass catches what changed while
         * none ran. */
        memcpy(self->staffing_digest, digest, cap);
        self->last_staffing_ms = now;
        return 0;
    }
    return strcmp(digest, self->staffing_digest) != 0 ||
           now - self->last_staffing_ms >= self->cfg->staffing_ms;
}

/* Whether this router holds the timers' lock now (taking it when free): 1, 0 when another
 * router holds it, -1 on a database error. */
static int timers_lock(router_t *self)
{
    PGresult *res = wasl_pg_query(self->pg, timers_lock_sql, 0, NULL);
    if (!router_checked(&res, LOCK_COLS, "timers lock")) {
        return -1;
    }
    int mine = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, LOCK_TAKEN), "t") == 0;
    PQclear(res);
    return mine;
}

/* The round, with the timers' lock held. */
static int timers_locked(router_t *self)
{
    int64_t t0 = wasl_clock_ms();
    int total = 0, n;
    if ((n = count_of(self, expire_presence_sql, 0, NULL)) < 0) {
        atomic_store(&self->db_ok, false);
        return -1;
    }
    wasl_counter_add(self->presence_expired, (uint64_t)n);
    total += n;
    /* The staffing pass reads every waiting ticket: only when it can change something (a
     * ticket routed where nobody is present is marked by wasl_tickets_route). */
    char digest[sizeof self->staffing_digest];
    int due = staffing_due(self, t0, digest, sizeof digest);
    if (due < 0) {
        return -1;
    }
    if (due) {
        if ((n = count_of(self, staffing_sql, 0, NULL)) < 0) {
            return -1;
        }
        self->last_staffing_ms = t0;
        memcpy(self->staffing_digest, digest, sizeof digest);
        total += n;
    }
    char *sskills = skills_array(self->rules, rules_supervisor_queue(self->rules));
    const char *ep[] = {rules_supervisor_queue(self->rules), sskills,
                        rules_alert_email(self->rules)};
    PGresult *res = sskills ? wasl_pg_query(self->pg, escalate_sql, 3, ep) : NULL;
    free(sskills);
    if (!res) {
        wasl_warn("router: escalation failed", "{s:s}", "error", wasl_pg_error(self->pg));
    }
    if (!router_checked(&res, ESCALATE_COLS, "escalate")) {
        return -1;
    }
    int escalated = PQntuples(res) ? atoi(PQgetvalue(res, 0, ESCALATE_COUNT)) : 0;
    for (int r = 0; r < PQntuples(res); r++) {
        int64_t id = strtoll(PQgetvalue(res, r, ESCALATE_NOTE_ID), NULL, 10);
        if (id > 0) {
            router_publish_notification(self, id);
        }
    }
    PQclear(res);
    if (escalated > 0) {
        wasl_info("router: tickets escalated on SLA breach", "{s:i}", "tickets", escalated);
    }
    wasl_counter_add(self->escalated, (uint64_t)escalated);
    /* After the escalation, as always: a ticket both overdue and unstaffed escalates. */
    if ((n = overflow_round(self)) < 0) {
        return -1;
    }
    total += n;
    atomic_store(&self->db_ok, true);
    wasl_histogram_observe(self->timers_seconds, (double)(wasl_clock_ms() - t0) / 1000.0);
    return total + escalated;
}

int router_timers(router_t *self)
{
    int mine = timers_lock(self);
    if (mine <= 0) {
        atomic_store(&self->db_ok, mine == 0);
        return mine;
    }
    int n = timers_locked(self);
    PQclear(wasl_pg_query(self->pg, timers_unlock_sql, 0, NULL));
    return n;
}

void router_refresh_stats(router_t *self)
{
    PGresult *res = wasl_pg_query(self->pg, queue_stats_sql, 0, NULL);
    router_checked(&res, QSTATS_COLS, "queue stats");
    char labels[128];
    for (int r = 0; res && r < PQntuples(res); r++) {
        snprintf(labels, sizeof labels, "queue=\"%s\"", PQgetvalue(res, r, QSTATS_QUEUE));
        wasl_gauge_set(
            wasl_gauge("wasl_router_queue_depth", "Tickets waiting for an agent", labels),
            atof(PQgetvalue(res, r, QSTATS_DEPTH)));
        wasl_gauge_set(wasl_gauge("wasl_router_oldest_waiting_seconds",
                                  "Age of the oldest waiting ticket (its original place)", labels),
                       atof(PQgetvalue(res, r, QSTATS_OLDEST_S)));
        double due = atof(PQgetvalue(res, r, QSTATS_DUE));
        double met = atof(PQgetvalue(res, r, QSTATS_MET));
        if (due > 0) {
            wasl_gauge_set(wasl_gauge("wasl_router_sla_first_response_attainment",
                                      "Share of first responses within SLA (last 24 h)", labels),
                           met / due);
        }
    }
    PQclear(res);
    res = wasl_pg_query(self->pg, offer_stats_sql, 0, NULL);
    router_checked(&res, OSTATS_COLS, "offer stats");
    for (int r = 0; res && r < PQntuples(res); r++) {
        snprintf(labels, sizeof labels, "state=\"%s\"", PQgetvalue(res, r, OSTATS_STATE));
        wasl_gauge_set(wasl_gauge("wasl_router_offers_24h",
                                  "Offers by outcome over the last 24 h (accepted, rejected, "
                                  "expired, withdrawn, offered)",
                                  labels),
                       atof(PQgetvalue(res, r, OSTATS_COUNT)));
    }
    PQclear(res);
}
