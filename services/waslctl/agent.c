/* agent — `waslctl agent add|list|remove`: the agents the router offers tickets to. */
#include "ctl.h"
#include "wasl_agents.h"
#include "wasl_config.h"
#include "wasl_pg.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SKILL_LEVEL_DEFAULT 5
#define SKILL_LEVEL_MAX     10
#define CAPACITY_MAX        50
#define WRAPUP_MAX_S        3600

static int usage(void)
{
    fprintf(
        stderr,
        "Usage: waslctl agent add ID --name NAME --skills QUEUE[:LEVEL],... [--languages ar,en]\n"
        "                         [--capacity CHANNEL:N,...] [--wrapup SECONDS]\n"
        "       waslctl agent list\n"
        "       waslctl agent remove ID\n"
        "Skills are queue names (an agent serves a queue it has as a skill) or extra skills a\n"
        "rule requires, with levels 1..%d (default %d; the best matched agent is offered\n"
        "first). Channels: web, api, email, sms, phone (default phone:1, others 3). Adding an\n"
        "existing ID updates it; remove disables it and withdraws its offers. Uses WASL_PG_URL.\n",
        SKILL_LEVEL_MAX, SKILL_LEVEL_DEFAULT);
    return CTL_USAGE;
}

static wasl_pg_t *connect_pg(void)
{
    const char *url = getenv("WASL_PG_URL");
    wasl_pg_t *pg = wasl_pg_new(url && *url ? url : WASL_PG_URL_DEFAULT);
    if (!pg || !wasl_pg_ok(pg)) {
        fprintf(stderr, "waslctl agent: cannot connect to PostgreSQL: %s\n",
                pg ? wasl_pg_error(pg) : "out of memory");
        wasl_pg_destroy(&pg);
    }
    return pg;
}

static bool name_ok(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 63) {
        return false;
    }
    for (const char *c = s; *c; c++) {
        if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '-' || *c == '_' ||
              *c == '.')) {
            return false;
        }
    }
    return true;
}

/* "a:5,b" → {"a":5,"b":default}; NULL (printed) when malformed. */
static json_t *parse_pairs(const char *list, const char *what, long def, long min, long max,
                           const char *const *allowed)
{
    json_t *obj = json_object();
    char *copy = strdup(list);
    char *save = NULL;
    for (char *w = copy ? strtok_r(copy, ",", &save) : NULL; w; w = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(w, ':');
        long v = def;
        if (colon) {
            *colon = '\0';
            char *end;
            v = strtol(colon + 1, &end, 10);
            if (*end || end == colon + 1) {
                v = min - 1;
            }
        }
        bool known = !allowed;
        for (size_t i = 0; allowed && allowed[i]; i++) {
            known |= strcmp(allowed[i], w) == 0;
        }
        if (!name_ok(w) || !known || v < min || v > max) {
            fprintf(stderr, "waslctl agent: bad %s \"%s\" (%ld..%ld)\n", what, w, min, max);
            json_decref(obj);
            free(copy);
            return NULL;
        }
        json_object_set_new(obj, w, json_integer(v));
    }
    free(copy);
    if (json_object_size(obj) == 0) {
        fprintf(stderr, "waslctl agent: empty %s\n", what);
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static int agent_add(int argc, char **argv)
{
    if (argc < 3 || !name_ok(argv[2])) {
        return usage();
    }
    const char *id = argv[2], *name = NULL, *skills = NULL, *langs = "ar", *cap = NULL;
    const char *wrapup = "30";
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--name")) {
            name = argv[i + 1];
        } else if (!strcmp(argv[i], "--skills")) {
            skills = argv[i + 1];
        } else if (!strcmp(argv[i], "--languages")) {
            langs = argv[i + 1];
        } else if (!strcmp(argv[i], "--capacity")) {
            cap = argv[i + 1];
        } else if (!strcmp(argv[i], "--wrapup")) {
            wrapup = argv[i + 1];
        } else {
            return usage();
        }
    }
    if ((argc - 3) % 2 || !name || !skills) {
        return usage();
    }
    static const char *const channels[] = {"web", "api", "email", "sms", "phone", NULL};
    static const char *const languages[] = {"ar", "en", NULL};
    json_t *sk = parse_pairs(skills, "skill", SKILL_LEVEL_DEFAULT, 1, SKILL_LEVEL_MAX, NULL);
    json_t *lg = parse_pairs(langs, "language", 1, 1, 1, languages);
    json_t *cp = cap ? parse_pairs(cap, "capacity", 1, 0, CAPACITY_MAX, channels) : NULL;
    char *end;
    long w = strtol(wrapup, &end, 10);
    if (!sk || !lg || (cap && !cp) || *end || w < 0 || w > WRAPUP_MAX_S) {
        json_decref(sk);
        json_decref(lg);
        json_decref(cp);
        return *end || w < 0 || w > WRAPUP_MAX_S ? usage() : CTL_USAGE;
    }
    json_t *lang_list = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(lg, k, v)
    {
        json_array_append_new(lang_list, json_string(k));
    }
    char *sks = json_dumps(sk, JSON_COMPACT), *lgs = json_dumps(lang_list, JSON_COMPACT);
    char *cps = cp ? json_dumps(cp, JSON_COMPACT) : NULL;
    json_decref(sk);
    json_decref(lg);
    json_decref(cp);
    json_decref(lang_list);
    int rc = CTL_FAILED;
    wasl_pg_t *pg = connect_pg();
    if (pg) {
        const char *p[] = {id, name, sks, lgs, cps, wrapup};
        PGresult *res = wasl_pg_query(
            pg,
            "WITH up AS ("
            "  INSERT INTO agents (id, name, skills, languages, capacity, wrapup_s)"
            "  VALUES ($1, $2, $3::jsonb, ARRAY(SELECT jsonb_array_elements_text($4::jsonb)),"
            "    coalesce($5::jsonb, '{\"phone\": 1, \"email\": 3, \"sms\": 3, \"web\": 3,"
            "    \"api\": 3}'), $6::int)"
            "  ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, skills = EXCLUDED.skills,"
            "    languages = EXCLUDED.languages, capacity = CASE WHEN $5 IS NULL"
            "    THEN agents.capacity ELSE EXCLUDED.capacity END, wrapup_s = EXCLUDED.wrapup_s,"
            "    enabled = true, updated_at = now()"
            "  RETURNING id, (xmax = 0) AS created"
            "), ev AS ("
            "  INSERT INTO agent_events (agent_id, kind, actor, data)"
            "  SELECT id, 'agent.saved', 'waslctl', jsonb_build_object('skills', $3::jsonb) FROM up"
            ")"
            "SELECT created FROM up",
            6, p);
        if (res) {
            printf("agent %s %s\n", id,
                   strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? "added" : "updated");
            PQclear(res);
            rc = CTL_OK;
        } else {
            fprintf(stderr, "waslctl agent: %s\n", wasl_pg_error(pg));
        }
    }
    wasl_pg_destroy(&pg);
    free(sks);
    free(lgs);
    free(cps);
    return rc;
}

static int agent_list(void)
{
    wasl_pg_t *pg = connect_pg();
    if (!pg) {
        return CTL_FAILED;
    }
    PGresult *res = wasl_pg_query(
        pg,
        "SELECT id, name, CASE WHEN NOT enabled THEN 'removed'"
        "  WHEN presence_until IS NULL OR presence_until <= now() THEN 'offline' ELSE presence END,"
        "  skills::text, array_to_string(languages, ','), capacity::text,"
        "  (SELECT count(*) FROM tickets t WHERE t.assignee = a.id AND t.status = 'assigned'),"
        "  (SELECT count(*) FROM offers o WHERE o.agent_id = a.id AND o.state = 'offered')"
        " FROM agents a ORDER BY enabled DESC, id",
        0, NULL);
    if (!res) {
        fprintf(stderr, "waslctl agent: %s\n", wasl_pg_error(pg));
        wasl_pg_destroy(&pg);
        return CTL_FAILED;
    }
    printf("%-16s %-9s %-6s %-8s %-40s %s\n", "ID", "PRESENCE", "LANG", "WORK", "SKILLS",
           "CAPACITY");
    for (int r = 0; r < PQntuples(res); r++) {
        char work[32];
        snprintf(work, sizeof work, "%s+%s", PQgetvalue(res, r, 6), PQgetvalue(res, r, 7));
        printf("%-16s %-9s %-6s %-8s %-40s %s  (%s)\n", PQgetvalue(res, r, 0),
               PQgetvalue(res, r, 2), PQgetvalue(res, r, 4), work, PQgetvalue(res, r, 3),
               PQgetvalue(res, r, 5), PQgetvalue(res, r, 1));
    }
    PQclear(res);
    wasl_pg_destroy(&pg);
    return CTL_OK;
}

static int agent_remove(const char *id)
{
    wasl_pg_t *pg = connect_pg();
    if (!pg) {
        return CTL_FAILED;
    }
    const char *p[] = {id, "waslctl"};
    PGresult *res = wasl_pg_query(pg, wasl_agent_remove_sql, 2, p);
    int rc = CTL_FAILED;
    if (!res) {
        fprintf(stderr, "waslctl agent: %s\n", wasl_pg_error(pg));
    } else if (PQntuples(res) == 0) {
        fprintf(stderr, "waslctl agent: no enabled agent %s\n", id);
    } else {
        printf("agent %s removed\n", id);
        rc = CTL_OK;
    }
    PQclear(res);
    wasl_pg_destroy(&pg);
    return rc;
}

int ctl_agent(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        return usage();
    }
    if (!strcmp(argv[1], "add")) {
        return agent_add(argc, argv);
    }
    if (!strcmp(argv[1], "list") && argc == 2) {
        return agent_list();
    }
    if (!strcmp(argv[1], "remove") && argc == 3) {
        return agent_remove(argv[2]);
    }
    return usage();
}
