/* Flag-value parsing shared by the subcommands (src/cli_*.c). */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

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

const char *lt_cli_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 < argc) return argv[++*i];
    fprintf(stderr, "lantern %s: %s needs a value\n", cmd, argv[*i]);
    return NULL;
}
