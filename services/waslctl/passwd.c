/* passwd — `waslctl agent passwd ID`: a person's desk password (Argon2id), never on the command
 * line; also the initial password of `agent add --password-file` and the end of an agent's
 * sessions when it is removed. */
#include "ctl.h"
#include "wasl_config.h"
#include "wasl_pg.h"
#include "wasl_redis.h"
#include "wasl_session.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define REDIS_TIMEOUT_MS 2000
/* A line longer than the longest password allowed, to tell "too long" from "cut". */
#define LINE_BUF (WASL_PASSWORD_MAX_BYTES + 4)

static int usage(void)
{
    fprintf(
        stderr,
        "Usage: waslctl agent passwd ID [--password-file FILE|-] [--role agent|supervisor|admin]\n"
        "Sets the password ID signs in to the desk with (Argon2id; %d characters at least, %d\n"
        "bytes at most) and ends every session of ID. The password is the first line of FILE\n"
        "(- : standard input); without --password-file it is asked for on the terminal, twice,\n"
        "without echo. Never give it on the command line. Uses WASL_PG_URL and WASL_REDIS_URL.\n",
        WASL_PASSWORD_MIN_CHARS, WASL_PASSWORD_MAX_BYTES);
    return CTL_USAGE;
}

/* Reads one line from `in` into buf without its line end. 0, or -1 (nothing read, or too long:
 * printed). */
static int read_line(FILE *in, char buf[LINE_BUF], size_t *len)
{
    if (!fgets(buf, LINE_BUF, in)) {
        fprintf(stderr, "waslctl agent passwd: no password given\n");
        return -1;
    }
    size_t n = strcspn(buf, "\r\n");
    if (buf[n] == '\0' && n >= LINE_BUF - 1) {
        fprintf(stderr, "waslctl agent passwd: the password is longer than %d bytes\n",
                WASL_PASSWORD_MAX_BYTES);
        sodium_memzero(buf, LINE_BUF);
        return -1;
    }
    buf[n] = '\0';
    *len = n;
    return 0;
}

/* Asks on the terminal with echo off. */
static int prompt(const char *question, char buf[LINE_BUF], size_t *len)
{
    struct termios old, quiet;
    bool tty = tcgetattr(STDIN_FILENO, &old) == 0;
    fprintf(stderr, "%s", question);
    if (tty) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    int rc = read_line(stdin, buf, len);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    return rc;
}

/* The new password from `file` ("-": stdin; NULL: the terminal, twice). 0, or -1 (printed). */
static int read_password(const char *file, char buf[LINE_BUF], size_t *len)
{
    int rc;
    if (!file) {
        char again[LINE_BUF];
        size_t again_len = 0;
        rc = prompt("New desk password: ", buf, len);
        if (rc == 0 && (rc = prompt("Again: ", again, &again_len)) == 0 &&
            (again_len != *len || sodium_memcmp(again, buf, *len) != 0)) {
            fprintf(stderr, "waslctl agent passwd: the two passwords differ\n");
            rc = -1;
        }
        sodium_memzero(again, sizeof again);
    } else if (!strcmp(file, "-")) {
        rc = read_line(stdin, buf, len);
    } else {
        FILE *in = fopen(file, "r");
        if (!in) {
            fprintf(stderr, "waslctl agent passwd: cannot open %s\n", file);
            return -1;
        }
        rc = read_line(in, buf, len);
        fclose(in);
    }
    const char *why = rc == 0 ? wasl_password_policy(buf, *len) : NULL;
    if (why) {
        fprintf(stderr, "waslctl agent passwd: %s\n", why);
        rc = -1;
    }
    if (rc < 0) {
        sodium_memzero(buf, LINE_BUF);
    }
    return rc;
}

int ctl_passwd_end_sessions(const char *id)
{
    const char *url = getenv("WASL_REDIS_URL");
    wasl_redis_t *redis =
        wasl_redis_new(url && *url ? url : WASL_REDIS_URL_DEFAULT, REDIS_TIMEOUT_MS);
    int n = redis ? wasl_session_delete_agent(redis, id) : -1;
    wasl_redis_destroy(&redis);
    if (n < 0) {
        fprintf(stderr,
                "waslctl agent: cannot reach Redis to end %s's desk sessions; they last until "
                "they expire\n",
                id);
        return CTL_FAILED;
    }
    if (n > 0) {
        printf("%d desk session(s) of %s ended\n", n, id);
    }
    return CTL_OK;
}

int ctl_passwd_set(wasl_pg_t *pg, const char *id, const char *file, const char *role)
{
    if (role && !(strcmp(role, "agent") == 0 || strcmp(role, "supervisor") == 0 ||
                  strcmp(role, "admin") == 0)) {
        fprintf(stderr, "waslctl agent: --role is agent, supervisor or admin\n");
        return CTL_USAGE;
    }
    char pw[LINE_BUF];
    size_t len = 0;
    char hash[WASL_PASSWORD_HASH_BUF];
    if (read_password(file, pw, &len) < 0) {
        return CTL_USAGE;
    }
    int hashed = wasl_password_hash(pw, len, hash);
    sodium_memzero(pw, sizeof pw);
    if (hashed < 0) {
        fprintf(stderr, "waslctl agent passwd: cannot hash (out of memory?)\n");
        return CTL_FAILED;
    }
    const char *p[] = {id, hash, role, "waslctl"};
    PGresult *res = wasl_pg_query(pg, "SELECT wasl_agents_set_password($1, $2, $3, $4)", 4, p);
    int rc = CTL_FAILED;
    if (!wasl_pg_arity(res, 1, "wasl_agents_set_password") || PQntuples(res) != 1) {
        fprintf(stderr, "waslctl agent passwd: %s\n", wasl_pg_error(pg));
    } else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        fprintf(stderr, "waslctl agent passwd: no enabled agent %s\n", id);
    } else {
        printf("password of %s set%s%s\n", id, role ? ", role " : "", role ? role : "");
        rc = ctl_passwd_end_sessions(id);
    }
    PQclear(res);
    sodium_memzero(hash, sizeof hash);
    return rc;
}

int ctl_agent_passwd(int argc, char **argv)
{
    /* argv: agent passwd ID [--password-file F] [--role R] */
    if (argc < 3 || (argc - 3) % 2) {
        return usage();
    }
    const char *file = NULL, *role = NULL;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--password-file")) {
            file = argv[i + 1];
        } else if (!strcmp(argv[i], "--role")) {
            role = argv[i + 1];
        } else {
            return usage();
        }
    }
    wasl_pg_t *pg = ctl_pg_connect("agent passwd");
    if (!pg) {
        return CTL_FAILED;
    }
    int rc = ctl_passwd_set(pg, argv[2], file, role);
    wasl_pg_destroy(&pg);
    return rc;
}
