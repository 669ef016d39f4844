/* `lantern engram`: the Engram inspector for V4.1 models (spec 5.3).
 *
 * The prompt is tokenized as `lantern run` does (a chat-formatted user turn,
 * or plain text with --raw). For every token and every Engram layer it shows
 * the token's compressed class (the token map), the n-grams ending at it
 * (class tuples of 2..max_ngram tokens, the look-back before position 0
 * being the pad class; in JSON also the text they span), the table rows they hash to (one per n-gram order
 * and head), and the gate of each residual stream, read from a forward pass
 * over the prompt through the LT_TRACE_ENGRAM trace event. Per layer: the
 * distinct rows touched, the bytes they take in the table (head_dim FP8
 * bytes + head_dim / 32 scale bytes a row), and the gate's mean, min, max
 * and the share of gates above 0.5. Conventions of src/cli.h: exit 0 ok,
 * 1 runtime failure, 2 usage. */
#include "cli.h"
#include "chat.h"
#include "generate.h"
#include "util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char engram_usage[] =
    "usage: lantern engram [-m DIR] -p TEXT [options]\n"
    "  Shows what the Engram memory of a V4.1 model does for a prompt: per token and Engram\n"
    "  layer the token's compressed class, its n-grams, the table rows they hit and the gate\n"
    "  of every residual stream; per layer the rows touched, bytes read and gate statistics.\n"
    "  -p TEXT             the prompt: a user message, or plain text with --raw\n"
    "  --raw               plain text: no chat template, no BOS\n"
    "  --json              print one JSON object instead of the table\n"
    LT_GEN_MODEL_USAGE
    LT_GEN_NUMERICS_USAGE
    "Exit status: 0 ok, 1 runtime failure, 2 usage error.\n";

typedef struct {
    lt_gen_options g;
    const char *prompt;
    int raw, json;
} engram_options;

/* what the inspection gathers; L Engram layers, n tokens, G columns, hc streams */
typedef struct {
    const lt_engram_hasher *h;
    const lt_config *cfg;
    int L, G, hc, hd;
    int64_t n;
    int32_t *tok;   /* [n] token ids */
    int64_t *ids;   /* [L, n, G] hash ids */
    float *gate;    /* [L, n, hc] */
    uint8_t *seen;  /* [L, n] gates received */
    char **text;    /* [n] decoded token texts */
} inspection;

typedef struct {
    int64_t rows, bytes;
    double mean, min, max, open; /* open: share of gates > 0.5 */
} layer_stats;

/* -1 to go on, else the exit code */
static int parse_engram_args(int argc, char **argv, engram_options *o) {
    *o = (engram_options){0};
    lt_gen_options_init(&o->g, "engram", 0);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(engram_usage, stdout);
            return 0;
        }
        int r = -1;
        if (!strcmp(a, "--raw")) r = o->raw = 1;
        else if (!strcmp(a, "--json")) r = o->json = 1;
        else if (!strcmp(a, "-p")) r = (o->prompt = lt_cli_value("engram", argc, argv, &i)) != NULL;
        if (r < 0) r = lt_gen_model_flag(argc, argv, &i, &o->g);
        if (r == 0) return 2;
        if (r < 0) {
            fprintf(stderr, "lantern engram: unknown option '%s' (see lantern engram --help)\n", a);
            return 2;
        }
    }
    if (!o->prompt) {
        fprintf(stderr, "lantern engram: -p TEXT is missing (see lantern engram --help)\n");
        return 2;
    }
    return -1;
}


static int slot_of(const inspection *in, int layer) {
    for (int s = 0; s < in->L; s++)
        if (in->cfg->engram_layer_ids[s] == layer) return s;
    return -1;
}

static void on_event(void *ud, const lt_trace_event *ev) {
    inspection *in = ud;
    int s = ev->kind == LT_TRACE_ENGRAM ? slot_of(in, ev->layer) : -1;
    if (s < 0 || ev->width != in->hc || ev->pos0 < 0 || ev->pos0 + ev->n > in->n) return;
    memcpy(in->gate + ((int64_t)s * in->n + ev->pos0) * in->hc, ev->f, (size_t)(ev->n * in->hc) * sizeof *ev->f);
    memset(in->seen + (int64_t)s * in->n + ev->pos0, 1, (size_t)ev->n);
}

static void inspection_free(inspection *in) {
    for (int64_t t = 0; in->text && t < in->n; t++) free(in->text[t]);
    free(in->text);
    free(in->tok);
    free(in->ids);
    free(in->gate);
    free(in->seen);
}

/* class of position p - k, the pad class before position 0 */
static int64_t class_at(const inspection *in, int64_t p, int k) {
    return p < k ? in->h->pad : in->h->token_map[in->tok[p - k]];
}

/* the hash ids (the library's hasher), a forward pass for the gates, the token texts */
static lt_status inspect(lt_gen *g, const lt_token_vec *v, inspection *in, lt_error *err) {
    const lt_model *m = g->m;
    int64_t n = (int64_t)v->n;
    in->h = &m->hasher;
    in->cfg = &m->cfg;
    in->L = m->cfg.n_engram_layers;
    in->G = m->hasher.n_cols;
    in->hc = m->cfg.hc_mult;
    in->hd = m->engram[0].hd;
    in->n = n;
    int32_t *hist = NULL;
    lt_status st = LT_OK;
    if (!(in->tok = lt_calloc((size_t)n, sizeof *in->tok, "tokens", err)) ||
        !(in->ids = lt_calloc((size_t)(in->L * n * in->G), sizeof *in->ids, "hash ids", err)) ||
        !(in->gate = lt_calloc((size_t)(in->L * n * in->hc), sizeof *in->gate, "gates", err)) ||
        !(in->seen = lt_calloc((size_t)(in->L * n), 1, "gate flags", err)) ||
        !(in->text = lt_calloc((size_t)n, sizeof *in->text, "token texts", err)) ||
        !(hist = lt_calloc((size_t)n, sizeof *hist, "Engram history", err)))
        st = LT_ERR_NOMEM;
    if (st == LT_OK) {
        memcpy(in->tok, v->ids, (size_t)n * sizeof *in->tok);
        lt_engram_history hs;
        lt_engram_history_init(&hs, hist, n);
        st = lt_engram_hash(in->h, &hs, in->tok, NULL, 0, n, in->ids, err);
    }
    free(hist);
    for (int64_t t = 0; st == LT_OK && t < n; t++) {
        size_t len = 0;
        st = lt_tokenizer_decode(g->tok, &in->tok[t], 1, 0, &in->text[t], &len, err);
    }
    if (st == LT_OK) st = lt_context_create(&g->ctx, g->m, n, err);
    if (st != LT_OK) return st;
    lt_context_set_trace(g->ctx, on_event, in);
    st = lt_context_eval(g->ctx, in->tok, n, NULL, err);
    lt_context_set_trace(g->ctx, NULL, NULL);
    for (int64_t i = 0; st == LT_OK && i < in->L * n; i++)
        if (!in->seen[i]) st = lt_fail(err, LT_ERR_FORMAT, "the forward pass reported no Engram gates for layer %d",
                                       in->cfg->engram_layer_ids[i / n]);
    return st;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* rows touched: distinct ids of the layer (sorted in scratch[n * G]) */
static layer_stats stats_of(const inspection *in, int s, int64_t *scratch) {
    layer_stats r = {0};
    int64_t nG = in->n * in->G, nh = in->n * in->hc;
    memcpy(scratch, in->ids + s * nG, (size_t)nG * sizeof *scratch);
    qsort(scratch, (size_t)nG, sizeof *scratch, cmp_i64);
    for (int64_t i = 0; i < nG; i++) r.rows += i == 0 || scratch[i] != scratch[i - 1];
    r.bytes = r.rows * (in->hd + in->hd / 32);
    const float *gt = in->gate + s * nh;
    r.min = r.max = gt[0];
    for (int64_t i = 0; i < nh; i++) {
        r.mean += gt[i];
        r.min = gt[i] < r.min ? gt[i] : r.min;
        r.max = gt[i] > r.max ? gt[i] : r.max;
        r.open += gt[i] > 0.5f;
    }
    r.mean /= (double)nh;
    r.open /= (double)nh;
    return r;
}

/* a token's text on one line: control characters and quotes escaped */
static void put_text(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\n') fputs("\\n", stdout);
        else if (ch == '\t') fputs("\\t", stdout);
        else if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f) printf("\\x%02x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static void print_text(const engram_options *o, const inspection *in, const layer_stats *ls) {
    const lt_engram_hasher *h = in->h;
    printf("%s: %lld tokens, Engram layers", o->g.dir, (long long)in->n);
    for (int s = 0; s < in->L; s++) printf(" %d", in->cfg->engram_layer_ids[s]);
    printf("; n-grams of 2..%d tokens x %d heads = %d rows per token and layer, pad class %d\n", h->max_ngram,
           h->n_heads, in->G, h->pad);
    printf("columns: pos, token, class, layer, %d-gram classes (oldest first; the shorter n-grams are its tails),\n"
           "  row of head 0 per n-gram order (+%d more heads), gate per stream\n", h->max_ngram, h->n_heads - 1);
    for (int64_t t = 0; t < in->n; t++) {
        for (int s = 0; s < in->L; s++) {
            printf("%5lld ", (long long)t);
            put_text(in->text[t]);
            printf(" c%lld L%d ", (long long)class_at(in, t, 0), in->cfg->engram_layer_ids[s]);
            for (int k = h->max_ngram - 1; k >= 0; k--) printf("%s%lld", k == h->max_ngram - 1 ? "" : ".",
                                                               (long long)class_at(in, t, k));
            printf(" rows");
            const int64_t *id = in->ids + ((int64_t)s * in->n + t) * in->G;
            for (int ng = 2; ng <= h->max_ngram; ng++) printf(" %d:%lld", ng, (long long)id[(ng - 2) * h->n_heads]);
            printf(" gate");
            const float *gt = in->gate + ((int64_t)s * in->n + t) * in->hc;
            for (int i = 0; i < in->hc; i++) printf(" %.3f", gt[i]);
            putchar('\n');
        }
    }
    int64_t bytes = 0;
    for (int s = 0; s < in->L; s++) {
        printf("layer %d: %lld rows touched of %lld hits, %lld bytes read; gate mean %.4f min %.4f max %.4f, "
               "%.1f%% > 0.5\n", in->cfg->engram_layer_ids[s], (long long)ls[s].rows, (long long)(in->n * in->G),
               (long long)ls[s].bytes, ls[s].mean, ls[s].min, ls[s].max, 100 * ls[s].open);
        bytes += ls[s].bytes;
    }
    printf("total: %lld bytes read from the Engram tables (%d + %d bytes a row)\n", (long long)bytes, in->hd,
           in->hd / 32);
}

/* the token's text as a JSON string; its raw token string when that is not UTF-8 */
static json_t *text_json(const lt_tokenizer *tok, int32_t id, const char *text) {
    json_t *j = json_string(text);
    size_t len = 0;
    const char *raw = j ? NULL : lt_tokenizer_token_bytes(tok, id, &len);
    return j ? j : raw ? json_stringn(raw, len) : NULL;
}

static json_t *token_json(const inspection *in, const lt_tokenizer *tok, int64_t t) {
    const lt_engram_hasher *h = in->h;
    json_t *ngrams = json_array(), *spans = json_array(), *layers = json_array();
    for (int ng = 2; ng <= h->max_ngram; ng++) {
        json_t *tuple = json_array();
        lt_strbuf span = {0};
        for (int k = ng - 1; k >= 0; k--) {
            json_array_append_new(tuple, json_integer(class_at(in, t, k)));
            if (t >= k) lt_strbuf_puts(&span, in->text[t - k]);
        }
        json_t *sj = span.s && !span.oom ? json_string(span.s) : NULL;
        json_array_append_new(ngrams, tuple);
        json_array_append_new(spans, sj ? sj : json_null());
        lt_strbuf_free(&span);
    }
    for (int s = 0; s < in->L; s++) {
        json_t *ids = json_array(), *gates = json_array();
        const int64_t *id = in->ids + ((int64_t)s * in->n + t) * in->G;
        const float *gt = in->gate + ((int64_t)s * in->n + t) * in->hc;
        for (int j = 0; j < in->G; j++) json_array_append_new(ids, json_integer(id[j]));
        for (int i = 0; i < in->hc; i++) json_array_append_new(gates, json_real(gt[i]));
        json_array_append_new(layers, json_pack("{s:i, s:o, s:o}", "layer", in->cfg->engram_layer_ids[s],
                                                "hash_ids", ids, "gates", gates));
    }
    json_t *text = text_json(tok, in->tok[t], in->text[t]);
    return json_pack("{s:I, s:i, s:o*, s:I, s:o, s:o, s:o}", "pos", (json_int_t)t, "id", in->tok[t], "text", text,
                     "class", (json_int_t)class_at(in, t, 0), "ngrams", ngrams, "ngram_texts", spans, "layers", layers);
}

static lt_status print_json(const engram_options *o, const inspection *in, const lt_tokenizer *tok,
                            const layer_stats *ls, lt_error *err) {
    json_t *tokens = json_array(), *layers = json_array();
    int64_t bytes = 0;
    for (int64_t t = 0; t < in->n; t++) json_array_append_new(tokens, token_json(in, tok, t));
    for (int s = 0; s < in->L; s++) {
        json_array_append_new(layers, json_pack("{s:i, s:I, s:I, s:I, s:f, s:f, s:f, s:f}", "layer",
                                                in->cfg->engram_layer_ids[s], "hits", (json_int_t)(in->n * in->G),
                                                "rows_touched", (json_int_t)ls[s].rows, "bytes_read",
                                                (json_int_t)ls[s].bytes, "gate_mean", ls[s].mean, "gate_min",
                                                ls[s].min, "gate_max", ls[s].max, "gate_open", ls[s].open));
        bytes += ls[s].bytes;
    }
    json_t *r = json_pack("{s:s, s:I, s:i, s:i, s:i, s:i, s:I, s:o, s:o, s:I}", "model", o->g.dir, "n_tokens",
                          (json_int_t)in->n, "max_ngram", in->h->max_ngram, "heads", in->h->n_heads, "head_dim",
                          in->hd, "pad_class", in->h->pad, "row_bytes", (json_int_t)(in->hd + in->hd / 32), "tokens",
                          tokens, "layers", layers, "bytes_read", (json_int_t)bytes);
    int bad = !r || json_dumpf(r, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
    json_decref(r);
    if (bad) return lt_fail(err, LT_ERR_NOMEM, "out of memory writing the JSON report");
    putchar('\n');
    return LT_OK;
}

static lt_status engram(engram_options *o, lt_gen *g, lt_error *err) {
    lt_status st = lt_gen_resolve_dir(&o->g, err);
    if (st == LT_OK) st = lt_gen_open(g, &o->g, err);
    if (st != LT_OK) return st;
    if (lt_model_config(g->m)->n_engram_layers == 0)
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s has no Engram layers (V4.1 only)", o->g.dir);
    lt_token_vec v = {0};
    inspection in = {0};
    int64_t *scratch = NULL;
    layer_stats *ls = NULL;
    st = lt_gen_prompt_ids(o->g.dir, g->tok, o->prompt, o->raw, &v, err);
    if (st == LT_OK && v.n == 0) st = lt_fail(err, LT_ERR_ARG, "the prompt gives no tokens");
    if (st == LT_OK && (int64_t)v.n > lt_model_config(g->m)->max_position_embeddings)
        st = lt_fail(err, LT_ERR_ARG, "the prompt's %zu tokens exceed the model's maximum %lld", v.n,
                     (long long)lt_model_config(g->m)->max_position_embeddings);
    if (st == LT_OK) st = inspect(g, &v, &in, err);
    if (st == LT_OK && (!(scratch = lt_calloc((size_t)(in.n * in.G), sizeof *scratch, "row ids", err)) ||
                        !(ls = lt_calloc((size_t)in.L, sizeof *ls, "layer statistics", err))))
        st = LT_ERR_NOMEM;
    for (int s = 0; st == LT_OK && s < in.L; s++) ls[s] = stats_of(&in, s, scratch);
    if (st == LT_OK && o->json) st = print_json(o, &in, g->tok, ls, err);
    else if (st == LT_OK) print_text(o, &in, ls);
    free(ls);
    free(scratch);
    inspection_free(&in);
    lt_token_vec_free(&v);
    return st;
}

int lt_cli_engram(int argc, char **argv) {
    engram_options o;
    int rc = parse_engram_args(argc, argv, &o);
    if (rc >= 0) return rc;
    lt_gen g = {0};
    lt_error err = {0};
    lt_status st = engram(&o, &g, &err);
    if (st != LT_OK) fprintf(stderr, "lantern engram: %s: %s\n", lt_status_name(st), err.msg);
    lt_gen_close(&g);
    return st == LT_OK ? 0 : 1;
}
