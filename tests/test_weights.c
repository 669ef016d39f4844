/* Weight binding (format from dtype, shape and scale checks) and the
 * reference linear layer on FP8 block-scaled and FP4 weights. */
#include "linear.h"
#include "quant.h"
#include "st_build.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static lt_config tiny_cfg(void) {
    lt_config c;
    memset(&c, 0, sizeof c);
    c.block_r = 2;
    c.block_c = 4;
    return c;
}

LT_TEST(weights, fp8_block_scales_and_linear) {
    /* W [5, 6] with 2x4 blocks -> scale [3, 2] (ragged blocks at both edges) */
    int64_t ws[2] = {5, 6}, ss[2] = {3, 2};
    uint8_t q[30], sc[6] = {127, 128, 126, 130, 125, 127};
    for (int i = 0; i < 30; i++) q[i] = lt_f32_to_fp8_e4m3((float)((i * 7) % 11) - 5.0f);
    st_build *b = st_build_new();
    st_build_add(b, "w.weight", LT_DT_F8_E4M3, 2, ws, q);
    st_build_add(b, "w.scale", LT_DT_F8_E8M0, 2, ss, sc);
    size_t n;
    uint8_t *bytes = st_build_bytes(b, &n);
    lt_store s;
    memset(&s, 0, sizeof s);
    lt_error err = {0};
    CHECKF(lt_store_parse(&s, bytes, n, 0, "w", &err) == LT_OK, "%s", err.msg);
    lt_config c = tiny_cfg();
    lt_weight w;
    CHECKF(lt_weight_bind(&w, &s, &c, "w", 5, 6, &err) == LT_OK, "%s", err.msg);
    CHECK(w.type == LT_W_FP8 && lt_weight_bytes(&w) == 36);
    float x[6] = {1, -2, 0.5f, 3, -1, 2}, y[5], row[6];
    lt_linear(&w, x, 1, y);
    for (int r = 0; r < 5; r++) {
        lt_weight_row(&w, r, row);
        float want = 0;
        for (int k = 0; k < 6; k++) {
            float deq = lt_fp8_e4m3_to_f32(q[r * 6 + k]) * lt_ue8m0_to_f32(sc[(r / 2) * 2 + k / 4]);
            CHECKF(row[k] == deq, "row %d col %d: %g vs %g", r, k, row[k], deq);
            want += deq * x[k];
        }
        CHECKF(fabsf(y[r] - want) <= 1e-5f * fabsf(want) + 1e-6f, "y[%d] = %g want %g", r, y[r], want);
    }
    /* wrong logical shape and a missing scale are named */
    CHECK(lt_weight_bind(&w, &s, &c, "w", 6, 5, &err) == LT_ERR_INVENTORY && strstr(err.msg, "w.weight"));
    c.block_r = 4;
    CHECK(lt_weight_bind(&w, &s, &c, "w", 5, 6, &err) == LT_ERR_INVENTORY && strstr(err.msg, "w.scale"));
    CHECK(lt_weight_bind(&w, &s, &c, "missing", 5, 6, &err) == LT_ERR_INVENTORY && strstr(err.msg, "missing.weight"));
    lt_store_close(&s);
    free(bytes);
    st_build_free(b);
}

LT_TEST(weights, fp4_packed_low_nibble_first) {
    /* W [2, 64]: I8 [2, 32] + scale [2, 2] */
    int64_t ws[2] = {2, 32}, ss[2] = {2, 2};
    uint8_t q[64], sc[4] = {127, 126, 128, 127};
    for (int i = 0; i < 64; i++) q[i] = (uint8_t)((i % 16) | (((i * 5) % 16) << 4));
    st_build *b = st_build_new();
    st_build_add(b, "e.weight", LT_DT_I8, 2, ws, q);
    st_build_add(b, "e.scale", LT_DT_F8_E8M0, 2, ss, sc);
    size_t n;
    uint8_t *bytes = st_build_bytes(b, &n);
    lt_store s;
    memset(&s, 0, sizeof s);
    lt_error err = {0};
    CHECKF(lt_store_parse(&s, bytes, n, 0, "e", &err) == LT_OK, "%s", err.msg);
    lt_config c = tiny_cfg();
    lt_weight w;
    CHECKF(lt_weight_bind(&w, &s, &c, "e", 2, 64, &err) == LT_OK, "%s", err.msg);
    CHECK(w.type == LT_W_FP4 && w.cols == 64);
    float x[2 * 64], y[4], row[64];
    for (int i = 0; i < 128; i++) x[i] = (float)((i * 13) % 7) - 3.0f;
    lt_linear(&w, x, 2, y); /* two activation rows */
    for (int t = 0; t < 2; t++)
        for (int r = 0; r < 2; r++) {
            lt_weight_row(&w, r, row);
            float want = 0;
            for (int k = 0; k < 64; k++) {
                uint8_t byte = q[r * 32 + k / 2];
                float deq = lt_fp4_e2m1_to_f32(k % 2 ? byte >> 4 : byte & 15) * lt_ue8m0_to_f32(sc[r * 2 + k / 32]);
                CHECKF(row[k] == deq, "row %d col %d", r, k);
                want += deq * x[t * 64 + k];
            }
            CHECKF(fabsf(y[t * 2 + r] - want) <= 1e-5f * fabsf(want) + 1e-6f, "y[%d][%d] = %g want %g", t, r, y[t * 2 + r], want);
        }
    lt_store_close(&s);
    free(bytes);
    st_build_free(b);
}
