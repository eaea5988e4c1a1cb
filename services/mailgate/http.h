/* mailgate http — one HTTP/1.1 POST over a plain socket, for an intake reached by http:// (the
 * loopback case of every install): no libcurl to load and initialise for each mail. */
#ifndef WASL_MAILGATE_HTTP_H
#define WASL_MAILGATE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* Longest status line and headers accepted in intake's answer: more is a broken or hostile peer
 * (the request fails as a temporary failure, the MTA retries). */
#define MAILGATE_HTTP_HEAD_MAX 16384

/* The parts of an http:// URL. host is without brackets for an IPv6 literal. */
typedef struct {
    char host[256];
    char port[8];
    const char *path; /* borrowed from the URL: "" or what follows the authority, from '/' */
    size_t path_len;  /* without the trailing slashes */
} mailgate_http_url_t;

/* Splits url ("http://host[:port][/path]", host a name, an IPv4 address or [IPv6]) into out.
 * Returns 0, or -1 when it is not such a URL (userinfo, an empty host, a bad port, a query). */
int mailgate_http_url_parse(const char *url, mailgate_http_url_t *out);

/* What one exchange gave. */
typedef struct {
    long status; /* the HTTP status; 0 when no complete answer came */
    char *body;  /* borrowed: the caller's buffer of body_cap bytes, NUL-terminated */
    size_t body_cap;
    size_t body_len; /* at most body_cap - 1; the rest of a longer body is dropped */
    char error[160]; /* when status is 0: why (connect refused, timed out, bad answer, ...) */
} mailgate_http_reply_t;

/* POSTs body[0..len) to url + path_suffix with the given Content-Type and, when token is
 * non-empty, "Authorization: Bearer token". The connection must be made within connect_ms and
 * the whole exchange done within total_ms. Reads the answer's status line and headers (at most
 * MAILGATE_HTTP_HEAD_MAX bytes), and its body (Content-Length, chunked or up to the close) into
 * reply->body when the status is not 2xx. Returns 0 with reply->status set, or -1 with
 * reply->status 0 and reply->error saying why. The token is wiped from the request buffer. */
int mailgate_http_post(const mailgate_http_url_t *url, const char *path_suffix,
                       const char *content_type, const char *token, const char *body, size_t len,
                       long connect_ms, long total_ms, mailgate_http_reply_t *reply);

#endif
