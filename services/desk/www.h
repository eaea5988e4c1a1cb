/* www — the console's static files, read once at start into memory: a request's path is only
 * ever compared with the names loaded, never put onto the disk. */
#ifndef WASL_DESK_WWW_H
#define WASL_DESK_WWW_H

#include <stddef.h>

typedef struct desk_www desk_www_t;

typedef struct {
    const char *path;         /* "/index.html" */
    const char *content_type; /* from the extension */
    const char *data;
    size_t len;
} desk_www_file_t;

/* Loads the regular files under `dir` (subdirectories to a small depth; dotfiles, symlinks and
 * files over the size limit skipped, logged). A missing or empty directory gives an empty set,
 * not an error: the API works without a console. NULL only when out of memory. */
desk_www_t *desk_www_load(const char *dir);
void desk_www_destroy(desk_www_t **self_p);

/* The file for a request path ("/" is "/index.html"), or NULL. Borrowed from the set. */
const desk_www_file_t *desk_www_find(const desk_www_t *self, const char *path);

size_t desk_www_count(const desk_www_t *self);

#endif
