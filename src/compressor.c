/* KV compressor (spec 4.3 steps 8-11, 4.8): gated pooling with a state that
 * carries open windows across calls. */
#include "compressor.h"
#include "kernels.h"

#include <math.h>
#include <string.h>

void lt_pool_reset(const lt_compressor *w, lt_pool *p) {
    int64_t cells = lt_compressor_slots(w) * lt_compressor_width(w);
    memset(p->kv, 0, (size_t)cells * sizeof *p->kv);
    for (int64_t i = 0; i < cells; i++) p->score[i] = -INFINITY;
}

/* out[ch] = sum over slots of softmax_slot(score[slot][ch]) * kv[slot][ch];
 * slot s reads its row at column offset off(s) (the Ca or Cb half) */
static void pool_window(const lt_compressor *w, const lt_pool *p, float *out) {
    int64_t m = w->ratio, width = lt_compressor_width(w), slots = lt_compressor_slots(w);
    for (int64_t ch = 0; ch < w->d; ch++) {
        float mx = -INFINITY;
        for (int64_t s = 0; s < slots; s++) {
            int64_t off = (w->overlap && s >= m) ? w->d : 0;
            float z = p->score[s * width + off + ch];
            mx = z > mx ? z : mx;
        }
        double sum = 0.0, acc = 0.0;
        for (int64_t s = 0; s < slots; s++) {
            int64_t off = (w->overlap && s >= m) ? w->d : 0;
            double e = exp((double)(p->score[s * width + off + ch] - mx));
            sum += e;
            acc += e * p->kv[s * width + off + ch];
        }
        out[ch] = (float)(acc / sum);
    }
}

int lt_pool_push(const lt_compressor *w, lt_pool *p, const float *A, const float *Z, int64_t pos, float *out) {
    int64_t m = w->ratio, width = lt_compressor_width(w);
    int64_t j = pos % m;
    /* CSA keeps the previous window in slots [0, m) and fills [m, 2m) */
    int64_t slot = w->overlap ? m + j : j;
    memcpy(p->kv + slot * width, A, (size_t)width * sizeof *A);
    for (int64_t ch = 0; ch < width; ch++)
        p->score[slot * width + ch] = Z[ch] + (w->ape.n ? lt_vec_at(&w->ape, j * width + ch) : 0.0f);
    if (j != m - 1) return 0;
    pool_window(w, p, out);
    if (w->overlap) { /* the closed window becomes the next entry's Ca half */
        memcpy(p->kv, p->kv + m * width, (size_t)(m * width) * sizeof *p->kv);
        memcpy(p->score, p->score + m * width, (size_t)(m * width) * sizeof *p->score);
    }
    return 1;
}

int64_t lt_compressor_forward(const lt_compressor *w, const lt_rope *rope, float eps, const lt_num *nm,
                              lt_pool *p, const float *h, int64_t n, int64_t pos0,
                              float *scratch, float *cs, float *cache, int64_t n_cached) {
    int64_t width = lt_compressor_width(w);
    float *A = scratch, *Z = scratch + n * width;
    /* step 8: projections in fp32 (the reference promotes these weights) */
    lt_num_linear(nm, &w->wkv, h, n, A, LT_LIN_F32);
    if (w->wgate.data) lt_num_linear(nm, &w->wgate, h, n, Z, LT_LIN_F32);
    else memset(Z, 0, (size_t)(n * width) * sizeof *Z);
    for (int64_t t = 0; t < n; t++) {
        int64_t pos = pos0 + t;
        float *e = cache + n_cached * w->d;
        if (!lt_pool_push(w, p, A + t * width, Z + t * width, pos, e)) continue;
        /* step 11: bf16, norm, RoPE at the window's first position */
        lt_num_store(nm, e, w->d);
        lt_kern()->rmsnorm(e, e, &w->norm, w->d, eps);
        lt_num_store(nm, e, w->d);
        n_cached++;
        if (!rope) continue;
        lt_rope_angles(rope, pos + 1 - w->ratio, cs);
        lt_kern()->rope(e + w->d - rope->dim, cs, rope->dim, 0);
        lt_num_store(nm, e, w->d);
    }
    return n_cached;
}
