/* RoPE (spec 3.2): the YaRN frequencies of V4-Flash's compressed layers
 * (the spec's verified table, low 15 / high 25), plain frequencies of the
 * sliding layers, interleaved pairs, the inverse, and relative positions. */
#include "test.h"

#include "kernels.h"
#include "rope.h"

#include <math.h>
#include <string.h>

LT_TEST(rope, yarn_table_of_v4_flash) {
    lt_config c;
    memset(&c, 0, sizeof c);
    c.yarn_factor = 16;
    c.yarn_beta_fast = 32;
    c.yarn_beta_slow = 1;
    c.yarn_orig_max_pos = 65536;
    lt_rope r;
    lt_rope_init(&r, 64, 160000, 1, &c);
    const double want[20] = {1.0, 0.68765602, 0.4728708, 0.32517246, 0.2236068, 0.15376456, 0.10573713,
                             0.07271077, 0.05, 0.0343828, 0.02364354, 0.01625862, 0.01118034, 0.00768823,
                             0.00528686, 0.00363554, 0.00226563, 0.0013968, 0.00084969, 0.00050808};
    for (int i = 0; i < 20; i++)
        CHECKF(fabs(r.inv_freq[i] - want[i]) <= 1e-5 * want[i] + 1e-8, "w[%d] = %.8g want %.8g", i, r.inv_freq[i], want[i]);
    /* past the ramp (j >= high = 25) every frequency is divided by the factor */
    for (int i = 25; i < 32; i++) {
        double plain = pow(160000.0, -2.0 * i / 64) / 16;
        CHECKF(fabs(r.inv_freq[i] - plain) <= 1e-5 * plain, "w[%d] = %.8g want %.8g", i, r.inv_freq[i], plain);
    }
}

LT_TEST(rope, plain_schedule_has_no_yarn) {
    lt_config c;
    memset(&c, 0, sizeof c);
    c.yarn_factor = 16; /* present in the config but not used by ratio-0 layers */
    lt_rope r;
    lt_rope_init(&r, 64, 10000, 0, &c);
    for (int i = 0; i < 32; i++) {
        double want = pow(10000.0, -2.0 * i / 64);
        CHECKF(fabs(r.inv_freq[i] - want) <= 1e-6 * want, "w[%d] = %.8g want %.8g", i, r.inv_freq[i], want);
    }
}

LT_TEST(rope, interleaved_pairs_inverse_and_relative_position) {
    lt_config c;
    memset(&c, 0, sizeof c);
    lt_rope r;
    lt_rope_init(&r, 8, 10000, 0, &c);
    float cs[8], x[8] = {1, 0, 0.5f, -2, 3, 1, -1, 4}, y[8];
    /* pair 0 turns by pos * 1 rad: (1, 0) -> (cos 3, sin 3) */
    memcpy(y, x, sizeof x);
    lt_rope_angles(&r, 3, cs);
    lt_kern()->rope(y, cs, 8, 0);
    CHECK(fabsf(y[0] - cosf(3)) < 1e-6f && fabsf(y[1] - sinf(3)) < 1e-6f);
    lt_kern()->rope(y, cs, 8, 1);
    for (int i = 0; i < 8; i++) CHECKF(fabsf(y[i] - x[i]) < 1e-5f, "inverse: y[%d] = %g want %g", i, y[i], x[i]);
    /* q(p) . k(p - 5) does not depend on p */
    float q[8] = {0.3f, -1, 2, 0.5f, 1, 1, -0.2f, 0.7f}, dots[3];
    for (int s = 0; s < 3; s++) {
        float qa[8], ka[8];
        memcpy(qa, q, sizeof q);
        memcpy(ka, x, sizeof x);
        lt_rope_angles(&r, 10 + 7 * s, cs);
        lt_kern()->rope(qa, cs, 8, 0);
        lt_rope_angles(&r, 5 + 7 * s, cs);
        lt_kern()->rope(ka, cs, 8, 0);
        dots[s] = 0;
        for (int i = 0; i < 8; i++) dots[s] += qa[i] * ka[i];
    }
    CHECKF(fabsf(dots[0] - dots[1]) < 1e-4f && fabsf(dots[0] - dots[2]) < 1e-4f, "dots %g %g %g", dots[0], dots[1], dots[2]);
}
