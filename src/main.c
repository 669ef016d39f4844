/* lantern: command-line entry point. Dispatches to a subcommand (src/cli_*.c). */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"inspect", lt_cli_inspect, "describe a model folder: architecture, layer schedule, tensors, bytes"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: lantern <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'lantern <command> --help' describes a command's options.\n");
}

int lt_cli_int(const char *flag, const char *val, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = val ? strtol(val, &end, 10) : 0;
    if (!val || errno || *end || end == val || v < lo || v > hi) {
        fprintf(stderr, "lantern: %s expects an integer in [%ld, %ld], got '%s'\n", flag, lo, hi, val ? val : "");
        return 0;
    }
    *out = v;
    return 1;
}

int lt_cli_double(const char *flag, const char *val, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = val ? strtod(val, &end) : 0;
    if (!val || errno || *end || end == val || !(v >= lo && v <= hi)) {
        fprintf(stderr, "lantern: %s expects a number in [%g, %g], got '%s'\n", flag, lo, hi, val ? val : "");
        return 0;
    }
    *out = v;
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "lantern: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
