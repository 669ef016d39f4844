/* Scalar reference kernels: the algorithmic definition every SIMD variant is
 * tested against, and the fallback where no SIMD variant exists. */
#include "kernels.h"
#include "quant.h"
#include "util.h"

/* dot of one weight row with x, decoding the row format as we go */
static float row_dot_f32(const lt_weight *W, int64_t r, const float *x) {
    const float *w = (const float *)W->data + r * W->cols;
    float acc = 0.0f;
    for (int64_t c = 0; c < W->cols; c++) acc += w[c] * x[c];
    return acc;
}

static float row_dot_bf16(const lt_weight *W, int64_t r, const float *x) {
    const uint16_t *w = (const uint16_t *)W->data + r * W->cols;
    float acc = 0.0f;
    for (int64_t c = 0; c < W->cols; c++) acc += lt_bf16_to_f32(w[c]) * x[c];
    return acc;
}

/* FP8: the block's scale multiplies the partial sum over that block's columns */
static float row_dot_fp8(const lt_weight *W, int64_t r, const float *x) {
    const uint8_t *w = (const uint8_t *)W->data + r * W->cols;
    int64_t n_cb = (W->cols + W->block_c - 1) / W->block_c;
    const uint8_t *srow = W->scale + (r / W->block_r) * n_cb;
    float acc = 0.0f;
    for (int64_t b = 0; b < n_cb; b++) {
        int64_t c0 = b * W->block_c, c1 = LT_MIN_I64(c0 + W->block_c, W->cols);
        float part = 0.0f;
        for (int64_t c = c0; c < c1; c++) part += lt_fp8_e4m3_to_f32(w[c]) * x[c];
        acc += part * lt_ue8m0_to_f32(srow[b]);
    }
    return acc;
}

/* FP4: two codes per byte (low nibble first), one scale per 32 inputs */
static float row_dot_fp4(const lt_weight *W, int64_t r, const float *x) {
    const uint8_t *w = (const uint8_t *)W->data + r * (W->cols / 2);
    const uint8_t *srow = W->scale + r * (W->cols / 32);
    float acc = 0.0f;
    for (int64_t b = 0; b < W->cols / 32; b++) {
        float part = 0.0f;
        for (int64_t c = b * 32; c < b * 32 + 32; c += 2) {
            uint8_t byte = w[c / 2];
            part += lt_fp4_e2m1_to_f32(byte & 15) * x[c] + lt_fp4_e2m1_to_f32(byte >> 4) * x[c + 1];
        }
        acc += part * lt_ue8m0_to_f32(srow[b]);
    }
    return acc;
}

#define DEFINE_REF_MATMUL(fmt)                                                        \
    static void matmul_##fmt##_ref(const lt_weight *W, const float *X, int64_t n,     \
                                   float *Y, int64_t ldy, int64_t r0, int64_t r1) {   \
        for (int64_t t = 0; t < n; t++)                                               \
            for (int64_t r = r0; r < r1; r++)                                         \
                Y[t * ldy + r] = row_dot_##fmt(W, r, X + t * W->cols);                \
    }
DEFINE_REF_MATMUL(f32)
DEFINE_REF_MATMUL(bf16)
DEFINE_REF_MATMUL(fp8)
DEFINE_REF_MATMUL(fp4)

const lt_kernels lt_kernels_ref = {
    .name = "ref",
    .matmul = {
        [LT_W_F32] = matmul_f32_ref,
        [LT_W_BF16] = matmul_bf16_ref,
        [LT_W_FP8] = matmul_fp8_ref,
        [LT_W_FP4] = matmul_fp4_ref,
    },
};
