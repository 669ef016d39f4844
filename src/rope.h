/* Interleaved partial RoPE (spec 3.2).
 *
 * Only the last `dim` channels of a vector rotate; pairs (x[2i], x[2i+1])
 * are complex numbers turned by pos * w_i. A layer's schedule is fixed by its
 * compress ratio: ratio 0 (and MTP) uses rope_theta without YaRN; ratio > 0
 * uses compress_rope_theta with YaRN when the config has rope_scaling. The
 * same table serves that layer's q, window KV, compressed entries and
 * indexer q/k. There is no YaRN magnitude scaling (mscale). The rotation
 * itself is the kernel lt_kern()->rope (kernels.h). */
#ifndef LT_ROPE_H
#define LT_ROPE_H

#include "config.h"

#include <stdint.h>

#define LT_ROPE_MAX_DIM 512

typedef struct {
    int dim;                              /* rotated channels (qk_rope_head_dim), even */
    float inv_freq[LT_ROPE_MAX_DIM / 2];  /* w_i, i < dim/2, after YaRN */
} lt_rope;

/* Frequencies w_i = base^(-2i/dim), computed in fp32 like the oracle; with
 * yarn non-zero the YaRN ramp of spec 3.2 (factor, beta_fast/slow and the
 * original context from c) blends w_i/factor into the low frequencies. */
void lt_rope_init(lt_rope *r, int dim, double base, int yarn, const lt_config *c);

/* The rotation at position pos: cs[i] = cos(pos*w_i), cs[dim/2 + i] = sin. */
void lt_rope_angles(const lt_rope *r, int64_t pos, float *cs);

#endif
