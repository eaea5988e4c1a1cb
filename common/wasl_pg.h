/* wasl_pg — a PostgreSQL connection that reconnects, re-prepares its statements and batches. */
#ifndef WASL_PG_H
#define WASL_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wasl_pg wasl_pg_t;

/* Returns a handle for `conninfo` (a libpq URL or key=value string, copied). It connects
 * lazily: a database that is down is not an error here. NULL only on allocation failure. */
wasl_pg_t *wasl_pg_new(const char *conninfo);

/* The array literal "{1,2,3}" of `ids`, for a `$n::bigint[]` parameter. A new string the
 * caller frees; NULL when out of memory. */
char *wasl_pg_bigint_array(const int64_t *ids, size_t n);

/* The array literal of `items` for a `$n::text[]` parameter: every element double-quoted, with
 * '"' and '\\' escaped, so any text (commas, braces, spaces, "NULL", Arabic) arrives as
 * itself; a NULL element is SQL NULL. "{}" when n is 0. A new string the caller frees; NULL
 * when out of memory. */
char *wasl_pg_text_array(const char *const *items, size_t n);

/* For code that reads a result's columns by number (name them with an enum): true when `res`
 * has exactly `ncols` columns. Otherwise logs one error naming `what` (the statement, as the
 * reader knows it) with both counts and returns false: the caller fails its call rather than
 * read a shifted or missing column. NULL res: false, not logged (the query's error was). */
bool wasl_pg_arity(const PGresult *res, int ncols, const char *what);

/* Whether commits on this connection wait for the WAL flush (PostgreSQL's synchronous_commit;
 * the server's default, on, unless told otherwise). Off is for work that can be redone: a
 * server crash may undo the last few hundred milliseconds of committed transactions, each one
 * whole. Applies from the next connection: call it before the first use. */
void wasl_pg_set_sync_commit(wasl_pg_t *self, bool on);

/* Closes the connection; safe twice. */
void wasl_pg_destroy(wasl_pg_t **self_p);

/* Ensures a live connection, reconnecting (attempts at least `WASL_PG_RECONNECT_MS` apart,
 * counted from the end of the previous attempt) and re-preparing every registered statement.
 * Returns true when connected.
 *
 * Connection failures report SQLSTATE 08001 (cannot connect) or 08006 (connection lost).
 * A connection lost inside a transaction makes every call but wasl_pg_rollback() fail until
 * the caller rolls back, so that later statements never run in autocommit on a new
 * connection. A connection lost while COMMIT was in flight leaves the outcome unknown. */
bool wasl_pg_ok(wasl_pg_t *self);
#define WASL_PG_RECONNECT_MS 500

/* Registers a statement prepared on this and every later connection. `name` and `sql` are
 * copied. Returns 0, or -1 when it cannot be prepared on a live connection (bad SQL). */
int wasl_pg_prepare(wasl_pg_t *self, const char *name, const char *sql);

/* Runs a registered statement with text parameters (NULL entries are SQL NULL). Returns the
 * result on PGRES_COMMAND_OK/TUPLES_OK, which the caller PQclear()s; NULL on any error, with
 * wasl_pg_error/sqlstate telling why. A connection failure marks the connection for
 * reconnection; the statement is never retried here (the caller owns transaction logic). */
PGresult *wasl_pg_exec(wasl_pg_t *self, const char *name, int nparams, const char *const *params);

/* The same for SQL given inline (parameters $1..$n; never interpolate values into sql). */
PGresult *wasl_pg_query(wasl_pg_t *self, const char *sql, int nparams, const char *const *params);

/* Runs a command that returns no rows ("BEGIN", "COMMIT", DDL…). 0 or -1. */
int wasl_pg_command(wasl_pg_t *self, const char *sql);
int wasl_pg_begin(wasl_pg_t *self);
int wasl_pg_commit(wasl_pg_t *self);
int wasl_pg_rollback(wasl_pg_t *self); /* also safe when no transaction is open */

/* One statement of a batch: a registered statement name, or inline SQL when `sql` is set. */
typedef struct {
    const char *name;
    const char *sql;
    int nparams;
    const char *const *params;
} wasl_pg_stmt_t;

/* Sends n statements in one round trip (libpq pipeline mode) inside one transaction, and
 * commits. Refused (-1) inside a transaction the caller opened, since its COMMIT would commit
 * the caller's work too. results[i] receives each statement's result (the caller PQclear()s them;
 * pass NULL to discard). Returns 0 when all succeeded and the commit did; -1 otherwise, in which
 * case nothing was committed, every results[i] is NULL and wasl_pg_error says which failed. */
int wasl_pg_batch(wasl_pg_t *self, const wasl_pg_stmt_t *stmts, size_t n, PGresult **results);

/* The last error message and SQLSTATE ("" when none). Borrowed; valid until the next call. */
const char *wasl_pg_error(const wasl_pg_t *self);
const char *wasl_pg_sqlstate(const wasl_pg_t *self);

/* The raw connection, for what this helper does not wrap (NULL when disconnected). */
PGconn *wasl_pg_conn(wasl_pg_t *self);

#endif
