/* mailgate — hands one message from an MTA to intake over HTTP and maps the answer to sysexits. */
#include "mailgate.h"
#include "wasl_curl.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
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

/* The request's headers; *auth receives the Authorization line (the caller wipes and frees
 * it). NULL when out of memory. */
static struct curl_slist *request_headers(const char *token, char **auth)
{
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: message/rfc822");
    /* No "Expect: 100-continue" round trip: intake answers at once either way. */
    struct curl_slist *h = headers ? curl_slist_append(headers, "Expect:") : NULL;
    if (h && token && *token) {
        size_t n = strlen(token) + sizeof "Authorization: Bearer ";
        *auth = malloc(n);
        if (*auth) {
            snprintf(*auth, n, "Authorization: Bearer %s", token);
        }
        h = *auth ? curl_slist_append(headers, *auth) : NULL;
    }
    if (!h) {
        curl_slist_free_all(headers);
        return NULL;
    }
    return h;
}

/* One POST of the message to url, answered into reply, within the options' timeouts. */
static void set_request(CURL *curl, const char *url, struct curl_slist *headers, const char *msg,
                        size_t len, const mailgate_opts_t *opts, wasl_curl_body_t *reply)
{
    curl_easy_setopt(curl, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, msg);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "wasl-mailgate/" WASL_VERSION);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, opts->connect_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, opts->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, wasl_curl_body_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, reply);
}

int mailgate_post(const mailgate_opts_t *opts, const char *msg, size_t len, char *diag,
                  size_t diaglen)
{
    int rc = EX_TEMPFAIL;
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = NULL;
    char *url = NULL, *auth = NULL;
    char *reply_buf = malloc(MAILGATE_REPLY_MAX + 1);
    wasl_curl_body_t reply_body, *reply = &reply_body;
    if (reply_buf) {
        wasl_curl_body_init(reply, reply_buf, MAILGATE_REPLY_MAX + 1);
    }
    if (diaglen) {
        diag[0] = '\0';
    }
    size_t base = strlen(opts->url);
    while (base > 0 && opts->url[base - 1] == '/') {
        base--;
    }
    url = malloc(base + sizeof MAILGATE_PATH);
    if (!curl || !reply_buf || !url) {
        snprintf(diag, diaglen, "out of memory (temporary failure, the MTA will retry)");
        goto done;
    }
    memcpy(url, opts->url, base);
    memcpy(url + base, MAILGATE_PATH, sizeof MAILGATE_PATH);

    headers = request_headers(opts->token, &auth);
    if (!headers) {
        snprintf(diag, diaglen, "out of memory (temporary failure, the MTA will retry)");
        goto done;
    }
    set_request(curl, url, headers, msg, len, opts, reply);

    CURLcode res = curl_easy_perform(curl);
    if (res != CURLE_OK) {
        snprintf(diag, diaglen,
                 "intake at %.200s unreachable: %s (temporary failure, the MTA "
                 "will retry)",
                 url, curl_easy_strerror(res));
        goto done;
    }
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    rc = mailgate_exit_code(status);
    if (rc != EX_OK) {
        char summary[MAILGATE_DIAG_MESSAGE_MAX + 80];
        mailgate_error_summary(reply->data, reply->len, summary, sizeof summary);
        snprintf(diag, diaglen, "intake answered HTTP %ld: %s (%s)", status,
                 summary[0] ? summary : "no message",
                 rc == EX_TEMPFAIL ? "temporary failure, the MTA will retry" : "message rejected");
    }
done:
    curl_slist_free_all(headers);
    if (auth) {
        memset(auth, 0, strlen(auth)); /* the token does not outlive its use */
    }
    free(auth);
    free(url);
    free(reply_buf);
    curl_easy_cleanup(curl);
    return rc;
}
