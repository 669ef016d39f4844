/* MoE routing on hand-made inputs (spec 4.4, 5.2): the selection bias steers
 * which experts are chosen but not their weights, and a V4.1 image token
 * is routed with bias_vl instead of bias. */
#include "test.h"

#include "moe.h"

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
