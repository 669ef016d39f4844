/* `lantern compare`: the per-layer comparison of src/compare.c as a command,
 * the first thing to run when a model's output looks wrong. It runs the
 * model once over the oracle's input_ids and prints the worst error of every
 * block, the final hidden and the logits, and the routing / indexer
 * agreement; exit status 1 says something is out of tolerance, and the last
 * line names what. Conventions of src/cli.h: exit 0 ok, 1 out of tolerance
 * or runtime failure, 2 usage. */
#include "cli.h"
#include "compare.h"
#include "generate.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

/* Default relative tolerance: two correct fp32 implementations differ by
 * about 1e-5 (tests/fixtures/README.md). REFERENCE numerics round to FP8 and
 * bf16 on purpose and exceed it; their report shows by how much. */
#define COMPARE_TOL 1e-4

static const char compare_usage[] =
    "usage: lantern compare [-m DIR] ORACLE.safetensors [options]\n"
    "  Runs the model over the oracle's input_ids (tools/oracle's format) and prints, per\n"
    "  block, max |dX| / max |X| of the residual streams, then the final hidden, the logits\n"
    "  and how many routing and indexer rows differ. Names the first block out of tolerance.\n"
    "  --tol X             relative tolerance (default 1e-4, what fp32 math reaches)\n"
    LT_GEN_MODEL_USAGE
    "  --numerics MODE     exact (default: fp32, like the oracle) or reference (the official rounding)\n"
    "Exit status: 0 within tolerance, 1 out of tolerance or runtime failure, 2 usage error.\n";

typedef struct {
    lt_gen_options g;
    const char *oracle;
    double tol;
} compare_options;

/* -1 to go on, else the exit code */
static int parse_compare_args(int argc, char **argv, compare_options *o) {
    *o = (compare_options){0};
    lt_gen_options_init(&o->g, "compare", 0);
    o->g.numerics = LT_NUMERICS_EXACT; /* the oracle is fp32 */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(compare_usage, stdout);
            return 0;
        }
        int r = -1;
        if (!strcmp(a, "--tol")) r = (v = lt_cli_value("compare", argc, argv, &i)) && lt_cli_double(a, v, 0, 1e6, &o->tol);
        else if (a[0] != '-' && !o->oracle) r = 1, o->oracle = a;
        else if (strcmp(a, "--ctx")) r = lt_gen_model_flag(argc, argv, &i, &o->g); /* the oracle sets the length */
        if (r == 0) return 2;
        if (r < 0) {
            fprintf(stderr, "lantern compare: unknown option '%s' (see lantern compare --help)\n", a);
            return 2;
        }
    }
    if (!o->oracle) {
        fprintf(stderr, "lantern compare: ORACLE.safetensors is missing (see lantern compare --help)\n");
        return 2;
    }
    if (!o->tol) o->tol = COMPARE_TOL;
    return -1;
}

/* what is out of tolerance, in words; NULL when nothing is */
static const char *verdict(const lt_compare *r, double tol, char *buf, size_t cap) {
    if (r->first_bad >= 0)
        snprintf(buf, cap, "block %d is the first out of tolerance (%.3g > %.3g)", r->first_bad, r->hidden[r->first_bad],
                 tol);
    else if (r->final_hidden > tol)
        snprintf(buf, cap, "the final hidden is out of tolerance (%.3g > %.3g)", r->final_hidden, tol);
    else if (r->logits_rel > tol)
        snprintf(buf, cap, "the logits are out of tolerance (%.3g > %.3g)", r->logits_rel, tol);
    else if (r->mtp_logits > tol)
        snprintf(buf, cap, "the MTP logits are out of tolerance (%.3g > %.3g)", r->mtp_logits, tol);
    else
        return NULL;
    return buf;
}

static lt_status compare(compare_options *o, lt_model **m, lt_store *oracle, lt_compare *r, lt_error *err) {
    lt_status st = lt_gen_resolve_dir(&o->g, err);
    lt_model_params mp = {.numerics = o->g.numerics, .n_threads = (int)o->g.threads};
    if (st == LT_OK) st = lt_model_open(m, o->g.dir, &mp, err);
    if (st == LT_OK) st = lt_store_open_file(oracle, o->oracle, err);
    if (st != LT_OK) return st;
    printf("%s against %s, %s numerics:\n", o->g.dir, o->oracle,
           o->g.numerics == LT_NUMERICS_EXACT ? "exact" : "reference");
    st = lt_compare_run(*m, oracle, o->tol, r, err);
    if (st == LT_OK) lt_compare_print(r, o->tol, stdout);
    fflush(stdout);
    return st;
}

int lt_cli_compare(int argc, char **argv) {
    compare_options o;
    int rc = parse_compare_args(argc, argv, &o);
    if (rc >= 0) return rc;
    lt_model *m = NULL;
    lt_store oracle = {0};
    lt_compare r;
    lt_error err = {0};
    char why[160];
    lt_status st = compare(&o, &m, &oracle, &r, &err);
    const char *bad = st == LT_OK ? verdict(&r, o.tol, why, sizeof why) : NULL;
    if (st != LT_OK) fprintf(stderr, "lantern compare: %s: %s\n", lt_status_name(st), err.msg);
    else if (bad) fprintf(stderr, "lantern compare: %s\n", bad);
    lt_store_close(&oracle);
    lt_model_close(m);
    return st != LT_OK || bad ? 1 : 0;
}
