/* mailgate — hands one message from an MTA to intake over HTTP and maps the answer to sysexits. */
#include "mailgate.h"

#include "http.h"
#include "tls.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#define READ_CHUNK_BYTES 65536

int mailgate_read_all(FILE *in, size_t max_bytes, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    size_t cap = 0, used = 0;
    char *data = NULL;
    for (;;) {
        if (used + 1 >= cap) { /* keep room for the NUL */
            size_t grown = cap ? cap * 2 : READ_CHUNK_BYTES;
            char *bigger = grown > cap ? realloc(data, grown) : NULL;
            if (!bigger) {
                free(data);
                return -1;
            }
            data = bigger;
            cap = grown;
        }
        size_t n = fread(data + used, 1, cap - used - 1, in);
        used += n;
        if (used > max_bytes) {
            free(data);
            return 1;
        }
        if (n == 0) {
            if (ferror(in)) {
                free(data);
                return -1;
            }
            break; /* end of input */
        }
    }
    data[used] = '\0';
    *buf = data;
    *len = used;
    return 0;
}

int mailgate_exit_code(long status)
{
    if (status >= 200 && status < 300) {
        return EX_OK;
    }
    if (status == 401 || status == 403 || status == 408 || status == 429) {
        return EX_TEMPFAIL;
    }
    if (status >= 400 && status < 500) {
        return EX_DATAERR;
    }
    return EX_TEMPFAIL;
}

/* Copies s as one printable line of at most max bytes: control characters become spaces. */
static void one_line(const char *s, size_t len, char *out, size_t outlen, size_t max)
{
    if (outlen == 0) {
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < len && k + 1 < outlen && k < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n' && k > 0) {
            break;
        }
        out[k++] = c < 0x20 || c == 0x7F ? ' ' : (char)c;
    }
    /* do not end inside a UTF-8 sequence */
    while (k > 0 && ((unsigned char)out[k - 1] & 0x80)) {
        size_t start = k - 1;
        while (start > 0 && ((unsigned char)out[start] & 0xC0) == 0x80) {
            start--;
        }
        unsigned char lead = (unsigned char)out[start];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (k - start >= need) {
            break;
        }
        k = start;
    }
    out[k] = '\0';
}

void mailgate_error_summary(const char *body, size_t len, char *out, size_t outlen)
{
    if (outlen == 0) {
        return;
    }
    out[0] = '\0';
    if (!body || len == 0) {
        return;
    }
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *error = root ? json_object_get(root, "error") : NULL;
    const char *message = json_string_value(json_object_get(error, "message"));
    const char *code = json_string_value(json_object_get(error, "code"));
    if (message) {
        char text[MAILGATE_DIAG_MESSAGE_MAX + 1];
        one_line(message, strlen(message), text, sizeof text, MAILGATE_DIAG_MESSAGE_MAX);
        if (code) {
            char c[64];
            one_line(code, strlen(code), c, sizeof c, sizeof c - 1);
            snprintf(out, outlen, "%s (%s)", text, c);
        } else {
            snprintf(out, outlen, "%s", text);
        }
    } else {
        one_line(body, len, out, outlen, MAILGATE_DIAG_MESSAGE_MAX);
    }
    json_decref(root);
}

int mailgate_post(const mailgate_opts_t *opts, const char *msg, size_t len, char *diag,
                  size_t diaglen)
{
    if (diaglen) {
        diag[0] = '\0';
    }
    size_t base = strlen(opts->url);
    while (base > 0 && opts->url[base - 1] == '/') {
        base--;
    }
    char *url = malloc(base + sizeof MAILGATE_PATH);
    char *reply = malloc(MAILGATE_REPLY_MAX + 1);
    if (!url || !reply) {
        free(url);
        free(reply);
        snprintf(diag, diaglen, "out of memory (temporary failure, the MTA will retry)");
        return EX_TEMPFAIL;
    }
    memcpy(url, opts->url, base);
    memcpy(url + base, MAILGATE_PATH, sizeof MAILGATE_PATH);
    long status = 0;
    size_t reply_len = 0;
    char err[160] = "";
    mailgate_http_url_t hu;
    if (mailgate_http_url_parse(opts->url, &hu) == 0) {
        mailgate_http_reply_t r = {.body = reply, .body_cap = MAILGATE_REPLY_MAX + 1};
        mailgate_http_post(&hu, MAILGATE_PATH, "message/rfc822", opts->token, msg, len,
                           opts->connect_timeout_ms, opts->timeout_ms, &r);
        status = r.status;
        reply_len = r.body_len;
        snprintf(err, sizeof err, "%s", r.error);
    } else if (strncasecmp(opts->url, "https://", 8) == 0) {
        status = mailgate_tls_post(url, "message/rfc822", opts->token, msg, len,
                                   opts->connect_timeout_ms, opts->timeout_ms, reply,
                                   MAILGATE_REPLY_MAX + 1, err, sizeof err);
        reply_len = strlen(reply);
    } else {
        snprintf(err, sizeof err, "not an http:// or https:// URL");
    }
    int rc = mailgate_exit_code(status);
    if (status == 0) {
        snprintf(diag, diaglen,
                 "intake at %.200s unreachable: %s (temporary failure, the MTA will retry)", url,
                 err);
    } else if (rc != EX_OK) {
        char summary[MAILGATE_DIAG_MESSAGE_MAX + 80];
        mailgate_error_summary(reply, reply_len, summary, sizeof summary);
        snprintf(diag, diaglen, "intake answered HTTP %ld: %s (%s)", status,
                 summary[0] ? summary : "no message",
                 rc == EX_TEMPFAIL ? "temporary failure, the MTA will retry" : "message rejected");
    }
    free(url);
    free(reply);
    return rc;
}
