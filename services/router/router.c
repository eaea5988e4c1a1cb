/* router — wasl-router's work: route classified tickets by the rules (queue, priority, SLA),
 * offer waiting tickets to agents with a lease, expire offers and presence, escalate on SLA
 * breach and overflow unstaffed queues. Every timer is a column in PostgreSQL. */
#include "router.h"
#include "wasl_rpc.h"
#include "select.h"
#include "wasl_log.h"
#include "wasl_metrics.h"
#include "wasl_pg.h"
#include "wasl_proto.h"
#include "wasl_signal.h"
#include "wasl_work.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OWNER_MAX        128
#define ENTITY_KINDS_MAX 8
#define AGENTS_MAX       5000
#define LIST_SEP         ","

/* ---- SQL --------------------------------------------------------------------------------- */

#define FETCH_COLS 16 /* the columns of fetch_sql, read by number in plan_row and after */
static const char *const fetch_sql =
    "SELECT w.id, t.id, t.ref, t.channel, coalesce(t.category, 'triage'),"
    "  coalesce(t.priority, 'normal'), coalesce(t.language, 'ar'), t.beneficiary_type,"
    "  CASE WHEN jsonb_typeof(t.entities) = 'object' THEN"
    "    coalesce((SELECT string_agg(k, ',') FROM jsonb_object_keys(t.entities) k), '') ELSE ''"
    "  END,"
    "  extract(epoch FROM wasl_now())::bigint, t.auto_submitted IS NOT NULL,"
    "  coalesce(t.from_phone, ''), coalesce(t.from_email, ''),"
    "  coalesce(t.case_number, t.entities->'case_number'->>0, ''),"
    "  coalesce(t.from_national_id, ''),"
    /* The phone that may verify a party: only a caller number the network gave a telephony
     * client trusted for caller ID (clients.trusted_ani). A phone typed into a report proves
     * nothing, so it never verifies, even though the answer would go to the contact on file. */
    "  CASE WHEN t.channel = 'phone' AND EXISTS (SELECT 1 FROM clients c"
    "    WHERE c.id = t.client_id AND c.kind = 'telephony' AND c.trusted_ani)"
    "  THEN coalesce(t.from_phone, '') ELSE '' END"
    " FROM work w JOIN tickets t ON t.id = w.ticket_id"
    " WHERE w.id = ANY($1::bigint[]) AND w.owner = $2 ORDER BY w.id";

/* Every decision of a batch in one statement, fenced on the lease (see the classifier). */
static const char *const commit_sql =
    "WITH input AS ("
    "  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(work_id bigint, ticket_id bigint,"
    "    queue text, priority text, prio_rank smallint, skills text[], rule text,"
    "    fr_due double precision, res_due double precision, event jsonb, notes jsonb,"
    "    answered boolean)"
    "), done AS ("
    "  UPDATE work w SET state = 'done', done_at = now(), updated_at = now(), lease_until = NULL"
    "  FROM input i WHERE w.id = i.work_id AND w.state = 'running' AND w.owner = $2"
    "    AND w.lease_until > now()"
    "  RETURNING w.id"
    "), upd AS ("
    "  UPDATE tickets t SET queue = i.queue, priority = i.priority, prio_rank = i.prio_rank,"
    "    skills = i.skills, route_rule = i.rule, routed_at = wasl_now(),"
    "    first_response_due = to_timestamp(i.fr_due), resolution_due = to_timestamp(i.res_due),"
    /* A callback keeps the caller's place: the call's first event, when it came earlier. */
    "    waiting_since = coalesce(t.waiting_since, least(t.received_at, (SELECT"
    "      min(c2.received_at) FROM call_events c1 JOIN call_events c2"
    "      ON c2.call_id = c1.call_id AND c2.client_id IS NOT DISTINCT FROM c1.client_id"
    "      WHERE c1.ticket_id = t.id))), no_agent_since = NULL,"
    "    escalated_at = NULL, overflowed_at = NULL, updated_at = now(),"
    /* An automatic answer changes nothing the ticket shows: it is routed like any other (see
     * decide_row), so its client cannot tell a party from a stranger by its ticket. */
    "    status = CASE WHEN t.status IN ('received', 'classified') THEN 'routed'"
    "      ELSE t.status END"
    "  FROM input i JOIN done d ON d.id = i.work_id WHERE t.id = i.ticket_id"
    "  RETURNING t.id"
    "), ev AS ("
    "  INSERT INTO ticket_events (ticket_id, kind, actor, data)"
    "  SELECT i.ticket_id, 'routed', 'router', i.event FROM input i JOIN done d ON d.id = i.work_id"
    "), ack AS ("
    "  INSERT INTO notifications (ticket_id, kind, channel, recipient, lang, template, params,"
    "    dedupe_key)"
    "  SELECT i.ticket_id, n->>'kind', n->>'channel', n->>'recipient',"
    "    n->>'lang', n->>'kind', n->'params', 'ticket:' || i.ticket_id || ':' || (n->>'kind')"
    "  FROM input i JOIN done d ON d.id = i.work_id CROSS JOIN jsonb_array_elements("
    "    CASE jsonb_typeof(i.notes) WHEN 'array' THEN i.notes ELSE '[]' END) n"
    "  ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, ticket_id, channel, kind"
    "), aev AS ("
    "  INSERT INTO ticket_events (ticket_id, kind, actor, data)"
    "  SELECT i.ticket_id, 'auto_answered', 'router', i.event->'auto_answer_detail'"
    "  FROM input i JOIN done d ON d.id = i.work_id WHERE i.answered"
    ")"
    /* One row per notification (or one per work row without any), in work-row order. */
    "SELECT i.work_id, a.id, a.channel, i.ticket_id, a.kind"
    " FROM input i JOIN done d ON d.id = i.work_id"
    " LEFT JOIN ack a ON a.ticket_id = i.ticket_id ORDER BY i.work_id, a.id";

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

static const char *const offer_stats_sql =
    "SELECT state, count(*) FROM offers WHERE coalesce(answered_at, offered_at)"
    " > wasl_now() - interval '24 hours' GROUP BY state";

/* ---- the object -------------------------------------------------------------------------- */

/* Auto-answer: how long one lookup may take, how many more tries, how long to stop asking
 * after caselookup failed to answer, and the longest answer sent. */
#define AUTO_ANSWER_TIMEOUT_MS 700
#define AUTO_ANSWER_RETRIES    1
#define AUTO_ANSWER_BACKOFF_MS 10000
#define AUTO_ANSWER_MAX        1024

struct router {
    const router_config_t *cfg;
    rules_t *rules;
    wasl_pg_t *pg;
    zsock_t *pull;
    zsock_t *push; /* notify stage */
    char owner[OWNER_MAX];
    atomic_bool db_ok;
    select_agent_t *agents;
    wasl_rpc_t *rpc;           /* to caselookup, when auto-answer is on */
    int64_t rpc_down_until_ms; /* after a failed lookup, answer nothing for a while */
    wasl_counter_t *auto_answered, *auto_declined;
    wasl_counter_t *bad_messages, *lost, *failed, *routed, *offered, *expired, *escalated,
        *overflowed, *presence_expired, *notify_sent, *notify_failed;
    wasl_histogram_t *batch_seconds, *dispatch_seconds;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *router_conninfo(const char *pg_url, long clock_offset_s)
{
    size_t cap = strlen(pg_url) + 96;
    char *s = malloc(cap);
    if (!s) {
        return NULL;
    }
    if (clock_offset_s == 0) {
        snprintf(s, cap, "%s", pg_url);
    } else if (strstr(pg_url, "://")) {
        snprintf(s, cap, "%s%soptions=-c%%20wasl.clock_offset_s%%3D%ld", pg_url,
                 strchr(pg_url, '?') ? "&" : "?", clock_offset_s);
    } else {
        snprintf(s, cap, "%s options='-c wasl.clock_offset_s=%ld'", pg_url, clock_offset_s);
    }
    return s;
}

static const struct {
    const char *category, *ar, *en;
} category_labels[] = {
    {"case_inquiry", "الاستعلام عن قضية", "case inquiry"},
    {"eservice_support", "دعم الخدمات الإلكترونية", "e-services support"},
    {"judicial_support", "الدعم القضائي", "judicial support"},
    {"staff_services", "خدمات الموظفين", "staff services"},
    {"complaint", "الشكاوى", "complaint"},
    {"general_inquiry", "استفسار عام", "general inquiry"},
    {"triage", "استفسار عام", "general inquiry"},
};

const char *router_category_label(const char *category, const char *lang)
{
    bool en = lang && strcmp(lang, "en") == 0;
    for (size_t i = 0; i < sizeof category_labels / sizeof category_labels[0]; i++) {
        if (category && strcmp(category, category_labels[i].category) == 0) {
            return en ? category_labels[i].en : category_labels[i].ar;
        }
    }
    return en ? "general inquiry" : "استفسار عام";
}

router_t *router_new(const router_config_t *cfg, wasl_zmq_t *zmq)
{
    router_t *self = calloc(1, sizeof *self);
    char *conninfo = NULL;
    if (!self) {
        return NULL;
    }
    self->cfg = cfg;
    atomic_init(&self->db_ok, false);
    wasl_work_owner("router", self->owner, sizeof self->owner);
    char err[512];
    self->rules = rules_load(cfg->rules_path, err, sizeof err);
    if (!self->rules) {
        wasl_error("router: invalid rules file", "{s:s}", "error", err);
        goto error;
    }
    self->agents = calloc(AGENTS_MAX, sizeof *self->agents);
    conninfo = router_conninfo(cfg->pg_url, cfg->clock_offset_s);
    if (!self->agents || !conninfo || !(self->pg = wasl_pg_new(conninfo))) {
        goto error;
    }
    wasl_pg_set_sync_commit(self->pg, cfg->pg_sync_commit);
    if (cfg->bus && *cfg->bus) {
        char *in = wasl_bus_endpoints(cfg->bus, cfg->bus_stages, "route", WASL_BUS_PULL);
        char *out = wasl_bus_endpoints(cfg->bus, cfg->bus_stages, "notify", WASL_BUS_PUSH);
        if (in && out) {
            self->pull = wasl_zmq_connect(zmq, ZMQ_PULL, in);
            self->push = wasl_zmq_connect(zmq, ZMQ_PUSH, out);
        } else {
            wasl_error("router: WASL_BUS or WASL_BUS_STAGES unusable (needs route and notify)",
                       "{s:s}", "bus", cfg->bus);
        }
        free(in);
        free(out);
        if (!self->pull || !self->push) {
            goto error;
        }
        zsock_set_sndtimeo(self->push, 0); /* never block on the bus: the outbox row stands */
        if (cfg->auto_answer) {
            char *rpc = wasl_bus_endpoints(cfg->bus, cfg->bus_stages, NULL, WASL_BUS_RPC_CLIENT);
            self->rpc =
                rpc ? wasl_rpc_new(zmq, rpc, AUTO_ANSWER_TIMEOUT_MS, AUTO_ANSWER_RETRIES) : NULL;
            free(rpc);
            if (!self->rpc) {
                goto error;
            }
        }
    }
    free(conninfo);
    self->auto_answered =
        wasl_counter("wasl_router_auto_answered_total",
                     "Case inquiries answered by caselookup (self-service)", NULL);
    self->auto_declined = wasl_counter("wasl_router_auto_answer_declined_total",
                                       "Auto-answers not given (not verified, locked, caselookup "
                                       "unavailable): routed to an agent",
                                       NULL);
    self->bad_messages = wasl_counter("wasl_router_bad_messages_total",
                                      "Bus messages that failed to decode (logged, dropped)", NULL);
    self->lost = wasl_counter("wasl_router_lease_lost_total",
                              "Decisions not committed because another worker owned the row", NULL);
    self->failed = wasl_counter("wasl_router_failures_total",
                                "Batches given back after a database error", NULL);
    self->routed = wasl_counter("wasl_router_routed_total", "Tickets routed", NULL);
    self->offered = wasl_counter("wasl_router_offers_made_total", "Offers made to agents", NULL);
    self->expired =
        wasl_counter("wasl_router_offers_expired_total", "Offers that expired unanswered", NULL);
    self->escalated =
        wasl_counter("wasl_router_escalations_total", "Tickets escalated on an SLA breach", NULL);
    self->overflowed =
        wasl_counter("wasl_router_overflows_total", "Tickets moved to the overflow queue", NULL);
    self->presence_expired = wasl_counter("wasl_router_presence_expired_total",
                                          "Agents set offline after their heartbeat stopped", NULL);
    self->notify_sent =
        wasl_counter("wasl_router_notify_published_total", "notify.requested messages sent", NULL);
    self->notify_failed = wasl_counter("wasl_router_notify_publish_failures_total",
                                       "notify.requested not sent (the outbox row stands)", NULL);
    self->batch_seconds =
        wasl_histogram("wasl_router_batch_seconds", "Time to route and commit one batch", NULL,
                       wasl_latency_buckets_s, wasl_latency_buckets_n);
    self->dispatch_seconds =
        wasl_histogram("wasl_router_dispatch_seconds", "Time of one dispatch round (offers)", NULL,
                       wasl_latency_buckets_s, wasl_latency_buckets_n);
    return self;
error:
    free(conninfo);
    router_destroy(&self);
    return NULL;
}

void router_destroy(router_t **self_p)
{
    assert(self_p);
    router_t *self = *self_p;
    if (!self) {
        return;
    }
    zsock_destroy(&self->pull);
    zsock_destroy(&self->push);
    wasl_rpc_destroy(&self->rpc);
    wasl_pg_destroy(&self->pg);
    rules_destroy(&self->rules);
    free(self->agents);
    free(self);
    *self_p = NULL;
}

static void reload(router_t *self)
{
    char err[512];
    rules_t *r = rules_load(self->cfg->rules_path, err, sizeof err);
    if (!r) {
        wasl_error("router: reload refused; keeping the current rules", "{s:s}", "error", err);
        return;
    }
    rules_destroy(&self->rules);
    self->rules = r;
    wasl_info("router: rules reloaded", "{s:s}", "file", self->cfg->rules_path);
}

static void publish_notification(router_t *self, int64_t id, int64_t ticket_id, const char *kind,
                                 const char *channel)
{
    if (!self->push || id <= 0) {
        return;
    }
    wasl_msg_t *msg = wasl_msg_new(WASL_MSG_NOTIFY_REQUESTED);
    if (!msg) {
        return;
    }
    wasl_msg_notify_requested_t *m = &msg->u.notify_requested;
    m->notification_id = (uint64_t)id;
    m->ticket_id = (uint64_t)ticket_id;
    m->has_ticket_id = ticket_id > 0;
    m->kind = (char *)kind; /* borrowed, detached before destroy */
    m->channel = (char *)channel;
    wasl_msg_error_t err;
    wasl_counter_inc(wasl_msg_send(msg, self->push, &err) == 0 ? self->notify_sent
                                                               : self->notify_failed);
    m->kind = m->channel = NULL;
    wasl_msg_destroy(&msg);
}

/* ---- routing: one decision per classified ticket ----------------------------------------- */

/* One fetched row on its way to a decision: the rules' verdict and what auto-answer needs. The
 * kinds point into kinds_buf, so a plan stays where it was made (an array of them). */
typedef struct {
    route_decision_t d;
    time_t now;
    char kinds_buf[256];
    const char *kinds[ENTITY_KINDS_MAX];
    size_t nkinds;
    const char *auto_answer; /* why, when it was decided without asking caselookup */
    wasl_msg_t *req;         /* the case.lookup request to send (owned), or NULL */
    wasl_msg_t *rep;         /* its reply (owned), NULL when caselookup did not answer */
} row_plan_t;

/* The case.lookup request for the ticket's case with the beneficiary's national ID (or, without
 * one, their phone); a new message the caller owns, or NULL when out of memory. */
static wasl_msg_t *lookup_request(const char *case_number, const char *nid, const char *phone,
                                  const char *ref)
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
    wasl_msg_case_lookup_request_t *q = &req->u.case_lookup_request;
    q->request_id = strdup(rid);
    q->case_number = strdup(case_number);
    q->verifier_kind = strdup(*nid ? "national_id" : "caller_phone");
    q->verifier = strdup(*nid ? nid : phone);
    /* No caller line: a ticket's phone is not a line the network vouched for, so the router's
     * lookups are held by the verifier's budget (the same whatever channel asks), the case's and
     * the router's own as a client (caselookup, "budgets"). */
    q->caller = NULL;
    q->channel = strdup("api");
    q->client = strdup("router");
    /* The answer may only go to the verified party's contact on file: ask for it, and name the
     * ticket, so that the audit row says for which ticket and to whom. */
    q->ticket = strdup(ref);
    q->contact = true;
    q->has_contact = true;
    if (!q->request_id || !q->case_number || !q->verifier_kind || !q->verifier || !q->channel ||
        !q->client || !q->ticket) {
        wasl_msg_destroy(&req);
    }
    return req;
}

/* Decides the row by the rules and, when it asks for an automatic answer, either says why none
 * will be asked (plan->auto_answer) or leaves the request to send in plan->req. */
static void plan_row(router_t *self, PGresult *res, int r, row_plan_t *plan)
{
    memset(plan, 0, sizeof *plan);
    snprintf(plan->kinds_buf, sizeof plan->kinds_buf, "%s", PQgetvalue(res, r, 8));
    char *save = NULL;
    for (char *k = strtok_r(plan->kinds_buf, LIST_SEP, &save); k && plan->nkinds < ENTITY_KINDS_MAX;
         k = strtok_r(NULL, LIST_SEP, &save)) {
        plan->kinds[plan->nkinds++] = k;
    }
    plan->now = (time_t)strtoll(PQgetvalue(res, r, 9), NULL, 10);
    route_input_t in = {.category = PQgetvalue(res, r, 4),
                        .priority = PQgetvalue(res, r, 5),
                        .channel = PQgetvalue(res, r, 3),
                        .language = PQgetvalue(res, r, 6),
                        .beneficiary = PQgetvalue(res, r, 7),
                        .entities = plan->kinds,
                        .nentities = plan->nkinds,
                        .now = plan->now};
    rules_decide(self->rules, &in, &plan->d);
    /* Answering without an agent: caselookup discloses the case only to a verified party;
     * anything else (not verified, locked out, caselookup down) routes to the queue as usual,
     * with the reason recorded. */
    if (!plan->d.auto_answer_asked) {
        plan->auto_answer = "not asked";
        return;
    }
    if (!plan->d.auto_answer) {
        plan->auto_answer = "off (auto_answer: false in the rules file)";
        return;
    }
    if (!self->cfg->auto_answer) {
        plan->auto_answer = "off (WASL_ROUTER_AUTO_ANSWER)";
        return;
    }
    const char *case_number = PQgetvalue(res, r, 13), *nid = PQgetvalue(res, r, 14);
    const char *phone = PQgetvalue(res, r, 15); /* a trusted caller line, or "" */
    if (!*case_number) {
        plan->auto_answer = "not answered: no case number";
        return;
    }
    if (!*nid && !*phone) {
        plan->auto_answer = "not answered: no national ID or trusted caller line to verify";
        return;
    }
    if (!self->rpc || now_ms() < self->rpc_down_until_ms) {
        wasl_counter_inc(self->auto_declined);
        plan->auto_answer = "not answered: caselookup unavailable";
        return;
    }
    plan->req = lookup_request(case_number, nid, phone, PQgetvalue(res, r, 2));
    if (!plan->req) {
        plan->auto_answer = "not answered: out of memory";
    }
}

/* Sends every plan's request to caselookup at once (WASL_RPC_MANY_MAX at a time) and keeps each
 * reply with its plan. A reply that does not carry its request's request_id is no answer. When
 * any request went unanswered, no more are asked for AUTO_ANSWER_BACKOFF_MS. */
static void ask_caselookup(router_t *self, row_plan_t *plans, size_t nrows)
{
    const wasl_msg_t **reqs = calloc(nrows, sizeof *reqs);
    wasl_msg_t **reps = calloc(nrows, sizeof *reps);
    row_plan_t **asked = calloc(nrows, sizeof *asked);
    size_t n = 0;
    if (!reqs || !reps || !asked) {
        goto done; /* every request stays unanswered: "did not answer" */
    }
    for (size_t i = 0; i < nrows; i++) {
        if (plans[i].req) {
            asked[n] = &plans[i];
            reqs[n++] = plans[i].req;
        }
    }
    for (size_t o = 0; o < n; o += WASL_RPC_MANY_MAX) {
        size_t m = n - o < WASL_RPC_MANY_MAX ? n - o : WASL_RPC_MANY_MAX;
        wasl_rpc_request_many(self->rpc, m, reqs + o, reps + o);
    }
    for (size_t i = 0; i < n; i++) {
        const char *sent = asked[i]->req->u.case_lookup_request.request_id;
        if (reps[i] && reps[i]->type == WASL_MSG_CASE_LOOKUP_REPLY &&
            reps[i]->u.case_lookup_reply.request_id &&
            strcmp(reps[i]->u.case_lookup_reply.request_id, sent) == 0) {
            asked[i]->rep = reps[i]; /* ownership to the plan */
        } else {
            wasl_msg_destroy(&reps[i]);
        }
    }
done:
    for (size_t i = 0; i < nrows; i++) {
        if (plans[i].req && !plans[i].rep) {
            self->rpc_down_until_ms = now_ms() + AUTO_ANSWER_BACKOFF_MS;
        }
    }
    free(reqs);
    free(reps);
    free(asked);
}

/* What caselookup's reply to an asked row means: writes the answer to send into `answer`
 * (empty when none), sets *to and *via to the party's contact on file (borrowed from the plan's
 * reply) and returns why. Never the contact the submitter typed: that one proves nothing. */
static const char *auto_answer_outcome(router_t *self, const row_plan_t *plan, const char *lang,
                                       char *answer, size_t cap, const char **to, const char **via)
{
    const wasl_msg_t *rep = plan->rep;
    const char *why;
    *to = *via = NULL;
    if (!rep) {
        why = "not answered: caselookup did not answer";
    } else if (strcmp(rep->u.case_lookup_reply.outcome, "found") != 0) {
        why = strcmp(rep->u.case_lookup_reply.outcome, "locked") == 0
                  ? "not answered: the beneficiary is locked out of lookups"
                  : "not answered: not verified as a party of this case";
    } else if (!rep->u.case_lookup_reply.contact_phone && !rep->u.case_lookup_reply.contact_email) {
        why = "not answered: the party has no contact on file";
    } else {
        const wasl_msg_case_lookup_reply_t *a = &rep->u.case_lookup_reply;
        const char *text = strcmp(lang, "en") == 0 ? a->speech_en : a->speech_ar;
        snprintf(answer, cap, "%s", text ? text : "");
        why = *answer ? "answered to the party's contact on file" : "not answered: empty answer";
        if (*answer) {
            *to = a->contact_phone ? a->contact_phone : a->contact_email;
            *via = a->contact_phone ? "sms" : "email";
        }
    }
    if (*answer) {
        wasl_counter_inc(self->auto_answered);
    } else {
        wasl_counter_inc(self->auto_declined);
    }
    return why;
}

/* The decision for one fetched row, planned (and asked) before, as the commit statement's input
 * object (new reference). */
static json_t *decide_row(router_t *self, PGresult *res, int r, const row_plan_t *plan)
{
    const char *category = PQgetvalue(res, r, 4), *priority = PQgetvalue(res, r, 5);
    const char *lang = PQgetvalue(res, r, 6), *channel = PQgetvalue(res, r, 3);
    const char *beneficiary = PQgetvalue(res, r, 7);
    const route_decision_t *d = &plan->d;
    json_t *skills = json_array(), *entities = json_array();
    for (size_t i = 0; i < d->nskills; i++) {
        json_array_append_new(skills, json_string(d->skills[i]));
    }
    for (size_t i = 0; i < plan->nkinds; i++) {
        json_array_append_new(entities, json_string(plan->kinds[i]));
    }
    char answer[AUTO_ANSWER_MAX] = "";
    const char *to = NULL, *via = NULL;
    const char *auto_answer =
        plan->auto_answer ? plan->auto_answer
                          : auto_answer_outcome(self, plan, lang, answer, sizeof answer, &to, &via);
    bool answered = answer[0] != '\0';
    /* The input is recorded so that `waslctl route replay` re-decides exactly this. */
    json_t *event =
        json_pack("{s:{s:s, s:s, s:s, s:s, s:s, s:o, s:I}, s:s, s:i, s:s, s:s, s:s, s:O, s:b, s:b,"
                  " s:{s:I, s:I}, s:s}",
                  "input", "category", category, "priority", priority, "channel", channel,
                  "language", lang, "beneficiary", beneficiary, "entities", entities, "now",
                  (json_int_t)plan->now, "rule", d->rule, "rule_line", d->rule_line, "queue",
                  d->queue, "priority", d->priority, "priority_from", priority, "skills", skills,
                  "business_hours", d->in_business_hours, "business_time_sla", d->business_time,
                  "sla_s", "first_response", (json_int_t)d->first_response_s, "resolution",
                  (json_int_t)d->resolution_s, "auto_answer", auto_answer);
    const char *nl = strcmp(lang, "en") == 0 ? "en" : "ar";
    json_t *notes = json_array();
    if (answered) {
        char masked[320];
        if (strcmp(via, "sms") == 0) {
            wasl_mask_phone(to, masked, sizeof masked);
        } else {
            wasl_mask_email(to, masked, sizeof masked);
        }
        /* For the agent who takes the ticket: the party already has the answer. */
        json_object_set_new(event, "auto_answer_detail",
                            json_pack("{s:s, s:s, s:s, s:s}", "result", auto_answer, "answer",
                                      answer, "channel", via, "recipient", masked));
        json_array_append_new(notes,
                              json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "kind", "case_answer",
                                        "channel", via, "recipient", to, "lang", nl, "params",
                                        "ref", PQgetvalue(res, r, 2), "answer", answer));
    }
    bool auto_submitted = strcmp(PQgetvalue(res, r, 10), "t") == 0;
    const char *phone = PQgetvalue(res, r, 11), *email = PQgetvalue(res, r, 12);
    if (!auto_submitted && (*phone || *email)) {
        /* The submitter's acknowledgement, the same whether or not a party was answered. */
        json_array_append_new(notes, json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "kind", "ack",
                                               "channel", *phone ? "sms" : "email", "recipient",
                                               *phone ? phone : email, "lang", nl, "params", "ref",
                                               PQgetvalue(res, r, 2), "category_label",
                                               router_category_label(category, nl)));
    }
    return json_pack("{s:I, s:I, s:s, s:s, s:i, s:o, s:s, s:I, s:I, s:o, s:o, s:b}", "work_id",
                     (json_int_t)strtoll(PQgetvalue(res, r, 0), NULL, 10), "ticket_id",
                     (json_int_t)strtoll(PQgetvalue(res, r, 1), NULL, 10), "queue", d->queue,
                     "priority", d->priority, "prio_rank", d->prio_rank, "skills", skills, "rule",
                     d->rule, "fr_due", (json_int_t)d->first_response_due, "res_due",
                     (json_int_t)d->resolution_due, "event", event, "notes", notes, "answered",
                     answered);
}

static int route_claimed(router_t *self, const wasl_work_item_t *items, size_t n)
{
    if (n == 0) {
        return 0;
    }
    int64_t t0 = now_ms();
    int committed = -1;
    char *param = NULL, *arr = NULL;
    int64_t *ids = malloc(n * sizeof *ids);
    if (!ids) {
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        ids[i] = items[i].id;
    }
    arr = wasl_pg_bigint_array(ids, n);
    const char *fp[] = {arr, self->owner};
    PGresult *res = arr ? wasl_pg_query(self->pg, fetch_sql, 2, fp) : NULL;
    if (res && PQnfields(res) != FETCH_COLS) {
        wasl_error("router: the ticket fetch has the wrong shape", "{s:i, s:i}", "columns",
                   PQnfields(res), "expected", FETCH_COLS);
        PQclear(res);
        res = NULL;
    }
    if (!res) {
        goto done;
    }
    /* Every row decided first, then one round trip to caselookup for the whole batch. */
    size_t nrows = (size_t)PQntuples(res);
    row_plan_t *plans = calloc(nrows ? nrows : 1, sizeof *plans);
    if (!plans) {
        PQclear(res);
        goto done;
    }
    bool asking = false;
    for (size_t r = 0; r < nrows; r++) {
        plan_row(self, res, (int)r, &plans[r]);
        asking = asking || plans[r].req;
    }
    if (asking) {
        ask_caselookup(self, plans, nrows);
    }
    json_t *input = json_array();
    for (size_t r = 0; r < nrows; r++) {
        json_array_append_new(input, decide_row(self, res, (int)r, &plans[r]));
        wasl_msg_destroy(&plans[r].req);
        wasl_msg_destroy(&plans[r].rep);
    }
    free(plans);
    PQclear(res);
    param = json_dumps(input, JSON_COMPACT);
    json_decref(input);
    if (!param) {
        goto done;
    }
    const char *cp[] = {param, self->owner};
    wasl_pg_stmt_t stmt = {.sql = commit_sql, .nparams = 2, .params = cp};
    PGresult *out = NULL;
    if (wasl_pg_batch(self->pg, &stmt, 1, &out) < 0) {
        goto done;
    }
    committed = 0;
    for (int r = 0; r < PQntuples(out); r++) {
        /* Rows come grouped by work row: a ticket with two notifications has two. */
        if (r == 0 || strcmp(PQgetvalue(out, r, 0), PQgetvalue(out, r - 1, 0)) != 0) {
            committed++;
            wasl_counter_inc(self->routed);
        }
        if (!PQgetisnull(out, r, 1)) {
            publish_notification(self, strtoll(PQgetvalue(out, r, 1), NULL, 10),
                                 strtoll(PQgetvalue(out, r, 3), NULL, 10), PQgetvalue(out, r, 4),
                                 PQgetvalue(out, r, 2));
        }
    }
    if ((size_t)committed < n) {
        wasl_counter_add(self->lost, n - (size_t)committed);
    }
    PQclear(out);
    wasl_histogram_observe(self->batch_seconds, (double)(now_ms() - t0) / 1000.0);
done:
    atomic_store(&self->db_ok, committed >= 0);
    if (committed < 0) {
        wasl_counter_inc(self->failed);
        wasl_work_give_back(self->pg, "route", self->owner, items, n, wasl_pg_error(self->pg),
                            (int)self->cfg->retry_backoff_ms);
    }
    free(ids);
    free(arr);
    free(param);
    return committed;
}

static int route_batch(void *arg, const wasl_work_item_t *items, size_t n)
{
    return route_claimed(arg, items, n);
}

int router_route_ids(router_t *self, const int64_t *work_ids, size_t n)
{
    int rc = wasl_work_run_ids(self->pg, "route", self->owner, (int)self->cfg->lease_s, work_ids, n,
                               route_batch, self);
    if (rc < 0) {
        atomic_store(&self->db_ok, false);
    }
    return rc;
}

int router_sweep(router_t *self)
{
    int rc = wasl_work_run_stale(self->pg, "route", self->owner, (int)self->cfg->lease_s,
                                 (size_t)self->cfg->batch_max, (int)self->cfg->sweep_min_age_ms,
                                 route_batch, self);
    atomic_store(&self->db_ok, rc >= 0);
    return rc;
}

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
        return -1;
    }
    int n = PQntuples(res) ? atoi(PQgetvalue(res, 0, 0)) : 0;
    PQclear(res);
    return n;
}

int router_timers(router_t *self)
{
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
        return -1;
    }
    int escalated = PQntuples(res) ? atoi(PQgetvalue(res, 0, 2)) : 0;
    for (int r = 0; r < PQntuples(res); r++) {
        int64_t id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        if (id > 0) {
            publish_notification(self, id, strtoll(PQgetvalue(res, r, 1), NULL, 10), "alert",
                                 "email");
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
    return total + escalated;
}

/* Queue depth, oldest waiting age, SLA attainment and offer outcomes, as gauges. */
static void refresh_stats(router_t *self)
{
    PGresult *res = wasl_pg_query(self->pg, queue_stats_sql, 0, NULL);
    char labels[128];
    for (int r = 0; res && r < PQntuples(res); r++) {
        snprintf(labels, sizeof labels, "queue=\"%s\"", PQgetvalue(res, r, 0));
        wasl_gauge_set(
            wasl_gauge("wasl_router_queue_depth", "Tickets waiting for an agent", labels),
            atof(PQgetvalue(res, r, 1)));
        wasl_gauge_set(wasl_gauge("wasl_router_oldest_waiting_seconds",
                                  "Age of the oldest waiting ticket (its original place)", labels),
                       atof(PQgetvalue(res, r, 2)));
        double due = atof(PQgetvalue(res, r, 3)), met = atof(PQgetvalue(res, r, 4));
        if (due > 0) {
            wasl_gauge_set(wasl_gauge("wasl_router_sla_first_response_attainment",
                                      "Share of first responses within SLA (last 24 h)", labels),
                           met / due);
        }
    }
    PQclear(res);
    res = wasl_pg_query(self->pg, offer_stats_sql, 0, NULL);
    for (int r = 0; res && r < PQntuples(res); r++) {
        snprintf(labels, sizeof labels, "state=\"%s\"", PQgetvalue(res, r, 0));
        wasl_gauge_set(wasl_gauge("wasl_router_offers_24h",
                                  "Offers by outcome over the last 24 h (accepted, rejected, "
                                  "expired, withdrawn, offered)",
                                  labels),
                       atof(PQgetvalue(res, r, 1)));
    }
    PQclear(res);
}

/* ---- the loop -------------------------------------------------------------------------------- */

static size_t read_nudges(router_t *self, int64_t *ids, size_t max, long wait_ms)
{
    size_t n = 0;
    zmq_pollitem_t item = {zsock_resolve(self->pull), 0, ZMQ_POLLIN, 0};
    int rc = zmq_poll(&item, 1, wait_ms > 0 ? wait_ms : 0);
    while (rc > 0 && n < max) {
        zmq_msg_t frame;
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, zsock_resolve(self->pull), ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&frame);
            break;
        }
        wasl_msg_error_t err;
        wasl_msg_t *msg = wasl_msg_decode(zmq_msg_data(&frame), zmq_msg_size(&frame), &err);
        zmq_msg_close(&frame);
        if (!msg || msg->type != WASL_MSG_TICKET_CLASSIFIED) {
            wasl_counter_inc(self->bad_messages);
            wasl_warn("router: bad message on the route stage; dropped", "{s:s, s:s}", "error",
                      msg ? "unexpected type" : err.message, "field", msg ? "type" : err.field);
            wasl_msg_destroy(&msg);
            continue;
        }
        ids[n++] = (int64_t)msg->u.ticket_classified.work_id;
        wasl_msg_destroy(&msg);
    }
    return n;
}

int router_run(router_t *self)
{
    size_t max = (size_t)self->cfg->batch_max;
    int64_t *ids = malloc(max * sizeof *ids);
    if (!ids) {
        return -1;
    }
    int64_t last_sweep = 0, last_dispatch = 0, last_timers = 0, last_stats = 0;
    while (!wasl_signal_stopping()) {
        if (wasl_signal_take_reload()) {
            reload(self);
        }
        int64_t now = now_ms();
        int64_t next = last_sweep + self->cfg->sweep_ms;
        if (last_dispatch + self->cfg->dispatch_ms < next) {
            next = last_dispatch + self->cfg->dispatch_ms;
        }
        if (last_timers + self->cfg->timers_ms < next) {
            next = last_timers + self->cfg->timers_ms;
        }
        long wait = (long)(next - now);
        size_t n = 0;
        if (self->pull) {
            n = read_nudges(self, ids, max, wait);
        } else if (wait > 0) {
            wasl_signal_wait((int)wait);
        }
        if (n > 0) {
            router_route_ids(self, ids, n);
            last_dispatch = 0; /* a new ticket: offer it now */
        }
        now = now_ms();
        if (now - last_sweep >= self->cfg->sweep_ms) {
            int swept = router_sweep(self);
            last_sweep = swept == (int)self->cfg->batch_max ? 0 : now;
            if (swept > 0) {
                last_dispatch = 0;
            }
        }
        if (now - last_timers >= self->cfg->timers_ms) {
            router_timers(self);
            last_timers = now;
        }
        if (now - last_dispatch >= self->cfg->dispatch_ms) {
            router_dispatch(self);
            last_dispatch = now_ms();
        }
        if (now - last_stats >= self->cfg->stats_ms) {
            refresh_stats(self);
            last_stats = now;
        }
    }
    free(ids);
    return 0;
}

bool router_ready(void *arg, char *why, size_t cap)
{
    router_t *self = arg;
    if (!atomic_load(&self->db_ok)) {
        snprintf(why, cap, "PostgreSQL does not answer");
        return false;
    }
    return true;
}
