/* pg — the one way waslctl's subcommands open PostgreSQL (ctl.h). */
#include "ctl.h"
#include "wasl_config.h"
#include "wasl_pg.h"

#include <stdio.h>
#include <stdlib.h>

struct wasl_pg *ctl_pg_connect(const char *what)
{
    const char *url = getenv("WASL_PG_URL");
    wasl_pg_t *pg = wasl_pg_new(url && *url ? url : WASL_PG_URL_DEFAULT);
    if (!pg || !wasl_pg_ok(pg)) {
        fprintf(stderr, "waslctl %s: cannot connect to PostgreSQL: %s\n", what,
                pg ? wasl_pg_error(pg) : "out of memory");
        wasl_pg_destroy(&pg);
    }
    return pg;
}
