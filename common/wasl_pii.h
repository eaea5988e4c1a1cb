/* wasl_pii — the secret that names national IDs and phone numbers in Redis: a keyed hash
 * (HMAC-SHA256) for keys and cached verifiers, and sealing for the few values that must be read
 * back. A bare SHA-256 of a 10-digit ID is reversed by hashing all 10^10 of them; a keyed hash
 * is not, without the key.
 *
 * One key per deployment, shared by every daemon that hashes (intake, caselookup, notifier), so
 * that they name the same person the same way. It is process-wide state set once at start-up,
 * before any thread that hashes is started (like sodium_init()). */
#ifndef WASL_PII_H
#define WASL_PII_H

#include "wasl_config.h"

#include <stdbool.h>
#include <stddef.h>

/* The shortest key accepted, in bytes (HMAC-SHA256's own key size: anything shorter is weaker
 * than the hash). `openssl rand -hex 32` makes a good one (64 characters). */
#define WASL_PII_KEY_MIN 32
#define WASL_PII_KEY_MAX 1024
/* Hex characters of a hash, and the buffer that holds them. */
#define WASL_PII_HASH_HEX 64
#define WASL_PII_HASH_BUF (WASL_PII_HASH_HEX + 1)

/* Sets the key from `len` bytes (copied). Returns 0, or -1 when `len` is outside
 * [WASL_PII_KEY_MIN, WASL_PII_KEY_MAX] or libsodium cannot start. */
int wasl_pii_key_set(const void *key, size_t len);

/* Loads the key: from the file `key_file` when it is non-empty (its bytes, without one trailing
 * newline), else from `key_text`. Returns 0, or -1 with the reason (naming the variable) in
 * `err` when neither is given, the file cannot be read or the key is too short. */
int wasl_pii_key_load(const char *key_text, const char *key_file, char *err, size_t errlen);

/* True once a key is set. */
bool wasl_pii_ready(void);

/* Forgets the key (zeroed). Tests; safe when none is set. */
void wasl_pii_key_clear(void);

/* Registers WASL_PII_KEY and WASL_PII_KEY_FILE (both default empty). */
void wasl_config_pii_key(wasl_config_t *cfg, const char **key_text, const char **key_file);

/* wasl_pii_key_load() for a daemon's main(): on failure prints "PROG: reason" to stderr and
 * exits WASL_EXIT_CONFIG. A missing key is a start-up error, never a silent fallback. */
void wasl_pii_key_load_or_exit(const char *prog, const char *key_text, const char *key_file);

/* Lower-case hex HMAC-SHA256 of "kind:value" under the key into `out` (WASL_PII_HASH_BUF bytes).
 * The kind keeps an ID and a phone with the same digits apart. The key must be set (asserted). */
void wasl_pii_hash(const char *kind, const char *value, char out[WASL_PII_HASH_BUF]);

/* The same keyed hash over `len` arbitrary bytes (e.g. a whole request that carries an ID). */
void wasl_pii_hash_bytes(const void *data, size_t len, char out[WASL_PII_HASH_BUF]);

/* Seals `len` bytes into a new binary buffer of *out_len bytes (nonce, tag, ciphertext) the
 * caller frees. NULL on allocation failure. The key must be set. */
void *wasl_pii_seal_bytes(const void *data, size_t len, size_t *out_len);
/* Opens what wasl_pii_seal_bytes() made: a new buffer of *out_len bytes (plus a NUL, not
 * counted) the caller frees, or NULL when it is not ours (tampered, another key, truncated) or
 * on allocation failure. */
void *wasl_pii_open_bytes(const void *sealed, size_t len, size_t *out_len);

/* Seals `plain` (authenticated encryption under a key derived from the PII key, random nonce)
 * as a new printable (hex) string the caller frees. NULL on allocation failure. */
char *wasl_pii_seal(const char *plain);
/* Opens what wasl_pii_seal() made: a new string the caller frees, or NULL when `sealed` is not
 * one of ours (tampered, another key, truncated) or on allocation failure. */
char *wasl_pii_open(const char *sealed);

#endif
