/* keygen — `waslctl keygen`: CURVE key pairs for the daemons, in the layout wasl_zmq loads. */
#include "ctl.h"
#include "wasl_config.h"

#include <czmq.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

/* Names become file names: keep them to a safe alphabet. */
static bool name_ok(const char *name)
{
    if (!*name || strlen(name) > 64) {
        return false;
    }
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_')) {
            return false;
        }
    }
    return true;
}

static int make_dir(const char *path, mode_t mode)
{
    if (mkdir(path, mode) == 0 || errno == EEXIST) {
        return 0;
    }
    fprintf(stderr, "waslctl keygen: cannot create %s: %s\n", path, strerror(errno));
    return -1;
}

int ctl_keygen(int argc, char **argv)
{
    const char *dir = NULL;
    int first_name = 1;
    if (argc > 1 && !strcmp(argv[1], "--help")) {
        printf("Usage: waslctl keygen [--dir DIR] NAME...\n"
               "Creates DIR/NAME.secret (mode 600) and DIR/public/NAME.pub for each NAME that\n"
               "has no key yet. DIR defaults to $WASL_CURVE_DIR, else var/keys. Daemons load\n"
               "their own secret and the bus's public key; the bus admits the keys in public/.\n");
        return CTL_OK;
    }
    if (argc > 2 && !strcmp(argv[1], "--dir")) {
        dir = argv[2];
        first_name = 3;
    }
    if (!dir) {
        dir = getenv("WASL_CURVE_DIR");
        if (!dir || !*dir) {
            dir = "var/keys";
        }
    }
    if (first_name >= argc) {
        fprintf(stderr, "waslctl keygen: name at least one key (e.g. bus intake)\n");
        return CTL_USAGE;
    }
    char public_dir[4096];
    snprintf(public_dir, sizeof public_dir, "%s/public", dir);
    if (make_dir(dir, 0700) < 0 || make_dir(public_dir, 0755) < 0) {
        return CTL_FAILED;
    }
    for (int i = first_name; i < argc; i++) {
        const char *name = argv[i];
        if (!name_ok(name)) {
            fprintf(stderr, "waslctl keygen: bad key name \"%s\" (use a-z, 0-9, - and _)\n", name);
            return CTL_USAGE;
        }
        char secret_path[4200], public_path[4200];
        snprintf(secret_path, sizeof secret_path, "%s/%s.secret", dir, name);
        snprintf(public_path, sizeof public_path, "%s/%s.pub", public_dir, name);
        struct stat st;
        if (stat(secret_path, &st) == 0 && stat(public_path, &st) == 0) {
            printf("%s: exists\n", name);
            continue;
        }
        zcert_t *cert = zcert_new();
        if (!cert) {
            return CTL_FAILED;
        }
        zcert_set_meta(cert, "name", "%s", name);
        zcert_set_meta(cert, "created-by", "waslctl keygen");
        /* The secret file is written under a restrictive umask so it is never readable by
         * others, even for an instant. */
        mode_t old = umask(077);
        int rc = zcert_save_secret(cert, secret_path);
        umask(old);
        rc |= zcert_save_public(cert, public_path);
        if (rc != 0) {
            fprintf(stderr, "waslctl keygen: cannot write %s: %s\n", secret_path, strerror(errno));
            zcert_destroy(&cert);
            return CTL_FAILED;
        }
        printf("%s: %s\n", name, zcert_public_txt(cert));
        zcert_destroy(&cert);
    }
    return CTL_OK;
}
