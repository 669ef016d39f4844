/* Lantern's V4.1 REFERENCE numerics against an oracle of the same numerics.
 *
 * tests/fixtures/v41-tiny{,-b}/oracle_reference.safetensors holds the output
 * of tools/oracle/ref_v41.py RefModel: the official V4.1 inference code's
 * rounding points (bf16 activations and linear outputs, FP8 activation
 * quantisation in blocks of 32, the QAT round trips, bf16 index scores,
 * sparse_attn's bf16 exp(s - max), fp32 gate / compressor pooling / head)
 * on the fixture's dequantised weights; tests/fixtures/README-v41.md lists
 * the tensors. Lantern runs the fixture in REFERENCE mode and is compared on
 * the logits of every position, the residual after every block, the routing
 * and the index-source selections.
 *
 * As with V4 (tests/test_reference_numerics.c), the random tiny weights have
 * routing, indexer and top-1 margins around one bf16 ulp of the activations
 * (the smallest REFERENCE top-1 margins: v41-tiny 1.3e-2, v41-tiny-b
 * 4.4e-3; 1.8e-4 on the previous v41-tiny draw, seed 4668), so an
 * fp32-level difference that crosses a bf16 boundary (kernel summation
 * order, libm) flips a decision and moves later logits by O(1). Top-1
 * agreement therefore does not discriminate: ref_v41 against itself with
 * only the mHC mixes computed in double agrees at 89.6% (tiny, seed-4668
 * draw) and 95.0% (tiny-b) of the positions. What does:
 *  - the residual after block 0, before any decision (measured 99.99-100%
 *    bit-equal; 99.95-100% on the seed-4668 draw; one rounding point off
 *    leaves a few %);
 *  - the residual after the first CSA2 block, the first index-source
 *    decision: measured 99.89-99.99% bit-equal (98.5-99.98% on the
 *    seed-4668 draw); fp32 index scores instead of the official bf16 ones
 *    (Lantern before this test) left 95.6-97.6% there.
 * Fed Lantern's own residual block by block (teacher forcing), ref_v41
 * reproduces every block at >= 99.83% bit-equal elements (seed-4668 draw), isolated one-ulp
 * flips: the rounding points agree. Measured here (default avx512 | "ref"
 * kernels): top-1 v41-tiny 67/67 | 60/67 (62/67 | 58/67 on the seed-4668
 * draw), v41-tiny-b 74/80 | 75/80. */
#include "test.h"

#include "kernels.h"
#include "model.h"
#include "oracle_fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK0_BIT_EQUAL 0.99 /* residual after block 0 bit-equal to the oracle's */
#define CSA2_BIT_EQUAL 0.98   /* ... and after the first CSA2 block */
#define TOP1_FLOOR 0.75       /* a sanity floor (see above): a broken path agrees at ~1/V */

typedef struct {
    const lt_store *ref;
    int64_t T;
    int64_t router_diff[LT_MAX_LAYERS], indexer_diff[LT_MAX_LAYERS], router_rows, indexer_rows, missing;
    int64_t same[LT_MAX_LAYERS], n[LT_MAX_LAYERS]; /* bit-equal residual elements per block */
    float rel[LT_MAX_LAYERS];                     /* max |dX| / max |X| per block */
} tracer;

static const int64_t *want_rows(tracer *tr, const char *name, int64_t width) {
    const lt_tensor *t = lt_store_find(tr->ref, name);
    if (t && t->dtype == LT_DT_I64 && lt_tensor_numel(t) == tr->T * width) return t->data;
    tr->missing++;
    return NULL;
}

static void on_router(tracer *tr, const lt_trace_event *ev) {
    char name[64];
    snprintf(name, sizeof name, "router.%d.experts", ev->layer);
    const int64_t *want = want_rows(tr, name, ev->width);
    for (int64_t t = 0; want && t < ev->n; t++) {
        int same = 1;
        for (int64_t j = 0; j < ev->width; j++) { /* the oracle's experts are sorted by id */
            int64_t i = 0;
            while (i < ev->width && ev->idx[t * ev->width + i] != want[(ev->pos0 + t) * ev->width + j]) i++;
            same &= i < ev->width;
        }
        tr->router_rows++;
        tr->router_diff[ev->layer] += !same;
    }
}

static void on_indexer(tracer *tr, const lt_trace_event *ev) {
    char name[64];
    snprintf(name, sizeof name, "indexer.%d.topk", ev->layer);
    const int64_t *want = want_rows(tr, name, ev->width);
    for (int64_t t = 0; want && t < ev->n; t++) {
        int same = 1;
        for (int64_t j = 0; j < ev->width; j++)
            same &= (j < ev->count[t] ? ev->idx[t * ev->width + j] : -1) == want[(ev->pos0 + t) * ev->width + j];
        tr->indexer_rows++;
        tr->indexer_diff[ev->layer] += !same;
    }
}

static void on_hidden(tracer *tr, const lt_trace_event *ev) {
    char name[64];
    snprintf(name, sizeof name, "hidden.%d", ev->layer);
    const lt_tensor *o = lt_store_find(tr->ref, name); /* block 0 and the first CSA2 block only */
    if (!o) return;
    if (o->dtype != LT_DT_F32 || lt_tensor_numel(o) != tr->T * ev->width) {
        tr->missing++;
        return;
    }
    const float *want = (const float *)o->data + ev->pos0 * ev->width;
    float d = 0, scale = 0;
    for (int64_t i = 0; i < ev->n * ev->width; i++) {
        d = fmaxf(d, fabsf(ev->f[i] - want[i]));
        scale = fmaxf(scale, fabsf(want[i]));
        tr->same[ev->layer] += ev->f[i] == want[i];
    }
    tr->n[ev->layer] += ev->n * ev->width;
    tr->rel[ev->layer] = fmaxf(tr->rel[ev->layer], d / (scale > 0 ? scale : 1));
}

/* the fraction of block l's residual elements equal to the oracle's */
static double bit_equal(const tracer *tr, int l) { return tr->n[l] ? (double)tr->same[l] / (double)tr->n[l] : 0.0; }

static void on_event(void *ud, const lt_trace_event *ev) {
    tracer *tr = ud;
    if (ev->layer < 0) return; /* the final hidden */
    if (ev->kind == LT_TRACE_HIDDEN) on_hidden(tr, ev);
    else if (ev->kind == LT_TRACE_ROUTER) on_router(tr, ev);
    else if (ev->kind == LT_TRACE_INDEXER) on_indexer(tr, ev);
}

/* One fixture with kernel table `kern` (NULL: this machine's default). */
static void check_fixture(const char *name, const char *kern) {
    CHECKF(lt_kernels_init(kern), "kernel table %s", kern ? kern : "(default)");
    fixture f;
    lt_store ref = {0};
    lt_error err = {0};
    char path[300];
    snprintf(path, sizeof path, "tests/fixtures/%s/oracle_reference.safetensors", name);
    int ok = fixture_open(&f, name, LT_NUMERICS_REFERENCE);
    CHECKF(lt_store_open_file(&ref, path, &err) == LT_OK, "%s", err.msg);
    if (ok && ref.n_tensors > 0) {
        int64_t T = 0, V = lt_model_vocab_size(f.m);
        int32_t *ids = oracle_ids(&f, "input_ids", &T);
        const lt_tensor *want = lt_store_find(&ref, "logits");
        CHECKF(want && want->dtype == LT_DT_F32 && lt_tensor_numel(want) == T * V, "%s: reference logits", name);
        float *logits = calloc((size_t)(T * V), sizeof *logits);
        tracer tr = {.ref = &ref, .T = T};
        int n_layers = lt_model_config(f.m)->n_layers;
        lt_context *c = NULL;
        CHECKF(lt_context_create(&c, f.m, T, &err) == LT_OK, "%s", err.msg);
        if (c && ids && want) {
            lt_context_set_trace(c, on_event, &tr);
            CHECKF(lt_context_eval_all(c, ids, T, logits, &err) == LT_OK, "%s", err.msg);
            float rel = 0;
            int64_t top1 = 0;
            for (int64_t t = 0; t < T; t++) {
                const float *g = logits + t * V, *w = (const float *)want->data + t * V;
                rel = fmaxf(rel, max_diff(g, w, V) / max_abs(w, V));
                top1 += argmax(g, V) == argmax(w, V);
            }
            int64_t rd = 0, id = 0;
            for (int l = 0; l < n_layers; l++) rd += tr.router_diff[l], id += tr.indexer_diff[l];
            printf("  %s, %s kernels: top-1 %lld/%lld (%.1f%%), max |dlogit| / max |logit| %.3g; routing rows "
                   "differ %lld/%lld, indexer rows %lld/%lld\n", name, lt_kern()->name, (long long)top1,
                   (long long)T, 100.0 * top1 / T, rel, (long long)rd, (long long)tr.router_rows, (long long)id,
                   (long long)tr.indexer_rows);
            for (int l = 0; l < n_layers; l++) {
                printf("    block %d: routing rows differ %lld, indexer rows %lld", l, (long long)tr.router_diff[l],
                       (long long)tr.indexer_diff[l]);
                if (tr.n[l]) printf("; residual bit-equal %.2f%%, max |dX| / max |X| %.3g", 100 * bit_equal(&tr, l),
                                    tr.rel[l]);
                printf("\n");
            }
            CHECKF(tr.missing == 0 && tr.router_rows == T * n_layers && tr.indexer_rows > 0,
                   "%s: %lld reference tensors missing or mis-shaped", name, (long long)tr.missing);
            int csa = 0;
            while (csa < n_layers && lt_model_config(f.m)->compress_ratios[csa] == 0) csa++;
            CHECKF(bit_equal(&tr, 0) >= BLOCK0_BIT_EQUAL, "%s: block 0 residual %.2f%% bit-equal", name,
                   100 * bit_equal(&tr, 0));
            CHECKF(csa < n_layers && bit_equal(&tr, csa) >= CSA2_BIT_EQUAL, "%s: first CSA2 block %d residual "
                   "%.2f%% bit-equal", name, csa, csa < n_layers ? 100 * bit_equal(&tr, csa) : 0.0);
            CHECKF(top1 >= TOP1_FLOOR * T, "%s: top-1 agrees at %lld of %lld positions", name, (long long)top1,
                   (long long)T);
        }
        lt_context_free(c);
        free(logits);
        free(ids);
    }
    lt_store_close(&ref);
    if (ok) fixture_close(&f);
    CHECK(lt_kernels_init(NULL)); /* the default table for the tests that follow */
}

LT_TEST(reference_v41, tiny_ref_kernels) { check_fixture("v41-tiny", "ref"); }
LT_TEST(reference_v41, tiny_b_ref_kernels) { check_fixture("v41-tiny-b", "ref"); }
LT_TEST(reference_v41, tiny_default_kernels) { check_fixture("v41-tiny", NULL); }
LT_TEST(reference_v41, tiny_b_default_kernels) { check_fixture("v41-tiny-b", NULL); }
