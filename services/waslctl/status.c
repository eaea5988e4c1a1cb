/* status — `waslctl status`: each daemon's /healthz and /readyz, as a table. */
#include "ctl.h"
#include "wasl_curl.h"
#include "wasl_config.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_TIMEOUT_MS 2000
#define STATUS_BODY_MAX   4096

/* GETs base+path; returns the HTTP status (0 when unreachable) and the body in `b`. */
static long http_get(CURL *curl, const char *base, const char *path, wasl_curl_body_t *b)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    b->len = 0;
    b->data[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)STATUS_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, wasl_curl_body_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    long code = 0;
    if (curl_easy_perform(curl) != CURLE_OK) {
        return 0;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

int ctl_status(int argc, char **argv)
{
    const char *targets;
    wasl_config_t *cfg = wasl_config_new(
        "waslctl status", "Asks each daemon's admin port for /healthz and /readyz; exits 0 when "
                          "every target is healthy, 1 otherwise.");
    if (!cfg) {
        return CTL_FAILED;
    }
    /* Every daemon on its default admin port (make up sets the stack's own list). */
    wasl_config_str(cfg, "WASL_STATUS_TARGETS",
                    "bus=http://127.0.0.1:9100,intake=http://127.0.0.1:9101,"
                    "classifier=http://127.0.0.1:9102,router=http://127.0.0.1:9103,"
                    "notifier=http://127.0.0.1:9104,caselookup=http://127.0.0.1:9105,"
                    "desk=http://127.0.0.1:9106",
                    "comma-separated name=http://host:port of each daemon's admin port", &targets);
    wasl_config_parse(cfg, argc, argv);
    char *list = strdup(targets);
    CURL *curl = curl_easy_init();
    int rc = CTL_OK, count = 0;
    if (!list || !curl) {
        rc = CTL_FAILED;
        goto done;
    }
    printf("%-12s %-28s %-8s %-10s %-12s %s\n", "DAEMON", "ADMIN", "HEALTH", "READY", "VERSION",
           "UPTIME_S");
    char *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (!eq || eq == t || strncmp(eq + 1, "http", 4) != 0) {
            fprintf(stderr,
                    "waslctl status: WASL_STATUS_TARGETS entry \"%s\" is not "
                    "name=http://host:port\n",
                    t);
            rc = CTL_USAGE;
            goto done;
        }
        *eq = '\0';
        const char *name = t, *base = eq + 1;
        char buf[STATUS_BODY_MAX];
        wasl_curl_body_t b;
        wasl_curl_body_init(&b, buf, sizeof buf);
        long health = http_get(curl, base, "/healthz", &b);
        char version[64] = "-";
        long long uptime = -1;
        json_t *doc = json_loads(b.data, 0, NULL);
        if (doc) {
            const char *v = json_string_value(json_object_get(doc, "version"));
            snprintf(version, sizeof version, "%s", v ? v : "-");
            json_t *u = json_object_get(doc, "uptime_s");
            uptime = json_is_integer(u) ? (long long)json_integer_value(u) : -1;
            json_decref(doc);
        }
        long ready = health ? http_get(curl, base, "/readyz", &b) : 0;
        const char *health_word = health == 200 ? "ok" : health ? "failing" : "down";
        const char *ready_word = ready == 200 ? "ready" : ready ? "not_ready" : "-";
        printf("%-12s %-28s %-8s %-10s %-12s ", name, base, health_word, ready_word, version);
        if (uptime >= 0) {
            printf("%lld\n", uptime);
        } else {
            printf("-\n");
        }
        if (health != 200) {
            rc = CTL_FAILED;
        }
        count++;
    }
    if (count == 0) {
        fprintf(stderr, "waslctl status: no targets\n");
        rc = CTL_USAGE;
    }
done:
    if (curl) {
        curl_easy_cleanup(curl);
    }
    free(list);
    wasl_config_destroy(&cfg);
    return rc;
}
