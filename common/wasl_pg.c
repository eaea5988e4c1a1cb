/* wasl_pg — a PostgreSQL connection that reconnects, re-prepares its statements and batches.
 *
 * A handle is synchronous and used by one thread at a time (an actor owns it). The design
 * choices (eager preparation with a lazy retry, the reconnection rate limit, the lost-transaction
 * latch, the non-blocking pipeline) are explained where they are implemented. */

/* For program_invocation_short_name, used as the fallback application_name. */
#define _GNU_SOURCE

#include "wasl_pg.h"
#include "wasl_clock.h"
#include "wasl_log.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Applied unless the conninfo sets its own connect_timeout: a blackholed host must not stall a
 * daemon for the kernel's TCP timeout (minutes). */
#define PG_CONNECT_TIMEOUT_S "5"
/* Every string Wasl handles is UTF-8 (Arabic text); the server converts if its encoding differs. */
#define PG_CLIENT_ENCODING "UTF8"
/* Standard SQLSTATEs for failures libpq reports without one (pgjdbc uses the same). */
#define SQLSTATE_CONNECTION_FAILURE "08006"
#define SQLSTATE_CANNOT_CONNECT     "08001"
#define PG_ERROR_MAX                1024
#define PG_STMTS_INITIAL            16

/* A registered statement. `prepared_gen` is the connection generation it was last prepared
 * on; it is prepared on the current connection iff it equals wasl_pg.conn_gen. */
typedef struct {
    char *name;
    char *sql;
    unsigned long prepared_gen;
} pg_stmt_t;

struct wasl_pg {
    char *conninfo;
    bool async_commit;      /* SET synchronous_commit = off on every connection */
    PGconn *conn;           /* NULL when disconnected */
    unsigned long conn_gen; /* incremented on every successful connect */
    pg_stmt_t *stmts;
    size_t nstmts, stmts_cap;
    /* Reconnection rate limit: the end of the last connection attempt. */
    bool attempted;
    int64_t last_attempt_ms;
    unsigned long failed_attempts; /* since the last successful connect */
    /* Set when the connection died inside a transaction; every call but rollback fails until
     * the caller acknowledges it with wasl_pg_rollback(). */
    bool lost_txn;
    char error[PG_ERROR_MAX];
    char connect_error[PG_ERROR_MAX];
    char sqlstate[6];
};

/* Copies a libpq message into dst (cap bytes) as one line: libpq ends messages with a newline
 * and indents continuation lines with tabs, which would break a log line up. */
static void copy_message(char *dst, size_t cap, const char *src)
{
    size_t len = 0;
    bool pending_space = false;
    for (const char *c = src ? src : ""; *c && len + 1 < cap; c++) {
        if (*c == '\n' || *c == '\t' || *c == '\r') {
            pending_space = len > 0;
            continue;
        }
        if (pending_space && len + 2 < cap) {
            dst[len++] = ' ';
        }
        pending_space = false;
        dst[len++] = *c;
    }
    dst[len] = '\0';
}

static void clear_error(wasl_pg_t *self)
{
    self->error[0] = '\0';
    self->sqlstate[0] = '\0';
}

static void set_error(wasl_pg_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(wasl_pg_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->error, sizeof self->error, fmt, ap);
    va_end(ap);
    self->sqlstate[0] = '\0';
}

/* Records the error of a failed result (or of the connection when res is NULL or carries no
 * message). Only the primary message is kept: DETAIL lines quote row values, which may be
 * personal data and must not reach the logs. */
static void set_error_from(wasl_pg_t *self, const PGresult *res)
{
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (self->conn && PQstatus(self->conn) == CONNECTION_BAD && *PQerrorMessage(self->conn)) {
        /* It holds the server's FATAL message too, which the result has lost. */
        copy_message(self->error, sizeof self->error, PQerrorMessage(self->conn));
    } else if (primary && *primary) {
        copy_message(self->error, sizeof self->error, primary);
    } else if (res && *PQresultErrorMessage(res)) {
        copy_message(self->error, sizeof self->error, PQresultErrorMessage(res));
    } else if (self->conn && *PQerrorMessage(self->conn)) {
        copy_message(self->error, sizeof self->error, PQerrorMessage(self->conn));
    } else {
        copy_message(self->error, sizeof self->error, "unknown libpq error");
    }
    /* A lost connection carries no SQLSTATE; report connection_failure, as pgjdbc does. */
    if ((!state || !*state) && self->conn && PQstatus(self->conn) == CONNECTION_BAD) {
        state = SQLSTATE_CONNECTION_FAILURE;
    }
    snprintf(self->sqlstate, sizeof self->sqlstate, "%s", state ? state : "");
}

/* Prefixes the recorded error with "<where> (<what>): ", keeping its SQLSTATE. */
static void prefix_error(wasl_pg_t *self, const char *where, const char *what)
{
    char message[PG_ERROR_MAX], state[sizeof self->sqlstate];
    memcpy(message, self->error, sizeof message);
    memcpy(state, self->sqlstate, sizeof state);
    set_error(self, "%s (%s): %s", where, what, message);
    memcpy(self->sqlstate, state, sizeof state);
}

static bool conn_lost(const wasl_pg_t *self)
{
    return self->conn && PQstatus(self->conn) == CONNECTION_BAD;
}

static bool in_transaction(PGTransactionStatusType status)
{
    return status == PQTRANS_INTRANS || status == PQTRANS_INERROR;
}

/* Drops the connection; the next call reconnects (subject to the rate limit). */
static void drop_connection(wasl_pg_t *self)
{
    if (self->conn) {
        PQfinish(self->conn);
        self->conn = NULL;
    }
}

/* After a failed call: when the connection died while a transaction was open (`before`), the
 * transaction is gone, and the caller must learn that before running anything else. */
static void note_failure(wasl_pg_t *self, PGTransactionStatusType before, const char *what)
{
    bool lost = conn_lost(self);
    if (lost && in_transaction(before)) {
        self->lost_txn = true;
    }
    wasl_warn(lost ? "pg: connection lost" : "pg: statement failed", "{s:s, s:s, s:s, s:b}", "stmt",
              what, "sqlstate", self->sqlstate, "error", self->error, "in_transaction",
              in_transaction(before));
}

/* Checks a result of PQexec*(): returns it on success; otherwise records and logs the error,
 * clears it and returns NULL. */
static PGresult *check_result(wasl_pg_t *self, PGresult *res, PGTransactionStatusType before,
                              const char *what)
{
    ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
        return res;
    }
    if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
        /* The connection now expects COPY data; dropping it is the simple way back. */
        set_error(self, "COPY is not supported by wasl_pg; use wasl_pg_conn()");
        drop_connection(self);
    } else if (status == PGRES_EMPTY_QUERY) {
        set_error(self, "empty query");
    } else {
        set_error_from(self, res);
    }
    note_failure(self, before, what);
    PQclear(res);
    return NULL;
}

static pg_stmt_t *stmt_find(wasl_pg_t *self, const char *name)
{
    for (size_t i = 0; i < self->nstmts; i++) {
        if (strcmp(self->stmts[i].name, name) == 0) {
            return &self->stmts[i];
        }
    }
    return NULL;
}

/* Prepares stmt on the live connection. 0, or -1 with the error recorded and logged (the
 * connection may have been lost, see conn_lost()). */
static int stmt_prepare(wasl_pg_t *self, pg_stmt_t *stmt)
{
    PGTransactionStatusType before = PQtransactionStatus(self->conn);
    PGresult *res = check_result(self, PQprepare(self->conn, stmt->name, stmt->sql, 0, NULL),
                                 before, stmt->name);
    if (!res) {
        return -1;
    }
    PQclear(res);
    stmt->prepared_gen = self->conn_gen;
    return 0;
}

/* Prepares stmt if this connection does not have it yet (its preparation at connect failed,
 * e.g. because a migration had not created its table yet). 0 or -1. */
static int stmt_ensure_prepared(wasl_pg_t *self, pg_stmt_t *stmt)
{
    if (stmt->prepared_gen == self->conn_gen) {
        return 0;
    }
    return stmt_prepare(self, stmt);
}

/* Opens a connection unless one is live. Connection attempts are spaced by at least
 * WASL_PG_RECONNECT_MS, measured from the end of the previous attempt, so a daemon neither
 * hammers a database that is down nor stalls once per call on connect_timeout.
 *
 * Prepared statements are prepared eagerly here, on every new connection, so that a bad
 * statement shows up at connect time and a batch never has to prepare inside its pipeline.
 * A statement that fails here (its table may not exist yet) is logged and prepared again
 * lazily at its next use. Returns true when connected. */
static bool ensure_connected(wasl_pg_t *self)
{
    if (self->conn && PQstatus(self->conn) == CONNECTION_OK) {
        return true;
    }
    drop_connection(self);
    int64_t now_ms = wasl_clock_ms();
    if (self->attempted && now_ms - self->last_attempt_ms < WASL_PG_RECONNECT_MS) {
        set_error(self, "not connected (next attempt in %lld ms): %s",
                  (long long)(self->last_attempt_ms + WASL_PG_RECONNECT_MS - now_ms),
                  self->connect_error);
        snprintf(self->sqlstate, sizeof self->sqlstate, "%s", SQLSTATE_CANNOT_CONNECT);
        wasl_debug("pg: reconnect deferred", "{s:s}", "error", self->connect_error);
        return false;
    }
    /* Keywords are applied in order, so the conninfo (URL or key=value, expanded from dbname)
     * overrides the defaults placed before it. */
    const char *const keywords[] = {"connect_timeout", "client_encoding",
                                    "fallback_application_name", "dbname", NULL};
    const char *const values[] = {PG_CONNECT_TIMEOUT_S, PG_CLIENT_ENCODING,
                                  program_invocation_short_name, self->conninfo, NULL};
    PGconn *conn = PQconnectdbParams(keywords, values, 1);
    self->attempted = true;
    self->last_attempt_ms = wasl_clock_ms();
    if (!conn) {
        set_error(self, "out of memory allocating a connection");
        goto failed;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        copy_message(self->error, sizeof self->error, PQerrorMessage(conn));
        PQfinish(conn);
        goto failed;
    }
    self->conn = conn;
    self->conn_gen++;
    wasl_info(self->failed_attempts || self->conn_gen > 1 ? "pg: reconnected" : "pg: connected",
              "{s:s, s:s, s:s, s:i, s:i}", "host", PQhost(conn), "port", PQport(conn), "db",
              PQdb(conn), "backend_pid", PQbackendPID(conn), "failed_attempts",
              (int)self->failed_attempts);
    if (self->async_commit) {
        PGresult *res = PQexec(conn, "SET synchronous_commit = off");
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) {
            copy_message(self->error, sizeof self->error, PQerrorMessage(conn));
            goto failed;
        }
    }
    self->failed_attempts = 0;
    self->connect_error[0] = '\0';
    for (size_t i = 0; i < self->nstmts; i++) {
        if (stmt_prepare(self, &self->stmts[i]) != 0 && conn_lost(self)) {
            goto failed;
        }
    }
    return true;

failed:
    drop_connection(self);
    snprintf(self->sqlstate, sizeof self->sqlstate, "%s", SQLSTATE_CANNOT_CONNECT);
    snprintf(self->connect_error, sizeof self->connect_error, "%s", self->error);
    /* One warning per outage, not one per attempt. */
    if (self->failed_attempts++ == 0) {
        wasl_warn("pg: cannot connect", "{s:s}", "error", self->error);
    } else {
        wasl_debug("pg: cannot connect", "{s:s, s:i}", "error", self->error, "failed_attempts",
                   (int)self->failed_attempts);
    }
    return false;
}

/* Every call but rollback starts here: refuses to run after a transaction was lost (the
 * statement would otherwise run outside it, in autocommit), then ensures a connection. */
static bool ready(wasl_pg_t *self)
{
    if (self->lost_txn) {
        set_error(self, "the connection was lost inside a transaction; call wasl_pg_rollback()");
        wasl_warn("pg: call refused", "{s:s}", "error", self->error);
        return false;
    }
    return ensure_connected(self);
}

char *wasl_pg_bigint_array(const int64_t *ids, size_t n)
{
    size_t cap = n * 21 + 3; /* "-9223372036854775808," per id, the braces and the NUL */
    char *s = malloc(cap);
    if (!s) {
        return NULL;
    }
    size_t o = (size_t)snprintf(s, cap, "{");
    for (size_t i = 0; i < n; i++) {
        o += (size_t)snprintf(s + o, cap - o, "%s%lld", i ? "," : "", (long long)ids[i]);
    }
    snprintf(s + o, cap - o, "}");
    return s;
}

char *wasl_pg_text_array(const char *const *items, size_t n)
{
    size_t cap = 3; /* the braces and the NUL */
    for (size_t i = 0; i < n; i++) {
        /* Worst case: every byte escaped, two quotes and a comma ("NULL," when absent). */
        cap += items[i] ? 2 * strlen(items[i]) + 3 : 5;
    }
    char *s = malloc(cap);
    if (!s) {
        return NULL;
    }
    size_t o = 0;
    s[o++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i) {
            s[o++] = ',';
        }
        if (!items[i]) {
            memcpy(s + o, "NULL", 4);
            o += 4;
            continue;
        }
        s[o++] = '"';
        for (const char *c = items[i]; *c; c++) {
            if (*c == '"' || *c == '\\') {
                s[o++] = '\\';
            }
            s[o++] = *c;
        }
        s[o++] = '"';
    }
    s[o++] = '}';
    s[o] = '\0';
    return s;
}

bool wasl_pg_arity(const PGresult *res, int ncols, const char *what)
{
    if (!res) {
        return false;
    }
    if (PQnfields(res) == ncols) {
        return true;
    }
    wasl_error("pg: result has the wrong number of columns", "{s:s, s:i, s:i}", "statement",
               what ? what : "?", "expected", ncols, "got", PQnfields(res));
    return false;
}

void wasl_pg_set_sync_commit(wasl_pg_t *self, bool on)
{
    assert(self);
    self->async_commit = !on;
}

wasl_pg_t *wasl_pg_new(const char *conninfo)
{
    assert(conninfo);
    wasl_pg_t *self = calloc(1, sizeof *self);
    if (!self) {
        goto failed;
    }
    self->conninfo = strdup(conninfo);
    self->stmts = calloc(PG_STMTS_INITIAL, sizeof *self->stmts);
    if (!self->conninfo || !self->stmts) {
        goto failed;
    }
    self->stmts_cap = PG_STMTS_INITIAL;
    return self;

failed:
    wasl_error("pg: out of memory", NULL);
    wasl_pg_destroy(&self);
    return NULL;
}

void wasl_pg_destroy(wasl_pg_t **self_p)
{
    assert(self_p);
    wasl_pg_t *self = *self_p;
    if (!self) {
        return;
    }
    drop_connection(self);
    for (size_t i = 0; i < self->nstmts; i++) {
        free(self->stmts[i].name);
        free(self->stmts[i].sql);
    }
    free(self->stmts);
    free(self->conninfo);
    free(self);
    *self_p = NULL;
}

bool wasl_pg_ok(wasl_pg_t *self)
{
    assert(self);
    clear_error(self);
    return ensure_connected(self);
}

/* Doubles the registry's capacity. 0 or -1 (out of memory; the registry is unchanged). */
static int registry_grow(wasl_pg_t *self)
{
    pg_stmt_t *grown = realloc(self->stmts, 2 * self->stmts_cap * sizeof *grown);
    if (!grown) {
        return -1;
    }
    self->stmts = grown;
    self->stmts_cap *= 2;
    return 0;
}

int wasl_pg_prepare(wasl_pg_t *self, const char *name, const char *sql)
{
    assert(self);
    assert(name && *name);
    assert(sql);
    clear_error(self);
    pg_stmt_t stmt = {NULL, NULL, 0};
    pg_stmt_t *existing = stmt_find(self, name);
    if (existing) {
        if (strcmp(existing->sql, sql) != 0) {
            set_error(self, "statement %s is already registered with other SQL", name);
            wasl_error("pg: cannot register statement", "{s:s, s:s}", "stmt", name, "error",
                       self->error);
            goto failed;
        }
        return 0;
    }
    bool room = self->nstmts < self->stmts_cap || registry_grow(self) == 0;
    stmt.name = room ? strdup(name) : NULL;
    stmt.sql = room ? strdup(sql) : NULL;
    if (!stmt.name || !stmt.sql) {
        set_error(self, "out of memory registering statement %s", name);
        wasl_error("pg: out of memory", "{s:s}", "stmt", name);
        goto failed;
    }
    /* Connect first: a fresh connection prepares the registry, which must not yet include
     * this statement, or bad SQL would be swallowed as a warning. */
    if (ensure_connected(self) && stmt_prepare(self, &stmt) != 0 && !conn_lost(self)) {
        goto failed; /* the server rejected the SQL (logged) */
    }
    /* Disconnected or lost meanwhile: the statement is prepared at the next connect. */
    self->stmts[self->nstmts++] = stmt; /* the registry owns name and sql now */
    return 0;

failed:
    free(stmt.name);
    free(stmt.sql);
    return -1;
}

PGresult *wasl_pg_exec(wasl_pg_t *self, const char *name, int nparams, const char *const *params)
{
    assert(self);
    assert(name);
    assert(nparams >= 0 && (nparams == 0 || params));
    clear_error(self);
    PGresult *res = NULL;
    pg_stmt_t *stmt = stmt_find(self, name);
    if (!stmt) {
        set_error(self, "unknown prepared statement %s", name);
        wasl_error("pg: statement failed", "{s:s, s:s}", "stmt", name, "error", self->error);
        goto done;
    }
    if (!ready(self) || stmt_ensure_prepared(self, stmt) != 0) {
        goto done;
    }
    PGTransactionStatusType before = PQtransactionStatus(self->conn);
    res = check_result(self, PQexecPrepared(self->conn, name, nparams, params, NULL, NULL, 0),
                       before, name);
done:
    return res; /* ownership passes to the caller */
}

PGresult *wasl_pg_query(wasl_pg_t *self, const char *sql, int nparams, const char *const *params)
{
    assert(self);
    assert(sql);
    assert(nparams >= 0 && (nparams == 0 || params));
    clear_error(self);
    PGresult *res = NULL;
    if (!ready(self)) {
        goto done;
    }
    PGTransactionStatusType before = PQtransactionStatus(self->conn);
    res = check_result(self, PQexecParams(self->conn, sql, nparams, NULL, params, NULL, NULL, 0),
                       before, sql);
done:
    return res; /* ownership passes to the caller */
}

int wasl_pg_command(wasl_pg_t *self, const char *sql)
{
    assert(self);
    assert(sql);
    clear_error(self);
    if (!ready(self)) {
        return -1;
    }
    PGTransactionStatusType before = PQtransactionStatus(self->conn);
    PGresult *res = check_result(self, PQexec(self->conn, sql), before, sql);
    if (!res) {
        return -1;
    }
    PQclear(res);
    return 0;
}

int wasl_pg_begin(wasl_pg_t *self)
{
    return wasl_pg_command(self, "BEGIN");
}

/* COMMIT of a transaction that already failed is answered "ROLLBACK" with success status; the
 * caller must see -1, since nothing was committed. A connection lost during COMMIT leaves
 * the outcome unknown, which the error says. */
int wasl_pg_commit(wasl_pg_t *self)
{
    assert(self);
    clear_error(self);
    int rc = -1;
    PGresult *res = NULL;
    if (!ready(self)) {
        goto done;
    }
    PGTransactionStatusType before = PQtransactionStatus(self->conn);
    res = check_result(self, PQexec(self->conn, "COMMIT"), before, "COMMIT");
    if (!res) {
        if (conn_lost(self) && in_transaction(before)) {
            set_error(self, "connection lost during COMMIT; the outcome is unknown");
        }
        goto done;
    }
    if (strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
        set_error(self, "the transaction had failed and was rolled back");
        wasl_warn("pg: commit failed", "{s:s}", "error", self->error);
        goto done;
    }
    rc = 0;
done:
    PQclear(res);
    return rc;
}

int wasl_pg_rollback(wasl_pg_t *self)
{
    assert(self);
    clear_error(self);
    if (self->lost_txn) {
        /* The server discarded the transaction when the connection dropped. */
        self->lost_txn = false;
        return 0;
    }
    if (!self->conn || PQstatus(self->conn) != CONNECTION_OK ||
        !in_transaction(PQtransactionStatus(self->conn))) {
        return 0; /* nothing open: no round trip, no reconnect */
    }
    PGresult *res = check_result(self, PQexec(self->conn, "ROLLBACK"),
                                 PQtransactionStatus(self->conn), "ROLLBACK");
    if (res) {
        PQclear(res);
        return 0;
    }
    if (conn_lost(self)) {
        self->lost_txn = false; /* gone with the connection, as asked */
        return 0;
    }
    return -1;
}

/* Waits for the next result of a pipeline on a non-blocking connection, flushing what is still
 * queued, so that neither side can block on a full socket buffer. Returns the result (NULL at
 * the end of each query's results); sets *io_failed when the connection fails. */
static PGresult *pipeline_next_result(PGconn *conn, bool *io_failed)
{
    for (;;) {
        int pending = PQflush(conn);
        if (pending < 0 || PQstatus(conn) == CONNECTION_BAD) {
            break;
        }
        if (!PQisBusy(conn)) {
            PGresult *res = PQgetResult(conn);
            if (PQstatus(conn) == CONNECTION_BAD) {
                PQclear(res);
                break;
            }
            return res;
        }
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN | (pending ? POLLOUT : 0)};
        if (pfd.fd < 0) {
            break;
        }
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
            break;
        }
        if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) && !PQconsumeInput(conn)) {
            break;
        }
    }
    *io_failed = true;
    return NULL;
}

static bool sent_ok(PGconn *conn, int sent)
{
    return sent == 1 && PQstatus(conn) == CONNECTION_OK;
}

/* Queues BEGIN, the statements and COMMIT, then a sync. Returns true when all was queued. */
static bool pipeline_send(wasl_pg_t *self, const wasl_pg_stmt_t *stmts, size_t n)
{
    PGconn *conn = self->conn;
    if (!sent_ok(conn, PQsendQueryParams(conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0))) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const wasl_pg_stmt_t *s = &stmts[i];
        int sent = s->sql
                       ? PQsendQueryParams(conn, s->sql, s->nparams, NULL, s->params, NULL, NULL, 0)
                       : PQsendQueryPrepared(conn, s->name, s->nparams, s->params, NULL, NULL, 0);
        if (!sent_ok(conn, sent)) {
            return false;
        }
    }
    return sent_ok(conn, PQsendQueryParams(conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0)) &&
           sent_ok(conn, PQpipelineSync(conn));
}

static const char *batch_label(const wasl_pg_stmt_t *stmts, size_t n, size_t slot)
{
    if (slot == 0) {
        return "BEGIN";
    }
    if (slot == n + 1) {
        return "COMMIT";
    }
    const wasl_pg_stmt_t *s = &stmts[slot - 1];
    return s->name ? s->name : "inline SQL";
}

/* Reads the results of every queued query and the sync. Keeps statement results in results[]
 * (when given) and the first failure in the error. Returns 0 when everything succeeded, -1 on
 * an SQL failure, -2 when the connection or the protocol failed before COMMIT was confirmed,
 * and 1 when it failed after (committed, but the connection is unusable). */
static int pipeline_read(wasl_pg_t *self, const wasl_pg_stmt_t *stmts, size_t n, PGresult **results)
{
    bool io_failed = false, sql_failed = false, committed = false;
    for (size_t slot = 0; slot < n + 2; slot++) {
        PGresult *res;
        while ((res = pipeline_next_result(self->conn, &io_failed)) != NULL) {
            ExecStatusType status = PQresultStatus(res);
            if (status == PGRES_PIPELINE_SYNC) {
                PQclear(res); /* a sync before every query was answered: out of step */
                set_error(self, "pipeline out of step at %s", batch_label(stmts, n, slot));
                return -2;
            }
            bool ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
            if (ok && slot == n + 1 && strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
                ok = false;
            }
            if (!ok && !sql_failed) {
                sql_failed = true;
                set_error_from(self, res);
                char where[64];
                if (slot >= 1 && slot <= n) {
                    snprintf(where, sizeof where, "batch statement %zu", slot - 1);
                } else {
                    snprintf(where, sizeof where, "batch");
                }
                prefix_error(self, where, batch_label(stmts, n, slot));
            }
            committed = committed || (ok && slot == n + 1);
            if (ok && results && slot >= 1 && slot <= n) {
                PQclear(results[slot - 1]);
                results[slot - 1] = res; /* handed to the caller on success */
            } else {
                PQclear(res);
            }
        }
        if (io_failed) {
            return committed ? 1 : -2;
        }
    }
    PGresult *sync = pipeline_next_result(self->conn, &io_failed);
    bool synced = PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
    if (io_failed || !synced) {
        return committed ? 1 : -2;
    }
    return sql_failed ? -1 : 0;
}

/* Statements must exist on this connection before the pipeline starts (one may not be yet,
 * see stmt_ensure_prepared); preparing inside it would mix Parse results into the batch's.
 * 0, or -1 with the error set. */
static int batch_prepare(wasl_pg_t *self, const wasl_pg_stmt_t *stmts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert(stmts[i].name || stmts[i].sql);
        assert(stmts[i].nparams >= 0 && (stmts[i].nparams == 0 || stmts[i].params));
        if (stmts[i].sql) {
            continue;
        }
        pg_stmt_t *stmt = stmt_find(self, stmts[i].name);
        if (!stmt) {
            set_error(self, "batch statement %zu: unknown prepared statement %s", i, stmts[i].name);
            wasl_error("pg: batch failed", "{s:s}", "error", self->error);
            return -1;
        }
        if (stmt_ensure_prepared(self, stmt) != 0) {
            return -1;
        }
    }
    return 0;
}

/* After a failed batch: a failure after BEGIN leaves the transaction aborted but open. */
static void batch_rollback(wasl_pg_t *self)
{
    if (PQtransactionStatus(self->conn) == PQTRANS_IDLE) {
        return;
    }
    PGresult *res = PQexec(self->conn, "ROLLBACK");
    bool rolled_back = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!rolled_back) {
        wasl_warn("pg: batch rollback failed", "{s:s}", "error", PQerrorMessage(self->conn));
        drop_connection(self); /* the server rolls back what the connection held */
    }
}

int wasl_pg_batch(wasl_pg_t *self, const wasl_pg_stmt_t *stmts, size_t n, PGresult **results)
{
    assert(self);
    assert(n == 0 || stmts);
    clear_error(self);
    int rc = -1;
    for (size_t i = 0; results && i < n; i++) {
        results[i] = NULL;
    }
    if (n == 0) {
        return 0;
    }
    if (!ready(self)) {
        goto done;
    }
    if (PQtransactionStatus(self->conn) != PQTRANS_IDLE) {
        /* Its COMMIT would commit the caller's transaction: refuse rather than surprise. */
        set_error(self, "wasl_pg_batch inside an open transaction");
        wasl_error("pg: batch refused", "{s:s}", "error", self->error);
        goto done;
    }
    if (batch_prepare(self, stmts, n) != 0) {
        goto done;
    }
    if (PQsetnonblocking(self->conn, 1) != 0 || PQenterPipelineMode(self->conn) != 1) {
        set_error_from(self, NULL);
        goto broken;
    }
    if (!pipeline_send(self, stmts, n)) {
        set_error_from(self, NULL);
        goto broken;
    }
    int read_rc = pipeline_read(self, stmts, n, results);
    if (read_rc == 1) {
        wasl_warn("pg: connection lost after a batch committed", "{s:s}", "error",
                  PQerrorMessage(self->conn));
        drop_connection(self);
        rc = 0;
        goto done;
    }
    if (read_rc == -2) {
        if (!*self->error) {
            set_error_from(self, NULL);
        }
        goto broken;
    }
    if (PQexitPipelineMode(self->conn) != 1 || PQsetnonblocking(self->conn, 0) != 0) {
        set_error_from(self, NULL);
        goto broken;
    }
    if (read_rc == 0) {
        rc = 0;
        goto done;
    }
    wasl_warn("pg: batch failed", "{s:s, s:s, s:i}", "sqlstate", self->sqlstate, "error",
              self->error, "statements", (int)n);
    batch_rollback(self);
    goto done;

broken:
    /* Mid-protocol failure: the connection's state is unknown; a new one is the safe state.
     * The server rolls the transaction back, unless the COMMIT went through before the
     * failure, which nobody can tell from here (as for any COMMIT whose answer is lost). */
    wasl_warn("pg: batch failed, connection dropped", "{s:s, s:i}", "error", self->error,
              "statements", (int)n);
    drop_connection(self);
done:
    if (rc != 0) {
        for (size_t i = 0; results && i < n; i++) {
            PQclear(results[i]);
            results[i] = NULL;
        }
    }
    return rc;
}

const char *wasl_pg_error(const wasl_pg_t *self)
{
    assert(self);
    return self->error;
}

const char *wasl_pg_sqlstate(const wasl_pg_t *self)
{
    assert(self);
    return self->sqlstate;
}

PGconn *wasl_pg_conn(wasl_pg_t *self)
{
    assert(self);
    return self->conn && PQstatus(self->conn) == CONNECTION_OK ? self->conn : NULL;
}
