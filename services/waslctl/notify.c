/* notify — `waslctl notify dead|redrive`: the notifier's dead letters and their second chance. */
#include "ctl.h"
#include "wasl_config.h"
#include "wasl_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT 50
#define IDS_MAX      1000

static int usage(void)
{
    fprintf(stderr, "Usage: waslctl notify dead [--limit N]\n"
                    "       waslctl notify redrive (ID... | --all) [--channel sms|email]\n"
                    "dead lists dead letters with their reason. redrive makes dead notifications\n"
                    "pending again with fresh attempts (the reason stays until the next outcome).\n"
                    "Uses WASL_PG_URL.\n");
    return CTL_USAGE;
}

static int dead(int argc, char **argv)
{
    long limit = LIST_DEFAULT;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--limit") && i + 1 < argc) {
            char *end;
            limit = strtol(argv[++i], &end, 10);
            if (*end || limit <= 0) {
                return usage();
            }
        } else {
            return usage();
        }
    }
    wasl_pg_t *pg = ctl_pg_connect("notify");
    if (!pg) {
        return CTL_UNAVAIL;
    }
    char lim[24];
    snprintf(lim, sizeof lim, "%ld", limit);
    const char *p[] = {lim};
    /* Printed in the order selected, one column per heading. */
    enum { D_ID, D_CHANNEL, D_TEMPLATE, D_TICKET, D_ATTEMPTS, D_SINCE, D_REASON, D_NCOLS };
    PGresult *res = wasl_pg_query(
        pg,
        "SELECT id, channel, template, coalesce(ticket_id::text, '-'), attempts,"
        "  to_char(updated_at AT TIME ZONE 'Asia/Riyadh', 'YYYY-MM-DD HH24:MI'), last_error"
        " FROM notifications WHERE state = 'dead' ORDER BY updated_at DESC LIMIT $1::int",
        1, p);
    int rc = CTL_FAILED;
    if (wasl_pg_arity(res, D_NCOLS, "waslctl notify dead")) {
        printf("%-10s %-6s %-12s %-10s %-8s %-17s %s\n", "id", "chan", "template", "ticket",
               "attempts", "dead since", "reason");
        for (int r = 0; r < PQntuples(res); r++) {
            printf("%-10s %-6s %-12s %-10s %-8s %-17s %s\n", PQgetvalue(res, r, D_ID),
                   PQgetvalue(res, r, D_CHANNEL), PQgetvalue(res, r, D_TEMPLATE),
                   PQgetvalue(res, r, D_TICKET), PQgetvalue(res, r, D_ATTEMPTS),
                   PQgetvalue(res, r, D_SINCE), PQgetvalue(res, r, D_REASON));
        }
        rc = CTL_OK;
    } else {
        fprintf(stderr, "waslctl notify: %s\n", wasl_pg_error(pg));
    }
    PQclear(res);
    wasl_pg_destroy(&pg);
    return rc;
}

static int redrive(int argc, char **argv)
{
    bool all = false;
    const char *channel = NULL;
    int64_t ids[IDS_MAX];
    size_t n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--all")) {
            all = true;
        } else if (!strcmp(argv[i], "--channel") && i + 1 < argc) {
            channel = argv[++i];
            if (strcmp(channel, "sms") != 0 && strcmp(channel, "email") != 0) {
                return usage();
            }
        } else {
            char *end;
            long long id = strtoll(argv[i], &end, 10);
            if (*end || id <= 0 || n >= IDS_MAX) {
                return usage();
            }
            ids[n++] = id;
        }
    }
    if (all == (n > 0)) {
        return usage(); /* exactly one of IDs and --all */
    }
    char *arr = all ? NULL : wasl_pg_bigint_array(ids, n);
    if (!all && !arr) {
        return CTL_FAILED;
    }
    wasl_pg_t *pg = ctl_pg_connect("notify");
    if (!pg) {
        free(arr);
        return CTL_UNAVAIL;
    }
    const char *p[] = {arr, channel};
    PGresult *res = wasl_pg_query(
        pg, "SELECT id FROM wasl_notifications_redrive($1::bigint[], $2) AS id", 2, p);
    free(arr);
    int rc = CTL_FAILED;
    if (res) {
        printf("redriven: %d\n", PQntuples(res));
        PQclear(res);
        rc = CTL_OK;
    } else {
        fprintf(stderr, "waslctl notify: %s\n", wasl_pg_error(pg));
    }
    wasl_pg_destroy(&pg);
    return rc;
}

int ctl_notify(int argc, char **argv)
{
    if (argc < 2) {
        return usage();
    }
    if (!strcmp(argv[1], "dead")) {
        return dead(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "redrive")) {
        return redrive(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "--help")) {
        usage();
        return CTL_OK;
    }
    return usage();
}
