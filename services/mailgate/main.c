/* wasl-mailgate — entry point: an MTA pipes one message in, it goes to intake over HTTP. */
#include "mailgate.h"

#include "http.h"
#include "tls.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#define PROG "wasl-mailgate"
/* Longest token accepted (a file holding more is a mistake). */
#define TOKEN_MAX_BYTES 4096

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " [--url URL] [--token TOKEN | --token-file FILE] < message\n"
            "\n"
            "Reads one email message (RFC 5322) on standard input and POSTs it to intake at\n"
            "URL" MAILGATE_PATH " (Content-Type: message/rfc822, Authorization: Bearer TOKEN).\n"
            "An MTA runs it once per message.\n"
            "\n"
            "Options:\n"
            "  --url URL          intake's base URL (default: $WASL_HTTP_URL, "
            "else " MAILGATE_URL_DEFAULT ");\n"
            "                     http:// is spoken directly, https:// through libcurl\n"
            "                     (" MAILGATE_LIBCURL ", loaded only then)\n"
            "  --token TOKEN      bearer token of intake's email_gateway client (default:\n"
            "                     $WASL_TOKEN). Other local users can read a command line:\n"
            "                     prefer $WASL_TOKEN or --token-file.\n"
            "  --token-file FILE  read the token from the first line of FILE\n"
            "  --help, --version\n"
            "\n"
            "Environment:\n"
            "  WASL_HTTP_URL, WASL_TOKEN  as above\n"
            "  WASL_MAILGATE_MAX_BYTES    largest message accepted, in bytes (default %u)\n"
            "  WASL_MAILGATE_TIMEOUT_MS   the whole exchange with intake, in ms (default %d)\n"
            "\n"
            "Exit codes (sysexits, as Postfix and other MTAs read them):\n"
            "   0  delivered: intake answered 2xx.\n"
            "  65  EX_DATAERR: the message is empty, larger than WASL_MAILGATE_MAX_BYTES, or\n"
            "      intake rejected it (a 4xx not listed under 75): the MTA bounces it with the\n"
            "      reason printed on stderr.\n"
            "  75  EX_TEMPFAIL: intake unreachable, too slow (connect %d s, total %d s), or it\n"
            "      answered 5xx, 429, 408, 401 or 403: the MTA keeps the message and retries.\n"
            "      401 and 403 mean our token or configuration is wrong; that is our problem\n"
            "      to fix, and must not bounce a citizen's mail back to them.\n"
            "  64  EX_USAGE: bad arguments or environment.\n"
            "On failure one line goes to stderr: the HTTP status and intake's error message.\n"
            "\n"
            "Postfix, in master.cf (then route the court's address to \"wasl:\" with "
            "transport_maps):\n"
            "  wasl unix - n n - 10 pipe flags=Rq user=wasl argv=/usr/local/bin/" PROG
            " --url http://127.0.0.1:8080 --token-file /etc/wasl/mailgate.token\n",
            MAILGATE_MAX_BYTES_DEFAULT, MAILGATE_TIMEOUT_MS, MAILGATE_CONNECT_TIMEOUT_MS / 1000,
            MAILGATE_TIMEOUT_MS / 1000);
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, PROG ": %s%s%s (see --help)\n", what, arg ? ": " : "", arg ? arg : "");
    return EX_USAGE;
}

/* A token is sent in a header: printable ASCII only, no spaces. */
static bool token_ok(const char *token)
{
    size_t len = strlen(token);
    if (len > TOKEN_MAX_BYTES) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (token[i] <= 0x20 || token[i] >= 0x7F) {
            return false;
        }
    }
    return true;
}

/* Reads the first line of path into buf (without its line end). Returns 0 or -1. */
static int read_token_file(const char *path, char *buf, size_t cap)
{
    errno = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    bool ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    if (!ok) {
        return -1;
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/* Takes the value of --name VALUE or --name=VALUE at argv[*i]; NULL when argv[*i] is not --name.
 * *missing is set when --name has no value. */
static const char *option(int argc, char **argv, int *i, const char *name, bool *missing)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) {
        return NULL;
    }
    if (argv[*i][n] == '=') {
        return argv[*i] + n + 1;
    }
    if (argv[*i][n] != '\0') {
        return NULL;
    }
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

/* What the command line and the environment asked for. */
typedef struct {
    const char *url, *token, *token_file;
    size_t max_bytes;
    long timeout_ms;
    char token_buf[TOKEN_MAX_BYTES + 2];
} gate_args_t;

#define GO_ON (-1) /* not an exit code: the arguments were fine, carry on */

/* WASL_MAILGATE_TIMEOUT_MS into g->timeout_ms. GO_ON, or EX_USAGE. */
static int parse_timeout(gate_args_t *g)
{
    g->timeout_ms = MAILGATE_TIMEOUT_MS;
    const char *env = getenv("WASL_MAILGATE_TIMEOUT_MS");
    if (env && *env) {
        char *end;
        errno = 0;
        long v = strtol(env, &end, 10);
        if (errno || *end || v <= 0 || v > 3600000) {
            return usage_error("WASL_MAILGATE_TIMEOUT_MS must be 1..3600000 milliseconds", env);
        }
        g->timeout_ms = v;
    }
    return GO_ON;
}

/* Reads the options, the environment and the token file into g. GO_ON, or the exit code. */
static int parse_args(int argc, char **argv, gate_args_t *g)
{
    g->url = getenv("WASL_HTTP_URL");
    g->token = getenv("WASL_TOKEN");
    if (!g->url || !*g->url) {
        g->url = MAILGATE_URL_DEFAULT;
    }
    for (int i = 1; i < argc; i++) {
        bool missing = false;
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return EX_OK;
        }
        if (!strcmp(argv[i], "--version")) {
            printf(PROG " %s\n", WASL_VERSION);
            return EX_OK;
        }
        if ((v = option(argc, argv, &i, "--url", &missing))) {
            g->url = v;
        } else if ((v = option(argc, argv, &i, "--token-file", &missing))) {
            g->token_file = v;
        } else if ((v = option(argc, argv, &i, "--token", &missing))) {
            g->token = v;
        } else {
            return usage_error(missing ? "option needs a value" : "unknown argument", argv[i]);
        }
    }
    if (strncmp(g->url, "http://", 7) != 0 && strncmp(g->url, "https://", 8) != 0) {
        return usage_error("the URL must start with http:// or https://", g->url);
    }
    mailgate_http_url_t parsed;
    if (strncmp(g->url, "http://", 7) == 0 && mailgate_http_url_parse(g->url, &parsed) < 0) {
        return usage_error("not a base URL (http://host[:port][/path])", g->url);
    }
    if (g->token_file) {
        if (read_token_file(g->token_file, g->token_buf, sizeof g->token_buf) < 0) {
            fprintf(stderr, PROG ": cannot read the token file %s: %s (see --help)\n",
                    g->token_file, errno ? strerror(errno) : "empty");
            return EX_USAGE;
        }
        g->token = g->token_buf;
    }
    if (g->token && !token_ok(g->token)) {
        return usage_error("the token must be printable ASCII without spaces", NULL);
    }
    g->max_bytes = MAILGATE_MAX_BYTES_DEFAULT;
    const char *max_env = getenv("WASL_MAILGATE_MAX_BYTES");
    if (max_env && *max_env) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(max_env, &end, 10);
        if (errno || *end || v == 0 || max_env[0] == '-' || v > SIZE_MAX / 2) {
            return usage_error("WASL_MAILGATE_MAX_BYTES must be a positive number of bytes",
                               max_env);
        }
        g->max_bytes = (size_t)v;
    }
    return parse_timeout(g);
}

/* Reads the message from stdin into *msg (the caller frees it). GO_ON, or the exit code. */
static int read_message(size_t max_bytes, char **msg, size_t *len)
{
    int read_rc = mailgate_read_all(stdin, max_bytes, msg, len);
    if (read_rc > 0) {
        fprintf(stderr, PROG ": message larger than %zu bytes (message rejected)\n", max_bytes);
        return EX_DATAERR;
    }
    if (read_rc < 0) {
        fprintf(stderr,
                PROG ": cannot read the message on standard input: %s (temporary "
                     "failure, the MTA will retry)\n",
                strerror(errno));
        return EX_TEMPFAIL;
    }
    if (*len == 0) {
        free(*msg);
        *msg = NULL;
        fprintf(stderr, PROG ": empty message on standard input (message rejected)\n");
        return EX_DATAERR;
    }
    return GO_ON;
}

int main(int argc, char **argv)
{
    gate_args_t g = {0};
    int rc = parse_args(argc, argv, &g);
    char *msg = NULL;
    size_t len = 0;
    if (rc == GO_ON) {
        rc = read_message(g.max_bytes, &msg, &len);
    }
    if (rc == GO_ON) {
        mailgate_opts_t opts = {.url = g.url,
                                .token = g.token,
                                .connect_timeout_ms = MAILGATE_CONNECT_TIMEOUT_MS,
                                .timeout_ms = g.timeout_ms};
        char diag[1024];
        rc = mailgate_post(&opts, msg, len, diag, sizeof diag);
        if (rc != EX_OK) {
            fprintf(stderr, PROG ": %s\n", diag);
        }
    }
    free(msg);
    memset(g.token_buf, 0, sizeof g.token_buf);
    return rc;
}
