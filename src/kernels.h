/* The kernel dispatch table: the one place where an ISA is chosen.
 *
 * Model code calls lt_kern()->op(...) (usually through lt_linear) and never
 * contains ISA conditionals. Each table is complete: an ISA file may fill an
 * entry with the scalar reference where it has nothing faster. The table is
 * chosen once from CPUID (lt_kernels_init), or forced by name.
 *
 * Tables: "ref" (kernels_ref.c, the definition every other table is tested
 * against), "avx2" (AVX2+FMA+F16C), "avx512" (F/BW/VL/DQ), "avx512-vnni"
 * (the same plus int8 dot products for the indexer), "avx512-bf16" (that
 * table with FP8 decode products on bf16 dot products), "avx512-amx" (that
 * table with the indexer, REFERENCE attention and prefill on AMX tiles),
 * "neon" (AArch64).
 * The SIMD tables share their loops (kernels_simd.h); see that header for
 * what they compute differently from ref (summation order, NaN weight codes). */
#ifndef LT_KERNELS_H
#define LT_KERNELS_H

#include "kvrow.h"
#include "ops.h"
#include "weights.h"

/* Largest activation quantisation block of matmul_actq / fake_quant_fp8. */
#define LT_ACTQ_MAX_BLOCK 256
/* Largest index query of index_score: heads, and heads x dim. */
#define LT_INDEX_MAX_HEADS 128
#define LT_INDEX_MAX_QUERY 16384
/* attn_rows: slots per online-softmax block (sparse_attn's `block`), most
 * heads per call and widest row. */
#define LT_ATTN_BLOCK 64
#define LT_ATTN_MAX_HEADS 128
#define LT_ATTN_MAX_DIM 1024
/* mhc_collapse / mhc_expand: most streams (the config's hc_mult bound). */
#define LT_MHC_MAX_HC 64

typedef struct {
    const char *name;  /* "ref", "avx2", "avx512", "neon" */
    /* Y[t*ldy + r] = sum_c W[r][c] * X[t*cols + c] for t < n and r in [r0, r1):
     * the rows r0..r1 of the product of n activation rows with Wᵀ, with the
     * weight decoded on the fly (never a dequantised copy). */
    void (*matmul[LT_W_COUNT])(const lt_weight *W, const float *X, int64_t n,
                               float *Y, int64_t ldy, int64_t r0, int64_t r1);
    /* The same product on activations quantised like the reference linear()
     * (spec 3.4): each row of X is cut into blocks of act_block values along
     * cols (act_block in [1, LT_ACTQ_MAX_BLOCK]) and every block is replaced by
     * its FP8 e4m3 round trip with a power-of-two scale, exactly as
     * fake_quant_fp8 does. X is not modified; the quantisation is fused into
     * the product (done per L1 chunk) and allocates nothing. For one row
     * (n = 1) and act_block dividing 4096 every table computes exactly
     * matmul on the fake_quant_fp8'd row (same blocks, same chunks). */
    void (*matmul_actq[LT_W_COUNT])(const lt_weight *W, const float *X, int64_t n,
                                    float *Y, int64_t ldy, int64_t r0, int64_t r1, int act_block);
    /* In place FP8 e4m3 round trip of x[0..n) in blocks of `block` (spec 3.4):
     * amax = max(|x|, 1e-4), s = 2^ceil(log2(amax/448)), x = e4m3(x/s)*s.
     * The reference entry is lt_fake_quant_fp8 (quant.c). */
    void (*fake_quant_fp8)(float *x, int64_t n, int block);
    /* Sparse attention of one query over gathered KV rows (spec 3.6), all
     * heads sharing them (K = V, V4's single KV head): heads [h0, h1) of
     * q [.][d] into o [.][d] (d = f->d, h1 - h0 <= LT_ATTN_MAX_HEADS,
     * d <= LT_ATTN_MAX_DIM). rows[j] is a stored row (kvrow.h) of format
     * f[0] for j < n_first (the window), else f[1] (same d); NULL is a
     * padding slot (score -inf). The rows are walked in blocks of
     * LT_ATTN_BLOCK slots with the online softmax of the official sparse_attn
     * kernel; per block, for each head:
     *   s_j = scale q . v_j, m' = max(m, s), r = e^(m - m'), p_j = e^(s_j - m'),
     *   sum = sum r + sum_j p_j, o = o r + sum_j P_j v_j,
     * and at the end o /= sum + e^(sink - m). ref (REFERENCE numerics): m
     * starts at -inf and P = bf16(p) (the kernel's cast before P.V);
     * otherwise m starts at the sink and P = p. sink NULL: no sink term.
     * No rows: o = 0. */
    void (*attn_rows)(const float *q, const lt_kv_fmt *f, int64_t n_first, const uint8_t *const *rows, int64_t n_rows,
                      const float *sink, float scale, int ref, int64_t h0, int64_t h1, float *o);
    /* Lightning-indexer scores (spec 4.3 step 16) of keys j in [j0, j1):
     *   score[j] = sum_{h < Q->rows} wt[h] ReLU(Q[h] . K[j]),
     * with bf16 (reference numerics: the official bf16 einsum) each dot, each
     * head's term and the sum rounded to bf16, the sum itself in fp32;
     * K [n_keys, d] and Q [heads, d] F32 (exact numerics) or FP4 with per-32
     * scales (reference numerics: the FP4 round trips of index keys and
     * queries, spec 3.5, stored at 68 bytes per 128-wide row); heads <=
     * LT_INDEX_MAX_HEADS and heads * d <= LT_INDEX_MAX_QUERY. FP4 x FP4 runs as int8 dot products where the CPU
     * has them, bit-identical to ref (block sums are exact integers). */
    void (*index_score)(const lt_weight *K, const lt_weight *Q, const float *wt, int bf16, int64_t j0, int64_t j1,
                        float *score);
    /* The RMS factor 1/sqrt(mean(x^2) + eps) of x[0..n) (RMSNorm, and the
     * mHC projections' normalisation, spec 3.3). ref sums the squares in
     * double (the oracle's fp32 order is not ours; double keeps our side well
     * inside its error); SIMD in fp32 vector lanes, their totals in double:
     * within 1e-6 relative of ref. */
    float (*rms_inv)(const float *x, int64_t n, float eps);
    /* RMSNorm (spec 3.1): y[i] = w[i] * (x[i] * rms_inv(x, n, eps)); w is an
     * F32 or BF16 vector read in its stored dtype, NULL for no weight. y may
     * be x. Given the same factor, every table is bit-identical. */
    void (*rmsnorm)(float *y, const float *x, const lt_vec *w, int64_t n, float eps);
    /* RoPE (spec 3.2) in place on x[0..dim), dim even: pair i (x[2i],
     * x[2i+1]) = (a, b) becomes (a c - b s, a s + b c) with c = cs[i],
     * s = cs[dim/2 + i] (inverse: s negated); unfused, bit-identical in
     * every table. */
    void (*rope)(float *x, const float *cs, int dim, int inverse);
    /* The experts' clamped SwiGLU (spec 4.4) in place on g[n][I]:
     *   g = silu(min(g, L)) * clamp(u, -L, L) * wt[t], silu(z) = z / (1 + e^-z),
     * no clamp for L <= 0, wt NULL for weight 1, then with bf16 each result
     * rounded to bf16 (the reference's cast before w2). SIMD uses the
     * polynomial exp (kernels_simd.h): within 8 ulp of ref before the bf16
     * rounding, so a value at a bf16 tie may round one bf16 ulp apart. */
    void (*swiglu)(float *g, const float *u, const float *wt, int64_t n, int64_t I, float limit, int bf16);
    /* mHC collapse (spec 3.3): x[d] = sum_i pre[i] X[i][d] of one token's
     * streams X[hc][D], hc <= LT_MHC_MAX_HC, summed in i order from 0,
     * unfused: bit-identical in every table. */
    void (*mhc_collapse)(const float *X, const float *pre, int hc, int64_t D, float *x);
    /* mHC expand (spec 3.3), in place on X[hc][D]:
     *   X[k][d] <- post[k] out[d] + sum_j comb[j][k] X[j][d]
     * with the old X on the right (the sum runs over comb's first index, in
     * j order), unfused: bit-identical in every table. */
    void (*mhc_expand)(float *X, const float *out, const float *post, const float *comb, int hc, int64_t D);
    /* Peak-FMA probe for lantern bench: `iters` rounds of fused multiply-adds
     * on independent register-only chains at this table's vector width.
     * Returns the floating-point operations done (2 per lane per FMA). */
    double (*probe_fma)(int64_t iters);
} lt_kernels;

extern const lt_kernels lt_kernels_ref;
#if defined(__x86_64__)
extern const lt_kernels lt_kernels_avx2, lt_kernels_avx512, lt_kernels_avx512_vnni;
/* Filled in by lt_kernels_bf16_init (kernels_avx512.c); call it only where
 * CPUID reports AVX512-BF16 besides the avx512-vnni table's needs. */
extern lt_kernels lt_kernels_avx512_bf16;
void lt_kernels_bf16_init(void);
/* Filled in by lt_kernels_amx_init (kernels_amx.c), which returns 0 where the
 * CPU or OS cannot run AMX tiles (then the table holds only its name). */
extern lt_kernels lt_kernels_avx512_amx;
int lt_kernels_amx_init(void);
#elif defined(__aarch64__)
extern const lt_kernels lt_kernels_neon;
#endif

#if defined(__x86_64__)
/* attn_rows on AMX-BF16 tiles for REFERENCE numerics (kernels_avx512.c; the
 * fp32 path otherwise). Only for a thread allowed the tile state, on a CPU
 * with AMX-TILE, AMX-BF16 and AVX512-BF16. */
void lt_attn_rows_amx(const float *q, const lt_kv_fmt *f, int64_t n_first, const uint8_t *const *rows,
                      int64_t n_rows, const float *sink, float scale, int ref, int64_t h0, int64_t h1, float *o);
/* matmul_actq of FP8 / FP4 weights on AMX-BF16 tiles for prefill (the same
 * conditions). */
void lt_matmul_actq_fp8_amx(const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy, int64_t r0,
                            int64_t r1, int act_block);
void lt_matmul_actq_fp4_amx(const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy, int64_t r0,
                            int64_t r1, int act_block);
/* matmul of FP8 weights, the same; rows of bf16 values on the tiles */
void lt_matmul_fp8_amx(const lt_weight *W, const float *X, int64_t n, float *Y, int64_t ldy, int64_t r0, int64_t r1);
#endif

/* Chooses the best table the CPU supports; name (or NULL) forces one. Returns
 * 0 if the named table is unknown or unsupported here. */
int lt_kernels_init(const char *name);
const lt_kernels *lt_kern(void);

/* The names of the tables this CPU can run, best first, NULL-terminated. */
const char *const *lt_kernels_available(void);

#endif
