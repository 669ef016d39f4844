/* `lantern perplexity`: how well the model predicts a text file.
 *
 * The tokens are BOS followed by the file's text (added tokens written in it
 * stay plain text). Windows of --ctx tokens start every --stride tokens, as
 * in Hugging Face's "perplexity of fixed-length models": each window runs
 * from an empty cache and scores only the tokens no earlier window scored,
 * so with stride < ctx every scored token after the first window sees at
 * least ctx - stride tokens of context. The cross-entropy is the mean of
 * -ln p(token | the tokens before it in its window), in nats per token; the
 * perplexity is e to that. Conventions of src/cli.h: exit 0 ok, 1 runtime
 * failure, 2 usage. */
#include "cli.h"
#include "generate.h"
#include "util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PPL_CTX 512  /* default window, tokens (capped by the model's maximum) */
#define PPL_ROWS 64  /* positions whose logits are held at once */

static const char ppl_usage[] =
    "usage: lantern perplexity [-m DIR] FILE [options]\n"
    "  Prints the cross-entropy (nats/token) and perplexity of the text in FILE, per window\n"
    "  and over all of it.\n"
    "  --ctx N             window size in tokens (default 512, at most the model's)\n"
    "  --stride S          start a window every S tokens, S <= N (default N: no overlap)\n"
    "  --json              print one JSON object instead of text\n"
    LT_GEN_MODEL_USAGE
    LT_GEN_NUMERICS_USAGE
    "Exit status: 0 ok, 1 runtime failure, 2 usage error.\n";

typedef struct {
    lt_gen_options g;
    const char *file;
    long stride;
    int json;
} ppl_options;

typedef struct {
    int64_t begin, end, scored;
    double nll; /* summed over the scored tokens */
} window;

/* -1 to go on, else the exit code */
static int parse_ppl_args(int argc, char **argv, ppl_options *o) {
    *o = (ppl_options){0};
    lt_gen_options_init(&o->g, "perplexity", 0);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(ppl_usage, stdout);
            return 0;
        }
        int r = -1;
        if (!strcmp(a, "--json")) r = o->json = 1;
        else if (!strcmp(a, "--stride"))
            r = (v = lt_cli_value("perplexity", argc, argv, &i)) && lt_cli_int(a, v, 1, INT32_MAX, &o->stride);
        else if (a[0] != '-' && !o->file) r = 1, o->file = a;
        if (r < 0) r = lt_gen_model_flag(argc, argv, &i, &o->g);
        if (r == 0) return 2;
        if (r < 0) {
            fprintf(stderr, "lantern perplexity: unknown option '%s' (see lantern perplexity --help)\n", a);
            return 2;
        }
    }
    if (!o->file) {
        fprintf(stderr, "lantern perplexity: FILE is missing (see lantern perplexity --help)\n");
        return 2;
    }
    if (o->stride > (o->g.ctx ? o->g.ctx : PPL_CTX)) {
        fprintf(stderr, "lantern perplexity: --stride %ld exceeds the window (--ctx %ld)\n", o->stride,
                o->g.ctx ? o->g.ctx : PPL_CTX);
        return 2;
    }
    return -1;
}

/* -ln softmax(logits)[target], in double */
static double token_nll(const float *logits, int64_t V, int32_t target) {
    float mx = logits[0];
    for (int64_t i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int64_t i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
    return log(sum) + mx - logits[target];
}

/* Evaluates ids[w->begin, w->end) from an empty cache and sums the NLL of
 * the targets in [first, w->end); row p of the logits predicts ids[p + 1]. */
static lt_status eval_window(lt_gen *g, const int32_t *ids, int64_t first, window *w, float *rows, lt_error *err) {
    int64_t V = lt_model_vocab_size(g->m);
    lt_status st = LT_OK;
    lt_context_reset(g->ctx);
    w->scored = w->end - first;
    w->nll = 0;
    for (int64_t at = w->begin; st == LT_OK && at < w->end; at += PPL_ROWS) {
        int64_t k = LT_MIN_I64(PPL_ROWS, w->end - at);
        st = lt_context_eval_all(g->ctx, ids + at, k, rows, err);
        for (int64_t r = 0; st == LT_OK && r < k; r++) {
            int64_t t = at + r + 1;
            if (t >= first && t < w->end) w->nll += token_nll(rows + r * V, V, ids[t]);
        }
    }
    return st;
}

/* BOS + the file's text */
static lt_status file_ids(const ppl_options *o, lt_gen *g, lt_token_vec *ids, lt_error *err) {
    char *text = NULL;
    size_t len = 0;
    lt_status st = lt_read_file(o->file, &text, &len, err);
    int32_t bos = lt_model_bos(g->m);
    if (st == LT_OK && bos >= 0) st = lt_token_vec_push(ids, bos, err);
    if (st == LT_OK) st = lt_tokenizer_encode(g->tok, text, len, 0, ids, err);
    free(text);
    if (st == LT_OK && ids->n < 2)
        st = lt_fail(err, LT_ERR_ARG, "%s gives %zu token%s: nothing to score", o->file, ids->n, ids->n == 1 ? "" : "s");
    return st;
}

static double ppl(double nll, int64_t n) { return exp(nll / (double)(n > 0 ? n : 1)); }

static void print_text(const ppl_options *o, const window *w, int n_w, int64_t n_tok, double secs) {
    int64_t scored = 0;
    double nll = 0;
    for (int i = 0; i < n_w; i++) {
        printf("window %d: tokens [%lld, %lld), %lld scored, cross-entropy %.6f nats/token, perplexity %.4f\n", i + 1,
               (long long)w[i].begin, (long long)w[i].end, (long long)w[i].scored, w[i].nll / (double)w[i].scored,
               ppl(w[i].nll, w[i].scored));
        scored += w[i].scored;
        nll += w[i].nll;
    }
    printf("%s: %lld tokens, %lld scored in %d window%s; cross-entropy %.6f nats/token, perplexity %.4f "
           "(%.1f tokens/s)\n", o->file, (long long)n_tok, (long long)scored, n_w, n_w == 1 ? "" : "s",
           nll / (double)scored, ppl(nll, scored), (double)n_tok / (secs > 0 ? secs : 1e-9));
}

static lt_status print_json(const ppl_options *o, const window *w, int n_w, int64_t n_tok, int64_t ctx, int64_t stride,
                            double secs, lt_error *err) {
    json_t *all = json_array();
    int64_t scored = 0;
    double nll = 0;
    for (int i = 0; i < n_w; i++) {
        json_array_append_new(all, json_pack("{s:I, s:I, s:I, s:f, s:f}", "begin", (json_int_t)w[i].begin, "end",
                                             (json_int_t)w[i].end, "scored", (json_int_t)w[i].scored, "nll",
                                             w[i].nll / (double)w[i].scored, "perplexity", ppl(w[i].nll, w[i].scored)));
        scored += w[i].scored;
        nll += w[i].nll;
    }
    json_t *r = json_pack("{s:s, s:I, s:I, s:I, s:o, s:I, s:f, s:f, s:f}", "file", o->file, "tokens", (json_int_t)n_tok,
                          "ctx", (json_int_t)ctx, "stride", (json_int_t)stride, "windows", all, "scored",
                          (json_int_t)scored, "nll", nll / (double)scored, "perplexity", ppl(nll, scored), "seconds", secs);
    int bad = !r || json_dumpf(r, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    json_decref(r);
    if (bad) return lt_fail(err, LT_ERR_NOMEM, "out of memory writing the JSON report");
    putchar('\n');
    return LT_OK;
}

static lt_status perplexity(ppl_options *o, lt_gen *g, lt_error *err) {
    lt_status st = lt_gen_resolve_dir(&o->g, err);
    if (st == LT_OK) st = lt_gen_open(g, &o->g, err);
    if (st != LT_OK) return st;
    int64_t max = lt_model_config(g->m)->max_position_embeddings;
    if (o->g.ctx > max) return lt_fail(err, LT_ERR_ARG, "--ctx %ld exceeds the model's maximum %lld", o->g.ctx, (long long)max);
    int64_t ctx = o->g.ctx ? o->g.ctx : LT_MIN_I64(PPL_CTX, max), stride = o->stride ? LT_MIN_I64(o->stride, ctx) : ctx;
    lt_token_vec ids = {0};
    window *w = NULL;
    float *rows = NULL;
    st = file_ids(o, g, &ids, err);
    int64_t n = (int64_t)ids.n, n_w = 0;
    ctx = LT_MIN_I64(ctx, n);
    if (st == LT_OK) st = lt_context_create(&g->ctx, g->m, ctx, err);
    if (st == LT_OK && (!(w = lt_calloc((size_t)(n / stride + 1), sizeof *w, "windows", err)) ||
                        !(rows = lt_calloc(PPL_ROWS * (size_t)lt_model_vocab_size(g->m), sizeof *rows, "logits", err))))
        st = LT_ERR_NOMEM;
    double t0 = lt_time_s();
    for (int64_t begin = 0, scored_to = 1; st == LT_OK; begin += stride) {
        w[n_w] = (window){.begin = begin, .end = LT_MIN_I64(begin + ctx, n)};
        st = eval_window(g, ids.ids, LT_MAX(scored_to, begin + 1), &w[n_w], rows, err);
        scored_to = w[n_w++].end;
        if (scored_to == n) break;
    }
    double secs = lt_time_s() - t0;
    if (st == LT_OK && o->json) st = print_json(o, w, (int)n_w, n, ctx, stride, secs, err);
    else if (st == LT_OK) print_text(o, w, (int)n_w, n, secs);
    free(rows);
    free(w);
    lt_token_vec_free(&ids);
    return st;
}

int lt_cli_perplexity(int argc, char **argv) {
    ppl_options o;
    int rc = parse_ppl_args(argc, argv, &o);
    if (rc >= 0) return rc;
    lt_gen g = {0};
    lt_error err = {0};
    lt_status st = perplexity(&o, &g, &err);
    if (st != LT_OK) fprintf(stderr, "lantern perplexity: %s: %s\n", lt_status_name(st), err.msg);
    lt_gen_close(&g);
    return st == LT_OK ? 0 : 1;
}
