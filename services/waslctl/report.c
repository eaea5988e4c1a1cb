/* report — `waslctl report csat`: satisfaction scores by queue and agent. */
#include "ctl.h"
#include "wasl_config.h"
#include "wasl_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAYS_DEFAULT 30

static int usage(void)
{
    fprintf(stderr,
            "Usage: waslctl report csat [--days N]\n"
            "Survey replies (1-5) of the last N days (default %d) by queue and agent:\n"
            "responses, average, and how many gave each score. Uses WASL_PG_URL.\n",
            DAYS_DEFAULT);
    return CTL_USAGE;
}

static int csat(int argc, char **argv)
{
    long days = DAYS_DEFAULT;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--days") && i + 1 < argc) {
            char *end;
            days = strtol(argv[++i], &end, 10);
            if (*end || days <= 0) {
                return usage();
            }
        } else {
            return usage();
        }
    }
    const char *url = getenv("WASL_PG_URL");
    wasl_pg_t *pg = wasl_pg_new(url && *url ? url : WASL_PG_URL_DEFAULT);
    if (!pg || !wasl_pg_ok(pg)) {
        fprintf(stderr, "waslctl report: cannot connect to PostgreSQL: %s\n",
                pg ? wasl_pg_error(pg) : "out of memory");
        wasl_pg_destroy(&pg);
        return CTL_UNAVAIL;
    }
    char d[24];
    snprintf(d, sizeof d, "%ld", days);
    const char *p[] = {d};
    /* GROUPING SETS adds the per-queue subtotals and the grand total in the same pass. */
    PGresult *res = wasl_pg_query(
        pg,
        "SELECT CASE WHEN grouping(t.queue) = 1 THEN '(all)' ELSE coalesce(t.queue, '-') END,"
        "  CASE WHEN grouping(t.assignee) = 1 THEN '(all)' ELSE coalesce(t.assignee, '-') END,"
        "  count(*), to_char(avg(c.score), 'FM0.00'),"
        "  count(*) FILTER (WHERE c.score = 1), count(*) FILTER (WHERE c.score = 2),"
        "  count(*) FILTER (WHERE c.score = 3), count(*) FILTER (WHERE c.score = 4),"
        "  count(*) FILTER (WHERE c.score = 5)"
        " FROM csat c JOIN tickets t ON t.id = c.ticket_id"
        " WHERE c.received_at > now() - make_interval(days => $1::int)"
        " GROUP BY GROUPING SETS ((t.queue, t.assignee), (t.queue), ())"
        " ORDER BY grouping(t.queue), t.queue NULLS LAST, grouping(t.assignee),"
        "   t.assignee NULLS LAST",
        1, p);
    int rc = CTL_FAILED;
    if (res) {
        printf("%-20s %-20s %9s %7s %5s %5s %5s %5s %5s\n", "queue", "agent", "responses", "avg",
               "1", "2", "3", "4", "5");
        for (int r = 0; r < PQntuples(res); r++) {
            printf("%-20s %-20s %9s %7s %5s %5s %5s %5s %5s\n", PQgetvalue(res, r, 0),
                   PQgetvalue(res, r, 1), PQgetvalue(res, r, 2), PQgetvalue(res, r, 3),
                   PQgetvalue(res, r, 4), PQgetvalue(res, r, 5), PQgetvalue(res, r, 6),
                   PQgetvalue(res, r, 7), PQgetvalue(res, r, 8));
        }
        PQclear(res);
        rc = CTL_OK;
    } else {
        fprintf(stderr, "waslctl report: %s\n", wasl_pg_error(pg));
    }
    wasl_pg_destroy(&pg);
    return rc;
}

int ctl_report(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "csat")) {
        return csat(argc - 1, argv + 1);
    }
    if (argc >= 2 && !strcmp(argv[1], "--help")) {
        usage();
        return CTL_OK;
    }
    return usage();
}
