/* wasl_curl — a bounded reply body for libcurl callers. */
#include "wasl_curl.h"

#include <assert.h>
#include <string.h>

void wasl_curl_body_init(wasl_curl_body_t *b, char *buf, size_t cap)
{
    assert(b && buf && cap > 0);
    b->data = buf;
    b->cap = cap;
    b->len = 0;
    buf[0] = '\0';
}

size_t wasl_curl_body_write(char *ptr, size_t size, size_t nmemb, void *body)
{
    wasl_curl_body_t *b = body;
    size_t n = size * nmemb;
    size_t room = b->cap - 1 - b->len;
    size_t take = n < room ? n : room;
    memcpy(b->data + b->len, ptr, take);
    b->len += take;
    b->data[b->len] = '\0';
    return n;
}
