/* ctl — the subcommands of waslctl, each `int ctl_<name>(int argc, char **argv)` returning an exit
 * code. */
#ifndef WASL_CTL_H
#define WASL_CTL_H

/* Exit codes shared by the subcommands (sysexits-like, plus 2 for bad configuration). */
#define CTL_OK      0
#define CTL_FAILED  1 /* the operation ran and failed (a daemon unhealthy, SQL error…) */
#define CTL_USAGE   2 /* bad arguments or configuration */
#define CTL_UNAVAIL 69

int ctl_migrate(int argc, char **argv);
int ctl_keygen(int argc, char **argv);
int ctl_status(int argc, char **argv);
int ctl_version(int argc, char **argv);
int ctl_client(int argc, char **argv);
int ctl_classifier(int argc, char **argv);
int ctl_seed_cases(int argc, char **argv);
int ctl_seed_demo(int argc, char **argv);
int ctl_notify(int argc, char **argv);
int ctl_report(int argc, char **argv);
int ctl_agent(int argc, char **argv);
int ctl_route(int argc, char **argv);
/* `agent passwd ID [--password-file F|-] [--role R]` (services/waslctl/passwd.c). */
int ctl_agent_passwd(int argc, char **argv);

/* Reads a new password from `file` ("-": stdin; NULL: asks on the terminal), checks it, hashes
 * it (Argon2id) and sets it with `role` (NULL: kept) through wasl_agents_set_password on `pg`
 * (borrowed); then ends the agent's desk sessions. A CTL_ exit code (the reason printed). */
struct wasl_pg;
int ctl_passwd_set(struct wasl_pg *pg, const char *id, const char *file, const char *role);

/* Connects to WASL_PG_URL (its default when unset or empty). NULL, with "waslctl <what>: cannot
 * connect to PostgreSQL: <why>" printed, when it cannot (services/waslctl/pg.c). */
struct wasl_pg *ctl_pg_connect(const char *what);

/* Ends every desk session of agent `id` (Redis, WASL_REDIS_URL). CTL_OK or CTL_FAILED
 * (printed). */
int ctl_passwd_end_sessions(const char *id);

/* Applies every embedded migration not yet applied, in one transaction, on `pg_url`.
 * Returns the number applied (0: already up to date), or -1 with the reason logged and printed.
 * A migration whose text changed after it was applied is an error. */
int ctl_migrate_run(const char *pg_url, int verbose);

#endif
