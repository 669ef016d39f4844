/* Manifold-constrained hyper-connections, mHC (spec 3.3).
 *
 * The residual of a token is hc streams X[hc, D]. Each site (attention, FFN)
 * derives from the RMS-normalised flattened streams three mixes: pre[hc]
 * (collapse weights), post[hc] (expand weights) and comb[hc, hc] (a
 * Sinkhorn-projected, doubly stochastic stream mixer). V4 (two-pass) then
 * collapses with the site's own pre, and the head collapses the streams
 * once more with pre only; V4.1 (single-pass) collapses with the pre of the
 * site before and has no head mixes (the order lives in src/forward.c).
 * The O(hc*D) steps are kernels (kernels.h): the RMS factor of the
 * projections (rms_inv), collapse and expand; the O(hc^2) mixes and Sinkhorn
 * on hc x hc stay here in scalar code.
 *
 * Dimension letters: n tokens, hc streams, D hidden, M = (2 + hc) * hc mixes. */
#ifndef LT_MHC_H
#define LT_MHC_H

#include "ops.h"
#include "weights.h"

/* One site's parameters (layers.L.hc_attn_* or hc_ffn_*). */
typedef struct {
    lt_weight fn;   /* F32 [M, hc*D] */
    lt_vec base;    /* F32 [M] */
    lt_vec scale;   /* F32 [3]: pre, post, comb */
} lt_mhc_site;

/* The head's parameters (hc_head_*). */
typedef struct {
    lt_weight fn;   /* F32 [hc, hc*D] */
    lt_vec base;    /* F32 [hc] */
    lt_vec scale;   /* F32 [1] */
} lt_mhc_head;

/* The mixes of one token from its raw projections m[M] (already multiplied
 * by the RMS factor): pre = sigmoid + eps, post = 2 sigmoid, comb = Sinkhorn
 * of the row softmax (spec 3.3 steps 3-8). comb is row-major [j][k]. */
void lt_mhc_split(const lt_mhc_site *w, const float *m, int hc, int sinkhorn_iters, float hc_eps,
                  float *pre, float *post, float *comb);

/* In-place Sinkhorn-Knopp on c[hc][hc] after the row softmax: +eps, column
 * normalise, then (row, column) x (iters - 1), each divided by sum + eps. */
void lt_mhc_sinkhorn(float *c, int hc, int iters, float eps);

/* The site's pre/post/comb for n tokens X[n, hc, D]: mix receives the raw
 * projections [n, M]; pre, post [n, hc] and comb [n, hc, hc] the mixes. */
void lt_mhc_site_mixes(const lt_mhc_site *w, const float *X, int64_t n, int hc, int64_t D,
                       int sinkhorn_iters, float hc_eps, float rms_eps,
                       float *mix, float *pre, float *post, float *comb);

/* The head collapse of n tokens (spec 3.3 "V4 head"): y[n, D]; mix [n, hc]
 * is scratch. */
void lt_mhc_head_collapse(const lt_mhc_head *w, const float *X, int64_t n, int hc, int64_t D,
                          float hc_eps, float rms_eps, float *mix, float *y);

#endif
