/* agent — `waslctl agent add|list|remove|passwd`: the agents the router offers tickets to, and
 * the people who sign in to the desk as them. */
#include "ctl.h"
#include "wasl_config.h"
#include "wasl_domain.h"
#include "wasl_pg.h"

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
        "                         [--role agent|supervisor|admin --password-file FILE|-]\n"
        "       waslctl agent list\n"
        "       waslctl agent remove ID\n"
        "       waslctl agent passwd ID [--password-file FILE|-] [--role ROLE]\n"
        "Skills are queue names (an agent serves a queue it has as a skill) or extra skills a\n"
        "rule requires, with levels 1..%d (default %d; the best matched agent is offered\n"
        "first). Channels: web, api, email, sms, phone (default phone:1, others 3). Adding an\n"
        "existing ID updates it (an option left out keeps its value); remove disables it and\n"
        "withdraws its offers and ends its desk sessions. --password-file sets the desk password\n"
        "(first line of FILE, - for stdin; never on the command line) and --role the desk role\n"
        "(with a password). Uses WASL_PG_URL (and WASL_REDIS_URL for sessions).\n",
        SKILL_LEVEL_MAX, SKILL_LEVEL_DEFAULT);
    return CTL_USAGE;
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
        if (!wasl_name_ok(w) || !known || v < min || v > max) {
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

/* The options of `agent add` after its ID; NULL where not given. */
typedef struct {
    const char *name, *skills, *langs, *cap, *wrapup, *role, *password_file;
} agent_opts_t;

/* Reads argv[3..] into o. 0, or -1 on an unknown or incomplete option. */
static int read_opts(int argc, char **argv, agent_opts_t *o)
{
    if ((argc - 3) % 2) {
        return -1;
    }
    for (int i = 3; i + 1 < argc; i += 2) {
        const char *v = argv[i + 1];
        if (!strcmp(argv[i], "--name")) {
            o->name = v;
        } else if (!strcmp(argv[i], "--skills")) {
            o->skills = v;
        } else if (!strcmp(argv[i], "--languages")) {
            o->langs = v;
        } else if (!strcmp(argv[i], "--capacity")) {
            o->cap = v;
        } else if (!strcmp(argv[i], "--wrapup")) {
            o->wrapup = v;
        } else if (!strcmp(argv[i], "--role")) {
            o->role = v;
        } else if (!strcmp(argv[i], "--password-file")) {
            o->password_file = v;
        } else {
            return -1;
        }
    }
    /* A role is a desk role: it comes with a way to sign in. */
    return o->name && o->skills && (!o->role || o->password_file) ? 0 : -1;
}

/* The agent's fields as wasl_agents_save takes them (JSON text, NULL where not given: kept on
 * update, the default on insert). Frees with agent_doc_free. */
typedef struct {
    char *skills, *langs, *cap, *wrapup;
} agent_doc_t;

static void agent_doc_free(agent_doc_t *d)
{
    free(d->skills);
    free(d->langs);
    free(d->cap);
    free(d->wrapup);
}

/* Checks and converts the options. CTL_OK, or CTL_USAGE (printed). */
static int agent_doc(const agent_opts_t *o, agent_doc_t *d)
{
    static const char *const channels[] = {"web", "api", "email", "sms", "phone", NULL};
    static const char *const languages[] = {"ar", "en", NULL};
    json_t *sk = parse_pairs(o->skills, "skill", SKILL_LEVEL_DEFAULT, 1, SKILL_LEVEL_MAX, NULL);
    json_t *lg = o->langs ? parse_pairs(o->langs, "language", 1, 1, 1, languages) : NULL;
    json_t *cp = o->cap ? parse_pairs(o->cap, "capacity", 1, 0, CAPACITY_MAX, channels) : NULL;
    char *end = NULL;
    long w = o->wrapup ? strtol(o->wrapup, &end, 10) : 0;
    bool wrapup_ok = !o->wrapup || (end != o->wrapup && !*end && w >= 0 && w <= WRAPUP_MAX_S);
    int rc = CTL_USAGE;
    if (sk && (!o->langs || lg) && (!o->cap || cp) && wrapup_ok) {
        json_t *lang_list = json_array();
        const char *k;
        json_t *v;
        json_object_foreach(lg, k, v)
        {
            json_array_append_new(lang_list, json_string(k));
        }
        d->skills = json_dumps(sk, JSON_COMPACT);
        d->langs = lg ? json_dumps(lang_list, JSON_COMPACT) : NULL;
        d->cap = cp ? json_dumps(cp, JSON_COMPACT) : NULL;
        d->wrapup = o->wrapup ? strdup(o->wrapup) : NULL;
        json_decref(lang_list);
        rc = d->skills && (!lg || d->langs) && (!cp || d->cap) && (!o->wrapup || d->wrapup)
                 ? CTL_OK
                 : CTL_FAILED;
    } else if (!wrapup_ok) {
        usage();
    }
    json_decref(sk);
    json_decref(lg);
    json_decref(cp);
    return rc;
}

/* `agent add ID …`: wasl_agents_save (proto/functions/agents.sql), the same rule as the
 * desk's PUT: an option left out keeps the agent's value, or takes the default for a new one. */
static int agent_add(int argc, char **argv)
{
    agent_opts_t o = {0};
    if (argc < 3 || !wasl_agent_id_ok(argv[2]) || read_opts(argc, argv, &o) < 0) {
        return usage();
    }
    agent_doc_t d = {0};
    int rc = agent_doc(&o, &d);
    wasl_pg_t *pg = rc == CTL_OK ? ctl_pg_connect("agent") : NULL;
    if (pg) {
        const char *p[] = {argv[2], o.name, d.skills, d.langs, d.cap, d.wrapup, "waslctl"};
        PGresult *res = wasl_pg_query(pg,
                                      "SELECT wasl_agents_save($1, $2, $3::jsonb, $4::jsonb,"
                                      "                        $5::jsonb, $6::int, $7)",
                                      7, p);
        if (wasl_pg_arity(res, 1, "wasl_agents_save") && PQntuples(res) == 1) {
            printf("agent %s %s\n", argv[2],
                   strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? "added" : "updated");
            if (o.password_file) {
                rc = ctl_passwd_set(pg, argv[2], o.password_file, o.role);
            }
        } else {
            fprintf(stderr, "waslctl agent: %s\n", wasl_pg_error(pg));
            rc = CTL_FAILED;
        }
        PQclear(res);
    } else if (rc == CTL_OK) {
        rc = CTL_FAILED;
    }
    wasl_pg_destroy(&pg);
    agent_doc_free(&d);
    return rc;
}

static int agent_list(void)
{
    wasl_pg_t *pg = ctl_pg_connect("agent");
    if (!pg) {
        return CTL_FAILED;
    }
    enum {
        L_ID,
        L_NAME,
        L_PRESENCE,
        L_SKILLS,
        L_LANGS,
        L_CAPACITY,
        L_ASSIGNED,
        L_OFFERED,
        L_NCOLS
    };
    // clang-format off
    PGresult *res = wasl_pg_query(pg,
        "SELECT id, name,"
        "       CASE WHEN NOT enabled THEN 'removed'"
        "            WHEN presence_until IS NULL OR presence_until <= wasl_now() THEN 'offline'"
        "            ELSE presence END,"
        "       skills::text, array_to_string(languages, ','), capacity::text,"
        "       (SELECT count(*) FROM tickets t WHERE t.assignee = a.id AND t.status = 'assigned'),"
        "       (SELECT count(*) FROM offers o WHERE o.agent_id = a.id AND o.state = 'offered')"
        "  FROM agents a"
        " ORDER BY enabled DESC, id",
        0, NULL);
    // clang-format on
    if (!wasl_pg_arity(res, L_NCOLS, "waslctl agent list")) {
        fprintf(stderr, "waslctl agent: %s\n", res ? "unexpected columns" : wasl_pg_error(pg));
        PQclear(res);
        wasl_pg_destroy(&pg);
        return CTL_FAILED;
    }
    printf("%-16s %-9s %-6s %-8s %-40s %s\n", "ID", "PRESENCE", "LANG", "WORK", "SKILLS",
           "CAPACITY");
    for (int r = 0; r < PQntuples(res); r++) {
        char work[32];
        snprintf(work, sizeof work, "%s+%s", PQgetvalue(res, r, L_ASSIGNED),
                 PQgetvalue(res, r, L_OFFERED));
        printf("%-16s %-9s %-6s %-8s %-40s %s  (%s)\n", PQgetvalue(res, r, L_ID),
               PQgetvalue(res, r, L_PRESENCE), PQgetvalue(res, r, L_LANGS), work,
               PQgetvalue(res, r, L_SKILLS), PQgetvalue(res, r, L_CAPACITY),
               PQgetvalue(res, r, L_NAME));
    }
    PQclear(res);
    wasl_pg_destroy(&pg);
    return CTL_OK;
}

static int agent_remove(const char *id)
{
    wasl_pg_t *pg = ctl_pg_connect("agent");
    if (!pg) {
        return CTL_FAILED;
    }
    const char *p[] = {id, "waslctl"};
    PGresult *res = wasl_pg_query(pg, "SELECT wasl_agents_remove($1, $2)", 2, p);
    int rc = CTL_FAILED;
    if (!wasl_pg_arity(res, 1, "wasl_agents_remove") || PQntuples(res) != 1) {
        fprintf(stderr, "waslctl agent: %s\n", wasl_pg_error(pg));
    } else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        fprintf(stderr, "waslctl agent: no enabled agent %s\n", id);
    } else {
        printf("agent %s removed\n", id);
        rc = ctl_passwd_end_sessions(id);
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
    if (!strcmp(argv[1], "passwd")) {
        return ctl_agent_passwd(argc, argv);
    }
    return usage();
}
