/* waslctl — the operator's command line: dispatch to the subcommands. */
#include "ctl.h"
#include "wasl_log.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"migrate", ctl_migrate, "apply the database schema migrations (idempotent, one transaction)"},
    {"keygen", ctl_keygen, "create CURVE key pairs for the daemons: keygen [--dir DIR] NAME..."},
    {"client", ctl_client, "manage intake's clients: client add|list|remove (see client --help)"},
    {"classifier", ctl_classifier,
     "classifier train TRAIN.tsv -o MODEL | eval FILE.tsv [--model M]"},
    {"notify", ctl_notify, "notifier dead letters: notify dead | redrive (ID... | --all)"},
    {"report", ctl_report, "reports: report csat|wrapup [--days N] (satisfaction by queue and agent; "
               "resolutions by wrap-up code)"},
    {"agent", ctl_agent,
     "agents and their desk sign-in: agent add|list|remove|passwd (see agent --help)"},
    {"route", ctl_route, "route explain REF | route replay --since TIME --config FILE"},
    {"seed-cases", ctl_seed_cases, "seed-cases N: demo courts, cases, parties and hearings"},
    {"seed-demo", ctl_seed_demo,
     "seed-demo [--accounts FILE]: the desk's demo people, with new passwords printed once"},
    {"status", ctl_status,
     "show each daemon's health (WASL_STATUS_TARGETS); exit 0 iff all healthy"},
    {"version", ctl_version, "print the version, the protocol messages and the schema version"},
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: waslctl COMMAND [ARGS] (waslctl COMMAND --help for its configuration)\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    }
}

int main(int argc, char **argv)
{
    /* Human output goes to stdout; warnings and errors as JSON lines to stderr. */
    wasl_log_init("waslctl", WASL_LOG_WARN);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        return ctl_version(1, argv + 1);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (!strcmp(argv[1], commands[i].name)) {
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "waslctl: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return CTL_USAGE;
}
