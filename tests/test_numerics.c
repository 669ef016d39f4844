/* The rounding points of the two numeric modes (spec 3.4, 3.5): a product
 * against an FP8 weight sees FP8-quantised activations (per row, blocks of
 * weight_block_size[1]) and gives bf16 only in REFERENCE mode; wo_a-style
 * products skip the act quant; fp32 products never round; QAT round trips
 * touch only the named span of each row. EXACT mode changes nothing. */
#include "test.h"

#include "linear.h"
#include "kvrow.h"
#include "numerics.h"
#include "quant.h"

#include <math.h>
#include <string.h>

enum { ROWS = 3, COLS = 40, N = 2, BLOCK = 16 };

/* an FP8 weight [3, 40] with unit scales (blocks 16 x 16, ragged last block) */
static lt_weight fp8_weight(uint8_t *q, uint8_t *scale) {
    for (int i = 0; i < ROWS * COLS; i++) q[i] = lt_f32_to_fp8_e4m3(0.37f * (float)((i * 13) % 17) - 2.9f);
    memset(scale, 127, 3);
    return (lt_weight){.type = LT_W_FP8, .data = q, .scale = scale, .rows = ROWS, .cols = COLS,
                       .block_r = BLOCK, .block_c = BLOCK, .name = "w"};
}

static void activations(float *x) {
    for (int i = 0; i < N * COLS; i++) x[i] = 0.013f * (float)((i * 29) % 31) * (i % 3 ? 1.0f : -7.5f);
}

LT_TEST(numerics, reference_product_quantises_activations_and_rounds) {
    uint8_t q[ROWS * COLS], scale[3];
    lt_weight w = fp8_weight(q, scale);
    float x[N * COLS], xq[N * COLS], want[N * ROWS], got[N * ROWS];
    activations(x);
    memcpy(xq, x, sizeof x);
    for (int t = 0; t < N; t++) lt_fake_quant_fp8(xq + t * COLS, COLS, BLOCK); /* per row, not across rows */
    lt_linear(&w, xq, N, want);
    for (int i = 0; i < N * ROWS; i++) want[i] = lt_round_bf16(want[i]);
    lt_num ref = {.mode = LT_NUMERICS_REFERENCE, .act_block = BLOCK};
    lt_num_linear(&ref, &w, x, N, got, LT_LIN_QUANT);
    for (int i = 0; i < N * ROWS; i++) CHECKF(got[i] == want[i], "y[%d] = %.9g want %.9g", i, got[i], want[i]);
    float x_before[N * COLS];
    activations(x_before);
    CHECK(memcmp(x, x_before, sizeof x) == 0); /* the caller's activations are untouched */

    /* LT_LIN_BF16 (wo_a): plain activations, bf16 output */
    lt_linear(&w, x, N, want);
    for (int i = 0; i < N * ROWS; i++) want[i] = lt_round_bf16(want[i]);
    lt_num_linear(&ref, &w, x, N, got, LT_LIN_BF16);
    for (int i = 0; i < N * ROWS; i++) CHECKF(got[i] == want[i], "bf16 kind: y[%d] = %.9g want %.9g", i, got[i], want[i]);

    /* the row-range variant rounds only its rows */
    float rows[N * ROWS];
    for (int i = 0; i < N * ROWS; i++) rows[i] = -1;
    lt_num_linear_rows(&ref, &w, x, N, rows, ROWS, 1, 3, LT_LIN_BF16);
    for (int t = 0; t < N; t++) {
        CHECK(rows[t * ROWS] == -1);
        for (int r = 1; r < 3; r++) CHECK(rows[t * ROWS + r] == want[t * ROWS + r]);
    }
}

LT_TEST(numerics, exact_and_fp32_products_do_not_round) {
    uint8_t q[ROWS * COLS], scale[3];
    lt_weight w = fp8_weight(q, scale);
    float x[N * COLS], want[N * ROWS], got[N * ROWS];
    activations(x);
    lt_linear(&w, x, N, want);
    lt_num exact = {.mode = LT_NUMERICS_EXACT, .act_block = BLOCK};
    lt_num ref = {.mode = LT_NUMERICS_REFERENCE, .act_block = BLOCK};
    lt_num_linear(&exact, &w, x, N, got, LT_LIN_QUANT);
    CHECK(memcmp(got, want, sizeof got) == 0);
    lt_num_linear(&ref, &w, x, N, got, LT_LIN_F32);
    CHECK(memcmp(got, want, sizeof got) == 0);
    int rounded_somewhere = 0;
    for (int i = 0; i < N * ROWS; i++) rounded_somewhere |= lt_round_bf16(want[i]) != want[i];
    CHECK(rounded_somewhere); /* so the comparisons above could have failed */
}

/* KV rows are stored as the round trips leave them (kvrow.h): the FP8 span
 * unpacks to lt_fake_quant_fp8 of it, the bf16 tail to its bf16 rounding;
 * REFERENCE V4 stores FP8 nope + bf16 RoPE rows, EXACT fp32 rows */
LT_TEST(numerics, kv_rows_store_the_round_trip) {
    enum { D = 12, W8 = 8 };
    float x[D], want[D], got[D];
    uint8_t row[64];
    for (int i = 0; i < D; i++) x[i] = want[i] = 0.1234567f * (float)(i + 1) - 0.77f;
    lt_kv_fmt f = lt_kv_fmt_fp8(D, W8, 4);
    CHECK(f.bytes == 24 && (size_t)f.bytes <= sizeof row); /* 8 codes, 2 scales, 4 bf16 at 10, padding to 8 */
    lt_fake_quant_fp8(want, W8, 4);
    for (int i = W8; i < D; i++) want[i] = lt_round_bf16(x[i]);
    lt_kv_pack(&f, x, row);
    lt_kv_unpack(&f, row, got);
    CHECK(memcmp(got, want, sizeof got) == 0);
    lt_num exact = {.mode = LT_NUMERICS_EXACT}, ref = {.mode = LT_NUMERICS_REFERENCE};
    CHECK(!lt_num_qat_on(&exact, W8, 4) && lt_num_qat_on(&ref, W8 + 1, 4)); /* REFERENCE: partial blocks too */
}
