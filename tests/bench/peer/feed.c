/* feed — runs a command once per mail, as an MTA's pipe transport does: the mail on standard
 * input, one process each, LOOPS of them at a time (each loop takes every LOOPS-th mail, in
 * order). Prints one line per mail, "index exit_code milliseconds", and the wall time. Used by
 * tests/bench/peer (make bench-peer) to drive rt-mailgate and wasl-mailgate the same way, without
 * an interpreter's spawn cost in either figure.
 *
 *   peer_feed LOOPS LIST OUT ERRLOG -- COMMAND [ARG...]
 * LIST: one mail file per line. OUT: the per-mail lines. ERRLOG: the commands' stderr. */
#include "wasl_clock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct {
    char **files;
    size_t n, loops, first;
    char **argv;
    int errfd;
    int *rc;
    double *ms;
} loop_t;

/* One mail through the command. The exit code (or 128 + signal, or -1 when it cannot run). */
static int run_one(const loop_t *l, const char *file)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, l->errfd, 2);
    pid_t pid;
    int err = posix_spawnp(&pid, l->argv[0], &fa, NULL, l->argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
    if (err) {
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return -1;
        }
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void *loop(void *arg)
{
    loop_t *l = arg;
    for (size_t i = l->first; i < l->n; i += l->loops) {
        double t0 = wasl_clock_s();
        l->rc[i] = run_one(l, l->files[i]);
        l->ms[i] = (wasl_clock_s() - t0) * 1000.0;
    }
    return NULL;
}

/* The lines of path, in a new array (*n of them). NULL on error. */
static char **read_list(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    char **out = NULL, *line = NULL;
    size_t cap = 0, len = 0;
    *n = 0;
    while (f && getline(&line, &len, f) > 0) {
        line[strcspn(line, "\n")] = '\0';
        if (!*line) {
            continue;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            out = realloc(out, cap * sizeof *out);
        }
        out[(*n)++] = strdup(line);
    }
    free(line);
    if (f) {
        fclose(f);
    }
    return out;
}

int main(int argc, char **argv)
{
    if (argc < 7 || strcmp(argv[5], "--") != 0) {
        fprintf(stderr, "usage: peer_feed LOOPS LIST OUT ERRLOG -- COMMAND [ARG...]\n");
        return 64;
    }
    size_t loops = strtoul(argv[1], NULL, 10), n = 0;
    char **files = read_list(argv[2], &n);
    FILE *out = fopen(argv[3], "w");
    int errfd = open(argv[4], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (loops == 0 || loops > 64 || !files || !out || errfd < 0) {
        fprintf(stderr, "peer_feed: bad arguments or files\n");
        return 64;
    }
    int *rc = calloc(n, sizeof *rc);
    double *ms = calloc(n, sizeof *ms);
    loop_t l[64];
    pthread_t t[64];
    double t0 = wasl_clock_s();
    for (size_t k = 0; k < loops; k++) {
        l[k] = (loop_t){files, n, loops, k, argv + 6, errfd, rc, ms};
        pthread_create(&t[k], NULL, loop, &l[k]);
    }
    for (size_t k = 0; k < loops; k++) {
        pthread_join(t[k], NULL);
    }
    double wall = wasl_clock_s() - t0;
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "%zu %d %.3f\n", i, rc[i], ms[i]);
        free(files[i]);
    }
    fprintf(out, "wall %.6f\n", wall);
    fclose(out);
    close(errfd);
    free(files);
    free(rc);
    free(ms);
    return 0;
}
