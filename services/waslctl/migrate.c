/* migrate — `waslctl migrate`: apply the numbered SQL migrations embedded from proto/migrations,
 * then the state-change functions of proto/functions/ and the roles' privileges from
 * proto/grants.sql. */
#include "ctl.h"
#include "wasl_config.h"
#include "wasl_functions.h"
#include "wasl_log.h"
#include "wasl_migrations.h"
#include "wasl_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Serializes concurrent migrators (two daemons' init containers, say): an arbitrary constant
 * that names "wasl schema" among advisory locks. */
#define MIGRATE_LOCK_KEY "7715200101"

static const char *const bookkeeping_sql = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                           " version integer PRIMARY KEY,"
                                           " name text NOT NULL,"
                                           " sha256 text NOT NULL,"
                                           " applied_at timestamptz NOT NULL DEFAULT now())";

/* Applies, in the open transaction, the migrations not yet recorded in schema_migrations
 * (`known`: its version and sha256 rows). Returns how many it applied, or -1 (printed) when one
 * failed or an applied one was changed since. */
static int apply_migrations(wasl_pg_t *pg, const PGresult *known, int verbose)
{
    int applied = 0;
    for (size_t i = 0; i < wasl_migrations_n; i++) {
        const wasl_migration_t *m = &wasl_migrations[i];
        const char *known_sha = NULL;
        for (int r = 0; r < PQntuples(known); r++) {
            if (atoi(PQgetvalue(known, r, 0)) == m->version) {
                known_sha = PQgetvalue(known, r, 1);
            }
        }
        if (known_sha) {
            if (strcmp(known_sha, m->sha256) != 0) {
                fprintf(stderr,
                        "waslctl migrate: migration %04d_%s was changed after it was applied "
                        "(add a new migration instead)\n",
                        m->version, m->name);
                return -1;
            }
            continue;
        }
        if (wasl_pg_command(pg, m->sql) < 0) {
            fprintf(stderr, "waslctl migrate: %04d_%s failed: %s\n", m->version, m->name,
                    wasl_pg_error(pg));
            return -1;
        }
        char version[16];
        snprintf(version, sizeof version, "%d", m->version);
        const char *params[] = {version, m->name, m->sha256};
        PGresult *ins = wasl_pg_query(
            pg, "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)", 3,
            params);
        if (!ins) {
            fprintf(stderr, "waslctl migrate: %s\n", wasl_pg_error(pg));
            return -1;
        }
        PQclear(ins);
        if (verbose) {
            printf("applied %04d_%s\n", m->version, m->name);
        }
        applied++;
    }
    return applied;
}

/* The state-change functions and the grants are the state, not steps: applied on every run,
 * in the open transaction, so no daemon ever sees a table without its grants or yesterday's
 * functions. The functions come first (the grants name them); the grants revoke first, so a
 * line removed from grants.sql takes its privilege away. 0, or -1 (printed). */
static int apply_state(wasl_pg_t *pg)
{
    if (wasl_pg_command(pg, wasl_functions_sql) < 0) {
        fprintf(stderr, "waslctl migrate: proto/functions failed: %s\n", wasl_pg_error(pg));
        return -1;
    }
    if (wasl_pg_command(pg, wasl_grants_sql) < 0) {
        fprintf(stderr, "waslctl migrate: grants.sql failed: %s\n", wasl_pg_error(pg));
        return -1;
    }
    return 0;
}

int ctl_migrate_run(const char *pg_url, int verbose)
{
    int applied = -1;
    PGresult *res = NULL;
    wasl_pg_t *pg = wasl_pg_new(pg_url);
    if (!pg || !wasl_pg_ok(pg)) {
        fprintf(stderr, "waslctl migrate: cannot connect to PostgreSQL: %s\n",
                pg ? wasl_pg_error(pg) : "out of memory");
        goto done;
    }
    /* "already exists, skipping" notices are expected on every run after the first. */
    if (wasl_pg_command(pg, "SET client_min_messages = warning") < 0 || wasl_pg_begin(pg) < 0) {
        goto failed;
    }
    res = wasl_pg_query(pg, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")", 0, NULL);
    if (!res || wasl_pg_command(pg, bookkeeping_sql) < 0) {
        goto failed;
    }
    PQclear(res);
    res = wasl_pg_query(pg, "SELECT version, sha256 FROM schema_migrations ORDER BY version", 0,
                        NULL);
    if (!res) {
        goto failed;
    }
    applied = apply_migrations(pg, res, verbose);
    if (applied < 0 || apply_state(pg) < 0) {
        applied = -1;
        goto rollback;
    }
    if (wasl_pg_commit(pg) < 0) {
        applied = -1;
        goto failed;
    }
    goto done;
failed:
    fprintf(stderr, "waslctl migrate: %s\n", wasl_pg_error(pg));
    applied = -1;
rollback:
    wasl_pg_rollback(pg);
done:
    PQclear(res);
    wasl_pg_destroy(&pg);
    return applied;
}

int ctl_migrate(int argc, char **argv)
{
    const char *pg_url;
    wasl_config_t *cfg = wasl_config_new(
        "waslctl migrate",
        "Applies the schema migrations not yet applied, then the state-change functions "
        "(proto/functions/) and every role's privileges (proto/grants.sql), in one "
        "transaction; running it again changes nothing. Run it as the schema's owner (role wasl); "
        "the roles come from proto/roles.sql.");
    if (!cfg) {
        return CTL_FAILED;
    }
    wasl_config_str(cfg, "WASL_PG_URL", WASL_PG_URL_DEFAULT, "PostgreSQL connection URL", &pg_url);
    wasl_config_parse(cfg, argc, argv);
    int n = ctl_migrate_run(pg_url, 1);
    wasl_config_destroy(&cfg);
    if (n < 0) {
        return CTL_FAILED;
    }
    int latest = wasl_migrations_n ? wasl_migrations[wasl_migrations_n - 1].version : 0;
    if (n == 0) {
        printf("schema up to date (version %d)\n", latest);
    } else {
        printf("schema migrated to version %d (%d applied)\n", latest, n);
    }
    /* Which set of functions now runs: SELECT wasl_functions_version() says the same. */
    printf("state functions %.12s\n", wasl_functions_sha256);
    return CTL_OK;
}
