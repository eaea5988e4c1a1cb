/* db — a fixed pool of (PostgreSQL, Redis) connection pairs for the desk's threads: HTTP threads
 * and verification threads take one for the length of a request and give it back. */
#ifndef WASL_DESK_DB_H
#define WASL_DESK_DB_H

#include "wasl_pg.h"
#include "wasl_redis.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct desk_db desk_db_t;

typedef struct {
    wasl_pg_t *pg;
    wasl_redis_t *redis;
} desk_conn_t;

/* `n` pairs on pg_url and redis_url (both copied; connections are made lazily). NULL (logged)
 * on failure. */
desk_db_t *desk_db_new(const char *pg_url, const char *redis_url, int redis_timeout_ms, size_t n);
void desk_db_destroy(desk_db_t **self_p);

/* Takes a free pair, waiting for one; it belongs to the caller until desk_db_give. Never NULL:
 * the pool is sized to the threads that take from it. */
desk_conn_t *desk_db_take(desk_db_t *self);
void desk_db_give(desk_db_t *self, desk_conn_t *conn);

/* For /readyz: PostgreSQL and Redis answer (a pair is taken for the check). */
bool desk_db_ready(desk_db_t *self, char *why, size_t cap);

#endif
