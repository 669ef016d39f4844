/* Manifold-constrained hyper-connections (spec 3.3): mixes and Sinkhorn;
 * collapse and expand are kernels. Everything in fp32, as in the reference
 * and HF. */
#include "mhc.h"
#include "kernels.h"
#include "linear.h"

/* The projections of n flattened token streams, each scaled by the RMS
 * factor of its own hc*D values: m[t] = (fn . X[t]) / rms(X[t]) */
static void project_normed(const lt_weight *fn, const float *X, int64_t n, int64_t width, float rms_eps,
                           float *m) {
    lt_linear(fn, X, n, m);
    for (int64_t t = 0; t < n; t++) {
        float r = lt_kern()->rms_inv(X + t * width, width, rms_eps);
        for (int64_t j = 0; j < fn->rows; j++) m[t * fn->rows + j] *= r;
    }
}

void lt_mhc_sinkhorn(float *c, int hc, int iters, float eps) {
    for (int i = 0; i < hc * hc; i++) c[i] += eps;
    for (int it = 0; it < iters; it++) {
        if (it > 0) /* the first pass is the softmax's row normalisation */
            for (int j = 0; j < hc; j++) {
                float s = 0;
                for (int k = 0; k < hc; k++) s += c[j * hc + k];
                for (int k = 0; k < hc; k++) c[j * hc + k] /= s + eps;
            }
        for (int k = 0; k < hc; k++) {
            float s = 0;
            for (int j = 0; j < hc; j++) s += c[j * hc + k];
            for (int j = 0; j < hc; j++) c[j * hc + k] /= s + eps;
        }
    }
}

void lt_mhc_split(const lt_mhc_site *w, const float *m, int hc, int sinkhorn_iters, float hc_eps,
                  float *pre, float *post, float *comb) {
    float s_pre = lt_vec_at(&w->scale, 0), s_post = lt_vec_at(&w->scale, 1), s_comb = lt_vec_at(&w->scale, 2);
    for (int i = 0; i < hc; i++) {
        pre[i] = lt_sigmoid(m[i] * s_pre + lt_vec_at(&w->base, i)) + hc_eps;
        post[i] = 2.0f * lt_sigmoid(m[hc + i] * s_post + lt_vec_at(&w->base, hc + i));
    }
    for (int j = 0; j < hc; j++) {
        float *row = comb + j * hc;
        for (int k = 0; k < hc; k++) row[k] = m[2 * hc + j * hc + k] * s_comb + lt_vec_at(&w->base, 2 * hc + j * hc + k);
        lt_softmax(row, hc);
    }
    lt_mhc_sinkhorn(comb, hc, sinkhorn_iters, hc_eps);
}

void lt_mhc_site_mixes(const lt_mhc_site *w, const float *X, int64_t n, int hc, int64_t D,
                       int sinkhorn_iters, float hc_eps, float rms_eps,
                       float *mix, float *pre, float *post, float *comb) {
    int64_t M = w->fn.rows;
    project_normed(&w->fn, X, n, hc * D, rms_eps, mix);
    for (int64_t t = 0; t < n; t++)
        lt_mhc_split(w, mix + t * M, hc, sinkhorn_iters, hc_eps, pre + t * hc, post + t * hc, comb + t * hc * hc);
}

void lt_mhc_head_collapse(const lt_mhc_head *w, const float *X, int64_t n, int hc, int64_t D,
                          float hc_eps, float rms_eps, float *mix, float *y) {
    project_normed(&w->fn, X, n, hc * D, rms_eps, mix);
    float scale = lt_vec_at(&w->scale, 0);
    for (int64_t t = 0; t < n; t++) {
        float *pre = mix + t * hc;
        for (int i = 0; i < hc; i++) pre[i] = lt_sigmoid(pre[i] * scale + lt_vec_at(&w->base, i)) + hc_eps;
        lt_kern()->mhc_collapse(X + t * hc * D, pre, hc, D, y + t * D);
    }
}
