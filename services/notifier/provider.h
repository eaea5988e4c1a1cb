/* provider — the notifier's outgoing channels: SMS through Kannel's sendsms or a JSON webhook,
 * email through SMTP (libcurl) with the MIME message built by GMime. */
#ifndef WASL_NOTIFIER_PROVIDER_H
#define WASL_NOTIFIER_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    SEND_OK = 0,    /* the provider took the message */
    SEND_RETRY,     /* timeout, connection failure, 5xx, 429: try again later */
    SEND_PERMANENT, /* 4xx, refused recipient: retrying cannot help */
} send_status_t;

#define PROVIDER_ID_MAX    256
#define PROVIDER_ERROR_MAX 512

typedef struct {
    send_status_t status;
    long http_status;                  /* or the SMTP reply code; 0 when none */
    char provider_id[PROVIDER_ID_MAX]; /* the provider's id for the message ("" when none) */
    char provider_status[PROVIDER_ID_MAX];
    char error[PROVIDER_ERROR_MAX]; /* why, when not SEND_OK */
    double latency_s;
} send_result_t;

typedef enum { SMS_MODE_KANNEL = 0, SMS_MODE_WEBHOOK } sms_mode_t;
#define SMS_MODES "kannel|webhook"

typedef struct {
    sms_mode_t mode;
    const char *url;  /* sendsms base URL or webhook URL */
    const char *user; /* Kannel username / webhook basic-auth user ("" none) */
    const char *password;
    const char *from;    /* sender id ("" lets the gateway choose) */
    const char *dlr_url; /* delivery reports ("" none); the notification id is appended */
    long timeout_ms;
} sms_config_t;

typedef struct {
    const char *smtp_url; /* smtp://host:port or smtps:// */
    const char *user;     /* "" for no AUTH */
    const char *password;
    const char *from;   /* "Name <addr@domain>" */
    const char *domain; /* right-hand side of Message-IDs */
    const char *cainfo; /* CA bundle for the server's certificate ("" system default) */
    long timeout_ms;
} mail_config_t;

typedef struct provider provider_t;

/* Both configs are borrowed and must outlive the object. NULL on failure (logged). */
provider_t *provider_new(const sms_config_t *sms, const mail_config_t *mail);
void provider_destroy(provider_t **self_p);

/* At most this many SMS in flight at once (provider_send_sms_many): a batch's sends overlap, so
 * one slow gateway answer holds none of the others, without opening a connection per row. */
#define PROVIDER_SMS_PARALLEL 16

/* One SMS of a batch: the request (borrowed strings) and, after the call, its result. */
typedef struct {
    int64_t id;
    const char *to;
    const char *text;
    bool ucs2; /* coding=2 */
    int segments;
    send_result_t result;
} sms_send_t;

/* Sends the SMS of sends[0..n) concurrently (libcurl multi, PROVIDER_SMS_PARALLEL at once, the
 * gateway connections reused between batches) and fills each one's result. Returns when every one
 * has its answer or its timeout: about the configured timeout per PROVIDER_SMS_PARALLEL sends at
 * worst. */
void provider_send_sms_many(provider_t *self, sms_send_t *sends, size_t n);

/* An outgoing email, all strings borrowed. `in_reply_to` is the ticket's first inbound
 * Message-ID with its angle brackets, or NULL; `references` a space-separated list or NULL. */
typedef struct {
    int64_t id;
    const char *msgid_token; /* the notification's secret part of its Message-ID (32 hex) */
    const char *to;
    const char *lang;
    const char *subject;
    const char *text;
    const char *in_reply_to;
    const char *references;
} mail_msg_t;

/* The Message-ID of notification `id`, "<wasl.n<id>.<token>@domain>", into out. Stable (a
 * resend after a crash carries the same one, so receivers can drop the copy) and unguessable:
 * `token` is the row's random msgid_token, because a reply carrying this id threads into the
 * ticket whoever sends it (see intake's inbound.c). */
char *provider_message_id(const provider_t *self, int64_t id, const char *token, char *out,
                          size_t cap);

/* Builds the MIME message (multipart/alternative: text and RTL-aware HTML) as CRLF text. New
 * string the caller frees, NULL on failure. */
char *provider_build_mail(const provider_t *self, const mail_msg_t *m);

/* The HTML rendering of a plain-text body: escaped, a <p dir="auto"> per paragraph, the page
 * dir="rtl" for Arabic. New string, NULL on allocation failure. */
char *provider_text_to_html(const char *text, const char *lang, const char *title);

/* Builds and sends one email; on success provider_id is its Message-ID. */
void provider_send_mail(provider_t *self, const mail_msg_t *m, send_result_t *out);

#endif
