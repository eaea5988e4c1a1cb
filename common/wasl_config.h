/* wasl_config — WASL_* environment configuration with defaults, validation and --help. */
#ifndef WASL_CONFIG_H
#define WASL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct wasl_config wasl_config_t;

/* Exit code for a bad configuration value (sysexits' EX_USAGE is 64; the brief asks for 2). */
#define WASL_EXIT_CONFIG 2

/* Returns a new, empty configuration for program `prog` described by one line `summary`.
 * Both strings are borrowed and must outlive the object. NULL on allocation failure. */
wasl_config_t *wasl_config_new(const char *prog, const char *summary);

/* Safe twice; NULLs the caller's pointer. Strings handed out stay valid (they point into the
 * environment or at the registered defaults). */
void wasl_config_destroy(wasl_config_t **self_p);

/* Register variables. `name` must start with "WASL_"; `help` and `def` are borrowed.
 * On parse, the destination receives the environment's value or the default. */
void wasl_config_str(wasl_config_t *self, const char *name, const char *def, const char *help,
                     const char **dest);
void wasl_config_int(wasl_config_t *self, const char *name, long def, long min, long max,
                     const char *help, long *dest);
void wasl_config_bool(wasl_config_t *self, const char *name, bool def, const char *help,
                      bool *dest);
/* `choices` is a '|'-separated list; *dest receives the index of the chosen word. */
void wasl_config_enum(wasl_config_t *self, const char *name, const char *def, const char *choices,
                      const char *help, int *dest);

/* The connection variables the daemons share, with the local stack's defaults. */
#define WASL_PG_URL_DEFAULT    "postgresql://wasl@127.0.0.1:54320/wasl"
#define WASL_REDIS_URL_DEFAULT "redis://127.0.0.1:63790/0"
#define WASL_BUS_DEFAULT       "tcp://127.0.0.1:7100"

/* WASL_PG_URL and WASL_REDIS_URL. */
void wasl_config_pg_url(wasl_config_t *self, const char **dest);
/* WASL_PG_SYNC_COMMIT, for the pipeline stages (classifier, router, notifier) only: whether
 * each of their commits waits for PostgreSQL's WAL flush. Intake always waits (its 2xx
 * promises durability) and so does caselookup (its audit row comes before any disclosure). */
void wasl_config_pg_sync_commit(wasl_config_t *self, bool *dest);
void wasl_config_redis_url(wasl_config_t *self, const char **dest);

/* What a client of the bus needs: WASL_BUS, WASL_BUS_STAGES (not registered when `stages` is
 * NULL: request/reply only), WASL_CURVE_DIR and WASL_CURVE_NAME (default `name`, borrowed). */
void wasl_config_bus_client(wasl_config_t *self, const char *name, const char **bus,
                            const char **stages, const char **curve_dir, const char **curve_name);

/* Registers what every daemon has: WASL_LOG_LEVEL, WASL_ADMIN_BIND, WASL_ADMIN_PORT
 * (default `admin_port`). Read the values back with the getters below after parsing. */
void wasl_config_daemon(wasl_config_t *self, long admin_port);
int wasl_config_log_level(const wasl_config_t *self);
const char *wasl_config_admin_bind(const wasl_config_t *self);
int wasl_config_admin_port(const wasl_config_t *self);

/* Parses argv (--help, --version) and the environment without exiting.
 * Returns 0 when every value is valid, 1 when --help or --version was printed to `out`,
 * -1 on a bad value or argument with a message naming it in `err`. */
int wasl_config_parse_env(wasl_config_t *self, int argc, char **argv, FILE *out, char *err,
                          size_t errlen);

/* As above, but exits: 0 after --help/--version, WASL_EXIT_CONFIG after printing the error to
 * stderr as "PROG: message". Returns only when the configuration is valid. */
void wasl_config_parse(wasl_config_t *self, int argc, char **argv);

/* Prints the usage text: summary, then each variable with its default and help. */
void wasl_config_usage(const wasl_config_t *self, FILE *out);

#endif
