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
/* How long curl_multi_poll waits for a socket at most: the transfers' own timeouts are checked
 * by curl_multi_perform, so this only bounds how late one is noticed. */
#define SMS_POLL_MS 100

/* One SMS transfer in flight: its request's buffers, and where its result goes. */
typedef struct {
    CURL *h;          /* kept between batches (reset per use) */
    sms_send_t *send; /* NULL: the slot is free */
    char body[RESPONSE_MAX + 1];
    wasl_curl_body_t resp;
    char dlr[2048];
    char url[URL_MAX];
    struct curl_slist *hdrs;
    char *json;
    double t0;
} sms_xfer_t;

struct provider {
    const sms_config_t *sms;
    const mail_config_t *mail;
    CURL *http;   /* SMTP: kept between sends */
    CURLM *multi; /* SMS: its connection cache keeps the gateway connections between batches */
    sms_xfer_t xfers[PROVIDER_SMS_PARALLEL];
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
    self->multi = curl_multi_init();
    for (size_t i = 0; self->multi && i < PROVIDER_SMS_PARALLEL; i++) {
        self->xfers[i].h = curl_easy_init();
        if (!self->xfers[i].h) {
            break;
        }
    }
    if (!self->http || !self->multi || !self->xfers[PROVIDER_SMS_PARALLEL - 1].h) {
        wasl_error("notifier: curl_easy_init or curl_multi_init failed", NULL);
        goto error;
    }
    curl_multi_setopt(self->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)PROVIDER_SMS_PARALLEL);
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
    for (size_t i = 0; i < PROVIDER_SMS_PARALLEL; i++) {
        if (self->xfers[i].h) {
            curl_easy_cleanup(self->xfers[i].h);
        }
    }
    if (self->multi) {
        curl_multi_cleanup(self->multi);
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

/* Sets up x's easy handle for x->send (webhook body or Kannel URL, timeouts, the reply's
 * buffer). Returns 0, or -1 when the request cannot be made (x->send->result says why). */
static int sms_prepare(const sms_config_t *c, sms_xfer_t *x)
{
    sms_send_t *sd = x->send;
    CURL *h = x->h;
    curl_easy_reset(h);
    wasl_curl_body_init(&x->resp, x->body, sizeof x->body);
    x->dlr[0] = '\0';
    if (c->dlr_url && *c->dlr_url) {
        dlr_url_for(c, sd->id, x->dlr, sizeof x->dlr);
    }
    size_t len = (size_t)snprintf(x->url, sizeof x->url, "%s", c->url);
    if (c->mode == SMS_MODE_KANNEL) {
        if (kannel_url(h, c, sd->to, sd->text, sd->ucs2, x->dlr, x->url, len) < 0) {
            sd->result.status = SEND_PERMANENT;
            snprintf(sd->result.error, sizeof sd->result.error,
                     "message too long for a sendsms URL");
            return -1;
        }
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        x->json = webhook_body(c, sd->id, sd->to, sd->text, sd->ucs2, sd->segments, x->dlr);
        x->hdrs = x->json ? curl_slist_append(NULL, "Content-Type: application/json") : NULL;
        if (!x->hdrs) {
            sd->result.status = SEND_RETRY;
            snprintf(sd->result.error, sizeof sd->result.error, "out of memory");
            return -1;
        }
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->json);
        if (*c->user) {
            curl_easy_setopt(h, CURLOPT_USERNAME, c->user);
            curl_easy_setopt(h, CURLOPT_PASSWORD, c->password);
        }
    }
    curl_easy_setopt(h, CURLOPT_URL, x->url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, wasl_curl_body_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x->resp);
    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    x->t0 = wasl_clock_s();
    return 0;
}

/* A finished transfer: its result into x->send->result; the slot is free again. */
static void sms_finish(const sms_config_t *c, sms_xfer_t *x, CURLcode rc)
{
    send_result_t *out = &x->send->result;
    out->latency_s = wasl_clock_s() - x->t0;
    long code = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
    first_line(x->resp.data, out->provider_status, sizeof out->provider_status);
    classify(rc, code, false, out);
    if (out->status == SEND_OK) {
        sms_provider_id(c, x->send->id, x->resp.data, out);
    }
    curl_slist_free_all(x->hdrs);
    free(x->json);
    x->hdrs = NULL;
    x->json = NULL;
    x->send = NULL;
}

/* Puts x's send in flight; 0, or -1 when it could not be (its result then says why and the
 * slot is free again). */
static int sms_launch(provider_t *self, sms_xfer_t *x)
{
    memset(&x->send->result, 0, sizeof x->send->result);
    if (sms_prepare(self->sms, x) == 0 && curl_multi_add_handle(self->multi, x->h) == CURLM_OK) {
        return 0;
    }
    if (x->send->result.status == SEND_OK) {
        x->send->result.status = SEND_RETRY;
        snprintf(x->send->result.error, sizeof x->send->result.error,
                 "curl_multi_add_handle failed");
    }
    curl_slist_free_all(x->hdrs);
    free(x->json);
    x->hdrs = NULL;
    x->json = NULL;
    x->send = NULL;
    return -1;
}

/* Starts sends[*next…] in the free slots (those that cannot be made are answered at once).
 * Returns how many transfers are in flight. */
static size_t sms_start(provider_t *self, sms_send_t *sends, size_t n, size_t *next, size_t active)
{
    size_t i = 0;
    while (i < PROVIDER_SMS_PARALLEL && *next < n) {
        sms_xfer_t *x = &self->xfers[i];
        if (x->send) {
            i++;
            continue;
        }
        x->send = &sends[(*next)++];
        if (sms_launch(self, x) == 0) {
            active++;
            i++;
        } /* else the slot stays free for the next send */
    }
    return active;
}

void provider_send_sms_many(provider_t *self, sms_send_t *sends, size_t n)
{
    assert(self && (sends || n == 0));
    size_t next = 0, active = sms_start(self, sends, n, &next, 0);
    while (active > 0) {
        int running = 0;
        curl_multi_perform(self->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(self->multi, &left))) {
            if (msg->msg != CURLMSG_DONE) {
                continue;
            }
            sms_xfer_t *x = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            CURLcode rc = msg->data.result;
            curl_multi_remove_handle(self->multi, msg->easy_handle);
            sms_finish(self->sms, x, rc);
            active--;
        }
        active = sms_start(self, sends, n, &next, active);
        if (active > 0) {
            curl_multi_poll(self->multi, NULL, 0, SMS_POLL_MS, NULL);
        }
    }
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
