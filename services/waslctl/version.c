/* version — `waslctl version`: the build, the protocol messages and the schema it carries. */
#include "ctl.h"
#include "wasl_migrations.h"
#include "wasl_proto.h"

#include <stdio.h>

int ctl_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("waslctl %s\n", WASL_VERSION);
    int schema = wasl_migrations_n ? wasl_migrations[wasl_migrations_n - 1].version : 0;
    printf("schema version %d (%zu migrations)\n", schema, wasl_migrations_n);
    printf("messages:");
    for (int t = WASL_MSG_NONE + 1; t <= WASL_MSG_TYPE_COUNT; t++) {
        printf(" %s/v%d", wasl_msg_type_name((wasl_msg_type_t)t),
               wasl_msg_type_version((wasl_msg_type_t)t));
    }
    printf("\n");
    return CTL_OK;
}
