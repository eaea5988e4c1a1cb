/* wasl_redis — a synchronous hiredis connection with timeouts and transparent reconnection. */
#ifndef WASL_REDIS_H
#define WASL_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>

typedef struct wasl_redis wasl_redis_t;

/* Returns a handle for `url` ("redis://[[user]:password@]host[:port][/db]" with percent-escapes
 * and [IPv6] hosts, or "unix:///path[?db=N&password=P]"), copied; the password is never logged.
 * Connects lazily. NULL when the URL is malformed (logged) or on allocation failure. */
wasl_redis_t *wasl_redis_new(const char *url, int timeout_ms);
void wasl_redis_destroy(wasl_redis_t **self_p);

/* Ensures a live connection (AUTH and SELECT applied), reconnecting at most once per
 * WASL_REDIS_RECONNECT_MS. True when connected. No round trip is made: a readiness check
 * should send PING. */
bool wasl_redis_ok(wasl_redis_t *self);
#define WASL_REDIS_RECONNECT_MS 500

/* Runs one command (hiredis format string). Returns the reply, which the caller frees with
 * freeReplyObject(), or NULL on a connection error or timeout (the connection is dropped and
 * re-made on the next call; the command is not retried, since it may have run). A Redis error
 * reply is returned as a REDIS_REPLY_ERROR reply, not NULL. */
redisReply *wasl_redis_cmd(wasl_redis_t *self, const char *fmt, ...);
redisReply *wasl_redis_cmdargv(wasl_redis_t *self, int argc, const char **argv,
                               const size_t *argvlen);

/* Runs `n` commands in one round trip (pipelined): command i has argcs[i] arguments argvs[i]
 * (lengths argvlens[i], or NULL for strlen). Returns 0 with replies[i] each command's reply
 * (the caller frees each; a Redis error is a REDIS_REPLY_ERROR reply), or -1 on a connection
 * error or timeout: every replies[i] is NULL, the connection is dropped as wasl_redis_cmd does,
 * and none of the commands is retried (some may have run). */
int wasl_redis_pipeline(wasl_redis_t *self, size_t n, const int *argcs,
                        const char *const *const *argvs, const size_t *const *argvlens,
                        redisReply **replies);
/* The last connection error ("" when none). */
const char *wasl_redis_error(const wasl_redis_t *self);

#endif
