/* wasl_curl — what the programs that call HTTP services through libcurl share: a reply body
 * kept up to a bound (mailgate's answer from intake, the SMS gateway's, waslctl status). */
#ifndef WASL_CURL_H
#define WASL_CURL_H

#include <stddef.h>

/* The first cap-1 bytes of a reply, NUL-terminated in data; the rest is read and dropped —
 * not an error, so a long error page from a peer never fails the request that got it. */
typedef struct {
    char *data; /* borrowed: the caller's buffer of cap bytes */
    size_t cap;
    size_t len;
} wasl_curl_body_t;

/* Points b at buf (cap ≥ 1 bytes) and empties it. */
void wasl_curl_body_init(wasl_curl_body_t *b, char *buf, size_t cap);

/* A CURLOPT_WRITEFUNCTION appending to the wasl_curl_body_t given as CURLOPT_WRITEDATA.
 * Always returns size * nmemb (all taken). */
size_t wasl_curl_body_write(char *ptr, size_t size, size_t nmemb, void *body);

#endif
