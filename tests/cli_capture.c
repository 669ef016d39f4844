/* In-process subcommand runs with captured output (cli_capture.h). */
#include "cli_capture.h"

#include "test.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void path_of(char *buf, size_t cap, const char *tag, const char *ext) {
    snprintf(buf, cap, "%s/%s.%s", lt_test_tmpdir(), tag, ext);
}

int lt_test_cli(const char *tag, int (*fn)(int, char **), char **argv) {
    char out_path[512], err_path[512];
    path_of(out_path, sizeof out_path, tag, "out");
    path_of(err_path, sizeof err_path, tag, "err");
    int argc = 0;
    while (argv[argc]) argc++;
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600), fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fo, 1);
    dup2(fe, 2);
    int rc = fn(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(fo);
    close(fe);
    close(saved_out);
    close(saved_err);
    return rc;
}

static char *slurp(const char *tag, const char *ext) {
    char path[512];
    path_of(path, sizeof path, tag, ext);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = calloc(1, (size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

char *lt_test_cli_out(const char *tag) { return slurp(tag, "out"); }
char *lt_test_cli_err(const char *tag) { return slurp(tag, "err"); }
