/* MoE routing on hand-made inputs (spec 4.4, 5.2): the selection bias steers
 * which experts are chosen but not their weights, and a V4.1 image token
 * is routed with bias_vl instead of bias. */
#include "test.h"

#include "moe.h"
#include "util.h"

#include <math.h>

LT_TEST(moe, image_tokens_route_with_bias_vl) {
    enum { E = 4, D = 2, N = 2 };
    const float gate[E * D] = {1, 0, 0, 1, 1, 1, 0.5f, 0.5f}, bias[E] = {5, 0, 0, 0}, bias_vl[E] = {0, 0, 0, 5};
    const float h[N * D] = {0.3f, 0.2f, 0.3f, 0.2f};
    lt_moe w = {.gate = {.type = LT_W_F32, .data = gate, .rows = E, .cols = D, .name = "gate"},
                .bias = {LT_DT_F32, bias, E, "bias"}, .bias_vl = {LT_DT_F32, bias_vl, E, "bias_vl"}};
    lt_config cfg = {.n_routed_experts = E, .n_experts_per_tok = 1, .gate_temp = 1.0, .routed_scaling_factor = 1.0};
    lt_num nm = {.mode = LT_NUMERICS_EXACT};
    const uint8_t image[N] = {0, 1};
    float logits[N * E], wt[N];
    int32_t sel[N];
    lt_moe_scratch s = {.image = image, .logits = logits, .sel = sel, .wt = wt};
    lt_moe_route(&w, &cfg, &nm, &s, h, NULL, N);
    CHECKF(sel[0] == 0 && sel[1] == 3, "text token -> expert %d (want 0), image token -> %d (want 3)", sel[0], sel[1]);
    CHECK(fabsf(wt[0] - 1.0f) < 1e-6f && fabsf(wt[1] - 1.0f) < 1e-6f); /* one expert: its weight renormalises to 1 */
    s.image = NULL; /* text input */
    lt_moe_route(&w, &cfg, &nm, &s, h, NULL, N);
    CHECK(sel[0] == 0 && sel[1] == 0);
}

/* y = w2 . (silu(w1 x) * (w3 x) * wt) in double (no clamp) */
static void ffn_ref(const float *w1, const float *w3, const float *w2, const float *x, int D, int I, double wt,
                    double *y) {
    for (int d = 0; d < D; d++) {
        double acc = 0.0;
        for (int i = 0; i < I; i++) {
            double g = 0.0, u = 0.0;
            for (int c = 0; c < D; c++) g += (double)w1[i * D + c] * x[c], u += (double)w3[i * D + c] * x[c];
            acc += (double)w2[d * I + i] * (g / (1.0 + exp(-g))) * u * wt;
        }
        y[d] += acc;
    }
}

/* A hash layer whose table sends every token to expert 0 twice: the expert
 * has 2n rows, more than the scratch holds (n), and runs in slices. */
LT_TEST(moe, an_expert_with_more_rows_than_the_scratch) {
    enum { E = 2, K = 2, D = 4, I = 4, N = 3, V = 4 };
    float gate[E * D], w1[E][I * D], w3[E][I * D], w2[E][D * I], sw1[I * D], sw3[I * D], sw2[D * I], h[N * D];
    uint64_t r = 99;
    float *all[] = {gate, w1[0], w1[1], w3[0], w3[1], w2[0], w2[1], sw1, sw3, sw2, h};
    int len[] = {E * D, I * D, I * D, I * D, I * D, D * I, D * I, I * D, I * D, D * I, N * D};
    for (int a = 0; a < 11; a++)
        for (int i = 0; i < len[a]; i++) all[a][i] = (float)(lt_splitmix64(&r) >> 40) * 0x1p-24f - 0.5f;
    int64_t table[V * K] = {0};
    const int32_t tokens[N] = {1, 2, 3};
    lt_weight ew1[E], ew3[E], ew2[E];
    for (int e = 0; e < E; e++) {
        ew1[e] = (lt_weight){.type = LT_W_F32, .data = w1[e], .rows = I, .cols = D, .name = "w1"};
        ew3[e] = (lt_weight){.type = LT_W_F32, .data = w3[e], .rows = I, .cols = D, .name = "w3"};
        ew2[e] = (lt_weight){.type = LT_W_F32, .data = w2[e], .rows = D, .cols = I, .name = "w2"};
    }
    lt_moe w = {.hash = 1, .gate = {.type = LT_W_F32, .data = gate, .rows = E, .cols = D, .name = "gate"},
                .tid2eid = {LT_DT_I64, table, V * K, "tid2eid"}, .w1 = ew1, .w3 = ew3, .w2 = ew2,
                .sw1 = {.type = LT_W_F32, .data = sw1, .rows = I, .cols = D, .name = "sw1"},
                .sw3 = {.type = LT_W_F32, .data = sw3, .rows = I, .cols = D, .name = "sw3"},
                .sw2 = {.type = LT_W_F32, .data = sw2, .rows = D, .cols = I, .name = "sw2"}};
    lt_config cfg = {.dim = D, .moe_inter = I, .n_routed_experts = E, .n_experts_per_tok = K, .gate_temp = 1.0,
                     .routed_scaling_factor = 1.0};
    lt_num nm = {.mode = LT_NUMERICS_EXACT};
    float logits[N * E], wt[N * K], wg[N], xg[N * D], g1[N * I], u[N * I], yg[N * D], out[N * D];
    int32_t sel[N * K], count[E + 1], order[N * K];
    lt_moe_scratch s = {.logits = logits, .sel = sel, .wt = wt, .rows = N, .wg = wg, .count = count, .order = order,
                        .xg = xg, .g1 = g1, .u = u, .yg = yg};
    lt_moe_forward(&w, &cfg, &nm, &s, h, tokens, N, out);
    for (int t = 0; t < N; t++) {
        double y[D] = {0};
        ffn_ref(sw1, sw3, sw2, h + t * D, D, I, 1.0, y);
        for (int j = 0; j < K; j++) ffn_ref(w1[0], w3[0], w2[0], h + t * D, D, I, wt[t * K + j], y);
        for (int d = 0; d < D; d++)
            CHECKF(fabs(out[t * D + d] - y[d]) < 1e-5, "token %d dim %d: %.7g, want %.7g", t, d, out[t * D + d], y[d]);
        CHECK(sel[t * K] == 0 && sel[t * K + 1] == 0);
    }
}
