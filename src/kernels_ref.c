/* Scalar reference kernels: the algorithmic definition every SIMD variant is
 * tested against, and the fallback where no SIMD variant exists. Sums run
 * left to right; an FP8/FP4 block's scale multiplies the block's partial sum. */
#include "kernels.h"
#include "quant.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The activations a row product reads: x itself or, with act_block, each
 * block of x replaced by its FP8 round trip (lt_fake_quant_fp8 on a copy of
 * the block, made when the walk first reaches it). */
typedef struct {
    const float *x;
    int64_t n;        /* values in x */
    int block;        /* 0: x as it is */
    int64_t b0;       /* first column held in q; -1 when q holds nothing */
    float q[LT_ACTQ_MAX_BLOCK];
} act_cursor;

static float act_at(act_cursor *a, int64_t c) {
    if (!a->block) return a->x[c];
    if (a->b0 < 0 || c < a->b0 || c >= a->b0 + a->block) {
        a->b0 = c - c % a->block;
        int64_t m = LT_MIN_I64(a->block, a->n - a->b0);
        memcpy(a->q, a->x + a->b0, (size_t)m * sizeof *a->q);
        lt_fake_quant_fp8(a->q, m, a->block);
    }
    return a->q[c - a->b0];
}

/* dot of one weight row with x, decoding the row format as we go */
static float row_dot_f32(const lt_weight *W, int64_t r, act_cursor *x) {
    const float *w = (const float *)W->data + r * W->cols;
    float acc = 0.0f;
    for (int64_t c = 0; c < W->cols; c++) acc += w[c] * act_at(x, c);
    return acc;
}

static float row_dot_bf16(const lt_weight *W, int64_t r, act_cursor *x) {
    const uint16_t *w = (const uint16_t *)W->data + r * W->cols;
    float acc = 0.0f;
    for (int64_t c = 0; c < W->cols; c++) acc += lt_bf16_to_f32(w[c]) * act_at(x, c);
    return acc;
}

/* FP8: the block's scale multiplies the partial sum over that block's columns */
static float row_dot_fp8(const lt_weight *W, int64_t r, act_cursor *x) {
    const uint8_t *w = (const uint8_t *)W->data + r * W->cols;
    int64_t n_cb = (W->cols + W->block_c - 1) / W->block_c;
    const uint8_t *srow = W->scale + (r / W->block_r) * n_cb;
    float acc = 0.0f;
    for (int64_t b = 0; b < n_cb; b++) {
        int64_t c0 = b * W->block_c, c1 = LT_MIN_I64(c0 + W->block_c, W->cols);
        float part = 0.0f;
        for (int64_t c = c0; c < c1; c++) part += lt_fp8_e4m3_to_f32(w[c]) * act_at(x, c);
        acc += part * lt_ue8m0_to_f32(srow[b]);
    }
    return acc;
}

/* FP4: two codes per byte (low nibble first), one scale per 32 inputs */
static float row_dot_fp4(const lt_weight *W, int64_t r, act_cursor *x) {
    const uint8_t *w = (const uint8_t *)W->data + r * (W->cols / 2);
    const uint8_t *srow = W->scale + r * (W->cols / 32);
    float acc = 0.0f;
    for (int64_t b = 0; b < W->cols / 32; b++) {
        float part = 0.0f;
        for (int64_t c = b * 32; c < b * 32 + 32; c += 2) {
            uint8_t byte = w[c / 2];
            part += lt_fp4_e2m1_to_f32(byte & 15) * act_at(x, c) + lt_fp4_e2m1_to_f32(byte >> 4) * act_at(x, c + 1);
        }
        acc += part * lt_ue8m0_to_f32(srow[b]);
    }
    return acc;
}

#define DEFINE_REF_MATMUL(fmt)                                                              \
    static void matmul_actq_##fmt##_ref(const lt_weight *W, const float *X, int64_t n,      \
                                        float *Y, int64_t ldy, int64_t r0, int64_t r1,      \
                                        int act_block) {                                    \
        act_cursor a;                                                                       \
        float *xq = act_block ? malloc(sizeof(float) * (size_t)W->cols) : NULL;             \
        a.n = W->cols;                                                                      \
        a.block = xq ? 0 : act_block; /* no buffer: the cursor quantises block by block */  \
        for (int64_t t = 0; t < n; t++) {                                                   \
            a.x = X + t * W->cols;                                                          \
            if (xq) { /* the row's round trip once, not once per output row */             \
                memcpy(xq, a.x, sizeof(float) * (size_t)W->cols);                           \
                lt_fake_quant_fp8(xq, W->cols, act_block);                                  \
                a.x = xq;                                                                   \
            }                                                                               \
            a.b0 = -1;                                                                      \
            for (int64_t r = r0; r < r1; r++) Y[t * ldy + r] = row_dot_##fmt(W, r, &a);     \
        }                                                                                   \
        free(xq);                                                                           \
    }                                                                                       \
    static void matmul_##fmt##_ref(const lt_weight *W, const float *X, int64_t n,           \
                                   float *Y, int64_t ldy, int64_t r0, int64_t r1) {         \
        matmul_actq_##fmt##_ref(W, X, n, Y, ldy, r0, r1, 0);                                \
    }
DEFINE_REF_MATMUL(f32)
DEFINE_REF_MATMUL(bf16)
DEFINE_REF_MATMUL(fp8)
DEFINE_REF_MATMUL(fp4)

/* the row products above, by format */
static float (*const row_dot[LT_W_COUNT])(const lt_weight *, int64_t, act_cursor *) = {
    [LT_W_F32] = row_dot_f32, [LT_W_BF16] = row_dot_bf16, [LT_W_FP8] = row_dot_fp8, [LT_W_FP4] = row_dot_fp4,
};

/* spec 3.6: per block of slots its rows are unpacked once, then each head
 * runs the softmax as kernels.h states it: REFERENCE the online one block by
 * block, EXACT the max and sum over all blocks first (a pass of its own),
 * then normalised weights */
static _Thread_local float attn_tile[LT_ATTN_BLOCK * LT_ATTN_MAX_DIM];

static int attn_unpack_block(const lt_kv_fmt *f, int64_t n_first, const uint8_t *const *rows, int64_t b,
                             int64_t n_rows) {
    int nb = (int)(n_rows - b < LT_ATTN_BLOCK ? n_rows - b : LT_ATTN_BLOCK);
    for (int j = 0; j < nb; j++)
        if (rows[b + j]) lt_kv_unpack(&f[b + j >= n_first], rows[b + j], attn_tile + j * f->d);
    return nb;
}

static float attn_score_ref(const float *qh, const float *v, int64_t d, float scale) {
    float s = 0.0f;
    for (int64_t c = 0; c < d; c++) s += qh[c] * v[c];
    return s * scale;
}

static void attn_rows_ref(const float *q, const lt_kv_fmt *f, int64_t n_first, const uint8_t *const *rows,
                          int64_t n_rows, const float *sink, float scale, int ref, int64_t h0, int64_t h1, float *o) {
    const int64_t d = f->d;
    float m[LT_ATTN_MAX_HEADS], mul[LT_ATTN_MAX_HEADS], p[LT_ATTN_BLOCK];
    double sum[LT_ATTN_MAX_HEADS];
    memset(o + h0 * d, 0, sizeof(float) * (size_t)((h1 - h0) * d));
    if (n_rows == 0) return;
    for (int64_t h = h0; h < h1; h++) m[h - h0] = ref || !sink ? -INFINITY : sink[h], sum[h - h0] = 0.0, mul[h - h0] = 1.0f;
    for (int64_t b = 0; b < n_rows && !ref; b += LT_ATTN_BLOCK) { /* EXACT: max and sum first */
        int nb = attn_unpack_block(f, n_first, rows, b, n_rows);
        for (int64_t h = h0; h < h1; h++)
            for (int j = 0; j < nb; j++) {
                float *mh = &m[h - h0], s = rows[b + j] ? attn_score_ref(q + h * d, attn_tile + j * d, d, scale) : -INFINITY;
                float mx = fmaxf(*mh, s);
                sum[h - h0] = sum[h - h0] * exp((double)*mh - (double)mx) + (rows[b + j] ? expf(s - mx) : 0.0f);
                *mh = mx;
            }
    }
    for (int64_t h = h0; h < h1 && !ref; h++)
        mul[h - h0] = (float)(1.0 / (sum[h - h0] + (sink ? exp((double)sink[h] - (double)m[h - h0]) : 0.0)));
    for (int64_t b = 0; b < n_rows; b += LT_ATTN_BLOCK) {
        int nb = attn_unpack_block(f, n_first, rows, b, n_rows);
        for (int64_t h = h0; h < h1; h++) {
            float *oh = o + h * d, mx = m[h - h0], bsum = 0.0f;
            for (int j = 0; j < nb; j++)
                mx = fmaxf(mx, p[j] = rows[b + j] ? attn_score_ref(q + h * d, attn_tile + j * d, d, scale) : -INFINITY);
            float r = expf(m[h - h0] - mx);
            for (int j = 0; j < nb; j++) {
                float e = rows[b + j] ? expf(p[j] - mx) : 0.0f;
                bsum += e;
                p[j] = ref ? lt_round_bf16(e) : e * mul[h - h0];
            }
            if (ref) sum[h - h0] = (double)((float)sum[h - h0] * r + bsum); /* the kernel's fp32 running sum */
            m[h - h0] = mx;
            for (int64_t c = 0; c < d; c++) oh[c] *= r;
            for (int j = 0; j < nb; j++)
                if (rows[b + j])
                    for (int64_t c = 0; c < d; c++) oh[c] += p[j] * attn_tile[j * d + c];
        }
    }
    for (int64_t h = h0; h < h1 && ref; h++) {
        float div = (float)sum[h - h0] + (sink ? expf(sink[h] - m[h - h0]) : 0.0f);
        for (int64_t c = 0; c < d; c++) o[h * d + c] /= div;
    }
}

/* spec 4.3 step 16: per key, the ReLU'd head dots weighted and summed; the
 * query rows are decoded once, each key row is decoded as it is summed */
static void index_score_ref(const lt_weight *K, const lt_weight *Q, const float *wt, int bf16, int64_t j0,
                            int64_t j1, float *score) {
    float q[LT_INDEX_MAX_QUERY];
    for (int64_t h = 0; h < Q->rows; h++) lt_weight_row(Q, h, q + h * Q->cols);
    act_cursor a;
    a.n = K->cols;
    a.block = 0;
    for (int64_t j = j0; j < j1; j++) {
        float acc = 0.0f;
        for (int64_t h = 0; h < Q->rows; h++) {
            a.x = q + h * K->cols;
            float dot = row_dot[K->type](K, j, &a);
            if (bf16) acc += lt_round_bf16(wt[h] * fmaxf(lt_round_bf16(dot), 0.0f));
            else acc += wt[h] * fmaxf(dot, 0.0f);
        }
        score[j] = bf16 ? lt_round_bf16(acc) : acc;
    }
}

/* spec 3.1 */
static float rms_inv_ref(const float *x, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    return (float)(1.0 / sqrt(ss / (double)n + (double)eps));
}

static void rmsnorm_ref(float *y, const float *x, const lt_vec *w, int64_t n, float eps) {
    float r = rms_inv_ref(x, n, eps);
    for (int64_t i = 0; i < n; i++) y[i] = (w ? lt_vec_at(w, i) : 1.0f) * (x[i] * r);
}

/* spec 3.2 */
static void rope_ref(float *x, const float *cs, int dim, int inverse) {
    int half = dim / 2;
    for (int i = 0; i < half; i++) {
        float c = cs[i], s = inverse ? -cs[half + i] : cs[half + i];
        float a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = a * c - b * s;
        x[2 * i + 1] = a * s + b * c;
    }
}

/* spec 4.4 */
static void swiglu_ref(float *g, const float *u, const float *wt, int64_t n, int64_t I, float limit, int bf16) {
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < I; i++) {
            float a = g[t * I + i], b = u[t * I + i];
            if (limit > 0) {
                a = a < limit ? a : limit;
                b = b < -limit ? -limit : b > limit ? limit : b;
            }
            a = lt_silu(a) * b * (wt ? wt[t] : 1.0f);
            g[t * I + i] = bf16 ? lt_round_bf16(a) : a;
        }
}

/* spec 3.3 */
static void mhc_collapse_ref(const float *X, const float *pre, int hc, int64_t D, float *x) {
    for (int64_t d = 0; d < D; d++) {
        float s = 0;
        for (int i = 0; i < hc; i++) s += pre[i] * X[i * D + d];
        x[d] = s;
    }
}

static void mhc_expand_ref(float *X, const float *out, const float *post, const float *comb, int hc, int64_t D) {
    float old[LT_MHC_MAX_HC];
    for (int64_t d = 0; d < D; d++) {
        for (int j = 0; j < hc; j++) old[j] = X[j * D + d];
        for (int k = 0; k < hc; k++) {
            float s = post[k] * out[d];
            for (int j = 0; j < hc; j++) s += comb[j * hc + k] * old[j];
            X[k * D + d] = s;
        }
    }
}

/* scalar fused multiply-adds on independent chains (the ref table's peak) */
static double probe_fma_ref(int64_t iters) {
    enum { CHAINS = 10 };
    float a[CHAINS];
    for (int i = 0; i < CHAINS; i++) a[i] = (float)i;
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < CHAINS; i++) a[i] = fmaf(a[i], 0.9999f, 1e-4f);
    volatile float sink = 0.0f;
    for (int i = 0; i < CHAINS; i++) sink += a[i];
    (void)sink;
    return 2.0 * CHAINS * (double)iters;
}

const lt_kernels lt_kernels_ref = {
    .name = "ref",
    .matmul = {
        [LT_W_F32] = matmul_f32_ref,
        [LT_W_BF16] = matmul_bf16_ref,
        [LT_W_FP8] = matmul_fp8_ref,
        [LT_W_FP4] = matmul_fp4_ref,
    },
    .matmul_actq = {
        [LT_W_F32] = matmul_actq_f32_ref,
        [LT_W_BF16] = matmul_actq_bf16_ref,
        [LT_W_FP8] = matmul_actq_fp8_ref,
        [LT_W_FP4] = matmul_actq_fp4_ref,
    },
    .fake_quant_fp8 = lt_fake_quant_fp8,
    .attn_rows = attn_rows_ref,
    .index_score = index_score_ref,
    .rms_inv = rms_inv_ref,
    .rmsnorm = rmsnorm_ref,
    .rope = rope_ref,
    .swiglu = swiglu_ref,
    .mhc_collapse = mhc_collapse_ref,
    .mhc_expand = mhc_expand_ref,
    .probe_fma = probe_fma_ref,
};
