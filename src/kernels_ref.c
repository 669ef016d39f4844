/* Scalar reference kernels: the algorithmic definition every SIMD variant is
 * tested against, and the fallback where no SIMD variant exists. Sums run
 * left to right; an FP8/FP4 block's scale multiplies the block's partial sum. */
#include "kernels.h"
#include "quant.h"
#include "util.h"

#include <math.h>
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
        a.n = W->cols;                                                                      \
        a.block = act_block;                                                                \
        for (int64_t t = 0; t < n; t++) {                                                   \
            a.x = X + t * W->cols;                                                          \
            a.b0 = -1;                                                                      \
            for (int64_t r = r0; r < r1; r++) Y[t * ldy + r] = row_dot_##fmt(W, r, &a);     \
        }                                                                                   \
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

/* spec 3.6: scores, then per head the max, exponentials and sum, then the mix */
static void attn_scores_ref(const float *q, int64_t nh, int64_t d, const float *const *rows, int64_t j0, int64_t j1,
                            float scale, float *S, int64_t lds) {
    for (int64_t h = 0; h < nh; h++)
        for (int64_t j = j0; j < j1; j++) {
            float s = 0.0f;
            for (int64_t c = 0; c < d; c++) s += q[h * d + c] * rows[j][c];
            S[h * lds + j] = s * scale;
        }
}

static void attn_softmax_ref(float *p, int64_t n, float sink, int has_sink, int p_bf16) {
    float M = -INFINITY, den = 0.0f;
    for (int64_t j = 0; j < n; j++) M = fmaxf(M, p[j]);
    for (int64_t j = 0; j < n; j++) den += (p[j] = expf(p[j] - M));
    if (has_sink) den += expf(sink - M);
    for (int64_t j = 0; j < n; j++) {
        p[j] /= den;
        if (p_bf16) p[j] = lt_round_bf16(p[j]);
    }
}

static void attn_mix_ref(const float *P, int64_t nh, int64_t lds, const float *const *rows, int64_t n_rows,
                         int64_t d, int64_t c0, int64_t c1, float *o) {
    for (int64_t h = 0; h < nh; h++)
        for (int64_t c = c0; c < c1; c++) {
            float acc = 0.0f;
            for (int64_t j = 0; j < n_rows; j++) acc += P[h * lds + j] * rows[j][c];
            o[h * d + c] = acc;
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
    .attn_scores = attn_scores_ref,
    .attn_softmax = attn_softmax_ref,
    .attn_mix = attn_mix_ref,
    .index_score = index_score_ref,
    .probe_fma = probe_fma_ref,
};
