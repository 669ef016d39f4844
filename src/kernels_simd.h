/* Loops shared by the SIMD kernel tables (kernels_avx2.c, kernels_avx512.c,
 * kernels_neon.c): weight decoding for every lt_wtype, block-scale walking,
 * the matrix-vector product of decode, the few-token product (MTP checks,
 * experts with few tokens), the packed-panel product of prefill, the fused
 * FP8 activation quantisation, attention over gathered rows and the indexer
 * scores. They are written once over a few vector primitives that each leaf
 * defines before including this header:
 *
 *   LT_VL                      floats per vector; lt_vf the vector type
 *   v_zero v_load v_store v_set1 v_add v_mul v_div v_min v_max v_abs v_hsum v_hmax
 *   v_fma(a, b, c)             a*b + c, fused
 *   v_round(v)                 nearest integer, ties to even
 *   v_pow2(n)                  2^n for integral n in [-126, 127]
 *   v_load_part(p, m)          the first m (0 < m < LT_VL) lanes, the rest 0
 *   v_store_part(p, v, m)      stores the first m lanes
 *   v_dec_fp8(p)               LT_VL e4m3 codes -> value * LT_FP8_DEC
 *   v_dec_fp4(p)               LT_VL e2m1 codes (LT_VL/2 bytes, low nibble
 *                              first) -> value * LT_FP4_DEC (leaf constant)
 *   v_dec_bf16(p)              LT_VL bf16 -> f32
 *   v_dec_ue8m0(p)             LT_VL UE8M0 scales -> 2^(b-127) (0: 2^-127, 0xFF: NaN)
 *   v_dec_fp4_x8(p, v[8])      a group of 8 LT_VL e2m1 codes (4 LT_VL bytes): v[s]
 *                              lane i = code 8i + s, times LT_FP4_DEC (one table
 *                              lookup per vector, no byte shuffles)
 *   v_dec_fp8_x4(p, v[4])      a group of 4 LT_VL e4m3 codes: v[s] lane i = code
 *                              2 (i + (s & 1) LT_VL) + (s >> 1), times LT_FP8_DEC
 *                              (even and odd codes of 16-bit words: shifts, no
 *                              byte widening)
 *   v_deinterleave(a, b, e, o) the even and the odd lanes of a then b
 *   v_rep4(v, q)               quarter q of v, each lane repeated 4 times: lane i
 *                              = v lane (q LT_VL/4 + i/4) (the scales of an FP4
 *                              group's blocks, q < 4)
 *   v_round_e4m3(v)            |v| <= 448 rounded to the e4m3 grid (RNE)
 *   v_round_bf16(v)            rounded to bf16 (RNE), as f32
 *   v_swap_pairs(v)            lanes 2i and 2i+1 exchanged
 *   v_load_dup2(p)             LT_VL/2 floats, each in two lanes: lane i = p[i/2]
 *   v_transpose(v[LT_VL])      transposes an LT_VL x LT_VL tile in registers
 *   LT_MR_V, LT_NT             prefill register tile: LT_MR_V vectors of
 *                              weight rows times LT_NT activation rows
 *
 * Decoders return the value times a power of two (LT_FP8_DEC, LT_FP4_DEC) when
 * that saves instructions; the block scale carries the inverse, so products
 * are unchanged. What the SIMD tables compute differently from ref:
 *   - summation order (vector lanes, fused multiply-add, the scale applied to
 *     each weight instead of each block sum in prefill): results agree to a
 *     relative 1e-5 of sum |w x|, not bit for bit;
 *   - the e4m3 NaN codes 0x7F/0xFF decode as +-480 instead of NaN. Checkpoints
 *     never hold them (the reference quantiser clamps to +-448).
 * Activation quantisation (fake_quant_fp8, matmul_actq) is bit-identical to
 * the reference quantiser, and so are rope, mhc_collapse and mhc_expand
 * (same operations in the same order) and rmsnorm given its factor. attn_rows
 * and swiglu use a polynomial exp (Cephes expf, within 2 ulp) where ref calls
 * expf; rms_inv sums squares in fp32 lanes where ref sums in double.
 *
 * Dimension letters: n activation rows (tokens), r weight rows (outputs),
 * k weight columns (inputs). */
#ifndef LT_KERNELS_SIMD_H
#define LT_KERNELS_SIMD_H

#include "kernels.h"
#include "quant.h"
#include "util.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define LT_INLINE static inline __attribute__((always_inline))

#define LT_FP8_DEC 0x1p-8f  /* f16 exponent bias 15 against e4m3's 7 */
#define LT_MR (LT_MR_V * LT_VL) /* weight rows of a packed panel */
#define LT_NT_MAX 12            /* largest LT_NT of any leaf */
#define LT_KC 256               /* columns of a packed panel: holds whole 32- and 128-blocks */
#define LT_NC 128               /* activation rows of one X slice (LT_NC x LT_KC floats stay in L2) */
#define LT_RB 4                 /* weight rows per matrix-vector step (x loads shared) */
#define LT_QK 4096              /* activation columns per chunk of the matrix-vector product */
#define LT_G4 (8 * LT_VL)       /* columns of one grouped FP4 decode */
#define LT_G8 (4 * LT_VL)       /* columns of one grouped FP8 decode */
#define LT_MT 8                 /* most activation rows of the few-token product (more: panels) */
#define LT_QM 1024              /* activation columns per chunk of the few-token product */

/* ---- number formats and block walking ---------------------------------- */

/* UE8M0 power of two 2^(b-127) from its bits: 0 is the subnormal 2^-127, 0xFF NaN */
LT_INLINE float ue8m0(uint8_t b) {
    uint32_t u = b == 0 ? 0x00400000u : b == 0xFF ? 0x7FC00000u : (uint32_t)b << 23;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* bytes of one stored weight row */
LT_INLINE int64_t row_bytes(lt_wtype t, int64_t cols) {
    switch (t) {
    case LT_W_FP8: return cols;
    case LT_W_FP4: return cols / 2;
    case LT_W_BF16: return 2 * cols;
    default: return 4 * cols;
    }
}

LT_INLINE const uint8_t *w_row(lt_wtype t, const lt_weight *W, int64_t r) {
    return (const uint8_t *)W->data + r * row_bytes(t, W->cols);
}

/* columns sharing one scale (the whole row when the format has none) */
LT_INLINE int64_t scale_block(lt_wtype t, const lt_weight *W) {
    switch (t) {
    case LT_W_FP8: return W->block_c;
    case LT_W_FP4: return 32;
    default: return LT_MAX(W->cols, 1);
    }
}

/* the scales of row r, one per scale block */
LT_INLINE const uint8_t *scale_row(lt_wtype t, const lt_weight *W, int64_t r) {
    switch (t) {
    case LT_W_FP8: return W->scale + (r / W->block_r) * ((W->cols + W->block_c - 1) / W->block_c);
    case LT_W_FP4: return W->scale + r * (W->cols / 32);
    default: return NULL;
    }
}

/* scale of block b times the inverse of the decoder's factor */
LT_INLINE float scale_of(lt_wtype t, const uint8_t *srow, int64_t b) {
    switch (t) {
    case LT_W_FP8: return ue8m0(srow[b]) * (1.0f / LT_FP8_DEC);
    case LT_W_FP4: return ue8m0(srow[b]) * (1.0f / LT_FP4_DEC);
    default: return 1.0f;
    }
}

/* LT_VL weights of a row from column k (k even for FP4) */
LT_INLINE lt_vf dec_vec(lt_wtype t, const uint8_t *row, int64_t k) {
    switch (t) {
    case LT_W_FP8: return v_dec_fp8(row + k);
    case LT_W_FP4: return v_dec_fp4(row + k / 2);
    case LT_W_BF16: return v_dec_bf16((const uint16_t *)(const void *)row + k);
    default: return v_load((const float *)(const void *)row + k);
    }
}

/* one weight, with the same factor as dec_vec (the scalar finish of a block) */
LT_INLINE float dec_one(lt_wtype t, const uint8_t *row, int64_t k) {
    switch (t) {
    case LT_W_FP8: return lt_fp8_e4m3_to_f32(row[k]) * LT_FP8_DEC;
    case LT_W_FP4: return lt_fp4_e2m1_to_f32((uint8_t)(row[k / 2] >> (4 * (k & 1)))) * LT_FP4_DEC;
    case LT_W_BF16: {
        uint16_t h;
        memcpy(&h, row + 2 * k, 2);
        return lt_bf16_to_f32(h);
    }
    default: {
        float f;
        memcpy(&f, row + 4 * k, 4);
        return f;
    }
    }
}

/* ---- FP8 activation quantisation (spec 3.4) ---------------------------- */

/* s = 2^ceil(log2(max(amax, 1e-4) / 448)), the ceiling taken on the bits of
 * the quotient like the reference's fast_log2_ceil */
LT_INLINE float actq_scale(float amax) {
    float q = LT_MAX(amax, 1e-4f) / 448.0f;
    uint32_t u;
    memcpy(&u, &q, 4);
    u = (((u >> 23) & 0xFF) + ((u & 0x7FFFFF) != 0)) << 23;
    memcpy(&q, &u, 4);
    return q;
}

/* dst[0..m) = the FP8 round trip of src[0..m) as one block */
LT_INLINE void quant_block(const float *src, float *dst, int64_t m) {
    lt_vf vmax = v_zero();
    int64_t k = 0;
    for (; k + LT_VL <= m; k += LT_VL) vmax = v_max(vmax, v_abs(v_load(src + k)));
    float amax = v_hmax(vmax);
    for (int64_t j = k; j < m; j++) amax = fmaxf(amax, fabsf(src[j]));
    float s = actq_scale(amax), inv = 1.0f / s; /* exact: s is a power of two */
    lt_vf vs = v_set1(s), vinv = v_set1(inv), hi = v_set1(448.0f), lo = v_set1(-448.0f);
    for (k = 0; k + LT_VL <= m; k += LT_VL) {
        lt_vf y = v_max(v_min(v_mul(v_load(src + k), vinv), hi), lo);
        v_store(dst + k, v_mul(v_round_e4m3(y), vs));
    }
    for (; k < m; k++) dst[k] = lt_fp8_e4m3_to_f32(lt_f32_to_fp8_e4m3(src[k] * inv)) * s;
}

/* dst[0..n) = FP8 round trip of src[0..n) in blocks of `block` from src[0] */
LT_INLINE void quant_fp8(const float *src, float *dst, int64_t n, int block) {
    for (int64_t b = 0; b < n; b += block) quant_block(src + b, dst + b, LT_MIN(block, n - b));
}

static void fake_quant_fp8_simd(float *x, int64_t n, int block) { quant_fp8(x, x, n, block); }

/* ---- matrix-vector product (decode, n = 1) ------------------------------ */

/* LT_VL scales of blocks b.. of a row (fewer when the row has fewer left: the
 * rest read as 1), times the inverse of the decoder's factor */
LT_INLINE lt_vf scales_vec(lt_wtype t, const uint8_t *srow, int64_t b, int64_t n_left) {
    uint8_t tmp[LT_VL];
    const uint8_t *p = srow + b;
    if (n_left < LT_VL) { /* never read past the scale tensor */
        memset(tmp, 127, sizeof tmp);
        memcpy(tmp, p, (size_t)n_left);
        p = tmp;
    }
    return v_mul(v_dec_ue8m0(p), v_set1(t == LT_W_FP8 ? 1.0f / LT_FP8_DEC : 1.0f / LT_FP4_DEC));
}

/* y[i] (+)= sum_{k0 <= k < k1} W[r + i][k] x[k - k0] for i < nr (nr <= LT_RB,
 * a constant after inlining). The rows sit at a fixed stride; each scale
 * block is summed in vector lanes, then scaled into the row's accumulator,
 * with the scales of LT_VL blocks decoded at once. */
LT_INLINE void dot_rows(lt_wtype t, const lt_weight *W, int64_t r, int nr, const float *x, int64_t k0,
                        int64_t k1, float *y, int accumulate) {
    const int scaled = t == LT_W_FP8 || t == LT_W_FP4;
    const int64_t bc = scale_block(t, W), stride = row_bytes(t, W->cols), row_blocks = (W->cols + bc - 1) / bc;
    const int64_t b0 = k0 / bc, nb = (k1 - 1) / bc - b0 + 1;
    const uint8_t *base = w_row(t, W, r), *srow[LT_RB];
    float sc[LT_RB][LT_VL] __attribute__((aligned(64)));
    lt_vf acc[LT_RB];
    float tail[LT_RB];
    for (int i = 0; i < nr; i++) {
        srow[i] = scale_row(t, W, r + i);
        acc[i] = v_zero();
        tail[i] = 0.0f;
    }
    for (int64_t b = 0; b < nb; b++) {
        int64_t kb = LT_MAX(k0, (b0 + b) * bc), ke = LT_MIN((b0 + b + 1) * bc, k1), k = kb;
        if (scaled && b % LT_VL == 0)
            for (int i = 0; i < nr; i++) v_store(sc[i], scales_vec(t, srow[i], b0 + b, row_blocks - b0 - b));
        lt_vf part[LT_RB];
        float pt[LT_RB];
        for (int i = 0; i < nr; i++) part[i] = v_zero(), pt[i] = 0.0f;
        for (; k + LT_VL <= ke; k += LT_VL) {
            lt_vf xv = v_load(x + (k - k0));
            const uint8_t *p = base + row_bytes(t, k);
            if ((row_bytes(t, k) & 63) == 0) /* the next row group's line at this column: hides DRAM latency */
                for (int i = 0; i < nr; i++) __builtin_prefetch(p + (nr + i) * stride);
            for (int i = 0; i < nr; i++) part[i] = v_fma(dec_vec(t, p + i * stride, 0), xv, part[i]);
        }
        for (; k < ke; k++)
            for (int i = 0; i < nr; i++) pt[i] += dec_one(t, base + i * stride, k) * x[k - k0];
        for (int i = 0; i < nr; i++) {
            float s = scaled ? sc[i][b % LT_VL] : 1.0f;
            acc[i] = scaled ? v_fma(part[i], v_set1(s), acc[i]) : v_add(part[i], acc[i]);
            tail[i] += pt[i] * s;
        }
    }
    for (int i = 0; i < nr; i++) y[i] = (accumulate ? y[i] : 0.0f) + v_hsum(acc[i]) + tail[i];
}

LT_INLINE void dot_all_rows(lt_wtype t, const lt_weight *W, const float *x, int64_t k0, int64_t k1, float *y,
                            int64_t r0, int64_t r1, int accumulate) {
    int64_t r = r0;
    for (; r + LT_RB <= r1; r += LT_RB) dot_rows(t, W, r, LT_RB, x, k0, k1, y + r, accumulate);
    for (; r < r1; r++) dot_rows(t, W, r, 1, x, k0, k1, y + r, accumulate);
}

/* Grouped FP4 rows: y[i] (+)= the columns [k0, k0 + ng * LT_G4) of rows r + i
 * (i < nr), with xp the activations permuted per group (permute_x8). Lane i
 * of a group's partial sum holds columns of block i/4 only, so one multiply
 * by the lane-repeated scales applies every block's scale. */
LT_INLINE void dot_rows_fp4(const lt_weight *W, int64_t r, int nr, const float *xp, int64_t k0, int64_t ng,
                            float *y, int accumulate) {
    const int64_t stride = W->cols / 2, nb = W->cols / 32;
    const uint8_t *base = w_row(LT_W_FP4, W, r) + k0 / 2, *srow[LT_RB];
    lt_vf acc[LT_RB], sc[LT_RB];
    for (int i = 0; i < nr; i++) srow[i] = scale_row(LT_W_FP4, W, r + i), acc[i] = sc[i] = v_zero();
    for (int64_t g = 0; g < ng; g++) {
        const float *xg = xp + g * LT_G4;
        int64_t b = k0 / 32 + g * (LT_G4 / 32);
        if (g % 4 == 0) /* the scales of 4 groups at once */
            for (int i = 0; i < nr; i++) sc[i] = scales_vec(LT_W_FP4, srow[i], b, nb - b);
        for (int i = 0; i < nr; i++) {
            lt_vf w[8];
            __builtin_prefetch(base + (nr + i) * stride + g * (LT_G4 / 2)); /* the next row group's line */
            v_dec_fp4_x8(base + i * stride + g * (LT_G4 / 2), w);
            lt_vf even = v_mul(w[0], v_load(xg)), odd = v_mul(w[1], v_load(xg + LT_VL));
            for (int s = 2; s < 8; s += 2) {
                even = v_fma(w[s], v_load(xg + s * LT_VL), even);
                odd = v_fma(w[s + 1], v_load(xg + (s + 1) * LT_VL), odd);
            }
            acc[i] = v_fma(v_add(even, odd), v_rep4(sc[i], (int)(g % 4)), acc[i]);
        }
    }
    for (int i = 0; i < nr; i++) y[i] = (accumulate ? y[i] : 0.0f) + v_hsum(acc[i]);
}

/* xp[g + s LT_VL + i] = x[g + 8 i + s] within each group of LT_G4 columns:
 * three rounds of even/odd splits (column bits 0, 1, 2) */
LT_INLINE void permute_x8(const float *x, float *xp, int64_t n) {
    static const int from[8] = {0, 2, 1, 3, 4, 6, 5, 7}; /* the split that holds columns 8i + s */
    for (int64_t g = 0; g < n; g += LT_G4) {
        lt_vf a[8], b[8];
        for (int j = 0; j < 8; j++) a[j] = v_load(x + g + j * LT_VL);
        for (int k = 0; k < 4; k++) v_deinterleave(a[2 * k], a[2 * k + 1], &b[k], &b[4 + k]);
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 2; k++)
                v_deinterleave(b[4 * h + 2 * k], b[4 * h + 2 * k + 1], &a[4 * h + k], &a[4 * h + 2 + k]);
        for (int m = 0; m < 4; m++) v_deinterleave(a[2 * m], a[2 * m + 1], &b[m], &b[4 + m]);
        for (int s = 0; s < 8; s++) v_store(xp + g + s * LT_VL, b[from[s]]);
    }
}

/* FP4 rows over the chunk [k0, k1): whole groups grouped, the rest by blocks */
LT_INLINE void dot_all_rows_fp4(const lt_weight *W, const float *x, float *xp, int64_t k0, int64_t k1, float *y,
                                int64_t r0, int64_t r1, int accumulate) {
    int64_t ng = (k1 - k0) / LT_G4, kg = k0 + ng * LT_G4;
    permute_x8(x, xp, kg - k0);
    int64_t r = r0;
    for (; r + LT_RB <= r1; r += LT_RB) dot_rows_fp4(W, r, LT_RB, xp, k0, ng, y + r, accumulate);
    for (; r < r1; r++) dot_rows_fp4(W, r, 1, xp, k0, ng, y + r, accumulate);
    if (kg < k1) dot_all_rows(LT_W_FP4, W, x + (kg - k0), kg, k1, y, r0, r1, 1);
}

/* Grouped FP8 rows (v_dec_fp8_x4). A group's first half (v[0], v[2]) and
 * second half (v[1], v[3]) each lie in one scale block when the block is
 * half a group or whole groups (fp8_grouped), and the chunk starts on a
 * group. */
LT_INLINE int fp8_grouped(const lt_weight *W, int64_t k0) {
    return k0 % LT_G8 == 0 && (W->block_c == LT_G8 / 2 || W->block_c % LT_G8 == 0);
}

/* xp[g + s LT_VL + i] = x[g + 2 (i + (s & 1) LT_VL) + (s >> 1)] within each
 * group of LT_G8 columns: the even and odd columns of each half */
LT_INLINE void permute_x4(const float *x, float *xp, int64_t n) {
    for (int64_t g = 0; g < n; g += LT_G8)
        for (int h = 0; h < 2; h++) {
            lt_vf even, odd;
            v_deinterleave(v_load(x + g + 2 * h * LT_VL), v_load(x + g + (2 * h + 1) * LT_VL), &even, &odd);
            v_store(xp + g + h * LT_VL, even);
            v_store(xp + g + (2 + h) * LT_VL, odd);
        }
}

/* the two halves' products of one group: lo covers its first LT_G8/2
 * columns, hi the rest */
LT_INLINE void fp8_group_dot(const uint8_t *p, const float *xg, lt_vf *lo, lt_vf *hi) {
    lt_vf w[4];
    v_dec_fp8_x4(p, w);
    *lo = v_fma(w[0], v_load(xg), v_mul(w[2], v_load(xg + 2 * LT_VL)));
    *hi = v_fma(w[1], v_load(xg + LT_VL), v_mul(w[3], v_load(xg + 3 * LT_VL)));
}

/* the groups [g, return) summed before their scales apply: one group when
 * the block is half a group, else those up to the end of the block of
 * column k0 + g LT_G8 */
LT_INLINE int64_t fp8_block_end(int64_t k0, int64_t g, int64_t ng, int64_t bc) {
    return bc == LT_G8 / 2 ? g + 1 : LT_MIN(ng, g + (bc - (k0 + g * LT_G8) % bc) / LT_G8);
}

/* acc += the summed first and second group halves (part) times their
 * scales: blocks b and b + 1 when a block is half a group, else block b */
LT_INLINE void fp8_block_scale(const uint8_t *srow, int64_t bc, int64_t b, const lt_vf part[2], lt_vf *acc) {
    lt_vf s = v_set1(scale_of(LT_W_FP8, srow, b));
    if (bc == LT_G8 / 2) *acc = v_fma(part[0], s, v_fma(part[1], v_set1(scale_of(LT_W_FP8, srow, b + 1)), *acc));
    else *acc = v_fma(v_add(part[0], part[1]), s, *acc);
}

/* y[i] (+)= columns [k0, k0 + ng LT_G8) of rows r + i (i < nr), xp permuted
 * (permute_x4). Blocks of half a group scale each half; larger blocks sum
 * their groups first. */
LT_INLINE void dot_rows_fp8(const lt_weight *W, int64_t r, int nr, const float *xp, int64_t k0, int64_t ng,
                            float *y, int accumulate) {
    const int64_t stride = W->cols, bc = W->block_c;
    const uint8_t *base = w_row(LT_W_FP8, W, r) + k0, *srow[LT_RB];
    lt_vf acc[LT_RB];
    for (int i = 0; i < nr; i++) srow[i] = scale_row(LT_W_FP8, W, r + i), acc[i] = v_zero();
    for (int64_t g = 0, b = k0 / bc; g < ng; b += bc == LT_G8 / 2 ? 2 : 1) {
        int64_t ge = fp8_block_end(k0, g, ng, bc);
        lt_vf part[LT_RB][2];
        for (int i = 0; i < nr; i++) part[i][0] = part[i][1] = v_zero();
        for (; g < ge; g++) {
            const uint8_t *p = base + g * LT_G8;
            for (int i = 0; i < nr; i++) {
                lt_vf lo, hi;
                if ((g * LT_G8 & 63) == 0) __builtin_prefetch(p + (nr + i) * stride); /* the next row group's line */
                fp8_group_dot(p + i * stride, xp + g * LT_G8, &lo, &hi);
                part[i][0] = v_add(part[i][0], lo), part[i][1] = v_add(part[i][1], hi);
            }
        }
        for (int i = 0; i < nr; i++) fp8_block_scale(srow[i], bc, b, part[i], &acc[i]);
    }
    for (int i = 0; i < nr; i++) y[i] = (accumulate ? y[i] : 0.0f) + v_hsum(acc[i]);
}

/* FP8 rows over the chunk [k0, k1): whole groups grouped, the rest by blocks */
LT_INLINE void dot_all_rows_fp8(const lt_weight *W, const float *x, float *xp, int64_t k0, int64_t k1, float *y,
                                int64_t r0, int64_t r1, int accumulate) {
    int64_t ng = (k1 - k0) / LT_G8, kg = k0 + ng * LT_G8;
    permute_x4(x, xp, kg - k0);
    int64_t r = r0;
    for (; r + LT_RB <= r1 && ng; r += LT_RB) dot_rows_fp8(W, r, LT_RB, xp, k0, ng, y + r, accumulate);
    for (; r < r1 && ng; r++) dot_rows_fp8(W, r, 1, xp, k0, ng, y + r, accumulate);
    if (kg < k1) dot_all_rows(LT_W_FP8, W, x + (kg - k0), kg, k1, y, r0, r1, accumulate || ng);
}

/* y[r] for r in [r0, r1), LT_QK columns at a time: the chunk of x is
 * quantised (act_block) and permuted (FP4) into L1 buffers once per call */
LT_INLINE void matvec(lt_wtype t, const lt_weight *W, const float *x, float *y, int64_t r0, int64_t r1,
                      int act_block) {
    float xq[LT_QK] __attribute__((aligned(64))), xp[LT_QK] __attribute__((aligned(64)));
    const int64_t step = act_block ? LT_QK - LT_QK % act_block : LT_QK; /* whole activation blocks */
    for (int64_t k0 = 0; k0 < W->cols; k0 += step) {
        int64_t k1 = LT_MIN(k0 + step, W->cols);
        const float *xc = x + k0;
        if (act_block) {
            quant_fp8(xc, xq, k1 - k0, act_block);
            xc = xq;
        }
        if (t == LT_W_FP4 && k0 % 32 == 0) dot_all_rows_fp4(W, xc, xp, k0, k1, y, r0, r1, k0 > 0);
        else if (t == LT_W_FP8 && fp8_grouped(W, k0)) dot_all_rows_fp8(W, xc, xp, k0, k1, y, r0, r1, k0 > 0);
        else dot_all_rows(t, W, xc, k0, k1, y, r0, r1, k0 > 0);
    }
}

/* ---- few-token product (2 <= n <= LT_MT) -------------------------------- */

/* y[u][r] (+)= W[r] . x_u over [k0, k1) for nu tokens (a constant after
 * inlining): every weight vector is decoded once and multiplied into each
 * token's partial sum; x_u = x + u * ldx starts at column k0. */
LT_INLINE void dot_row_multi(lt_wtype t, const lt_weight *W, int64_t r, int nu, const float *x, int64_t ldx,
                             int64_t k0, int64_t k1, float *y, int64_t ldy, int accumulate) {
    const int scaled = t == LT_W_FP8 || t == LT_W_FP4;
    const int64_t bc = scale_block(t, W), b0 = k0 / bc, nb = (k1 - 1) / bc - b0 + 1;
    const uint8_t *row = w_row(t, W, r), *srow = scaled ? scale_row(t, W, r) : NULL;
    const int64_t stride = row_bytes(t, W->cols);
    lt_vf acc[LT_MT];
    float tail[LT_MT];
    for (int u = 0; u < nu; u++) acc[u] = v_zero(), tail[u] = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int64_t kb = LT_MAX(k0, (b0 + b) * bc), ke = LT_MIN((b0 + b + 1) * bc, k1), k = kb;
        lt_vf part[LT_MT];
        float pt[LT_MT];
        for (int u = 0; u < nu; u++) part[u] = v_zero(), pt[u] = 0.0f;
        for (; k + LT_VL <= ke; k += LT_VL) {
            if ((row_bytes(t, k) & 63) == 0) __builtin_prefetch(row + stride + row_bytes(t, k)); /* next row */
            lt_vf w = dec_vec(t, row, k);
            for (int u = 0; u < nu; u++) part[u] = v_fma(w, v_load(x + u * ldx + (k - k0)), part[u]);
        }
        for (; k < ke; k++) {
            float w = dec_one(t, row, k);
            for (int u = 0; u < nu; u++) pt[u] += w * x[u * ldx + (k - k0)];
        }
        float s = scaled ? scale_of(t, srow, b0 + b) : 1.0f;
        for (int u = 0; u < nu; u++) acc[u] = v_fma(part[u], v_set1(s), acc[u]), tail[u] += pt[u] * s;
    }
    for (int u = 0; u < nu; u++)
        y[u * ldy] = (accumulate ? y[u * ldy] : 0.0f) + v_hsum(acc[u]) + tail[u];
}

/* the grouped FP4 form (permute_x8 order, lane-repeated scales) of whole
 * groups from k0 (a multiple of 32) */
LT_INLINE void dot_row_multi_fp4(const lt_weight *W, int64_t r, int nu, const float *xp, int64_t ldx, int64_t k0,
                                 int64_t ng, float *y, int64_t ldy, int accumulate) {
    const int64_t stride = W->cols / 2;
    const uint8_t *row = w_row(LT_W_FP4, W, r) + k0 / 2, *srow = scale_row(LT_W_FP4, W, r);
    const int64_t nb = W->cols / 32;
    lt_vf acc[LT_MT], sc4 = v_zero();
    for (int u = 0; u < nu; u++) acc[u] = v_zero();
    for (int64_t g = 0; g < ng; g++) {
        int64_t b = k0 / 32 + g * (LT_G4 / 32);
        if (g % 4 == 0) sc4 = scales_vec(LT_W_FP4, srow, b, nb - b);
        lt_vf w[8], sc = v_rep4(sc4, (int)(g % 4));
        __builtin_prefetch(row + stride + g * (LT_G4 / 2)); /* the next row's line */
        v_dec_fp4_x8(row + g * (LT_G4 / 2), w);
        for (int u = 0; u < nu; u++) {
            const float *xg = xp + u * ldx + g * LT_G4;
            lt_vf even = v_mul(w[0], v_load(xg)), odd = v_mul(w[1], v_load(xg + LT_VL));
            for (int s = 2; s < 8; s += 2) {
                even = v_fma(w[s], v_load(xg + s * LT_VL), even);
                odd = v_fma(w[s + 1], v_load(xg + (s + 1) * LT_VL), odd);
            }
            acc[u] = v_fma(v_add(even, odd), sc, acc[u]);
        }
    }
    for (int u = 0; u < nu; u++) y[u * ldy] = (accumulate ? y[u * ldy] : 0.0f) + v_hsum(acc[u]);
}

/* the grouped FP8 form (permute_x4 order, dot_rows_fp8's block walk) of
 * whole groups from k0 (fp8_grouped) */
LT_INLINE void dot_row_multi_fp8(const lt_weight *W, int64_t r, int nu, const float *xp, int64_t ldx, int64_t k0,
                                 int64_t ng, float *y, int64_t ldy, int accumulate) {
    const int64_t bc = W->block_c;
    const uint8_t *row = w_row(LT_W_FP8, W, r) + k0, *srow = scale_row(LT_W_FP8, W, r);
    lt_vf acc[LT_MT];
    for (int u = 0; u < nu; u++) acc[u] = v_zero();
    for (int64_t g = 0, b = k0 / bc; g < ng; b += bc == LT_G8 / 2 ? 2 : 1) {
        int64_t ge = fp8_block_end(k0, g, ng, bc);
        lt_vf part[LT_MT][2];
        for (int u = 0; u < nu; u++) part[u][0] = part[u][1] = v_zero();
        for (; g < ge; g++) {
            lt_vf w[4];
            if ((g * LT_G8 & 63) == 0) __builtin_prefetch(row + W->cols + g * LT_G8); /* the next row's line */
            v_dec_fp8_x4(row + g * LT_G8, w);
            for (int u = 0; u < nu; u++) {
                const float *xg = xp + u * ldx + g * LT_G8;
                part[u][0] = v_fma(w[0], v_load(xg), v_fma(w[2], v_load(xg + 2 * LT_VL), part[u][0]));
                part[u][1] = v_fma(w[1], v_load(xg + LT_VL), v_fma(w[3], v_load(xg + 3 * LT_VL), part[u][1]));
            }
        }
        for (int u = 0; u < nu; u++) fp8_block_scale(srow, bc, b, part[u], &acc[u]);
    }
    for (int u = 0; u < nu; u++) y[u * ldy] = (accumulate ? y[u * ldy] : 0.0f) + v_hsum(acc[u]);
}

/* Y rows r0..r1 for nu tokens (nu a constant after inlining), LT_QM columns
 * at a time: the chunk of every token is copied (quantised with act_block,
 * permuted for FP4) into L1 buffers whose row stride is padded off 4 KiB, so
 * the tokens do not compete for the same cache sets; then each weight row is
 * streamed once. */
LT_INLINE void matvec_multi_n(lt_wtype t, const lt_weight *W, const float *X, int nu, float *Y, int64_t ldy,
                              int64_t r0, int64_t r1, int act_block) {
    enum { LD = LT_QM + 16 };
    float xq[LT_MT * LD] __attribute__((aligned(64))), xp[LT_MT * LD] __attribute__((aligned(64)));
    const int64_t step = act_block ? LT_QM - LT_QM % act_block : LT_QM;
    for (int64_t k0 = 0; k0 < W->cols; k0 += step) {
        int64_t k1 = LT_MIN(k0 + step, W->cols), kc = k1 - k0;
        for (int u = 0; u < nu; u++) {
            if (act_block) quant_fp8(X + u * W->cols + k0, xq + u * LD, kc, act_block);
            else memcpy(xq + u * LD, X + u * W->cols + k0, sizeof(float) * (size_t)kc);
        }
        const int fp4 = t == LT_W_FP4 && k0 % 32 == 0, fp8 = t == LT_W_FP8 && fp8_grouped(W, k0);
        const int64_t gw = fp4 ? LT_G4 : LT_G8, ng = fp4 || fp8 ? kc / gw : 0, kg = k0 + ng * gw;
        for (int u = 0; u < nu && ng; u++) {
            if (fp4) permute_x8(xq + u * LD, xp + u * LD, kg - k0);
            else permute_x4(xq + u * LD, xp + u * LD, kg - k0);
        }
        for (int64_t r = r0; r < r1; r++) {
            if (ng && fp4) dot_row_multi_fp4(W, r, nu, xp, LD, k0, ng, Y + r, ldy, k0 > 0);
            if (ng && fp8) dot_row_multi_fp8(W, r, nu, xp, LD, k0, ng, Y + r, ldy, k0 > 0);
            if (kg < k1) dot_row_multi(t, W, r, nu, xq + (kg - k0), LD, kg, k1, Y + r, ldy, k0 > 0 || ng);
        }
    }
}

/* nu in [2, LT_MT] turned into a constant */
LT_INLINE void matvec_multi(lt_wtype t, const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy,
                            int64_t r0, int64_t r1, int act_block) {
    switch (n) {
#define LT_MULTI_CASE(c) \
    case c: matvec_multi_n(t, W, X, c, Y, ldy, r0, r1, act_block); break;
    LT_MULTI_CASE(2) LT_MULTI_CASE(3) LT_MULTI_CASE(4) LT_MULTI_CASE(5) LT_MULTI_CASE(6) LT_MULTI_CASE(7)
    LT_MULTI_CASE(8)
#undef LT_MULTI_CASE
    }
}

/* ---- packed-panel product (prefill, n > LT_MT) -------------------------- */

/* Packs nr (a constant after inlining) rows of one LT_VL-row group: Bp[k][i]
 * = row i at column k0 + k, with its scale, for k < kc (rows past nr are 0).
 * row[i] is the row's first byte, srow[i] its scales (bc columns each; FP8
 * and FP4 only).
 * Whole LT_VL x LT_VL tiles are decoded along rows and transposed in
 * registers. */
LT_INLINE void pack_rows(lt_wtype t, int64_t bc, const uint8_t *const *row, const uint8_t *const *srow, int nr,
                         int64_t k0, int64_t kc, float *Bp) {
    for (int64_t k = 0; k < kc;) {
        int64_t b = (k0 + k) / bc, be = LT_MIN((b + 1) * bc - k0, kc);
        float s[LT_VL];
        for (int i = 0; i < nr; i++) s[i] = t == LT_W_FP8 || t == LT_W_FP4 ? scale_of(t, srow[i], b) : 1.0f;
        for (; k + LT_VL <= be; k += LT_VL) {
            lt_vf v[LT_VL];
            for (int i = 0; i < LT_VL; i++) v[i] = i < nr ? v_mul(dec_vec(t, row[i], k0 + k), v_set1(s[i])) : v_zero();
            v_transpose(v);
            for (int i = 0; i < LT_VL; i++) v_store(Bp + (k + i) * LT_MR, v[i]);
        }
        for (; k < be; k++)
            for (int i = 0; i < LT_VL; i++) Bp[k * LT_MR + i] = i < nr ? dec_one(t, row[i], k0 + k) * s[i] : 0.0f;
    }
}

/* rows r..r+nr of W (nr a constant after inlining) into one group */
LT_INLINE void pack_group(lt_wtype t, const lt_weight *W, int64_t r, int nr, int64_t k0, int64_t kc, float *Bp) {
    const uint8_t *row[LT_VL], *srow[LT_VL];
    for (int i = 0; i < nr; i++) row[i] = w_row(t, W, r + i), srow[i] = scale_row(t, W, r + i);
    pack_rows(t, scale_block(t, W), row, srow, nr, k0, kc, Bp);
}

/* Bp[k][i] = W[r + i][k0 + k] for k < kc, i < LT_MR; rows past mr are 0 */
LT_INLINE void pack_panel(lt_wtype t, const lt_weight *W, int64_t r, int mr, int64_t k0, int64_t kc, float *Bp) {
    for (int g = 0; g < LT_MR_V; g++) {
        int nr = LT_MIN(LT_VL, mr - g * LT_VL);
        if (nr == LT_VL) pack_group(t, W, r + g * LT_VL, LT_VL, k0, kc, Bp + g * LT_VL);
        else if (nr > 0) pack_group(t, W, r + g * LT_VL, nr, k0, kc, Bp + g * LT_VL);
        else pack_group(t, W, r, 0, k0, kc, Bp + g * LT_VL);
    }
}

/* the same for mr f32 rows given by pointers (gathered cache rows) */
LT_INLINE void pack_panel_f32(const float *const *rows, int mr, int64_t k0, int64_t kc, float *Bp) {
    for (int g = 0; g < LT_MR_V; g++) {
        const uint8_t *row[LT_VL];
        int nr = LT_MIN(LT_VL, mr - g * LT_VL);
        for (int i = 0; i < nr; i++) row[i] = (const uint8_t *)(const void *)rows[g * LT_VL + i];
        if (nr == LT_VL) pack_rows(LT_W_F32, k0 + kc, row, NULL, LT_VL, k0, kc, Bp + g * LT_VL);
        else pack_rows(LT_W_F32, k0 + kc, row, NULL, LT_MAX(nr, 0), k0, kc, Bp + g * LT_VL);
    }
}

/* m valid lanes of y: all, none or the first m */
LT_INLINE lt_vf y_load(const float *y, int m) {
    return m >= LT_VL ? v_load(y) : m > 0 ? v_load_part(y, m) : v_zero();
}

LT_INLINE void y_store(float *y, lt_vf v, int m) {
    if (m >= LT_VL) v_store(y, v);
    else if (m > 0) v_store_part(y, v, m);
}

/* Y[i][0..mr) (+)= sum_k x[i][k] Bp[k][0..mr) for i < nt (a constant after
 * inlining): nt x LT_MR_V accumulators stay in registers for the whole kc. */
LT_INLINE void micro(int nt, const float *Bp, const float *x, int64_t ldx, int64_t kc, float *y, int64_t ldy,
                     int mr, int accumulate) {
    lt_vf acc[LT_NT_MAX][LT_MR_V];
#pragma GCC unroll 16
    for (int i = 0; i < nt; i++)
#pragma GCC unroll 4
        for (int j = 0; j < LT_MR_V; j++)
            acc[i][j] = accumulate ? y_load(y + i * ldy + j * LT_VL, mr - j * LT_VL) : v_zero();
    for (int64_t k = 0; k < kc; k++) {
        lt_vf b[LT_MR_V];
#pragma GCC unroll 4
        for (int j = 0; j < LT_MR_V; j++) b[j] = v_load(Bp + k * LT_MR + j * LT_VL);
#pragma GCC unroll 16
        for (int i = 0; i < nt; i++) {
            lt_vf xb = v_set1(x[i * ldx + k]);
#pragma GCC unroll 4
            for (int j = 0; j < LT_MR_V; j++) acc[i][j] = v_fma(xb, b[j], acc[i][j]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < nt; i++)
#pragma GCC unroll 4
        for (int j = 0; j < LT_MR_V; j++) y_store(y + i * ldy + j * LT_VL, acc[i][j], mr - j * LT_VL);
}

/* micro with nt in [1, LT_NT] turned into a constant */
static void micro_any(int nt, const float *Bp, const float *x, int64_t ldx, int64_t kc, float *y, int64_t ldy,
                      int mr, int accumulate) {
    switch (nt) {
#define LT_MICRO_CASE(c) \
    case c: if (c <= LT_NT) micro(c, Bp, x, ldx, kc, y, ldy, mr, accumulate); break;
    LT_MICRO_CASE(1) LT_MICRO_CASE(2) LT_MICRO_CASE(3) LT_MICRO_CASE(4) LT_MICRO_CASE(5) LT_MICRO_CASE(6)
    LT_MICRO_CASE(7) LT_MICRO_CASE(8) LT_MICRO_CASE(9) LT_MICRO_CASE(10) LT_MICRO_CASE(11) LT_MICRO_CASE(12)
#undef LT_MICRO_CASE
    }
}

/* Y rows r0..r1 for n > 1. Loop order: LT_KC columns, then LT_NC activation
 * rows (their slice stays in L2 and is quantised there when act_block is set),
 * then LT_MR-row panels, each decoded once into an L1 tile and swept by every
 * activation row of the slice. Partial sums live in Y between column chunks. */
LT_INLINE void matmul_panels(lt_wtype t, const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy,
                             int64_t r0, int64_t r1, int act_block) {
    float Bp[LT_KC * LT_MR] __attribute__((aligned(64)));
    float xq[act_block ? LT_NC * LT_KC : 1] __attribute__((aligned(64)));
    const int64_t cols = W->cols, step = act_block ? LT_KC - LT_KC % act_block : LT_KC;
    for (int64_t k0 = 0; k0 < cols; k0 += step) {
        int64_t kc = LT_MIN(step, cols - k0);
        for (int64_t t0 = 0; t0 < n; t0 += LT_NC) {
            int64_t nc = LT_MIN(LT_NC, n - t0), ldx = cols;
            const float *xs = X + t0 * cols + k0;
            if (act_block) {
                for (int64_t i = 0; i < nc; i++) quant_fp8(xs + i * cols, xq + i * LT_KC, kc, act_block);
                xs = xq;
                ldx = LT_KC;
            }
            for (int64_t r = r0; r < r1; r += LT_MR) {
                int mr = (int)LT_MIN(LT_MR, r1 - r);
                pack_panel(t, W, r, mr, k0, kc, Bp);
                for (int64_t i = 0; i < nc; i += LT_NT)
                    micro_any((int)LT_MIN(LT_NT, nc - i), Bp, xs + i * ldx, ldx, kc, Y + (t0 + i) * ldy + r, ldy,
                              mr, k0 > 0);
            }
        }
    }
}

/* ---- sparse attention over gathered rows (spec 3.6) --------------------- */

/* e^x within 2 ulp for x in [-87, 88] (clamped outside): Cephes expf */
LT_INLINE lt_vf v_exp(lt_vf x) {
    x = v_max(v_min(x, v_set1(88.0f)), v_set1(-87.0f));
    lt_vf n = v_round(v_mul(x, v_set1(1.44269504088896341f)));
    lt_vf r = v_fma(n, v_set1(-0.693359375f), x); /* ln 2 in two parts */
    r = v_fma(n, v_set1(2.12194440e-4f), r);
    lt_vf p = v_set1(1.9875691500e-4f);
    p = v_fma(p, r, v_set1(1.3981999507e-3f));
    p = v_fma(p, r, v_set1(8.3334519073e-3f));
    p = v_fma(p, r, v_set1(4.1665795894e-2f));
    p = v_fma(p, r, v_set1(1.6666665459e-1f));
    p = v_fma(p, r, v_set1(5.0000001201e-1f));
    p = v_fma(p, v_mul(r, r), v_add(r, v_set1(1.0f)));
    return v_mul(p, v_pow2(n));
}

/* one stored KV row (kvrow.h) into fp32 x[d]: vector decoders inside each
 * scale block, scalar ones for the block's ragged end */
LT_INLINE void kv_decode(const lt_kv_fmt *f, const uint8_t *row, float *x) {
    const uint8_t *sc = row + lt_kv_scale_offset(f);
    if (f->kind == LT_KV_FP8) {
        for (int64_t b = 0; b < f->w8; b += f->block) {
            int64_t e = LT_MIN(b + f->block, f->w8), i = b;
            float s = ue8m0(sc[b / f->block]);
            for (lt_vf vs = v_set1(s / LT_FP8_DEC); i + LT_VL <= e; i += LT_VL) v_store(x + i, v_mul(v_dec_fp8(row + i), vs));
            for (; i < e; i++) x[i] = lt_fp8_e4m3_to_f32(row[i]) * s;
        }
        const uint8_t *t = row + lt_kv_bf16_offset(f);
        int64_t i = f->w8;
        for (; i + LT_VL <= f->d; i += LT_VL) v_store(x + i, v_dec_bf16((const uint16_t *)(const void *)(t + 2 * (i - f->w8))));
        for (; i < f->d; i++) {
            uint16_t h;
            memcpy(&h, t + 2 * (i - f->w8), 2);
            x[i] = lt_bf16_to_f32(h);
        }
    } else if (f->block % LT_VL == 0) { /* FP4 with E4M3 scales */
        for (int64_t b = 0; b < f->d; b += f->block) {
            lt_vf vs = v_set1(lt_fp8_e4m3_to_f32(sc[b / f->block]) / LT_FP4_DEC);
            for (int64_t i = b; i < b + f->block; i += LT_VL) v_store(x + i, v_mul(v_dec_fp4(row + i / 2), vs));
        }
    } else {
        lt_kv_unpack(f, row, x);
    }
}

/* one block of attn_rows: its nb rows decoded (v[j]: F32 rows in place,
 * padding slots at zeros, others in the tile) and S[h][j] = scale q_h . v_j
 * (-inf for padding) for the nh heads at qh */
LT_INLINE void attn_block_scores(const float *qh, int64_t nh, const lt_kv_fmt *f, int64_t n_first,
                                 const uint8_t *const *rows, int64_t b, int nb, float scale, const float **v,
                                 float *tile, float *Bp, float *S) {
    static const float zeros[LT_ATTN_MAX_DIM];
    const int64_t d = f->d;
    for (int j = 0; j < nb; j++) {
        const uint8_t *r = rows[b + j];
        const lt_kv_fmt *fj = &f[b + j >= n_first];
        if (!r) v[j] = zeros;
        else if (fj->kind == LT_KV_F32) v[j] = (const float *)(const void *)r;
        else kv_decode(fj, r, tile + j * d), v[j] = tile + j * d;
    }
    for (int64_t k0 = 0; k0 < d; k0 += LT_KC) {
        int64_t kc = LT_MIN(LT_KC, d - k0);
        for (int j = 0; j < nb; j += LT_MR) {
            int mr = LT_MIN(LT_MR, nb - j);
            pack_panel_f32(v + j, mr, k0, kc, Bp);
            for (int64_t h = 0; h < nh; h += LT_NT)
                micro_any((int)LT_MIN(LT_NT, nh - h), Bp, qh + h * d + k0, d, kc, S + h * LT_ATTN_BLOCK + j,
                          LT_ATTN_BLOCK, mr, k0 > 0);
        }
    }
    for (int64_t h = 0; h < nh; h++)
        for (int j = 0; j < nb; j++) {
            float *sj = S + h * LT_ATTN_BLOCK + j;
            *sj = rows[b + j] ? *sj * scale : -INFINITY;
        }
}

/* p[j] = e^(p[j] - mx) * mul for j < nb, padding slots exactly 0 (v_exp
 * clamps its argument); returns the sum of the unscaled terms */
LT_INLINE float attn_block_exp(float *p, int nb, const uint8_t *const *rows, float mx, float mul) {
    int j = 0;
    lt_vf vm = v_set1(-mx), vmul = v_set1(mul), vsum = v_zero();
    for (; j + LT_VL <= nb; j += LT_VL) {
        lt_vf e = v_exp(v_add(v_load(p + j), vm));
        vsum = v_add(vsum, e);
        v_store(p + j, v_mul(e, vmul));
    }
    float sum = v_hsum(vsum);
    for (; j < nb; j++) {
        float e = expf(p[j] - mx);
        sum += e;
        p[j] = e * mul;
    }
    for (j = 0; j < nb; j++)
        if (!rows[j]) sum -= p[j] / mul, p[j] = 0.0f;
    return sum;
}

/* attn_rows (kernels.h), a block of LT_ATTN_BLOCK slots at a time: decoded
 * rows, then S = Q . tile^T and O += P . tile on the prefill panels (heads
 * as activation rows). REFERENCE runs the official online softmax in one
 * pass. EXACT takes two, like the softmax-then-P.V of the fp32 oracle: the
 * max (the sink included) and the sum first, then normalised P per block. */
static void attn_rows_simd(const float *q, const lt_kv_fmt *f, int64_t n_first, const uint8_t *const *rows,
                           int64_t n_rows, const float *sink, float scale, int ref, int64_t h0, int64_t h1, float *o) {
    enum { B = LT_ATTN_BLOCK };
    float tile[B * LT_ATTN_MAX_DIM] __attribute__((aligned(64)));
    float Bp[LT_KC * LT_MR] __attribute__((aligned(64)));
    float S[LT_ATTN_MAX_HEADS * B] __attribute__((aligned(64))), m[LT_ATTN_MAX_HEADS], mul[LT_ATTN_MAX_HEADS];
    double sum[LT_ATTN_MAX_HEADS];
    const float *v[B];
    const int64_t d = f->d, nh = h1 - h0;
    const float *qh = q + h0 * d;
    float *oh = o + h0 * d;
    memset(oh, 0, sizeof(float) * (size_t)(nh * d));
    if (n_rows == 0) return;
    for (int64_t h = 0; h < nh; h++) {
        m[h] = ref || !sink ? -INFINITY : sink[h0 + h];
        sum[h] = 0.0;
        mul[h] = 1.0f;
    }
    for (int64_t b = 0; b < n_rows && !ref; b += B) { /* EXACT pass 1: max and sum */
        int nb = (int)LT_MIN(B, n_rows - b);
        attn_block_scores(qh, nh, f, n_first, rows, b, nb, scale, v, tile, Bp, S);
        for (int64_t h = 0; h < nh; h++) {
            float *s = S + h * B, mx = m[h];
            for (int j = 0; j < nb; j++) mx = fmaxf(mx, s[j]);
            sum[h] = sum[h] * exp((double)m[h] - (double)mx) + attn_block_exp(s, nb, rows + b, mx, 1.0f);
            m[h] = mx;
        }
    }
    for (int64_t h = 0; h < nh && !ref; h++)
        mul[h] = (float)(1.0 / (sum[h] + (sink ? exp((double)sink[h0 + h] - (double)m[h]) : 0.0)));
    for (int64_t b = 0; b < n_rows; b += B) {
        int nb = (int)LT_MIN(B, n_rows - b);
        attn_block_scores(qh, nh, f, n_first, rows, b, nb, scale, v, tile, Bp, S);
        for (int64_t h = 0; h < nh; h++) {
            float *s = S + h * B;
            if (!ref) { /* EXACT pass 2: normalised P */
                attn_block_exp(s, nb, rows + b, m[h], mul[h]);
                continue;
            }
            float mx = m[h];
            for (int j = 0; j < nb; j++) mx = fmaxf(mx, s[j]);
            float r = expf(m[h] - mx), bsum = attn_block_exp(s, nb, rows + b, mx, 1.0f);
            for (int j = 0; j < nb; j++) s[j] = lt_round_bf16(s[j]);
            sum[h] = (double)((float)sum[h] * r + bsum); /* the kernel's fp32 running sum */
            m[h] = mx;
            if (r != 1.0f)
                for (int64_t c = 0; c < d; c++) oh[h * d + c] *= r;
        }
        for (int64_t c = 0; c < d; c += LT_MR) { /* O += P . tile: V rows as they lie */
            int mr = (int)LT_MIN(LT_MR, d - c);
            for (int j = 0; j < nb; j++)
                for (int g = 0; g < LT_MR_V; g++) v_store(Bp + j * LT_MR + g * LT_VL, y_load(v[j] + c + g * LT_VL, mr - g * LT_VL));
            for (int64_t h = 0; h < nh; h += LT_NT)
                micro_any((int)LT_MIN(LT_NT, nh - h), Bp, S + h * B, B, nb, oh + h * d + c, d, mr, 1);
        }
    }
    for (int64_t h = 0; h < nh && ref; h++) {
        float div = (float)sum[h] + (sink ? expf(sink[h0 + h] - m[h]) : 0.0f);
        for (int64_t c = 0; c < d; c++) oh[h * d + c] /= div;
    }
}

/* ---- lightning indexer scores (spec 4.3 step 16) ------------------------ */

/* score[j] = sum_h wt[h] ReLU(q_h . K[j]) for keys j in [j0, j1): the keys
 * are weight rows (F32 or FP4), the decoded query heads activation rows; each
 * panel's head x key tile goes straight into the ReLU-weighted sum. */
LT_INLINE void index_score_any(lt_wtype t, const lt_weight *K, const float *q, const float *wt, int bf16, int64_t nh,
                               int64_t j0, int64_t j1, float *score) {
    float Bp[LT_KC * LT_MR] __attribute__((aligned(64)));
    float S[LT_INDEX_MAX_HEADS * LT_MR] __attribute__((aligned(64))); /* [nh][LT_MR] */
    const int64_t d = K->cols;
    for (int64_t j = j0; j < j1; j += LT_MR) {
        int mr = (int)LT_MIN(LT_MR, j1 - j);
        for (int64_t k0 = 0; k0 < d; k0 += LT_KC) {
            int64_t kc = LT_MIN(LT_KC, d - k0);
            pack_panel(t, K, j, mr, k0, kc, Bp);
            for (int64_t h = 0; h < nh; h += LT_NT)
                micro_any((int)LT_MIN(LT_NT, nh - h), Bp, q + h * d + k0, d, kc, S + h * LT_MR, LT_MR, LT_MR, k0 > 0);
        }
        for (int g = 0; g < LT_MR_V; g++) {
            lt_vf acc = v_zero();
            for (int64_t h = 0; h < nh; h++) {
                lt_vf d = v_load(S + h * LT_MR + g * LT_VL);
                if (bf16) acc = v_add(acc, v_round_bf16(v_mul(v_max(v_round_bf16(d), v_zero()), v_set1(wt[h]))));
                else acc = v_fma(v_max(d, v_zero()), v_set1(wt[h]), acc);
            }
            y_store(score + j + g * LT_VL, bf16 ? v_round_bf16(acc) : acc, mr - g * LT_VL);
        }
    }
}

static void index_score_simd(const lt_weight *K, const lt_weight *Q, const float *wt, int bf16, int64_t j0,
                             int64_t j1, float *score) {
    float q[LT_INDEX_MAX_QUERY] __attribute__((aligned(64)));
    for (int64_t h = 0; h < Q->rows; h++) lt_weight_row(Q, h, q + h * Q->cols);
    if (K->type == LT_W_FP4) index_score_any(LT_W_FP4, K, q, wt, bf16, Q->rows, j0, j1, score);
    else index_score_any(LT_W_F32, K, q, wt, bf16, Q->rows, j0, j1, score);
}

/* ---- elementwise steps: RMSNorm, RoPE, SwiGLU, mHC (spec 3.1-3.3, 4.4) --- */

/* four vectors of squares per step, so each lane sums n / (4 LT_VL) terms */
static float rms_inv_simd(const float *x, int64_t n, float eps) {
    lt_vf acc[4] = {v_zero(), v_zero(), v_zero(), v_zero()};
    int64_t i = 0;
    for (; i + 4 * LT_VL <= n; i += 4 * LT_VL)
        for (int a = 0; a < 4; a++) {
            lt_vf v = v_load(x + i + a * LT_VL);
            acc[a] = v_fma(v, v, acc[a]);
        }
    for (; i < n; i += LT_VL) {
        lt_vf v = y_load(x + i, (int)LT_MIN(LT_VL, n - i));
        acc[0] = v_fma(v, v, acc[0]);
    }
    double ss = 0.0;
    for (int a = 0; a < 4; a++) ss += (double)v_hsum(acc[a]);
    return (float)(1.0 / sqrt(ss / (double)n + (double)eps));
}

/* m (<= LT_VL) weights from index i: F32 or BF16 as stored, 1 for no weight */
LT_INLINE lt_vf vec_load(const lt_vec *w, int64_t i, int m) {
    if (!w) return v_set1(1.0f);
    if (w->dtype == LT_DT_BF16) {
        const uint16_t *p = (const uint16_t *)w->data + i;
        if (m >= LT_VL) return v_dec_bf16(p);
        uint16_t t[LT_VL] = {0};
        memcpy(t, p, (size_t)m * sizeof *t);
        return v_dec_bf16(t);
    }
    return y_load((const float *)w->data + i, m);
}

static void rmsnorm_simd(float *y, const float *x, const lt_vec *w, int64_t n, float eps) {
    lt_vf r = v_set1(rms_inv_simd(x, n, eps));
    for (int64_t i = 0; i < n; i += LT_VL) {
        int m = (int)LT_MIN(LT_VL, n - i);
        y_store(y + i, v_mul(vec_load(w, i, m), v_mul(y_load(x + i, m), r)), m);
    }
}

/* LT_VL/2 pairs: x c + swap(x) (s sg), sg = -1 in even lanes, 1 in odd ones
 * (inverse: the opposite), so even lanes get a c - b s and odd a s + b c */
LT_INLINE void rope_step(float *x, const float *c, const float *s, lt_vf sg) {
    lt_vf v = v_load(x);
    v_store(x, v_add(v_mul(v, v_load_dup2(c)), v_mul(v_swap_pairs(v), v_mul(v_load_dup2(s), sg))));
}

static void rope_simd(float *x, const float *cs, int dim, int inverse) {
    enum { P = LT_VL / 2 }; /* pairs per vector */
    static const float sg[2][16] = {{-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1},
                                    {1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1}};
    _Static_assert(LT_VL <= 16, "sg holds 16 lanes");
    const int half = dim / 2;
    lt_vf vsg = v_load(sg[inverse != 0]);
    int i = 0;
    for (; i + P <= half; i += P) rope_step(x + 2 * i, cs + i, cs + half + i, vsg);
    if (i == half) return;
    float xt[LT_VL] = {0}, c[P] = {0}, s[P] = {0}; /* the ragged pairs, zero padded */
    memcpy(xt, x + 2 * i, sizeof(float) * (size_t)(2 * (half - i)));
    memcpy(c, cs + i, sizeof(float) * (size_t)(half - i));
    memcpy(s, cs + half + i, sizeof(float) * (size_t)(half - i));
    rope_step(xt, c, s, vsg);
    memcpy(x + 2 * i, xt, sizeof(float) * (size_t)(2 * (half - i)));
}

static void swiglu_simd(float *g, const float *u, const float *wt, int64_t n, int64_t I, float limit, int bf16) {
    const lt_vf one = v_set1(1.0f), neg = v_set1(-1.0f), hi = v_set1(limit), lo = v_set1(-limit);
    for (int64_t t = 0; t < n; t++) {
        lt_vf w = v_set1(wt ? wt[t] : 1.0f);
        for (int64_t i = 0; i < I; i += LT_VL) {
            int m = (int)LT_MIN(LT_VL, I - i);
            float *gi = g + t * I + i;
            lt_vf a = y_load(gi, m), b = y_load(u + t * I + i, m);
            if (limit > 0) {
                a = v_min(a, hi);
                b = v_max(v_min(b, hi), lo);
            }
            lt_vf y = v_mul(v_mul(v_div(a, v_add(one, v_exp(v_mul(a, neg)))), b), w);
            y_store(gi, bf16 ? v_round_bf16(y) : y, m);
        }
    }
}

static void mhc_collapse_simd(const float *X, const float *pre, int hc, int64_t D, float *x) {
    for (int64_t d = 0; d < D; d += LT_VL) {
        int m = (int)LT_MIN(LT_VL, D - d);
        lt_vf s = v_zero();
        for (int i = 0; i < hc; i++) s = v_add(s, v_mul(v_set1(pre[i]), y_load(X + i * D + d, m)));
        y_store(x + d, s, m);
    }
}

/* a column slice of every stream is read before any is written */
static void mhc_expand_simd(float *X, const float *out, const float *post, const float *comb, int hc, int64_t D) {
    lt_vf old[LT_MHC_MAX_HC];
    for (int64_t d = 0; d < D; d += LT_VL) {
        int m = (int)LT_MIN(LT_VL, D - d);
        for (int j = 0; j < hc; j++) old[j] = y_load(X + j * D + d, m);
        lt_vf o = y_load(out + d, m);
        for (int k = 0; k < hc; k++) {
            lt_vf s = v_mul(v_set1(post[k]), o);
            for (int j = 0; j < hc; j++) s = v_add(s, v_mul(v_set1(comb[j * hc + k]), old[j]));
            y_store(X + k * D + d, s, m);
        }
    }
}

/* ---- peak FMA probe ----------------------------------------------------- */

#define LT_PROBE_CHAINS 10 /* independent FMA chains: covers 2 units x 5 cycles of latency */

static double probe_fma_simd(int64_t iters) {
    lt_vf a[LT_PROBE_CHAINS], m = v_set1(0.9999f), c = v_set1(1e-4f);
    for (int i = 0; i < LT_PROBE_CHAINS; i++) a[i] = v_set1((float)i);
    for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < LT_PROBE_CHAINS; i++) a[i] = v_fma(a[i], m, c);
    }
    volatile float sink = 0.0f; /* keeps the chains alive */
    for (int i = 0; i < LT_PROBE_CHAINS; i++) sink += v_hsum(a[i]);
    (void)sink;
    return 2.0 * LT_VL * LT_PROBE_CHAINS * (double)iters;
}

/* ---- table entries ------------------------------------------------------- */

LT_INLINE void matmul_any(lt_wtype t, const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy,
                          int64_t r0, int64_t r1, int act_block) {
    if (n == 1) matvec(t, W, X, Y, r0, r1, act_block);
    else if (n <= LT_MT) matvec_multi(t, W, X, n, Y, ldy, r0, r1, act_block);
    else matmul_panels(t, W, X, n, Y, ldy, r0, r1, act_block);
}

#define LT_DEFINE_MATMUL(fmt, type)                                                                    \
    static void matmul_##fmt##_simd(const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy, \
                                    int64_t r0, int64_t r1) {                                          \
        matmul_any(type, W, X, n, Y, ldy, r0, r1, 0);                                                  \
    }                                                                                                  \
    static void matmul_actq_##fmt##_simd(const lt_weight *W, const float *X, int64_t n, float *Y,      \
                                         int64_t ldy, int64_t r0, int64_t r1, int act_block) {         \
        matmul_any(type, W, X, n, Y, ldy, r0, r1, act_block);                                          \
    }
LT_DEFINE_MATMUL(f32, LT_W_F32)
LT_DEFINE_MATMUL(bf16, LT_W_BF16)
LT_DEFINE_MATMUL(fp8, LT_W_FP8)
LT_DEFINE_MATMUL(fp4, LT_W_FP4)
#undef LT_DEFINE_MATMUL

/* the entries every SIMD table shares, for its initializer (each adds its
 * index_score) */
#define LT_SIMD_ENTRIES                                                                          \
    .matmul = {[LT_W_F32] = matmul_f32_simd, [LT_W_BF16] = matmul_bf16_simd,                            \
               [LT_W_FP8] = matmul_fp8_simd, [LT_W_FP4] = matmul_fp4_simd},                             \
    .matmul_actq = {[LT_W_F32] = matmul_actq_f32_simd, [LT_W_BF16] = matmul_actq_bf16_simd,             \
                    [LT_W_FP8] = matmul_actq_fp8_simd, [LT_W_FP4] = matmul_actq_fp4_simd},              \
    .fake_quant_fp8 = fake_quant_fp8_simd,                                                              \
    .attn_rows = attn_rows_simd,                                                                        \
    .rms_inv = rms_inv_simd,                                                                            \
    .rmsnorm = rmsnorm_simd,                                                                            \
    .rope = rope_simd,                                                                                  \
    .swiglu = swiglu_simd,                                                                              \
    .mhc_collapse = mhc_collapse_simd,                                                                  \
    .mhc_expand = mhc_expand_simd,                                                                      \
    .probe_fma = probe_fma_simd

#endif
