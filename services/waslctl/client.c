/* client — `waslctl client add|list|remove`: the credentials of the HTTP edges' clients (intake
 * for machines; the desk reads the same table for the agent API's bearer tokens). */
#include "ctl.h"
#include "wasl_config.h"
#include "wasl_pg.h"

#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_BYTES 32
/* A token or HMAC secret read from a file: one line, at most this long (the clients table
 * stores the token's SHA-256 and bounds the secret). */
#define SECRET_MAX_BYTES 512
static const char *const client_kinds = "telephony|email_gateway|sms_gateway|web_portal|"
                                        "agent_desk|api|ops";

static int usage(void)
{
    fprintf(stderr,
            "Usage: waslctl client add ID --kind KIND --scopes LIST [--token-file F|-]"
            " [--hmac-secret-file F|-]\n"
            "                          [--token T] [--hmac-secret S] [--rate N] [--name NAME]\n"
            "                          [--act-as AGENTS] [--role agent|supervisor|admin]"
            " [--trusted-ani]\n"
            "       waslctl client list\n"
            "       waslctl client remove ID\n"
            "KIND: %s. LIST: comma-separated reports, calls, sms, email, tickets:read (the\n"
            "client's own tickets), tickets:read:all (every ticket), agents, cases, or * for\n"
            "all. Without --token and --hmac-secret a token is generated and printed once as\n"
            "\"token: <value>\" (only its SHA-256 is stored). --token-file and\n"
            "--hmac-secret-file read the secret's first line from a file or stdin (-), out of\n"
            "sight of ps; --token and --hmac-secret still work but every local user sees them.\n"
            "Adding an existing ID updates it. --act-as binds the token to the agents it may\n"
            "act for (comma-separated ids); --role gives it a person-role on the agent API\n"
            "(served by wasl-desk, WASL_DESK_URL; intake serves the other scopes);\n"
            "--trusted-ani (telephony only)\n"
            "lets its caller numbers count as a verifier of a case party. Uses WASL_PG_URL.\n",
            client_kinds);
    return CTL_USAGE;
}

/* "a,b" -> "{a,b}" for text[] (words were validated by the database's callers: simple words). */
static int scopes_array(const char *list, char *out, size_t cap)
{
    static const char *const known[] = {
        "reports",          "calls",  "sms",   "email", "tickets:read",
        "tickets:read:all", "agents", "cases", "*",     NULL};
    char *copy = strdup(list);
    if (!copy) {
        return -1;
    }
    size_t o = (size_t)snprintf(out, cap, "{");
    char *save = NULL;
    int n = 0;
    for (char *w = strtok_r(copy, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
        size_t i;
        for (i = 0; known[i] && strcmp(known[i], w) != 0; i++) {
        }
        if (!known[i]) {
            fprintf(stderr, "waslctl client: unknown scope \"%s\"\n", w);
            free(copy);
            return -1;
        }
        o += (size_t)snprintf(out + o, cap > o ? cap - o : 0, "%s\"%s\"", n++ ? "," : "", w);
    }
    free(copy);
    if (n == 0 || o + 2 > cap) {
        fprintf(stderr, "waslctl client: --scopes needs at least one scope\n");
        return -1;
    }
    snprintf(out + o, cap - o, "}");
    return 0;
}

/* Reads a secret from `path` ("-": stdin), so that it never appears on a command line: the
 * first line, without its line end. 0, or -1 (said on stderr) when it cannot be read, is empty
 * or longer than SECRET_MAX_BYTES. */
static int read_secret(const char *path, const char *option, char *out, size_t cap)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "waslctl client add: %s %s: %s\n", option, path, strerror(errno));
        return -1;
    }
    bool ok = fgets(out, (int)cap, f) != NULL;
    if (f != stdin) {
        fclose(f);
    }
    size_t len = ok ? strcspn(out, "\r\n") : 0;
    if (ok && out[len] == '\0' && len == cap - 1) {
        ok = false; /* no line end within the bound: too long */
    }
    out[len] = '\0';
    if (!ok || len == 0 || len > SECRET_MAX_BYTES) {
        fprintf(stderr, "waslctl client add: %s: expected one line of 1..%d bytes\n", option,
                SECRET_MAX_BYTES);
        sodium_memzero(out, cap);
        return -1;
    }
    return 0;
}

/* What `client add` was asked to save. Borrowed strings (argv or the buffers below). */
typedef struct {
    const char *id, *kind, *scopes, *token, *secret, *rate, *name, *act_as, *role;
    const char *token_file, *secret_file;
    bool trusted_ani, on_command_line;
    char token_buf[SECRET_MAX_BYTES + 2], secret_buf[SECRET_MAX_BYTES + 2];
    char generated[TOKEN_BYTES * 2 + 1];
} client_args_t;

/* Where each option's value goes; NULL for an unknown option. */
static const char **client_option(client_args_t *c, const char *opt)
{
    static const struct {
        const char *name;
        size_t offset;
        bool secret;
    } options[] = {
        {"--act-as", offsetof(client_args_t, act_as), false},
        {"--role", offsetof(client_args_t, role), false},
        {"--kind", offsetof(client_args_t, kind), false},
        {"--scopes", offsetof(client_args_t, scopes), false},
        {"--token", offsetof(client_args_t, token), true},
        {"--hmac-secret", offsetof(client_args_t, secret), true},
        {"--token-file", offsetof(client_args_t, token_file), false},
        {"--hmac-secret-file", offsetof(client_args_t, secret_file), false},
        {"--rate", offsetof(client_args_t, rate), false},
        {"--name", offsetof(client_args_t, name), false},
    };
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        if (!strcmp(opt, options[i].name)) {
            c->on_command_line |= options[i].secret;
            return (const char **)((char *)c + options[i].offset);
        }
    }
    return NULL;
}

/* Parses argv into c. 0, or -1 on a usage error (usage() not printed yet). */
static int client_parse(client_args_t *c, int argc, char **argv)
{
    c->rate = "500";
    c->act_as = "";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--trusted-ani")) {
            c->trusted_ani = true;
            continue;
        }
        if (argv[i][0] != '-' && !c->id) {
            c->id = argv[i];
            continue;
        }
        const char **dest = client_option(c, argv[i]);
        if (!dest || ++i >= argc) {
            return -1;
        }
        *dest = argv[i];
    }
    if (!c->id || !c->kind || !c->scopes || (c->token && c->token_file) ||
        (c->secret && c->secret_file)) {
        return -1;
    }
    return 0;
}

/* Reads the secrets from their files (or stdin) and checks the kind. CTL_OK or an exit code. */
static int client_resolve(client_args_t *c)
{
    if (c->token_file && c->secret_file && !strcmp(c->token_file, "-") &&
        !strcmp(c->secret_file, "-")) {
        fprintf(stderr, "waslctl client add: only one of the secrets can come from stdin\n");
        return CTL_USAGE;
    }
    if (c->on_command_line) {
        /* Still accepted (scripts), but every local user sees it in ps and /proc. */
        fprintf(stderr, "waslctl client add: a secret on the command line is visible to other"
                        " users; prefer --token-file - / --hmac-secret-file -\n");
    }
    if (c->token_file) {
        if (read_secret(c->token_file, "--token-file", c->token_buf, sizeof c->token_buf) < 0) {
            return CTL_USAGE;
        }
        c->token = c->token_buf;
    }
    if (c->secret_file) {
        if (read_secret(c->secret_file, "--hmac-secret-file", c->secret_buf,
                        sizeof c->secret_buf) < 0) {
            return CTL_USAGE;
        }
        c->secret = c->secret_buf;
    }
    char kinds[128];
    snprintf(kinds, sizeof kinds, "|%s|", client_kinds);
    char needle[64];
    snprintf(needle, sizeof needle, "|%s|", c->kind);
    if (!strstr(kinds, needle)) {
        fprintf(stderr, "waslctl client: --kind must be one of %s\n", client_kinds);
        return CTL_USAGE;
    }
    if (sodium_init() < 0) {
        return CTL_FAILED;
    }
    if (!c->token && !c->secret) {
        unsigned char raw[TOKEN_BYTES];
        randombytes_buf(raw, sizeof raw);
        sodium_bin2hex(c->generated, sizeof c->generated, raw, sizeof raw);
        c->token = c->generated;
    }
    return CTL_OK;
}

/* Inserts or replaces the client row. CTL_OK or CTL_FAILED (error printed). */
static int client_save(const client_args_t *c, const char *scope_list)
{
    char hash_hex[65] = "";
    if (c->token) {
        unsigned char digest[32];
        crypto_hash_sha256(digest, (const unsigned char *)c->token, strlen(c->token));
        sodium_bin2hex(hash_hex, sizeof hash_hex, digest, sizeof digest);
    }
    wasl_pg_t *pg = ctl_pg_connect("client");
    if (!pg) {
        return CTL_FAILED;
    }
    /* act_as travels as one comma-separated string and is split by the database, which also
     * checks each id against the agents' id rule and the list's bounds. */
    const char *params[] = {c->id,
                            c->name ? c->name : c->id,
                            c->kind,
                            scope_list,
                            c->token ? hash_hex : NULL,
                            c->secret,
                            c->rate,
                            c->act_as,
                            c->role,
                            c->trusted_ani ? "true" : "false"};
    // clang-format off
    PGresult *res = wasl_pg_query(pg,
        "INSERT INTO clients (id, name, kind, scopes, token_sha256, hmac_secret, rate_per_s,"
        "                     act_as, role, trusted_ani)"
        " VALUES ($1, $2, $3, $4::text[], $5, $6, $7::int,"
        "         array_remove(string_to_array($8, ','), ''), $9, $10::boolean)"
        " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,"
        "   scopes = EXCLUDED.scopes, token_sha256 = EXCLUDED.token_sha256,"
        "   hmac_secret = EXCLUDED.hmac_secret, rate_per_s = EXCLUDED.rate_per_s,"
        "   act_as = EXCLUDED.act_as, role = EXCLUDED.role, trusted_ani = EXCLUDED.trusted_ani,"
        "   enabled = true",
        10, params);
    // clang-format on
    int rc = CTL_OK;
    if (!res) {
        fprintf(stderr, "waslctl client add: %s\n", wasl_pg_error(pg));
        rc = CTL_FAILED;
    } else {
        printf("client %s saved\n", c->id);
        if (c->token == c->generated) {
            printf("token: %s\n", c->token);
        }
    }
    PQclear(res);
    wasl_pg_destroy(&pg);
    return rc;
}

static int client_add(int argc, char **argv)
{
    client_args_t c = {0};
    if (client_parse(&c, argc, argv) < 0) {
        return usage();
    }
    int rc = client_resolve(&c);
    char scope_list[512];
    if (rc == CTL_OK && scopes_array(c.scopes, scope_list, sizeof scope_list) < 0) {
        rc = CTL_USAGE;
    }
    if (rc == CTL_OK) {
        rc = client_save(&c, scope_list);
    }
    sodium_memzero(c.token_buf, sizeof c.token_buf);
    sodium_memzero(c.secret_buf, sizeof c.secret_buf);
    return rc;
}

static int client_list(void)
{
    wasl_pg_t *pg = ctl_pg_connect("client");
    if (!pg) {
        return CTL_FAILED;
    }
    PGresult *res = wasl_pg_query(pg,
                                  "SELECT id, kind, array_to_string(scopes, ','), rate_per_s, "
                                  "token_sha256 IS NOT NULL, hmac_secret IS NOT NULL, enabled, "
                                  "coalesce(role, '-'), "
                                  "CASE WHEN trusted_ani THEN 'yes' ELSE 'no' END, "
                                  "coalesce(nullif(array_to_string(act_as, ','), ''), '-') "
                                  "FROM clients ORDER BY id",
                                  0, NULL);
    if (!res) {
        fprintf(stderr, "waslctl client list: %s\n", wasl_pg_error(pg));
        wasl_pg_destroy(&pg);
        return CTL_FAILED;
    }
    printf("%-20s %-14s %-32s %-6s %-6s %-6s %-7s %-10s %-4s %s\n", "ID", "KIND", "SCOPES", "RATE",
           "TOKEN", "HMAC", "ENABLED", "ROLE", "ANI", "ACT_AS");
    for (int r = 0; r < PQntuples(res); r++) {
        printf("%-20s %-14s %-32s %-6s %-6s %-6s %-7s %-10s %-4s %s\n", PQgetvalue(res, r, 0),
               PQgetvalue(res, r, 1), PQgetvalue(res, r, 2), PQgetvalue(res, r, 3),
               PQgetvalue(res, r, 4)[0] == 't' ? "yes" : "no",
               PQgetvalue(res, r, 5)[0] == 't' ? "yes" : "no",
               PQgetvalue(res, r, 6)[0] == 't' ? "yes" : "no", PQgetvalue(res, r, 7),
               PQgetvalue(res, r, 8), PQgetvalue(res, r, 9));
    }
    PQclear(res);
    wasl_pg_destroy(&pg);
    return CTL_OK;
}

static int client_remove(const char *id)
{
    wasl_pg_t *pg = ctl_pg_connect("client");
    if (!pg) {
        return CTL_FAILED;
    }
    const char *params[] = {id};
    PGresult *res = wasl_pg_query(pg, "DELETE FROM clients WHERE id = $1 RETURNING id", 1, params);
    int rc = CTL_OK;
    if (!res) {
        fprintf(stderr, "waslctl client remove: %s\n", wasl_pg_error(pg));
        rc = CTL_FAILED;
    } else if (PQntuples(res) == 0) {
        fprintf(stderr, "waslctl client remove: no client %s\n", id);
        rc = CTL_FAILED;
    } else {
        printf("client %s removed\n", id);
    }
    PQclear(res);
    wasl_pg_destroy(&pg);
    return rc;
}

int ctl_client(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        usage();
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    if (!strcmp(argv[1], "add")) {
        return client_add(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "list")) {
        return client_list();
    }
    if (!strcmp(argv[1], "remove") && argc == 3) {
        return client_remove(argv[2]);
    }
    return usage();
}
