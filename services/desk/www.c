/* www — the console's files in memory (see www.h). */
#include "www.h"
#include "wasl_log.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define WWW_FILES_MAX 512
#define WWW_FILE_MAX  (8L << 20) /* a vendored library is at most a few hundred KiB */
#define WWW_DEPTH_MAX 4
#define WWW_PATH_MAX  1024

struct desk_www {
    desk_www_file_t files[WWW_FILES_MAX];
    size_t n;
};

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".json", "application/json; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".woff2", "font/woff2"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(dot, types[i].ext) == 0) {
            return types[i].type;
        }
    }
    return "application/octet-stream";
}

/* Reads `file` whole; NULL when it cannot (logged). */
static char *slurp(const char *file, size_t size)
{
    FILE *f = fopen(file, "rb");
    char *data = f ? malloc(size ? size : 1) : NULL;
    if (!data || fread(data, 1, size, f) != size) {
        wasl_warn("desk: cannot read a console file", "{s:s}", "file", file);
        free(data);
        data = NULL;
    }
    if (f) {
        fclose(f);
    }
    return data;
}

static void add_file(desk_www_t *self, const char *disk, const char *url, off_t size)
{
    if (self->n >= WWW_FILES_MAX || size > WWW_FILE_MAX) {
        wasl_warn("desk: console file skipped (too many or too big)", "{s:s}", "file", disk);
        return;
    }
    char *data = slurp(disk, (size_t)size);
    char *path = data ? strdup(url) : NULL;
    if (!path) {
        free(data);
        return;
    }
    self->files[self->n++] = (desk_www_file_t){
        .path = path, .content_type = content_type(url), .data = data, .len = (size_t)size};
}

static void load_dir(desk_www_t *self, const char *disk, const char *url, int depth)
{
    DIR *d = opendir(disk);
    if (!d) {
        if (depth == 0) {
            wasl_warn("desk: no console directory; the API alone is served", "{s:s}", "dir", disk);
        }
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char dpath[WWW_PATH_MAX], upath[WWW_PATH_MAX];
        struct stat st;
        if (snprintf(dpath, sizeof dpath, "%s/%s", disk, e->d_name) >= (int)sizeof dpath ||
            snprintf(upath, sizeof upath, "%s/%s", url, e->d_name) >= (int)sizeof upath ||
            lstat(dpath, &st) != 0) {
            continue;
        }
        if (S_ISREG(st.st_mode)) {
            add_file(self, dpath, upath, st.st_size);
        } else if (S_ISDIR(st.st_mode) && depth + 1 < WWW_DEPTH_MAX) {
            load_dir(self, dpath, upath, depth + 1);
        }
    }
    closedir(d);
}

desk_www_t *desk_www_load(const char *dir)
{
    desk_www_t *self = calloc(1, sizeof *self);
    if (self) {
        load_dir(self, dir, "", 0);
    }
    return self;
}

void desk_www_destroy(desk_www_t **self_p)
{
    desk_www_t *self = *self_p;
    if (!self) {
        return;
    }
    for (size_t i = 0; i < self->n; i++) {
        free((char *)self->files[i].path);
        free((char *)self->files[i].data);
    }
    free(self);
    *self_p = NULL;
}

const desk_www_file_t *desk_www_find(const desk_www_t *self, const char *path)
{
    if (strcmp(path, "/") == 0) {
        path = "/index.html";
    }
    for (size_t i = 0; i < self->n; i++) {
        if (strcmp(self->files[i].path, path) == 0) {
            return &self->files[i];
        }
    }
    return NULL;
}

size_t desk_www_count(const desk_www_t *self)
{
    return self->n;
}
