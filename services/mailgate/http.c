/* mailgate http — one HTTP/1.1 POST over a plain socket (see http.h for why). */
#include "http.h"

#include "wasl_clock.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* The request's head: request line, Host, and five short headers plus the token. */
#define REQUEST_HEAD_MAX (8192 + 4096)

int mailgate_http_url_parse(const char *url, mailgate_http_url_t *out)
{
    memset(out, 0, sizeof *out);
    if (strncasecmp(url, "http://", 7) != 0) {
        return -1;
    }
    const char *a = url + 7;
    size_t alen = strcspn(a, "/?#");
    if (a[alen] == '?' || a[alen] == '#' || memchr(a, '@', alen)) {
        return -1; /* a query, a fragment or userinfo: not a base URL */
    }
    const char *host = a, *port = NULL;
    size_t hlen;
    if (alen > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', alen);
        if (!close) {
            return -1;
        }
        host = a + 1;
        hlen = (size_t)(close - host);
        port = close + 1 < a + alen ? close + 1 : NULL;
        if (port && *port != ':') {
            return -1;
        }
    } else {
        const char *colon = memchr(a, ':', alen);
        hlen = colon ? (size_t)(colon - a) : alen;
        port = colon;
    }
    size_t plen = port ? (size_t)(a + alen - port - 1) : 0;
    if (hlen == 0 || hlen >= sizeof out->host || (port && (plen == 0 || plen > 5))) {
        return -1;
    }
    memcpy(out->host, host, hlen);
    unsigned long p = 80;
    if (port) {
        for (size_t i = 1; i <= plen; i++) {
            if (!isdigit((unsigned char)port[i])) {
                return -1;
            }
        }
        p = strtoul(port + 1, NULL, 10);
        if (p == 0 || p > 65535) {
            return -1;
        }
    }
    snprintf(out->port, sizeof out->port, "%lu", p);
    out->path = a + alen;
    out->path_len = strlen(out->path);
    while (out->path_len > 0 && out->path[out->path_len - 1] == '/') {
        out->path_len--;
    }
    return 0;
}

/* Milliseconds left until deadline, at least 0. */
static int left_ms(int64_t deadline)
{
    int64_t left = deadline - wasl_clock_ms();
    return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Waits until fd is ready for events, or the deadline. 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, left_ms(deadline));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return n < 0 ? -1 : n;
    }
}

/* A non-blocking socket connected to one of url's addresses before the deadline, or -1 with
 * err set. A name is resolved by getaddrinfo (numeric addresses need no resolver). */
static int connect_to(const mailgate_http_url_t *url, int64_t deadline, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(url->host, url->port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %.100s: %s", url->host, gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    snprintf(err, errlen, "no address for %.100s", url->host);
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            snprintf(err, errlen, "socket: %s", strerror(errno));
            continue;
        }
        int rc = connect(fd, a->ai_addr, a->ai_addrlen);
        if (rc < 0 && errno == EINPROGRESS) {
            int w = wait_fd(fd, POLLOUT, deadline);
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (w == 0) {
                soerr = ETIMEDOUT;
            } else if (w < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) {
                soerr = errno;
            }
            rc = soerr ? -1 : 0;
            errno = soerr;
        }
        if (rc < 0) {
            snprintf(err, errlen, "connect to %.100s port %s: %s", url->host, url->port,
                     errno == ETIMEDOUT ? "timed out" : strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    return fd;
}

/* Sends every byte of the iovecs before the deadline. 0, or -1 with errno (ETIMEDOUT). */
static int send_all(int fd, struct iovec *iov, int n, int64_t deadline)
{
    while (n > 0) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            int r = wait_fd(fd, POLLOUT, deadline);
            if (r <= 0) {
                errno = r == 0 ? ETIMEDOUT : errno;
                return -1;
            }
            continue;
        }
        if (w < 0) {
            return -1;
        }
        size_t done = (size_t)w;
        while (n > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

/* Reads what is there (waiting until the deadline). >0 bytes, 0 at the peer's close, -1 with
 * errno (ETIMEDOUT). */
static ssize_t recv_some(int fd, char *buf, size_t cap, int64_t deadline)
{
    for (;;) {
        ssize_t r = recv(fd, buf, cap, 0);
        if (r >= 0 || (errno != EAGAIN && errno != EINTR)) {
            return r;
        }
        int w = wait_fd(fd, POLLIN, deadline);
        if (w <= 0) {
            errno = w == 0 ? ETIMEDOUT : errno;
            return -1;
        }
    }
}

/* The streaming decoder of a chunked body: sizes, data, the CRLFs and the trailer. */
typedef struct {
    enum {
        CH_SIZE,
        CH_EXT,
        CH_SIZE_LF,
        CH_DATA,
        CH_DATA_CR,
        CH_DATA_LF,
        CH_TRAILER,
        CH_DONE
    } state;
    uint64_t left;       /* data bytes left in this chunk, or the size being read */
    unsigned digits;     /* hex digits of the size so far */
    unsigned trailer_at; /* bytes on the current trailer line */
} chunked_t;

/* Keeps n body bytes in the reply, dropping what does not fit. */
static void keep(mailgate_http_reply_t *reply, const char *p, size_t n)
{
    size_t room = reply->body_cap - 1 - reply->body_len;
    size_t take = n < room ? n : room;
    memcpy(reply->body + reply->body_len, p, take);
    reply->body_len += take;
    reply->body[reply->body_len] = '\0';
}

/* The size line ended: its data follows, or the trailer after the zero-size chunk. */
static int size_done(chunked_t *c)
{
    if (c->digits == 0) {
        return -1;
    }
    c->state = c->left == 0 ? CH_TRAILER : CH_DATA;
    c->digits = 0;
    return 0;
}

/* One byte of chunk framing (not data). 0 carry on, -1 broken. */
static int chunk_frame_byte(chunked_t *c, char ch)
{
    unsigned char u = (unsigned char)ch;
    switch (c->state) {
    case CH_SIZE:
        if (isxdigit(u)) {
            if (++c->digits > 15) { /* 2^60 bytes: a lie, not a chunk */
                return -1;
            }
            c->left = c->left * 16 + (uint64_t)(isdigit(u) ? u - '0' : tolower(u) - 'a' + 10);
            return 0;
        }
        if (ch == '\n') {
            return size_done(c);
        }
        c->state = ch == '\r' ? CH_SIZE_LF : CH_EXT;
        return c->digits > 0 && (ch == '\r' || ch == ';' || ch == ' ' || ch == '\t') ? 0 : -1;
    case CH_EXT:
        if (ch == '\n') {
            return size_done(c);
        }
        c->state = ch == '\r' ? CH_SIZE_LF : CH_EXT;
        return 0;
    case CH_SIZE_LF:
        return ch == '\n' ? size_done(c) : -1;
    case CH_DATA_CR:
        c->state = ch == '\r' ? CH_DATA_LF : CH_SIZE;
        return ch == '\r' || ch == '\n' ? 0 : -1;
    case CH_DATA_LF:
        c->state = CH_SIZE;
        return ch == '\n' ? 0 : -1;
    case CH_TRAILER: /* header lines until an empty one */
        if (ch == '\n') {
            c->state = c->trailer_at == 0 ? CH_DONE : CH_TRAILER;
            c->trailer_at = 0;
        } else if (ch != '\r' && ++c->trailer_at > MAILGATE_HTTP_HEAD_MAX) {
            return -1;
        }
        return 0;
    default:
        return 0;
    }
}

/* Feeds n received bytes to the decoder. 1 when the last chunk and trailer are complete, 0 for
 * more, -1 when the framing is broken. */
static int chunked_feed(chunked_t *c, const char *p, size_t n, mailgate_http_reply_t *reply)
{
    for (size_t i = 0; i < n && c->state != CH_DONE;) {
        if (c->state == CH_DATA) {
            size_t take = n - i < c->left ? n - i : (size_t)c->left;
            keep(reply, p + i, take);
            c->left -= take;
            i += take;
            c->state = c->left == 0 ? CH_DATA_CR : CH_DATA;
        } else if (chunk_frame_byte(c, p[i++]) < 0) {
            return -1;
        }
    }
    return c->state == CH_DONE ? 1 : 0;
}

/* The length of the head (through its empty line) in buf[0..n), or 0 when not complete. */
static size_t head_end(const char *buf, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (buf[i] == '\n' &&
            (buf[i + 1] == '\n' || (buf[i + 1] == '\r' && i + 2 < n && buf[i + 2] == '\n'))) {
            return i + (buf[i + 1] == '\n' ? 2 : 3);
        }
    }
    return 0;
}

/* What the head says: the status, and how the body is framed. */
typedef struct {
    long status;
    bool chunked;
    bool has_length;
    uint64_t length;
} head_t;

/* The value of header `name` in head[0..n) (case-insensitive), or NULL; *vlen its length. */
static const char *header_value(const char *head, size_t n, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    for (const char *line = memchr(head, '\n', n); line && line + 1 < head + n;
         line = memchr(line + 1, '\n', (size_t)(head + n - line - 1))) {
        const char *s = line + 1;
        size_t rest = (size_t)(head + n - s);
        if (rest > nl && strncasecmp(s, name, nl) == 0 && s[nl] == ':') {
            const char *v = s + nl + 1, *end = memchr(v, '\n', (size_t)(head + n - v));
            end = end ? end : head + n;
            while (v < end && (*v == ' ' || *v == '\t')) {
                v++;
            }
            while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t')) {
                end--;
            }
            *vlen = (size_t)(end - v);
            return v;
        }
    }
    return NULL;
}

/* Parses the status line and the framing headers. 0, or -1 when it is not an HTTP answer. */
static int parse_head(const char *head, size_t n, head_t *h)
{
    memset(h, 0, sizeof *h);
    if (n < 12 || strncmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ' ||
        !isdigit((unsigned char)head[9]) || !isdigit((unsigned char)head[10]) ||
        !isdigit((unsigned char)head[11])) {
        return -1;
    }
    h->status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
    size_t vl = 0;
    const char *te = header_value(head, n, "Transfer-Encoding", &vl);
    h->chunked = te && vl >= 7 && strncasecmp(te + vl - 7, "chunked", 7) == 0;
    const char *cl = header_value(head, n, "Content-Length", &vl);
    if (cl && !h->chunked) {
        char digits[24];
        if (vl == 0 || vl >= sizeof digits) {
            return -1;
        }
        memcpy(digits, cl, vl);
        digits[vl] = '\0';
        char *end;
        errno = 0;
        unsigned long long v = strtoull(digits, &end, 10);
        if (errno || *end || digits[0] == '-') {
            return -1;
        }
        h->has_length = true;
        h->length = v;
    }
    return 0;
}

/* Reads the body that follows the head (already[0..n) received with it) into the reply, up to
 * its end, the close, or the reply buffer's bound. 0, or -1 with reply->error. */
static int read_body(int fd, const head_t *h, const char *already, size_t n, int64_t deadline,
                     mailgate_http_reply_t *reply)
{
    chunked_t ch = {.state = CH_SIZE};
    uint64_t got = 0;
    char buf[8192];
    const char *p = already;
    for (;;) {
        if (h->chunked) {
            int rc = chunked_feed(&ch, p, n, reply);
            if (rc != 0) {
                return rc > 0
                           ? 0
                           : (snprintf(reply->error, sizeof reply->error, "broken chunked answer"),
                              -1);
            }
        } else {
            size_t take = h->has_length && h->length - got < n ? (size_t)(h->length - got) : n;
            keep(reply, p, take);
            got += take;
            if (h->has_length && got >= h->length) {
                return 0;
            }
        }
        if (reply->body_len + 1 >= reply->body_cap) {
            return 0; /* enough of it for the diagnostic line */
        }
        ssize_t r = recv_some(fd, buf, sizeof buf, deadline);
        if (r == 0) {
            return 0; /* the close ends the body; a cut-short error body is still a status */
        }
        if (r < 0) {
            return 0; /* the status is known; a body lost to a timeout does not change it */
        }
        p = buf;
        n = (size_t)r;
    }
}

/* Reads the answer: the head, then for a non-2xx status its body. 0, or -1 with reply->error. */
static int read_answer(int fd, int64_t deadline, mailgate_http_reply_t *reply)
{
    char *head = malloc(MAILGATE_HTTP_HEAD_MAX);
    if (!head) {
        snprintf(reply->error, sizeof reply->error, "out of memory");
        return -1;
    }
    size_t n = 0, end = 0;
    int rc = -1;
    while (end == 0) {
        if (n == MAILGATE_HTTP_HEAD_MAX) {
            snprintf(reply->error, sizeof reply->error,
                     "the answer's header is longer than %d bytes", MAILGATE_HTTP_HEAD_MAX);
            goto done;
        }
        ssize_t r = recv_some(fd, head + n, MAILGATE_HTTP_HEAD_MAX - n, deadline);
        if (r <= 0) {
            snprintf(reply->error, sizeof reply->error, "%s",
                     r == 0               ? "connection closed before a complete answer"
                     : errno == ETIMEDOUT ? "timed out waiting for the answer"
                                          : strerror(errno));
            goto done;
        }
        n += (size_t)r;
        end = head_end(head, n);
    }
    head_t h;
    if (parse_head(head, end, &h) < 0) {
        snprintf(reply->error, sizeof reply->error, "not an HTTP answer");
        goto done;
    }
    if (h.status / 100 != 2 && read_body(fd, &h, head + end, n - end, deadline, reply) < 0) {
        goto done;
    }
    reply->status = h.status; /* 1xx never comes: we send no Expect */
    rc = 0;
done:
    free(head);
    return rc;
}

/* Writes the request head into buf. Its length, or 0 when it does not fit. */
static size_t request_head(char *buf, size_t cap, const mailgate_http_url_t *url,
                           const char *suffix, const char *ctype, const char *token, size_t len)
{
    bool v6 = strchr(url->host, ':') != NULL;
    int n = snprintf(buf, cap,
                     "POST %.*s%s HTTP/1.1\r\nHost: %s%s%s:%s\r\n"
                     "User-Agent: wasl-mailgate/" WASL_VERSION "\r\n"
                     "Content-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n"
                     "%s%s%s\r\n",
                     (int)url->path_len, url->path, suffix, v6 ? "[" : "", url->host, v6 ? "]" : "",
                     url->port, ctype, len, token && *token ? "Authorization: Bearer " : "",
                     token && *token ? token : "", token && *token ? "\r\n" : "");
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

int mailgate_http_post(const mailgate_http_url_t *url, const char *path_suffix,
                       const char *content_type, const char *token, const char *body, size_t len,
                       long connect_ms, long total_ms, mailgate_http_reply_t *reply)
{
    int64_t start = wasl_clock_ms();
    int64_t deadline = start + total_ms;
    int64_t connect_deadline = start + (connect_ms < total_ms ? connect_ms : total_ms);
    reply->status = 0;
    reply->body_len = 0;
    reply->body[0] = '\0';
    reply->error[0] = '\0';
    char *head = malloc(REQUEST_HEAD_MAX);
    if (!head) {
        snprintf(reply->error, sizeof reply->error, "out of memory");
        return -1;
    }
    size_t hlen = request_head(head, REQUEST_HEAD_MAX, url, path_suffix, content_type, token, len);
    int fd = hlen ? connect_to(url, connect_deadline, reply->error, sizeof reply->error) : -1;
    int rc = -1;
    if (!hlen) {
        snprintf(reply->error, sizeof reply->error, "the request's header is too long");
    } else if (fd >= 0) {
        struct iovec iov[2] = {{.iov_base = head, .iov_len = hlen},
                               {.iov_base = (void *)body, .iov_len = len}};
        int sent = send_all(fd, iov, 2, deadline);
        int send_errno = errno;
        /* A server may answer and close before reading everything (a 413, a 401): its answer,
         * when one came, says more than our broken pipe. */
        rc = read_answer(fd, deadline, reply);
        if (rc < 0 && sent < 0) {
            snprintf(reply->error, sizeof reply->error, "sending the message: %s",
                     send_errno == ETIMEDOUT ? "timed out" : strerror(send_errno));
        }
        close(fd);
    }
    memset(head, 0, REQUEST_HEAD_MAX); /* the token does not outlive its use */
    free(head);
    return rc;
}
