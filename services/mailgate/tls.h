/* mailgate tls — the POST to an https:// intake through libcurl, loaded with dlopen only then:
 * the http:// case (intake on the same host, every install's default) never pays for loading
 * libcurl and its ~30 libraries (TLS, GSSAPI, LDAP, SSH...) for each mail. */
#ifndef WASL_MAILGATE_TLS_H
#define WASL_MAILGATE_TLS_H

#include <stddef.h>

/* The shared object loaded (libcurl's runtime name on Debian and most distributions). */
#define MAILGATE_LIBCURL "libcurl.so.4"

/* POSTs body[0..len) to url (the full https:// URL) as content_type, with "Authorization: Bearer
 * token" when token is non-empty, within connect_ms / total_ms, verifying the server's
 * certificate as libcurl does by default. Keeps the first cap-1 bytes of the answer's body in
 * reply (NUL-terminated). Returns the HTTP status, or 0 with err saying why (libcurl missing or
 * unusable, a transport error). */
long mailgate_tls_post(const char *url, const char *content_type, const char *token,
                       const char *body, size_t len, long connect_ms, long total_ms, char *reply,
                       size_t cap, char *err, size_t errlen);

#endif
