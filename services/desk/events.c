/* events — LISTEN/NOTIFY to Server-Sent Events (see events.h). */
#include "events.h"
#include "viewers.h"
#include "calls.h"
#include "wasl_clock.h"
#include "wasl_domain.h"
#include "wasl_log.h"
#include "wasl_metrics.h"
#include "wasl_redis.h"
#include "wasl_session.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHANNEL DESK_EVENTS_CHANNEL
/* libmicrohttpd asks the stream for at most this much at a time. */
#define STREAM_BLOCK 4096
/* Notifications handled in one batch (one query for the new offers among them). */
#define BATCH_MAX        256
#define RECONNECT_MIN_MS 250
#define RECONNECT_MAX_MS 5000
#define WALLBOARD_MIN_MS 1000
/* The stream's first bytes: EventSource's reconnection delay, then a comment so that the page
 * (and a proxy) sees the stream open at once. */
#define STREAM_HELLO "retry: 2000\n: wasl-desk\n\n"

typedef struct desk_stream desk_stream_t;
struct desk_stream {
    desk_events_t *hub;
    struct MHD_Connection *conn;
    char agent[WASL_SESSION_AGENT_BUF];
    char session_key[WASL_SESSION_KEY_BUF];
    bool supervisor;
    char *buf; /* unsent bytes */
    size_t len, cap;
    bool suspended; /* the connection waits for data (resume it on the next) */
    bool closed;    /* end the stream once what is buffered is sent */
    bool overflow;  /* ended because the peer fell behind: drop the rest */
    desk_stream_t *prev, *next;
};

struct desk_events {
    const desk_config_t *cfg;
    /* One lock for the list and every stream's buffer: an event touches a few streams, a read
     * one, and both are short copies. */
    pthread_mutex_t lock;
    desk_stream_t *head;
    size_t n;
    bool stopping;
    bool listening;
    int wake[2]; /* a pipe that wakes the LISTEN thread to stop */
    pthread_t thread;
    bool started;
    wasl_redis_t *redis; /* the LISTEN thread's, to check the streams' sessions */
    wasl_gauge_t *streams_gauge;
    wasl_counter_t *overflow_total, *reconnects_total, *ended_total;
    /* The LISTEN thread's: a ticket or agent event arrived since the last `wallboard` event,
     * and when that was sent (supervisors refetch at most once a second). */
    bool wallboard_dirty;
    int64_t wallboard_sent_ms;
};

/* ---- streams ----------------------------------------------------------------------------- */

static void resume_locked(desk_stream_t *st)
{
    if (st->suspended) {
        st->suspended = false;
        MHD_resume_connection(st->conn);
    }
}

/* Appends bytes to a stream (lock held); a stream that would hold more than its limit is ended
 * instead: its page reconnects and refetches. */
static void append_locked(desk_stream_t *st, const char *data, size_t n)
{
    if (st->closed) {
        return;
    }
    size_t limit = (size_t)st->hub->cfg->stream_buffer;
    if (st->len + n > limit) {
        st->closed = st->overflow = true;
        st->len = 0;
        wasl_counter_inc(st->hub->overflow_total);
        resume_locked(st);
        return;
    }
    if (st->len + n > st->cap) {
        size_t cap = st->cap ? st->cap : 1024;
        while (cap < st->len + n) {
            cap *= 2;
        }
        char *grown = realloc(st->buf, cap);
        if (!grown) {
            st->closed = st->overflow = true;
            resume_locked(st);
            return;
        }
        st->buf = grown;
        st->cap = cap;
    }
    memcpy(st->buf + st->len, data, n);
    st->len += n;
    resume_locked(st);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    desk_stream_t *st = cls;
    desk_events_t *hub = st->hub;
    pthread_mutex_lock(&hub->lock);
    ssize_t rc;
    if (st->overflow) {
        rc = MHD_CONTENT_READER_END_WITH_ERROR;
    } else if (st->len > 0) {
        size_t n = st->len < max ? st->len : max;
        memcpy(out, st->buf, n);
        memmove(st->buf, st->buf + n, st->len - n);
        st->len -= n;
        rc = (ssize_t)n;
    } else if (st->closed) {
        rc = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        /* Nothing to send: park the connection until an event (or the ping) resumes it. */
        st->suspended = true;
        MHD_suspend_connection(st->conn);
        rc = 0;
    }
    pthread_mutex_unlock(&hub->lock);
    return rc;
}

/* The response is gone (the connection ended): forget the stream. */
static void stream_free(void *cls)
{
    desk_stream_t *st = cls;
    desk_events_t *hub = st->hub;
    pthread_mutex_lock(&hub->lock);
    if (st->prev) {
        st->prev->next = st->next;
    } else {
        hub->head = st->next;
    }
    if (st->next) {
        st->next->prev = st->prev;
    }
    hub->n--;
    wasl_gauge_set(hub->streams_gauge, (double)hub->n);
    pthread_mutex_unlock(&hub->lock);
    free(st->buf);
    free(st);
}

static size_t agent_streams_locked(desk_events_t *self, const char *agent)
{
    size_t n = 0;
    for (desk_stream_t *st = self->head; st; st = st->next) {
        n += strcmp(st->agent, agent) == 0 && !st->closed;
    }
    return n;
}

desk_stream_rc_t desk_events_open(desk_events_t *self, struct MHD_Connection *conn,
                                  const char *agent, bool supervisor, const char *session_key,
                                  struct MHD_Response **out)
{
    *out = NULL;
    desk_stream_t *st = calloc(1, sizeof *st);
    if (!st) {
        return DESK_STREAM_ERROR;
    }
    st->hub = self;
    st->conn = conn;
    st->supervisor = supervisor;
    snprintf(st->agent, sizeof st->agent, "%s", agent);
    snprintf(st->session_key, sizeof st->session_key, "%s", session_key);
    pthread_mutex_lock(&self->lock);
    desk_stream_rc_t rc = DESK_STREAM_OK;
    if (self->stopping) {
        rc = DESK_STREAM_STOPPING;
    } else if (self->n >= (size_t)self->cfg->streams_max) {
        rc = DESK_STREAM_FULL;
    } else if (agent_streams_locked(self, agent) >= (size_t)self->cfg->streams_per_agent) {
        rc = DESK_STREAM_AGENT_MAX;
    }
    if (rc == DESK_STREAM_OK) {
        *out = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_read, st,
                                                 stream_free);
        rc = *out ? DESK_STREAM_OK : DESK_STREAM_ERROR;
    }
    if (rc != DESK_STREAM_OK) {
        pthread_mutex_unlock(&self->lock);
        free(st);
        return rc;
    }
    st->next = self->head;
    if (self->head) {
        self->head->prev = st;
    }
    self->head = st;
    self->n++;
    wasl_gauge_set(self->streams_gauge, (double)self->n);
    append_locked(st, STREAM_HELLO, sizeof STREAM_HELLO - 1);
    pthread_mutex_unlock(&self->lock);
    return DESK_STREAM_OK;
}

/* Ends the streams `match` picks (lock taken here). */
static void close_where(desk_events_t *self, bool (*match)(const desk_stream_t *, const char *),
                        const char *arg)
{
    pthread_mutex_lock(&self->lock);
    for (desk_stream_t *st = self->head; st; st = st->next) {
        if (match(st, arg)) {
            st->closed = true;
            resume_locked(st);
        }
    }
    pthread_mutex_unlock(&self->lock);
}

static bool of_session(const desk_stream_t *st, const char *key)
{
    return strcmp(st->session_key, key) == 0;
}

static bool of_agent(const desk_stream_t *st, const char *agent)
{
    return strcmp(st->agent, agent) == 0;
}

static bool any(const desk_stream_t *st, const char *unused)
{
    (void)st;
    (void)unused;
    return true;
}

void desk_events_close_session(desk_events_t *self, const char *session_key)
{
    close_where(self, of_session, session_key);
}

void desk_events_close_agent(desk_events_t *self, const char *agent)
{
    close_where(self, of_agent, agent);
}

/* ---- publishing -------------------------------------------------------------------------- */

/* To `agent`'s streams and, with `supervisors`, every supervisor's; to all for NULL; to
 * supervisors only for "". */
static void send_raw(desk_events_t *self, const char *agent, bool supervisors, const char *text,
                     size_t len)
{
    pthread_mutex_lock(&self->lock);
    for (desk_stream_t *st = self->head; st; st = st->next) {
        if (!agent || (supervisors && st->supervisor) ||
            (*agent && strcmp(st->agent, agent) == 0)) {
            append_locked(st, text, len);
        }
    }
    pthread_mutex_unlock(&self->lock);
}

static void publish(desk_events_t *self, const char *agent, bool supervisors, const char *event,
                    const json_t *data)
{
    char *json = data ? json_dumps(data, JSON_COMPACT) : strdup("{}");
    if (!json) {
        return;
    }
    size_t cap = strlen(event) + strlen(json) + 32;
    char *text = malloc(cap);
    if (text) {
        /* JSON_COMPACT has no newline: one data line. */
        int n = snprintf(text, cap, "event: %s\ndata: %s\n\n", event, json);
        send_raw(self, agent, supervisors, text, (size_t)n);
        char labels[64];
        snprintf(labels, sizeof labels, "event=\"%s\"", event);
        wasl_counter_inc(wasl_counter("wasl_desk_events_total",
                                      "Events sent, by kind (one count "
                                      "per event, not per stream)",
                                      labels));
    }
    free(text);
    free(json);
}

void desk_events_publish(desk_events_t *self, const char *agent, const char *event,
                         const json_t *data)
{
    publish(self, agent, true, event, data);
}

void desk_events_publish_own(desk_events_t *self, const char *agent, const char *event,
                             const json_t *data)
{
    publish(self, agent, false, event, data);
}

static void broadcast(desk_events_t *self, const char *text)
{
    send_raw(self, NULL, true, text, strlen(text));
}

/* ---- from notifications to events ------------------------------------------------------ */

static json_t *str_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

/* {"ar": …, "en": …} for a code, or null when there is none or it is unknown. */
static json_t *labels(const char *(*label)(const char *, const char *), const PGresult *res,
                      int row, int col)
{
    const char *code = PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
    const char *ar = code ? label(code, "ar") : NULL;
    const char *en = code ? label(code, "en") : NULL;
    return ar && en ? json_pack("{s:s, s:s}", "ar", ar, "en", en) : json_null();
}

json_t *desk_offer_json(const PGresult *res, int row)
{
    json_t *card = json_pack("{s:I, s:s, s:o, s:o, s:s, s:o, s:o, s:o, s:s, s:o}", "offer",
                             (json_int_t)strtoll(PQgetvalue(res, row, DESK_OFFER_ID), NULL, 10),
                             "ticket", PQgetvalue(res, row, DESK_OFFER_REF), "queue",
                             str_or_null(res, row, DESK_OFFER_QUEUE), "priority",
                             str_or_null(res, row, DESK_OFFER_PRIORITY), "channel",
                             PQgetvalue(res, row, DESK_OFFER_CHANNEL), "language",
                             str_or_null(res, row, DESK_OFFER_LANGUAGE), "subject",
                             str_or_null(res, row, DESK_OFFER_SUBJECT), "category",
                             str_or_null(res, row, DESK_OFFER_CATEGORY), "expires_at",
                             PQgetvalue(res, row, DESK_OFFER_EXPIRES_AT), "first_response_due",
                             str_or_null(res, row, DESK_OFFER_FR_DUE));
    /* The words people read, from the one source (common/wasl_domain). */
    json_object_set_new(card, "category_label",
                        labels(wasl_category_label, res, row, DESK_OFFER_CATEGORY));
    json_object_set_new(card, "priority_label",
                        labels(wasl_priority_label, res, row, DESK_OFFER_PRIORITY));
    json_object_set_new(card, "priority_reason", str_or_null(res, row, DESK_OFFER_PRIORITY_REASON));
    return card;
}

/* The cards of the new offers among a batch, read in one query, each to its agent. */
static void publish_offers(desk_events_t *self, PGconn *pg, const char *ids_array)
{
    // clang-format off
    static const char sql[] = DESK_OFFER_COLUMNS
        " WHERE o.id = ANY ($1::bigint[])"
        "   AND o.state = 'offered'"
        " ORDER BY o.id";
    // clang-format on
    const char *p[] = {ids_array};
    PGresult *res = PQexecParams(pg, sql, 1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != DESK_OFFER_NCOLS) {
        wasl_warn("desk: cannot read new offers", "{s:s}", "error", PQerrorMessage(pg));
        PQclear(res);
        return;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        json_t *card = desk_offer_json(res, r);
        desk_events_publish_own(self, PQgetvalue(res, r, DESK_OFFER_AGENT), "offer", card);
        json_decref(card);
    }
    PQclear(res);
}

/* "2026-12-03T10:15:00.123Z" from ms since the epoch. */
static void iso_ms(int64_t ms, char out[32])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

/* One notification: an offer closed or a presence change is an event at once; a new offer's id
 * is added to `ids` (a Postgres array literal being built) for one query per batch. */
static void handle_payload(desk_events_t *self, const char *payload, char *ids, size_t cap)
{
    json_t *doc = json_loads(payload, 0, NULL);
    const char *t = json_string_value(json_object_get(doc, "t"));
    const char *k = json_string_value(json_object_get(doc, "k"));
    const char *a = json_string_value(json_object_get(doc, "a"));
    json_t *o = json_object_get(doc, "o");
    if (t && strcmp(t, "viewers") == 0) {
        /* The collision warning's own kind (viewers.c); nothing for the wallboard. */
        desk_viewers_heard(self, self->redis, self->cfg, doc);
        json_decref(doc);
        return;
    }
    if (!t || !k) {
        json_decref(doc);
        return;
    }
    self->wallboard_dirty = true;
    if (!strcmp(t, "ticket") && json_is_integer(o)) {
        if (!strcmp(k, "offered")) {
            size_t len = strlen(ids);
            snprintf(ids + len, cap - len, "%s%lld", len > 1 ? "," : "",
                     (long long)json_integer_value(o));
        } else if (!strncmp(k, "offer.", 6) && a) {
            json_t *data = json_pack("{s:O, s:s}", "offer", o, "state", k + 6);
            desk_events_publish_own(self, a, "offer.closed", data);
            json_decref(data);
        }
    } else if (!strcmp(t, "ticket") && a && (!strcmp(k, "assigned") || !strcmp(k, "unassigned"))) {
        /* A supervisor gave the agent a ticket, or took one away (wasl_tickets_assign): its "my
         * work" refetches. */
        json_t *data = json_pack("{s:s}", "kind", k);
        desk_events_publish_own(self, a, "work", data);
        json_decref(data);
    } else if (!strcmp(t, "agent") && a && json_is_string(json_object_get(doc, "p"))) {
        char since[32];
        iso_ms((int64_t)json_integer_value(json_object_get(doc, "at")), since);
        json_t *data = json_pack("{s:s, s:O, s:s}", "agent", a, "presence",
                                 json_object_get(doc, "p"), "since", since);
        desk_events_publish(self, a, "presence", data);
        json_decref(data);
    }
    json_decref(doc);
}

/* Drains the notifications PostgreSQL has delivered, in batches. */
static void drain_notifies(desk_events_t *self, PGconn *pg)
{
    enum { ID_TEXT = 24 };
    char ids[2 + BATCH_MAX * ID_TEXT];
    PGnotify *n;
    bool more = true;
    while (more) {
        snprintf(ids, sizeof ids, "{");
        int count = 0;
        while (count < BATCH_MAX && (n = PQnotifies(pg))) {
            /* A screen pop is read and sent at once, to its agent only (calls.c). */
            if (!desk_calls_notified(self, pg, n->extra)) {
                handle_payload(self, n->extra, ids, sizeof ids - 1);
            }
            PQfreemem(n);
            count++;
        }
        /* The query below may bring more notifications in: go round until none is left. */
        more = count > 0;
        if (strlen(ids) > 1) {
            strcat(ids, "}");
            publish_offers(self, pg, ids);
        }
    }
}

/* A `wallboard` event to the supervisors' streams when something changed, at most once per
 * WALLBOARD_MIN_MS; the ms until the next one may go (or -1: nothing pending). */
static int64_t wallboard_tick(desk_events_t *self, int64_t now)
{
    if (!self->wallboard_dirty) {
        return -1;
    }
    int64_t wait = self->wallboard_sent_ms + WALLBOARD_MIN_MS - now;
    if (wait > 0) {
        return wait;
    }
    self->wallboard_dirty = false;
    self->wallboard_sent_ms = now;
    desk_events_publish(self, "", "wallboard", NULL);
    return -1;
}

/* ---- sessions that ended elsewhere ----------------------------------------------------- */

/* Ends the streams whose session is gone from Redis: signed out on another desk instance,
 * expired, or ended by a password change or the agent's removal (waslctl). Runs on the LISTEN
 * thread with each ping; EXISTS does not refresh a session, so an open page alone never keeps
 * one alive. The keys are copied out of the lock, checked, and the gone ones closed by key (a
 * stream freed meanwhile is simply not found). Redis unreachable: nothing is closed. */
static void sweep_sessions(desk_events_t *self)
{
    pthread_mutex_lock(&self->lock);
    size_t n = 0, cap = self->n;
    char(*keys)[WASL_SESSION_KEY_BUF] = cap ? calloc(cap, sizeof *keys) : NULL;
    for (desk_stream_t *st = self->head; keys && st && n < cap; st = st->next) {
        if (!st->closed) {
            memcpy(keys[n++], st->session_key, WASL_SESSION_KEY_BUF);
        }
    }
    pthread_mutex_unlock(&self->lock);
    for (size_t i = 0; i < n; i++) {
        redisReply *r = wasl_redis_cmd(self->redis, "EXISTS %s", keys[i]);
        bool gone = r && r->type == REDIS_REPLY_INTEGER && r->integer == 0;
        freeReplyObject(r);
        if (!r) {
            break;
        }
        if (gone) {
            wasl_counter_inc(self->ended_total);
            desk_events_close_session(self, keys[i]);
        }
    }
    free(keys);
}

/* ---- the LISTEN thread ------------------------------------------------------------------- */

static void set_listening(desk_events_t *self, bool on)
{
    pthread_mutex_lock(&self->lock);
    self->listening = on;
    pthread_mutex_unlock(&self->lock);
}

/* A new connection that LISTENs, or NULL (logged). */
static PGconn *listen_connect(desk_events_t *self)
{
    PGconn *pg = PQconnectdb(self->cfg->pg_url);
    if (PQstatus(pg) == CONNECTION_OK) {
        PGresult *res = PQexecParams(pg, "LISTEN " CHANNEL, 0, NULL, NULL, NULL, NULL, 0);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (ok) {
            return pg;
        }
    }
    wasl_warn("desk: cannot LISTEN; retrying", "{s:s}", "error", PQerrorMessage(pg));
    PQfinish(pg);
    return NULL;
}

/* Waits up to timeout_ms for the socket (or -1: only the stop pipe). True when told to stop. */
static bool wait_input(desk_events_t *self, int sock, int timeout_ms)
{
    struct pollfd fds[2] = {{.fd = self->wake[0], .events = POLLIN},
                            {.fd = sock, .events = POLLIN}};
    int rc = poll(fds, sock >= 0 ? 2 : 1, timeout_ms < 0 ? 0 : timeout_ms);
    return rc > 0 && (fds[0].revents & POLLIN);
}

static void *listen_main(void *arg)
{
    desk_events_t *self = arg;
    PGconn *pg = NULL;
    bool ever = false;
    int backoff_ms = RECONNECT_MIN_MS;
    int64_t next_ping = wasl_clock_ms() + self->cfg->ping_s * 1000;
    for (;;) {
        if (!pg && (pg = listen_connect(self))) {
            set_listening(self, true);
            backoff_ms = RECONNECT_MIN_MS;
            if (ever) {
                /* What was committed while we were deaf is not coming: pages refetch. */
                wasl_counter_inc(self->reconnects_total);
                broadcast(self, "event: resync\ndata: {}\n\n");
            }
            ever = true;
        }
        int64_t now = wasl_clock_ms();
        int timeout = (int)(next_ping - now);
        if (!pg && timeout > backoff_ms) {
            timeout = backoff_ms;
        }
        int64_t board = wallboard_tick(self, now);
        if (board >= 0 && board < timeout) {
            timeout = (int)board;
        }
        if (wait_input(self, pg ? PQsocket(pg) : -1, timeout)) {
            break;
        }
        if (pg && (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK)) {
            wasl_warn("desk: LISTEN connection lost", "{s:s}", "error", PQerrorMessage(pg));
            PQfinish(pg);
            pg = NULL;
            set_listening(self, false);
        } else if (pg) {
            drain_notifies(self, pg);
        } else if (backoff_ms < RECONNECT_MAX_MS) {
            backoff_ms *= 2;
        }
        if (wasl_clock_ms() >= next_ping) {
            broadcast(self, ": ping\n\n");
            sweep_sessions(self);
            next_ping = wasl_clock_ms() + self->cfg->ping_s * 1000;
        }
    }
    PQfinish(pg);
    return NULL;
}

desk_events_t *desk_events_new(const desk_config_t *cfg)
{
    desk_events_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->cfg = cfg;
    pthread_mutex_init(&self->lock, NULL);
    self->streams_gauge = wasl_gauge("wasl_desk_streams", "Open event streams", NULL);
    self->overflow_total = wasl_counter("wasl_desk_streams_overflow_total",
                                        "Streams ended because the page fell behind", NULL);
    self->ended_total =
        wasl_counter("wasl_desk_streams_session_gone_total",
                     "Streams ended because their session had ended elsewhere", NULL);
    self->redis = wasl_redis_new(cfg->redis_url, (int)cfg->redis_timeout_ms);
    self->reconnects_total = wasl_counter("wasl_desk_listen_reconnects_total",
                                          "LISTEN connections made again (each a resync)", NULL);
    if (!self->redis || pipe(self->wake) != 0 ||
        pthread_create(&self->thread, NULL, listen_main, self) != 0) {
        wasl_error("desk: cannot start the LISTEN thread", "{s:s}", "error", strerror(errno));
        wasl_redis_destroy(&self->redis);
        pthread_mutex_destroy(&self->lock);
        free(self);
        return NULL;
    }
    self->started = true;
    return self;
}

void desk_events_stop(desk_events_t *self)
{
    if (!self) {
        return;
    }
    pthread_mutex_lock(&self->lock);
    bool first = !self->stopping;
    self->stopping = true;
    pthread_mutex_unlock(&self->lock);
    close_where(self, any, NULL);
    if (first && self->started) {
        ssize_t w = write(self->wake[1], "x", 1);
        (void)w;
        pthread_join(self->thread, NULL);
        self->started = false;
    }
}

void desk_events_destroy(desk_events_t **self_p)
{
    desk_events_t *self = *self_p;
    if (!self) {
        return;
    }
    desk_events_stop(self);
    close(self->wake[0]);
    close(self->wake[1]);
    wasl_redis_destroy(&self->redis);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

bool desk_events_ready(desk_events_t *self, char *why, size_t cap)
{
    pthread_mutex_lock(&self->lock);
    bool ok = self->listening;
    pthread_mutex_unlock(&self->lock);
    if (!ok) {
        snprintf(why, cap, "not listening on PostgreSQL's %s channel", CHANNEL);
    }
    return ok;
}
