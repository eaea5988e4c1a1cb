/* demo — `waslctl seed-demo`: people to sign in to the desk with on a demo or local stack (two
 * agents, a supervisor, an admin), each with a fresh random password, printed once. */
#include "ctl.h"
#include "wasl_config.h"
#include "wasl_pg.h"
#include "wasl_session.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* 12 random bytes in base64url: 16 characters, past the 10 the policy asks for. */
#define DEMO_PASSWORD_BYTES 12
#define DEMO_PASSWORD_BUF   24

/* The queues of deploy/config/routing.yaml, so that the demo people are offered what the local
 * stack routes. */
static const struct {
    const char *id, *name, *role, *skills, *languages;
} people[] = {
    {"nora", "نورة العتيبي", "agent",
     "{\"case-status\": 8, \"general\": 6, \"complaints\": 5, \"eservices-support\": 5, "
     "\"judicial-support\": 5, \"staff-services\": 5, \"triage\": 5}",
     "[\"ar\", \"en\"]"},
    {"khalid", "خالد الشهري", "agent",
     "{\"general\": 7, \"complaints\": 6, \"case-status\": 5, \"triage\": 5}", "[\"ar\"]"},
    {"sara", "سارة القحطاني", "supervisor", "{\"supervisors\": 8, \"general\": 5}",
     "[\"ar\", \"en\"]"},
    {"admin", "مدير النظام", "admin", "{\"general\": 1}", "[\"ar\", \"en\"]"},
};

static int usage(void)
{
    fprintf(stderr,
            "Usage: waslctl seed-demo [--accounts FILE]\n"
            "Creates (or resets) the desk's demo people — nora and khalid (agents), sara\n"
            "(supervisor), admin (admin) — each with a new random password, and prints them\n"
            "once: to FILE (mode 600) with --accounts, else to standard output. Their sessions\n"
            "end. For a demo or local stack only. Uses WASL_PG_URL and WASL_REDIS_URL.\n");
    return CTL_USAGE;
}

/* Saves one person and gives them `password`. 0, or -1 (printed). */
static int seed_person(wasl_pg_t *pg, size_t i, const char *password)
{
    const char *save[] = {people[i].id, people[i].name, people[i].skills, people[i].languages,
                          "waslctl"};
    PGresult *res = wasl_pg_query(pg,
                                  "SELECT wasl_agents_save($1, $2, $3::jsonb, $4::jsonb, NULL,"
                                  "                        NULL, $5)",
                                  5, save);
    bool ok = wasl_pg_arity(res, 1, "wasl_agents_save") && PQntuples(res) == 1;
    PQclear(res);
    char hash[WASL_PASSWORD_HASH_BUF];
    if (ok && wasl_password_hash(password, strlen(password), hash) == 0) {
        const char *p[] = {people[i].id, hash, people[i].role, "waslctl"};
        res = wasl_pg_query(pg, "SELECT wasl_agents_set_password($1, $2, $3, $4)", 4, p);
        ok = wasl_pg_arity(res, 1, "wasl_agents_set_password") && PQntuples(res) == 1 &&
             strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
    } else {
        ok = false;
    }
    sodium_memzero(hash, sizeof hash);
    if (!ok) {
        fprintf(stderr, "waslctl seed-demo: %s: %s\n", people[i].id, wasl_pg_error(pg));
    }
    return ok ? 0 : -1;
}

/* The accounts table to `file` (mode 600, replaced) or stdout. */
static FILE *open_out(const char *file)
{
    if (!file) {
        return stdout;
    }
    mode_t old = umask(077);
    FILE *out = fopen(file, "w");
    umask(old);
    if (!out) {
        fprintf(stderr, "waslctl seed-demo: cannot write %s\n", file);
    }
    return out;
}

int ctl_seed_demo(int argc, char **argv)
{
    const char *file = NULL;
    if (argc == 3 && !strcmp(argv[1], "--accounts")) {
        file = argv[2];
    } else if (argc != 1) {
        return usage();
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "waslctl seed-demo: libsodium cannot start\n");
        return CTL_FAILED;
    }
    wasl_pg_t *pg = ctl_pg_connect("seed-demo");
    if (!pg) {
        return CTL_FAILED;
    }
    FILE *out = open_out(file);
    int rc = out ? CTL_OK : CTL_FAILED;
    if (out) {
        fprintf(out, "# The desk's demo people (waslctl seed-demo); sign in at WASL_DESK_URL.\n");
        fprintf(out, "%-8s %-10s %-18s %s\n", "ID", "ROLE", "PASSWORD", "NAME");
    }
    for (size_t i = 0; rc == CTL_OK && i < sizeof people / sizeof people[0]; i++) {
        unsigned char raw[DEMO_PASSWORD_BYTES];
        char password[DEMO_PASSWORD_BUF];
        randombytes_buf(raw, sizeof raw);
        sodium_bin2base64(password, sizeof password, raw, sizeof raw,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        if (seed_person(pg, i, password) < 0 || ctl_passwd_end_sessions(people[i].id) != CTL_OK) {
            rc = CTL_FAILED;
        } else {
            fprintf(out, "%-8s %-10s %-18s %s\n", people[i].id, people[i].role, password,
                    people[i].name);
        }
        sodium_memzero(password, sizeof password);
    }
    if (out && out != stdout && fclose(out) != 0) {
        rc = CTL_FAILED;
    }
    if (rc == CTL_OK && file) {
        printf("demo people seeded; their passwords are in %s\n", file);
    }
    wasl_pg_destroy(&pg);
    return rc;
}
