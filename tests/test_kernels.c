/* Every SIMD kernel table against the scalar reference (style item 5): random
 * shapes with ragged tails, FP8 blocks of 128 and 32, n = 1 (matrix-vector)
 * and n > 1 (packed panels, including more than one activation slice), row
 * sub-ranges, and the fused FP8 activation quantisation.
 *
 * Tolerances: the SIMD tables sum in vector lanes with fused multiply-adds
 * and apply block scales per weight in prefill, so a product may differ from
 * ref by rounding only: |simd - ref| <= 1e-5 * sum_c |w_rc x_c| (a K = 400
 * fp32 dot has a typical relative error near 1e-6). Single products (one-hot
 * activations) and the activation quantiser itself must be bit-identical.
 * The elementwise kernels (RMSNorm, RoPE, SwiGLU, mHC collapse and expand)
 * state their tolerances at their tests. */
#include "kernels.h"
#include "util.h"
#include "linear.h"
#include "quant.h"
#include "test.h"
#include "threads.h"
#include "weights.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SENTINEL 7.0f
#define MAX_TABLES 8 /* SIMD tables a build can hold */

typedef struct { uint64_t s; } rng;

static uint64_t rnext(rng *g) { /* splitmix64 */
    uint64_t z = (g->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float runif(rng *g) { return (float)(rnext(g) >> 40) * 0x1p-23f - 1.0f; } /* [-1, 1) */

/* a random weight of one format, owning its bytes */
typedef struct {
    lt_weight w;
    uint8_t *data, *scale;
} test_weight;

static int64_t n_scales(const lt_weight *w) {
    if (w->type == LT_W_FP8) return ((w->rows + w->block_r - 1) / w->block_r) * ((w->cols + w->block_c - 1) / w->block_c);
    if (w->type == LT_W_FP4) return w->rows * (w->cols / 32);
    return 0;
}

static int64_t data_bytes(const lt_weight *w) {
    static const int num[LT_W_COUNT] = {[LT_W_F32] = 8, [LT_W_BF16] = 4, [LT_W_FP8] = 2, [LT_W_FP4] = 1};
    return w->rows * w->cols * num[w->type] / 2;
}

static test_weight make_weight(rng *g, lt_wtype t, int64_t rows, int64_t cols, int block_r, int block_c) {
    test_weight tw = {.w = {.type = t, .rows = rows, .cols = cols, .block_r = block_r, .block_c = block_c,
                            .name = "test"}};
    int64_t nb = data_bytes(&tw.w), ns = n_scales(&tw.w);
    tw.data = malloc((size_t)nb);
    tw.scale = ns ? malloc((size_t)ns) : NULL;
    if (t == LT_W_F32)
        for (int64_t i = 0; i < rows * cols; i++) ((float *)(void *)tw.data)[i] = runif(g);
    else if (t == LT_W_BF16)
        for (int64_t i = 0; i < rows * cols; i++) ((uint16_t *)(void *)tw.data)[i] = lt_f32_to_bf16(runif(g));
    else
        for (int64_t i = 0; i < nb; i++) {
            uint8_t b = (uint8_t)rnext(g);
            if (t == LT_W_FP8 && (b & 0x7F) == 0x7F) b ^= 1; /* no NaN codes (see kernels_simd.h) */
            tw.data[i] = b;
        }
    for (int64_t i = 0; i < ns; i++) tw.scale[i] = (uint8_t)(118 + rnext(g) % 14); /* 2^-9 .. 2^4 */
    tw.w.data = tw.data;
    tw.w.scale = tw.scale;
    return tw;
}

static void free_weight(test_weight *tw) {
    free(tw->data);
    free(tw->scale);
}

static const char *type_name(lt_wtype t) {
    static const char *names[LT_W_COUNT] = {"f32", "bf16", "fp8", "fp4"};
    return names[t];
}

/* Every table in tables[] against ref on rows r0..r1 of X[n, cols] Wᵀ, with
 * the activations FP8-quantised in blocks of act_block when it is not 0. The
 * expectation is ref's plain product on a quantised copy of X, which equals
 * ref's matmul_actq bit for bit (ref_actq_is_quantised_product) and is much
 * cheaper. Returns 0 on a mismatch. */
/* edit == NULL: the tables run matmul_actq (matmul when act_block is 0)
 * on X; otherwise they get the quantised rows, each passed through edit,
 * and the plain product (a decode's path) */
typedef void (*x_edit)(float *x, int64_t cols);

static int check_matmul_x(const lt_kernels **tables, int n_tables, const lt_weight *W, rng *g, int64_t n, int64_t r0,
                          int64_t r1, int act_block, x_edit edit) {
    int64_t cols = W->cols, ldy = W->rows + 3;
    float *X = malloc(sizeof(float) * (size_t)(n * cols)), *Xq = malloc(sizeof(float) * (size_t)(n * cols));
    float *row = malloc(sizeof(float) * (size_t)cols), *bound = malloc(sizeof(float) * (size_t)(n * ldy));
    float *Yr = malloc(sizeof(float) * (size_t)(n * ldy)), *Ys = malloc(sizeof(float) * (size_t)(n * ldy));
    float mag = act_block ? 40.0f : 1.0f; /* push activations through several quantisation scales */
    for (int64_t i = 0; i < n * cols; i++) X[i] = Xq[i] = runif(g) * mag * (rnext(g) % 8 == 0 ? 0.01f : 1.0f);
    if (act_block)
        for (int64_t t = 0; t < n; t++) lt_fake_quant_fp8(Xq + t * cols, cols, act_block);
    if (edit) {
        for (int64_t t = 0; t < n; t++) edit(Xq + t * cols, cols);
        memcpy(X, Xq, sizeof(float) * (size_t)(n * cols));
        act_block = 0;
    }
    for (int64_t i = 0; i < n * ldy; i++) Yr[i] = SENTINEL;
    lt_kernels_ref.matmul[W->type](W, Xq, n, Yr, ldy, r0, r1);
    for (int64_t r = r0; r < r1; r++) { /* sum |w x| */
        lt_weight_row(W, r, row);
        for (int64_t t = 0; t < n; t++) {
            double b = 0.0;
            for (int64_t c = 0; c < cols; c++) b += fabs((double)row[c] * Xq[t * cols + c]);
            bound[t * ldy + r] = (float)(1e-5 * b);
        }
    }
    int ok = 1;
    for (int ti = 0; ti < n_tables && ok; ti++) {
        const lt_kernels *k = tables[ti];
        for (int64_t i = 0; i < n * ldy; i++) Ys[i] = SENTINEL;
        if (act_block) k->matmul_actq[W->type](W, X, n, Ys, ldy, r0, r1, act_block);
        else k->matmul[W->type](W, X, n, Ys, ldy, r0, r1);
        for (int64_t t = 0; t < n && ok; t++)
            for (int64_t r = 0; r < ldy && ok; r++) {
                float ref = Yr[t * ldy + r], got = Ys[t * ldy + r];
                if (r < r0 || r >= r1) {
                    ok = got == SENTINEL;
                    CHECKF(ok, "%s %s: wrote outside rows [%lld, %lld): Y[%lld][%lld] = %g", k->name,
                           type_name(W->type), (long long)r0, (long long)r1, (long long)t, (long long)r, got);
                    continue;
                }
                ok = fabsf(got - ref) <= bound[t * ldy + r] + 1e-30f;
                CHECKF(ok, "%s %s [%lld x %lld] block %d/%d n=%lld act_block=%d: Y[%lld][%lld] = %.9g, ref %.9g "
                       "(bound %g)", k->name, type_name(W->type), (long long)W->rows, (long long)cols, W->block_r,
                       W->block_c, (long long)n, act_block, (long long)t, (long long)r, got, ref,
                       bound[t * ldy + r]);
            }
    }
    free(X);
    free(Xq);
    free(row);
    free(bound);
    free(Yr);
    free(Ys);
    return ok;
}

static int check_matmul(const lt_kernels **tables, int n_tables, const lt_weight *W, rng *g, int64_t n, int64_t r0,
                        int64_t r1, int act_block) {
    return check_matmul_x(tables, n_tables, W, g, n, r0, r1, act_block, NULL);
}

/* the SIMD tables this machine can run (ref excluded) */
static int simd_tables(const lt_kernels **out) {
    static const lt_kernels *all[] = {
#if defined(__x86_64__)
        &lt_kernels_avx512_amx, &lt_kernels_avx512_bf16, &lt_kernels_avx512_vnni, &lt_kernels_avx512, &lt_kernels_avx2,
#elif defined(__aarch64__)
        &lt_kernels_neon,
#endif
    };
    int n = 0;
    for (const char *const *name = lt_kernels_available(); *name; name++)
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if (!strcmp(*name, all[i]->name)) out[n++] = all[i];
    return n;
}

static const struct {
    lt_wtype t;
    int64_t rows, cols;
    int block_r, block_c;
} shapes[] = {
    {LT_W_FP8, 70, 200, 128, 128}, /* ragged last block (72 columns) */
    {LT_W_FP8, 33, 384, 128, 128},
    {LT_W_FP8, 5, 257, 128, 128},  /* a 1-column block */
    {LT_W_FP8, 45, 100, 32, 32},
    {LT_W_FP8, 131, 64, 32, 32},   /* rows span several row blocks and a partial panel */
    {LT_W_FP4, 70, 96, 1, 32},
    {LT_W_FP4, 37, 320, 1, 32},
    {LT_W_FP4, 3, 32, 1, 32},
    {LT_W_BF16, 41, 77, 0, 0},
    {LT_W_BF16, 64, 256, 0, 0},
    {LT_W_F32, 19, 45, 0, 0},
    {LT_W_F32, 66, 300, 0, 0},
    {LT_W_FP8, 5, 4500, 128, 128}, /* more than one activation chunk of the matrix-vector product */
    {LT_W_FP4, 3, 4608, 1, 32},
};

LT_TEST(kernels, matmul_vs_ref) {
    const lt_kernels *tables[MAX_TABLES];
    int nt = simd_tables(tables);
    rng g = {1};
    static const int64_t batch[] = {1, 2, 7, 13};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        test_weight tw = make_weight(&g, shapes[s].t, shapes[s].rows, shapes[s].cols, shapes[s].block_r,
                                     shapes[s].block_c);
        int ok = 1;
        for (size_t b = 0; b < sizeof batch / sizeof batch[0] && ok; b++)
            ok = check_matmul(tables, nt, &tw.w, &g, batch[b], 0, tw.w.rows, 0);
        if (ok && s % 4 == 0) /* more than one activation slice of 128 */
            ok = check_matmul(tables, nt, &tw.w, &g, 131, 0, tw.w.rows, 0);
        if (ok && tw.w.rows > 5) { /* a row sub-range, both paths */
            ok = check_matmul(tables, nt, &tw.w, &g, 1, 3, tw.w.rows - 2, 0);
            if (ok) check_matmul(tables, nt, &tw.w, &g, 9, 3, tw.w.rows - 2, 0);
        }
        free_weight(&tw);
    }
}

LT_TEST(kernels, matmul_actq_vs_ref) {
    const lt_kernels *tables[MAX_TABLES];
    int nt = simd_tables(tables);
    rng g = {2};
    static const int act_blocks[] = {128, 32};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        test_weight tw = make_weight(&g, shapes[s].t, shapes[s].rows, shapes[s].cols, shapes[s].block_r,
                                     shapes[s].block_c);
        int ok = 1;
        for (size_t a = 0; a < sizeof act_blocks / sizeof act_blocks[0] && ok; a++) {
            ok = check_matmul(tables, nt, &tw.w, &g, 1, 0, tw.w.rows, act_blocks[a]);
            if (ok) ok = check_matmul(tables, nt, &tw.w, &g, 13, 0, tw.w.rows, act_blocks[a]);
        }
        if (ok) ok = check_matmul(tables, nt, &tw.w, &g, 5, 0, tw.w.rows, 48); /* blocks across panels */
        if (ok && s % 4 == 1) check_matmul(tables, nt, &tw.w, &g, 131, 0, tw.w.rows, 128);
        free_weight(&tw);
    }
    /* FP4 scales 2^-127 (the subnormal code 0) and 2^-126: the AMX table's
     * direct tile decode takes 2..252 only and must hand these back */
    test_weight tw = make_weight(&g, LT_W_FP4, 40, 256, 1, 32);
    tw.scale[3] = 1, tw.scale[17] = 0;
    check_matmul(tables, nt, &tw.w, &g, 13, 0, tw.w.rows, 128);
    free_weight(&tw);
}

/* FP4 and FP8 products of 3..128 tokens (the AMX table's A-tile path:
 * passes of 32 tokens, 16-row groups in pairs, 4-step column phases) on
 * ragged rows, a phase tail, FP8 blocks of 128 and 32 (rows across row
 * blocks), scales out of the tiles' range and columns past their limit */
LT_TEST(kernels, matmul_actq_few_tokens) {
    const lt_kernels *tables[MAX_TABLES];
    int nt = simd_tables(tables);
    rng g = {6};
    static const struct {
        lt_wtype t;
        int64_t rows, cols;
        int block;
    } shape[] = {{LT_W_FP4, 45, 160, 32},  {LT_W_FP4, 17, 96, 32},   {LT_W_FP4, 33, 4096, 32}, {LT_W_FP4, 3, 8224, 32},
                 {LT_W_FP8, 45, 160, 128}, {LT_W_FP8, 131, 96, 32}, {LT_W_FP8, 33, 4096, 128}};
    static const int64_t tokens[] = {3, 16, 17, 32, 33, 64, 70, 128};
    for (size_t s = 0; s < sizeof shape / sizeof shape[0]; s++) {
        int br = shape[s].t == LT_W_FP4 ? 1 : shape[s].block;
        test_weight tw = make_weight(&g, shape[s].t, shape[s].rows, shape[s].cols, br, shape[s].block);
        int ok = 1;
        for (size_t t = 0; t < sizeof tokens / sizeof tokens[0] && ok; t++)
            ok = check_matmul(tables, nt, &tw.w, &g, tokens[t], 0, tw.w.rows, t % 2 ? 32 : 128);
        if (ok) ok = check_matmul(tables, nt, &tw.w, &g, 20, 1, tw.w.rows - 1, 128); /* a row sub-range */
        if (ok && s % 4 == 0) { /* scales the tiles cannot take (FP4 2^-127 and 2^-126, FP8 under 2^-117): the vector path */
            tw.scale[0] = 0, tw.scale[1] = shape[s].t == LT_W_FP4 ? 1 : 9;
            check_matmul(tables, nt, &tw.w, &g, 5, 0, tw.w.rows, 128);
        }
        free_weight(&tw);
    }
}

/* edits of activation rows: bf16 values (wo_a's input in REFERENCE
 * numerics), and bf16 values but one far off the grid */
static void bf16_values(float *x, int64_t cols) {
    for (int64_t c = 0; c < cols; c++) x[c] = lt_bf16_to_f32(lt_f32_to_bf16(x[c]));
}
static void one_off_bf16(float *x, int64_t cols) {
    bf16_values(x, cols);
    x[cols / 3] = 100.0f + 0x1p-6f;
}

/* FP8 products of more than LT_MT rows without quantisation: rows of bf16
 * values run on the AMX table's panel tiles (exact products), across token
 * chunks, on ragged rows, blocks of 128 and 32, a row sub-range; a row with
 * one value off the bf16 grid must take the vector path */
LT_TEST(kernels, matmul_fp8_bf16_rows) {
    const lt_kernels *tables[MAX_TABLES];
    int nt = simd_tables(tables);
    rng g = {9};
    static const struct { int64_t rows, cols; int block; } shape[] = {{70, 384, 128}, {45, 96, 32}, {33, 4096, 128}};
    static const int64_t tokens[] = {9, 40, 300};
    for (size_t s = 0; s < sizeof shape / sizeof shape[0]; s++) {
        test_weight tw = make_weight(&g, LT_W_FP8, shape[s].rows, shape[s].cols, shape[s].block, shape[s].block);
        int ok = 1;
        for (size_t t = 0; t < sizeof tokens / sizeof tokens[0] && ok; t++)
            if (tokens[t] * shape[s].cols <= 300 * 384)
                ok = check_matmul_x(tables, nt, &tw.w, &g, tokens[t], 0, tw.w.rows, 0, bf16_values);
        if (ok) ok = check_matmul_x(tables, nt, &tw.w, &g, 20, 3, tw.w.rows - 1, 0, bf16_values);
        if (ok) check_matmul_x(tables, nt, &tw.w, &g, 20, 0, tw.w.rows, 0, one_off_bf16);
        free_weight(&tw);
    }
}

/* edits of a quantised row for matmul_fp8_decode_rows */
static void keep_row(float *x, int64_t cols) { (void)x, (void)cols; }
static void inexact_values(float *x, int64_t cols) {
    for (int64_t c = 0; c < cols; c += 3) x[c] = nextafterf(x[c], 100.0f) * 1.001f; /* off the bf16 grid */
}
static void tiny_value(float *x, int64_t cols) { x[cols / 2] = 0x1p-90f; }
static void zero_row(float *x, int64_t cols) { memset(x, 0, sizeof(float) * (size_t)cols); }

/* FP8 decode products on FP8-quantised rows (the bf16 dot products):
 * groups of normal codes and groups holding subnormal codes (the f16
 * decode), blocks of 128 and 64 columns, rows across row blocks, a row
 * sub-range, columns past the limit, and rows the path must refuse (values
 * that are not bf16 values, a range over 2^76, all zeros) */
LT_TEST(kernels, matmul_fp8_decode_rows) {
    const lt_kernels *tables[MAX_TABLES];
    int nt = simd_tables(tables);
    rng g = {8};
    static const struct { int64_t rows, cols; int block_r, block_c; } shape[] = {
        {70, 4096, 128, 128}, {131, 192, 32, 64}, {9, 320, 128, 128}, {33, 16384, 128, 128}, {5, 16448, 128, 128}};
    for (size_t s = 0; s < sizeof shape / sizeof shape[0]; s++) {
        test_weight tw = make_weight(&g, LT_W_FP8, shape[s].rows, shape[s].cols, shape[s].block_r, shape[s].block_c);
        int ok = check_matmul_x(tables, nt, &tw.w, &g, 1, 0, tw.w.rows, 128, keep_row); /* ~5 in 6 groups subnormal */
        for (int64_t i = 0; i < tw.w.rows * tw.w.cols && s < 2; i++)
            if (!(tw.data[i] & 0x78)) tw.data[i] |= 0x08; /* normal codes only: every group on the dot products */
        if (ok) ok = check_matmul_x(tables, nt, &tw.w, &g, 1, 0, tw.w.rows, 32, keep_row);
        if (ok) ok = check_matmul_x(tables, nt, &tw.w, &g, 1, 3, tw.w.rows - 2, 128, keep_row);
        free_weight(&tw);
    }
    static const x_edit refused[] = {inexact_values, tiny_value, zero_row};
    test_weight tw = make_weight(&g, LT_W_FP8, 40, 512, 128, 128);
    for (size_t v = 0; v < sizeof refused / sizeof refused[0]; v++)
        check_matmul_x(tables, nt, &tw.w, &g, 1, 0, tw.w.rows, 128, refused[v]);
    free_weight(&tw);
}

/* ref's fused quantisation is the plain product on lt_fake_quant_fp8'd rows */
LT_TEST(kernels, ref_actq_is_quantised_product) {
    rng g = {5};
    enum { N = 3 };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        test_weight tw = make_weight(&g, shapes[s].t, shapes[s].rows, shapes[s].cols, shapes[s].block_r,
                                     shapes[s].block_c);
        int64_t cols = tw.w.cols, rows = tw.w.rows;
        float *X = malloc(sizeof(float) * (size_t)(N * cols)), *Xq = malloc(sizeof(float) * (size_t)(N * cols));
        float *Ya = malloc(sizeof(float) * (size_t)(N * rows)), *Yb = malloc(sizeof(float) * (size_t)(N * rows));
        for (int64_t i = 0; i < N * cols; i++) X[i] = Xq[i] = runif(&g) * 30.0f;
        for (int t = 0; t < N; t++) lt_fake_quant_fp8(Xq + t * cols, cols, 32);
        lt_kernels_ref.matmul_actq[tw.w.type](&tw.w, X, N, Ya, rows, 0, rows, 32);
        lt_kernels_ref.matmul[tw.w.type](&tw.w, Xq, N, Yb, rows, 0, rows);
        CHECKF(!memcmp(Ya, Yb, sizeof(float) * (size_t)(N * rows)), "%s [%lld x %lld]", type_name(tw.w.type),
               (long long)rows, (long long)cols);
        free(X);
        free(Xq);
        free(Ya);
        free(Yb);
        free_weight(&tw);
    }
}

/* one-hot activations pick single weights: decoding and scaling must be exact */
LT_TEST(kernels, decode_exact) {
    const lt_kernels *tables[MAX_TABLES];
    int nt = simd_tables(tables);
    rng g = {3};
    static const struct { lt_wtype t; int64_t cols; int block_r, block_c; } fmts[] = {
        {LT_W_FP8, 256, 128, 128}, {LT_W_FP8, 96, 32, 32}, {LT_W_FP4, 64, 1, 32}, {LT_W_BF16, 40, 0, 0},
    };
    for (int ti = 0; ti < nt; ti++)
        for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
            test_weight tw = make_weight(&g, fmts[f].t, 3, fmts[f].cols, fmts[f].block_r, fmts[f].block_c);
            if (fmts[f].t == LT_W_FP8) /* every finite code in row 0 */
                for (int64_t c = 0; c < fmts[f].cols; c++) tw.data[c] = (c & 0x7F) == 0x7F ? 0 : (uint8_t)c;
            if (fmts[f].t == LT_W_FP4)
                for (int64_t c = 0; c < fmts[f].cols / 2; c++) tw.data[c] = (uint8_t)(c * 0x21);
            int64_t cols = fmts[f].cols;
            float X[2 * 256], Yr[2 * 3], Ys[2 * 3];
            for (int64_t k = 0; k + 1 < cols; k++) {
                memset(X, 0, sizeof X);
                X[k] = 1.0f;            /* n = 1 reads column k */
                X[cols + k + 1] = 1.0f; /* n = 2: the second row reads column k + 1 */
                for (int64_t n = 1; n <= 2; n++) {
                    lt_kernels_ref.matmul[tw.w.type](&tw.w, X, n, Yr, 3, 0, 3);
                    tables[ti]->matmul[tw.w.type](&tw.w, X, n, Ys, 3, 0, 3);
                    for (int i = 0; i < 3 * n; i++)
                        CHECKF(Ys[i] == Yr[i], "%s %s column %lld n=%lld: %.9g != ref %.9g", tables[ti]->name,
                               type_name(tw.w.type), (long long)k, (long long)n, Ys[i], Yr[i]);
                }
            }
            free_weight(&tw);
        }
}

/* the fused activation quantiser is the reference's, bit for bit, ties included */
LT_TEST(kernels, fake_quant_fp8_bit_exact) {
    const lt_kernels *tables[MAX_TABLES];
    int nt = simd_tables(tables);
    rng g = {4};
    enum { N = 1000 };
    float *x = malloc(N * sizeof(float)), *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) x[i] = runif(&g) * ldexpf(1.0f, (int)(rnext(&g) % 40) - 25);
    x[3] = 0.0f, x[4] = -0.0f, x[5] = 1e-30f;
    /* a block of ties: 448 makes the scale 1, then midpoints between
     * neighbouring e4m3 values (normal and subnormal), both signs */
    x[128] = 448.0f;
    for (int i = 1; i < 128; i++) {
        int code = 1 + (i * 7) % 120;
        float mid = 0.5f * (lt_fp8_e4m3_to_f32((uint8_t)code) + lt_fp8_e4m3_to_f32((uint8_t)(code + 1)));
        x[128 + i] = i & 1 ? mid : -mid;
    }
    static const int blocks[] = {128, 32, 7};
    for (int ti = 0; ti < nt; ti++)
        for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
            memcpy(a, x, N * sizeof(float));
            memcpy(b, x, N * sizeof(float));
            lt_kernels_ref.fake_quant_fp8(a, N, blocks[bi]);
            tables[ti]->fake_quant_fp8(b, N, blocks[bi]);
            for (int i = 0; i < N; i++)
                CHECKF(!memcmp(&a[i], &b[i], sizeof(float)), "%s block %d: x[%d] = %.9g -> %.9g, ref %.9g",
                       tables[ti]->name, blocks[bi], i, x[i], b[i], a[i]);
        }
    free(x);
    free(a);
    free(b);
}

LT_TEST(kernels, init_and_names) {
    const char *const *names = lt_kernels_available();
    CHECK(names[0] != NULL);
    int has_ref = 0;
    for (const char *const *p = names; *p; p++) has_ref |= !strcmp(*p, "ref");
    CHECK(has_ref);
    CHECK(!lt_kernels_init("no-such-table"));
    CHECK(lt_kernels_init("ref"));
    CHECK(!strcmp(lt_kern()->name, "ref"));
    CHECK(lt_kernels_init(NULL)); /* back to the best */
    CHECK(!strcmp(lt_kern()->name, names[0]));
}

/* attention over gathered stored rows (attn_rows): SIMD against ref for
 * every row format (kvrow.h), window and compressed parts in different
 * formats, padding slots, several blocks of LT_ATTN_BLOCK. o is a convex mix
 * of rows, so errors are measured against max |row value|: 1e-5 of it
 * (summation order and the polynomial exp); with P rounded to bf16 a P near
 * a rounding boundary may round the other way, moving o by up to 2^-8 of max
 * |v|. The threaded lt_attention_rows must equal one whole call, bit for bit. */
LT_TEST(kernels, attention_vs_ref) {
    const lt_kernels *tables[MAX_TABLES];
    int nt = simd_tables(tables);
    rng g = {6};
    enum { POOL = 400, DMAX = 512 };
    const lt_kv_fmt f32 = lt_kv_fmt_f32(512), v4 = lt_kv_fmt_fp8(512, 448, 64), v41w = lt_kv_fmt_fp8(512, 512, 32),
                    v41c = lt_kv_fmt_fp4(512, 16), rag = lt_kv_fmt_fp8(200, 150, 64), f96 = lt_kv_fmt_fp4(96, 16);
    static const struct { int64_t nh, n_rows, n_first; int sink, ref, pad; } cases[] = {
        {13, 33, 33, 1, 0, 0}, {64, 300, 128, 1, 0, 0}, {5, 1, 1, 0, 0, 0}, {12, 0, 0, 1, 0, 0},
        {16, 129, 20, 1, 1, 1}, {7, 40, 10, 1, 1, 0}, {130, 70, 64, 1, 1, 1},
    };
    const struct { lt_kv_fmt f[2]; } fmts[] = {{{f32, f32}}, {{v4, v4}}, {{v41w, v41c}}, {{rag, rag}}, {{f96, f96}}};
    uint8_t *pool = malloc((size_t)(POOL * 2 * 4 * DMAX));
    float x[DMAX];
    lt_error err;
    for (size_t fi = 0; fi < sizeof fmts / sizeof fmts[0]; fi++) {
        const lt_kv_fmt *f = fmts[fi].f;
        int64_t d = f[0].d, rb = LT_MAX(f[0].bytes, f[1].bytes);
        for (int64_t r = 0; r < 2 * POOL; r++) { /* rows 0..POOL-1 in f[0], the rest in f[1] */
            for (int64_t c = 0; c < d; c++) x[c] = runif(&g) * (c % 7 == 0 ? 4.0f : 1.0f);
            lt_kv_pack(&f[r >= POOL], x, pool + r * rb);
        }
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            int64_t nh = cases[ci].nh, n = cases[ci].n_rows, nf = cases[ci].n_first, hmax = LT_MIN(nh, LT_ATTN_MAX_HEADS);
            const uint8_t **rows = malloc(sizeof *rows * (size_t)(n ? n : 1));
            float *q = malloc(sizeof(float) * (size_t)(nh * d)), *sink = malloc(sizeof(float) * (size_t)nh);
            float *or_ = malloc(sizeof(float) * (size_t)(nh * d)), *os = malloc(sizeof(float) * (size_t)(nh * d));
            float *ot = malloc(sizeof(float) * (size_t)(nh * d));
            for (int64_t j = 0; j < n; j++) /* gathered, any order; padding slots after the first */
                rows[j] = cases[ci].pad && j > 0 && j % 5 == 0 && j < nf ? NULL
                                                                       : pool + ((int64_t)(rnext(&g) % POOL) + (j >= nf ? POOL : 0)) * rb;
            for (int64_t i = 0; i < nh * d; i++) q[i] = runif(&g) * 3.0f;
            for (int64_t h = 0; h < nh; h++) sink[h] = runif(&g) * 2.0f;
            float scale = 1.0f / sqrtf((float)d), tol = (cases[ci].ref ? 4e-3f : 1e-5f) * 4.0f;
            const float *sk = cases[ci].sink ? sink : NULL;
            lt_kernels_ref.attn_rows(q, f, nf, rows, n, sk, scale, cases[ci].ref, 0, hmax, or_);
            for (int ti = 0; ti < nt; ti++) {
                memset(os, 0xFF, sizeof(float) * (size_t)(nh * d)); /* NaN: every output must be written */
                tables[ti]->attn_rows(q, f, nf, rows, n, sk, scale, cases[ci].ref, 0, hmax, os);
                int bad = 0;
                for (int64_t i = 0; i < hmax * d && !bad; i++) {
                    bad = !(fabsf(os[i] - or_[i]) <= tol);
                    CHECKF(!bad, "%s format %zu heads %lld rows %lld: o[%lld] = %.8g, ref %.8g", tables[ti]->name, fi,
                           (long long)nh, (long long)n, (long long)i, os[i], or_[i]);
                }
            }
            for (int64_t h0 = 0; h0 < nh; h0 += LT_ATTN_MAX_HEADS)
                lt_kern()->attn_rows(q, f, nf, rows, n, sk, scale, cases[ci].ref, h0, LT_MIN(nh, h0 + LT_ATTN_MAX_HEADS), os);
            for (int threads = 1; threads <= 3; threads += 2) {
                CHECK(lt_threads_set(threads, &err) == LT_OK);
                memset(ot, 0xFF, sizeof(float) * (size_t)(nh * d));
                lt_attention_rows(q, nh, f, nf, rows, n, sk, scale, cases[ci].ref, ot);
                CHECKF(!memcmp(os, ot, sizeof(float) * (size_t)(nh * d)), "lt_attention_rows at %d threads, rows %lld",
                       threads, (long long)n);
            }
            free(rows), free(q), free(sink), free(or_), free(os), free(ot);
        }
    }
    CHECK(lt_threads_set(0, &err) == LT_OK);
    free(pool);
}

/* indexer scores: SIMD against ref within 1e-5 of sum_h |wt_h| sum_c |q_hc
 * k_jc| (with the bf16 roundings, within one bf16 step of that: a dot may
 * round the other way), FP4 x FP4 on int8 dot products bit for bit
 * (avx512-vnni, avx512-amx); keys outside [j0, j1) are not written; lt_index_scores
 * equals one whole call */
LT_TEST(kernels, index_score_vs_ref) {
    const lt_kernels *tables[MAX_TABLES];
    int nt = simd_tables(tables);
    rng g = {7};
    static const struct { lt_wtype tk, tq; int64_t n_keys, nh, j0, j1; } cases[] = {
        {LT_W_FP4, LT_W_FP4, 100, 64, 0, 100}, {LT_W_FP4, LT_W_FP4, 70, 7, 3, 68}, {LT_W_FP4, LT_W_F32, 45, 64, 0, 45},
        {LT_W_F32, LT_W_F32, 45, 64, 0, 45},   {LT_W_F32, LT_W_F32, 33, 13, 1, 32},
    };
    enum { DI = 128 };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int bf16 = 0; bf16 <= 1; bf16++) {
            int64_t n = cases[ci].n_keys, nh = cases[ci].nh;
            test_weight K = make_weight(&g, cases[ci].tk, n, DI, 1, 32), Q = make_weight(&g, cases[ci].tq, nh, DI, 1, 32);
            float *wt = malloc(sizeof(float) * (size_t)nh), *q = malloc(sizeof(float) * (size_t)(nh * DI));
            float *sr = malloc(sizeof(float) * (size_t)n), *ss = malloc(sizeof(float) * (size_t)n), key[DI];
            for (int64_t h = 0; h < nh; h++) wt[h] = runif(&g), lt_weight_row(&Q.w, h, q + h * DI);
            lt_kernels_ref.index_score(&K.w, &Q.w, wt, bf16, cases[ci].j0, cases[ci].j1, sr);
            int exact_fp4 = cases[ci].tk == LT_W_FP4 && cases[ci].tq == LT_W_FP4;
            for (int ti = 0; ti < nt; ti++) {
                int exact = exact_fp4 && (!strcmp(tables[ti]->name, "avx512-vnni") ||
                                          !strcmp(tables[ti]->name, "avx512-amx"));
                for (int64_t j = 0; j < n; j++) ss[j] = SENTINEL;
                tables[ti]->index_score(&K.w, &Q.w, wt, bf16, cases[ci].j0, cases[ci].j1, ss);
                for (int64_t j = 0; j < n; j++) {
                    if (j < cases[ci].j0 || j >= cases[ci].j1) {
                        CHECKF(ss[j] == SENTINEL, "%s wrote key %lld outside the range", tables[ti]->name, (long long)j);
                        continue;
                    }
                    lt_weight_row(&K.w, j, key);
                    double bound = 0.0;
                    for (int64_t h = 0; h < nh; h++)
                        for (int64_t c = 0; c < DI; c++) bound += fabs((double)wt[h] * q[h * DI + c] * key[c]);
                    bound *= bf16 ? 0x1p-7 : 1e-5;
                    CHECKF(exact ? ss[j] == sr[j] : fabs((double)ss[j] - sr[j]) <= bound,
                           "%s %s keys, %s queries, bf16 %d, key %lld: %.9g, ref %.9g", tables[ti]->name,
                           type_name(K.w.type), type_name(Q.w.type), bf16, (long long)j, ss[j], sr[j]);
                }
            }
            if (cases[ci].j0 == 0 && cases[ci].j1 == n) { /* the threaded form, bit for bit */
                lt_kern()->index_score(&K.w, &Q.w, wt, bf16, 0, n, sr);
                lt_index_scores(&K.w, &Q.w, wt, bf16, n, ss);
                CHECK(!memcmp(sr, ss, sizeof(float) * (size_t)n));
            }
            free(wt), free(q), free(sr), free(ss);
            free_weight(&K);
            free_weight(&Q);
        }
}

/* per-row scales within 2^3 of each other (the AMX indexer folds those into
 * the codes), around a random base of 2^-69 .. 2^38 (out of the folding
 * range at both ends); every `wide`-th row keeps its random scales */
static void narrow_scales(rng *g, test_weight *w, int64_t wide) {
    int64_t nb = w->w.cols / 32;
    for (int64_t r = 0; r < w->w.rows; r++) {
        if (wide && r % wide == wide - 1) continue;
        uint8_t base = (uint8_t)(58 + rnext(g) % 108);
        for (int64_t b = 0; b < nb; b++) w->scale[r * nb + b] = (uint8_t)(base + rnext(g) % 4);
    }
}

/* the AMX indexer against ref bit for bit on more shapes: index dims 128 and
 * 32, 64, 96, 256 (a part-filled last 64-byte chunk of codes), head counts
 * that do not fill a pair of 16-head tiles (64, 128 included), key ranges
 * that start and end inside groups of 16 and 32 keys; scales spread (block
 * by block sums), narrow (folded), or both among the keys or the heads; a
 * zero, a tiny and a huge head weight */
LT_TEST(kernels, index_score_amx) {
    const lt_kernels *amx = NULL;
    for (const char *const *name = lt_kernels_available(); *name; name++)
        if (!strcmp(*name, "avx512-amx")) {
#if defined(__x86_64__)
            amx = &lt_kernels_avx512_amx;
#endif
        }
    if (!amx) {
        printf("  kernels.index_score_amx: no AMX on this CPU, not tested\n");
        return;
    }
    rng g = {11};
    static const struct { int64_t d, nh, n_keys, j0, j1; } cases[] = {
        {128, 64, 1000, 0, 1000}, {128, 64, 77, 5, 70}, {128, 128, 50, 0, 50}, {128, 1, 40, 3, 39},
        {128, 33, 47, 0, 47},     {32, 5, 18, 0, 18},   {64, 16, 33, 1, 33},   {96, 7, 100, 10, 95},
        {256, 64, 64, 0, 64},     {256, 17, 20, 2, 19},
    };
    /* scales of keys and queries: 0 as made, else narrow with every n-th row
     * (n = the value - 1; 1: none) left spread */
    static const int scales[][2] = {{0, 0}, {1, 1}, {40, 1}, {1, 0}, {0, 1}, {1, 30}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++)
            for (int bf16 = 0; bf16 <= 1; bf16++) {
                int64_t n = cases[ci].n_keys, nh = cases[ci].nh;
                test_weight K = make_weight(&g, LT_W_FP4, n, cases[ci].d, 1, 32);
                test_weight Q = make_weight(&g, LT_W_FP4, nh, cases[ci].d, 1, 32);
                if (scales[si][0]) narrow_scales(&g, &K, scales[si][0] - 1);
                if (scales[si][1]) narrow_scales(&g, &Q, scales[si][1] - 1);
                float *wt = malloc(sizeof(float) * (size_t)nh);
                float *sr = malloc(sizeof(float) * (size_t)n), *ss = malloc(sizeof(float) * (size_t)n);
                for (int64_t h = 0; h < nh; h++) wt[h] = runif(&g);
                if (si == 1) wt[nh - 1] = 0x1p70f, wt[0] = 0.0f;
                if (si == 2) wt[nh - 1] = 0x1p-70f; /* weighted terms near the subnormals */
                for (int64_t j = 0; j < n; j++) sr[j] = ss[j] = SENTINEL;
                lt_kernels_ref.index_score(&K.w, &Q.w, wt, bf16, cases[ci].j0, cases[ci].j1, sr);
                amx->index_score(&K.w, &Q.w, wt, bf16, cases[ci].j0, cases[ci].j1, ss);
                for (int64_t j = 0; j < n; j++)
                    CHECKF(ss[j] == sr[j] || (ss[j] != ss[j] && sr[j] != sr[j]),
                           "d %lld, %lld heads, scales %zu, bf16 %d, key %lld: %.9g, ref %.9g", (long long)cases[ci].d,
                           (long long)nh, si, bf16, (long long)j, ss[j], sr[j]);
                free(wt), free(sr), free(ss);
                free_weight(&K);
                free_weight(&Q);
            }
}

/* ---- elementwise kernels: shapes with ragged tails at every vector width -- */

static const int64_t elem_n[] = {1, 2, 7, 15, 16, 17, 33, 100, 4096 + 3, 7168 + 5};
#define N_ELEM (sizeof elem_n / sizeof elem_n[0])

/* ulps of ref between a and ref (0 when equal, bit for bit) */
static double ulps(float a, float ref) {
    if (!memcmp(&a, &ref, sizeof a)) return 0.0;
    float u = nextafterf(fabsf(ref), INFINITY) - fabsf(ref);
    return fabs((double)a - ref) / u;
}

/* rms_inv within 1e-6 relative of ref's double sum (fp32 lanes); rmsnorm
 * bit-identical to w * (x * r) with the table's own factor r, for no, F32
 * (misaligned) and BF16 weights */
LT_TEST(kernels, rmsnorm_vs_ref) {
    const lt_kernels *tables[MAX_TABLES];
    int nt = simd_tables(tables);
    rng g = {11};
    for (size_t si = 0; si < N_ELEM; si++) {
        int64_t n = elem_n[si];
        float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
        float *wf = malloc(sizeof(float) * (size_t)(n + 1));
        uint16_t *wb = malloc(sizeof(uint16_t) * (size_t)n);
        for (int64_t i = 0; i < n; i++) {
            x[i] = runif(&g) * (i % 5 == 0 ? 30.0f : 1.0f);
            wf[i + 1] = 1.0f + runif(&g);
            wb[i] = lt_f32_to_bf16(1.0f + runif(&g));
        }
        const lt_vec vf = {.dtype = LT_DT_F32, .data = wf + 1, .n = n, .name = "w"},
                     vb = {.dtype = LT_DT_BF16, .data = wb, .n = n, .name = "w"};
        const lt_vec *ws[3] = {NULL, &vf, &vb};
        float rr = lt_kernels_ref.rms_inv(x, n, 1e-6f);
        for (int ti = 0; ti < nt; ti++) {
            float r = tables[ti]->rms_inv(x, n, 1e-6f);
            CHECKF(fabs((double)r / rr - 1.0) <= 1e-6, "%s n %lld: rms_inv %.9g, ref %.9g", tables[ti]->name,
                   (long long)n, r, rr);
            for (int wi = 0; wi < 3; wi++) {
                tables[ti]->rmsnorm(y, x, ws[wi], n, 1e-6f);
                int bad = 0;
                for (int64_t i = 0; i < n; i++) {
                    float want = (ws[wi] ? lt_vec_at(ws[wi], i) : 1.0f) * (x[i] * r);
                    bad += memcmp(&want, &y[i], sizeof want) != 0;
                }
                CHECKF(!bad, "%s n %lld weights %d: %d values differ", tables[ti]->name, (long long)n, wi, bad);
            }
        }
        free(x), free(y), free(wf), free(wb);
    }
}

/* rope, forward and inverse, bit-identical to ref (pairs of ragged count) */
LT_TEST(kernels, rope_vs_ref) {
    const lt_kernels *tables[MAX_TABLES];
    int nt = simd_tables(tables);
    rng g = {12};
    static const int dims[] = {2, 6, 8, 14, 30, 32, 34, 64, 66, 510};
    float x[512], cs[512], a[512], b[512];
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
        for (int inv = 0; inv < 2; inv++) {
            int dim = dims[di];
            for (int i = 0; i < dim; i++) x[i] = 4.0f * runif(&g);
            for (int i = 0; i < dim / 2; i++) {
                float ang = 3.0f * runif(&g);
                cs[i] = cosf(ang);
                cs[dim / 2 + i] = sinf(ang);
            }
            memcpy(a, x, sizeof(float) * (size_t)dim);
            lt_kernels_ref.rope(a, cs, dim, inv);
            for (int ti = 0; ti < nt; ti++) {
                memcpy(b, x, sizeof(float) * (size_t)dim);
                tables[ti]->rope(b, cs, dim, inv);
                CHECKF(!memcmp(a, b, sizeof(float) * (size_t)dim), "%s dim %d inverse %d", tables[ti]->name, dim, inv);
            }
        }
}

/* swiglu within 8 ulp of ref (the polynomial exp; 4 seen); rounded to bf16, within
 * one bf16 ulp (2^16 fp32 ulps) at a tie, otherwise equal */
LT_TEST(kernels, swiglu_vs_ref) {
    const lt_kernels *tables[MAX_TABLES];
    int nt = simd_tables(tables);
    rng g = {13};
    enum { ROWS = 3 };
    for (size_t si = 0; si < N_ELEM; si++) {
        int64_t I = elem_n[si], n = I > 5000 ? 1 : ROWS, m = n * I;
        float *g0 = malloc(sizeof(float) * (size_t)m), *u = malloc(sizeof(float) * (size_t)m);
        float *a = malloc(sizeof(float) * (size_t)m), *b = malloc(sizeof(float) * (size_t)m), wt[ROWS];
        for (int64_t i = 0; i < m; i++) g0[i] = 12.0f * runif(&g), u[i] = 12.0f * runif(&g);
        for (int t = 0; t < ROWS; t++) wt[t] = 0.5f + runif(&g);
        for (int c = 0; c < 8; c++) {
            float limit = c & 1 ? 7.0f : 0.0f;
            const float *w = c & 2 ? wt : NULL;
            int bf16 = c >> 2;
            memcpy(a, g0, sizeof(float) * (size_t)m);
            lt_kernels_ref.swiglu(a, u, w, n, I, limit, bf16);
            for (int ti = 0; ti < nt; ti++) {
                memcpy(b, g0, sizeof(float) * (size_t)m);
                tables[ti]->swiglu(b, u, w, n, I, limit, bf16);
                double worst = 0.0;
                for (int64_t i = 0; i < m; i++) worst = fmax(worst, ulps(b[i], a[i]));
                CHECKF(worst <= (bf16 ? 65536.0 : 8.0), "%s I %lld limit %g weights %d bf16 %d: %g ulps",
                       tables[ti]->name, (long long)I, limit, w != NULL, bf16, worst);
            }
        }
        free(g0), free(u), free(a), free(b);
    }
}

/* mHC collapse and expand bit-identical to ref, 1 to 5 streams */
LT_TEST(kernels, mhc_vs_ref) {
    const lt_kernels *tables[MAX_TABLES];
    int nt = simd_tables(tables);
    rng g = {14};
    for (int hc = 1; hc <= 5; hc++)
        for (size_t si = 0; si < N_ELEM; si++) {
            int64_t D = elem_n[si], m = hc * D;
            float *X = malloc(sizeof(float) * (size_t)m), *a = malloc(sizeof(float) * (size_t)m);
            float *b = malloc(sizeof(float) * (size_t)m), *out = malloc(sizeof(float) * (size_t)D);
            float pre[5], post[5], comb[25];
            for (int64_t i = 0; i < m; i++) X[i] = runif(&g);
            for (int64_t i = 0; i < D; i++) out[i] = runif(&g);
            for (int i = 0; i < hc; i++) pre[i] = runif(&g), post[i] = 2.0f * runif(&g);
            for (int i = 0; i < hc * hc; i++) comb[i] = runif(&g);
            lt_kernels_ref.mhc_collapse(X, pre, hc, D, a);
            for (int ti = 0; ti < nt; ti++) {
                tables[ti]->mhc_collapse(X, pre, hc, D, b);
                CHECKF(!memcmp(a, b, sizeof(float) * (size_t)D), "%s collapse hc %d D %lld", tables[ti]->name, hc,
                       (long long)D);
            }
            memcpy(a, X, sizeof(float) * (size_t)m);
            lt_kernels_ref.mhc_expand(a, out, post, comb, hc, D);
            for (int ti = 0; ti < nt; ti++) {
                memcpy(b, X, sizeof(float) * (size_t)m);
                tables[ti]->mhc_expand(b, out, post, comb, hc, D);
                CHECKF(!memcmp(a, b, sizeof(float) * (size_t)m), "%s expand hc %d D %lld", tables[ti]->name, hc,
                       (long long)D);
            }
            free(X), free(a), free(b), free(out);
        }
}
