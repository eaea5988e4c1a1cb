/* report — `waslctl report csat`: satisfaction scores by queue and agent; `waslctl report
 * wrapup`: resolutions by queue and wrap-up code. */
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
            "       waslctl report wrapup [--days N]\n"
            "csat: survey replies (1-5) of the last N days (default %d) by queue and agent:\n"
            "responses, average, and how many gave each score.\n"
            "wrapup: tickets resolved in the last N days (and not reopened) by queue and wrap-up\n"
            "code ('-': none), with each queue's and the grand total. Uses WASL_PG_URL.\n",
            DAYS_DEFAULT);
    return CTL_USAGE;
}

/* --days N after the report's name: 0 with *days set, or -1 (a usage error). */
static int days_arg(int argc, char **argv, long *days)
{
    *days = DAYS_DEFAULT;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--days") && i + 1 < argc) {
            char *end;
            *days = strtol(argv[++i], &end, 10);
            if (*end || *days <= 0 || *days > 36500) {
                return -1;
            }
        } else {
            return -1;
        }
    }
    return 0;
}

/* `waslctl report wrapup`: wasl_tickets_wrapup (shared with the desk's wallboard). */
static int wrapup(int argc, char **argv)
{
    long days;
    if (days_arg(argc, argv, &days) < 0) {
        return usage();
    }
    wasl_pg_t *pg = ctl_pg_connect("report");
    if (!pg) {
        return CTL_UNAVAIL;
    }
    char d[24];
    snprintf(d, sizeof d, "%ld", days);
    const char *p[] = {d};
    PGresult *res = wasl_pg_query(pg,
                                  "SELECT queue, code, resolved FROM wasl_tickets_wrapup("
                                  "  now() - make_interval(days => $1::int))",
                                  1, p);
    int rc = CTL_FAILED;
    if (wasl_pg_arity(res, 3, "report wrapup")) {
        printf("%-20s %-24s %9s\n", "queue", "wrapup", "resolved");
        for (int r = 0; r < PQntuples(res); r++) {
            printf("%-20s %-24s %9s\n", PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
                   PQgetvalue(res, r, 2));
        }
        rc = CTL_OK;
    } else {
        fprintf(stderr, "waslctl report: %s\n", wasl_pg_error(pg));
    }
    PQclear(res);
    wasl_pg_destroy(&pg);
    return rc;
}

static int csat(int argc, char **argv)
{
    long days;
    if (days_arg(argc, argv, &days) < 0) {
        return usage();
    }
    wasl_pg_t *pg = ctl_pg_connect("report");
    if (!pg) {
        return CTL_UNAVAIL;
    }
    char d[24];
    snprintf(d, sizeof d, "%ld", days);
    const char *p[] = {d};
    /* The totals and the scores' counting are wasl_tickets_csat's (shared with the desk's
     * wallboard). */
    PGresult *res =
        wasl_pg_query(pg,
                      "SELECT queue, agent, responses, average, s1, s2, s3, s4, s5"
                      "  FROM wasl_tickets_csat(now() - make_interval(days => $1::int))",
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
    if (argc >= 2 && !strcmp(argv[1], "wrapup")) {
        return wrapup(argc - 1, argv + 1);
    }
    if (argc >= 2 && !strcmp(argv[1], "--help")) {
        usage();
        return CTL_OK;
    }
    return usage();
}
