/* `lantern run`: one prompt in, its continuation streamed out.
 *
 * The prompt is chat-formatted by default (one user turn through the model's
 * own chat encoder, chat mode) or, with --raw, tokenized as plain text for a
 * completion. Tokens are printed as they come (whole UTF-8 characters only);
 * stdout carries nothing but the generated text, and the timing lines go to
 * stderr. Conventions of src/cli.h: exit 0 ok, 1 runtime failure, 2 usage. */
#include "chat.h"
#include "cli.h"
#include "generate.h"
#include "util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char run_usage[] =
    "usage: lantern run [-m DIR] -p PROMPT [options]\n"
    "  Generates a continuation of PROMPT and streams it to stdout; speeds go to stderr.\n"
    "  -p PROMPT           the prompt: a user message, or plain text with --raw\n"
    "  -n N                tokens to generate at most (default 256); EOS stops earlier\n"
    "  --raw               plain completion: no chat template, no BOS\n"
    LT_GEN_MODEL_USAGE
    LT_GEN_NUMERICS_USAGE
    "  --ctx N             context size in tokens (default: prompt + N)\n"
    LT_GEN_SAMPLE_USAGE
    "Exit status: 0 ok, 1 runtime failure, 2 usage error.\n";

typedef struct {
    lt_gen_options g;
    const char *prompt;
    int raw;
} run_options;

/* -1 to go on, else the exit code */
static int parse_run_args(int argc, char **argv, run_options *o) {
    *o = (run_options){0};
    lt_gen_options_init(&o->g, "run", 256);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(run_usage, stdout);
            return 0;
        }
        int r = -1;
        if (!strcmp(a, "--raw")) r = o->raw = 1;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) r = (o->prompt = lt_cli_value("run", argc, argv, &i)) != NULL;
        if (r < 0) r = lt_gen_model_flag(argc, argv, &i, &o->g);
        if (r < 0) r = lt_gen_sample_flag(argc, argv, &i, &o->g);
        if (r == 0) return 2;
        if (r < 0) {
            fprintf(stderr, "lantern run: unknown option '%s' (see lantern run --help)\n", a);
            return 2;
        }
    }
    if (!o->prompt) {
        fprintf(stderr, "lantern run: -p PROMPT is missing (see lantern run --help)\n");
        return 2;
    }
    return -1;
}


static void to_stdout(void *ud, const char *text, size_t len) {
    (void)ud;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

static lt_status run(run_options *o, lt_gen *g, lt_error *err) {
    lt_status st = lt_gen_resolve_dir(&o->g, err);
    if (st == LT_OK) st = lt_gen_open(g, &o->g, err);
    lt_token_vec ids = {0};
    if (st == LT_OK) st = lt_gen_prompt_ids(o->g.dir, g->tok, o->prompt, o->raw, &ids, err);
    int64_t n_ctx = o->g.ctx ? o->g.ctx : (int64_t)ids.n + o->g.n_predict;
    if (st == LT_OK && (int64_t)ids.n + o->g.n_predict > n_ctx)
        st = lt_fail(err, LT_ERR_ARG, "prompt (%zu tokens) + -n %ld exceed --ctx %lld", ids.n, o->g.n_predict,
                     (long long)n_ctx);
    if (st == LT_OK) st = lt_gen_start(g, &o->g, n_ctx, err);
    if (st == LT_OK) st = lt_gen_prefill(g, ids.ids, ids.n, NULL, err);
    lt_token_vec_free(&ids);
    if (st == LT_OK) st = lt_gen_generate(g, o->g.n_predict, NULL, to_stdout, NULL, err);
    if (isatty(STDOUT_FILENO)) putchar('\n');
    fflush(stdout);
    return st;
}

int lt_cli_run(int argc, char **argv) {
    run_options o;
    int rc = parse_run_args(argc, argv, &o);
    if (rc >= 0) return rc;
    lt_gen g = {0};
    lt_error err = {0};
    lt_status st = run(&o, &g, &err);
    if (st != LT_OK) {
        fprintf(stderr, "lantern run: %s: %s\n", lt_status_name(st), err.msg);
    } else {
        fputc('\n', stderr);
        lt_gen_print_stats(&g, "run");
    }
    lt_gen_close(&g);
    return st == LT_OK ? 0 : 1;
}
