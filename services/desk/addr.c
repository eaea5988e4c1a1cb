/* addr — the client's address behind trusted proxies (see addr.h). */
#include "addr.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* An address parsed: family and 16 bytes (IPv4 in the first 4). */
typedef struct {
    int family;
    unsigned char bytes[16];
} ip_t;

/* Parses s[0..len) (spaces around it ignored) as an IPv4 or IPv6 address. */
static bool parse(const char *s, size_t len, ip_t *ip)
{
    char buf[DESK_ADDR_BUF];
    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
        len--;
    }
    if (len == 0 || len >= sizeof buf) {
        return false;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(ip, 0, sizeof *ip);
    if (inet_pton(AF_INET, buf, ip->bytes) == 1) {
        ip->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, ip->bytes) == 1) {
        ip->family = AF_INET6;
        return true;
    }
    return false;
}

static void format(const ip_t *ip, char out[DESK_ADDR_BUF])
{
    if (!inet_ntop(ip->family, ip->bytes, out, DESK_ADDR_BUF)) {
        snprintf(out, DESK_ADDR_BUF, "-");
    }
}

static bool trusted_ip(const char *list, const ip_t *ip)
{
    for (const char *p = list ? list : ""; *p;) {
        size_t n = strcspn(p, ",");
        ip_t t;
        if (parse(p, n, &t) && t.family == ip->family && memcmp(t.bytes, ip->bytes, 16) == 0) {
            return true;
        }
        p += n + (p[n] == ',');
    }
    return false;
}

void desk_client_addr(const char *peer, const char *xff, const char *trusted,
                      char out[DESK_ADDR_BUF])
{
    ip_t client;
    if (!peer || !parse(peer, strlen(peer), &client)) {
        snprintf(out, DESK_ADDR_BUF, "-");
        return;
    }
    /* From the right: each trusted hop vouches for the address on its left. */
    size_t end = xff ? strlen(xff) : 0;
    while (xff && trusted_ip(trusted, &client) && end > 0) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',') {
            start--;
        }
        ip_t hop;
        if (!parse(xff + start, end - start, &hop)) {
            break;
        }
        client = hop;
        end = start ? start - 1 : 0;
    }
    format(&client, out);
}
