/* test_pii — the keyed hash of IDs and phones for Redis, the key's loading rules and sealing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_pii.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_A "key-a-0123456789abcdef-0123456789abcdef"
#define KEY_B "key-b-0123456789abcdef-0123456789abcdef"

static void test_hash_is_keyed(void **state)
{
    (void)state;
    char a[WASL_PII_HASH_BUF], b[WASL_PII_HASH_BUF], c[WASL_PII_HASH_BUF], bare[65];
    assert_int_equal(wasl_pii_key_set(KEY_A, strlen(KEY_A)), 0);
    wasl_pii_hash("national_id", "1000000008", a);
    assert_int_equal(strlen(a), WASL_PII_HASH_HEX);
    wasl_pii_hash("national_id", "1000000008", c);
    assert_string_equal(a, c); /* stable: every daemon names the person the same way */
    wasl_pii_hash("caller_phone", "1000000008", c);
    assert_string_not_equal(a, c); /* the kind is part of it */
    /* Not the bare SHA-256 that hashing all 10^10 IDs reverses. */
    unsigned char d[crypto_hash_sha256_BYTES];
    const char *v = "national_id:1000000008";
    crypto_hash_sha256(d, (const unsigned char *)v, strlen(v));
    sodium_bin2hex(bare, sizeof bare, d, sizeof d);
    assert_string_not_equal(a, bare);
    /* HMAC-SHA256 with the key, as documented. */
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)KEY_A, strlen(KEY_A));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)v, strlen(v));
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(bare, sizeof bare, mac, sizeof mac);
    assert_string_equal(a, bare);
    /* Over bytes: the same HMAC of "kind:value" as the string form. */
    wasl_pii_hash_bytes(v, strlen(v), c);
    assert_string_equal(a, c);
    assert_int_equal(wasl_pii_key_set(KEY_B, strlen(KEY_B)), 0);
    wasl_pii_hash("national_id", "1000000008", b);
    assert_string_not_equal(a, b);
}

static void test_key_rules(void **state)
{
    (void)state;
    char err[256];
    wasl_pii_key_clear();
    assert_false(wasl_pii_ready());
    /* Missing: an error naming the variables. */
    assert_int_equal(wasl_pii_key_load("", "", err, sizeof err), -1);
    assert_non_null(strstr(err, "WASL_PII_KEY_FILE"));
    assert_int_equal(wasl_pii_key_load(NULL, NULL, err, sizeof err), -1);
    /* Too short. */
    assert_int_equal(wasl_pii_key_load("short", NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "WASL_PII_KEY"));
    assert_false(wasl_pii_ready());
    assert_int_equal(wasl_pii_key_load(KEY_A, NULL, err, sizeof err), 0);
    assert_true(wasl_pii_ready());
    char inline_hash[WASL_PII_HASH_BUF], file_hash[WASL_PII_HASH_BUF];
    wasl_pii_hash("line", "+966551230001", inline_hash);
    /* A file wins over the inline value; one trailing newline is not part of the key. */
    char path[] = "/tmp/test_pii_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "%s\n", KEY_A);
    fclose(f);
    assert_int_equal(wasl_pii_key_load(KEY_B, path, err, sizeof err), 0);
    wasl_pii_hash("line", "+966551230001", file_hash);
    assert_string_equal(inline_hash, file_hash);
    /* A file too short, and a file that is not there. */
    f = fopen(path, "w");
    fprintf(f, "tiny\n");
    fclose(f);
    assert_int_equal(wasl_pii_key_load(NULL, path, err, sizeof err), -1);
    unlink(path);
    assert_int_equal(wasl_pii_key_load(NULL, path, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
}

static void test_seal(void **state)
{
    (void)state;
    assert_int_equal(wasl_pii_key_set(KEY_A, strlen(KEY_A)), 0);
    char *sealed = wasl_pii_seal("+966551230001");
    assert_non_null(sealed);
    assert_null(strstr(sealed, "966551230001"));
    char *again = wasl_pii_seal("+966551230001");
    assert_string_not_equal(sealed, again); /* a fresh nonce each time */
    char *open = wasl_pii_open(sealed);
    assert_string_equal(open, "+966551230001");
    free(open);
    /* Tampered, truncated, foreign: nothing. */
    sealed[strlen(sealed) - 1] = sealed[strlen(sealed) - 1] == '0' ? '1' : '0';
    assert_null(wasl_pii_open(sealed));
    assert_null(wasl_pii_open("00"));
    assert_null(wasl_pii_open("not hex at all, not hex at all, not hex at all, not hex!"));
    assert_int_equal(wasl_pii_key_set(KEY_B, strlen(KEY_B)), 0);
    assert_null(wasl_pii_open(again));
    free(sealed);
    free(again);
    /* Bytes, NULs included (a msgpack answer). */
    const unsigned char raw[] = {0x82, 0x00, 'a', 0x00, 0xff};
    size_t blen = 0, olen = 0;
    unsigned char *box = wasl_pii_seal_bytes(raw, sizeof raw, &blen);
    assert_non_null(box);
    unsigned char *back = wasl_pii_open_bytes(box, blen, &olen);
    assert_non_null(back);
    assert_int_equal(olen, sizeof raw);
    assert_memory_equal(back, raw, sizeof raw);
    free(back);
    box[blen - 1] ^= 1;
    assert_null(wasl_pii_open_bytes(box, blen, &olen));
    assert_null(wasl_pii_open_bytes(box, 3, &olen));
    free(box);
    wasl_pii_key_clear();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_is_keyed),
        cmocka_unit_test(test_key_rules),
        cmocka_unit_test(test_seal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
