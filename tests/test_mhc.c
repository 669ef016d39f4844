/* mHC (spec 3.3): the mixes and Sinkhorn against values computed with the
 * oracle's PyTorch formulation (tools/oracle/ref_v4.py hc_mixes, hc 3, 5
 * iterations), doubly stochastic comb, and the direction of the expand sum. */
#include "test.h"

#include "kernels.h"
#include "mhc.h"

#include <math.h>
#include <string.h>

LT_TEST(mhc, split_matches_pytorch) {
    enum { HC = 3, M = (2 + HC) * HC };
    const float m[M] = {0.3f, -1.2f, 0.8f, 0.5f, -0.4f, 1.1f, 0.2f, -0.7f, 1.5f, -0.3f, 0.9f, 0.1f, -1.0f, 0.6f, 0.4f};
    float base[M], scale[3] = {0.9f, 1.3f, 0.7f};
    for (int i = 0; i < M; i++) base[i] = -0.5f + 1.1f * (float)i / 14.0f; /* torch.linspace(-0.5, 0.6, 15) */
    lt_mhc_site w = {.base = {LT_DT_F32, base, M, "base"}, .scale = {LT_DT_F32, scale, 3, "scale"}};
    const float want_pre[HC] = {0.4427531659603119f, 0.18221354484558105f, 0.5931848287582397f};
    const float want_post[HC] = {1.190501093864441f, 0.6610930562019348f, 1.5793132781982422f};
    const float want_comb[HC * HC] = {0.4058103859424591f, 0.1213543564081192f, 0.47283294796943665f,
                                      0.3423308730125427f, 0.44523414969444275f, 0.21243484318256378f,
                                      0.25185784697532654f, 0.43341049551963806f, 0.314731240272522f};
    float pre[HC], post[HC], comb[HC * HC];
    lt_mhc_split(&w, m, HC, 5, 1e-6f, pre, post, comb);
    for (int i = 0; i < HC; i++) {
        CHECKF(fabsf(pre[i] - want_pre[i]) < 1e-6f, "pre[%d] %.9g want %.9g", i, pre[i], want_pre[i]);
        CHECKF(fabsf(post[i] - want_post[i]) < 1e-6f, "post[%d] %.9g want %.9g", i, post[i], want_post[i]);
    }
    for (int i = 0; i < HC * HC; i++)
        CHECKF(fabsf(comb[i] - want_comb[i]) < 1e-6f, "comb[%d] %.9g want %.9g", i, comb[i], want_comb[i]);
}

LT_TEST(mhc, sinkhorn_is_doubly_stochastic) {
    enum { HC = 4 };
    float c[HC * HC];
    for (int j = 0; j < HC; j++) {
        float *row = c + j * HC;
        for (int k = 0; k < HC; k++) row[k] = (float)((j * 7 + k * 3) % 5) - 2.0f;
        lt_softmax(row, HC);
    }
    lt_mhc_sinkhorn(c, HC, 20, 1e-6f);
    for (int i = 0; i < HC; i++) {
        float rs = 0, cs = 0;
        for (int k = 0; k < HC; k++) {
            rs += c[i * HC + k];
            cs += c[k * HC + i];
        }
        CHECKF(fabsf(rs - 1) < 1e-3f && fabsf(cs - 1) < 1e-5f, "row %d sums to %g, column to %g", i, rs, cs);
    }
}

/* X'[k] = post[k] out + sum_j comb[j][k] X[j]: the sum runs over the first
 * index, so a non-symmetric comb tells the directions apart */
LT_TEST(mhc, expand_sums_over_first_index) {
    enum { HC = 2, D = 3 };
    float X[HC * D] = {1, 2, 3, 10, 20, 30}, out[D] = {0.5f, -1, 2}, post[HC] = {2, 3};
    const float comb[HC * HC] = {0.9f, 0.1f, 0.3f, 0.7f}, pre[HC] = {0.25f, 0.5f};
    float x[D];
    lt_kern()->mhc_collapse(X, pre, HC, D, x);
    for (int d = 0; d < D; d++) CHECK(fabsf(x[d] - (0.25f * X[d] + 0.5f * X[D + d])) < 1e-6f);
    lt_kern()->mhc_expand(X, out, post, comb, HC, D);
    const float want[HC * D] = {2 * 0.5f + 0.9f * 1 + 0.3f * 10, 2 * -1 + 0.9f * 2 + 0.3f * 20, 2 * 2 + 0.9f * 3 + 0.3f * 30,
                                3 * 0.5f + 0.1f * 1 + 0.7f * 10, 3 * -1 + 0.1f * 2 + 0.7f * 20, 3 * 2 + 0.1f * 3 + 0.7f * 30};
    for (int i = 0; i < HC * D; i++) CHECKF(fabsf(X[i] - want[i]) < 1e-5f, "X[%d] = %g want %g", i, X[i], want[i]);
}
