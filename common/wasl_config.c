/* wasl_config — WASL_* environment configuration with defaults, validation and --help. */
#include "wasl_config.h"
#include "wasl_log.h"
#include "wasl_zmq.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifndef WASL_VERSION
#define WASL_VERSION "dev"
#endif

typedef enum { CFG_STR, CFG_INT, CFG_BOOL, CFG_ENUM } cfg_type_t;

typedef struct {
    const char *name;
    const char *help;
    cfg_type_t type;
    const char *def_str; /* CFG_STR, CFG_ENUM */
    long def_int, min, max;
    bool def_bool;
    const char *choices;
    void *dest;
} cfg_var_t;

/* Room for every daemon's variables; registering more is a programmer error. */
#define CFG_MAX_VARS 64

struct wasl_config {
    const char *prog;
    const char *summary;
    cfg_var_t vars[CFG_MAX_VARS];
    size_t nvars;
    /* Values of the common daemon variables, when wasl_config_daemon() registered them. */
    int log_level;
    const char *admin_bind;
    long admin_port;
};

wasl_config_t *wasl_config_new(const char *prog, const char *summary)
{
    wasl_config_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->prog = prog;
    self->summary = summary;
    self->log_level = WASL_LOG_INFO;
    self->admin_bind = "127.0.0.1";
    return self;
}

void wasl_config_destroy(wasl_config_t **self_p)
{
    assert(self_p);
    free(*self_p);
    *self_p = NULL;
}

static cfg_var_t *add_var(wasl_config_t *self, const char *name, const char *help, cfg_type_t type,
                          void *dest)
{
    assert(self && name && dest);
    assert(strncmp(name, "WASL_", 5) == 0);
    assert(self->nvars < CFG_MAX_VARS);
    cfg_var_t *v = &self->vars[self->nvars++];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->help = help ? help : "";
    v->type = type;
    v->dest = dest;
    return v;
}

void wasl_config_str(wasl_config_t *self, const char *name, const char *def, const char *help,
                     const char **dest)
{
    cfg_var_t *v = add_var(self, name, help, CFG_STR, dest);
    v->def_str = def ? def : "";
    *dest = v->def_str;
}

void wasl_config_int(wasl_config_t *self, const char *name, long def, long min, long max,
                     const char *help, long *dest)
{
    assert(min <= def && def <= max);
    cfg_var_t *v = add_var(self, name, help, CFG_INT, dest);
    v->def_int = def;
    v->min = min;
    v->max = max;
    *dest = def;
}

void wasl_config_bool(wasl_config_t *self, const char *name, bool def, const char *help, bool *dest)
{
    cfg_var_t *v = add_var(self, name, help, CFG_BOOL, dest);
    v->def_bool = def;
    *dest = def;
}

/* Index of `word` in the '|'-separated list, or -1. */
static int choice_index(const char *choices, const char *word)
{
    size_t wlen = strlen(word);
    int idx = 0;
    for (const char *p = choices; *p; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == wlen && strncmp(p, word, len) == 0) {
            return idx;
        }
        if (!bar) {
            break;
        }
        p = bar + 1;
    }
    return -1;
}

void wasl_config_enum(wasl_config_t *self, const char *name, const char *def, const char *choices,
                      const char *help, int *dest)
{
    cfg_var_t *v = add_var(self, name, help, CFG_ENUM, dest);
    v->def_str = def;
    v->choices = choices;
    int idx = choice_index(choices, def);
    assert(idx >= 0);
    *dest = idx;
}

void wasl_config_pg_url(wasl_config_t *self, const char **dest)
{
    wasl_config_str(self, "WASL_PG_URL", WASL_PG_URL_DEFAULT,
                    "PostgreSQL connection URL (the ticket store)", dest);
}

void wasl_config_pg_sync_commit(wasl_config_t *self, bool *dest)
{
    wasl_config_bool(self, "WASL_PG_SYNC_COMMIT", false,
                     "wait for the WAL flush on every commit of this stage (off: a PostgreSQL "
                     "crash can undo its last ~0.6 s of results, which the work ledger runs again)",
                     dest);
}

void wasl_config_redis_url(wasl_config_t *self, const char **dest)
{
    wasl_config_str(self, "WASL_REDIS_URL", WASL_REDIS_URL_DEFAULT,
                    "Redis URL (sessions, rate limits, caches)", dest);
}

void wasl_config_bus_client(wasl_config_t *self, const char *name, const char **bus,
                            const char **stages, const char **curve_dir, const char **curve_name)
{
    wasl_config_str(self, "WASL_BUS", WASL_BUS_DEFAULT,
                    "bus base endpoints, comma-separated (empty: no bus; the work rows stand)",
                    bus);
    if (stages) {
        wasl_config_str(self, "WASL_BUS_STAGES", WASL_BUS_STAGES_DEFAULT,
                        "pipeline stages, in the bus's port order (the same everywhere)", stages);
    }
    wasl_config_str(self, "WASL_CURVE_DIR", "",
                    "key directory from `waslctl keygen` (empty: no CURVE)", curve_dir);
    wasl_config_str(self, "WASL_CURVE_NAME", name, "this daemon's certificate name", curve_name);
}

void wasl_config_daemon(wasl_config_t *self, long admin_port)
{
    wasl_config_enum(self, "WASL_LOG_LEVEL", "info", WASL_LOG_LEVELS,
                     "lowest level of the JSON log lines written to stderr", &self->log_level);
    wasl_config_str(self, "WASL_ADMIN_BIND", "127.0.0.1",
                    "address of the /healthz, /readyz and /metrics port", &self->admin_bind);
    wasl_config_int(self, "WASL_ADMIN_PORT", admin_port, 0, 65535,
                    "port of /healthz, /readyz and /metrics (0: any free port)", &self->admin_port);
}

int wasl_config_log_level(const wasl_config_t *self)
{
    return self->log_level;
}

const char *wasl_config_admin_bind(const wasl_config_t *self)
{
    return self->admin_bind;
}

int wasl_config_admin_port(const wasl_config_t *self)
{
    return (int)self->admin_port;
}

void wasl_config_usage(const wasl_config_t *self, FILE *out)
{
    fprintf(out, "Usage: %s [--help] [--version]\n%s\n\nConfiguration (environment):\n", self->prog,
            self->summary ? self->summary : "");
    for (size_t i = 0; i < self->nvars; i++) {
        const cfg_var_t *v = &self->vars[i];
        char def[256];
        switch (v->type) {
        case CFG_STR:
            snprintf(def, sizeof def, "\"%s\"", v->def_str);
            break;
        case CFG_INT:
            snprintf(def, sizeof def, "%ld (%ld..%ld)", v->def_int, v->min, v->max);
            break;
        case CFG_BOOL:
            snprintf(def, sizeof def, "%s (true|false)", v->def_bool ? "true" : "false");
            break;
        case CFG_ENUM:
            snprintf(def, sizeof def, "%s (%s)", v->def_str, v->choices);
            break;
        }
        fprintf(out, "  %-24s default %s\n  %-24s %s\n", v->name, def, "", v->help);
    }
}

/* Parses `text` into the variable's destination; returns 0 or -1 with a reason in err. */
static int parse_value(const cfg_var_t *v, const char *text, char *err, size_t errlen)
{
    switch (v->type) {
    case CFG_STR:
        *(const char **)v->dest = text;
        return 0;
    case CFG_INT: {
        char *end = NULL;
        errno = 0;
        long n = strtol(text, &end, 10);
        if (errno || end == text || *end != '\0') {
            snprintf(err, errlen, "%s=\"%s\": not an integer", v->name, text);
            return -1;
        }
        if (n < v->min || n > v->max) {
            snprintf(err, errlen, "%s=%ld: out of range %ld..%ld", v->name, n, v->min, v->max);
            return -1;
        }
        *(long *)v->dest = n;
        return 0;
    }
    case CFG_BOOL:
        if (!strcmp(text, "1") || !strcmp(text, "true") || !strcmp(text, "yes") ||
            !strcmp(text, "on")) {
            *(bool *)v->dest = true;
            return 0;
        }
        if (!strcmp(text, "0") || !strcmp(text, "false") || !strcmp(text, "no") ||
            !strcmp(text, "off")) {
            *(bool *)v->dest = false;
            return 0;
        }
        snprintf(err, errlen, "%s=\"%s\": not a boolean (true|false)", v->name, text);
        return -1;
    case CFG_ENUM: {
        int idx = choice_index(v->choices, text);
        if (idx < 0) {
            snprintf(err, errlen, "%s=\"%s\": must be one of %s", v->name, text, v->choices);
            return -1;
        }
        *(int *)v->dest = idx;
        return 0;
    }
    }
    return -1;
}

int wasl_config_parse_env(wasl_config_t *self, int argc, char **argv, FILE *out, char *err,
                          size_t errlen)
{
    assert(self);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            wasl_config_usage(self, out);
            return 1;
        }
        if (!strcmp(argv[i], "--version")) {
            fprintf(out, "%s %s\n", self->prog, WASL_VERSION);
            return 1;
        }
        snprintf(err, errlen,
                 "unknown argument \"%s\" (configuration comes from WASL_* "
                 "environment variables; see --help)",
                 argv[i]);
        return -1;
    }
    for (size_t i = 0; i < self->nvars; i++) {
        const char *text = getenv(self->vars[i].name);
        /* An empty value means "use the default" for everything but strings, where empty
         * can be meaningful (e.g. no CURVE directory). */
        if (!text || (*text == '\0' && self->vars[i].type != CFG_STR)) {
            continue;
        }
        if (parse_value(&self->vars[i], text, err, errlen) < 0) {
            return -1;
        }
    }
    return 0;
}

void wasl_config_parse(wasl_config_t *self, int argc, char **argv)
{
    char err[512];
    int rc = wasl_config_parse_env(self, argc, argv, stdout, err, sizeof err);
    if (rc == 1) {
        wasl_config_destroy(&self);
        exit(0);
    }
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", self->prog, err);
        wasl_config_destroy(&self);
        exit(WASL_EXIT_CONFIG);
    }
}
