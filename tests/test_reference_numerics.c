/* Lantern's REFERENCE numerics against an oracle of the same numerics.
 *
 * tests/fixtures/<name>/oracle.safetensors carries, next to the fp32 HF
 * tensors, the output of tools/oracle/ref_v4.py reference_forward: the
 * official inference code's rounding points (bf16 activations, FP8 e4m3
 * activation quantisation with pow-2 scales, bf16 linear outputs, the QAT
 * round trips of window and compressed KV, Hadamard + FP4 in the indexer, the
 * bf16 index scores, the bf16 q rescale, sparse_attn's bf16 exp(s - max)
 * before P.V, fp32 gate / compressor / head). Two sets:
 *   *_reference          the official rounding points (the oracle)
 *   *_reference_lantern  the same except the four places where Lantern
 *                        rounded differently (tests/fixtures/README.md,
 *                        "where Lantern differs"); the diagnostic that
 *                        isolated those
 * Each set has logits [T, V], router.L.experts/weights, indexer.L.topk and
 * the residual after block 0 (the official set: after every block).
 *
 * Lantern now rounds at the official points (src/numerics.c: lt_num_q_rescale,
 * the index_score and attn_rows kernels, lt_num_shared_expert_last), so
 * the strong checks hold for the official set; the lantern set models the
 * former choices and keeps only the sanity floor, as a diagnostic.
 *
 * Why the strong checks prove the rounding points and are not "closeness":
 * the fixtures have random weights whose routing / indexer margins (~1e-3)
 * are below one bf16 ulp of the activations, so after the first decision
 * flips, any difference grows to O(1) in the logits; top-1 agreement is
 * therefore NOT what discriminates (a correct implementation measures
 * 88-100%, a broken point 61-93%). Two quantities are decisive:
 *  - the residual after block 0, before any routing or indexer decision can
 *    differ: measured bit-equal at 99.18-100% of its elements (the rest are
 *    bf16 flips from fp32-level differences: summation order of the kernel
 *    table, libm; pro with the scalar table: 266 of 384 elements of position
 *    79, a flip amplified through the whole row, and one element of
 *    positions 26, 67, 71). Switching off one rounding point in ref_v4
 *    leaves (oracle metadata `reference_lantern_sensitivity`, flash / pro):
 *      bf16_store 0% / 0%, linear_out 3.5% / 3.9%, act_quant 2.1% / 1.8%,
 *      qat_window_kv 2.2% / 2.6%, attn P unrounded 7.0% / 8.3%,
 *      qat_compressed_kv - / 21.6% (flash block 0 is sliding-only)
 *    and the four former Lantern variants together 5.35% / 5.57%.
 *    Threshold LAYER0_BIT_EQUAL = 99%.
 *  - the indexer rows of the first CSA block (the first decision that uses
 *    the index q/k): measured 0 of 67 (flash) and 0-3 of 85 (pro); without
 *    the Hadamard + FP4 round trip 16/67 and 18/85, every other broken
 *    point >= 20. Threshold FIRST_CSA_ROWS = 15% of the rows.
 *
 * Measured, C REFERENCE mode (this machine: avx512-vnni default table | the
 * scalar "ref" table):
 *                      vs *_reference (official)        vs *_reference_lantern
 *   flash  top-1       66/67 (98.5%) | 64/67 (95.5%)    53/67 (79.1%) both
 *          max|dlogit| 0.062 | 0.365 of max|logit|      0.499 | 0.406
 *          routing     0/335 | 5/335 rows differ        13/335 | 10/335
 *          indexer     7/134 | 18/134                   50/134 | 49/134
 *          block 0     100% | 99.99% bit-equal          5.35% both
 *   pro    top-1       85/85 (100%) | 83/85 (97.6%)     62/85 (72.9%) | 64/85 (75.3%)
 *          max|dlogit| 0.045 | 0.220                    0.427 both
 *          routing     0/425 | 4/425                    31/425 | 30/425
 *          indexer     6/170 | 24/170                   71/170 | 74/170
 *          block 0     100% | 99.18%                    5.57% | 5.56%
 * With the default table the official set's residual stays >= 99.86%
 * bit-equal through block 2 (flash and pro); the remaining row differences
 * start where block 3's score routing amplifies those flips. sparse_attn's
 * online softmax over blocks of 64 index slots is modelled on both sides
 * (ref_v4.online_softmax_attn, the attn_rows kernel); the fixtures' rows fit
 * one block (at most 22 slots with padding), so sparse_attn_blocks_vector
 * below checks rows of several blocks.
 *
 * Both kernel tables run: lt_kernels_init("ref") (left-to-right sums), then
 * the default; the default is restored after each test. */
#include "test.h"

#include "kernels.h"
#include "linear.h"
#include "model.h"
#include "numerics.h"
#include "quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Thresholds of the strong checks (see the file comment for the figures). */
#define LAYER0_BIT_EQUAL 0.99  /* residual after block 0 bit-equal to the oracle's */
#define FIRST_CSA_ROWS 0.15    /* rows of the first CSA layer whose indexer selection differs */
#define TOP1_FLOOR 0.75        /* positions with the oracle's argmax: a sanity floor, not the
                                  * discriminator (measured 95-100% here, broken points 61-93%) */
/* Which oracle set the strong checks hold for: "" (the official rounding
 * points, which Lantern follows); "_lantern" models Lantern's former
 * choices (tests/fixtures/README.md, "where Lantern differs"). */
#define STRONG_SET ""

typedef struct {
    const lt_store *oracle;
    const char *set;  /* "" (official) or "_lantern" */
    int64_t T;
    int n_layers;
    int64_t router_rows, router_diff, indexer_rows, indexer_diff, missing;
    float router_w;                      /* max |dweight| over rows with the same experts */
    float hidden_rel[LT_MAX_LAYERS + 1];  /* hidden_reference.L (when present): max |dX| / max |X| */
    int64_t hidden_same[LT_MAX_LAYERS + 1], hidden_n[LT_MAX_LAYERS + 1];  /* bit-equal elements */
    int64_t layer_router_diff[LT_MAX_LAYERS + 1], layer_indexer_diff[LT_MAX_LAYERS + 1];
} ref_tracer;

static const lt_tensor *rows_of(ref_tracer *tr, const char *name, lt_dtype dt, int64_t width) {
    const lt_tensor *t = lt_store_find(tr->oracle, name);
    if (!t || t->dtype != dt || t->shape[0] != tr->T || lt_tensor_numel(t) != tr->T * width) {
        tr->missing++;
        return NULL;
    }
    return t;
}

static void on_router(ref_tracer *tr, const lt_trace_event *ev) {
    char name[64];
    snprintf(name, sizeof name, "router_reference%s.%d.experts", tr->set, ev->layer);
    const lt_tensor *e = rows_of(tr, name, LT_DT_I64, ev->width);
    snprintf(name, sizeof name, "router_reference%s.%d.weights", tr->set, ev->layer);
    const lt_tensor *w = rows_of(tr, name, LT_DT_F32, ev->width);
    if (!e || !w) return;
    const int64_t *want = e->data;
    const float *want_w = w->data;
    int64_t k = ev->width;
    for (int64_t t = 0; t < ev->n; t++) {
        int same = 1;
        for (int64_t j = 0; j < k; j++) {
            int64_t i = 0, row = (ev->pos0 + t) * k;
            while (i < k && ev->idx[t * k + i] != want[row + j]) i++;
            if (i == k) same = 0;
            else tr->router_w = fmaxf(tr->router_w, fabsf(ev->f[t * k + i] - want_w[row + j]));
        }
        tr->router_rows++;
        tr->router_diff += !same;
        tr->layer_router_diff[ev->layer] += !same;
    }
}

static void on_indexer(ref_tracer *tr, const lt_trace_event *ev) {
    char name[64];
    snprintf(name, sizeof name, "indexer_reference%s.%d.topk", tr->set, ev->layer);
    const lt_tensor *o = rows_of(tr, name, LT_DT_I64, ev->width);
    if (!o) return;
    const int64_t *want = o->data;
    for (int64_t t = 0; t < ev->n; t++) {
        int same = 1;
        for (int64_t j = 0; j < ev->width; j++)
            same &= (j < ev->count[t] ? ev->idx[t * ev->width + j] : -1) == want[(ev->pos0 + t) * ev->width + j];
        tr->indexer_rows++;
        tr->indexer_diff += !same;
        tr->layer_indexer_diff[ev->layer] += !same;
    }
}

static void on_hidden(ref_tracer *tr, const lt_trace_event *ev) {
    char name[64];
    snprintf(name, sizeof name, "hidden_reference%s.%d", tr->set, ev->layer);
    const lt_tensor *o = lt_store_find(tr->oracle, name);
    if (!o || o->dtype != LT_DT_F32 || lt_tensor_numel(o) != tr->T * ev->width) return;
    const float *want = (const float *)o->data + ev->pos0 * ev->width;
    float d = 0, scale = 0;
    for (int64_t i = 0; i < ev->n * ev->width; i++) {
        d = fmaxf(d, fabsf(ev->f[i] - want[i]));
        scale = fmaxf(scale, fabsf(want[i]));
        tr->hidden_same[ev->layer] += ev->f[i] == want[i];
    }
    tr->hidden_n[ev->layer] += ev->n * ev->width;
    tr->hidden_rel[ev->layer] = fmaxf(tr->hidden_rel[ev->layer], d / (scale > 0 ? scale : 1));
}

static void on_event(void *ud, const lt_trace_event *ev) {
    ref_tracer *tr = ud;
    if (ev->layer >= tr->n_layers) return; /* the MTP block has no reference oracle */
    if (ev->kind == LT_TRACE_HIDDEN) on_hidden(tr, ev);
    else if (ev->kind == LT_TRACE_ROUTER) on_router(tr, ev);
    else if (ev->kind == LT_TRACE_INDEXER) on_indexer(tr, ev);
}

static int64_t argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++) best = x[i] > x[best] ? i : best;
    return best;
}

typedef struct {
    int64_t positions, top1;
    float rel, abs;  /* worst position: max |dlogit| / max |logit|, and max |dlogit| */
} logit_figures;

static logit_figures compare_logits(const float *got, const float *want, int64_t T, int64_t V) {
    logit_figures r = {.positions = T};
    for (int64_t t = 0; t < T; t++) {
        const float *g = got + t * V, *w = want + t * V;
        float d = 0, scale = 0;
        for (int64_t v = 0; v < V; v++) {
            d = fmaxf(d, fabsf(g[v] - w[v]));
            scale = fmaxf(scale, fabsf(w[v]));
        }
        r.abs = fmaxf(r.abs, d);
        r.rel = fmaxf(r.rel, d / (scale > 0 ? scale : 1));
        r.top1 += argmax(g, V) == argmax(w, V);
    }
    return r;
}

/* One traced REFERENCE forward of input_ids against the oracle set `set`;
 * prints the figures, and applies the strong checks when strong. */
static void check_set(const char *name, lt_model *m, const lt_store *oracle, const char *set, int strong) {
    char lname[64];
    lt_error err = {0};
    snprintf(lname, sizeof lname, "logits_reference%s", set);
    const lt_tensor *in = lt_store_find(oracle, "input_ids");
    const lt_tensor *want = lt_store_find(oracle, lname);
    int64_t T = in ? in->shape[0] : 0, V = lt_model_vocab_size(m);
    CHECKF(in && in->dtype == LT_DT_I64 && want && want->dtype == LT_DT_F32 && lt_tensor_numel(want) == T * V,
           "%s: the oracle lacks input_ids / %s F32 [T, V] (regenerate: sh tools/oracle/regen.sh)", name, lname);
    if (!in || !want || want->dtype != LT_DT_F32 || lt_tensor_numel(want) != T * V) return;
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    float *logits = calloc((size_t)(T * V), sizeof *logits);
    for (int64_t t = 0; t < T; t++) ids[t] = (int32_t)((const int64_t *)in->data)[t];
    ref_tracer tr = {.oracle = oracle, .set = set, .T = T, .n_layers = lt_model_config(m)->n_layers};
    lt_context *c = NULL;
    CHECKF(lt_context_create(&c, m, T, &err) == LT_OK, "%s", err.msg);
    if (c) {
        lt_context_set_trace(c, on_event, &tr);
        CHECKF(lt_context_eval_all(c, ids, T, logits, &err) == LT_OK, "%s", err.msg);
        logit_figures f = compare_logits(logits, want->data, T, V);
        int csa = -1;
        for (int l = 0; l < tr.n_layers && csa < 0; l++)
            if (lt_model_config(m)->compress_ratios[l] == 4) csa = l;
        double eq0 = tr.hidden_n[0] ? (double)tr.hidden_same[0] / (double)tr.hidden_n[0] : 0;
        printf("  %s, %s kernels, vs %s%s: top-1 %lld/%lld (%.1f%%), max |dlogit| %.3g = %.3g of max |logit|; "
               "routing rows differ %lld/%lld (weights %.3g), indexer rows differ %lld/%lld\n", name,
               lt_kern()->name, lname, strong ? " (strong checks)" : "", (long long)f.top1, (long long)T,
               100.0 * f.top1 / T, f.abs, f.rel, (long long)tr.router_diff, (long long)tr.router_rows, tr.router_w,
               (long long)tr.indexer_diff, (long long)tr.indexer_rows);
        for (int l = 0; l < tr.n_layers; l++) {
            printf("    block %d: routing rows differ %lld, indexer rows differ %lld", l,
                   (long long)tr.layer_router_diff[l], (long long)tr.layer_indexer_diff[l]);
            if (tr.hidden_n[l])
                printf("; residual bit-equal %.2f%%, max |dX| / max |X| %.3g", 100.0 * tr.hidden_same[l] /
                       tr.hidden_n[l], tr.hidden_rel[l]);
            printf("\n");
        }
        CHECKF(tr.missing == 0 && tr.router_rows == T * tr.n_layers && tr.indexer_rows > 0 && tr.hidden_n[0] > 0 &&
               csa >= 0, "%s: %lld %s tensors missing or mis-shaped; %lld routing and %lld indexer rows compared",
               name, (long long)tr.missing, lname, (long long)tr.router_rows, (long long)tr.indexer_rows);
        if (strong) {
            CHECKF(eq0 >= LAYER0_BIT_EQUAL, "%s: %s: only %.2f%% of block 0's residual is bit-equal", name, lname,
                   100 * eq0);
            CHECKF(csa >= 0 && tr.layer_indexer_diff[csa] <= FIRST_CSA_ROWS * T, "%s: %s: %lld indexer rows of "
                   "block %d differ", name, lname, (long long)(csa >= 0 ? tr.layer_indexer_diff[csa] : -1), csa);
            CHECKF(f.top1 >= TOP1_FLOOR * T, "%s: %s: top-1 agrees at %lld of %lld positions", name, lname,
                   (long long)f.top1, (long long)T);
        } else {
            /* the sanity floor of test_forward's reference check: a broken
             * path (wrong scale or block) agrees at ~1/V */
            CHECKF(f.top1 >= 0.5 * T, "%s: %s: top-1 agrees at %lld of %lld positions", name, lname,
                   (long long)f.top1, (long long)T);
        }
    }
    lt_context_free(c);
    free(ids);
    free(logits);
}

/* Both oracle sets with the kernel table `kern` (NULL: this machine's default). */
static void check_reference(const char *name, const char *kern) {
    char dir[256], path[300];
    lt_error err = {0};
    snprintf(dir, sizeof dir, "tests/fixtures/%s", name);
    snprintf(path, sizeof path, "%s/oracle.safetensors", dir);
    CHECKF(lt_kernels_init(kern), "kernel table %s", kern ? kern : "(default)");
    lt_model *m = NULL;
    lt_store oracle = {0};
    lt_model_params p = {.numerics = LT_NUMERICS_REFERENCE};
    CHECKF(lt_model_open(&m, dir, &p, &err) == LT_OK, "%s: %s", name, err.msg);
    CHECKF(lt_store_open_file(&oracle, path, &err) == LT_OK, "%s: %s", name, err.msg);
    if (m && oracle.n_tensors > 0) {
        check_set(name, m, &oracle, "", !strcmp(STRONG_SET, ""));
        check_set(name, m, &oracle, "_lantern", !strcmp(STRONG_SET, "_lantern"));
    }
    lt_store_close(&oracle);
    lt_model_close(m);
    CHECK(lt_kernels_init(NULL)); /* the default table for the tests that follow */
}

LT_TEST(reference_numerics, flash_tiny_ref_kernels) { check_reference("v4-flash-tiny", "ref"); }
LT_TEST(reference_numerics, pro_tiny_ref_kernels) { check_reference("v4-pro-tiny", "ref"); }
LT_TEST(reference_numerics, flash_tiny_default_kernels) { check_reference("v4-flash-tiny", NULL); }
LT_TEST(reference_numerics, pro_tiny_default_kernels) { check_reference("v4-pro-tiny", NULL); }

/* The four official rounding points on hand-checked values (numerics.c). */
LT_TEST(reference_numerics, official_points_by_hand) {
    lt_num ex = {.mode = LT_NUMERICS_EXACT}, ref = {.mode = LT_NUMERICS_REFERENCE};
    /* sparse_attn (the kernel's attn_rows): max over the keys only, bf16
     * exp(s - max) for P.V, the sink and the unrounded terms in the divisor;
     * scores 0 and -1 on unit rows, so o = (P0, P1) / divisor */
    const float qa[2] = {0.0f, -1.0f}, v0[2] = {1.0f, 0.0f}, v1[2] = {0.0f, 1.0f}, sink5 = 5.0f, e1 = expf(-1.0f);
    const uint8_t *rows[2] = {(const uint8_t *)v0, (const uint8_t *)v1};
    const lt_kv_fmt f32[2] = {lt_kv_fmt_f32(2), lt_kv_fmt_f32(2)};
    float oa[2];
    lt_attention_rows(qa, 1, f32, 2, rows, 2, &sink5, 1.0f, 1, oa);
    CHECKF(fabsf(oa[1] / oa[0] - 0x1.78p-2f) < 1e-6f && fabsf(oa[0] * (1.0f + e1 + expf(5.0f)) - 1.0f) < 1e-6f,
           "reference P.V: %.9g %.9g", oa[0], oa[1]);
    lt_attention_rows(qa, 1, f32, 2, rows, 2, &sink5, 1.0f, 0, oa);
    CHECKF(fabsf(oa[1] / oa[0] - e1) < 1e-6f, "exact P.V: %.9g %.9g", oa[0], oa[1]);
    /* index score: bf16 dot (1 + 2^-9 -> 1), bf16 product, bf16 sum */
    float iq[4] = {1.0f, 0x1p-9f, -1.0f, 0.0f}, k[2] = {1.0f, 1.0f}, wt[2] = {3.0f, 7.0f};
    lt_weight K = {.type = LT_W_F32, .data = k, .rows = 1, .cols = 2, .name = "k"}, Q = K;
    Q.data = iq, Q.rows = 2, Q.name = "q";
    float score;
    lt_index_scores(&K, &Q, wt, 1, 1, &score); /* the kernel table's index_score, REFERENCE roundings */
    CHECK(score == 3.0f);
    lt_index_scores(&K, &Q, wt, 0, 1, &score);
    CHECK(score == 3.0f * (1.0f + 0x1p-9f));
    /* q rescale: squares 1, 3.9377 -> 3.9375, mean 2.46875, rsqrt 0.63645 ->
     * 0x1.46p-1 (fp32: 0.63643), products rounded (-1.26349 -> -0x1.44p0) */
    float qh[2] = {1.0f, -2.0f + 0x1p-6f};
    lt_num_q_rescale(&ref, qh, 2, 0.0f);
    CHECK(qh[0] == 0x1.46p-1f && qh[1] == -0x1.44p0f);
    CHECK(lt_num_shared_expert_last(&ref) && !lt_num_shared_expert_last(&ex));
}

/* sparse_attn over an index row longer than one block: tests/data/attention/
 * sparse_attn_blocks.safetensors (tools/oracle/make_attention_vectors.py)
 * holds one query (2 heads, d = 64) and a 200-slot row laid out like an
 * official decode row: 40 window keys, 88 padding slots (-1), 72 compressed
 * entries, so the blocks of 64 are [40 keys + 24 padding], [padding only],
 * [64 entries], [8 entries], with the running max rising in block 2; and the
 * output of ref_v4.online_softmax_attn (the kernel's online softmax) for it.
 *
 * Tolerance: C and torch agree on every rounding point but not on the fp32
 * summation order (the dots, the block sums, P.V) nor on libm's expf, so the
 * fp32 outputs may differ by a few fp32 ulps; ATTN_VEC_TOL is 4e-7 of max|out|
 * (measured: 1.5e-7 with either kernel table, and the bf16 outputs 128/128
 * bit-equal; see the test output). The
 * models it must reject are ~10x further: one max over the whole row (the
 * former REFERENCE model) 4.7e-6, the padding moved to the end of the row
 * (other block boundaries) 2.9e-5 (the generator prints both for torch). */
#define ATTN_VEC_TOL 4e-7f

/* one query's heads over the vector's index row: variant 0 the kernel's
 * blockwise softmax (attn_rows), 1 one max over the whole row (a rejected
 * model), 2 the kernel with the padding moved to the end of the row */
static float attn_vec_diff(const lt_tensor *q, const lt_tensor *kv, const lt_tensor *idx, const lt_tensor *sink,
                           float scale, const float *want, int variant, float *scale_out) {
    int64_t H = q->shape[0], d = q->shape[1], S = idx->shape[0];
    const int64_t *ix = idx->data;
    const uint8_t **rows = calloc((size_t)S, sizeof *rows);
    float *p = calloc((size_t)S, sizeof *p), *o = calloc((size_t)(H * d), sizeof *o), diff = 0, mx = 0;
    const lt_kv_fmt f[2] = {lt_kv_fmt_f32(d), lt_kv_fmt_f32(d)};
    int64_t k = 0;
    for (int64_t j = 0; j < S; j++)
        if (variant != 2 || ix[j] >= 0) rows[k++] = ix[j] >= 0 ? (const uint8_t *)((const float *)kv->data + ix[j] * d) : NULL;
    while (k < S) rows[k++] = NULL;
    if (variant != 1) lt_attention_rows(q->data, H, f, S, rows, S, sink->data, scale, 1, o);
    for (int64_t h = 0; h < H && variant == 1; h++) {
        const float *qh = (const float *)q->data + h * d;
        float m = -INFINITY, div = 0.0f, *oh = o + h * d;
        for (int64_t j = 0; j < S; j++) m = fmaxf(m, p[j] = rows[j] ? lt_dot(qh, (const float *)rows[j], d) * scale : -INFINITY);
        for (int64_t j = 0; j < S; j++) {
            float e = rows[j] ? expf(p[j] - m) : 0.0f;
            div += e;
            if (rows[j]) lt_axpy(oh, lt_round_bf16(e), (const float *)rows[j], d);
        }
        div += expf(((const float *)sink->data)[h] - m);
        for (int64_t c = 0; c < d; c++) oh[c] /= div;
    }
    for (int64_t i = 0; i < H * d; i++) {
        diff = fmaxf(diff, fabsf(o[i] - want[i]));
        mx = fmaxf(mx, fabsf(want[i]));
    }
    free(rows);
    free(p);
    free(o);
    *scale_out = mx;
    return diff;
}

static void check_attention_vector(const char *kern) {
    lt_store st = {0};
    lt_error err = {0};
    CHECK(lt_kernels_init(kern));
    CHECKF(lt_store_open_file(&st, "tests/data/attention/sparse_attn_blocks.safetensors", &err) == LT_OK, "%s",
           err.msg);
    const lt_tensor *q = lt_store_find(&st, "q"), *kv = lt_store_find(&st, "kv"), *idx = lt_store_find(&st, "idx"),
                    *sink = lt_store_find(&st, "sink"), *sc = lt_store_find(&st, "scale"),
                    *out = lt_store_find(&st, "out"), *ob = lt_store_find(&st, "out_bf16");
    int ok = q && kv && idx && sink && sc && out && ob && q->dtype == LT_DT_F32 && kv->dtype == LT_DT_F32 &&
             idx->dtype == LT_DT_I64 && sink->dtype == LT_DT_F32 && out->dtype == LT_DT_F32 &&
             kv->shape[1] == q->shape[1] && lt_tensor_numel(out) == lt_tensor_numel(q) &&
             lt_tensor_numel(sink) == q->shape[0] && idx->shape[0] > 2 * LT_ATTN_BLOCK;
    CHECKF(ok, "sparse_attn_blocks.safetensors: missing or mis-shaped tensors");
    if (ok) {
        int64_t S = idx->shape[0], n = lt_tensor_numel(out), same = 0;
        for (int64_t j = 0; j < S; j++) ok &= ((const int64_t *)idx->data)[j] < kv->shape[0];
        CHECK(ok);
        float scale = *(const float *)sc->data, mx = 0, d_official = 0, d_one = 0, d_end = 0;
        const float *want = out->data;
        if (ok) {
            d_official = attn_vec_diff(q, kv, idx, sink, scale, want, 0, &mx);
            d_one = attn_vec_diff(q, kv, idx, sink, scale, want, 1, &mx);
            d_end = attn_vec_diff(q, kv, idx, sink, scale, want, 2, &mx);
            /* the stored bf16 output, element by element */
            int64_t H = q->shape[0], d = q->shape[1];
            const int64_t *ix = idx->data;
            const uint8_t **rows = calloc((size_t)S, sizeof *rows);
            float *o = calloc((size_t)(H * d), sizeof *o);
            const lt_kv_fmt f[2] = {lt_kv_fmt_f32(d), lt_kv_fmt_f32(d)};
            lt_num ref = {.mode = LT_NUMERICS_REFERENCE};
            for (int64_t j = 0; j < S; j++)
                rows[j] = ix[j] >= 0 ? (const uint8_t *)((const float *)kv->data + ix[j] * d) : NULL;
            lt_attention_rows(q->data, H, f, S, rows, S, sink->data, scale, 1, o);
            lt_num_store(&ref, o, H * d);
            for (int64_t i = 0; i < H * d; i++) same += o[i] == ((const float *)ob->data)[i];
            free(rows);
            free(o);
        }
        printf("  sparse_attn, %lld slots, %s kernels: max |dout| / max |out| %.3g (bf16 output bit-equal "
               "%lld/%lld); one max over the row %.3g, padding last %.3g\n", (long long)S, lt_kern()->name,
               d_official / mx, (long long)same, (long long)n, d_one / mx, d_end / mx);
        CHECKF(d_official <= ATTN_VEC_TOL * mx, "blockwise sparse_attn: max |dout| %g > %g", d_official,
               ATTN_VEC_TOL * mx);
        CHECKF(d_one > 4 * ATTN_VEC_TOL * mx && d_end > 4 * ATTN_VEC_TOL * mx,
               "the vector does not tell the block layout apart (%g, %g)", d_one / mx, d_end / mx);
    }
    lt_store_close(&st);
    CHECK(lt_kernels_init(NULL));
}

LT_TEST(reference_numerics, sparse_attn_blocks_vector) {
    check_attention_vector("ref");
    check_attention_vector(NULL);
}

/* The online softmax by hand: two blocks, the max rising in the second
 * (scores 0, 63 padding slots, 1; REFERENCE). */
LT_TEST(reference_numerics, sparse_attn_online_blocks_by_hand) {
    enum { S = LT_ATTN_BLOCK + 1 };
    const float q[2] = {1.0f, 0.0f}, v0[2] = {0.0f, 3.0f}, v1[2] = {1.0f, 5.0f}, sink = 0.5f;
    const uint8_t *rows[S] = {(const uint8_t *)v0};
    rows[S - 1] = (const uint8_t *)v1;
    const lt_kv_fmt f[2] = {lt_kv_fmt_f32(2), lt_kv_fmt_f32(2)};
    float o[2];
    lt_attention_rows(q, 1, f, S, rows, S, &sink, 1.0f, 1, o);
    /* block 1: max 0, acc (0, 3), sum 1; block 2: max 1, r = e^-1, acc r (0, 3) + (1, 5), sum r + 1 */
    float r = expf(-1.0f), div = r + 1.0f + expf(sink - 1.0f);
    CHECKF(fabsf(o[0] - 1.0f / div) < 1e-6f && fabsf(o[1] - (3.0f * r + 5.0f) / div) < 1e-6f, "o = %.9g %.9g", o[0],
           o[1]);
}
