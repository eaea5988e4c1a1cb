/* inbound — POST /v1/email/inbound: a raw message, measured, parsed, and threaded only by one of
 * our Message-IDs or for an authenticated participant. */
#include "authres.h"
#include "email.h"
#include "handlers.h"
#include "wasl_log.h"
#include "wasl_metrics.h"
#include "wasl_ref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char **thread_ids; /* Message-IDs from In-Reply-To and References */
    size_t nthread_ids;
    char **refs; /* ticket references found in the subject */
    size_t nrefs;
    bool sender_authenticated; /* a trusted MTA authenticated the From domain (authres.h) */
} email_arg_t;

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(list[i]);
    }
    free(list);
}

static void email_arg_free(void *p)
{
    email_arg_t *a = p;
    if (a) {
        free_list(a->thread_ids, a->nthread_ids);
        free_list(a->refs, a->nrefs);
        free(a);
    }
}

static json_t *email_reply(const char *ref, const char *status, bool duplicate)
{
    return json_pack("{s:s, s:s, s:b}", "ticket", ref, "status", status, "duplicate", duplicate);
}

/* Prepared on each writer's connection (intake_inbound_prepare): planned once, not per mail. */
#define CANDIDATES_STMT  "intake_email_candidates"
#define PARTICIPANT_STMT "intake_email_participant"

/* A capability is a Message-ID nobody outside the conversation can know: ours
 * ("wasl.n<id>.<32 random hex>@…", see the notifier and migration 0007; the older
 * "wasl.n<id>@…" were sequential and no longer count) or one we received on the ticket,
 * chosen by the sender's mail program (never our "sha256:" stand-in, computed from content).
 * A From address is not a secret and is trivially forged, so being a participant counts
 * only when a trusted MTA authenticated the From domain. */
static const char *const candidates_sql =
    "WITH c AS ("
    "  SELECT m.ticket_id AS id, 0 AS rank,"
    "    (m.direction = 'out' AND m.message_id ~ '^wasl\\.n[0-9]+\\.[0-9a-f]{32}@')"
    "    OR (m.direction = 'in' AND m.message_id NOT LIKE 'sha256:%') AS ours"
    "  FROM messages m WHERE m.message_id = ANY($1::text[])"
    "  UNION ALL SELECT id, 1, false FROM tickets WHERE ref = ANY($2::text[])"
    ") SELECT t.id, t.ref, bool_or(c.ours),"
    /* A participant: the beneficiary, or an address on file for the ticket. */
    "  lower(t.from_email) = $3 OR EXISTS (SELECT 1 FROM ticket_participants p"
    "   WHERE p.ticket_id = t.id AND p.kind = 'email' AND p.address = $3)"
    " FROM c JOIN tickets t ON t.id = c.id"
    " GROUP BY t.id, t.ref ORDER BY min(c.rank), t.id DESC";

static const char *const participant_sql =
    "INSERT INTO ticket_participants (ticket_id, kind, address)"
    " VALUES ($1, 'email', lower($2)) ON CONFLICT DO NOTHING";

int intake_inbound_prepare(wasl_pg_t *pg)
{
    return wasl_pg_prepare(pg, CANDIDATES_STMT, candidates_sql) < 0 ||
                   wasl_pg_prepare(pg, PARTICIPANT_STMT, participant_sql) < 0 ||
                   intake_contact_prepare(pg) < 0
               ? -1
               : 0;
}

/* The tickets this message may belong to, in this order: those holding a message the headers
 * name, then those the subject names; per ticket (id, ref): whether the reply carries one of
 * its Message-IDs that works as a capability, and whether the sender is a participant on file.
 * NULL on a database or allocation error. */
static PGresult *email_candidates(wasl_pg_t *pg, const email_arg_t *a, const intake_contact_t *c)
{
    char *ids = wasl_pg_text_array((const char *const *)a->thread_ids, a->nthread_ids);
    char *refs = wasl_pg_text_array((const char *const *)a->refs, a->nrefs);
    if (!ids || !refs) {
        free(ids);
        free(refs);
        return NULL;
    }
    const char *cand[] = {ids, refs, c->from_email};
    PGresult *res = wasl_pg_exec(pg, CANDIDATES_STMT, 3, cand);
    free(ids);
    free(refs);
    return res;
}

/* Threads the message onto the first candidate it may join: one it holds a capability for,
 * or one whose participant a trusted MTA authenticated as the sender. Returns 1 (threaded, or
 * failed: *rc says), or 0 when it may join none. */
static int email_thread(wasl_pg_t *pg, const email_arg_t *a, intake_contact_t *c,
                        const PGresult *res, intake_reply_t *reply, int *rc)
{
    for (int r = 0; r < PQntuples(res); r++) {
        bool ours = PQgetvalue(res, r, 2)[0] == 't';
        bool participant = PQgetvalue(res, r, 3)[0] == 't';
        if (ours || (participant && a->sender_authenticated)) {
            if (c->headers) {
                json_object_set_new(c->headers, "threaded_by",
                                    json_string(ours ? "message_id" : "authenticated_participant"));
            }
            *rc = intake_append_message(pg, PQgetvalue(res, r, 0), c, c->message_id);
            if (*rc == 0) {
                reply->status = 200;
                reply->body = email_reply(PQgetvalue(res, r, 1), "threaded", false);
            }
            return 1;
        }
    }
    return 0;
}

/* Opens a new ticket for the message; the beneficiary's address becomes a participant on file
 * (an auto-reply's or a bounce's sender is not one). Returns 0, -1 or INTAKE_TXN_RETRY. */
static int email_new_ticket(intake_writer_t *w, wasl_pg_t *pg, intake_contact_t *c,
                            intake_reply_t *reply)
{
    intake_ticket_t t;
    int rc = intake_writer_create(w, c, 1, &t);
    if (rc < 0) {
        return rc;
    }
    if (t.created && c->from_email && !c->auto_submitted) {
        char id[24];
        snprintf(id, sizeof id, "%lld", (long long)t.ticket_id);
        const char *pp[] = {id, c->from_email};
        PGresult *p = wasl_pg_exec(pg, PARTICIPANT_STMT, 2, pp);
        if (!p) {
            return -1;
        }
        PQclear(p);
    }
    reply->status = t.created ? 201 : 200;
    reply->body = email_reply(t.ref, c->auto_submitted ? "recorded" : "received", !t.created);
    return 0;
}

static int email_txn(intake_job_t *job, intake_writer_t *w, wasl_pg_t *pg, intake_reply_t *reply)
{
    email_arg_t *a = job->arg;
    intake_contact_t *c = &job->contact;
    char ref[16];
    int known = intake_inbound_ticket(pg, "email", c->message_id, c->client_id, ref);
    if (known != 0) {
        if (known > 0) {
            reply->status = 200;
            reply->body = email_reply(ref, "received", true);
        }
        return known > 0 ? 0 : -1;
    }
    if (a->nthread_ids == 0 && a->nrefs == 0) {
        /* Nothing names a ticket (a first mail): no candidate to look for — one statement and
         * its round trip less on the commonest mail. */
        return email_new_ticket(w, pg, c, reply);
    }
    PGresult *res = email_candidates(pg, a, c);
    if (!res) {
        return -1;
    }
    int rc = 0;
    if (email_thread(pg, a, c, res, reply, &rc)) {
        PQclear(res);
        return rc;
    }
    /* Named tickets this message may not join: a new ticket that only mentions the claim, for
     * an agent to link by hand if it is genuine. */
    if (PQntuples(res) > 0 && intake_strset(&c->claimed_ref, PQgetvalue(res, 0, 1)) < 0) {
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return email_new_ticket(w, pg, c, reply);
}

static void collect_ref(const char *ref, void *arg)
{
    email_arg_t *a = arg;
    char **grown = realloc(a->refs, (a->nrefs + 1) * sizeof *grown);
    if (grown) {
        a->refs = grown;
        char *copy = strdup(ref);
        if (copy) {
            a->refs[a->nrefs++] = copy;
        }
    }
}

/* The value of one limit, for the answer. */
static size_t limit_value(const intake_email_limits_t *limits, intake_email_limit_t which)
{
    switch (which) {
    case INTAKE_EMAIL_OVER_PARTS:
        return limits->max_parts;
    case INTAKE_EMAIL_OVER_DEPTH:
        return limits->max_depth;
    case INTAKE_EMAIL_OVER_HEADERS:
        return limits->max_headers;
    case INTAKE_EMAIL_OVER_HEADER_BYTES:
        return limits->max_header_bytes;
    case INTAKE_EMAIL_OVER_DECODED_BYTES:
        return limits->max_decoded_bytes;
    case INTAKE_EMAIL_FITS:
    case INTAKE_EMAIL_NO_MEMORY:
        break;
    }
    return 0;
}

/* Measures the raw message before GMime builds anything (see intake_email_prescan). Over a
 * limit, the message is refused for good — 422 naming the limit, which wasl-mailgate turns into
 * exit 65 so that the MTA bounces it instead of redelivering — and the refusal is recorded as a
 * warning line and wasl_intake_email_rejected_total{limit}: who sent it, how big, which limit;
 * never the content. Returns true when `reply` holds the refusal. */
static bool refuse_over_limits(const intake_request_t *req, const intake_email_limits_t *limits,
                               intake_reply_t *reply)
{
    intake_email_shape_t shape;
    char err[256] = "";
    intake_email_limit_t over =
        intake_email_prescan(req->body, req->len, limits, &shape, err, sizeof err);
    if (over == INTAKE_EMAIL_FITS) {
        return false;
    }
    if (over == INTAKE_EMAIL_NO_MEMORY) {
        intake_error(reply, 503, "unavailable", NULL, "out of memory; retry");
        reply->retry_after_s = 2;
        return true;
    }
    const char *name = intake_email_limit_name(over);
    char label[64];
    snprintf(label, sizeof label, "limit=\"%s\"", name);
    wasl_counter_inc(wasl_counter("wasl_intake_email_rejected_total",
                                  "Emails refused for good before parsing, by the limit exceeded",
                                  label));
    wasl_warn("email rejected", "{s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "client", req->client.id,
              "limit", name, "reason", err, "bytes", (json_int_t)req->len, "parts_seen",
              (json_int_t)shape.parts, "depth_seen", (json_int_t)shape.depth, "headers_seen",
              (json_int_t)shape.headers);
    intake_error(reply, 422, "limit_exceeded", "message", "%s", err);
    json_t *error = json_object_get(reply->body, "error");
    if (error) {
        json_object_set_new(error, "limit", json_string(name));
        json_object_set_new(error, "max", json_integer((json_int_t)limit_value(limits, over)));
    }
    return true;
}

/* On a parse thread: measures the message against the limits, parses it (GMime) and makes its
 * transaction. */
static void email_parse(intake_request_t *req, intake_reply_t *reply)
{
    static const intake_email_limits_t limits = INTAKE_EMAIL_LIMITS_DEFAULT;
    char err[256] = "";
    if (refuse_over_limits(req, &limits, reply)) {
        return;
    }
    intake_email_t *mail = intake_email_parse(req->body, req->len, &limits, err, sizeof err);
    if (!mail) {
        if (strcmp(err, "out of memory") == 0) {
            /* Our trouble, not the message's: the gateway must retry, not bounce. */
            intake_error(reply, 503, "unavailable", NULL, "out of memory; retry");
            reply->retry_after_s = 2;
        } else {
            intake_error(reply, 400, "invalid_field", "message", "%s", err);
        }
        return;
    }
    intake_job_t *job =
        intake_txn_job(req, "email", email_txn, sizeof(email_arg_t), email_arg_free, reply);
    if (!job) {
        intake_email_destroy(&mail);
        return;
    }
    email_arg_t *a = job->arg;
    intake_contact_t *c = &job->contact;
    size_t nids = mail->nreferences + (mail->in_reply_to ? 1 : 0);
    a->thread_ids = calloc(nids ? nids : 1, sizeof *a->thread_ids);
    if (!a->thread_ids) {
        goto oom;
    }
    if (mail->in_reply_to && (a->thread_ids[a->nthread_ids] = strdup(mail->in_reply_to))) {
        a->nthread_ids++;
    }
    for (size_t i = 0; i < mail->nreferences; i++) {
        if ((a->thread_ids[a->nthread_ids] = strdup(mail->references[i]))) {
            a->nthread_ids++;
        }
    }
    wasl_ref_find(mail->subject, collect_ref, a);
    if (intake_strset(&c->channel, "email") < 0 ||
        intake_strset(&c->external_id, mail->message_id) < 0 ||
        intake_strset(&c->message_id, mail->message_id) < 0 ||
        intake_strset(&c->client_id, req->client.id) < 0 ||
        intake_strset(&c->subject, mail->subject) < 0 || intake_strset(&c->body, mail->body) < 0 ||
        intake_strset(&c->from_email, mail->from_addr) < 0 ||
        intake_strset(&c->from_name, mail->from_name) < 0 ||
        intake_strset(&c->auto_submitted, mail->auto_submitted) < 0) {
        goto oom;
    }
    c->attachments = intake_email_attachments_json(mail);
    char how[64];
    intake_authres_t auth =
        intake_authres_check((const char *const *)mail->auth_results, mail->nauth_results,
                             req->cfg->email_trusted_authserv, mail->from_addr, how, sizeof how);
    a->sender_authenticated = auth == INTAKE_AUTHRES_PASS;
    /* The sender's Date is kept as said, not trusted as the time of receipt. */
    c->headers =
        json_pack("{s:s?, s:s?, s:I, s:b, s:{s:s, s:s}}", "date", mail->date, "in_reply_to",
                  mail->in_reply_to, "parts", (json_int_t)mail->nparts, "message_id_synthesized",
                  mail->message_id_synthesized, "sender_auth", "verdict",
                  auth == INTAKE_AUTHRES_PASS   ? "pass"
                  : auth == INTAKE_AUTHRES_FAIL ? "fail"
                                                : "none",
                  "how", how);
    intake_email_destroy(&mail);
    req->job = job;
    return;
oom:
    intake_job_release(&job);
    intake_email_destroy(&mail);
    intake_error(reply, 503, "unavailable", NULL, "out of memory");
}

void intake_handle_email(intake_request_t *req, intake_reply_t *reply)
{
    if (strcmp(req->content_type, "message/rfc822") != 0) {
        intake_error(reply, 415, "unsupported_media_type", NULL,
                     "send the raw message with Content-Type: message/rfc822");
        return;
    }
    /* Parsing up to WASL_INTAKE_EMAIL_MAX of MIME takes a while: off the HTTP thread, on the
     * parse pool (the body stays with the request until it completes). */
    req->offload = email_parse;
    req->offload_pool = INTAKE_POOL_PARSE;
}
