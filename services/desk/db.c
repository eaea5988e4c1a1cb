/* db — the desk's pool of PostgreSQL and Redis connections (see db.h). */
#include "db.h"
#include "wasl_log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct desk_db {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    desk_conn_t *conns;
    bool *busy;
    size_t n;
};

desk_db_t *desk_db_new(const char *pg_url, const char *redis_url, int redis_timeout_ms, size_t n)
{
    desk_db_t *self = calloc(1, sizeof *self);
    if (!self || !(self->conns = calloc(n, sizeof *self->conns)) ||
        !(self->busy = calloc(n, sizeof *self->busy))) {
        desk_db_destroy(&self);
        return NULL;
    }
    self->n = n;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->freed, NULL);
    for (size_t i = 0; i < n; i++) {
        self->conns[i].pg = wasl_pg_new(pg_url);
        self->conns[i].redis = wasl_redis_new(redis_url, redis_timeout_ms);
        if (!self->conns[i].pg || !self->conns[i].redis) {
            wasl_error("desk: cannot make the connection pool", NULL);
            desk_db_destroy(&self);
            return NULL;
        }
    }
    return self;
}

void desk_db_destroy(desk_db_t **self_p)
{
    desk_db_t *self = *self_p;
    if (!self) {
        return;
    }
    for (size_t i = 0; self->conns && i < self->n; i++) {
        wasl_pg_destroy(&self->conns[i].pg);
        wasl_redis_destroy(&self->conns[i].redis);
    }
    if (self->n) {
        pthread_mutex_destroy(&self->lock);
        pthread_cond_destroy(&self->freed);
    }
    free(self->conns);
    free(self->busy);
    free(self);
    *self_p = NULL;
}

desk_conn_t *desk_db_take(desk_db_t *self)
{
    pthread_mutex_lock(&self->lock);
    for (;;) {
        for (size_t i = 0; i < self->n; i++) {
            if (!self->busy[i]) {
                self->busy[i] = true;
                pthread_mutex_unlock(&self->lock);
                return &self->conns[i];
            }
        }
        pthread_cond_wait(&self->freed, &self->lock);
    }
}

void desk_db_give(desk_db_t *self, desk_conn_t *conn)
{
    if (!conn) {
        return;
    }
    size_t i = (size_t)(conn - self->conns);
    pthread_mutex_lock(&self->lock);
    self->busy[i] = false;
    pthread_cond_signal(&self->freed);
    pthread_mutex_unlock(&self->lock);
}

bool desk_db_ready(desk_db_t *self, char *why, size_t cap)
{
    desk_conn_t *c = desk_db_take(self);
    bool ok = true;
    PGresult *res = wasl_pg_query(c->pg, "SELECT 1", 0, NULL);
    if (!res) {
        snprintf(why, cap, "postgresql: %s", wasl_pg_error(c->pg));
        ok = false;
    }
    PQclear(res);
    redisReply *reply = ok ? wasl_redis_cmd(c->redis, "PING") : NULL;
    if (ok && (!reply || reply->type != REDIS_REPLY_STATUS)) {
        snprintf(why, cap, "redis: %s", wasl_redis_error(c->redis));
        ok = false;
    }
    freeReplyObject(reply);
    desk_db_give(self, c);
    return ok;
}
