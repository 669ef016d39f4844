/* Lightning indexer (spec 4.3 steps 13-17): compressed index keys, index
 * queries, ReLU-weighted scores and the top-k selection. */
#include "indexer.h"
#include "kernels.h"
#include "linear.h"
#include "quant.h"
#include "util.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* V4 REFERENCE: Hadamard rotation then FP4 round trip of n rows of di
 * (rotate_activation + fp4_act_quant); in EXACT mode the orthonormal
 * rotation cancels in q . k and is skipped. V4.1: FP4 alone, both modes.
 * Where the rows are stored as FP4 (lt_indexer_fp4) storing them is the
 * round trip, so it is not done here as well. */
void lt_indexer_quantise(const lt_num *nm, float *x, int64_t n, int64_t di) {
    if (!nm->qat && lt_num_ref(nm)) {
        for (int64_t t = 0; t < n; t++) lt_hadamard(x + t * di, di);
        lt_num_store(nm, x, n * di);
    }
    if (!lt_indexer_fp4(nm, di)) lt_num_qat_fp4(nm, x, n, di);
}

/* step 14: q = wq_b(qr) per head, RoPE on the last rd dims at the token's position */
void lt_indexer_queries(const lt_indexer *ix, const lt_config *cfg, const lt_rope *rope, const lt_num *nm,
                        const float *qr, int64_t n, int64_t pos0, float *q, float *cs) {
    int64_t di = cfg->index_head_dim, Hi = cfg->index_n_heads;
    lt_num_linear(nm, &ix->wq_b, qr, n, q, LT_LIN_QUANT);
    for (int64_t t = 0; t < n; t++) {
        lt_rope_angles(rope, pos0 + t, cs);
        for (int64_t h = 0; h < Hi; h++) lt_kern()->rope(q + (t * Hi + h) * di + di - rope->dim, cs, rope->dim, 0);
    }
    lt_num_store(nm, q, n * Hi * di);
    lt_indexer_quantise(nm, q, n * Hi, di);
}

/* step 15: wt = weights_proj(h) * di^-1/2 * Hi^-1/2 */
void lt_indexer_weights(const lt_indexer *ix, const lt_config *cfg, const lt_num *nm, const float *h, int64_t n,
                        float *wt) {
    int64_t Hi = cfg->index_n_heads;
    lt_num_linear(nm, &ix->weights_proj, h, n, wt, LT_LIN_QUANT);
    float scale = (float)(1.0 / sqrt((double)cfg->index_head_dim) / sqrt((double)Hi));
    for (int64_t i = 0; i < n * Hi; i++) wt[i] *= scale;
    lt_num_store(nm, wt, n * Hi);
}

int lt_indexer_fp4(const lt_num *nm, int64_t di) { return lt_num_qat_on(nm, di, 32) && di % 32 == 0; }

int64_t lt_indexer_key_bytes(const lt_num *nm, int64_t di) { return lt_indexer_fp4(nm, di) ? di / 2 + di / 32 : 4 * di; }

void lt_indexer_cache_init(lt_indexer_cache *c, const lt_num *nm, int64_t di, void *data, uint8_t *scale) {
    int fp4 = lt_indexer_fp4(nm, di);
    c->keys = (lt_weight){.type = fp4 ? LT_W_FP4 : LT_W_F32, .data = data, .scale = fp4 ? scale : NULL,
                          .cols = di, .block_r = 1, .block_c = 32, .name = "index keys"};
}

/* rows x[m, di] as weight rows r0.. of w (writable storage behind it);
 * packing FP4 is the round trip itself (lt_pack_fp4) */
static void store_rows(const lt_weight *w, int64_t r0, const float *x, int64_t m) {
    int64_t di = w->cols;
    if (w->type == LT_W_F32) {
        memcpy((float *)(uintptr_t)w->data + r0 * di, x, (size_t)(m * di) * sizeof *x);
        return;
    }
    for (int64_t r = 0; r < m; r++)
        lt_pack_fp4(x + r * di, di, (uint8_t *)(uintptr_t)w->data + (r0 + r) * di / 2,
                    (uint8_t *)(uintptr_t)w->scale + (r0 + r) * di / 32);
}

void lt_indexer_store(lt_indexer_cache *c, const float *x, int64_t m) {
    store_rows(&c->keys, c->keys.rows, x, m);
    c->keys.rows += m;
}

void lt_indexer_query(const lt_indexer_cache *c, lt_indexer_scratch *s, const float *q, int64_t Hi) {
    s->qw = c->keys;
    s->qw.rows = Hi;
    s->qw.data = s->qs;
    s->qw.scale = s->qs + Hi * c->keys.cols / 2;
    s->qw.name = "index queries";
    store_rows(&s->qw, 0, q, Hi);
}

void lt_indexer_scores(const lt_num *nm, const lt_indexer_cache *c, lt_indexer_scratch *s, const float *wt, int64_t j0,
                       int64_t j1) {
    int64_t di = c->keys.cols;
    lt_weight K = c->keys; /* lt_index_scores covers [0, rows): a view from key j0 */
    K.rows = j1 - j0;
    K.data = (const uint8_t *)K.data + j0 * (K.type == LT_W_FP4 ? di / 2 : di * 4);
    if (K.scale) K.scale += j0 * di / 32;
    lt_index_scores(&K, &s->qw, wt, lt_num_ref(nm), K.rows, s->score + j0);
}

#define TOPK_CHUNK 64

/* heap order: the worst kept entry on top (lower score, then higher index) */
static int worse(float sa, int32_t ia, float sb, int32_t ib) { return sa < sb || (sa == sb && ia > ib); }

static void sift_down(float *hs, int32_t *hi, int32_t k, int32_t i) {
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < k && worse(hs[l], hi[l], hs[m], hi[m])) m = l;
        if (r < k && worse(hs[r], hi[r], hs[m], hi[m])) m = r;
        if (m == i) return;
        float ts = hs[i]; hs[i] = hs[m]; hs[m] = ts;
        int32_t ti = hi[i]; hi[i] = hi[m]; hi[m] = ti;
        i = m;
    }
}

static void sift_max(int32_t *a, int32_t n, int32_t i) {
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && a[l] > a[m]) m = l;
        if (r < n && a[r] > a[m]) m = r;
        if (m == i) return;
        int32_t t = a[i]; a[i] = a[m]; a[m] = t;
        i = m;
    }
}

/* in-place ascending heapsort of the selection (no allocation, unlike qsort) */
static void sort_ascending(int32_t *a, int32_t n) {
    for (int32_t i = n / 2 - 1; i >= 0; i--) sift_max(a, n, i);
    for (int32_t end = n - 1; end > 0; end--) { /* the largest left goes last */
        int32_t t = a[0]; a[0] = a[end]; a[end] = t;
        sift_max(a, end, 0);
    }
}

/* the k best of the n entries (score[w], at[w], or w where at is NULL), in
 * ascending position order, into the heap: the first k, then a later entry
 * displaces the top only with a higher score (ties keep the lower
 * position); most chunks hold none, found in one pass */
static void topk_heap(const float *score, const int32_t *at, int64_t n, int32_t k, float *heap_s, int32_t *heap_i) {
    for (int32_t w = 0; w < k; w++) heap_s[w] = score[w], heap_i[w] = at ? at[w] : w;
    for (int32_t i = k / 2 - 1; i >= 0; i--) sift_down(heap_s, heap_i, k, i);
    for (int64_t w0 = k; w0 < n; w0 += TOPK_CHUNK) {
        int64_t w1 = LT_MIN_I64(w0 + TOPK_CHUNK, n);
        float top = heap_s[0];
        int any = 0;
        for (int64_t w = w0; w < w1; w++) any |= score[w] > top;
        for (int64_t w = w0; any && w < w1; w++) {
            int32_t i = at ? at[w] : (int32_t)w;
            if (!worse(heap_s[0], heap_i[0], score[w], i)) continue;
            heap_s[0] = score[w];
            heap_i[0] = i;
            sift_down(heap_s, heap_i, k, 0);
        }
    }
}

/* Long rows first keep only the entries at or above a threshold: the
 * (2k m / nv)-th best of m <= TOPK_SAMPLES evenly spaced scores, which about
 * 2k entries reach. Every entry left out scores below every one kept, so
 * the k best of those kept are the k best. Fewer than k kept, more than
 * TOPK_KEPT, or a NaN (whose order the heap leaves to position): the whole
 * row goes through the heap instead. */
#define TOPK_SAMPLES 4096
#define TOPK_KEPT 8192
#define TOPK_SUB 16 /* entries per pass of the keep scan */

static _Thread_local struct {
    float s[TOPK_KEPT];
    int32_t i[TOPK_KEPT];
} topk_kept;

/* the entries kept (ascending position) into topk_kept; their count, or -1 */
static int32_t topk_keep(const float *score, int64_t nv, int32_t k, float *heap_s, int32_t *heap_i) {
    const int64_t stride = (nv + TOPK_SAMPLES - 1) / TOPK_SAMPLES, m = (nv + stride - 1) / stride;
    const int32_t r = (int32_t)LT_MAX(1, 2 * (int64_t)k * m / nv);
    for (int64_t j = 0; j < m; j++) topk_kept.s[j] = score[j * stride];
    topk_heap(topk_kept.s, NULL, m, r, heap_s, heap_i);
    const float t = heap_s[0];
    int32_t n = 0;
    for (int64_t w0 = 0; w0 < nv; w0 += TOPK_SUB) {
        int64_t w1 = LT_MIN_I64(w0 + TOPK_SUB, nv);
        int any = 0;
        for (int64_t w = w0; w < w1; w++) any |= !(score[w] < t); /* kept, or NaN */
        for (int64_t w = w0; any && w < w1; w++) {
            if (score[w] < t) continue;
            if (score[w] != score[w] || n == TOPK_KEPT) return -1;
            topk_kept.s[n] = score[w], topk_kept.i[n++] = (int32_t)w;
        }
    }
    return n >= k ? n : -1;
}

int32_t lt_indexer_topk(const float *score, int64_t nv, int32_t k, float *heap_s, int32_t *heap_i, int32_t *sel) {
    if (nv <= k) {
        for (int32_t w = 0; w < (int32_t)nv; w++) sel[w] = w;
        return (int32_t)nv;
    }
    int32_t kept = nv >= 2 * TOPK_SAMPLES && 4 * k <= TOPK_KEPT ? topk_keep(score, nv, k, heap_s, heap_i) : -1;
    if (kept >= 0) topk_heap(topk_kept.s, topk_kept.i, kept, k, heap_s, heap_i);
    else topk_heap(score, NULL, nv, k, heap_s, heap_i);
    for (int32_t i = 0; i < k; i++) sel[i] = heap_i[i];
    sort_ascending(sel, k);
    return k;
}

void lt_indexer_forward(const lt_indexer *ix, const lt_config *cfg, const lt_rope *rope, const lt_num *nm,
                        lt_indexer_cache *cache, lt_indexer_scratch *s, const float *h, const float *qr,
                        int64_t n, int64_t pos0, float *cmp_scratch, float *cs, float *keys) {
    int64_t di = cfg->index_head_dim, Hi = cfg->index_n_heads, m = ix->cmp.ratio;
    /* step 13: keys of the entries these tokens complete */
    int64_t k = lt_compressor_forward(&ix->cmp, rope, (float)cfg->rms_norm_eps, nm, &cache->pool, h, n, pos0,
                                      cmp_scratch, cs, keys, 0);
    lt_indexer_quantise(nm, keys, k, di);
    lt_indexer_store(cache, keys, k);
    lt_indexer_queries(ix, cfg, rope, nm, qr, n, pos0, s->q, cs);
    lt_indexer_weights(ix, cfg, nm, h, n, s->wt);
    /* step 17: each token ranks the entries visible to it */
    for (int64_t t = 0; t < n; t++) {
        int64_t nv = (pos0 + t + 1) / m;
        lt_indexer_query(cache, s, s->q + t * Hi * di, Hi);
        lt_indexer_scores(nm, cache, s, s->wt + t * Hi, 0, nv);
        s->n_sel[t] = lt_indexer_topk(s->score, nv, cfg->index_topk, s->heap_s, s->heap_i,
                                      s->sel + t * cfg->index_topk);
    }
}
