/* idempotency — a keyed desk state change happens once (see idempotency.h). */
#include "idempotency.h"
#include "wasl_log.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
/* How long a key counts, and the expired keys each keyed change removes: more than arrive, so
 * the table stays bounded without a sweeper. */
#define KEY_RETENTION_H  "24"
#define KEY_CLEANUP_ROWS "32"
#define FP_HEX_BUF       (2 + 2 * crypto_hash_sha256_BYTES + 1)

int desk_idempotency_key(const desk_req_t *req, const char **key, desk_reply_t *reply)
{
    *key = desk_header(req, DESK_IDEMPOTENCY_HEADER);
    if (!*key) {
        return 0;
    }
    size_t len = strlen(*key);
    if (len == 0 || len > DESK_IDEMPOTENCY_KEY_MAX || strspn(*key, KEY_CHARS) != len) {
        desk_error(reply, 400, "invalid_idempotency_key", DESK_IDEMPOTENCY_HEADER,
                   "an idempotency key is 1..%d of A-Z a-z 0-9 . _ : -", DESK_IDEMPOTENCY_KEY_MAX);
        return -1;
    }
    return 0;
}

/* The request as the change sees it (its validated fields, not the bytes of the body), so that a
 * retry that re-encodes its JSON still matches: "\x<hex>" for a bytea parameter. */
static void fingerprint(const char *const *fields, size_t n, char out[FP_HEX_BUF])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    for (size_t i = 0; i < n; i++) {
        /* Length-prefixed, with absent distinct from empty: no two requests share an input. */
        unsigned long long len = fields[i] ? strlen(fields[i]) : ~0ULL;
        crypto_hash_sha256_update(&st, (const unsigned char *)&len, sizeof len);
        if (fields[i]) {
            crypto_hash_sha256_update(&st, (const unsigned char *)fields[i], strlen(fields[i]));
        }
    }
    crypto_hash_sha256_final(&st, digest);
    memcpy(out, "\\x", 2);
    sodium_bin2hex(out + 2, FP_HEX_BUF - 2, digest, sizeof digest);
}

/* Claims (owner, key) in the open transaction. 0: the key is new, the change runs. 1: `reply` is
 * the committed first reply. -1: a refusal (422) or a database error in reply. A concurrent
 * request with the same key waits on the INSERT until the first commits (then it replays) or
 * rolls back (then it runs). */
static int claim(desk_req_t *req, const char *key, const char *fp, desk_reply_t *reply)
{
    wasl_pg_t *pg = req->db->pg;
    const char *owner = req->principal.key_owner;
    const char *expiry[] = {owner, key, KEY_RETENTION_H};
    PGresult *res = wasl_pg_query(pg,
                                  "DELETE FROM desk_idempotency"
                                  " WHERE client_id = $1 AND key = $2"
                                  "   AND created_at < now() - make_interval(hours => $3::int)",
                                  3, expiry);
    bool ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    const char *p[] = {owner, key, fp};
    res = ok ? wasl_pg_query(pg,
                             "INSERT INTO desk_idempotency (client_id, key, fingerprint)"
                             "     VALUES ($1, $2, $3::bytea)"
                             " ON CONFLICT (client_id, key) DO NOTHING"
                             " RETURNING 1",
                             3, p)
             : NULL;
    if (!wasl_pg_arity(res, 1, "desk idempotency claim")) {
        PQclear(res);
        desk_db_failed(reply, "idempotency claim");
        return -1;
    }
    int fresh = PQntuples(res);
    PQclear(res);
    if (fresh) {
        return 0;
    }
    enum { K_SAME, K_STATUS, K_REPLY, K_NCOLS };
    res = wasl_pg_query(pg,
                        "SELECT fingerprint = $3::bytea, status, reply::text"
                        "  FROM desk_idempotency"
                        " WHERE client_id = $1 AND key = $2",
                        3, p);
    int rc = -1;
    if (!wasl_pg_arity(res, K_NCOLS, "desk idempotency key") || PQntuples(res) != 1 ||
        PQgetisnull(res, 0, K_STATUS)) {
        /* A committed row always has its reply (one transaction writes both). */
        desk_db_failed(reply, "idempotency key");
    } else if (strcmp(PQgetvalue(res, 0, K_SAME), "t") != 0) {
        desk_error(reply, 422, "idempotency_key_reused", DESK_IDEMPOTENCY_HEADER,
                   "this key was used for a different request");
    } else {
        reply->status = (unsigned)atoi(PQgetvalue(res, 0, K_STATUS));
        reply->body = json_loads(PQgetvalue(res, 0, K_REPLY), JSON_DECODE_ANY, NULL);
        rc = reply->body ? 1 : -1;
    }
    PQclear(res);
    return rc;
}

/* Keeps the reply of a keyed change in its transaction, and removes a few expired keys. */
static int record(desk_req_t *req, const char *key, const desk_reply_t *reply)
{
    char status[8];
    snprintf(status, sizeof status, "%u", reply->status);
    char *body = json_dumps(reply->body, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!body) {
        return -1;
    }
    const char *p[] = {req->principal.key_owner, key, status, body};
    PGresult *res = wasl_pg_query(req->db->pg,
                                  "UPDATE desk_idempotency"
                                  "   SET status = $3::smallint, reply = $4::json"
                                  " WHERE client_id = $1 AND key = $2",
                                  4, p);
    free(body);
    bool ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    const char *q[] = {KEY_RETENTION_H, KEY_CLEANUP_ROWS};
    // clang-format off
    res = ok ? wasl_pg_query(req->db->pg,
        "DELETE FROM desk_idempotency d"
        " USING (SELECT client_id, key"
        "          FROM desk_idempotency"
        "         WHERE created_at < now() - make_interval(hours => $1::int)"
        "         ORDER BY created_at"
        "         LIMIT $2::int"
        "           FOR UPDATE SKIP LOCKED) old"
        " WHERE d.client_id = old.client_id AND d.key = old.key",
        2, q) : NULL;
    // clang-format on
    ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    return ok ? 0 : -1;
}

/* In the transaction: the claim, the change, the record. 0 to commit, -1 to roll back. */
static int keyed(desk_req_t *req, const char *key, const char *fp, desk_txn_fn *txn, void *arg,
                 desk_reply_t *reply)
{
    int claimed = claim(req, key, fp, reply);
    if (claimed != 0) {
        return claimed > 0 ? 0 : -1; /* a replay commits nothing new */
    }
    if (txn(req, arg, reply) < 0) {
        return -1;
    }
    if (record(req, key, reply) < 0) {
        desk_db_failed(reply, "idempotency record");
        return -1;
    }
    return 0;
}

int desk_idempotency_run(desk_req_t *req, const char *const *fields, size_t n, desk_txn_fn *txn,
                         void *arg, desk_reply_t *reply)
{
    const char *key;
    if (desk_idempotency_key(req, &key, reply) < 0) {
        return -1;
    }
    char fp[FP_HEX_BUF];
    if (key) {
        fingerprint(fields, n, fp);
    }
    if (wasl_pg_begin(req->db->pg) < 0) {
        desk_db_failed(reply, "begin");
        return -1;
    }
    int rc = key ? keyed(req, key, fp, txn, arg, reply) : txn(req, arg, reply);
    if (rc < 0) {
        wasl_pg_rollback(req->db->pg);
        return -1;
    }
    if (wasl_pg_commit(req->db->pg) < 0) {
        desk_db_failed(reply, "commit");
        return -1;
    }
    return 0;
}
