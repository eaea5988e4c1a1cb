/* Unit tests for the desk's console files (services/desk/www.c): what is loaded, what a request
 * path finds, and that nothing from a request reaches the disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "wasl_log.h"
#include "../../services/desk/www.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A console directory: index.html, desk.js, vendor/lib.js, a dotfile, a symlink out of it. */
static int make_tree(void **state)
{
    char *dir = strdup("/tmp/test_desk_www.XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[512];
    snprintf(path, sizeof path, "%s/index.html", dir);
    write_file(path, "<!doctype html><html lang=\"ar\" dir=\"rtl\"></html>");
    snprintf(path, sizeof path, "%s/desk.js", dir);
    write_file(path, "'use strict';\n");
    snprintf(path, sizeof path, "%s/vendor", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/vendor/lib.js", dir);
    write_file(path, "export {};\n");
    snprintf(path, sizeof path, "%s/.env", dir);
    write_file(path, "SECRET=1\n");
    snprintf(path, sizeof path, "%s/passwd", dir);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    *state = dir;
    return 0;
}

static int remove_tree(void **state)
{
    char *dir = *state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(dir);
    return 0;
}

static void test_loads_files_and_finds_them(void **state)
{
    desk_www_t *www = desk_www_load(*state);
    assert_non_null(www);
    assert_int_equal(desk_www_count(www), 3);
    const desk_www_file_t *f = desk_www_find(www, "/");
    assert_non_null(f);
    assert_string_equal(f->path, "/index.html");
    assert_string_equal(f->content_type, "text/html; charset=utf-8");
    assert_memory_equal(f->data, "<!doctype html>", 15);
    f = desk_www_find(www, "/vendor/lib.js");
    assert_non_null(f);
    assert_string_equal(f->content_type, "text/javascript; charset=utf-8");
    assert_int_equal(f->len, strlen("export {};\n"));
    assert_non_null(desk_www_find(www, "/desk.js"));
    desk_www_destroy(&www);
    assert_null(www);
    desk_www_destroy(&www);
}

static void test_request_paths_never_reach_the_disk(void **state)
{
    desk_www_t *www = desk_www_load(*state);
    static const char *const refused[] = {
        "/.env",      "/passwd",           "/../../etc/passwd", "/vendor/../index.html", "/vendor",
        "/vendor/",   "//index.html",      "/index.html/",      "/INDEX.HTML",           "",
        "index.html", "/vendor/lib.js/..", "/./index.html",     "/etc/passwd",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        if (desk_www_find(www, refused[i])) {
            fail_msg("%s was found", refused[i]);
        }
    }
    desk_www_destroy(&www);
}

static void test_missing_or_empty_directory_is_an_empty_set(void **state)
{
    (void)state;
    desk_www_t *www = desk_www_load("/nonexistent/wasl/www");
    assert_non_null(www);
    assert_int_equal(desk_www_count(www), 0);
    assert_null(desk_www_find(www, "/"));
    desk_www_destroy(&www);
    char dir[] = "/tmp/test_desk_www_empty.XXXXXX";
    assert_non_null(mkdtemp(dir));
    www = desk_www_load(dir);
    assert_int_equal(desk_www_count(www), 0);
    desk_www_destroy(&www);
    rmdir(dir);
}

int main(void)
{
    wasl_log_init("test_desk_www", WASL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loads_files_and_finds_them, make_tree, remove_tree),
        cmocka_unit_test_setup_teardown(test_request_paths_never_reach_the_disk, make_tree,
                                        remove_tree),
        cmocka_unit_test(test_missing_or_empty_directory_is_an_empty_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
