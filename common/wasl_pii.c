/* wasl_pii — the deployment's secret for naming national IDs and phones in Redis (HMAC-SHA256)
 * and sealing the few values that must be read back (XSalsa20-Poly1305). */
#include "wasl_pii.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The sealing key is derived from the PII key, so that one secret serves both and a hash never
 * equals a key stream. */
#define SEAL_CONTEXT "wasl-pii-seal"

static unsigned char pii_key[WASL_PII_KEY_MAX];
static size_t pii_key_len;
static unsigned char seal_key[crypto_secretbox_KEYBYTES];

int wasl_pii_key_set(const void *key, size_t len)
{
    if (len < WASL_PII_KEY_MIN || len > WASL_PII_KEY_MAX || sodium_init() < 0) {
        return -1;
    }
    memcpy(pii_key, key, len);
    pii_key_len = len;
    /* The incremental API takes a key of any length (the one-shot call wants exactly 32). */
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, pii_key, pii_key_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)SEAL_CONTEXT, strlen(SEAL_CONTEXT));
    crypto_auth_hmacsha256_final(&st, seal_key);
    sodium_memzero(&st, sizeof st);
    return 0;
}

bool wasl_pii_ready(void)
{
    return pii_key_len > 0;
}

void wasl_pii_key_clear(void)
{
    sodium_memzero(pii_key, sizeof pii_key);
    sodium_memzero(seal_key, sizeof seal_key);
    pii_key_len = 0;
}

int wasl_pii_key_load(const char *key_text, const char *key_file, char *err, size_t errlen)
{
    unsigned char buf[WASL_PII_KEY_MAX + 2];
    size_t len = 0;
    int rc = -1;
    if (key_file && *key_file) {
        FILE *f = fopen(key_file, "rb");
        if (!f) {
            snprintf(err, errlen, "WASL_PII_KEY_FILE: cannot read %s: %s", key_file,
                     strerror(errno));
            goto done;
        }
        len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if (len > 0 && buf[len - 1] == '\n') {
            len--;
        }
        if (len < WASL_PII_KEY_MIN || len > WASL_PII_KEY_MAX) {
            snprintf(err, errlen, "WASL_PII_KEY_FILE: %s must hold %d to %d bytes", key_file,
                     WASL_PII_KEY_MIN, WASL_PII_KEY_MAX);
            goto done;
        }
    } else if (key_text && *key_text) {
        len = strlen(key_text);
        if (len < WASL_PII_KEY_MIN || len > WASL_PII_KEY_MAX) {
            snprintf(err, errlen, "WASL_PII_KEY: must be %d to %d characters", WASL_PII_KEY_MIN,
                     WASL_PII_KEY_MAX);
            goto done;
        }
        memcpy(buf, key_text, len);
    } else {
        snprintf(err, errlen,
                 "WASL_PII_KEY_FILE (or WASL_PII_KEY) is required: the secret that keys the "
                 "hashes of national IDs and phones in Redis (openssl rand -hex 32)");
        goto done;
    }
    if (wasl_pii_key_set(buf, len) < 0) {
        snprintf(err, errlen, "WASL_PII_KEY: libsodium cannot start");
        goto done;
    }
    rc = 0;
done:
    sodium_memzero(buf, sizeof buf);
    return rc;
}

void wasl_config_pii_key(wasl_config_t *cfg, const char **key_text, const char **key_file)
{
    wasl_config_str(cfg, "WASL_PII_KEY_FILE", "",
                    "file holding the secret (>= 32 bytes) that keys the hashes of national IDs "
                    "and phones in Redis; required (or WASL_PII_KEY)",
                    key_file);
    wasl_config_str(cfg, "WASL_PII_KEY", "",
                    "the same secret given inline (>= 32 characters) when no file is used",
                    key_text);
}

void wasl_pii_key_load_or_exit(const char *prog, const char *key_text, const char *key_file)
{
    char err[256];
    if (wasl_pii_key_load(key_text, key_file, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        exit(WASL_EXIT_CONFIG);
    }
}

void wasl_pii_hash(const char *kind, const char *value, char out[WASL_PII_HASH_BUF])
{
    assert(pii_key_len > 0);
    crypto_auth_hmacsha256_state st;
    unsigned char digest[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, pii_key, pii_key_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)kind, strlen(kind));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)":", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)value, strlen(value));
    crypto_auth_hmacsha256_final(&st, digest);
    sodium_bin2hex(out, WASL_PII_HASH_BUF, digest, sizeof digest);
    sodium_memzero(&st, sizeof st);
}

void wasl_pii_hash_bytes(const void *data, size_t len, char out[WASL_PII_HASH_BUF])
{
    assert(pii_key_len > 0);
    crypto_auth_hmacsha256_state st;
    unsigned char digest[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, pii_key, pii_key_len);
    crypto_auth_hmacsha256_update(&st, data, len);
    crypto_auth_hmacsha256_final(&st, digest);
    sodium_bin2hex(out, WASL_PII_HASH_BUF, digest, sizeof digest);
    sodium_memzero(&st, sizeof st);
}

void *wasl_pii_seal_bytes(const void *data, size_t len, size_t *out_len)
{
    assert(pii_key_len > 0);
    size_t blen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;
    unsigned char *box = malloc(blen);
    if (!box) {
        return NULL;
    }
    randombytes_buf(box, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, data, len, box, seal_key);
    *out_len = blen;
    return box;
}

void *wasl_pii_open_bytes(const void *sealed, size_t len, size_t *out_len)
{
    assert(pii_key_len > 0);
    const unsigned char *box = sealed;
    size_t overhead = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES;
    if (len < overhead) {
        return NULL;
    }
    size_t plen = len - overhead;
    unsigned char *plain = malloc(plen + 1);
    if (!plain ||
        crypto_secretbox_open_easy(plain, box + crypto_secretbox_NONCEBYTES,
                                   len - crypto_secretbox_NONCEBYTES, box, seal_key) != 0) {
        free(plain);
        return NULL;
    }
    plain[plen] = '\0';
    *out_len = plen;
    return plain;
}

char *wasl_pii_seal(const char *plain)
{
    size_t blen = 0;
    unsigned char *box = wasl_pii_seal_bytes(plain, strlen(plain), &blen);
    char *hex = box ? malloc(2 * blen + 1) : NULL;
    if (hex) {
        sodium_bin2hex(hex, 2 * blen + 1, box, blen);
    }
    free(box);
    return hex;
}

char *wasl_pii_open(const char *sealed)
{
    size_t hlen = strlen(sealed), got = 0, plen = 0;
    if (hlen % 2 != 0) {
        return NULL;
    }
    unsigned char *box = malloc(hlen / 2 + 1);
    char *plain = NULL;
    if (box && sodium_hex2bin(box, hlen / 2 + 1, sealed, hlen, NULL, &got, NULL) == 0 &&
        got == hlen / 2) {
        plain = wasl_pii_open_bytes(box, got, &plen);
    }
    free(box);
    if (plain && strlen(plain) != plen) { /* a NUL inside: not a string we sealed */
        free(plain);
        plain = NULL;
    }
    return plain;
}
