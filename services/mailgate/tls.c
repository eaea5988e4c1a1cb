/* mailgate tls — the https:// POST through a libcurl loaded at run time (see tls.h for why). */
#include "tls.h"

#include "wasl_curl.h"

#include <curl/curl.h> /* types and constants only: nothing of libcurl is linked */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The libcurl functions used, looked up by name. */
typedef struct {
    CURLcode (*global_init)(long);
    void (*global_cleanup)(void);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    const char *(*easy_strerror)(CURLcode);
    void (*easy_cleanup)(CURL *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} curl_api_t;

/* Fills api from handle. 0, or -1 when a symbol is missing. */
static int load_api(void *h, curl_api_t *api)
{
    /* POSIX: a dlsym result converts to a function pointer through this union-free cast. */
#define SYM(field, name) (*(void **)&api->field = dlsym(h, name)) != NULL
    return SYM(global_init, "curl_global_init") && SYM(global_cleanup, "curl_global_cleanup") &&
                   SYM(easy_init, "curl_easy_init") && SYM(easy_setopt, "curl_easy_setopt") &&
                   SYM(easy_perform, "curl_easy_perform") &&
                   SYM(easy_getinfo, "curl_easy_getinfo") &&
                   SYM(easy_strerror, "curl_easy_strerror") &&
                   SYM(easy_cleanup, "curl_easy_cleanup") &&
                   SYM(slist_append, "curl_slist_append") &&
                   SYM(slist_free_all, "curl_slist_free_all")
               ? 0
               : -1;
#undef SYM
}

/* The request's headers; *auth receives the Authorization line (wiped and freed by the
 * caller). NULL when out of memory. */
static struct curl_slist *request_headers(const curl_api_t *c, const char *ctype, const char *token,
                                          char **auth)
{
    char line[128];
    snprintf(line, sizeof line, "Content-Type: %s", ctype);
    struct curl_slist *headers = c->slist_append(NULL, line);
    /* No "Expect: 100-continue" round trip: intake answers at once either way. */
    struct curl_slist *h = headers ? c->slist_append(headers, "Expect:") : NULL;
    if (h && token && *token) {
        size_t n = strlen(token) + sizeof "Authorization: Bearer ";
        *auth = malloc(n);
        if (*auth) {
            snprintf(*auth, n, "Authorization: Bearer %s", token);
        }
        h = *auth ? c->slist_append(headers, *auth) : NULL;
    }
    if (!h) {
        c->slist_free_all(headers);
        return NULL;
    }
    return h;
}

/* One POST with libcurl loaded. The status, or 0 with err. */
static long post(const curl_api_t *c, const char *url, const char *ctype, const char *token,
                 const char *body, size_t len, long connect_ms, long total_ms,
                 wasl_curl_body_t *reply, char *err, size_t errlen)
{
    char *auth = NULL;
    long status = 0;
    CURL *curl = c->easy_init();
    struct curl_slist *headers = curl ? request_headers(c, ctype, token, &auth) : NULL;
    if (!headers) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    c->easy_setopt(curl, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    c->easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
#else
    c->easy_setopt(curl, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
    c->easy_setopt(curl, CURLOPT_POST, 1L);
    c->easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    c->easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    c->easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    c->easy_setopt(curl, CURLOPT_USERAGENT, "wasl-mailgate/" WASL_VERSION);
    c->easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    c->easy_setopt(curl, CURLOPT_TIMEOUT_MS, total_ms);
    c->easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    c->easy_setopt(curl, CURLOPT_WRITEFUNCTION, wasl_curl_body_write);
    c->easy_setopt(curl, CURLOPT_WRITEDATA, reply);
    CURLcode res = c->easy_perform(curl);
    if (res != CURLE_OK) {
        snprintf(err, errlen, "%s", c->easy_strerror(res));
    } else {
        c->easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    }
done:
    c->slist_free_all(headers);
    if (auth) {
        memset(auth, 0, strlen(auth)); /* the token does not outlive its use */
    }
    free(auth);
    if (curl) {
        c->easy_cleanup(curl);
    }
    return status;
}

long mailgate_tls_post(const char *url, const char *content_type, const char *token,
                       const char *body, size_t len, long connect_ms, long total_ms, char *reply,
                       size_t cap, char *err, size_t errlen)
{
    wasl_curl_body_t rb;
    wasl_curl_body_init(&rb, reply, cap);
    err[0] = '\0';
    void *h = dlopen(MAILGATE_LIBCURL, RTLD_NOW | RTLD_LOCAL);
    curl_api_t c;
    if (!h || load_api(h, &c) < 0) {
        snprintf(err, errlen, "https needs %s: %s", MAILGATE_LIBCURL,
                 h ? "a libcurl function is missing" : dlerror());
        if (h) {
            dlclose(h);
        }
        return 0;
    }
    long status = 0;
    if (c.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "cannot initialise libcurl");
    } else {
        status =
            post(&c, url, content_type, token, body, len, connect_ms, total_ms, &rb, err, errlen);
        c.global_cleanup();
    }
    dlclose(h);
    return status;
}
