/* The trained demo model (models/demo) against oracles of both numerics, on
 * held-out text: tests/data/demo/reference_logits.safetensors, written by
 * tools/oracle/make_demo_reference.py (sh tools/oracle/regen.sh).
 *
 * Three passages (BOS + the demo tokenizer's encoding of whole lines of
 * models/demo/valid.txt, 182 / 216 / 163 ids); the test first checks that
 * Lantern's tokenizer gives the stored ids for the stored text. Per passage:
 *  - EXACT vs HF transformers fp32: top-1 at every position, max |dlogit| /
 *    max |logit| <= EXACT_REL_TOL (measured 182/182, 216/216, 163/163;
 *    4.7e-7..5.4e-7 over the top-8 entries, <= 9.6e-7 over full rows).
 *  - REFERENCE (Lantern's default for this bfloat16 model) vs ref_v4.py
 *    reference_forward (the official rounding points), next to the oracle's
 *    own noise floor: WideRefModel, the same rounding points with float64
 *    arithmetic between them (norms, mHC mixes, sparse_attn).
 *
 * Why a noise floor: the REFERENCE numerics round to bf16 at every storage
 * point and to FP8 (3 mantissa bits) before every FP8 / FP4 matmul, so one
 * fp32-level difference that tips a bf16 rounding moves an FP8 step and grows
 * through the blocks and along the sequence. Even on this trained model
 * (median top-1 margin ~0.6) the oracle agrees with its own float64 variant
 * at only 179/182, 212/216, 161/163 positions (max |dlogit| 0.64), and the
 * positions that move are near-ties (margins 0.0008-0.2), mostly the very
 * positions where Lantern differs. Top-1 agreement is therefore capped near
 * 98% for any faithful implementation, and it does not discriminate either:
 * switching one rounding point off in the oracle leaves 96-99% (bf16 storage
 * off: 175/182, 211/216, 156/163). What discriminates is the size of the
 * logit differences: the median over all positions of max |dlogit| over the
 * oracle's top-8 entries is 0.031 for the noise floor, 0.034 for Lantern
 * (ratio 1.09; scalar "ref" kernel table: 0.030-0.032), and 1.5-2.1x the
 * noise floor with one official point switched off or replaced by Lantern's
 * former variants (bf16_store 1.9, act_quant 2.1, linear_out 1.8,
 * qat_window_kv 1.8, q_rescale_bf16 1.6, attn_p_bf16 1.5, the normalised P
 * 1.7; qat_compressed_kv 1.2 and the indexer points <= 0.8 are below the
 * noise on these passages).
 *
 * Measured, Lantern REFERENCE (default kernel table, avx512 here):
 *   top-1 178/182 (97.8%), 213/216 (98.6%), 161/163 (98.8%): the issue's
 *   >= 99% is not reached, nor by the oracle's own noise floor (98.4%, 98.1%,
 *   98.8%); every differing position has an oracle margin below the observed
 *   noise (0.0008-0.2 vs 0.28-0.63)
 *   max |dlogit| over the top-8 0.621 / 0.629 / 0.284 (0.064 / 0.080 / 0.028
 *   of max |logit|; full rows 0.027 / 0.011 / 0.017 of max |logit|)
 *   positions whose oracle margin is below the observed max |dlogit|:
 *   93 / 114 / 49; below twice the position's own |dlogit|: 18 / 22 / 17
 *   (the noise floor: 16 / 19 / 16)
 * Checks: no top-1 difference at a margin above the observed noise; top-1 >=
 * REF_TOP1 and at most REF_TOP1_SLACK below the noise floor's; max |dlogit|
 * <= REF_MAX_RATIO x the noise floor's; the pooled median <= REF_MEDIAN_RATIO
 * x the noise floor's. */
#include "test.h"

#include "model.h"
#include "oracle_fixture.h"
#include "tokenizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEMO_DIR "models/demo"
#define ORACLE "tests/data/demo/reference_logits.safetensors"
#define REF_TOP1 0.96       /* per passage, REFERENCE vs the REFERENCE oracle */
#define REF_TOP1_SLACK 2    /* positions Lantern's top-1 may trail the oracle's noise floor by */
#define REF_MEDIAN_RATIO 1.4f /* median |dlogit| over all positions, relative to the noise floor's */
#define REF_MAX_RATIO 2.0f    /* max |dlogit| over the top-8 entries, relative to the noise floor's */
#define EXACT_REL_TOL 1e-4f /* EXACT vs HF fp32 */

typedef struct {
    int64_t T, top1, below_noise, own_noise, unexplained;
    float rel_top, rel_rows, noise, median;
} figures;

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float median(const float *x, int64_t n) {
    float *s = malloc((size_t)n * sizeof *s);
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_float);
    float m = n ? s[n / 2] : 0;
    free(s);
    return m;
}

/* Lantern's logits [T, V] vs the oracle set `set` ("ref" or "exact") of passage pre. */
static figures compare(const fixture *f, const char *pre, const char *set, const float *got, int64_t T, int64_t V,
                       float *dout) {
    char n_ids[64], n_lg[64], n_max[64], n_rows[64], n_pos[64];
    snprintf(n_ids, sizeof n_ids, "%s%s_top_ids", pre, set);
    snprintf(n_lg, sizeof n_lg, "%s%s_top_logits", pre, set);
    snprintf(n_max, sizeof n_max, "%s%s_absmax", pre, set);
    snprintf(n_rows, sizeof n_rows, "%s%s_rows", pre, set);
    snprintf(n_pos, sizeof n_pos, "%srows", pre);
    figures r = {.T = T};
    const lt_tensor *ti = lt_store_find(&f->oracle, n_ids);
    int64_t K = ti && ti->ndim == 2 ? ti->shape[1] : 0, R = oracle_len(f, n_pos);
    const int64_t *ids = oracle_data(f, n_ids, LT_DT_I64, T * K), *pos = oracle_data(f, n_pos, LT_DT_I64, R);
    const float *lg = oracle_data(f, n_lg, LT_DT_F32, T * K), *amax = oracle_data(f, n_max, LT_DT_F32, T),
                *rows = oracle_data(f, n_rows, LT_DT_F32, R * V);
    if (!ids || !pos || !lg || !amax || !rows || K < 2) return r;
    float *d = calloc((size_t)T, sizeof *d);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t k = 0; k < K; k++) d[t] = fmaxf(d[t], fabsf(got[t * V + ids[t * K + k]] - lg[t * K + k]));
        r.noise = fmaxf(r.noise, d[t]);
        r.rel_top = fmaxf(r.rel_top, d[t] / amax[t]);
        r.top1 += argmax(got + t * V, V) == ids[t * K];
    }
    for (int64_t t = 0; t < T; t++) {
        float margin = lg[t * K] - lg[t * K + 1];
        r.below_noise += margin < r.noise;
        r.own_noise += margin < 2 * d[t];
        if (argmax(got + t * V, V) != ids[t * K]) {
            r.unexplained += margin >= r.noise;
            printf("    %s %s position %lld: Lantern %lld, oracle %lld; oracle margin %.4g, |dlogit| here %.4g\n",
                   pre, set, (long long)t, (long long)argmax(got + t * V, V), (long long)ids[t * K], margin, d[t]);
        }
    }
    for (int64_t i = 0; i < R; i++) {
        CHECK(pos[i] >= 0 && pos[i] < T);
        if (pos[i] < 0 || pos[i] >= T) continue;
        float s = max_abs(rows + i * V, V);
        r.rel_rows = fmaxf(r.rel_rows, max_diff(got + pos[i] * V, rows + i * V, V) / (s > 0 ? s : 1));
    }
    r.median = median(d, T);
    if (dout) memcpy(dout, d, (size_t)T * sizeof *d);
    free(d);
    return r;
}

/* The oracle's own noise floor (make_demo_reference.WideRefModel: the same
 * rounding points, float64 between them) against the oracle, like compare(). */
static figures wide_figures(const fixture *f, const char *pre, int64_t T, float *dout) {
    char n_ids[64], n_lg[64], n_w[64], n_wa[64];
    snprintf(n_ids, sizeof n_ids, "%sref_top_ids", pre);
    snprintf(n_lg, sizeof n_lg, "%sref_top_logits", pre);
    snprintf(n_w, sizeof n_w, "%swide_top_logits", pre);
    snprintf(n_wa, sizeof n_wa, "%swide_argmax", pre);
    figures r = {.T = T};
    const lt_tensor *ti = lt_store_find(&f->oracle, n_ids);
    int64_t K = ti && ti->ndim == 2 ? ti->shape[1] : 0;
    const int64_t *ids = oracle_data(f, n_ids, LT_DT_I64, T * K), *wa = oracle_data(f, n_wa, LT_DT_I64, T);
    const float *lg = oracle_data(f, n_lg, LT_DT_F32, T * K), *w = oracle_data(f, n_w, LT_DT_F32, T * K);
    if (!ids || !wa || !lg || !w || K < 2) return r;
    float *d = calloc((size_t)T, sizeof *d);
    for (int64_t t = 0; t < T; t++) {
        d[t] = max_diff(w + t * K, lg + t * K, K);
        r.noise = fmaxf(r.noise, d[t]);
        r.top1 += wa[t] == ids[t * K];
    }
    for (int64_t t = 0; t < T; t++) {
        r.below_noise += lg[t * K] - lg[t * K + 1] < r.noise;
        r.own_noise += lg[t * K] - lg[t * K + 1] < 2 * d[t];
    }
    r.median = median(d, T);
    if (dout) memcpy(dout, d, (size_t)T * sizeof *d);
    free(d);
    return r;
}

static void print_figures(int p, const char *what, const figures *r) {
    printf("  demo passage %d, %s: top-1 %lld/%lld (%.1f%%); |dlogit| over the oracle's top-8: max %.3g", p, what,
           (long long)r->top1, (long long)r->T, 100.0 * r->top1 / r->T, r->noise);
    if (r->rel_top > 0) printf(" (= %.3g of max |logit|)", r->rel_top);
    printf(", median %.3g", r->median);
    if (r->rel_rows > 0) printf("; full rows: max |dlogit| / max |logit| %.3g", r->rel_rows);
    printf("; positions whose oracle top-1 margin is below that max %lld, below 2x the position's own |dlogit| "
           "%lld\n", (long long)r->below_noise, (long long)r->own_noise);
}

/* One passage through Lantern REFERENCE (f->m) and EXACT (me), default kernel
 * table (the scalar "ref" table takes ~25 s here; measured with it: top-1
 * 178/182, 213/216, 161/163, max |dlogit| 0.898, 0.398, 0.286, median 0.030,
 * 0.031, 0.032). */
typedef struct {
    float *lantern, *wide; /* |dlogit| per position, all passages */
    int64_t n, cap;
} pool;

static void check_passage(fixture *f, lt_model *me, lt_tokenizer *tok, int p, pool *pl) {
    char pre[16], name[64];
    snprintf(pre, sizeof pre, "p%d.", p);
    snprintf(name, sizeof name, "%sids", pre);
    int64_t T = 0, nb = 0, V = lt_model_vocab_size(f->m);
    int32_t *ids = oracle_ids(f, name, &T);
    snprintf(name, sizeof name, "%stext", pre);
    int32_t *bytes = oracle_ids(f, name, &nb);
    if (!ids || !bytes || T < 2) goto out;

    /* the stored ids are BOS + Lantern's encoding of the text (as `lantern perplexity` feeds it) */
    char *text = malloc((size_t)nb + 1);
    for (int64_t i = 0; i < nb; i++) text[i] = (char)bytes[i];
    text[nb] = 0;
    lt_token_vec enc = {0};
    lt_error err = {0};
    CHECKF(lt_tokenizer_encode(tok, text, (size_t)nb, 0, &enc, &err) == LT_OK, "%s", err.msg);
    int same = (int64_t)enc.n == T - 1 && ids[0] == lt_model_bos(f->m);
    for (int64_t i = 0; same && i < T - 1; i++) same = enc.ids[i] == ids[i + 1];
    CHECKF(same, "passage %d: Lantern's tokenizer gives %zu ids, not the oracle's %lld (BOS + text)", p, enc.n,
           (long long)T - 1);
    lt_token_vec_free(&enc);
    free(text);

    int pooled = pl->n + T <= pl->cap;
    CHECK(pooled);
    figures wide = wide_figures(f, pre, T, pooled ? pl->wide + pl->n : NULL);
    print_figures(p, "oracle noise floor (float64 between the rounding points) vs the REFERENCE oracle", &wide);
    float *logits = malloc((size_t)(T * V) * sizeof *logits);
    struct {
        lt_model *m;
        const char *set, *what;
    } runs[2] = {{f->m, "ref", "Lantern REFERENCE vs the REFERENCE oracle"},
                 {me, "exact", "Lantern EXACT vs HF fp32"}};
    for (int i = 0; i < 2; i++) {
        lt_context *c = NULL;
        CHECKF(lt_context_create(&c, runs[i].m, T, &err) == LT_OK, "%s", err.msg);
        lt_status st = c ? lt_context_eval_all(c, ids, T, logits, &err) : LT_ERR_ARG;
        CHECKF(st == LT_OK, "%s", err.msg);
        lt_context_free(c);
        if (st != LT_OK) continue;
        figures r = compare(f, pre, runs[i].set, logits, T, V, runs[i].m == me || !pooled ? NULL : pl->lantern + pl->n);
        print_figures(p, runs[i].what, &r);
        if (runs[i].m == me) {
            CHECKF(r.top1 == T, "passage %d: EXACT top-1 agrees at %lld of %lld", p, (long long)r.top1, (long long)T);
            CHECKF(r.rel_top <= EXACT_REL_TOL && r.rel_rows <= EXACT_REL_TOL, "passage %d: EXACT max |dlogit| / "
                   "max |logit| %.3g, %.3g", p, r.rel_top, r.rel_rows);
            continue;
        }
        CHECKF(r.unexplained == 0, "passage %d: REFERENCE top-1 differs at %lld positions whose oracle margin "
               "exceeds the observed noise %.3g", p, (long long)r.unexplained, r.noise);
        CHECKF(r.top1 >= REF_TOP1 * T && r.top1 + REF_TOP1_SLACK >= wide.top1, "passage %d: REFERENCE top-1 "
               "agrees at %lld of %lld (the oracle's noise floor %lld)", p, (long long)r.top1, (long long)T,
               (long long)wide.top1);
        CHECKF(r.noise <= REF_MAX_RATIO * wide.noise, "passage %d: REFERENCE max |dlogit| %.3g; the oracle's "
               "noise floor %.3g", p, r.noise, wide.noise);
    }
    if (pooled) pl->n += T;
    free(logits);
out:
    free(ids);
    free(bytes);
}

LT_TEST(demo_reference, passages_both_numerics) {
    fixture f = {.name = ORACLE};
    lt_model *me = NULL;
    lt_tokenizer *tok = NULL;
    lt_error err = {0};
    lt_model_params pr = {.numerics = LT_NUMERICS_REFERENCE}, pe = {.numerics = LT_NUMERICS_EXACT};
    CHECKF(lt_model_open(&f.m, DEMO_DIR, &pr, &err) == LT_OK, "%s", err.msg);
    CHECKF(lt_model_open(&me, DEMO_DIR, &pe, &err) == LT_OK, "%s", err.msg);
    CHECKF(lt_tokenizer_load(&tok, DEMO_DIR, &err) == LT_OK, "%s", err.msg);
    CHECKF(lt_store_open_file(&f.oracle, ORACLE, &err) == LT_OK, "%s (regenerate: sh tools/oracle/regen.sh)",
           err.msg);
    if (f.m && me && tok && f.oracle.n_tensors > 0) {
        int n = 0;
        char name[32];
        for (;; n++) {
            snprintf(name, sizeof name, "p%d.ids", n);
            if (!lt_store_find(&f.oracle, name)) break;
        }
        CHECKF(n >= 3, "%s: %d passages", ORACLE, n);
        pool pl = {.cap = 0};
        for (int p = 0; p < n; p++) {
            snprintf(name, sizeof name, "p%d.ids", p);
            pl.cap += oracle_len(&f, name);
        }
        pl.lantern = calloc((size_t)pl.cap, sizeof *pl.lantern);
        pl.wide = calloc((size_t)pl.cap, sizeof *pl.wide);
        for (int p = 0; p < n; p++) check_passage(&f, me, tok, p, &pl);
        float ml = median(pl.lantern, pl.n), mw = median(pl.wide, pl.n);
        printf("  demo, all %lld positions: median |dlogit| over the oracle's top-8: Lantern REFERENCE %.3g, the "
               "oracle's noise floor %.3g (ratio %.2f)\n", (long long)pl.n, ml, mw, mw > 0 ? ml / mw : 0);
        CHECKF(pl.n == pl.cap && ml <= REF_MEDIAN_RATIO * mw, "REFERENCE median |dlogit| %.3g over %lld positions; "
               "the oracle's noise floor %.3g", ml, (long long)pl.n, mw);
        free(pl.lantern);
        free(pl.wide);
    }
    lt_tokenizer_free(tok);
    lt_model_close(me);
    fixture_close(&f);
}
