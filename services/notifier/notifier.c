/* notifier — claim due notifications with a lease, render, govern, send, record fenced. */
#include "notifier.h"
#include "wasl_clock.h"
#include "template.h"
#include "wasl_log.h"
#include "wasl_metrics.h"
#include "wasl_pg.h"
#include "wasl_proto.h"
#include "wasl_redis.h"
#include "wasl_signal.h"
#include "wasl_text.h"
#include "wasl_work.h"

#include <assert.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define OWNER_MAX        128
#define REASON_MAX       600
#define REDIS_TIMEOUT_MS 200
#define CHANNELS         2

/* The outbox's state changes are proto/functions/notifications.sql's (claim, sent, fail,
 * defer, suppress, release), each fenced on this notifier's owner name. */
static const char *const claim_sql =
    "SELECT id FROM wasl_notifications_claim($1, $2::int, $3::int, $4::bigint[]) AS id";

static const char *const fetch_sql =
    "SELECT n.id, coalesce(n.ticket_id, 0), n.kind, n.channel, n.recipient, n.lang, n.template,"
    "  n.params::text, n.attempts, n.max_attempts,"
    "  (n.urgent OR n.kind = 'alert' OR coalesce(t.priority = 'urgent', false)),"
    "  coalesce(t.ref, ''), t.auto_submitted IS NOT NULL,"
    "  EXISTS (SELECT 1 FROM opt_outs o WHERE o.channel = n.channel AND o.address = n.recipient),"
    "  (SELECT m.message_id FROM messages m WHERE m.ticket_id = n.ticket_id AND m.direction = 'in'"
    "     AND m.message_id IS NOT NULL ORDER BY m.id DESC LIMIT 1),"
    "  (SELECT string_agg('<' || x.message_id || '>', ' ' ORDER BY x.id) FROM ("
    "     SELECT m.id, m.message_id FROM messages m WHERE m.ticket_id = n.ticket_id"
    "       AND m.message_id IS NOT NULL ORDER BY m.id DESC LIMIT 10) x),"
    "  n.msgid_token"
    " FROM notifications n LEFT JOIN tickets t ON t.id = n.ticket_id"
    " WHERE n.id = ANY($1::bigint[])"
    "   AND CASE n.state WHEN 'pending' THEN n.owner = $2 END" /* "Rows by id": notifications.sql */
    " ORDER BY n.id";
/* fetch_sql's columns, read into a row_t (checked with wasl_pg_arity). */
enum {
    F_ID,
    F_TICKET_ID,
    F_KIND,
    F_CHANNEL,
    F_RECIPIENT,
    F_LANG,
    F_TEMPLATE,
    F_PARAMS,
    F_ATTEMPTS,
    F_MAX_ATTEMPTS,
    F_URGENT,
    F_REF,
    F_AUTO_SUBMITTED,
    F_OPTED_OUT,
    F_IN_REPLY_TO,
    F_REFERENCES,
    F_MSGID_TOKEN,
    F_NCOLS
};

/* Every send of a batch the provider took, recorded in one statement after the batch: one
 * commit per batch instead of one per message (issue 16). A notifier that dies between a send
 * and this record sends that row again when its lease ends — at-least-once, as before, with a
 * window of one batch instead of one message. */
static const char *const sent_sql = "SELECT id FROM wasl_notifications_sent($1::jsonb, $2) AS id";

static const char *const fail_sql =
    "SELECT state FROM wasl_notifications_fail($1::bigint, $2, $3, $4::double precision,"
    "                                          $5::bool) AS state";

/* Not an attempt: the row waits (quiet hours, rate limit) without using one up. */
static const char *const defer_sql =
    "SELECT id FROM wasl_notifications_defer($1::bigint, $2, $3::int, $4) AS id";

static const char *const suppress_sql =
    "SELECT id FROM wasl_notifications_suppress($1::bigint, $2, $3) AS id";

/* One claimed row, as fetched. Strings point into the PGresult. */
typedef struct {
    int64_t id, ticket_id;
    const char *kind, *channel, *recipient, *lang, *template, *params, *ref;
    const char *in_reply_to, *references;
    const char *msgid_token;
    int attempts, max_attempts;
    bool urgent, auto_submitted, opted_out;
} row_t;

/* A rendered SMS waiting for its batch's concurrent send (send.text is owned). */
typedef struct {
    row_t row;
    sms_send_t send;
    bool alert;
} queued_sms_t;

typedef struct {
    wasl_counter_t *sent, *failed, *retried, *dead;
    wasl_histogram_t *latency;
} channel_metrics_t;

struct notifier {
    const notifier_config_t *cfg;
    tmpl_set_t *templates;
    provider_t *provider;
    governor_t *governor;
    wasl_pg_t *pg;
    wasl_redis_t *redis;
    zsock_t *pull;
    char owner[OWNER_MAX];
    atomic_bool db_ok;
    int64_t last_sweep_ms;
    channel_metrics_t ch[CHANNELS];
    wasl_counter_t *bad_messages, *lease_lost, *segments, *redis_down;
    wasl_counter_t *nudges, *rounds_nudge, *rounds_sweep;
    json_t *sent;         /* the batch's sends the provider took, not recorded yet (record_sent) */
    queued_sms_t *queued; /* the batch's SMS to send (room for batch_max) */
    sms_send_t *sends;
    size_t nqueued;
};

static int channel_index(const char *channel)
{
    return strcmp(channel, "email") == 0 ? 1 : 0;
}

long notifier_backoff_ms(long base_ms, long max_ms, int attempt)
{
    long d = base_ms;
    for (int i = 1; i < attempt && d < max_ms; i++) {
        d *= 2;
    }
    if (d > max_ms) {
        d = max_ms;
    }
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        r = (uint32_t)wasl_clock_ms();
    }
    long half = d / 2;
    return half + (half > 0 ? (long)(r % (uint32_t)(half + 1)) : 0);
}

static void init_metrics(notifier_t *self)
{
    static const char *const names[CHANNELS] = {"sms", "email"};
    for (int i = 0; i < CHANNELS; i++) {
        char l[64];
        snprintf(l, sizeof l, "channel=\"%s\"", names[i]);
        channel_metrics_t *m = &self->ch[i];
        m->sent = wasl_counter("wasl_notifier_sent_total", "Notifications the provider took", l);
        m->failed = wasl_counter("wasl_notifier_failed_total",
                                 "Send attempts that failed (retried or dead)", l);
        m->retried = wasl_counter("wasl_notifier_retried_total",
                                  "Failed attempts given back for a retry with backoff", l);
        m->dead = wasl_counter("wasl_notifier_dead_total",
                               "Notifications dead-lettered (permanent error or attempts used)", l);
        m->latency = wasl_histogram("wasl_notifier_provider_seconds",
                                    "Time the SMS gateway or SMTP server took per send", l,
                                    wasl_latency_buckets_s, wasl_latency_buckets_n);
    }
    self->bad_messages = wasl_counter("wasl_notifier_bad_messages_total",
                                      "Bus messages that failed to decode (logged, dropped)", NULL);
    self->lease_lost =
        wasl_counter("wasl_notifier_lease_lost_total",
                     "Outcomes not recorded because another notifier owned the row", NULL);
    self->segments = wasl_counter("wasl_notifier_sms_segments_total", "SMS parts sent", NULL);
    /* Rounds done, so that a test (or an operator) can tell "nothing was sent" from "nothing
     * has looked yet". */
    self->nudges = wasl_counter("wasl_notifier_nudges_total",
                                "Bus nudges handled (their rows claimed, or found done)", NULL);
    self->rounds_nudge =
        wasl_counter("wasl_notifier_rounds_total", "Claim rounds completed", "trigger=\"nudge\"");
    self->rounds_sweep =
        wasl_counter("wasl_notifier_rounds_total", "Claim rounds completed", "trigger=\"sweep\"");
    self->redis_down = wasl_counter("wasl_notifier_rate_limit_unchecked_total",
                                    "Sends allowed without a rate-limit check (Redis down)", NULL);
}

static void count_reason(const char *family, const char *help, const char *reason)
{
    char l[96];
    snprintf(l, sizeof l, "reason=\"%s\"", reason);
    wasl_counter_inc(wasl_counter(family, help, l));
}

notifier_t *notifier_new(const notifier_config_t *cfg, wasl_zmq_t *zmq)
{
    notifier_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->cfg = cfg;
    atomic_init(&self->db_ok, false);
    wasl_work_owner("notifier", self->owner, sizeof self->owner);
    char err[1024];
    self->templates = tmpl_set_load(cfg->templates_dir, err, sizeof err);
    if (!self->templates) {
        wasl_error("notifier: templates refused", "{s:s, s:s}", "dir", cfg->templates_dir, "error",
                   err);
        goto error;
    }
    self->provider = provider_new(&cfg->sms, &cfg->mail);
    self->pg = wasl_pg_new(cfg->pg_url);
    if (self->pg) {
        wasl_pg_set_sync_commit(self->pg, cfg->pg_sync_commit);
    }
    if (!self->provider || !self->pg) {
        goto error;
    }
    if (cfg->redis_url && *cfg->redis_url) {
        self->redis = wasl_redis_new(cfg->redis_url, REDIS_TIMEOUT_MS);
        if (!self->redis) {
            goto error;
        }
    }
    self->governor = governor_new(self->redis, &cfg->limits);
    if (!self->governor) {
        goto error;
    }
    if (cfg->bus && *cfg->bus) {
        char *in = wasl_bus_endpoints(cfg->bus, cfg->bus_stages, "notify", WASL_BUS_PULL);
        if (in) {
            self->pull = wasl_zmq_connect(zmq, ZMQ_PULL, in);
        } else {
            wasl_error("notifier: WASL_BUS or WASL_BUS_STAGES unusable (needs a notify stage)",
                       "{s:s}", "bus", cfg->bus);
        }
        free(in);
        if (!self->pull) {
            goto error;
        }
    }
    self->sent = json_array();
    self->queued = calloc((size_t)cfg->batch_max, sizeof *self->queued);
    self->sends = calloc((size_t)cfg->batch_max, sizeof *self->sends);
    if (!self->sent || !self->queued || !self->sends) {
        goto error;
    }
    init_metrics(self);
    return self;
error:
    notifier_destroy(&self);
    return NULL;
}

void notifier_destroy(notifier_t **self_p)
{
    assert(self_p);
    notifier_t *self = *self_p;
    if (!self) {
        return;
    }
    zsock_destroy(&self->pull);
    governor_destroy(&self->governor);
    wasl_redis_destroy(&self->redis);
    wasl_pg_destroy(&self->pg);
    provider_destroy(&self->provider);
    tmpl_set_destroy(&self->templates);
    json_decref(self->sent);
    for (size_t i = 0; i < self->nqueued; i++) {
        free((char *)self->queued[i].send.text);
    }
    free(self->queued);
    free(self->sends);
    free(self);
    *self_p = NULL;
}

/* Runs one fenced update on its own; returns the rows it changed, or -1. */
static int fenced(notifier_t *self, const char *sql, int n, const char *const *params)
{
    PGresult *res = wasl_pg_query(self->pg, sql, n, params);
    if (!res) {
        atomic_store(&self->db_ok, false);
        wasl_warn("notifier: outcome not recorded (the lease will expire and the row return)",
                  "{s:s}", "error", wasl_pg_error(self->pg));
        return -1;
    }
    int changed = PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) : atoi(PQcmdTuples(res));
    PQclear(res);
    if (changed == 0) {
        wasl_counter_inc(self->lease_lost);
    }
    return changed;
}

static void defer(notifier_t *self, const row_t *r, long delay_s, const char *reason)
{
    char id[24], d[24];
    snprintf(id, sizeof id, "%lld", (long long)r->id);
    snprintf(d, sizeof d, "%ld", delay_s);
    const char *p[] = {id, self->owner, d, reason};
    fenced(self, defer_sql, 4, p);
    count_reason("wasl_notifier_deferred_total", "Sends put off (not an attempt)", reason);
    wasl_debug("notifier: deferred", "{s:I, s:s, s:i}", "notification", (json_int_t)r->id, "reason",
               reason, "delay_s", (int)delay_s);
}

static void suppress(notifier_t *self, const row_t *r, const char *reason)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)r->id);
    const char *p[] = {id, self->owner, reason};
    fenced(self, suppress_sql, 3, p);
    count_reason("wasl_notifier_suppressed_total", "Notifications never sent, by reason", reason);
    wasl_info("notifier: suppressed", "{s:I, s:s}", "notification", (json_int_t)r->id, "reason",
              reason);
}

static void fail(notifier_t *self, const row_t *r, const char *error, bool permanent)
{
    channel_metrics_t *m = &self->ch[channel_index(r->channel)];
    long backoff = permanent ? 0
                             : notifier_backoff_ms(self->cfg->retry_base_ms,
                                                   self->cfg->retry_max_ms, r->attempts);
    char id[24], b[24];
    snprintf(id, sizeof id, "%lld", (long long)r->id);
    snprintf(b, sizeof b, "%ld", backoff);
    const char *p[] = {id, self->owner, error, b, permanent ? "true" : "false"};
    PGresult *res = wasl_pg_query(self->pg, fail_sql, 5, p);
    wasl_counter_inc(m->failed);
    if (!res) {
        atomic_store(&self->db_ok, false);
        return;
    }
    if (!wasl_pg_arity(res, 1, "wasl_notifications_fail")) {
        PQclear(res);
        return;
    }
    bool dead = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "dead") == 0;
    if (PQntuples(res) == 0) {
        wasl_counter_inc(self->lease_lost);
    } else if (dead) {
        wasl_counter_inc(m->dead);
    } else {
        wasl_counter_inc(m->retried);
    }
    PQclear(res);
    wasl_log(dead ? WASL_LOG_ERROR : WASL_LOG_WARN,
             dead ? "notifier: dead letter" : "notifier: send failed; will retry",
             "{s:I, s:s, s:i, s:s, s:i}", "notification", (json_int_t)r->id, "channel", r->channel,
             "attempt", r->attempts, "error", error, "backoff_ms", (int)backoff);
}

static time_t clock_now(const notifier_t *self)
{
    return self->cfg->clock_s > 0 ? (time_t)self->cfg->clock_s : time(NULL);
}

/* Whether an SMS must wait for the end of quiet hours or a send for the recipient's rate
 * limit: then the row is deferred (not an attempt) and true returned. */
static bool held_back(notifier_t *self, const row_t *r, bool sms, bool alert)
{
    if (sms && !r->urgent) {
        long wait = governor_quiet_wait_s(clock_now(self), (int)self->cfg->quiet_start_h,
                                          (int)self->cfg->quiet_end_h);
        if (wait > 0) {
            defer(self, r, wait, "quiet_hours");
            return true;
        }
    }
    if (!alert) {
        bool redis_down = false;
        long wait =
            governor_take(self->governor, r->channel, r->recipient, r->ticket_id, &redis_down);
        if (redis_down) {
            wasl_counter_inc(self->redis_down);
        }
        if (wait > 0) {
            defer(self, r, wait, "rate_limit");
            return true;
        }
    }
    return false;
}

/* A string the provider answered, as JSON text: its bytes are the peer's, and one ill-formed
 * sequence must not make the whole batch's record fail (U+FFFD instead, wasl_utf8_sanitize). */
static json_t *peer_text(const char *s)
{
    char *clean = wasl_utf8_sanitize(s, strlen(s), NULL);
    json_t *j = clean ? json_string(clean) : NULL;
    free(clean);
    return j;
}

/* The outcome of one send: failed at once (retry or dead), or sent, in the batch's list
 * (record_sent). `segments` for an SMS, `mid` the email's Message-ID without brackets. */
static void settle(notifier_t *self, const row_t *r, const send_result_t *res, const char *text,
                   const char *subject, bool sms, bool alert, int segments, const char *mid)
{
    channel_metrics_t *m = &self->ch[channel_index(r->channel)];
    wasl_histogram_observe(m->latency, res->latency_s);
    if (res->status != SEND_OK) {
        fail(self, r, res->error, res->status == SEND_PERMANENT);
        return;
    }
    bool record = !sms && !alert;
    json_t *o = json_pack("{s:I, s:o, s:o, s:o, s:o, s:s, s:s, s:o, s:b, s:s}", "id",
                          (json_int_t)r->id, "provider_id", peer_text(res->provider_id),
                          "provider_status", peer_text(res->provider_status), "segments",
                          sms ? json_integer(segments) : json_null(), "message_id",
                          sms ? json_null() : json_string(mid), "sender", self->cfg->mail.from,
                          "body", text, "subject", subject ? json_string(subject) : json_null(),
                          "record", record, "channel", r->channel);
    if (!o || json_array_append_new(self->sent, o) < 0) {
        /* Out of memory: not recorded, the row comes back when its lease ends (a resend). */
        wasl_warn("notifier: send not recorded (out of memory)", "{s:I}", "notification",
                  (json_int_t)r->id);
    }
    wasl_counter_inc(m->sent);
    if (sms) {
        wasl_counter_add(self->segments, (uint64_t)segments);
    }
    wasl_debug("notifier: sent", "{s:I, s:s, s:s, s:s, s:i, s:f}", "notification",
               (json_int_t)r->id, "channel", r->channel, "template", r->template, "provider_id",
               res->provider_id, "segments", segments, "latency_s", res->latency_s);
}

/* Sends one email (one SMTP session: emails are few, and not sent concurrently) and settles. */
static void deliver_mail(notifier_t *self, const row_t *r, const char *text, const char *subject,
                         bool alert)
{
    send_result_t res;
    char mid[PROVIDER_ID_MAX] = "";
    mail_msg_t msg = {.id = r->id,
                      .msgid_token = r->msgid_token,
                      .to = r->recipient,
                      .lang = r->lang,
                      .subject = subject,
                      .text = text,
                      .references = r->references};
    char irt[PROVIDER_ID_MAX + 2] = "";
    if (r->in_reply_to) {
        snprintf(irt, sizeof irt, "<%s>", r->in_reply_to);
        msg.in_reply_to = irt;
    }
    provider_send_mail(self->provider, &msg, &res);
    provider_message_id(self->provider, r->id, r->msgid_token, mid, sizeof mid);
    memmove(mid, mid + 1, strlen(mid)); /* stored without brackets, as intake stores them */
    mid[strlen(mid) - 1] = '\0';
    settle(self, r, &res, text, subject, false, alert, 0, mid);
}

/* Queues a rendered SMS for the batch's concurrent send (send_queued); takes text. */
static void queue_sms(notifier_t *self, const row_t *r, char *text, bool alert)
{
    queued_sms_t *q = &self->queued[self->nqueued++];
    q->row = *r;
    q->alert = alert;
    q->send = (sms_send_t){.id = r->id, .to = r->recipient, .text = text};
    q->send.segments = tmpl_sms_segments(text, &q->send.ucs2);
}

/* Sends the queued SMS concurrently (provider_send_sms_many: one slow gateway answer holds none
 * of the others) and settles each. */
static void send_queued(notifier_t *self)
{
    if (self->nqueued == 0) {
        return;
    }
    for (size_t i = 0; i < self->nqueued; i++) {
        self->sends[i] = self->queued[i].send;
    }
    provider_send_sms_many(self->provider, self->sends, self->nqueued);
    for (size_t i = 0; i < self->nqueued; i++) {
        queued_sms_t *q = &self->queued[i];
        settle(self, &q->row, &self->sends[i].result, q->send.text, NULL, true, q->alert,
               q->send.segments, NULL);
        free((char *)q->send.text);
    }
    self->nqueued = 0;
}

/* Records the batch's sends in one statement (sent_sql) and empties the list. The ids the fence
 * refused (another notifier owns the row now) count as lease_lost. */
static void record_sent(notifier_t *self)
{
    size_t n = json_array_size(self->sent);
    if (n == 0) {
        return;
    }
    char *batch = json_dumps(self->sent, JSON_COMPACT);
    json_array_clear(self->sent);
    const char *p[] = {batch, self->owner};
    PGresult *res = batch ? wasl_pg_query(self->pg, sent_sql, 2, p) : NULL;
    free(batch);
    if (!wasl_pg_arity(res, 1, "wasl_notifications_sent")) {
        PQclear(res);
        atomic_store(&self->db_ok, wasl_pg_ok(self->pg));
        wasl_warn("notifier: sends not recorded (their leases will expire and the rows return)",
                  "{s:i, s:s}", "sent", (int)n, "error", wasl_pg_error(self->pg));
        return;
    }
    size_t recorded = (size_t)PQntuples(res);
    PQclear(res);
    if (recorded < n) {
        wasl_counter_add(self->lease_lost, n - recorded);
    }
    wasl_info("notifier: sends recorded", "{s:i, s:i}", "sent", (int)n, "recorded", (int)recorded);
}

/* Renders and governs one claimed row, then sends it (an email) or queues it (an SMS: sent with
 * the batch's others by send_queued); the outcome is settled either way. */
static void send_row(notifier_t *self, const row_t *r)
{
    char err[REASON_MAX];
    if (r->attempts > r->max_attempts) {
        /* Its lease expired again and again: whoever held it died each time. */
        fail(self, r, "lease expired on every attempt (notifier died while sending)", true);
        return;
    }
    bool alert = strcmp(r->kind, "alert") == 0;
    if (r->auto_submitted && !alert) {
        suppress(self, r, "auto_submitted");
        return;
    }
    if (r->opted_out && !alert) {
        suppress(self, r, "opted_out");
        return;
    }
    json_t *params = json_loads(r->params, 0, NULL);
    if (!json_is_object(params)) {
        json_decref(params);
        fail(self, r, "params is not a JSON object", true);
        return;
    }
    if (!json_object_get(params, "ref") && *r->ref) {
        json_object_set_new(params, "ref", json_string(r->ref));
    }
    char *subject = NULL;
    char *text = tmpl_render(self->templates, r->lang, r->channel, r->template, params, &subject,
                             err, sizeof err);
    json_decref(params);
    if (!text) {
        fail(self, r, err, true);
        return;
    }
    bool sms = strcmp(r->channel, "sms") == 0;
    if (held_back(self, r, sms, alert)) {
        free(text);
    } else if (sms) {
        queue_sms(self, r, text, alert); /* takes text */
    } else {
        deliver_mail(self, r, text, subject, alert);
        free(text);
    }
    free(subject);
}

/* On a stop: gives the claimed rows from `first` on back at once (not an attempt), rather than
 * leaving them to wait for their lease to expire. */
static void release_rest(notifier_t *self, PGresult *res, int first)
{
    size_t n = (size_t)(PQntuples(res) - first);
    int64_t *ids = malloc(n * sizeof *ids);
    if (!ids) {
        return;
    }
    for (size_t k = 0; k < n; k++) {
        ids[k] = strtoll(PQgetvalue(res, first + (int)k, 0), NULL, 10);
    }
    char *arr = wasl_pg_bigint_array(ids, n);
    free(ids);
    const char *p[] = {arr, self->owner};
    PGresult *out =
        arr ? wasl_pg_query(self->pg,
                            "SELECT id FROM wasl_notifications_release($1::bigint[], $2) AS id", 2,
                            p)
            : NULL;
    wasl_info("notifier: stopping; unsent rows given back", "{s:i}", "rows", (int)n);
    PQclear(out);
    free(arr);
}

static const char *opt_value(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

int notifier_process(notifier_t *self, const int64_t *ids, size_t n)
{
    char *arr = n > 0 ? wasl_pg_bigint_array(ids, n) : NULL;
    if (n > 0 && !arr) {
        return -1;
    }
    char lease[16], limit[16];
    snprintf(lease, sizeof lease, "%ld", self->cfg->lease_s);
    snprintf(limit, sizeof limit, "%ld", n > 0 ? (long)n : self->cfg->batch_max);
    const char *cp[] = {self->owner, lease, limit, arr};
    PGresult *res = wasl_pg_query(self->pg, claim_sql, 4, cp);
    free(arr);
    if (!res) {
        atomic_store(&self->db_ok, false);
        wasl_warn("notifier: claim failed", "{s:s}", "error", wasl_pg_error(self->pg));
        return -1;
    }
    atomic_store(&self->db_ok, true);
    if (!wasl_pg_arity(res, 1, "wasl_notifications_claim")) {
        PQclear(res);
        return -1;
    }
    int claimed = PQntuples(res);
    int64_t *got = claimed > 0 ? malloc((size_t)claimed * sizeof *got) : NULL;
    for (int i = 0; got && i < claimed; i++) {
        got[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    }
    PQclear(res);
    if (claimed == 0 || !got) {
        free(got);
        return claimed == 0 ? 0 : -1; /* unsent claimed rows come back when the lease ends */
    }
    arr = wasl_pg_bigint_array(got, (size_t)claimed);
    free(got);
    const char *fp[] = {arr, self->owner};
    res = arr ? wasl_pg_query(self->pg, fetch_sql, 2, fp) : NULL;
    free(arr);
    if (!res) {
        atomic_store(&self->db_ok, false);
        return -1;
    }
    if (!wasl_pg_arity(res, F_NCOLS, "notifier fetch")) {
        PQclear(res);
        return -1; /* the claimed rows come back when their lease ends */
    }
    int i = 0;
    for (; i < PQntuples(res) && !wasl_signal_stopping(); i++) {
        row_t r = {
            .id = strtoll(PQgetvalue(res, i, F_ID), NULL, 10),
            .ticket_id = strtoll(PQgetvalue(res, i, F_TICKET_ID), NULL, 10),
            .kind = PQgetvalue(res, i, F_KIND),
            .channel = PQgetvalue(res, i, F_CHANNEL),
            .recipient = PQgetvalue(res, i, F_RECIPIENT),
            .lang = PQgetvalue(res, i, F_LANG),
            .template = PQgetvalue(res, i, F_TEMPLATE),
            .params = PQgetvalue(res, i, F_PARAMS),
            .attempts = atoi(PQgetvalue(res, i, F_ATTEMPTS)),
            .max_attempts = atoi(PQgetvalue(res, i, F_MAX_ATTEMPTS)),
            .urgent = PQgetvalue(res, i, F_URGENT)[0] == 't',
            .ref = PQgetvalue(res, i, F_REF),
            .auto_submitted = PQgetvalue(res, i, F_AUTO_SUBMITTED)[0] == 't',
            .opted_out = PQgetvalue(res, i, F_OPTED_OUT)[0] == 't',
            .in_reply_to = opt_value(res, i, F_IN_REPLY_TO),
            .references = opt_value(res, i, F_REFERENCES),
            .msgid_token = PQgetvalue(res, i, F_MSGID_TOKEN),
        };
        send_row(self, &r);
    }
    send_queued(self);
    record_sent(self);
    if (i < PQntuples(res)) {
        release_rest(self, res, i);
    }
    PQclear(res);
    return claimed;
}

int notifier_run(notifier_t *self)
{
    size_t max = (size_t)self->cfg->batch_max;
    int64_t *ids = malloc(max * sizeof *ids);
    if (!ids) {
        return -1;
    }
    self->last_sweep_ms = 0; /* sweep first: rows may have waited while no notifier ran */
    while (!wasl_signal_stopping()) {
        int64_t wait = self->last_sweep_ms + self->cfg->sweep_ms - wasl_clock_ms();
        size_t n = 0;
        if (self->pull) {
            zmq_pollitem_t item = {zsock_resolve(self->pull), 0, ZMQ_POLLIN, 0};
            int rc = zmq_poll(&item, 1, wait > 0 ? (long)wait : 0);
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
                if (!msg || msg->type != WASL_MSG_NOTIFY_REQUESTED) {
                    wasl_counter_inc(self->bad_messages);
                    wasl_warn("notifier: bad message on the notify stage; dropped", "{s:s, s:s}",
                              "error", msg ? "unexpected type" : err.message, "field",
                              msg ? "type" : err.field);
                    wasl_msg_destroy(&msg);
                    continue;
                }
                ids[n++] = (int64_t)msg->u.notify_requested.notification_id;
                wasl_msg_destroy(&msg);
            }
        } else if (wait > 0) {
            wasl_signal_wait((int)wait);
        }
        if (n > 0) {
            notifier_process(self, ids, n);
            wasl_counter_add(self->nudges, n);
            wasl_counter_inc(self->rounds_nudge);
        }
        if (wasl_clock_ms() - self->last_sweep_ms >= self->cfg->sweep_ms) {
            int swept = notifier_process(self, NULL, 0);
            wasl_counter_inc(self->rounds_sweep);
            /* A full batch means a backlog: sweep again right after the next poll. */
            self->last_sweep_ms = swept == (int)self->cfg->batch_max ? 0 : wasl_clock_ms();
        }
    }
    free(ids);
    return 0;
}

bool notifier_ready(void *arg, char *why, size_t cap)
{
    notifier_t *self = arg;
    if (!atomic_load(&self->db_ok)) {
        snprintf(why, cap, "PostgreSQL does not answer");
        return false;
    }
    return true;
}
