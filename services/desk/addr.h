/* addr — the address a request comes from, for login throttling: the TCP peer, or, when the peer
 * is one of the operator's trusted proxies (WASL_DESK_TRUSTED_PROXIES), the nearest untrusted
 * address of its X-Forwarded-For. Pure: no I/O. */
#ifndef WASL_DESK_ADDR_H
#define WASL_DESK_ADDR_H

#include <stddef.h>

/* The text form of an IPv6 address with its NUL (INET6_ADDRSTRLEN). */
#define DESK_ADDR_BUF 46

/* Writes the client's address to `out` (canonical text form). `peer` is the TCP peer's address
 * as text; `xff` the X-Forwarded-For header or NULL; `trusted` the comma-separated proxy
 * addresses ("" or NULL: none). The header is believed only when the peer is trusted, and only
 * as far as it names trusted proxies: the rightmost address that is not one is the client (a
 * client cannot push itself further right than its own proxy's entry). A malformed entry ends
 * the walk at the last address believed. Always writes something: "-" for an unparsable peer. */
void desk_client_addr(const char *peer, const char *xff, const char *trusted,
                      char out[DESK_ADDR_BUF]);

#endif
