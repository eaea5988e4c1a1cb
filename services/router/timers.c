/* timers — the clocks kept in PostgreSQL: heartbeats that stopped, the overflow timer
 * (staffing, then overflow), SLA escalation; and the queue and offer gauges. */
#include "router_int.h"
#include "wasl_log.h"

#include <stdlib.h>
#include <string.h>

/* ---- SQL --------------------------------------------------------------------------------- */

/* Heartbeats that stopped: the agent is offline and their live offers go to someone else. */
static const char *const expire_presence_sql =
    "WITH gone AS ("
    "  UPDATE agents SET presence = 'offline', updated_at = now()"
    "  WHERE presence <> 'offline' AND (presence_until IS NULL OR presence_until <= wasl_now())"
    "  RETURNING id"
    "), ev AS ("
    "  INSERT INTO agent_events (agent_id, kind, actor, data)"
    "  SELECT id, 'presence.expired', 'router', '{}' FROM gone"
    "), wd AS ("
    "  UPDATE offers o SET state = 'withdrawn', answered_at = wasl_now(),"
    "    reason = 'agent offline' FROM gone g WHERE o.agent_id = g.id AND o.state = 'offered'"
    "  RETURNING o.id, o.ticket_id, o.agent_id"
    "), tev AS ("
    "  INSERT INTO ticket_events (ticket_id, kind, actor, data)"
    "  SELECT ticket_id, 'offer.withdrawn', 'router', jsonb_build_object('offer', id, 'agent',"
    "    agent_id, 'reason', 'agent offline') FROM wd"
    ")"
    "SELECT count(*) FROM gone";
/* The one column of expire_presence_sql, staffing_sql and overflow_sql: rows changed. */
enum { COUNT_N, COUNT_COLS };

/* The overflow timer: since when has no eligible agent been present (available or busy with a
 * live heartbeat) for the ticket's queue, skills and language. */
static const char *const staffing_sql =
    "WITH g AS (SELECT DISTINCT queue, skills, language FROM tickets WHERE status = 'routed'),"
    " staffed AS (SELECT g.* FROM g WHERE EXISTS (SELECT 1 FROM agents a WHERE a.enabled"
    "   AND a.presence IN ('available', 'busy') AND a.presence_until > wasl_now()"
    "   AND a.skills ? g.queue AND a.skills ?& g.skills AND (g.language IS NULL"
    "   OR g.language = 'mixed' OR g.language = ANY (a.languages)))),"
    " mark AS (UPDATE tickets t SET no_agent_since = wasl_now() WHERE t.status = 'routed'"
    "   AND t.no_agent_since IS NULL AND NOT EXISTS (SELECT 1 FROM staffed s"
    "   WHERE s.queue = t.queue AND s.skills = t.skills"
    "   AND s.language IS NOT DISTINCT FROM t.language) RETURNING t.id),"
    " unmark AS (UPDATE tickets t SET no_agent_since = NULL FROM staffed s"
    "   WHERE t.status = 'routed' AND t.no_agent_since IS NOT NULL AND s.queue = t.queue"
    "   AND s.skills = t.skills AND s.language IS NOT DISTINCT FROM t.language RETURNING t.id)"
    " SELECT (SELECT count(*) FROM mark) + (SELECT count(*) FROM unmark)";

/* $1 overflow queue, $2 its skills, $3 seconds without an agent. */
static const char *const overflow_sql =
    "WITH c AS ("
    "  SELECT id, queue AS old_queue, no_agent_since FROM tickets WHERE status = 'routed'"
    "    AND no_agent_since <= wasl_now() - make_interval(secs => $3::double precision)"
    "    AND queue <> $1 AND overflowed_at IS NULL AND escalated_at IS NULL"
    "  FOR UPDATE SKIP LOCKED"
    "), ov AS ("
    "  UPDATE tickets t SET queue = $1, skills = $2::text[], overflowed_at = wasl_now(),"
    "    no_agent_since = NULL, updated_at = now() FROM c WHERE t.id = c.id RETURNING t.id"
    "), ev AS ("
    "  INSERT INTO ticket_events (ticket_id, kind, actor, data)"
    "  SELECT c.id, 'overflowed', 'router', jsonb_build_object('from', c.old_queue, 'to',"
    "    $1::text, 'no_agent_since', c.no_agent_since, 'after_s', $3::double precision) FROM c"
    ")"
    "SELECT count(*) FROM c";

/* SLA breach: one step up in priority, the supervisor queue, an alert. $1 supervisor queue,
 * $2 its skills, $3 alert address. */
static const char *const escalate_sql =
    "WITH c AS ("
    "  SELECT id, ref, queue AS old_queue, priority AS old_priority, status, language,"
    "    CASE WHEN status = 'routed' AND first_response_due <= wasl_now() THEN 'first_response'"
    "         ELSE 'resolution' END AS breach,"
    "    CASE WHEN status = 'routed' AND first_response_due <= wasl_now()"
    "         THEN first_response_due ELSE resolution_due END AS due,"
    "    greatest(coalesce(prio_rank, 2) - 1, 0) AS new_rank"
    "  FROM tickets WHERE status IN ('routed', 'assigned') AND escalated_at IS NULL"
    "    AND ((status = 'routed' AND first_response_due <= wasl_now())"
    "         OR resolution_due <= wasl_now())"
    "  ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED"
    "), up AS ("
    "  UPDATE tickets t SET queue = $1, skills = $2::text[], prio_rank = c.new_rank,"
    "    priority = (ARRAY['urgent', 'high', 'normal', 'low'])[c.new_rank + 1],"
    "    escalated_at = wasl_now(), no_agent_since = NULL, updated_at = now()"
    "  FROM c WHERE t.id = c.id RETURNING t.id, t.priority"
    "), wd AS ("
    "  UPDATE offers o SET state = 'withdrawn', answered_at = wasl_now(), reason = 'escalated'"
    "  FROM c WHERE o.ticket_id = c.id AND o.state = 'offered' RETURNING o.id"
    "), ev AS ("
    "  INSERT INTO ticket_events (ticket_id, kind, actor, data)"
    "  SELECT c.id, 'escalated', 'router', jsonb_build_object('breach', c.breach, 'due', c.due,"
    "    'from', c.old_queue, 'to', $1::text, 'priority_from', c.old_priority, 'priority_to',"
    "    u.priority, 'alert', $3::text) FROM c JOIN up u ON u.id = c.id"
    "), al AS ("
    "  INSERT INTO notifications (ticket_id, kind, channel, recipient, lang, template, params,"
    "    dedupe_key)"
    "  SELECT c.id, 'alert', 'email', $3::text, CASE WHEN c.language = 'en' THEN 'en' ELSE 'ar'"
    "    END, 'sla_alert', jsonb_build_object('ref', c.ref, 'queue', c.old_queue, 'priority',"
    "    u.priority, 'due', to_char(c.due AT TIME ZONE 'Asia/Riyadh', 'YYYY-MM-DD HH24:MI')),"
    "    'ticket:' || c.id || ':sla:' || c.old_queue FROM c JOIN up u ON u.id = c.id"
    "  ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, ticket_id"
    ")"
    "SELECT id, ticket_id, (SELECT count(*) FROM c) FROM al"
    " UNION ALL SELECT 0, 0, (SELECT count(*) FROM c) WHERE NOT EXISTS (SELECT 1 FROM al)";
/* One row per alert written (or one 0, 0 row without any), each with the count escalated. */
enum { ESCALATE_NOTE_ID, ESCALATE_TICKET_ID, ESCALATE_COUNT, ESCALATE_COLS };

static const char *const queue_stats_sql =
    "SELECT queue, count(*) FILTER (WHERE status = 'routed'),"
    "  coalesce(extract(epoch FROM wasl_now() - min(waiting_since)"
    "    FILTER (WHERE status = 'routed')), 0),"
    "  count(*) FILTER (WHERE first_response_due BETWEEN wasl_now() - interval '24 hours'"
    "    AND wasl_now() OR first_response_at > wasl_now() - interval '24 hours'),"
    "  count(*) FILTER (WHERE (first_response_due BETWEEN wasl_now() - interval '24 hours'"
    "    AND wasl_now() OR first_response_at > wasl_now() - interval '24 hours')"
    "    AND first_response_at <= first_response_due)"
    " FROM tickets WHERE queue IS NOT NULL AND (status IN ('routed', 'assigned')"
    "   OR updated_at > wasl_now() - interval '24 hours') GROUP BY queue";
enum { QSTATS_QUEUE, QSTATS_DEPTH, QSTATS_OLDEST_S, QSTATS_DUE, QSTATS_MET, QSTATS_COLS };

static const char *const offer_stats_sql =
    "SELECT state, count(*) FROM offers WHERE coalesce(answered_at, offered_at)"
    " > wasl_now() - interval '24 hours' GROUP BY state";
enum { OSTATS_STATE, OSTATS_COUNT, OSTATS_COLS };

/* ---- timers: presence, overflow, escalation ------------------------------------------------- */

static char *skills_array(const rules_t *rules, const char *queue)
{
    const char *skills[RULES_LIST_MAX];
    size_t n = rules_queue_skills(rules, queue, skills, RULES_LIST_MAX);
    size_t cap = 3 + n * (RULES_NAME_MAX + 3);
    char *s = malloc(cap);
    if (!s) {
        return NULL;
    }
    size_t o = (size_t)snprintf(s, cap, "{");
    for (size_t i = 0; i < n; i++) {
        o += (size_t)snprintf(s + o, cap - o, "%s\"%s\"", i ? "," : "", skills[i]);
    }
    snprintf(s + o, cap - o, "}");
    return s;
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

int router_timers(router_t *self)
{
    int64_t t0 = now_ms();
    int total = 0, n;
    if ((n = count_of(self, expire_presence_sql, 0, NULL)) < 0) {
        atomic_store(&self->db_ok, false);
        return -1;
    }
    wasl_counter_add(self->presence_expired, (uint64_t)n);
    total += n;
    if ((n = count_of(self, staffing_sql, 0, NULL)) < 0) {
        return -1;
    }
    total += n;
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
            router_publish_notification(self, id,
                                        strtoll(PQgetvalue(res, r, ESCALATE_TICKET_ID), NULL, 10),
                                        "alert", "email");
        }
    }
    PQclear(res);
    if (escalated > 0) {
        wasl_info("router: tickets escalated on SLA breach", "{s:i}", "tickets", escalated);
    }
    wasl_counter_add(self->escalated, (uint64_t)escalated);
    char after[32];
    snprintf(after, sizeof after, "%ld", rules_overflow_after_s(self->rules));
    char *oskills = skills_array(self->rules, rules_overflow_queue(self->rules));
    const char *op[] = {rules_overflow_queue(self->rules), oskills, after};
    n = oskills ? count_of(self, overflow_sql, 3, op) : -1;
    free(oskills);
    if (n < 0) {
        return -1;
    }
    wasl_counter_add(self->overflowed, (uint64_t)n);
    total += n;
    atomic_store(&self->db_ok, true);
    wasl_histogram_observe(self->timers_seconds, (double)(now_ms() - t0) / 1000.0);
    return total + escalated;
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
