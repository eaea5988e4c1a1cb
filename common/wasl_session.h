/* wasl_session — people's sign-in on the desk: Argon2id passwords, sessions kept in Redis (idle
 * and absolute expiry, sign out everywhere), a CSRF token per session, and login throttling per
 * account and per client address. The design is docs/desk.md, "People". */
#ifndef WASL_SESSION_H
#define WASL_SESSION_H

#include "wasl_redis.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A token is 32 random bytes in unpadded base64url: 43 characters. The session token (the
 * cookie's value) and the CSRF token have this shape. */
#define WASL_SESSION_TOKEN_BYTES 32
#define WASL_SESSION_TOKEN_LEN   43
#define WASL_SESSION_TOKEN_BUF   (WASL_SESSION_TOKEN_LEN + 1)
/* "wasl:desk:s:" + hex SHA-256 of the token. */
#define WASL_SESSION_KEY_BUF (12 + 64 + 1)
/* Agent ids are ^[a-z0-9][a-z0-9._-]{0,63}$ (proto/migrations/0003_router.sql). */
#define WASL_SESSION_AGENT_BUF 65
#define WASL_SESSION_ROLE_BUF  16

/* Passwords: at least this many characters (code points), at most this many bytes. */
#define WASL_PASSWORD_MIN_CHARS 10
#define WASL_PASSWORD_MAX_BYTES 128
/* crypto_pwhash_STRBYTES: an Argon2id string ("$argon2id$v=19$m=…") fits with its NUL. */
#define WASL_PASSWORD_HASH_BUF 128

/* How long a session lives: `idle_s` after its last use, never more than `absolute_s` after it
 * was created. */
typedef struct {
    int idle_s;
    int absolute_s;
} wasl_session_limits_t;

/* A live session as stored under its key. */
typedef struct {
    char agent[WASL_SESSION_AGENT_BUF];
    char role[WASL_SESSION_ROLE_BUF];
    char csrf[WASL_SESSION_TOKEN_BUF];
    char key[WASL_SESSION_KEY_BUF]; /* its Redis key (hash of the token, never the token) */
    int64_t created_ms;             /* wall clock, ms since the epoch */
} wasl_session_t;

/* Login throttling: at most `account_max` failures per account and `addr_max` per client
 * address within `window_s` seconds of the first failure counted. */
typedef struct {
    int account_max;
    int addr_max;
    int window_s;
} wasl_session_throttle_t;

/* ---- tokens and keys (pure but for the random source) ---------------------------------- */

/* Fills `out` with a fresh random token (libsodium's CSPRNG). 0, or -1 when libsodium cannot
 * start. */
int wasl_session_token_new(char out[WASL_SESSION_TOKEN_BUF]);

/* True when `token` has the shape of a token (43 base64url characters): anything else is never
 * looked up. */
bool wasl_session_token_valid(const char *token);

/* The Redis key of the session whose token is `token`: "wasl:desk:s:<hex sha256(token)>". A
 * copy of Redis (a backup, a replica) then holds no usable token. */
void wasl_session_key(const char *token, char out[WASL_SESSION_KEY_BUF]);

/* Constant-time comparison of the session's CSRF token with `presented` (NULL: false). */
bool wasl_session_csrf_ok(const wasl_session_t *s, const char *presented);

/* ---- sessions in Redis ----------------------------------------------------------------- */

/* Creates a session for `agent` (a valid agent id) with `role`, at wall-clock `now_ms`:
 * writes its hash with a TTL of min(idle, absolute), adds its key to the agent's set
 * "wasl:desk:a:<agent>" (pruning keys that expired), and fills `token_out` (the cookie's value,
 * stored nowhere) and `out`. 0, or -1 on a Redis error (logged; nothing usable was created). */
int wasl_session_create(wasl_redis_t *redis, const char *agent, const char *role,
                        const wasl_session_limits_t *limits, int64_t now_ms,
                        char token_out[WASL_SESSION_TOKEN_BUF], wasl_session_t *out);

/* Looks up the session of `token` at `now_ms` and, when live, refreshes its TTL to the idle
 * timeout (never past the absolute limit). Returns 1 and fills `out` when live; 0 when the token
 * is malformed, unknown, expired or past its absolute limit (then the key is deleted); -1 on a
 * Redis error (logged). */
int wasl_session_get(wasl_redis_t *redis, const char *token, const wasl_session_limits_t *limits,
                     int64_t now_ms, wasl_session_t *out);

/* Deletes one session (sign out) by its key (wasl_session_t.key). 0, or -1 on a Redis error. */
int wasl_session_delete(wasl_redis_t *redis, const char *agent, const char *key);

/* Deletes every session of `agent` (sign out everywhere, a password change, the agent disabled).
 * Returns how many were live, or -1 on a Redis error. */
int wasl_session_delete_agent(wasl_redis_t *redis, const char *agent);

/* ---- login throttling ------------------------------------------------------------------ */

/* Before a password is checked: returns 0 when `agent` (NULL: not counted) and `addr` may try,
 * else the seconds until they may (the counter's TTL, at least 1) — the caller answers 429 with
 * that Retry-After. -1 on a Redis error (logged; the caller refuses the login: a throttle that
 * fails open is no throttle). */
int wasl_session_throttle_check(wasl_redis_t *redis, const char *agent, const char *addr,
                                const wasl_session_throttle_t *t);

/* Counts one failed login against `agent` (NULL: not counted) and `addr`; the window starts at
 * the first failure. 0, or -1 on a Redis error. */
int wasl_session_throttle_fail(wasl_redis_t *redis, const char *agent, const char *addr,
                               const wasl_session_throttle_t *t);

/* A successful login clears the account's counter (not the address's: one good account must
 * not launder an address's guesses at others). 0, or -1 on a Redis error. */
int wasl_session_throttle_clear(wasl_redis_t *redis, const char *agent);

/* ---- passwords ------------------------------------------------------------------------- */

/* NULL when `pw` (len bytes) is acceptable as a new password; else a static sentence saying
 * why not (too short, too long, not UTF-8, contains a control character). */
const char *wasl_password_policy(const char *pw, size_t len);

/* Hashes `pw` with Argon2id (libsodium crypto_pwhash_str, OPSLIMIT/MEMLIMIT_INTERACTIVE: about
 * 64 MiB and 0.1 s each). 0, or -1 (out of memory, libsodium cannot start). */
int wasl_password_hash(const char *pw, size_t len, char out[WASL_PASSWORD_HASH_BUF]);

/* True when `pw` matches `hash`. With `hash` NULL or not an Argon2id string, verifies against a
 * fixed dummy hash and returns false, so that an unknown account costs the same work as a wrong
 * password. Thread-safe; allocates MEMLIMIT bytes for the duration. */
bool wasl_password_verify(const char *hash, const char *pw, size_t len);

#endif
