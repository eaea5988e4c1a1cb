/* provider — SMS (Kannel sendsms, JSON webhook) and SMTP email with GMime-built MIME. */
#include "provider.h"
#include "wasl_curl.h"
#include "wasl_clock.h"
#include "wasl_log.h"

#include <assert.h>
#include <curl/curl.h>
#include <gmime/gmime.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RESPONSE_MAX    4096
#define KANNEL_DLR_MASK "31" /* delivered, failed, buffered, submitted, rejected */
#define URL_MAX         8192

struct provider {
    const sms_config_t *sms;
    const mail_config_t *mail;
    CURL *http; /* kept between sends: the gateway connection is reused */
    char mail_from_addr[320];
};

provider_t *provider_new(const sms_config_t *sms, const mail_config_t *mail)
{
    assert(sms && mail);
    provider_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->sms = sms;
    self->mail = mail;
    self->http = curl_easy_init();
    if (!self->http) {
        wasl_error("notifier: curl_easy_init failed", NULL);
        goto error;
    }
    InternetAddressList *list = internet_address_list_parse(NULL, mail->from);
    InternetAddress *a = list && internet_address_list_length(list) > 0
                             ? internet_address_list_get_address(list, 0)
                             : NULL;
    if (!a || !INTERNET_ADDRESS_IS_MAILBOX(a)) {
        wasl_error("notifier: WASL_MAIL_FROM is not a mail address", "{s:s}", "value", mail->from);
        if (list) {
            g_object_unref(list);
        }
        goto error;
    }
    snprintf(self->mail_from_addr, sizeof self->mail_from_addr, "%s",
             internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a)));
    g_object_unref(list);
    return self;
error:
    provider_destroy(&self);
    return NULL;
}

void provider_destroy(provider_t **self_p)
{
    assert(self_p);
    provider_t *self = *self_p;
    if (!self) {
        return;
    }
    if (self->http) {
        curl_easy_cleanup(self->http);
    }
    free(self);
    *self_p = NULL;
}

/* Sorts a finished transfer into ok / retry / permanent. */
static void classify(CURLcode rc, long code, bool smtp, send_result_t *out)
{
    out->http_status = code;
    if (rc == CURLE_OK && !smtp && code >= 200 && code < 300) {
        out->status = SEND_OK;
        return;
    }
    if (rc == CURLE_OK && smtp) {
        out->status = SEND_OK;
        return;
    }
    if (smtp) {
        /* 5xx replies are final (unknown mailbox, refused); 4xx and transport trouble are not. */
        out->status =
            (code >= 500 && code < 600) || rc == CURLE_LOGIN_DENIED ? SEND_PERMANENT : SEND_RETRY;
        snprintf(out->error, sizeof out->error, "smtp: %s (reply %ld)", curl_easy_strerror(rc),
                 code);
        return;
    }
    if (rc != CURLE_OK) {
        out->status = SEND_RETRY;
        snprintf(out->error, sizeof out->error, "http: %s", curl_easy_strerror(rc));
        return;
    }
    out->status = (code >= 500 || code == 408 || code == 429) ? SEND_RETRY : SEND_PERMANENT;
    snprintf(out->error, sizeof out->error, "http %ld: %s", code, out->provider_status);
}

/* Copies the first line of a response, trimmed, as the provider's status. */
static void first_line(const char *s, char *out, size_t cap)
{
    size_t n = strcspn(s, "\r\n");
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
        n--;
    }
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), s);
}

static int append_param(CURL *h, char *url, size_t cap, size_t *len, const char *key,
                        const char *value)
{
    char *esc = curl_easy_escape(h, value, 0);
    if (!esc) {
        return -1;
    }
    int n = snprintf(url + *len, cap - *len, "%s%s=%s", strchr(url, '?') ? "&" : "?", key, esc);
    curl_free(esc);
    if (n < 0 || (size_t)n >= cap - *len) {
        return -1;
    }
    *len += (size_t)n;
    return 0;
}

/* The DLR URL for notification id: the configured one with nid and Kannel's %d (status) and
 * %T (time) escapes, which Kannel fills in when it calls back. */
static void dlr_url_for(const sms_config_t *c, int64_t id, char *out, size_t cap)
{
    snprintf(out, cap, "%s%snid=%lld&status=%%d&ts=%%T", c->dlr_url,
             strchr(c->dlr_url, '?') ? "&" : "?", (long long)id);
}

/* Kannel's sendsms GET: every field a query parameter of url (len bytes used so far). 0, or
 * -1 when the URL would be longer than URL_MAX. */
static int kannel_url(CURL *h, const sms_config_t *c, const char *to, const char *text, bool ucs2,
                      const char *dlr, char *url, size_t len)
{
    size_t cap = URL_MAX;
    if (append_param(h, url, cap, &len, "username", c->user) < 0 ||
        append_param(h, url, cap, &len, "password", c->password) < 0 ||
        append_param(h, url, cap, &len, "to", to) < 0 ||
        append_param(h, url, cap, &len, "text", text) < 0 ||
        append_param(h, url, cap, &len, "charset", "UTF-8") < 0 ||
        (ucs2 && append_param(h, url, cap, &len, "coding", "2") < 0) ||
        (*c->from && append_param(h, url, cap, &len, "from", c->from) < 0)) {
        return -1;
    }
    if (*dlr && (append_param(h, url, cap, &len, "dlr-mask", KANNEL_DLR_MASK) < 0 ||
                 append_param(h, url, cap, &len, "dlr-url", dlr) < 0)) {
        return -1;
    }
    return 0;
}

/* The webhook's JSON body (the caller frees it), NULL when out of memory. */
static char *webhook_body(const sms_config_t *c, int64_t id, const char *to, const char *text,
                          bool ucs2, int segments, const char *dlr)
{
    json_t *doc = json_pack("{s:I, s:s, s:s, s:s, s:i}", "id", (json_int_t)id, "to", to, "text",
                            text, "coding", ucs2 ? "ucs2" : "gsm7", "segments", segments);
    if (doc && *dlr) {
        json_object_set_new(doc, "dlr_url", json_string(dlr));
    }
    if (doc && *c->from) {
        json_object_set_new(doc, "from", json_string(c->from));
    }
    char *json = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return json;
}

/* The id the gateway gave the accepted message, into out->provider_id. */
static void sms_provider_id(const sms_config_t *c, int64_t id, const char *body, send_result_t *out)
{
    json_t *doc = c->mode == SMS_MODE_WEBHOOK ? json_loads(body, 0, NULL) : NULL;
    json_t *pid = doc ? json_object_get(doc, "id") : NULL;
    if (json_is_string(pid)) {
        snprintf(out->provider_id, sizeof out->provider_id, "%s", json_string_value(pid));
    } else if (json_is_integer(pid)) {
        snprintf(out->provider_id, sizeof out->provider_id, "%lld",
                 (long long)json_integer_value(pid));
    } else {
        /* Kannel answers "0: Accepted for delivery" without an id of its own: the DLR comes
         * back with our notification id, so that is the id we keep. */
        snprintf(out->provider_id, sizeof out->provider_id, "%s:%lld",
                 c->mode == SMS_MODE_KANNEL ? "kannel" : "webhook", (long long)id);
    }
    json_decref(doc);
}

void provider_send_sms(provider_t *self, int64_t id, const char *to, const char *text, bool ucs2,
                       int segments, send_result_t *out)
{
    assert(self && to && text && out);
    memset(out, 0, sizeof *out);
    const sms_config_t *c = self->sms;
    CURL *h = self->http;
    curl_easy_reset(h);
    char body[RESPONSE_MAX + 1];
    wasl_curl_body_t resp;
    wasl_curl_body_init(&resp, body, sizeof body);
    char dlr[2048] = "";
    if (c->dlr_url && *c->dlr_url) {
        dlr_url_for(c, id, dlr, sizeof dlr);
    }
    struct curl_slist *hdrs = NULL;
    char *json = NULL;
    char url[URL_MAX];
    size_t len = (size_t)snprintf(url, sizeof url, "%s", c->url);
    if (c->mode == SMS_MODE_KANNEL) {
        if (kannel_url(h, c, to, text, ucs2, dlr, url, len) < 0) {
            out->status = SEND_PERMANENT;
            snprintf(out->error, sizeof out->error, "message too long for a sendsms URL");
            return;
        }
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        if (!(json = webhook_body(c, id, to, text, ucs2, segments, dlr))) {
            out->status = SEND_RETRY;
            snprintf(out->error, sizeof out->error, "out of memory");
            return;
        }
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
        if (*c->user) {
            curl_easy_setopt(h, CURLOPT_USERNAME, c->user);
            curl_easy_setopt(h, CURLOPT_PASSWORD, c->password);
        }
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, wasl_curl_body_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    double t0 = wasl_clock_s();
    CURLcode rc = curl_easy_perform(h);
    out->latency_s = wasl_clock_s() - t0;
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    first_line(resp.data, out->provider_status, sizeof out->provider_status);
    classify(rc, code, false, out);
    if (out->status == SEND_OK) {
        sms_provider_id(c, id, resp.data, out);
    }
    curl_slist_free_all(hdrs);
    free(json);
}

/* ---- email ------------------------------------------------------------------------------- */

char *provider_message_id(const provider_t *self, int64_t id, const char *token, char *out,
                          size_t cap)
{
    snprintf(out, cap, "<wasl.n%lld.%s@%s>", (long long)id, token, self->mail->domain);
    return out;
}

static void html_escape(GString *s, const char *text, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (text[i]) {
        case '&':
            g_string_append(s, "&amp;");
            break;
        case '<':
            g_string_append(s, "&lt;");
            break;
        case '>':
            g_string_append(s, "&gt;");
            break;
        case '"':
            g_string_append(s, "&quot;");
            break;
        default:
            g_string_append_c(s, text[i]);
        }
    }
}

char *provider_text_to_html(const char *text, const char *lang, const char *title)
{
    bool ar = strcmp(lang, "en") != 0;
    GString *s = g_string_new(NULL);
    g_string_append_printf(s,
                           "<!DOCTYPE html>\n<html lang=\"%s\" dir=\"%s\">\n<head>\n"
                           "<meta charset=\"utf-8\">\n<title>",
                           ar ? "ar" : "en", ar ? "rtl" : "ltr");
    html_escape(s, title, strlen(title));
    g_string_append_printf(s, "</title>\n</head>\n<body dir=\"%s\" style=\"text-align:%s\">\n",
                           ar ? "rtl" : "ltr", ar ? "right" : "left");
    const char *p = text;
    while (*p) {
        const char *end = strstr(p, "\n\n");
        size_t n = end ? (size_t)(end - p) : strlen(p);
        g_string_append(s, "<p dir=\"auto\">");
        const char *line = p;
        while (line < p + n) {
            const char *nl = memchr(line, '\n', (size_t)(p + n - line));
            size_t ln = nl ? (size_t)(nl - line) : (size_t)(p + n - line);
            html_escape(s, line, ln);
            line += ln;
            if (nl) {
                g_string_append(s, "<br>\n");
                line++;
            }
        }
        g_string_append(s, "</p>\n");
        p += n;
        while (*p == '\n') {
            p++;
        }
    }
    g_string_append(s, "</body>\n</html>\n");
    char *out = strdup(s->str);
    g_string_free(s, TRUE);
    return out;
}

static GMimeTextPart *text_part(const char *subtype, const char *text, bool base64)
{
    GMimeTextPart *part = g_mime_text_part_new_with_subtype(subtype);
    g_mime_text_part_set_text(part, text);
    g_mime_text_part_set_charset(part, "utf-8");
    g_mime_part_set_content_encoding(GMIME_PART(part),
                                     base64 ? GMIME_CONTENT_ENCODING_BASE64
                                            : GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
    return part;
}

char *provider_build_mail(const provider_t *self, const mail_msg_t *m)
{
    assert(self && m);
    char *html = provider_text_to_html(m->text, m->lang, m->subject);
    if (!html) {
        return NULL;
    }
    bool ar = strcmp(m->lang, "en") != 0;
    GMimeMessage *msg = g_mime_message_new(TRUE);
    InternetAddressList *from = internet_address_list_parse(NULL, self->mail->from);
    if (from) {
        internet_address_list_append(g_mime_message_get_from(msg), from);
        g_object_unref(from);
    }
    g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_TO, NULL, m->to);
    g_mime_message_set_subject(msg, m->subject, "utf-8");
    char mid[PROVIDER_ID_MAX];
    provider_message_id(self, m->id, m->msgid_token, mid, sizeof mid);
    mid[strlen(mid) - 1] = '\0';
    g_mime_message_set_message_id(msg, mid + 1); /* GMime adds the brackets */
    GDateTime *now = g_date_time_new_now_utc();
    g_mime_message_set_date(msg, now);
    g_date_time_unref(now);
    GMimeObject *obj = GMIME_OBJECT(msg);
    /* RFC 3834: an automatic message in answer to the beneficiary's; auto-responders stay quiet. */
    g_mime_object_set_header(obj, "Auto-Submitted", "auto-replied", NULL);
    g_mime_object_set_header(obj, "X-Auto-Response-Suppress", "All", NULL);
    g_mime_object_set_header(obj, "Content-Language", ar ? "ar" : "en", NULL);
    if (m->in_reply_to && *m->in_reply_to) {
        g_mime_object_set_header(obj, "In-Reply-To", m->in_reply_to, NULL);
        g_mime_object_set_header(obj, "References",
                                 m->references && *m->references ? m->references : m->in_reply_to,
                                 NULL);
    }
    GMimeMultipart *alt = g_mime_multipart_new_with_subtype("alternative");
    GMimeTextPart *plain = text_part("plain", m->text, ar);
    GMimeTextPart *rich = text_part("html", html, ar);
    g_mime_multipart_add(alt, GMIME_OBJECT(plain));
    g_mime_multipart_add(alt, GMIME_OBJECT(rich));
    g_object_unref(plain);
    g_object_unref(rich);
    g_mime_message_set_mime_part(msg, GMIME_OBJECT(alt));
    g_object_unref(alt);
    GMimeFormatOptions *fmt = g_mime_format_options_new();
    g_mime_format_options_set_newline_format(fmt, GMIME_NEWLINE_FORMAT_DOS);
    char *text = g_mime_object_to_string(obj, fmt);
    g_mime_format_options_free(fmt);
    g_object_unref(msg);
    free(html);
    char *out = text ? strdup(text) : NULL;
    g_free(text);
    return out;
}

typedef struct {
    const char *data;
    size_t len, pos;
} upload_t;

static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
    upload_t *u = arg;
    size_t take = size * n;
    if (take > u->len - u->pos) {
        take = u->len - u->pos;
    }
    memcpy(buf, u->data + u->pos, take);
    u->pos += take;
    return take;
}

void provider_send_mail(provider_t *self, const mail_msg_t *m, send_result_t *out)
{
    assert(self && m && out);
    memset(out, 0, sizeof *out);
    const mail_config_t *c = self->mail;
    if (!strchr(m->to, '@') || strpbrk(m->to, "<>\r\n ")) {
        out->status = SEND_PERMANENT;
        snprintf(out->error, sizeof out->error, "invalid email address");
        return;
    }
    char *data = provider_build_mail(self, m);
    if (!data) {
        out->status = SEND_RETRY;
        snprintf(out->error, sizeof out->error, "cannot build the message");
        return;
    }
    CURL *h = curl_easy_init();
    if (!h) {
        free(data);
        out->status = SEND_RETRY;
        snprintf(out->error, sizeof out->error, "curl_easy_init failed");
        return;
    }
    char from[400], rcpt_addr[400];
    snprintf(from, sizeof from, "<%s>", self->mail_from_addr);
    snprintf(rcpt_addr, sizeof rcpt_addr, "<%s>", m->to);
    struct curl_slist *rcpt = curl_slist_append(NULL, rcpt_addr);
    upload_t up = {data, strlen(data), 0};
    curl_easy_setopt(h, CURLOPT_URL, c->smtp_url);
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &up);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up.len);
    curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY); /* STARTTLS when offered */
    if (c->cainfo && *c->cainfo) {
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cainfo);
    }
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (*c->user) {
        curl_easy_setopt(h, CURLOPT_USERNAME, c->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, c->password);
    }
    double t0 = wasl_clock_s();
    CURLcode rc = curl_easy_perform(h);
    out->latency_s = wasl_clock_s() - t0;
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    classify(rc, code, true, out);
    if (out->status == SEND_OK) {
        provider_message_id(self, m->id, m->msgid_token, out->provider_id, sizeof out->provider_id);
        snprintf(out->provider_status, sizeof out->provider_status, "%ld", code);
    }
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(h);
    free(data);
}
