/* Interleaved partial RoPE with the two V4 schedules (spec 3.2). */
#include "rope.h"

#include <math.h>

/* YaRN's correction dimension: the pair index whose wavelength fits
 * n_rot times into the original context (precompute_freqs_cis) */
static double yarn_corr_dim(double n_rot, int dim, double base, double orig) {
    return dim * log(orig / (n_rot * 2.0 * M_PI)) / (2.0 * log(base));
}

void lt_rope_init(lt_rope *r, int dim, double base, int yarn, const lt_config *c) {
    r->dim = dim;
    int half = dim / 2;
    for (int i = 0; i < half; i++)
        r->inv_freq[i] = 1.0f / powf((float)base, (float)(2 * i) / (float)dim);
    if (!yarn) return;
    double orig = (double)c->yarn_orig_max_pos;
    double low = floor(yarn_corr_dim(c->yarn_beta_fast, dim, base, orig));
    double high = ceil(yarn_corr_dim(c->yarn_beta_slow, dim, base, orig));
    low = low < 0 ? 0 : low;
    high = high > dim - 1 ? dim - 1 : high;
    if (low == high) high += 0.001; /* the reference's guard against a zero-width ramp */
    for (int i = 0; i < half; i++) {
        float ramp = (float)(((double)i - low) / (high - low));
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        float w = r->inv_freq[i];
        r->inv_freq[i] = w / (float)c->yarn_factor * ramp + w * (1.0f - ramp);
    }
}

void lt_rope_angles(const lt_rope *r, int64_t pos, float *cs) {
    int half = r->dim / 2;
    for (int i = 0; i < half; i++) {
        float a = (float)pos * r->inv_freq[i]; /* fp32 angle, as the oracle forms it */
        cs[i] = (float)cos((double)a);
        cs[half + i] = (float)sin((double)a);
    }
}
