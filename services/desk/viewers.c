/* viewers — who else is on a ticket, live (see viewers.h). */
#include "viewers.h"
#include "tickets.h"
#include "wasl_log.h"
#include "wasl_metrics.h"
#include "wasl_session.h"
#include "wasl_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REF_DIGITS  10
#define KEY_PREFIX  "wasl:desk:vw:"
#define KEY_BUF     (sizeof KEY_PREFIX + REF_DIGITS)
#define NUM_BUF     24
#define PAYLOAD_MAX 7900 /* NOTIFY's payload limit is 8000 bytes */
#define STATE_BUF   16

/* One script for the three operations, so that pruning, the decision and the write are one
 * atomic step whatever other desk instances do at the same time.
 *   KEYS[1]  the ticket's hash: agent → "<expiry ms> <state> <name>"
 *   ARGV     mode ("put" | "del" | "read"), agent ("" to read), now ms,
 *            and for put: state, expiry ms, max viewers, name, the key's TTL in ms.
 * Every entry whose expiry has passed is deleted first (a page closed without saying so).
 * Returns {changed (1 | 0, or -1: full), {agents pruned or removed}, {agent, value, …}}: the
 * live entries after the operation, the caller's included after a put. */
static const char SCRIPT[] =
    "local key, mode, me, now = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
    "local all = redis.call('HGETALL', key)\n"
    "local gone, live, had, others = {}, {}, false, 0\n"
    "for i = 1, #all, 2 do\n"
    "  local x, s = string.match(all[i + 1], '^(%d+) (%l+) ')\n"
    "  if not x or tonumber(x) <= now then\n"
    "    redis.call('HDEL', key, all[i])\n"
    "    gone[#gone + 1] = all[i]\n"
    "  elseif all[i] == me then\n"
    "    had = s\n"
    "  else\n"
    "    others = others + 1\n"
    "    live[#live + 1] = all[i]\n"
    "    live[#live + 1] = all[i + 1]\n"
    "  end\n"
    "end\n"
    "local changed = #gone > 0 and 1 or 0\n"
    "if mode == 'put' then\n"
    "  if not had and others >= tonumber(ARGV[6]) then return {-1, gone, live} end\n"
    "  local v = ARGV[5] .. ' ' .. ARGV[4] .. ' ' .. ARGV[7]\n"
    "  redis.call('HSET', key, me, v)\n"
    "  redis.call('PEXPIRE', key, ARGV[8])\n"
    "  if had ~= ARGV[4] then changed = 1 end\n"
    "  live[#live + 1] = me\n"
    "  live[#live + 1] = v\n"
    "elseif mode == 'del' and had then\n"
    "  redis.call('HDEL', key, me)\n"
    "  gone[#gone + 1] = me\n"
    "  changed = 1\n"
    "end\n"
    "return {changed, gone, live}\n";

/* What the script answered. */
typedef struct {
    int changed;  /* 1, 0, -1 full */
    json_t *gone; /* array of agent ids */
    json_t *live; /* array of {agent, name, state}, sorted by agent */
} viewers_t;

static void viewers_clear(viewers_t *v)
{
    json_decref(v->gone);
    json_decref(v->live);
    *v = (viewers_t){0};
}

static int by_agent(const void *a, const void *b)
{
    const json_t *const *x = a, *const *y = b;
    return strcmp(json_string_value(json_object_get(*x, "agent")),
                  json_string_value(json_object_get(*y, "agent")));
}

/* {agent, name, state} from a field and its "<expiry> <state> <name>" value; NULL if malformed. */
static json_t *entry_json(const redisReply *field, const redisReply *value)
{
    if (field->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING) {
        return NULL;
    }
    const char *sp1 = memchr(value->str, ' ', value->len);
    const char *sp2 =
        sp1 ? memchr(sp1 + 1, ' ', value->len - (size_t)(sp1 + 1 - value->str)) : NULL;
    if (!sp2 || sp2 - sp1 - 1 >= STATE_BUF) {
        return NULL;
    }
    const char *name = sp2 + 1;
    size_t name_len = value->len - (size_t)(name - value->str);
    return json_pack("{s:s%, s:s%, s:s%}", "agent", field->str, field->len, "name", name,
                     wasl_utf8_valid(name, name_len, false) ? name_len : 0, "state", sp1 + 1,
                     (size_t)(sp2 - sp1 - 1));
}

/* Parses the script's answer into *out. 0, or -1 (logged). */
static int parse_answer(const redisReply *r, viewers_t *out)
{
    *out = (viewers_t){0};
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_ARRAY ||
        r->element[2]->type != REDIS_REPLY_ARRAY || r->element[2]->elements % 2 != 0) {
        wasl_warn("desk: viewers: unexpected answer from redis", NULL);
        return -1;
    }
    out->changed = (int)r->element[0]->integer;
    out->gone = json_array();
    out->live = json_array();
    const redisReply *gone = r->element[1], *live = r->element[2];
    for (size_t i = 0; i < gone->elements; i++) {
        if (gone->element[i]->type == REDIS_REPLY_STRING) {
            json_array_append_new(out->gone,
                                  json_stringn(gone->element[i]->str, gone->element[i]->len));
        }
    }
    size_t n = live->elements / 2;
    json_t **items = calloc(n ? n : 1, sizeof *items);
    size_t k = 0;
    for (size_t i = 0; items && i < n; i++) {
        json_t *e = entry_json(live->element[2 * i], live->element[2 * i + 1]);
        if (e) {
            items[k++] = e;
        }
    }
    qsort(items, k, sizeof *items, by_agent);
    for (size_t i = 0; i < k; i++) {
        json_array_append_new(out->live, items[i]);
    }
    free(items);
    return 0;
}

typedef struct {
    const char *mode;  /* put, del, read */
    const char *agent; /* "" for read */
    const char *state; /* put */
    const char *name;  /* put */
} op_t;

/* Runs one operation on `ref`'s set. 0 with *out filled, or -1 (Redis cannot answer; logged). */
static int run_op(wasl_redis_t *redis, const desk_config_t *cfg, const char *ref, const op_t *op,
                  viewers_t *out)
{
    char key[KEY_BUF], now[NUM_BUF], expiry[NUM_BUF], max[NUM_BUF], ttl[NUM_BUF];
    snprintf(key, sizeof key, KEY_PREFIX "%s", ref);
    int64_t t = desk_wall_ms();
    snprintf(now, sizeof now, "%lld", (long long)t);
    snprintf(expiry, sizeof expiry, "%lld", (long long)(t + cfg->viewing_ttl_s * 1000));
    snprintf(max, sizeof max, "%ld", cfg->viewers_max);
    /* The key outlives its newest entry a little, so that a late read still sees and prunes. */
    snprintf(ttl, sizeof ttl, "%lld", (long long)(cfg->viewing_ttl_s * 1000 * 2));
    const char *argv[] = {"EVAL",
                          SCRIPT,
                          "1",
                          key,
                          op->mode,
                          op->agent,
                          now,
                          op->state ? op->state : "",
                          expiry,
                          max,
                          op->name ? op->name : "",
                          ttl};
    enum { ARGC = sizeof argv / sizeof argv[0] };
    size_t lens[ARGC];
    for (size_t i = 0; i < ARGC; i++) {
        lens[i] = strlen(argv[i]);
    }
    redisReply *r = wasl_redis_cmdargv(redis, ARGC, argv, lens);
    int rc = r && r->type != REDIS_REPLY_ERROR ? parse_answer(r, out) : -1;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        wasl_warn("desk: viewers: redis failed", "{s:s, s:s}", "op", op->mode, "error",
                  r ? r->str : wasl_redis_error(redis));
    }
    freeReplyObject(r);
    return rc;
}

/* The entries of `live` but `agent`'s (new reference). */
static json_t *others(const json_t *live, const char *agent)
{
    json_t *list = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(live, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "agent")), agent) != 0) {
            json_array_append(list, e);
        }
    }
    return list;
}

/* The set of `ref` changed: {"t":"viewers","ref":…,"left":[…]} on the desk's channel, heard by
 * every desk instance (this one included) through its LISTEN. Ids only, no names. */
static void announce(desk_req_t *req, const char *ref, const json_t *gone)
{
    json_t *doc = json_pack("{s:s, s:s}", "t", "viewers", "ref", ref);
    if (json_array_size(gone) > 0) {
        json_object_set(doc, "left", (json_t *)gone);
    }
    char *payload = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!payload || strlen(payload) > PAYLOAD_MAX) {
        free(payload);
        return;
    }
    const char *p[] = {DESK_EVENTS_CHANNEL, payload};
    PGresult *res = wasl_pg_query(req->db->pg, "SELECT pg_notify($1, $2)", 2, p);
    if (!res) {
        wasl_warn("desk: viewers: cannot notify", "{s:s}", "ticket", ref);
    }
    PQclear(res);
    free(payload);
    wasl_counter_inc(wasl_counter("wasl_desk_viewers_changes_total",
                                  "Changes of a ticket's viewers announced", NULL));
}

/* The path's reference followed by exactly /viewing. 0, or -1 with a 400/404. */
static int viewing_ref(const desk_req_t *req, char ref[REF_DIGITS + 1], desk_reply_t *reply)
{
    size_t digits = strspn(req->path_arg, "0123456789");
    if (digits != REF_DIGITS) {
        desk_error(reply, 400, "invalid_field", "ref", "a ticket reference is 10 digits");
        return -1;
    }
    if (strcmp(req->path_arg + digits, "/viewing") != 0) {
        desk_error(reply, 404, "not_found", NULL, "PUT or DELETE /v1/tickets/{ref}/viewing");
        return -1;
    }
    memcpy(ref, req->path_arg, REF_DIGITS);
    ref[REF_DIGITS] = '\0';
    return 0;
}

static void redis_failed(desk_reply_t *reply)
{
    desk_error(reply, 503, "unavailable", NULL, "viewers cannot be kept right now; retry");
    reply->retry_after_s = 2;
}

/* The caller leaves `ref`'s set (announced when they were in it). 0, or -1: Redis failed. */
static int leave(desk_req_t *req, const char *ref)
{
    op_t op = {.mode = "del", .agent = req->session.agent};
    viewers_t v;
    if (run_op(req->db->redis, req->cfg, ref, &op, &v) < 0) {
        return -1;
    }
    if (v.changed) {
        announce(req, ref, v.gone);
    }
    viewers_clear(&v);
    return 0;
}

/* The state of the body: "viewing" or "replying"; NULL with a 400 naming it. */
static const char *body_state(const desk_req_t *req, desk_reply_t *reply)
{
    json_t *doc = desk_body_json(req, reply);
    if (!doc) {
        return NULL;
    }
    const char *s = json_string_value(json_object_get(doc, "state"));
    const char *state = !s                           ? NULL
                        : strcmp(s, "viewing") == 0  ? "viewing"
                        : strcmp(s, "replying") == 0 ? "replying"
                                                     : NULL;
    json_decref(doc);
    if (!state) {
        desk_error(reply, 400, "invalid_field", "state", "state is \"viewing\" or \"replying\"");
    }
    return state;
}

/* The agent's name from the authorization's row, cut to DESK_VIEWER_NAME_MAX on a UTF-8
 * boundary. */
static void viewer_name(const PGresult *res, char out[DESK_VIEWER_NAME_MAX + 1])
{
    const char *name = PQgetisnull(res, 0, 2) ? "" : PQgetvalue(res, 0, 2);
    size_t n = wasl_utf8_cut(name, strlen(name), DESK_VIEWER_NAME_MAX);
    memcpy(out, name, n);
    out[n] = '\0';
}

void desk_handle_viewing_put(desk_req_t *req, desk_reply_t *reply)
{
    char ref[REF_DIGITS + 1], name[DESK_VIEWER_NAME_MAX + 1];
    const char *state;
    if (viewing_ref(req, ref, reply) < 0 || !(state = body_state(req, reply))) {
        return;
    }
    PGresult *res = desk_ticket_readable(req, ref, reply);
    if (!res) {
        /* Not (or no longer) allowed: nobody should be told they are on it. */
        if (reply->status == 403) {
            leave(req, ref);
        }
        return;
    }
    viewer_name(res, name);
    PQclear(res);
    op_t op = {.mode = "put", .agent = req->session.agent, .state = state, .name = name};
    viewers_t v;
    if (run_op(req->db->redis, req->cfg, ref, &op, &v) < 0) {
        redis_failed(reply);
        return;
    }
    if (v.changed != 0) {
        announce(req, ref, v.gone);
    }
    if (v.changed < 0) {
        desk_error(reply, 409, "too_many_viewers", "ref", "%ld people already have ticket %s open",
                   req->cfg->viewers_max, ref);
    } else {
        reply->status = 200;
        reply->body = json_pack("{s:s, s:s, s:o}", "ticket", ref, "state", state, "viewers",
                                others(v.live, req->session.agent));
    }
    viewers_clear(&v);
}

void desk_handle_viewing_delete(desk_req_t *req, desk_reply_t *reply)
{
    char ref[REF_DIGITS + 1];
    if (viewing_ref(req, ref, reply) < 0) {
        return;
    }
    if (leave(req, ref) < 0) {
        redis_failed(reply);
        return;
    }
    reply->status = 204;
}

json_t *desk_viewers_of_ticket(desk_req_t *req, const char *ref)
{
    op_t op = {.mode = "read", .agent = ""};
    viewers_t v;
    if (run_op(req->db->redis, req->cfg, ref, &op, &v) < 0) {
        return json_array();
    }
    if (v.changed) {
        announce(req, ref, v.gone);
    }
    json_t *list = others(v.live, req->session.agent);
    viewers_clear(&v);
    return list;
}

/* ---- the LISTEN thread's part ------------------------------------------------------------ */

static bool listed(const json_t *list, const char *agent)
{
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        const char *a = json_is_string(e) ? json_string_value(e)
                                          : json_string_value(json_object_get(e, "agent"));
        if (a && strcmp(a, agent) == 0) {
            return true;
        }
    }
    return false;
}

/* `agent` gets {ref, viewers: everyone in `live` but itself}. */
static void tell(desk_events_t *hub, const char *ref, const json_t *live, const char *agent)
{
    json_t *data = json_pack("{s:s, s:o}", "ref", ref, "viewers", others(live, agent));
    desk_events_publish_own(hub, agent, "viewers", data);
    json_decref(data);
}

void desk_viewers_heard(desk_events_t *hub, wasl_redis_t *redis, const desk_config_t *cfg,
                        const json_t *payload)
{
    const char *ref = json_string_value(json_object_get(payload, "ref"));
    if (!ref || strlen(ref) != REF_DIGITS || strspn(ref, "0123456789") != REF_DIGITS) {
        return;
    }
    op_t op = {.mode = "read", .agent = ""};
    viewers_t v;
    if (run_op(redis, cfg, ref, &op, &v) < 0) {
        return;
    }
    json_t *told = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(v.live, i, e)
    {
        const char *agent = json_string_value(json_object_get(e, "agent"));
        tell(hub, ref, v.live, agent);
        json_array_append_new(told, json_string(agent));
    }
    /* Those who just left (or were found expired, here or by the desk that announced it). */
    const json_t *left[] = {json_object_get(payload, "left"), v.gone};
    for (size_t k = 0; k < 2; k++) {
        json_array_foreach(left[k], i, e)
        {
            const char *agent = json_string_value(e);
            if (agent && strlen(agent) < WASL_SESSION_AGENT_BUF && !listed(told, agent)) {
                tell(hub, ref, v.live, agent);
                json_array_append_new(told, json_string(agent));
            }
        }
    }
    json_decref(told);
    viewers_clear(&v);
}
